#!/usr/bin/env bash
# The two-hop throughput gap beyond instructions: `/service-a/other-status`
# under `wrk -c64` against the local pair (both services in one process),
# two `serve` processes, and the bare two-hop (ceiling-two-hop in front of
# ceiling-tonic), interleaved. Per target and run: req/s, the servers' CPU
# time per request, and their system calls and context switches per request
# (`perf stat`), to tell kernel work and process layout from user-space cost.
#
#   bash bench/two-hop-layout.sh [SECONDS] [REPS]      (defaults 6 and 3)
#
# Needs perf, wrk, curl, the release binaries (it builds them), ports 8201,
# 8202 and 18811-18815 free. Prints one line per target and run.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-6} reps=${2:-3}
cargo build --release --locked -p status-services -p bench >/dev/null 2>&1
bin=target/release out=target/two-hop-layout
mkdir -p "$out"
for port in 8201 8202 18811 18812 18813 18814 18815; do
  if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is busy" >&2; exit 1; fi
done
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
limit=$((reps * 3 * (seconds + 5) + 120)) # seconds: every server is killed after this at the latest
common=(LOG_FORMAT=json RUST_LOG=info DRAIN_DELAY=0s SHUTDOWN_TIMEOUT=1s BIND_ADDRESS=127.0.0.1)
# start COMMAND...: runs it in the background; its pid (timeout's child) in $started.
start() {
  timeout "$limit" "$@" >/dev/null 2>&1 &
  pids+=($!)
  sleep 0.3
  started=$(cut -d' ' -f1 "/proc/$!/task/$!/children")
}
wait_for() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
start env LOG_FORMAT=json RUST_LOG=info "$bin/status-service" local
local_pid=$started
start env "${common[@]}" SERVICE_NAME=service-b SERVER_PORT=18812 PEER_URL=http://127.0.0.1:18811 "$bin/status-service" serve
b_pid=$started
start env "${common[@]}" SERVICE_NAME=service-a SERVER_PORT=18811 PEER_URL=http://127.0.0.1:18812 "$bin/status-service" serve
a_pid=$started
wait_for http://127.0.0.1:18812/service-b/healthcheck
# The bare back answers service-b's own GetStatus message.
printf '\0\0\0\0\0' >"$out/empty.grpc"
curl -sSf -o "$out/getstatus.grpc" --http2-prior-knowledge -X POST -H 'content-type: application/grpc' \
  -H 'te: trailers' --data-binary "@$out/empty.grpc" http://127.0.0.1:18812/scdemo.status.v1.StatusService/GetStatus
start "$bin/ceiling-tonic" 18813 "$out/getstatus.grpc"
back_pid=$started
start "$bin/ceiling-two-hop" 18814 18815 http://127.0.0.1:18813 tonic
front_pid=$started
for url in http://127.0.0.1:8201 http://127.0.0.1:18811 http://127.0.0.1:18814; do
  wait_for "$url/service-a/other-status"
done
ticks() { local total=0 pid; for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$total"; }
run() { # NAME PORT PIDS...
  local name=$1 port=$2 before requests
  shift 2
  before=$(ticks "$@")
  perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$(IFS=,; echo "$*")" \
    -o "$out/$name.stat" -- sleep "$((seconds + 1))" &
  requests=$(wrk -t 2 -c 64 -d "${seconds}s" --timeout 5s "http://127.0.0.1:$port/service-a/other-status" |
    awk '/requests in/ {print $1}')
  wait $!
  awk -F, -v name="$name" -v n="$requests" -v s="$seconds" -v cpu="$(($(ticks "$@") - before))" -v hz="$(getconf CLK_TCK)" '
    $3 ~ /sys_enter/ { sys = $1 } $3 ~ /context-switches/ { cs = $1 }
    END { printf "%-11s %8.0f req/s  CPU %6.1f us/request  %5.2f syscalls  %5.2f context switches per request\n",
      name, n / s, cpu * 1e6 / hz / n, sys / n, cs / n }' "$out/$name.stat"
}
for ((rep = 1; rep <= reps; rep++)); do
  run local-pair 8201 "$local_pid"
  run serve-pair 18811 "$a_pid" "$b_pid"
  run bare-pair 18814 "$front_pid" "$back_pid"
done
