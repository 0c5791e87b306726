#!/usr/bin/env bash
# The log writer A/B at equal function: the service's own line queue
# (`BENCH_LOGS=ours`) against tracing-appender's lossy non-blocking writer
# (`BENCH_LOGS=appender`), both `service-ab serve` (bench/src/bin/service-ab.rs:
# the same app, JSON request lines on, stdout a pipe read by `cat`, as
# awslogs reads a container's stdout). What callgrind cannot see is the
# kernel's share: the thread wake-ups and the write(2) per line or per
# batch. So this measures the process's CPU time (user + system, from
# /proc) and its threads' context switches per request, under two loads:
#   one    h2load, one HTTP/1.1 connection, one request at a time (the writer
#          thread catches up between lines: the per-line wake-up case)
#   busy   h2load, 32 connections
# Variants run interleaved, REPS times each (default 3); the medians are
# printed, and recorded in bench/results/writer-ab-<time>/results.jsonl.
# Instructions per request (callgrind) for the same two variants:
# `bash bench/instructions.sh --full` (ab-ours, ab-appender).
#
#   bash bench/writer-ab.sh            (builds the release binaries first)
#   BENCH_BUILD=no REPS=5 WRITER_AB_PORT=18735 bash bench/writer-ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/target/release"
reps=${REPS:-3}
port=${WRITER_AB_PORT:-18735}
one=${WRITER_AB_ONE:-60000}
busy=${WRITER_AB_BUSY:-200000}
[ "${BENCH_BUILD:-yes}" = yes ] && timeout 1800 cargo build --release --locked -p bench
for tool in h2load curl python3; do
  command -v "$tool" >/dev/null || { echo "writer-ab: $tool is missing" >&2; exit 1; }
done
out="$root/bench/results/writer-ab-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
results="$out/results.jsonl"

pid=""
cleanup() {
  if [ -n "$pid" ]; then
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# cpu_ticks PID: user + system clock ticks of the process (all threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# switches PID: context switches of all its threads, voluntary and not.
switches() {
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n}'
}
hz=$(getconf CLK_TCK)

# run VARIANT LOAD N CONNS: one measured load on a fresh service.
run() {
  local variant=$1 load=$2 n=$3 conns=$4 service ticks0 ticks1 sw0 sw1
  # shellcheck disable=SC2016 # $0 is the inner shell's: the binary, passed after the script
  env SERVICE_NAME=service-a SERVER_PORT="$port" BIND_ADDRESS=127.0.0.1 PEER_URL="http://127.0.0.1:$((port + 1))" \
    LOG_FORMAT=json RUST_LOG=info METRICS_INTERVAL=1h EMF_INTERVAL=1h DRAIN_DELAY=0s SHUTDOWN_TIMEOUT=1s \
    BENCH_LOGS="$variant" TOKIO_WORKER_THREADS=2 \
    bash -c 'exec "$0" serve | cat >/dev/null' "$bin/service-ab" &
  pid=$!
  service=""
  for ((i = 0; i < 200; i++)); do
    service=$(pgrep -P "$pid" -f service-ab || true)
    [ -n "$service" ] && curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/service-a/status" && break
    sleep 0.05
  done
  [ -n "$service" ] || { echo "writer-ab: service-ab did not start" >&2; exit 1; }
  # Warm-up (connections, buffers), not measured.
  timeout 60 h2load -n 2000 -c "$conns" -t 1 --h1 "http://127.0.0.1:$port/service-a/status" >/dev/null
  ticks0=$(cpu_ticks "$service") sw0=$(switches "$service")
  timeout 300 h2load -n "$n" -c "$conns" -t 1 --h1 "http://127.0.0.1:$port/service-a/status" >"$out/h2load.txt"
  grep -q " $n succeeded" "$out/h2load.txt" || { echo "writer-ab: requests failed: $out/h2load.txt" >&2; exit 1; }
  ticks1=$(cpu_ticks "$service") sw1=$(switches "$service")
  cleanup
  python3 - "$results" "$variant" "$load" "$n" "$((ticks1 - ticks0))" "$hz" "$((sw1 - sw0))" <<'EOF'
import json, sys
path, variant, load, n, ticks, hz, switches = sys.argv[1:]
n, ticks, hz, switches = int(n), int(ticks), int(hz), int(switches)
row = {"variant": variant, "load": load, "requests": n,
       "cpu_us": ticks / hz * 1e6 / n, "switches": switches / n}
open(path, "a").write(json.dumps(row) + "\n")
print(f"{variant:9} {load:5} {row['cpu_us']:6.2f} us CPU/request, {row['switches']:.3f} context switches/request")
EOF
}

for ((rep = 1; rep <= reps; rep++)); do
  for variant in ours appender; do
    run "$variant" one "$one" 1
    run "$variant" busy "$busy" 32
  done
done
python3 - "$results" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print("\nmedians (CPU us per request, context switches per request):")
for load in ("one", "busy"):
    m = {}
    for variant in ("ours", "appender"):
        picked = [r for r in rows if r["variant"] == variant and r["load"] == load]
        m[variant] = (statistics.median(r["cpu_us"] for r in picked), statistics.median(r["switches"] for r in picked))
        print(f"  {load:5} {variant:9} {m[variant][0]:6.2f} us  {m[variant][1]:.3f}")
    print(f"  {load:5} appender vs ours: {m['appender'][0] / m['ours'][0] - 1:+.1%} CPU per request")
EOF
echo "results: $results"
