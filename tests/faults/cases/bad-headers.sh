#!/usr/bin/env bash
# Case bad-headers: oversize and malicious request ids and header lists sent
# to /service-a/other-status (over HTTP/1.1 and h2c) while another client
# runs a steady 32-connection load on the same path. The other callers must
# see no failure, service-a's one connection to service-b must never be torn
# down, and no bad id may be echoed, forwarded or logged raw. Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port_a=19301 port_b=19302
load_seconds=14

start_service b -- SERVICE_NAME=service-b SERVER_PORT=$port_b BIND_ADDRESS=$scf_host PEER_URL=http://$scf_host:$port_a
start_service a -- SERVICE_NAME=service-a SERVER_PORT=$port_a BIND_ADDRESS=$scf_host PEER_URL=http://$scf_host:$port_b
must_be_healthy b "http://$scf_host:$port_b/service-b/healthcheck"
must_be_healthy a "http://$scf_host:$port_a/service-a/healthcheck"
url="http://$scf_host:$port_a/service-a/other-status"
curl -s -o /dev/null "$url" # opens the peer connection
conns="$case_dir/peer-connections.txt"
sampler=$(conn_sampler "${service_pid[a]}" $port_b "$conns")

h2load_run --h1 -c 32 -D $load_seconds "$url" >"$case_dir/load.json" &
load=$!
sleep 1
python3 "$clients/bad_headers.py" $scf_host $port_a --path /service-a/other-status --rounds 8 \
  --forwarded "$case_dir/forwarded.txt" >"$case_dir/bad.json"
log "bad requests: $(cat "$case_dir/bad.json")"
wait "$load"
log "load: $(cat "$case_dir/load.json")"
kill "$sampler"

log_scan "${service_log[a]}" "${service_log[b]}" --marker scfbad >"$case_dir/logs.json"
log_scan "${service_log[b]}" --ids "$case_dir/forwarded.txt" >"$case_dir/b-ids.json"
facts="$case_dir/facts.json"
facts_merge "$facts" "{\"load\": $(cat "$case_dir/load.json"), \"bad\": $(cat "$case_dir/bad.json"),
  \"logs\": $(cat "$case_dir/logs.json"), \"b_ids\": $(cat "$case_dir/b-ids.json"),
  \"b_goaway_lines\": $(log_scan "${service_log[b]}" | jq .goaway_lines),
  \"peer\": $(conn_summary "$conns"), \"a_alive\": $(alive "${service_pid[a]}" && echo true || echo false)}"

judge others "h2load --h1 -c 32 on /service-a/other-status for ${load_seconds}s meanwhile: 0 failed, 0 errored, no non-2xx" \
  "$(jq -r '.load | "\(.succeeded)/\(.total) succeeded, \(.failed) failed, \(.errored) errored, \(.s4xx) 4xx, \(.s5xx) 5xx"' "$facts")" \
  "$facts" '.load.parsed' '.load.succeeded > 0' '.load.failed == 0' '.load.errored == 0' \
  '.load.s4xx == 0 and .load.s5xx == 0'
judge peer-connection "service-a's connection to service-b never torn down (one local port in every 200 ms sample); no GOAWAY in service-b's log" \
  "$(jq -r '.peer | "\(.samples) samples, at most \(.max_open) open, \(.distinct_ports) distinct local ports"' "$facts"), B GOAWAY lines $(jq .b_goaway_lines "$facts")" \
  "$facts" '.peer.samples >= 10' '.peer.distinct_ports == 1' '.peer.max_open == 1' '.b_goaway_lines == 0'
judge bad-requests "each bad request: no 5xx; an echoed x-request-id is never the bad one and always 1-128 visible ASCII; good ids echoed as sent" \
  "$(jq -r '.bad | "\(.requests) requests, 5xx \(.server_errors), echoed raw \(.echoed_raw), echoed invalid \(.echoed_invalid), good ids ok \(.good_ok)/\(.good_sent); \(.samples | to_entries | map("\(.key): \(.value)") | join("; "))"' "$facts")" \
  "$facts" '.bad.server_errors == 0' '.bad.echoed_raw == 0' '.bad.echoed_invalid == 0' '.bad.good_ok == .bad.good_sent' '.a_alive'
judge ids-forwarded-and-logged "no log line of A or B contains a bad id; every 200 answer's (fresh) id is the one service-b logged" \
  "$(jq -r '"lines with scfbad: \(.logs.markers.scfbad) \(.logs.marker_samples.scfbad // "" | .[0:100]); forwarded ids in B log: \(.b_ids.ids_with_1_line + .b_ids.ids_with_2_or_more)/\(.b_ids.ids) (missing e.g. \(.b_ids.ids_missing_sample[0:2]))"' "$facts")" \
  "$facts" '.logs.markers.scfbad == 0' '.b_ids.ids_with_0_lines == 0'
