#!/usr/bin/env bash
# Where the service's CPU goes on one case: builds the release binary with
# symbols (into target/profile, so the normal release build is untouched),
# runs the local pair, loads one path and samples it with perf (cpu-clock:
# this VM has no hardware counters), then prints the hottest functions and
# the share of the time under each of a few known frames.
#
#   bash bench/profile.sh [PATH] [SECONDS] [CONNS]
#       PATH     REST path (default /service-a/status) or a gRPC method
#                (GetStatus, GetPeerStatus: loaded with h2load)
#
# Writes target/profile/perf-<name>.data and .txt. Needs perf (linux-perf)
# and the local pair's ports 8201/8202 free.
set -euo pipefail
cd "$(dirname "$0")/.."
path=${1:-/service-a/status} seconds=${2:-10} conns=${3:-64}
out=target/profile
command -v perf >/dev/null || { apt-get install -y -qq linux-perf >/dev/null || exit 1; }

CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  timeout 3600 cargo build --release --locked -p status-services --target-dir "$out"
bin="$out/release/status-service"
for port in 8201 8202; do
  if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is busy" >&2; exit 1; fi
done
LOG_FORMAT=json RUST_LOG=info timeout $((seconds + 60)) "$bin" local >/dev/null 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf -o /dev/null http://127.0.0.1:8201/service-a/healthcheck && break
  sleep 0.1
done
pid=$(cut -d' ' -f1 "/proc/$server/task/$server/children")
name=$(tr -c 'A-Za-z0-9\n' '-' <<<"${path#/}")
data="$out/perf-$name.data"

case $path in
  /*) load=(timeout $((seconds + 30)) wrk -t 2 -c "$conns" -d "$((seconds + 2))s" "http://127.0.0.1:8201$path") ;;
  *)
    printf '\0\0\0\0\0' >"$out/empty.grpc"
    load=(timeout $((seconds + 30)) h2load -t 2 -c "$conns" -D "$((seconds + 2))" -H 'content-type: application/grpc'
      -H 'te: trailers' -d "$out/empty.grpc" "http://127.0.0.1:8201/scdemo.status.v1.StatusService/$path")
    ;;
esac
"${load[@]}" >"$out/load-$name.txt" 2>&1 &
loader=$!
sleep 1
perf record -q -e cpu-clock -F 2000 -g -p "$pid" -o "$data" -- sleep "$seconds" 2>/dev/null
wait "$loader" || true
grep -E 'Requests/sec|finished in' "$out/load-$name.txt" || true

perf report -i "$data" --no-children --sort symbol --stdio 2>/dev/null | grep -v '^#' | grep '%' | head -40 >"$out/perf-$name.txt"
echo "--- hottest functions (self time)"
cat "$out/perf-$name.txt"
echo "--- share of samples under these frames (children included)"
perf report -i "$data" --children --sort symbol --stdio -g none 2>/dev/null |
  grep -E 'JsonLines|line_queue|line_bytes|access_line|AccessLog|access_log|trace_context|request_id|tonic::transport::channel|Buffer|h2::|hyper::proto::h1|serde_json|emf::|tracing_subscriber|tracing_core|sys_write|syscall|__send|epoll|futex' |
  head -40
