#!/usr/bin/env bash
# Case slowloris: request heads that never finish, over HTTP/1.1 (partial
# headers) and HTTP/2 (HEADERS without END_HEADERS, CONTINUATION trickled).
# Every such connection must be closed within the configured header / idle
# timeouts (short here), while other clients are served as usual. Server
# keepalive pings are set long, so only the header and idle timeouts can
# close the connections. Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port=19201
header=2 idle=3          # seconds: HEADER_READ_TIMEOUT, CONNECTION_IDLE_TIMEOUT
bound=$((idle + 3))      # each slow connection closed this long after connect at most
deadline=12              # seconds the attacker waits for the server to close
connections=200          # per protocol

start_service a -- SERVICE_NAME=service-a SERVER_PORT=$port BIND_ADDRESS=$scf_host \
  PEER_URL=http://$scf_host:19299 HEADER_READ_TIMEOUT=${header}s CONNECTION_IDLE_TIMEOUT=${idle}s \
  FIRST_BYTE_TIMEOUT=1s HTTP2_KEEPALIVE_INTERVAL=60s
must_be_healthy a "http://$scf_host:$port/service-a/healthcheck"
polls="$case_dir/status.txt"
poller=$(health_poller "http://$scf_host:$port/service-a/status" "$polls")
python3 "$clients/slowloris.py" $scf_host $port --h1 $connections --h2 $connections \
  --trickle 0.5 --h2-trickle 2 --h2-frames 4 --deadline $deadline >"$case_dir/slowloris.json"
kill "$poller"
log "slowloris: $(cat "$case_dir/slowloris.json")"

facts="$case_dir/facts.json"
facts_merge "$facts" "$case_dir/slowloris.json" "{\"others\": $(health_summary "$polls"), \"bound\": $bound}"
for protocol in h1 h2; do
  what=$([ $protocol = h1 ] && echo "HTTP/1.1 partial headers, a header line every 0.5 s" ||
    echo "HTTP/2 HEADERS without END_HEADERS, 10 bytes of CONTINUATION every 2 s")
  judge "$protocol" "$connections x $what: all closed within ${bound} s (HEADER_READ_TIMEOUT ${header}s, CONNECTION_IDLE_TIMEOUT ${idle}s)" \
    "$(jq -r ".$protocol"' | "closed \(.closed_by_server)/\(.connections), slowest \(.close_s_max) s, server sent last: \(.server_sent_last | to_entries | map("\(.key) x\(.value)") | join(", "))"' "$facts")" \
    "$facts" ".$protocol.closed_by_server == .$protocol.connections" ".$protocol.close_s_max <= .bound" \
    '.client_errors == 0'
done
judge others "GET /service-a/status every 250 ms meanwhile: all 200 within 2 s" \
  "$(jq -r '.others | "\(.ok)/\(.probes) 200, slowest \(.max_s) s"' "$facts")" \
  "$facts" '.others.probes >= 10' '.others.ok == .others.probes' '.others.max_s < 2'
