#!/usr/bin/env bash
# The benchmark: the services against bare ceilings (axum, tonic, a bare
# two-hop built from the same libraries) on the same load tools, interleaved,
# on this machine, with the server processes' CPU time per request beside
# req/s. Ratios are the results.
#
#   bash bench/run.sh           full run (about 30 min); first waits (up to an
#                               hour) for the 1-minute load average to fall
#                               below 1.0; writes bench/results/<time>/ and
#                               copies its summary.md to BENCHMARKS.md and its
#                               chart.svg (bench/chart.py, drawn from the
#                               run's own records) to bench/chart.svg, which
#                               BENCHMARKS.md shows beside its tables
#   bash bench/run.sh --quick   2 s per case, a few minutes (CI): checks that
#                               the instrument works (requests, no errors),
#                               never speed; and the instruction budget
#                               (bench/instructions.sh, bench/budget.json):
#                               instructions are deterministic, not timed
#
# Both modes measure every case of issue 17's targets: instructions per
# request (callgrind) of /status with logs on and off, /healthcheck,
# GetStatus and the two two-hop calls (both processes) beside their bare
# ceilings, throughput beside the ceilings and the Go peer, memory and
# start-up; summary.md opens with the targets table (bench/targets.py),
# each target PASS or MISS.
#
# BENCH_REPS and BENCH_SECONDS override the repetitions and seconds per run;
# BENCH_IDLE_WAIT the seconds to wait for a quiet machine (0: do not wait).
# The Go peer (bench/peers/go) is built and measured in every mode.
# Needs ports 8201, 8202 (the local pair), 18201-18699 and 18701-18703
# (bench/instructions.sh; BENCH_IR_PORT moves them) free on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bench="$root/bench"
bin="$root/target/release"

mode=full
case "${1:-}" in
  "") ;;
  --quick) mode=quick ;;
  *) echo "usage: bash bench/run.sh [--quick]" >&2; exit 2 ;;
esac
# conns_list: connections for every case; h2c_conns: for REST over h2c;
# many_conns: the many-connections case (against 64).
if [ "$mode" = quick ]; then
  reps=1 seconds=2 conns_list="64" h2c_conns="64" many_conns=1024 soak=10 load_seconds=1 hold=3
  stream_counts="1000" startup_runs=3 idle_wait=0
  server_limit=1800 # seconds: `timeout` kills every server after this at the latest
else
  reps=3 seconds=8 conns_list="64 256" h2c_conns="64" many_conns=1024 soak=60 load_seconds=5 hold=10
  stream_counts="1000 5000" startup_runs=10 idle_wait=3600
  server_limit=$((4 * 3600))
fi
reps=${BENCH_REPS:-$reps}
seconds=${BENCH_SECONDS:-$seconds}
idle_wait=${BENCH_IDLE_WAIT:-$idle_wait}
# The quiet machine the full run waits for: 1-minute load average below this.
idle_load=1.0
# The probe of /healthcheck during the many-connections case, requests/s.
probe_rate=100
command_line="bash bench/run.sh${1:+ $1}"
if [ -n "${BENCH_REPS:-}${BENCH_SECONDS:-}" ]; then
  command_line="BENCH_REPS=$reps BENCH_SECONDS=$seconds $command_line"
fi

# Ports: the local pair is fixed at 8201/8202 by `status-service local`.
ceiling_axum_port=18401 ceiling_tonic_port=18402
two_hop_tonic_rest=18411 two_hop_tonic_grpc=18412 two_hop_hyper_rest=18421 two_hop_hyper_grpc=18422
# The two-hop cases' service: service-a and service-b, one `serve` process
# each (as on ECS, and as the bare two-hop and the Go peer run).
pair_a_port=18431 pair_b_port=18432
log_info_port=18301 log_warn_port=18302 # and the A/B variants on 18303-18307
serve_a_port=18201 serve_b_port=18202 startup_port=18501
go_a_port=18601 go_b_port=18602 go_startup_port=18611

die() { echo "bench: error: $*" >&2; exit 1; }
note() { printf '\n=== %s\n' "$*"; }

