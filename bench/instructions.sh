#!/usr/bin/env bash
# Instructions per request under callgrind, and the instruction budget
# check: user-space instructions are deterministic (they do not move with
# other work on this shared machine), so this is a regression gate, not a
# timed test. Method (/work/shared/REFERENCE.md "Per-request cost"): each
# server runs under `valgrind --tool=callgrind` twice, answering N1 then N2
# requests on one connection (h2load -c1 -m1), is stopped with SIGTERM, and
# (Ir(N2) - Ir(N1)) / (N2 - N1) is its cost per request: start-up and
# shutdown cancel out. A two-hop case runs both processes under callgrind
# (the front and the back it calls) and counts both: their sum per request.
#
#   bash bench/instructions.sh                    every case and its ceiling,
#                                                 then the budget check
#   bash bench/instructions.sh --update-budget    the same, then writes every
#                                                 budget case's figure into
#                                                 bench/budget.json
#
# The cases, each beside its bare ceiling (issue 17's targets in brackets),
# all of them budget cases (bench/budget.json):
#   /service-a/status, HTTP/1.1, JSON request logs on    bare axum (<= 1.5x)
#   the same, request logs off (RUST_LOG=warn)           bare axum (<= 1.25x)
#   /service-a/healthcheck, HTTP/1.1, logs on            bare axum's health route (<= 1.5x)
#   gRPC GetStatus, h2c, logs on                         bare tonic (<= 1.2x)
#   /service-a/other-status, HTTP/1.1, two hops          the bare two-hop over a tonic
#   gRPC GetPeerStatus, h2c, two hops                    Channel (bench/src/bin/ceiling-two-hop.rs
#                                                        in front of ceiling-tonic) (<= 1.3x)
# A two-hop case is service-a and service-b (`serve`, each its own process)
# against ceiling-two-hop and ceiling-tonic. Time on the 2-core machine: the
# three one-process cases and their ceilings took 38 s (26 s of CPU) at a
# load average of 3; all eleven took 3.5 min (92 s of CPU) at a load average
# of 10, so about 1.5 min on a quiet machine (estimated from the CPU time):
# the quick benchmark (CI) runs every case, the two hops adding about a
# minute. The check fails when a case costs more than its budget + the
# file's tolerance (10%), naming the case and by how much. Refresh the
# budget deliberately, after a change that moved the figures on purpose,
# with --update-budget, and commit bench/budget.json with the change.
#
# run.sh calls this with --into DIR (its results directory: records are
# appended to DIR/raw/results.jsonl; the ceilings' answers are read from
# DIR/raw) and --full (adds the log pipeline A/B variants), and checks the
# budget itself after its summary. BENCH_IR_REQUESTS="N1 N2" overrides the
# request counts (default 500 2500).
#
# Allocations per request come from the same runs: callgrind counts the
# calls into glibc's malloc, calloc, posix_memalign (and realloc apart),
# which is where Rust's System allocator goes; exact, like the instructions.
# Ports: BENCH_IR_PORT (default 18701) for the server measured, and the two
# above it for a two-hop case's back (BENCH_IR_PEER_PORT) and the bare
# two-hop's unused second listener (BENCH_IR_SPARE_PORT); all free. Needs
# the ceilings built (run.sh builds them; alone, this script builds the
# release binaries itself).
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
peer_port=${BENCH_IR_PEER_PORT:-$((port + 1))}
spare_port=${BENCH_IR_SPARE_PORT:-$((port + 2))}

die() { echo "bench/instructions: error: $*" >&2; exit 1; }
for tool in valgrind h2load curl python3; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install valgrind nghttp2-client curl python3)"
done

