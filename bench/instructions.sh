#!/usr/bin/env bash
# Instructions per request under callgrind, and the instruction budget
# check: user-space instructions are deterministic (they do not move with
# other work on this shared machine), so this is a regression gate, not a
# timed test. Method (/work/shared/REFERENCE.md "Per-request cost"): each
# server runs under `valgrind --tool=callgrind` twice, answering N1 then N2
# requests on one connection (h2load -c1 -m1), is stopped with SIGTERM, and
# (Ir(N2) - Ir(N1)) / (N2 - N1) is its cost per request: start-up and
# shutdown cancel out.
#
#   bash bench/instructions.sh                    the budget cases and their
#                                                 ceilings, then the budget check
#   bash bench/instructions.sh --update-budget    the same, then writes the
#                                                 figures into bench/budget.json
#
# The budget cases (bench/budget.json): /service-a/status over HTTP/1.1
# with JSON request logs on, /service-a/healthcheck, gRPC GetStatus. The
# check fails when one costs more than its budget + the file's tolerance
# (10%), naming the case and by how much. Refresh the budget deliberately,
# after a change that moved the figures on purpose, with --update-budget,
# and commit bench/budget.json with the change.
#
# run.sh calls this with --into DIR (its results directory: records are
# appended to DIR/raw/results.jsonl; the ceilings' answers are read from
# DIR/raw) and --full (adds logs off and the log pipeline A/B variants),
# and checks the budget itself after its summary. BENCH_IR_REQUESTS="N1 N2"
# overrides the request counts (default 500 2500).
#
# Allocations per request come from the same runs: callgrind counts the
# calls into glibc's malloc, calloc, posix_memalign (and realloc apart),
# which is where Rust's System allocator goes; exact, like the instructions.
# Needs port 18701 (BENCH_IR_PORT overrides it) free, and the ceilings built (run.sh builds them; alone,
# this script builds the release binaries itself).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bench="$root/bench"
bin="$root/target/release"

into="" full=no update=no
requests=${BENCH_IR_REQUESTS:-"500 2500"}
while [ $# -gt 0 ]; do
  case $1 in
    --into) into=$2; shift 2 ;;
    --full) full=yes; shift ;;
    --update-budget) update=yes; shift ;;
    *) echo "usage: bash bench/instructions.sh [--update-budget] [--into DIR] [--full]" >&2; exit 2 ;;
  esac
done
read -r n1 n2 <<<"$requests"
# BENCH_SERVICE: another build of status-service to measure (a before/after
# comparison: copy the old binary aside first). BENCH_CEILINGS=no: the
# service's cases only.
service_bin=${BENCH_SERVICE:-$bin/status-service}
with_ceilings=${BENCH_CEILINGS:-yes}
port=${BENCH_IR_PORT:-18701}

die() { echo "bench/instructions: error: $*" >&2; exit 1; }
for tool in valgrind h2load curl python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install valgrind nghttp2-client curl python3)"
done