# --- tools ------------------------------------------------------------------
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
command -v ss >/dev/null || missing+=(iproute2)
command -v npm >/dev/null || missing+=(npm)
command -v valgrind >/dev/null || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
  note "installing ${missing[*]}"
  sudo_=""
  [ "$(id -u)" = 0 ] || sudo_=sudo
  { $sudo_ apt-get update -qq && $sudo_ apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
    die "cannot install ${missing[*]} with apt-get: install them and rerun"
fi
for tool in wrk h2load curl python3 ss cargo go npm valgrind; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done

note "build (release)"
# Two builds, so that status-service is exactly the binary that
# `cargo build --release -p status-services` makes (no features unified
# with the bench crate's).
timeout 1800 cargo build --release --locked -p status-services
timeout 1800 cargo build --release --locked -p bench

# The Go peer: code generated from proto/ with buf and the plugins pinned
# in its go.mod (into bench/peers/go/gen, gitignored), then built.
note "build the Go peer"
go_dir="$bench/peers/go" go_out="$root/target/bench-go"
buf="$go_out/npm/node_modules/.bin/buf"
if [ ! -x "$buf" ]; then
  timeout 600 npm install --silent --no-audit --no-fund --prefix "$go_out/npm" @bufbuild/buf@1.75.0 >/dev/null ||
    die "cannot install buf with npm"
fi
(cd "$go_dir" && GOBIN="$go_out/bin" timeout 900 go install tool) || die "cannot install the protoc plugins"
rm -rf "$go_dir/gen"
PATH="$go_out/bin:$PATH" timeout 300 "$buf" generate --template bench/peers/go/buf.gen.yaml proto ||
  die "buf generate failed"
(cd "$go_dir" && timeout 900 go build -trimpath -ldflags='-s -w' -o "$go_out/go-peer" .) ||
  die "cannot build the Go peer"
go_peer="$go_out/go-peer"

# A quiet machine: other work on the 2 cores distorts every figure.
load1() { cut -d' ' -f1 /proc/loadavg; }
if [ "$idle_wait" -gt 0 ]; then
  note "waiting (up to ${idle_wait}s) for the 1-minute load average to fall below $idle_load (now $(load1))"
  waited=0
  while awk -v l="$(load1)" -v max="$idle_load" 'BEGIN {exit !(l >= max)}' && [ "$waited" -lt "$idle_wait" ]; do
    sleep 30
    waited=$((waited + 30))
  done
  echo "load average $(load1) after ${waited}s"
fi
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

results_dir="$bench/results/$(date -u +%Y%m%dT%H%M%SZ)"
raw="$results_dir/raw"
results="$raw/results.jsonl"
mkdir -p "$raw"
record() { python3 "$bench/report.py" record "$results" "$@"; }
record kind=meta mode="$mode" command="$command_line" reps="$reps" seconds="$seconds" \
  date="$(date -u '+%Y-%m-%d %H:%M UTC')" nproc="$(nproc)" kernel="$(uname -r)" \
  cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
  rustc="$(rustc --version)" wrk="$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)" \
  h2load="$(h2load --version | head -1)" go="$(go version | cut -d' ' -f3)" load_at_start="$load_at_start" clk_tck="$(getconf CLK_TCK)" \
  memory_gb="$(awk '/^MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)" \
  code="$(git rev-parse --short HEAD 2>/dev/null || echo "no commit")$(
    [ -z "$(git status --porcelain -- . ':!bench' ':!BENCHMARKS.md' 2>/dev/null)" ] || echo ' + uncommitted changes')"
# The code measured, when it differs from the commit.
git status --porcelain >"$raw/git-status.txt" 2>/dev/null || true
git diff HEAD >"$raw/git.diff" 2>/dev/null || true
echo "results: $results_dir"

# --- processes ----------------------------------------------------------------
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# check_free PORT...: each port free, waiting up to PORT_WAIT seconds for
# one that is busy (another agent may run `local` on 8201 briefly).
port_wait=120
check_free() {
  local port waited
  for port in "$@"; do
    for ((waited = 0; waited < port_wait; waited += 5)); do
      port_busy "$port" || continue 2
      [ "$waited" -gt 0 ] || echo "port $port is busy: waiting up to ${port_wait}s"
      sleep 5
    done
    die "port $port is busy: stop what listens there (ss -ltnp 'sport = :$port') and rerun"
  done
}

