#!/usr/bin/env bash
# Trace export against a real OpenTelemetry Collector (issue 19): builds the
# collector in tests/traces/collector from the Go module proxy (OTLP
# receiver, debug and file exporters), runs service-a exporting over
# OTLP/HTTP (protobuf) and service-b over OTLP/gRPC, sends requests, and
# checks what the collector received (tests/traces/check.py):
#   - one trace holding A's SERVER span, A's CLIENT span and B's SERVER span
#     with the right parents, attributes and resources (ECS task from a
#     stand-in task metadata endpoint);
#   - gRPC and WatchStatus (one span for the stream's life) SERVER spans;
#   - an unsampled request exports nothing; OTEL_TRACES_EXPORTER=none and
#     OTEL_SDK_DISABLED=true turn export off;
#   - the peer down: an error trace, the CLIENT span UNAVAILABLE (14);
#   - the collector down: requests unaffected, dropped spans counted and
#     logged, and the stop still within SHUTDOWN_TIMEOUT.
#
#   tests/traces/run.sh        (TRACES_BINARY overrides target/release/status-service)
#
# Needs go, python3, curl and grpcurl. Uses 127.0.0.1 ports 24317, 24318
# (collector), 28201, 28202 (services) and 28210 (task metadata). Files of
# the last run stay in target/traces/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
binary=${TRACES_BINARY:-$root/target/release/status-service}
work=$root/target/traces

die() { echo "traces: $*" >&2; exit 1; }
[ -x "$binary" ] || die "no binary at $binary (cargo build --release --locked -p status-services)"
for tool in go python3 curl grpcurl; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

collector=$(bash "$here/build-collector.sh")
rm -rf "$work"
mkdir -p "$work/ecs"

start_collector() {
  cat >"$work/collector.yaml" <<EOF
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:24317}
      http: {endpoint: 127.0.0.1:24318}
processors:
  batch: {timeout: 200ms}
exporters:
  debug: {verbosity: detailed}
  file: {path: $work/spans.jsonl, flush_interval: 100ms}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [debug, file]}
EOF
  "$collector" --config "file:$work/collector.yaml" >"$work/collector.log" 2>&1 &
  collector_pid=$!
  pids+=("$collector_pid")
  for _ in $(seq 100); do
    grep -q "Everything is ready" "$work/collector.log" && return 0
    sleep 0.1
  done
  die "the collector did not start: $(tail -5 "$work/collector.log")"
}

# The ECS task metadata endpoint's stand-in: GET /task.
cat >"$work/ecs/task" <<'EOF'
{"Cluster": "arn:aws:ecs:us-east-2:111122223333:cluster/demo",
 "TaskARN": "arn:aws:ecs:us-east-2:111122223333:task/demo/0123456789abcdef",
 "AvailabilityZone": "us-east-2b", "LaunchType": "FARGATE"}
EOF
python3 -m http.server 28210 --bind 127.0.0.1 --directory "$work/ecs" >"$work/ecs.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf -o /dev/null http://127.0.0.1:28210/task && break
  sleep 0.1
done

# start NAME PORT PEER_PORT LOG [VAR=VALUE...]: one service, until SERVING.
start() {
  local name=$1 port=$2 peer=$3 log=$4
  shift 4
  env SERVICE_NAME="$name" SERVER_PORT="$port" PEER_URL="http://127.0.0.1:$peer" \
    DRAIN_DELAY=0s SHUTDOWN_TIMEOUT=3s OTEL_BSP_SCHEDULE_DELAY=200 \
    ECS_CONTAINER_METADATA_URI_V4=http://127.0.0.1:28210 "$@" \
    "$binary" serve >"$work/$log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
  for _ in $(seq 150); do
    grep -q '"message":"serving"' "$work/$log" && return 0
    sleep 0.1
  done
  die "$name did not start: $(tail -5 "$work/$log")"
}

# stop PID: SIGINT, and the seconds it took to exit (polled: `stop` runs
# in a command substitution, which cannot `wait` for its parent's child).
stop() {
  local started
  started=$(date +%s.%N)
  kill -INT "$1"
  while kill -0 "$1" 2>/dev/null; do sleep 0.02; done
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$started" "$(date +%s.%N)"
}

tp() { echo "00-$1-00f067aa0ba902b7-$2"; }
rest() { curl -s -o /dev/null -w '%{http_code}' -H "traceparent: $(tp "$1" "$2")" "http://127.0.0.1:28201/service-a/other-status"; }

