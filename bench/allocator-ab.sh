#!/usr/bin/env bash
# The allocator A/B: the service with glibc's malloc (`service-ab`) against
# the same build with mimalloc (`service-mimalloc`): instructions and
# allocations per request on the budget cases (callgrind, one connection,
# bench/instructions.sh), RSS idle and after a load, and the stripped size.
# mimalloc would be kept only if it holds the memory targets (idle RSS
# <= 10 MB, after load <= 25 MB, binary <= 15 MB) and costs fewer
# instructions; bench/findings.md records the figures and the decision.
#
#   bash bench/allocator-ab.sh
#
# Needs ports 18701 and 18711 free. A few minutes (six callgrind runs per
# binary).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=${BENCH_BIN_DIR:-$root/target/release} # BENCH_BIN_DIR: binaries built elsewhere
port=18711
seconds=3

if [ "${BENCH_BUILD:-yes}" = yes ]; then # BENCH_BUILD=no: the binaries as built
  timeout 1800 cargo build --release --locked -p status-services
  timeout 1800 cargo build --release --locked -p bench
fi
out="$root/bench/results/allocator-ab-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

pid=""
cleanup() { if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; }
trap cleanup EXIT

rss_mb() { awk '$1 == "VmRSS:" {printf "%.1f", $2 * 1024 / 1e6}' "/proc/$1/status"; }

# memory NAME BINARY: RSS 1 s after the first 200, and 1 s after every
# budget path at 256 connections for $seconds s each.
memory() {
  local name=$1 program=$2 idle after i server
  env SERVICE_NAME=service-a SERVER_PORT="$port" BIND_ADDRESS=127.0.0.1 PEER_URL=http://127.0.0.1:8202 \
    LOG_FORMAT=json RUST_LOG=info DRAIN_DELAY=0s SHUTDOWN_TIMEOUT=1s timeout 300 "$program" serve >/dev/null 2>&1 &
  pid=$!
  for ((i = 0; i < 100; i++)); do
    curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/service-a/healthcheck" && break
    sleep 0.1
  done
  sleep 1
  server=$(cut -d' ' -f1 "/proc/$pid/task/$pid/children") # the program `timeout` runs
  idle=$(rss_mb "$server")
  for path in status healthcheck; do
    timeout 60 wrk -t 2 -c 256 -d "${seconds}s" "http://127.0.0.1:$port/service-a/$path" >/dev/null
  done
  printf '\0\0\0\0\0' >"$out/empty.grpc"
  timeout 60 h2load -t 2 -c 256 -D "$seconds" -H 'content-type: application/grpc' -H 'te: trailers' \
    -d "$out/empty.grpc" "http://127.0.0.1:$port/scdemo.status.v1.StatusService/GetStatus" >/dev/null
  sleep 1
  after=$(rss_mb "$server")
  cleanup
  pid=""
  echo "$name: RSS idle $idle MB, after the load $after MB"
}

for variant in service-ab service-mimalloc; do
  mkdir -p "$out/$variant/raw"
  python3 bench/report.py record "$out/$variant/raw/results.jsonl" kind=meta mode=allocator-ab code="$variant"
  # The ceilings' answers are not needed: only the service's cases run.
  # BENCH_MEMORY_ONLY=yes: RSS and size only.
  [ "${BENCH_MEMORY_ONLY:-no}" = yes ] ||
    BENCH_SERVICE="$bin/$variant" BENCH_CEILINGS=no bash bench/instructions.sh --into "$out/$variant" | tail -3
  memory "$variant" "$bin/$variant" | tee -a "$out/memory.txt"
  strip -o "$out/$variant.stripped" "$bin/$variant"
  echo "$variant: stripped binary $(stat -c %s "$out/$variant.stripped") bytes" | tee -a "$out/memory.txt"
done
echo "results: $out"
