#!/usr/bin/env bash
# Where the two-hop front's instructions go, function by function, against
# the bare two-hop's front: service-a and ceiling-two-hop, each alone under
# callgrind (their backs, service-b and ceiling-tonic, run outside it), the
# same REST or gRPC call on one connection. Counters are zeroed after a
# warm-up and dumped after N calls, so start-up is not in the figures.
# Prints instructions per call, by function (self cost), largest gap first.
#
#   bash bench/front-diff.sh [other-status|GetPeerStatus] [N]
#
# Builds the binaries with symbols into target/profile (like profile.sh).
# Needs valgrind, h2load, curl and ports 18801-18805 free; writes
# target/profile/front-diff/.
set -euo pipefail
cd "$(dirname "$0")/.."
call=${1:-other-status} calls=${2:-2000}
out=target/profile/front-diff
mkdir -p "$out"
CARGO_PROFILE_RELEASE_STRIP=none CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  timeout 3600 cargo build --release --locked -p status-services -p bench --target-dir target/profile
bin=target/profile/release
for port in 18801 18802 18803 18804 18805; do
  if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "port $port is busy" >&2; exit 1; fi
done
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT
callgrind=(valgrind --tool=callgrind --compress-strings=no --compress-pos=no)
common=(LOG_FORMAT=json RUST_LOG=info DRAIN_DELAY=0s SHUTDOWN_TIMEOUT=1s BIND_ADDRESS=127.0.0.1)
rm -f "$out"/*.out*
env "${common[@]}" SERVICE_NAME=service-b SERVER_PORT=18802 PEER_URL=http://127.0.0.1:18801 \
  timeout 900 "$bin/status-service" serve >/dev/null 2>&1 &
pids+=($!)
env "${common[@]}" SERVICE_NAME=service-a SERVER_PORT=18801 PEER_URL=http://127.0.0.1:18802 \
  timeout 900 "${callgrind[@]}" --callgrind-out-file="$out/service.out" "$bin/status-service" serve \
  >/dev/null 2>"$out/service.valgrind" &
pids+=($!) service=$!
grpc_url() { echo "http://127.0.0.1:$1/scdemo.status.v1.StatusService/$2"; }
printf '\0\0\0\0\0' >"$out/empty.grpc"
grpc=(-H 'content-type: application/grpc' -H 'te: trailers' -d "$out/empty.grpc")
for _ in $(seq 120); do
  curl -sf -o /dev/null http://127.0.0.1:18802/service-b/healthcheck &&
    curl -sf -o /dev/null http://127.0.0.1:18801/service-a/healthcheck && break
  sleep 0.5
done
# The bare back answers service-b's own GetStatus message.
curl -sSf -o "$out/getstatus.grpc" --http2-prior-knowledge -X POST "${grpc[@]::4}" \
  --data-binary "@$out/empty.grpc" "$(grpc_url 18802 GetStatus)"
timeout 900 "$bin/ceiling-tonic" 18803 "$out/getstatus.grpc" >/dev/null 2>&1 &
pids+=($!)
timeout 900 "${callgrind[@]}" --callgrind-out-file="$out/bare.out" "$bin/ceiling-two-hop" 18804 18805 \
  http://127.0.0.1:18803 tonic >/dev/null 2>"$out/bare.valgrind" &
pids+=($!) bare=$!
for _ in $(seq 120); do
  curl -sf -o /dev/null http://127.0.0.1:18804/service-a/other-status && break
  sleep 0.5
done
load() { # REST_PORT GRPC_PORT COUNT
  case $call in
    other-status) h2load --h1 -n "$3" -c 1 -m 1 "http://127.0.0.1:$1/service-a/other-status" ;;
    *) h2load -n "$3" -c 1 -m 1 "${grpc[@]}" "$(grpc_url "$2" "$call")" ;;
  esac | grep -E '^requests:'
}
measure() { # NAME TIMEOUT_PID REST_PORT GRPC_PORT (valgrind runs as timeout's child)
  set -- "$1" "$(cut -d' ' -f1 "/proc/$2/task/$2/children")" "$3" "$4"
  load "$3" "$4" 300 >/dev/null
  callgrind_control -z "$2" >/dev/null
  echo "$1: $(load "$3" "$4" "$calls")"
  callgrind_control -d "$1" "$2" >/dev/null
  # The dump is written when the process next runs: wait for it.
  for _ in $(seq 120); do
    [ -s "$out/$1.out.1" ] && return 0
    sleep 0.5
  done
  echo "no callgrind dump from $1" >&2
  return 1
}
measure service "$service" 18801 18801
measure bare "$bare" 18804 18805
python3 bench/callgrind_diff.py "$out"/service.out.1 "$out"/bare.out.1 "$calls" | tee "$out/diff-$call.txt"