# start NAME CMD...: runs CMD in the background under `timeout`, logs on
# stdout to /dev/null, stderr to raw/NAME.stderr; sets $started to its pid.
start() {
  local name=$1
  shift
  timeout "$server_limit" "$@" >/dev/null 2>"$raw/$name.stderr" &
  started=$!
  pids+=("$started")
}
# The pid of the program that `timeout` (pid $1) runs.
child_of() { cut -d' ' -f1 "/proc/$1/task/$1/children"; }
# status_kb PID FIELD: a field of /proc/PID/status, in kB. VmRSS is
# RssAnon (heap, stacks) + RssFile (the pages of the binary and libc in use).
status_kb() { awk -v field="$2:" '$1 == field {print $2}' "/proc/$1/status"; }
rss_kb() { status_kb "$1" VmRSS; }
memory_fields() { # PID: rss_kb=... anon_kb=... file_kb=... hwm_kb=...
  echo "rss_kb=$(rss_kb "$1")" "anon_kb=$(status_kb "$1" RssAnon)" \
    "file_kb=$(status_kb "$1" RssFile)" "hwm_kb=$(status_kb "$1" VmHWM)"
}

# cpu_ticks PID...: user + system CPU time of the processes so far, in
# clock ticks (fields 14 and 15 of /proc/PID/stat, after the command name).
cpu_ticks() {
  local pid total=0 ticks
  for pid in "$@"; do
    ticks=$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat") || die "process $pid is gone"
    total=$((total + ticks))
  done
  echo "$total"
}
# The server processes whose CPU a target's runs are charged with, by
# target name (set as the servers start).
declare -A cpu_pids=()
pids_of() { # GROUP TARGET NAME
  local key=$2
  [ "$key" = ceiling ] && key=$([ "$1" = grpc ] && echo ceiling-grpc || echo ceiling-rest)
  # The throughput groups' two-hop cases run against the serve pair.
  case $1 in rest-h1 | rest-h2c | grpc) [ "$key" = service ] && two_hop "$3" && key=service-pair ;; esac
  [ -n "${cpu_pids[$key]:-}" ] || die "no server processes known for target $key"
  echo "${cpu_pids[$key]}"
}

# wait_for NAME PID URL [CURL ARGS...]: until URL answers 200 (and, for
# gRPC, grpc-status 0), for at most 10 s.
wait_for() {
  local name=$1 pid=$2 url=$3 i headers
  shift 3
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || die "$name exited: $(tail -5 "$raw/$name.stderr")"
    headers=$(curl -sS -o /dev/null -D - --max-time 1 "$@" "$url" 2>/dev/null || true)
    if grep -q '^HTTP/[0-9.]* 200' <<<"$headers" && ! grep -qi '^grpc-status: [1-9]' <<<"$headers"; then
      return 0
    fi
    sleep 0.1
  done
  die "$name did not answer 200 on $url within 10 s: $(tail -5 "$raw/$name.stderr")"
}

grpc_body="$raw/empty-request.grpc"
printf '\0\0\0\0\0' >"$grpc_body" # a gRPC frame: not compressed, 0 bytes of message
grpc_args=(--http2-prior-knowledge -X POST -H 'content-type: application/grpc' -H 'te: trailers' --data-binary "@$grpc_body")
grpc_load=(-H 'content-type: application/grpc' -H 'te: trailers' -d "$grpc_body") # for h2load
grpc_url() { echo "http://127.0.0.1:$1/scdemo.status.v1.StatusService/$2"; }
rest_url() { echo "http://127.0.0.1:$1/service-a/$2"; }
two_hop() { [ "$1" = other-status ] || [ "$1" = GetPeerStatus ]; }

# serve_env SERVICE PORT PEER_PORT RUST_LOG: sets $senv, the environment of
# one `status-service serve`; serve NAME SERVICE PORT PEER_PORT RUST_LOG starts it.
serve_env() {
  senv=(SERVICE_NAME="$1" SERVER_PORT="$2" BIND_ADDRESS=127.0.0.1 PEER_URL="http://127.0.0.1:$3"
    LOG_FORMAT=json RUST_LOG="$4" DRAIN_DELAY=0s SHUTDOWN_TIMEOUT=1s MAX_WATCH_STREAMS=5000)
}
serve() {
  serve_env "${@:2}"
  start "$1" env "${senv[@]}" "$bin/status-service" serve
}
# go_serve NAME SERVICE PORT PEER_PORT: the Go peer, same environment.
go_serve() {
  serve_env "${@:2}" info
  start "$1" env "${senv[@]}" "$go_peer"
}
# go_pair: service-b then service-a of the Go peer on their ports; sets
# cpu_pids[go] to both and $go_a_pid.
go_pair() {
  local b_pid
  go_serve go-b service-b "$go_b_port" "$go_a_port"
  wait_for go-b "$started" "http://127.0.0.1:$go_b_port/service-b/healthcheck"
  b_pid=$(child_of "$started")
  go_serve go-a service-a "$go_a_port" "$go_b_port"
  wait_for go-a "$started" "$(rest_url "$go_a_port" healthcheck)"
  go_a_pid=$(child_of "$started")
  cpu_pids[go]="$go_a_pid $b_pid"
}

