#!/usr/bin/env bash
# Case rapid-reset: HEADERS + RST_STREAM in a loop on one connection
# (CVE-2023-44487) as raw frames in bursts of 500 streams, reconnecting after
# each GOAWAY for 6 s. Each of the attacker's connections must be ended by
# the server, the process's CPU stay bounded (measured without a CPU quota,
# so the cost shows), and other clients be served as usual. Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port=19401
cpu_bound=0.5 # cores, averaged over the attack

start_service a --cpu none -- SERVICE_NAME=service-a SERVER_PORT=$port BIND_ADDRESS=$scf_host PEER_URL=http://$scf_host:19499
pid=${service_pid[a]}
must_be_healthy a "http://$scf_host:$port/service-a/healthcheck"
polls="$case_dir/status.txt"
poller=$(health_poller "http://$scf_host:$port/service-a/status" "$polls")
sleep 0.5
cpu_before=$(cpu_seconds "$pid")
attack_start=$(now)
python3 "$clients/rapid_reset.py" $scf_host $port --path /service-a/status --seconds 6 >"$case_dir/attack.json"
attack_seconds=$(elapsed "$attack_start")
cpu_after=$(cpu_seconds "$pid")
sleep 1
kill "$poller"
log "attack: $(cat "$case_dir/attack.json")"

facts="$case_dir/facts.json"
facts_merge "$facts" "$case_dir/attack.json" "{\"cpu_cores\": $(python3 -c "print(round(($cpu_after - $cpu_before) / $attack_seconds, 3))"),
  \"bound\": $cpu_bound, \"others\": $(health_summary "$polls"), \"alive\": $(alive "$pid" && echo true || echo false)}"
judge attacker "every attacker connection ended by the server: GOAWAY (or a reset that can hide it); 6 s of raw bursts of 500 HEADERS + RST_STREAM, reconnecting" \
  "$(jq -r '"\(.connections) connections: \(.ended_by | to_entries | map("\(.key) \(.value)") | join(", ")); codes \(.goaway_codes | to_entries | map("\(.key) x\(.value)") | join(", ")); \(.streams_sent) streams, median \(.streams_before_goaway_median) per connection"' "$facts")" \
  "$facts" '.goaways >= 1' '(.ended_by.goaway // 0) + (.ended_by.closed // 0) >= .connections - 1'
judge cpu "process CPU < $cpu_bound core over the attack (no quota); alive" \
  "$(jq -r '"\(.cpu_cores) core over \(.seconds) s, alive \(.alive)"' "$facts")" \
  "$facts" '.cpu_cores < .bound' '.alive'
judge others "GET /service-a/status every 250 ms meanwhile: all 200 within 2 s" \
  "$(jq -r '.others | "\(.ok)/\(.probes) 200, slowest \(.max_s) s"' "$facts")" \
  "$facts" '.others.probes >= 5' '.others.ok == .others.probes' '.others.max_s < 2'
