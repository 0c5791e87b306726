#!/usr/bin/env bash
# What trace export costs a request, in user-space instructions (callgrind:
# deterministic, unlike CPU time on a shared machine): service-a's
# `/service-a/status` over HTTP/1.1 on one connection, N1 then N2 requests,
# (Ir(N2) - Ir(N1)) / (N2 - N1), for export off, on at
# parentbased_traceidratio 0.05, and on at 100%, exporting over OTLP/HTTP
# to the collector tests/traces/run.sh builds (it must have run once).
#
#   tests/traces/cost.sh [BINARY...]   (default target/release/status-service;
#                                       more binaries: their export-off cost too)
#
# Needs valgrind, h2load, curl. Uses 127.0.0.1 ports 24318 and 28301.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$root/target/traces-cost
collector=$root/target/traces-collector
n1=500 n2=2500
[ $# -gt 0 ] || set -- "$root/target/release/status-service"
[ -x "$collector" ] || { echo "cost: run tests/traces/run.sh first (it builds $collector)" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"

cat >"$work/collector.yaml" <<'EOF'
receivers:
  otlp:
    protocols:
      http: {endpoint: 127.0.0.1:24318}
processors:
  batch: {}
exporters:
  debug: {verbosity: basic}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [debug]}
EOF
"$collector" --config "file:$work/collector.yaml" >"$work/collector.log" 2>&1 &
collector_pid=$!
trap 'kill "$collector_pid" 2>/dev/null || true' EXIT

# ir BINARY N LOG VAR=VALUE...: instructions of a run answering N requests.
ir() {
  local binary=$1 n=$2 log=$3 vg i
  shift 3
  env SERVICE_NAME=service-a SERVER_PORT=28301 PEER_URL=http://127.0.0.1:28302 DRAIN_DELAY=0s "$@" \
    timeout 600 valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out" "$binary" serve \
    >"$work/$log" 2>"$work/valgrind.stderr" &
  vg=$!
  for ((i = 0; i < 1200; i++)); do
    grep -q '"message":"serving"' "$work/$log" 2>/dev/null && break
    kill -0 "$vg" 2>/dev/null || { echo "cost: the server exited: $(tail -3 "$work/valgrind.stderr")" >&2; exit 1; }
    sleep 0.1
  done
  timeout 300 h2load --h1 -n "$n" -c 1 -m 1 "http://127.0.0.1:28301/service-a/status" >"$work/load.txt" 2>&1
  grep -q "$n succeeded" "$work/load.txt" || { echo "cost: requests failed: $(tail -3 "$work/load.txt")" >&2; exit 1; }
  kill -INT "$vg"
  wait "$vg" || true
  awk '/^(summary|totals):/ {total = $2} END {print total}' "$work/callgrind.out"
}

# per_request NAME BINARY VAR=VALUE...
per_request() {
  local name=$1 binary=$2 log first second dropped
  shift 2
  log=${name//[^a-zA-Z0-9]/_}
  first=$(ir "$binary" "$n1" "$log-1.log" "$@")
  second=$(ir "$binary" "$n2" "$log-2.log" "$@")
  dropped=$(grep -o '"dropped_total":[0-9]*' "$work/$log-2.log" | tail -1 | cut -d: -f2 || true)
  printf '%-34s %8d instructions/request  (spans dropped: %s)\n' \
    "$name" $(((second - first) / (n2 - n1))) "${dropped:-n/a}"
}

endpoint=OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:24318
for binary in "$@"; do
  per_request "off: $binary" "$binary"
done
per_request "on, parentbased_traceidratio 0.05" "$1" "$endpoint" \
  OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.05
per_request "on, 100% (parentbased_always_on)" "$1" "$endpoint"