# --- load runs ----------------------------------------------------------------
threads_for() { echo $(($1 < 2 ? $1 : 2)); }

# run_wrk GROUP TARGET NAME CONNS REP URL: REST over HTTP/1.1. Records the
# target's server CPU time over the run (cpu_ticks) with the run.
run_wrk() {
  local out="$raw/$1_$2_$3_c$4_r$5.txt" pids before
  read -ra pids <<<"$(pids_of "$1" "$2" "$3")"
  before=$(cpu_ticks "${pids[@]}")
  timeout $((seconds + 30)) wrk -t "$(threads_for "$4")" -c "$4" -d "${seconds}s" --timeout 5s \
    -s "$bench/wrk-report.lua" "$6" >"$out" 2>&1 || die "wrk failed: see $out"
  python3 "$bench/report.py" wrk "$out" "$results" group="$1" target="$2" name="$3" conns="$4" rep="$5" \
    cpu_ticks=$(($(cpu_ticks "${pids[@]}") - before)) load1="$(load1)"
}

# run_h2load GROUP TARGET NAME CONNS REP URL [H2LOAD ARGS...]: h2c. The
# 1 s warm-up (not measured) lets every connection open first: without it,
# h2load can hang at the end when a connection's SYN was dropped in the
# burst (listen backlog 128) and it was still retrying when time ran out.
# The CPU time is counted from the end of the warm-up (sampled 1 s after
# the start), like the requests.
run_h2load() {
  local out="$raw/$1_$2_$3_c$4_r$5.txt" log="$raw/requests.log" pids sampler
  read -ra pids <<<"$(pids_of "$1" "$2" "$3")"
  (sleep 1 && cpu_ticks "${pids[@]}" >"$out.cpu") &
  sampler=$!
  timeout $((seconds + 30)) h2load -t "$(threads_for "$4")" -c "$4" -D "$seconds" --warm-up-time=1 \
    --log-file="$log" "${@:7}" "$6" >"$out" 2>&1 || die "h2load failed: see $out"
  wait "$sampler" || die "cannot read the CPU time of $2"
  python3 "$bench/report.py" h2load "$out" "$results" "$log" group="$1" target="$2" name="$3" conns="$4" rep="$5" \
    cpu_ticks=$(($(cpu_ticks "${pids[@]}") - $(cat "$out.cpu"))) load1="$(load1)"
  rm -f "$log" "$out.cpu"
}

# check_grpc TARGET NAME PORT CONNS: one call with curl, recording its
# grpc-status and grpc-message (h2load sees only HTTP statuses).
check_grpc() {
  local headers code message
  headers=$(curl -sS -o /dev/null -D - --max-time 5 "${grpc_args[@]}" "$(grpc_url "$3" "$2")" | tr -d '\r') || true
  code=$(awk 'tolower($1) == "grpc-status:" {print $2}' <<<"$headers")
  message=$(awk 'tolower($1) == "grpc-message:" {$1 = ""; print substr($0, 2)}' <<<"$headers")
  record kind=grpc_check target="$1" name="$2" conns="$4" grpc_status="${code:-none}" grpc_message="$message"
}

# --- the local pair and the ceilings ---------------------------------------------
note "starting the local pair and the ceilings"
check_free 8201 8202 "$ceiling_axum_port" "$ceiling_tonic_port" "$two_hop_tonic_rest" "$two_hop_tonic_grpc" \
  "$two_hop_hyper_rest" "$two_hop_hyper_grpc" "$log_info_port" "$log_warn_port" {18303..18307} \
  "$serve_a_port" "$serve_b_port" "$startup_port" "$go_a_port" "$go_b_port" "$go_startup_port" \
  "$pair_a_port" "$pair_b_port"