# The servers running now (under callgrind, or the capture's): stopped on
# any exit, failures included.
running=()
cleanup() {
  local pid
  for pid in "${running[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${running[@]}"; do wait "$pid" 2>/dev/null || true; done
  running=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port" "$peer_port" "$spare_port"; do
  for ((waited = 0; waited < 120; waited += 5)); do
    port_busy "$p" || break
    sleep 5
  done
  port_busy "$p" && die "port $p is busy: stop what listens there (ss -ltnp 'sport = :$p')"
done

grpc_headers=(-H 'content-type: application/grpc' -H 'te: trailers')
grpc_url() { echo "http://127.0.0.1:${2:-$port}/scdemo.status.v1.StatusService/$1"; }
rest_url() { echo "http://127.0.0.1:$port/service-a/$1"; }
# Work driven by the clock, not by requests (the metrics sample every
# METRICS_INTERVAL, EMF lines every EMF_INTERVAL) would be counted once per
# second of the run, and a run under valgrind lasts as long as the machine
# makes it: out of the window (one sample at start; the HTTP/2 keepalive
# pings, of the server and of the peer connection, none). The worker threads
# are fixed, so a machine with more cores measures the same program. The
# peer call's timeouts are long: a process under callgrind is ~50x slower.
service_env=(SERVICE_NAME=service-a SERVER_PORT="$port" BIND_ADDRESS=127.0.0.1 PEER_URL="http://127.0.0.1:$peer_port"
  LOG_FORMAT=json RUST_LOG=info DRAIN_DELAY=0s SHUTDOWN_TIMEOUT=1s METRICS_INTERVAL=1h EMF_INTERVAL=1h
  HTTP2_KEEPALIVE_INTERVAL=1h PEER_KEEPALIVE_INTERVAL=1h PEER_CONNECT_TIMEOUT=10s PEER_REQUEST_TIMEOUT=20s)
# service-b, the back of a two-hop case: the same settings on the peer port.
peer_env=("${service_env[@]}" SERVICE_NAME=service-b SERVER_PORT="$peer_port" PEER_URL="http://127.0.0.1:$port")
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
  running=("$!")
  for ((i = 0; i < 100; i++)); do
    curl -sf -o /dev/null --max-time 1 "$(rest_url healthcheck)" && break
    sleep 0.1
  done
  printf '\0\0\0\0\0' >"$into/raw/empty-request.grpc"
  curl -sSf -o "$into/raw/status.json" "$(rest_url status)"
  curl -sSf -o "$into/raw/getstatus.grpc" --http2-prior-knowledge -X POST "${grpc_headers[@]}" \
    --data-binary "@$into/raw/empty-request.grpc" "$(grpc_url GetStatus)"
  cleanup
fi
raw="$into/raw"
results="$raw/results.jsonl"
grpc_body="$raw/empty-request.grpc"
[ -f "$grpc_body" ] || printf '\0\0\0\0\0' >"$grpc_body"
echo "instructions per request: $n1 then $n2 requests on one connection, results in $into"

# ready URL [CURL ARGS...]: 200 (and no grpc-status other than 0).
ready() {
  local headers
  headers=$(curl -sS -o /dev/null -D - --max-time 10 "$@" 2>/dev/null || true)
  grep -q '^HTTP/[0-9.]* 200' <<<"$headers" && ! grep -qi '^grpc-status: [1-9]' <<<"$headers"
}

# under_callgrind NAME ENV... -- COMMAND...: starts COMMAND under callgrind
# (its output in $raw/callgrind-NAME.out), adds it to $running.
under_callgrind() {
  local name=$1 envs=()
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  env "${envs[@]}" timeout 600 valgrind --tool=callgrind --callgrind-out-file="$raw/callgrind-$name.out" "$@" \
    >/dev/null 2>"$raw/callgrind-$name.stderr" &
  running+=("$!")
}

# await PID NAME CURL ARGS...: until the server answers (ready), for at most
# 60 s. Polls before it listens cost it nothing; the one that succeeds is a
# request in both runs of a case, so it cancels out.
await() {
  local pid=$1 name=$2 i
  shift 2
  for ((i = 0; i < 600; i++)); do
    ready "$@" && return 0
    kill -0 "$pid" 2>/dev/null || die "$name under callgrind exited: $(tail -3 "$raw/callgrind-$name.stderr")"
    sleep 0.1
  done
  die "$name under callgrind did not answer within 60 s: $(tail -3 "$raw/callgrind-$name.stderr")"
}

# stop PID: SIGTERM, and wait until callgrind has written its output.
stop() {
  kill -TERM "$1"
  wait "$1" || true
}
# counts NAME: "<instructions> <allocations> <reallocations>" of NAME's output.
counts() {
  python3 "$bench/report.py" callgrind "$raw/callgrind-$1.out"
  rm -f "$raw/callgrind-$1.out"
}

# total_ir N KIND URL -- ENV... -- COMMAND... [--back ENV... -- COMMAND...]:
# the totals of one run of COMMAND answering N requests of KIND (h1:
# HTTP/1.1 GET; grpc: unary over h2c with an empty message), into $totals:
# (instructions allocations reallocations the-back's-instructions). Not in
# a subshell, so that a failure stops the script and its cleanup stops
# every server still running. With --back, a
# second server (the back COMMAND calls, listening on $peer_port) runs under
# callgrind too, started first and stopped last, and the totals are both
# processes' (the back's instructions also apart; 0 without one).
total_ir() {
  local n=$1 kind=$2 url=$3 load check envs=() command=() back_envs=() back_command=() front back=""
  local front_totals back_totals=(0 0 0)
  shift 3
  [ "$1" = -- ] || die "total_ir: expected --"
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  while [ $# -gt 0 ] && [ "$1" != --back ]; do command+=("$1"); shift; done
  if [ $# -gt 0 ]; then
    shift
    while [ "$1" != -- ]; do back_envs+=("$1"); shift; done
    shift
    back_command=("$@")
  fi
  if [ "$kind" = grpc ]; then
    load=("${grpc_headers[@]}" -d "$grpc_body")
    check=(--http2-prior-knowledge -X POST "${grpc_headers[@]}" --data-binary "@$grpc_body" "$url")
  else
    load=(--h1)
    check=("$url")
  fi
  running=()
  if [ ${#back_command[@]} -gt 0 ]; then
    under_callgrind back "${back_envs[@]}" -- "${back_command[@]}"
    back=${running[-1]}
    await "$back" back --http2-prior-knowledge -X POST "${grpc_headers[@]}" --data-binary "@$grpc_body" \
      "$(grpc_url GetStatus "$peer_port")"
  fi
  under_callgrind front "${envs[@]}" -- "${command[@]}"
  front=${running[-1]}
  await "$front" front "${check[@]}"
  timeout 300 h2load -n "$n" -c 1 -m 1 -t 1 "${load[@]}" "$url" >"$raw/callgrind-load.txt" 2>&1 ||
    die "h2load under callgrind failed: see $raw/callgrind-load.txt"
  grep -q " $n succeeded" "$raw/callgrind-load.txt" || die "requests failed under callgrind: see $raw/callgrind-load.txt"
  # h2load counts an HTTP 200 as success whatever the grpc-status: one more
  # call (in both runs: it cancels out) shows the path still answers OK.
  ready "${check[@]}" || die "$url did not answer OK after the load under callgrind"
  stop "$front"
  read -ra front_totals <<<"$(counts front)"
  if [ -n "$back" ]; then
    stop "$back"
    read -ra back_totals <<<"$(counts back)"
  fi
  running=()
  [ ${#front_totals[@]} -eq 3 ] && [ ${#back_totals[@]} -eq 3 ] || die "cannot read the callgrind totals"
  totals=("$((front_totals[0] + back_totals[0]))" "$((front_totals[1] + back_totals[1]))"
    "$((front_totals[2] + back_totals[2]))" "${back_totals[0]}")
}

# case TARGET NAME KIND URL -- ENV... -- COMMAND... [--back ...]: records
# TARGET's instructions per request on NAME (both processes' with --back,
# the back's share apart as back_per_request).
case_() {
  local target=$1 name=$2 ir1 ir2 allocs1 allocs2 reallocs1 reallocs2 back1 back2 per_request allocations reallocations
  local extra=() back_text=""
  shift 2
  total_ir "$n1" "$@"
  read -r ir1 allocs1 reallocs1 back1 <<<"${totals[*]}"
  total_ir "$n2" "$@"
  read -r ir2 allocs2 reallocs2 back2 <<<"${totals[*]}"
  per_request=$(((ir2 - ir1) / (n2 - n1)))
  # Allocations per request to two decimals (calls into malloc and its kin).
  allocations=$(awk -v a="$allocs1" -v b="$allocs2" -v n="$((n2 - n1))" 'BEGIN {printf "%.2f", (b - a) / n}')
  reallocations=$(awk -v a="$reallocs1" -v b="$reallocs2" -v n="$((n2 - n1))" 'BEGIN {printf "%.2f", (b - a) / n}')
  if [[ " $* " == *" --back "* ]]; then
    extra=(back_per_request=$(((back2 - back1) / (n2 - n1))) processes=2)
    [ "${extra[0]#*=}" -gt 0 ] || die "$target $name: the back counted no instructions per request: was it called?"
    back_text=" (both processes; the back ${extra[0]#*=})"
  fi
  python3 "$bench/report.py" record "$results" kind=instructions target="$target" name="$name" \
    per_request="$per_request" allocations="$allocations" reallocations="$reallocations" requests="$n1,$n2" connections=1 \
    "${extra[@]}"
  echo "$target $name: $per_request instructions$back_text, $allocations allocations, $reallocations reallocations per request"
}

service=("$service_bin" serve)
axum=("$bin/ceiling-axum" "$port" "$raw/status.json")
tonic=("$bin/ceiling-tonic" "$port" "$raw/getstatus.grpc")
# The two hops: service-a calling service-b; the bare two-hop front
# (REST_PORT GRPC_PORT BACK_URL tonic) calling ceiling-tonic.
service_b=(--back "${peer_env[@]}" -- "$service_bin" serve)
tonic_back=(--back -- "$bin/ceiling-tonic" "$peer_port" "$raw/getstatus.grpc")
two_hop_rest=("$bin/ceiling-two-hop" "$port" "$spare_port" "http://127.0.0.1:$peer_port" tonic)
two_hop_grpc=("$bin/ceiling-two-hop" "$spare_port" "$port" "http://127.0.0.1:$peer_port" tonic)
ceilings() { [ "$with_ceilings" = yes ]; }
case_ service status h1 "$(rest_url status)" -- "${service_env[@]}" -- "${service[@]}"
case_ warn status h1 "$(rest_url status)" -- "${service_env[@]}" RUST_LOG=warn -- "${service[@]}"
ceilings && case_ ceiling status h1 "$(rest_url status)" -- -- "${axum[@]}"
case_ service healthcheck h1 "$(rest_url healthcheck)" -- "${service_env[@]}" -- "${service[@]}"
ceilings && case_ ceiling healthcheck h1 "$(rest_url healthcheck)" -- -- "${axum[@]}"
case_ service GetStatus grpc "$(grpc_url GetStatus)" -- "${service_env[@]}" -- "${service[@]}"
ceilings && case_ ceiling GetStatus grpc "$(grpc_url GetStatus)" -- -- "${tonic[@]}"
case_ service other-status h1 "$(rest_url other-status)" -- "${service_env[@]}" -- "${service[@]}" "${service_b[@]}"
ceilings && case_ two-hop-tonic other-status h1 "$(rest_url other-status)" -- -- "${two_hop_rest[@]}" "${tonic_back[@]}"
case_ service GetPeerStatus grpc "$(grpc_url GetPeerStatus)" -- "${service_env[@]}" -- "${service[@]}" "${service_b[@]}"
ceilings && case_ two-hop-tonic GetPeerStatus grpc "$(grpc_url GetPeerStatus)" -- -- "${two_hop_grpc[@]}" "${tonic_back[@]}"
if [ "$full" = yes ]; then
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
