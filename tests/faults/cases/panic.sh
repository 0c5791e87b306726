#!/usr/bin/env bash
# Case panic: a handler panic must cost only that request (500 / INTERNAL,
# logged with its id), not the HTTP/2 connection carrying other callers'
# streams. The binary needs a way to make a handler panic; name it with
#   SCF_PANIC_ENV="NAME=VALUE"   the setting that enables it (if any)
#   SCF_PANIC_PATH=/path         the REST path (or gRPC method, with SCF_PANIC_GRPC=1) that panics
# Without them the case fails at once, saying so. Not in run.sh's default
# list until the binary has such a trigger. Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port=19801
if [ -z "${SCF_PANIC_PATH:-}" ]; then
  row "" "a panicking request gets 500/INTERNAL and its connection's other streams go on" \
    "not run: the binary has no way to make a handler panic (set SCF_PANIC_PATH and SCF_PANIC_ENV)" FAIL
  exit 0
fi
extra_env=()
[ -n "${SCF_PANIC_ENV:-}" ] && extra_env+=("$SCF_PANIC_ENV")
start_service a -- SERVICE_NAME=service-a SERVER_PORT=$port BIND_ADDRESS=$scf_host PEER_URL=http://$scf_host:19899 "${extra_env[@]}"
must_be_healthy a "http://$scf_host:$port/service-a/healthcheck"
grpc_flag=()
[ "${SCF_PANIC_GRPC:-}" = 1 ] && grpc_flag+=(--grpc)
python3 "$clients/panic_probe.py" $scf_host $port --path "$SCF_PANIC_PATH" --request-id scf-panic-1 "${grpc_flag[@]}" >"$case_dir/probe.json"
stop_service a
echo scf-panic-1 >"$case_dir/ids.txt"
facts="$case_dir/facts.json"
facts_merge "$facts" "$case_dir/probe.json" "{\"log\": $(log_scan "${service_log[a]}" --ids "$case_dir/ids.txt" --warn 'panic')}"
judge "" "the panicking request: 500 (or INTERNAL); the other streams on its connection keep getting messages; no GOAWAY; one access line with its id" \
  "$(jq -r '"status \(.status) grpc \(.grpc_code) reset \(.reset); streams progressed \(.streams_progressed)/\(.streams); GOAWAY \(.goaway.code // "none"); access lines for its id \(.log.ids_with_1_line)"' "$facts")" \
  "$facts" '.status == 500 or .grpc_code == "INTERNAL"' '.streams_progressed == .streams' '.goaway == null' \
  '.connection_closed | not' '.log.ids_with_1_line == 1'