start local env LOG_FORMAT=json RUST_LOG=info "$bin/status-service" local
local_pid=$started
wait_for local "$local_pid" http://127.0.0.1:8201/service-a/healthcheck
wait_for local "$local_pid" http://127.0.0.1:8202/service-b/healthcheck
cpu_pids[service]=$(child_of "$local_pid")
serve pair-b service-b "$pair_b_port" "$pair_a_port" info
wait_for pair-b "$started" "http://127.0.0.1:$pair_b_port/service-b/healthcheck"
cpu_pids[service-pair]=$(child_of "$started")
serve pair-a service-a "$pair_a_port" "$pair_b_port" info
wait_for pair-a "$started" "$(rest_url "$pair_a_port" healthcheck)"
cpu_pids[service-pair]+=" $(child_of "$started")"
# The ceilings answer real answers of the service, captured now.
curl -sSf -o "$raw/status.json" "$(rest_url 8201 status)"
curl -sSf -o "$raw/getstatus.grpc" "${grpc_args[@]}" "$(grpc_url 8201 GetStatus)"
start ceiling-axum "$bin/ceiling-axum" "$ceiling_axum_port" "$raw/status.json"
wait_for ceiling-axum "$started" "$(rest_url "$ceiling_axum_port" status)"
cpu_pids[ceiling-rest]=$(child_of "$started")
start ceiling-tonic "$bin/ceiling-tonic" "$ceiling_tonic_port" "$raw/getstatus.grpc"
wait_for ceiling-tonic "$started" "$(grpc_url "$ceiling_tonic_port" GetStatus)" "${grpc_args[@]}"
cpu_pids[ceiling-grpc]=$(child_of "$started")
# The bare two-hop ceilings: a front calling ceiling-tonic as its back.
for client in tonic hyper; do
  rest_port_var=two_hop_${client}_rest grpc_port_var=two_hop_${client}_grpc
  start "two-hop-$client" "$bin/ceiling-two-hop" "${!rest_port_var}" "${!grpc_port_var}" \
    "http://127.0.0.1:$ceiling_tonic_port" "$client"
  wait_for "two-hop-$client" "$started" "$(rest_url "${!rest_port_var}" other-status)"
  wait_for "two-hop-$client" "$started" "$(grpc_url "${!grpc_port_var}" GetPeerStatus)" "${grpc_args[@]}"
  cpu_pids[two-hop-$client]="$(child_of "$started") ${cpu_pids[ceiling-grpc]}"
done
go_pair

# Each case runs service, ceilings, service, ceilings... within a repetition.
rest_cases() { # GROUP RUNNER CONNS REP [RUNNER ARGS...]
  local group=$1 runner=$2 conns=$3 rep=$4
  shift 4
  $runner "$group" service healthcheck "$conns" "$rep" "$(rest_url 8201 healthcheck)" "$@"
  $runner "$group" ceiling healthcheck "$conns" "$rep" "$(rest_url "$ceiling_axum_port" healthcheck)" "$@"
  $runner "$group" service status "$conns" "$rep" "$(rest_url 8201 status)" "$@"
  $runner "$group" ceiling status "$conns" "$rep" "$(rest_url "$ceiling_axum_port" status)" "$@"
  $runner "$group" service other-status "$conns" "$rep" "$(rest_url "$pair_a_port" other-status)" "$@"
  $runner "$group" two-hop-tonic other-status "$conns" "$rep" "$(rest_url "$two_hop_tonic_rest" other-status)" "$@"
  $runner "$group" two-hop-hyper other-status "$conns" "$rep" "$(rest_url "$two_hop_hyper_rest" other-status)" "$@"
  # The Go peer serves REST over HTTP/1.1 only (bench/peers/go/README.md).
  if [ "$group" = rest-h1 ]; then
    local name
    for name in healthcheck status other-status; do
      $runner "$group" go "$name" "$conns" "$rep" "$(rest_url "$go_a_port" "$name")" "$@"
    done
  fi
}
for conns in $conns_list; do
  note "REST over HTTP/1.1 (wrk), $conns connections, $reps x ${seconds}s"
  for ((rep = 1; rep <= reps; rep++)); do
    rest_cases rest-h1 run_wrk "$conns" "$rep"
  done
  if [[ " $h2c_conns " == *" $conns "* ]]; then
    note "REST over h2c (h2load), $conns connections"
    for ((rep = 1; rep <= reps; rep++)); do
      rest_cases rest-h2c run_h2load "$conns" "$rep"
    done
  fi
  note "gRPC unary over h2c (h2load), $conns connections"
  for ((rep = 1; rep <= reps; rep++)); do
    run_h2load grpc service GetStatus "$conns" "$rep" "$(grpc_url 8201 GetStatus)" "${grpc_load[@]}"
    run_h2load grpc ceiling GetStatus "$conns" "$rep" "$(grpc_url "$ceiling_tonic_port" GetStatus)" "${grpc_load[@]}"
    run_h2load grpc service GetPeerStatus "$conns" "$rep" "$(grpc_url "$pair_a_port" GetPeerStatus)" "${grpc_load[@]}"
    run_h2load grpc two-hop-tonic GetPeerStatus "$conns" "$rep" "$(grpc_url "$two_hop_tonic_grpc" GetPeerStatus)" "${grpc_load[@]}"
    run_h2load grpc two-hop-hyper GetPeerStatus "$conns" "$rep" "$(grpc_url "$two_hop_hyper_grpc" GetPeerStatus)" "${grpc_load[@]}"
    run_h2load grpc go GetStatus "$conns" "$rep" "$(grpc_url "$go_a_port" GetStatus)" "${grpc_load[@]}"
    run_h2load grpc go GetPeerStatus "$conns" "$rep" "$(grpc_url "$go_a_port" GetPeerStatus)" "${grpc_load[@]}"
  done
  check_grpc service GetStatus 8201 "$conns"
  check_grpc ceiling GetStatus "$ceiling_tonic_port" "$conns"
  check_grpc service GetPeerStatus "$pair_a_port" "$conns"
  check_grpc two-hop-tonic GetPeerStatus "$two_hop_tonic_grpc" "$conns"
  check_grpc two-hop-hyper GetPeerStatus "$two_hop_hyper_grpc" "$conns"
  check_grpc go GetStatus "$go_a_port" "$conns"
  check_grpc go GetPeerStatus "$go_a_port" "$conns"