a_http=(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:24318/v1/traces)
b_grpc=(OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:24317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc)
T_REST=4bf92f3577b34da6a3ce929d0e0e0001
T_UNSAMPLED=4bf92f3577b34da6a3ce929d0e0e0002
T_GRPC=4bf92f3577b34da6a3ce929d0e0e0003
T_WATCH=4bf92f3577b34da6a3ce929d0e0e0004
T_B_NONE=4bf92f3577b34da6a3ce929d0e0e0005
T_B_DISABLED=4bf92f3577b34da6a3ce929d0e0e0006
T_PEER_DOWN=4bf92f3577b34da6a3ce929d0e0e0007
T_COLLECTOR_DOWN=4bf92f3577b34da6a3ce929d0e0e0008
{
  echo "T_REST=$T_REST"
  echo "T_UNSAMPLED=$T_UNSAMPLED"
  echo "T_GRPC=$T_GRPC"
  echo "T_WATCH=$T_WATCH"
  echo "T_B_NONE=$T_B_NONE"
  echo "T_B_DISABLED=$T_B_DISABLED"
  echo "T_PEER_DOWN=$T_PEER_DOWN"
  echo "T_COLLECTOR_DOWN=$T_COLLECTOR_DOWN"
} >"$work/traces.env"

echo "traces: collector up; service-a over OTLP/HTTP, service-b over OTLP/gRPC"
start_collector
start service-a 28201 28202 a.log "${a_http[@]}"
a_pid=$last_pid
start service-b 28202 28201 b.log "${b_grpc[@]}"
b_pid=$last_pid
echo "rest_sampled $(rest "$T_REST" 01)" >>"$work/answers"
echo "rest_unsampled $(rest "$T_UNSAMPLED" 00)" >>"$work/answers"
# -rpc-header: on the call only, not on grpcurl's reflection requests.
grpcurl -plaintext -rpc-header "traceparent: $(tp "$T_GRPC" 01)" \
  127.0.0.1:28201 scdemo.status.v1.StatusService/GetPeerStatus >"$work/grpc.out"
# A stream watched for ~1.5 s, then cancelled by the client.
grpcurl -plaintext -max-time 1.5 -d '{"interval": "0.2s"}' -rpc-header "traceparent: $(tp "$T_WATCH" 01)" \
  127.0.0.1:28201 scdemo.status.v1.StatusService/WatchStatus >"$work/watch.out" 2>&1 || true
echo "b_stop_seconds $(stop "$b_pid")" >>"$work/answers"

start service-b 28202 28201 b-none.log "${b_grpc[@]}" OTEL_TRACES_EXPORTER=none
b_pid=$last_pid
echo "rest_b_none $(rest "$T_B_NONE" 01)" >>"$work/answers"
stop "$b_pid" >/dev/null
start service-b 28202 28201 b-disabled.log "${b_grpc[@]}" OTEL_SDK_DISABLED=true
b_pid=$last_pid
echo "rest_b_disabled $(rest "$T_B_DISABLED" 01)" >>"$work/answers"
stop "$b_pid" >/dev/null

echo "traces: the peer down"
echo "rest_peer_down $(rest "$T_PEER_DOWN" 01)" >>"$work/answers"
echo "a_stop_seconds $(stop "$a_pid")" >>"$work/answers"
# The file exporter flushes every 100 ms; the collector's own stop flushes too.
sleep 1
kill -TERM "$collector_pid"
wait "$collector_pid" 2>/dev/null || true

echo "traces: the collector down, a small queue (OTEL_BSP_MAX_QUEUE_SIZE=16)"
start service-a 28201 28202 a-down.log "${a_http[@]}" OTEL_BSP_MAX_QUEUE_SIZE=16
a_pid=$last_pid
start service-b 28202 28201 b-down.log "${b_grpc[@]}" OTEL_BSP_MAX_QUEUE_SIZE=16
b_pid=$last_pid
urls=()
for _ in $(seq 200); do urls+=(-o /dev/null "http://127.0.0.1:28201/service-a/other-status"); done
curl -s -w '%{http_code} %{time_total}\n' \
  -H "traceparent: $(tp "$T_COLLECTOR_DOWN" 01)" "${urls[@]}" >"$work/collector-down.out"
echo "a_down_stop_seconds $(stop "$a_pid")" >>"$work/answers"
echo "b_down_stop_seconds $(stop "$b_pid")" >>"$work/answers"

python3 "$here/check.py" "$work"