vg=""
cleanup() {
  if [ -n "$vg" ]; then kill -TERM "$vg" 2>/dev/null || true; wait "$vg" 2>/dev/null || true; fi
  if [ -n "${capture:-}" ]; then kill -TERM "$capture" 2>/dev/null || true; wait "$capture" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for ((waited = 0; waited < 120; waited += 5)); do
  port_busy "$port" || break
  sleep 5
done
port_busy "$port" && die "port $port is busy: stop what listens there (ss -ltnp 'sport = :$port')"

grpc_headers=(-H 'content-type: application/grpc' -H 'te: trailers')
grpc_url() { echo "http://127.0.0.1:$port/scdemo.status.v1.StatusService/$1"; }
rest_url() { echo "http://127.0.0.1:$port/service-a/$1"; }
# Work driven by the clock, not by requests (the metrics sample every
# METRICS_INTERVAL, EMF lines every EMF_INTERVAL) would be counted once per
# second of the run, and a run under valgrind lasts as long as the machine
# makes it: out of the window (one sample at start). The worker threads are
# fixed, so a machine with more cores measures the same program.
service_env=(SERVICE_NAME=service-a SERVER_PORT="$port" BIND_ADDRESS=127.0.0.1 PEER_URL=http://127.0.0.1:8202
  LOG_FORMAT=json RUST_LOG=info DRAIN_DELAY=0s SHUTDOWN_TIMEOUT=1s METRICS_INTERVAL=1h EMF_INTERVAL=1h)
export TOKIO_WORKER_THREADS=2

standalone=no
if [ -z "$into" ]; then
  standalone=yes
  if [ "${BENCH_BUILD:-yes}" = yes ]; then # BENCH_BUILD=no: the binaries as built
    timeout 1800 cargo build --release --locked -p status-services
    timeout 1800 cargo build --release --locked -p bench
  fi
  into="$bench/results/instructions-$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "$into/raw"
  python3 "$bench/report.py" record "$into/raw/results.jsonl" kind=meta mode=instructions \
    command="bash bench/instructions.sh" date="$(date -u '+%Y-%m-%d %H:%M UTC')" \
    code="$(git rev-parse --short HEAD)$([ -z "$(git status --porcelain -- . ':!bench' ':!BENCHMARKS.md')" ] || echo ' + uncommitted changes')"
  # The ceilings answer real answers of the service: capture them.
  env "${service_env[@]}" timeout 60 "$bin/status-service" serve >/dev/null 2>&1 &
  capture=$!
  for ((i = 0; i < 100; i++)); do
    curl -sf -o /dev/null --max-time 1 "$(rest_url healthcheck)" && break
    sleep 0.1
  done
  printf '\0\0\0\0\0' >"$into/raw/empty-request.grpc"
  curl -sSf -o "$into/raw/status.json" "$(rest_url status)"
  curl -sSf -o "$into/raw/getstatus.grpc" --http2-prior-knowledge -X POST "${grpc_headers[@]}" \
    --data-binary "@$into/raw/empty-request.grpc" "$(grpc_url GetStatus)"
  kill -TERM "$capture"
  wait "$capture" || true
  capture=""
fi
raw="$into/raw"
results="$raw/results.jsonl"
grpc_body="$raw/empty-request.grpc"
[ -f "$grpc_body" ] || printf '\0\0\0\0\0' >"$grpc_body"
echo "instructions per request: $n1 then $n2 requests on one connection, results in $into"

# ready URL [CURL ARGS...]: 200 (and no grpc-status other than 0).
ready() {
  local headers
  headers=$(curl -sS -o /dev/null -D - --max-time 2 "$@" 2>/dev/null || true)
  grep -q '^HTTP/[0-9.]* 200' <<<"$headers" && ! grep -qi '^grpc-status: [1-9]' <<<"$headers"
}

# total_ir N KIND URL -- ENV... -- COMMAND...: the instructions of one run
# of COMMAND answering N requests of KIND (h1: HTTP/1.1 GET; grpc: unary
# over h2c with an empty message).
total_ir() {
  local n=$1 kind=$2 url=$3 out="$raw/callgrind.out" i load envs=() check
  shift 3
  [ "$1" = -- ] || die "total_ir: expected --"
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  if [ "$kind" = grpc ]; then
    load=("${grpc_headers[@]}" -d "$grpc_body")
    check=(--http2-prior-knowledge -X POST "${grpc_headers[@]}" --data-binary "@$grpc_body" "$url")
  else
    load=(--h1)
    check=("$url")
  fi
  env "${envs[@]}" timeout 600 valgrind --tool=callgrind --callgrind-out-file="$out" "$@" \
    >/dev/null 2>"$raw/callgrind.stderr" &
  vg=$!
  for ((i = 0; i < 600; i++)); do
    ready "${check[@]}" && break
    kill -0 "$vg" 2>/dev/null || die "server under callgrind exited: $(tail -3 "$raw/callgrind.stderr")"
    sleep 0.1
  done
  timeout 300 h2load -n "$n" -c 1 -m 1 -t 1 "${load[@]}" "$url" >"$raw/callgrind-load.txt" 2>&1 ||
    die "h2load under callgrind failed: see $raw/callgrind-load.txt"
  grep -q " $n succeeded" "$raw/callgrind-load.txt" || die "requests failed under callgrind: see $raw/callgrind-load.txt"
  kill -TERM "$vg"
  wait "$vg" || true
  vg=""
  python3 "$bench/report.py" callgrind "$out" # instructions, allocations, reallocations
  rm -f "$out"
}

# case TARGET NAME KIND URL -- ENV... -- COMMAND...: records TARGET's
# instructions per request on NAME.
case_() {
  local target=$1 name=$2 ir1 ir2 allocs1 allocs2 reallocs1 reallocs2 per_request allocations reallocations
  shift 2
  read -r ir1 allocs1 reallocs1 <<<"$(total_ir "$n1" "$@")"
  read -r ir2 allocs2 reallocs2 <<<"$(total_ir "$n2" "$@")"
  per_request=$(((ir2 - ir1) / (n2 - n1)))
  # Allocations per request to two decimals (calls into malloc and its kin).
  allocations=$(awk -v a="$allocs1" -v b="$allocs2" -v n="$((n2 - n1))" 'BEGIN {printf "%.2f", (b - a) / n}')
  reallocations=$(awk -v a="$reallocs1" -v b="$reallocs2" -v n="$((n2 - n1))" 'BEGIN {printf "%.2f", (b - a) / n}')
  python3 "$bench/report.py" record "$results" kind=instructions target="$target" name="$name" \
    per_request="$per_request" allocations="$allocations" reallocations="$reallocations" requests="$n1,$n2" connections=1
  echo "$target $name: $per_request instructions, $allocations allocations, $reallocations reallocations per request"
}

service=("$service_bin" serve)
axum=("$bin/ceiling-axum" "$port" "$raw/status.json")
tonic=("$bin/ceiling-tonic" "$port" "$raw/getstatus.grpc")
ceilings() { [ "$with_ceilings" = yes ]; }
case_ service status h1 "$(rest_url status)" -- "${service_env[@]}" -- "${service[@]}"
ceilings && case_ ceiling status h1 "$(rest_url status)" -- -- "${axum[@]}"
case_ service healthcheck h1 "$(rest_url healthcheck)" -- "${service_env[@]}" -- "${service[@]}"
ceilings && case_ ceiling healthcheck h1 "$(rest_url healthcheck)" -- -- "${axum[@]}"
case_ service GetStatus grpc "$(grpc_url GetStatus)" -- "${service_env[@]}" -- "${service[@]}"
ceilings && case_ ceiling GetStatus grpc "$(grpc_url GetStatus)" -- -- "${tonic[@]}"
if [ "$full" = yes ]; then
  case_ warn status h1 "$(rest_url status)" -- "${service_env[@]}" RUST_LOG=warn -- "${service[@]}"
  for variant in ours fmt-json appender; do
    case_ "ab-$variant" status h1 "$(rest_url status)" -- "${service_env[@]}" BENCH_LOGS="$variant" -- \
      "$bin/service-ab" serve
  done
fi

if [ "$update" = yes ]; then
  python3 "$bench/report.py" budget-update "$into" "$bench/budget.json"
elif [ "$standalone" = yes ]; then
  python3 "$bench/report.py" budget "$into" "$bench/budget.json"
fi