done

# Many connections: /status at $many_conns connections, against the same
# server at 64, while a probe asks /healthcheck $probe_rate times a second
# on a connection of its own (its latency is what a load balancer sees).
run_many() { # TARGET PORT REP
  local probe_out="$raw/many-probe_$1_r$3.txt" probe_log="$raw/probe.log" probe
  timeout $((seconds + 30)) h2load --h1 -t 1 -c 1 --rps "$probe_rate" -D "$seconds" --log-file="$probe_log" \
    "$(rest_url "$2" healthcheck)" >"$probe_out" 2>&1 &
  probe=$!
  run_wrk many "$1" status "$many_conns" "$3" "$(rest_url "$2" status)"
  wait "$probe" || die "the /healthcheck probe failed: see $probe_out"
  python3 "$bench/report.py" h2load "$probe_out" "$results" "$probe_log" group=many-probe target="$1" \
    name=healthcheck conns=1 rep="$3"
  rm -f "$probe_log"
}
note "many connections: /service-a/status at 64 and $many_conns connections, /healthcheck probed meanwhile"
for ((rep = 1; rep <= reps; rep++)); do
  run_wrk many service status 64 "$rep" "$(rest_url 8201 status)"
  run_many service 8201 "$rep"
  run_wrk many ceiling status 64 "$rep" "$(rest_url "$ceiling_axum_port" status)"
  run_many ceiling "$ceiling_axum_port" "$rep"
  run_wrk many go status 64 "$rep" "$(rest_url "$go_a_port" status)"
  run_many go "$go_a_port" "$rep"
done

# Request logs, log pipelines and EMF, side by side: each variant a
# `serve` of service-a (its peer the local pair's service-b), /status at 64
# connections, interleaved with the axum ceiling. service-ab is the same app
# with another log pipeline (bench/src/bin/service-ab.rs).
note "A/B: request logs, log pipelines, EMF: /service-a/status, HTTP/1.1, 64 connections"
ab_variant() { # NAME PORT PROGRAM [ENV...]: starts a variant
  local name=$1 port=$2 program=$3
  shift 3
  serve_env service-a "$port" 8202 info
  start "$name" env "${senv[@]}" "$@" "$program" serve
  wait_for "$name" "$started" "$(rest_url "$port" healthcheck)"
  cpu_pids[$name]=$(child_of "$started")
  ab_ports[$name]=$port
}
declare -A ab_ports=()
ab_variant info "$log_info_port" "$bin/status-service"
ab_variant warn "$log_warn_port" "$bin/status-service" RUST_LOG=warn
ab_variant ab-ours $((log_info_port + 2)) "$bin/service-ab" BENCH_LOGS=ours
ab_variant ab-fmt-json $((log_info_port + 3)) "$bin/service-ab" BENCH_LOGS=fmt-json
ab_variant ab-appender $((log_info_port + 4)) "$bin/service-ab" BENCH_LOGS=appender
ab_variant emf-1s $((log_info_port + 5)) "$bin/status-service" EMF_INTERVAL=1s
ab_variant emf-off $((log_info_port + 6)) "$bin/status-service" EMF_INTERVAL=0s
for ((rep = 1; rep <= reps; rep++)); do
  for variant in info warn ab-ours ab-fmt-json ab-appender emf-1s emf-off; do
    run_wrk logging "$variant" status 64 "$rep" "$(rest_url "${ab_ports[$variant]}" status)"
  done
  run_wrk logging ceiling status 64 "$rep" "$(rest_url "$ceiling_axum_port" status)"
done
cleanup # the rest measures one service alone

# --- memory: service-a alone, with `serve` ------------------------------------
note "memory: idle, after load, soak (${soak}s), WatchStatus streams"
serve serve-b service-b "$serve_b_port" "$serve_a_port" info
wait_for serve-b "$started" "http://127.0.0.1:$serve_b_port/service-b/healthcheck"
serve serve-a service-a "$serve_a_port" "$serve_b_port" info
wait_for serve-a "$started" "$(rest_url "$serve_a_port" healthcheck)"
a_pid=$(child_of "$started")
cpu_pids[service]=$a_pid
sleep 1
# shellcheck disable=SC2046 # memory_fields prints several key=value words
record kind=rss server=service phase=idle $(memory_fields "$a_pid")

# The load: every path at 256 connections (the most buffers) for a few
# seconds. Meanwhile, every 0.5 s, the TCP connections to service-b's port
# (seen from either end, any state: closed ones linger in TIME-WAIT), each
# named by its client's address: those not there before (curl's) are the
# connections service-a opened to its peer.
peer_sockets() {
  ss -Htan "( dport = :$serve_b_port or sport = :$serve_b_port )" |
    awk -v b=":$serve_b_port" '$1 != "LISTEN" {print (substr($4, length($4) - length(b) + 1) == b) ? $5 : $4}'
}
peer_sockets >"$raw/peer_sockets_before.txt"
(while sleep 0.5; do peer_sockets; done >"$raw/peer_sockets.txt") &
sampler=$!
pids+=("$sampler")
seconds_saved=$seconds
seconds=$load_seconds
run_wrk load service healthcheck 256 1 "$(rest_url "$serve_a_port" healthcheck)"
run_wrk load service status 256 1 "$(rest_url "$serve_a_port" status)"
run_wrk load service other-status 256 1 "$(rest_url "$serve_a_port" other-status)"
run_h2load load service status-h2c 256 1 "$(rest_url "$serve_a_port" status)"
run_h2load load service GetStatus 256 1 "$(grpc_url "$serve_a_port" GetStatus)" "${grpc_load[@]}"
run_h2load load service GetPeerStatus 256 1 "$(grpc_url "$serve_a_port" GetPeerStatus)" "${grpc_load[@]}"
seconds=$seconds_saved
sleep 1
kill "$sampler"
# shellcheck disable=SC2046
record kind=rss server=service phase=after_load $(memory_fields "$a_pid") \
  peer_connections_opened="$(awk 'FILENAME == ARGV[1] {before[$1]; next} !($1 in before)' \
    "$raw/peer_sockets_before.txt" "$raw/peer_sockets.txt" | sort -u | wc -l)" \
  peer_connections_open="$(ss -Htn state established "( dport = :$serve_b_port )" | wc -l)"

# Soak: moderate, rate-limited load (REST 1000/s, REST two hops 250/s, gRPC
# 500/s); RSS every 5 s.
soak_pids=()
soak_load() { # NAME URL RATE_PER_CONNECTION [H2LOAD ARGS...]
  timeout $((soak + 30)) h2load -t 1 -c 4 --rps "$3" -D "$soak" --warm-up-time=1 "${@:4}" "$2" >"$raw/soak_$1.txt" 2>&1 &
  soak_pids+=("$!")
}
soak_load status "$(rest_url "$serve_a_port" status)" 250 --h1
soak_load other-status "$(rest_url "$serve_a_port" other-status)" 63 --h1
soak_load GetStatus "$(grpc_url "$serve_a_port" GetStatus)" 125 "${grpc_load[@]}"
for ((t = 0; t <= soak; t += 5)); do
  record kind=soak t="$t" rss_kb="$(rss_kb "$a_pid")"
  if [ "$t" -lt "$soak" ]; then sleep 5; fi
done
for pid in "${soak_pids[@]}"; do wait "$pid" || die "soak load failed: see $raw/soak_*.txt"; done
for name in status other-status GetStatus; do
  python3 "$bench/report.py" h2load "$raw/soak_$name.txt" "$results" "" group=soak target=service name="$name" conns=4 rep=1
done

# WatchStatus: N streams at once, RSS while they are held.
for streams in $stream_counts; do
  out="$raw/streams_$streams.txt"
  timeout $((hold + 120)) "$bin/stream-holder" "127.0.0.1:$serve_a_port" "$streams" "$hold" >"$out" 2>&1 &
  holder=$!
  for ((i = 0; i < 600; i++)); do # until all are open, or it gave up
    if grep -q '^open:' "$out" || ! kill -0 "$holder" 2>/dev/null; then break; fi
    sleep 0.1
  done
  sleep 1
  rss=$(rss_kb "$a_pid")
  wait "$holder" || true
  cat "$out"
  open=$(awk '/^open:/ {print $2}' "$out")
  held=$(awk '/^held:/ {print $2}' "$out")
  record kind=streams streams="$streams" open="${open:-0}" held="${held:-0}" rss_kb="$rss"
done
cleanup

# The Go peer's service-a alone, idle and after the same load (its paths).
go_pair
sleep 1
# shellcheck disable=SC2046
record kind=rss server=go phase=idle $(memory_fields "$go_a_pid")
seconds_saved=$seconds
seconds=$load_seconds
for name in healthcheck status other-status; do
  run_wrk load go "$name" 256 1 "$(rest_url "$go_a_port" "$name")"
done
run_h2load load go GetStatus 256 1 "$(grpc_url "$go_a_port" GetStatus)" "${grpc_load[@]}"
run_h2load load go GetPeerStatus 256 1 "$(grpc_url "$go_a_port" GetPeerStatus)" "${grpc_load[@]}"
seconds=$seconds_saved
sleep 1
# shellcheck disable=SC2046
record kind=rss server=go phase=after_load $(memory_fields "$go_a_pid")
cleanup

# --- instructions per request (callgrind) -------------------------------------------
# bench/instructions.sh: the budget cases (/status logs on and off,
# /healthcheck, GetStatus, the two-hop /other-status and GetPeerStatus with
# both processes under callgrind) and their ceilings, one connection; a full
# run adds the log pipeline A/B variants. The budget check itself runs after
# the summary.
note "instructions per request under callgrind"
instruction_args=(--into "$results_dir")
if [ "$mode" = full ]; then instruction_args+=(--full); fi
bash "$bench/instructions.sh" "${instruction_args[@]}"

# --- start-up and size -----------------------------------------------------------
note "start-up: process start to first answer and to SERVING ($startup_runs runs each)"
serve_env service-a "$startup_port" $((startup_port + 1)) info
env "${senv[@]}" timeout 300 python3 "$bench/startup.py" service "$startup_port" "$startup_runs" \
  "$bin/status-service" serve >>"$results"
serve_env service-a "$go_startup_port" $((go_startup_port + 1)) info
env "${senv[@]}" timeout 300 python3 "$bench/startup.py" go "$go_startup_port" "$startup_runs" "$go_peer" >>"$results"
record kind=size server=service bytes="$(stat -c %s "$bin/status-service")"
record kind=size server=go bytes="$(stat -c %s "$go_peer")"
record kind=load phase=end load="$(cut -d' ' -f1-3 /proc/loadavg)"

note "summary"
python3 "$bench/report.py" summary "$results_dir"
cat "$results_dir/summary.md"
if [ "$mode" = full ]; then
  # The chart beside it, as bench/chart.svg (results/ is not committed).
  sed 's#](chart.svg)#](bench/chart.svg)#; s#The chart (chart.svg)#The chart (bench/chart.svg)#' \
    "$results_dir/summary.md" >"$root/BENCHMARKS.md"
  if [ -f "$results_dir/chart.svg" ]; then cp "$results_dir/chart.svg" "$bench/chart.svg"; fi
  echo "wrote BENCHMARKS.md and bench/chart.svg"
fi
# The instrument must work: requests made, no errors, streams held, gRPC OK.
python3 "$bench/report.py" check "$results_dir" || {
  [ "$mode" = quick ] && die "the quick benchmark found errors (above)"
  echo "bench: warning: errors above (kept in the results)" >&2
}
# The instruction budget (bench/budget.json): a regression gate in CI.
python3 "$bench/report.py" budget "$results_dir" "$bench/budget.json" || {
  [ "$mode" = quick ] && die "instructions per request over budget (above)"
  echo "bench: warning: over the instruction budget (above)" >&2
}
