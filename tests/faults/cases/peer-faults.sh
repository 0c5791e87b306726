#!/usr/bin/env bash
# Case peer-faults: service-b in a network namespace behind a veth, each in
# its 0.25 vCPU task, broken in every way a peer breaks while service-a is
# called: killed mid-load (fast 503 / UNAVAILABLE, never 500 / UNKNOWN),
# SIGSTOPped (504 within PEER_REQUEST_TIMEOUT; a caller's 300m grpc-timeout
# gets DEADLINE_EXCEEDED within 350 ms, every time), packets dropped on an
# idle then a busy connection (504 within the deadline, then fast 503 once
# keepalive notices), latency above the deadline; after each, the first 200
# within 1 s of the peer's return. Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port_a=19601 port_b=19602 port_proxy=19603 port_a2=19604 port_a3=19605
deadline=1 connect=0.5 keepalive=1 # seconds: PEER_REQUEST_TIMEOUT, PEER_CONNECT_TIMEOUT, PEER_KEEPALIVE_INTERVAL
deadline_runs=20                   # calls with grpc-timeout 300m to a hung peer
peer_settings=("PEER_REQUEST_TIMEOUT=${deadline}s" PEER_CONNECT_TIMEOUT=500ms "PEER_KEEPALIVE_INTERVAL=${keepalive}s")

peer_netns_up
generation=0
# start_peer: a new service-b process in the namespace; its label is $peer.
start_peer() {
  generation=$((generation + 1))
  peer=b$generation
  start_service $peer --netns "$peer_ns" -- SERVICE_NAME=service-b SERVER_PORT=$port_b BIND_ADDRESS=$peer_ns_ip \
    PEER_URL=http://$peer_host_ip:19699
}
# wait_peer_ready: until service-b answers its health check; prints the epoch.
wait_peer_ready() {
  wait_healthy "http://$peer_ns_ip:$port_b/service-b/healthcheck" 10 || true
  now
}
probe() { python3 "$clients/probe.py" $scf_host "${probe_port:-$port_a}" "$@"; }
windows() { python3 "$clients/windows.py" "$@"; }

start_peer
start_service a -- SERVICE_NAME=service-a SERVER_PORT=$port_a BIND_ADDRESS=$scf_host \
  PEER_URL=http://$peer_ns_ip:$port_b "${peer_settings[@]}"
# The 300m-deadline calls go through a service-a whose keepalive is long, so
# that only the deadline can end them (a keepalive closing the connection to
# a hung peer mid-call rightly gives UNAVAILABLE).
start_service a3 -- SERVICE_NAME=service-a SERVER_PORT=$port_a3 BIND_ADDRESS=$scf_host \
  PEER_URL=http://$peer_ns_ip:$port_b PEER_REQUEST_TIMEOUT=${deadline}s PEER_KEEPALIVE_INTERVAL=60s
must_be_healthy $peer "http://$peer_ns_ip:$port_b/service-b/healthcheck"
must_be_healthy a "http://$scf_host:$port_a/service-a/healthcheck"
must_be_healthy a3 "http://$scf_host:$port_a3/service-a/healthcheck"
curl -s -o /dev/null "http://$scf_host:$port_a/service-a/other-status"

# --- killed mid-load, twice; restarted ----------------------------------------
for cycle in 1 2; do
  probe --mode rest --workers 24 --seconds 6 --id-prefix scf-kill-rest-$cycle >"$case_dir/kill-rest-$cycle.json" &
  rest_probe=$!
  probe --mode grpc --workers 12 --seconds 6 --id-prefix scf-kill-grpc-$cycle >"$case_dir/kill-grpc-$cycle.json" &
  grpc_probe=$!
  sleep 1.5
  killed_at=$(now)
  kill -KILL "${service_pid[$peer]}"
  wait "${service_pid[$peer]}" 2>/dev/null || true
  sleep 2
  start_peer
  ready_at=$(wait_peer_ready)
  wait $rest_probe $grpc_probe
  windows "$case_dir/kill-rest-$cycle.json" --since "$killed_at" --until "$ready_at" >"$case_dir/kill-rest-$cycle.down.json"
  windows "$case_dir/kill-grpc-$cycle.json" --since "$killed_at" --until "$ready_at" >"$case_dir/kill-grpc-$cycle.down.json"
  windows "$case_dir/kill-rest-$cycle.json" --since "$ready_at" >"$case_dir/kill-rest-$cycle.back.json"
  windows "$case_dir/kill-grpc-$cycle.json" --since "$ready_at" >"$case_dir/kill-grpc-$cycle.back.json"
done
facts="$case_dir/killed.facts.json"
facts_merge "$facts" "{\"rest\": $(jq -s '{outcomes: (map(.outcomes | to_entries[]) | group_by(.key) | map({key: .[0].key, value: (map(.value) | add)}) | from_entries), max_503: (map(.max_s["503"] // 0) | max)}' "$case_dir"/kill-rest-?.down.json),
  \"grpc\": $(jq -s '{outcomes: (map(.outcomes | to_entries[]) | group_by(.key) | map({key: .[0].key, value: (map(.value) | add)}) | from_entries), max_unavailable: (map(.max_s.UNAVAILABLE // 0) | max)}' "$case_dir"/kill-grpc-?.down.json),
  \"first_200\": $(jq -s 'map(.first_end["200"] // 99) | max' "$case_dir"/kill-rest-?.back.json),
  \"first_ok\": $(jq -s 'map(.first_end.OK // 99) | max' "$case_dir"/kill-grpc-?.back.json)}"
judge killed "peer kill -9 under 24 REST + 12 gRPC callers (twice): only 200/503 and OK/UNAVAILABLE until it is back, 503 within 1 s" \
  "$(jq -r '"REST \(.rest.outcomes) slowest 503 \(.rest.max_503) s; gRPC \(.grpc.outcomes) slowest UNAVAILABLE \(.grpc.max_unavailable) s"' "$facts")" \
  "$facts" '(.rest.outcomes | keys - ["200", "503"]) == []' '(.rest.outcomes["503"] // 0) >= 1' \
  '(.grpc.outcomes | keys - ["OK", "UNAVAILABLE"]) == []' '.rest.max_503 <= 1' '.grpc.max_unavailable <= 1'
judge killed-recovery "first 200 / OK within 1 s of the restarted peer's first SERVING health check" \
  "$(jq -r '"REST first 200 after \(.first_200) s, gRPC first OK after \(.first_ok) s (worst of 2 restarts)"' "$facts")" \
  "$facts" '.first_200 <= 1' '.first_ok <= 1'

# --- SIGSTOP: hung peer ----------------------------------------------------------
curl -s -o /dev/null "http://$scf_host:$port_a/service-a/other-status"
curl -s -o /dev/null "http://$scf_host:$port_a3/service-a/other-status"
kill -STOP "${service_pid[$peer]}"
stopped_at=$(now)
probe --mode rest --count 5 --id-prefix scf-stop-rest >"$case_dir/stop-rest.json"
probe_port=$port_a3 probe --mode deadline --count $deadline_runs --grpc-timeout 300m --id-prefix scf-deadline >"$case_dir/deadline.json"
for i in 1 2 3 4 5; do
  curl -s -o /dev/null --max-time 0.3 -H "x-request-id: scf-abandon-$i" "http://$scf_host:$port_a/service-a/other-status" || true
  echo "scf-abandon-$i" >>"$case_dir/access-ids.txt"
done
jq -r '.records[][3]' "$case_dir/deadline.json" >"$case_dir/deadline-ids.txt"
probe --mode rest --interval 0.05 --seconds 3 --id-prefix scf-cont >"$case_dir/cont.json" &
cont_probe=$!
sleep 0.5
continued_at=$(now)
kill -CONT "${service_pid[$peer]}"
wait $cont_probe
windows "$case_dir/stop-rest.json" --since "$stopped_at" >"$case_dir/stop-rest.window.json"
windows "$case_dir/deadline.json" --since "$stopped_at" >"$case_dir/deadline.window.json"
windows "$case_dir/cont.json" --since "$continued_at" >"$case_dir/cont.window.json"
facts="$case_dir/stopped.facts.json"
facts_merge "$facts" "{\"rest\": $(cat "$case_dir/stop-rest.window.json"), \"deadline\": $(cat "$case_dir/deadline.window.json"),
  \"back\": $(cat "$case_dir/cont.window.json"), \"runs\": $deadline_runs, \"peer_deadline\": $deadline, \"connect\": $connect}"
judge sigstop "peer SIGSTOPped: GET /other-status gets 504 within PEER_REQUEST_TIMEOUT ${deadline}s + 0.5 s, or 503 within it when the keepalive drops the connection mid-call (5 calls; PEER_KEEPALIVE_INTERVAL ${keepalive}s)" \
  "$(jq -r '.rest | "\(.outcomes), slowest \(.max_s | to_entries | map("\(.key) \(.value) s") | join(", "))"' "$facts")" \
  "$facts" '.rest.calls == 5' '(.rest.outcomes | keys - ["503", "504"]) == []' '(.rest.outcomes["504"] // 0) >= 1' \
  '([.rest.max_s[]] | max) <= .peer_deadline + 0.5'
judge sigstop-deadline-300m "GetPeerStatus with grpc-timeout 300m to the hung peer (keepalive 60s): DEADLINE_EXCEEDED within 350 ms in every one of $deadline_runs runs" \
  "$(jq -r '.deadline | "\(.outcomes), slowest \(.max_s | to_entries | map("\(.key) \(.value * 1000 | floor) ms") | join(", "))"' "$facts")" \
  "$facts" '.deadline.outcomes == {"DEADLINE_EXCEEDED": .runs}' '.deadline.max_s.DEADLINE_EXCEEDED <= 0.35'
judge sigstop-recovery "first 200 within 1 s of SIGCONT" \
  "$(jq -r '.back | "first 200 after \(.first_end["200"] // "never") s; \(.outcomes)"' "$facts")" \
  "$facts" '(.back.first_end["200"] // 99) <= 1'

# --- packets dropped: on an idle connection, then on a busy one ------------------
idle_wait=$((2 * keepalive + 1))
curl -s -o /dev/null "http://$scf_host:$port_a/service-a/other-status"
sleep 0.5
dropped_at=$(now)
peer_drop "$peer_ns" $port_b on
sleep $idle_wait
probe --mode rest --interval 0.2 --seconds 4 --id-prefix scf-drop-idle >"$case_dir/drop-idle.json"
probe --mode rest --interval 0.05 --seconds 3 --id-prefix scf-undrop-idle >"$case_dir/undrop-idle.json" &
back_probe=$!
sleep 0.5
undropped_at=$(now)
peer_drop "$peer_ns" $port_b off
wait $back_probe
windows "$case_dir/drop-idle.json" --since "$dropped_at" >"$case_dir/drop-idle.window.json"
windows "$case_dir/undrop-idle.json" --since "$undropped_at" >"$case_dir/undrop-idle.window.json"

probe --mode rest --workers 8 --seconds 8 --id-prefix scf-drop-busy >"$case_dir/drop-busy.json" &
busy_probe=$!
sleep 1.5
busy_dropped_at=$(now)
peer_drop "$peer_ns" $port_b on
sleep 4.5
busy_undropped_at=$(now)
peer_drop "$peer_ns" $port_b off
wait $busy_probe
windows "$case_dir/drop-busy.json" --since "$busy_dropped_at" --until "$busy_undropped_at" >"$case_dir/drop-busy.window.json"
windows "$case_dir/drop-busy.json" --since "$busy_undropped_at" >"$case_dir/undrop-busy.window.json"

facts="$case_dir/dropped.facts.json"
facts_merge "$facts" "{\"idle\": $(cat "$case_dir/drop-idle.window.json"), \"idle_back\": $(cat "$case_dir/undrop-idle.window.json"),
  \"busy\": $(cat "$case_dir/drop-busy.window.json"), \"busy_back\": $(cat "$case_dir/undrop-busy.window.json"),
  \"idle_wait\": $idle_wait, \"keepalive\": $keepalive, \"deadline\": $deadline, \"connect\": $connect}"
judge drop-idle "DROP on the idle peer connection, calls from ${idle_wait} s later (2 x PEER_KEEPALIVE_INTERVAL + 1 s): the keepalive has found the dead connection by then, so every call is a fast 503 (<= PEER_CONNECT_TIMEOUT + 0.3 s)" \
  "$(jq -r '.idle | "\(.outcomes), slowest \(.max_s | to_entries | map("\(.key) \(.value) s") | join(", ")), first 503 at \(.first_end["503"] // "never") s after the drop"' "$facts")" \
  "$facts" '.idle.calls >= 3' '(.idle.outcomes | keys) == ["503"]' '.idle.max_s["503"] <= .connect + 0.3'
judge drop-busy "DROP under 8 busy callers: every call answered within ${deadline} s + 0.5 with 504 or 503 (or 200 once the rule is gone); first 503 within 2 x keepalive + deadline + 1 s of the drop; once keepalive has noticed, calls fail fast: no 504 started more than 1 s after the first 503" \
  "$(jq -r '.busy | "\(.outcomes), slowest \(.max_s | to_entries | map("\(.key) \(.value) s") | join(", ")), first 503 at \(.first_end["503"] // "never") s, last 504 started at \(.last_start["504"] // "none") s"' "$facts")" \
  "$facts" '(.busy.outcomes | keys - ["503", "504", "200"]) == []' '([.busy.max_s[]] | max) <= .deadline + 0.5' \
  '(.busy.first_end["503"] // 99) <= 2 * .keepalive + .deadline + 1' \
  '(.busy.last_start["504"] // 0) <= (.busy.first_end["503"] // 99) + 1'
judge drop-recovery "first 200 within 1 s of the DROP rule's removal (idle, then busy)" \
  "$(jq -r '"idle: \(.idle_back.first_end["200"] // "never") s, busy: \(.busy_back.first_end["200"] // "never") s"' "$facts")" \
  "$facts" '(.idle_back.first_end["200"] // 99) <= 1' '(.busy_back.first_end["200"] // 99) <= 1'

# --- latency above the deadline ---------------------------------------------------
if netem_available "$peer_ns" "$peer_ns_link"; then
  how="tc netem delay 2500ms on the peer's link"
  ip netns exec "$peer_ns" tc qdisc add dev "$peer_ns_link" root netem delay 2500ms
  probe_port=$port_a
else
  how="a proxy delaying each direction 1.2 s (no netem in this kernel)"
  ip netns exec "$peer_ns" python3 "$clients/latency_proxy.py" $peer_ns_ip $port_proxy $peer_ns_ip $port_b --delay 1.2 \
    >"$case_dir/proxy.log" 2>&1 &
  remember pid $!
  start_service a2 -- SERVICE_NAME=service-a SERVER_PORT=$port_a2 BIND_ADDRESS=$scf_host \
    PEER_URL=http://$peer_ns_ip:$port_proxy "${peer_settings[@]}"
  must_be_healthy a2 "http://$scf_host:$port_a2/service-a/healthcheck"
  probe_port=$port_a2
fi
slow_at=$(now)
probe --mode rest --workers 4 --seconds 4 --id-prefix scf-slow-rest >"$case_dir/slow-rest.json" &
slow_rest=$!
probe --mode grpc --workers 2 --seconds 4 --id-prefix scf-slow-grpc >"$case_dir/slow-grpc.json"
wait $slow_rest
ip netns exec "$peer_ns" tc qdisc del dev "$peer_ns_link" root 2>/dev/null || true
facts="$case_dir/latency.facts.json"
facts_merge "$facts" "{\"rest\": $(windows "$case_dir/slow-rest.json" --since "$slow_at"),
  \"grpc\": $(windows "$case_dir/slow-grpc.json" --since "$slow_at"), \"deadline\": $deadline, \"connect\": $connect}"
judge latency "peer behind $how: 504 / DEADLINE_EXCEEDED (or 503 / UNAVAILABLE when the keepalive drops the slow connection mid-call), all within ${deadline} s + 0.5; never 500" \
  "$(jq -r '"REST \(.rest.outcomes) slowest \(.rest.max_s | to_entries | map("\(.key) \(.value) s") | join(", ")); gRPC \(.grpc.outcomes) slowest \(.grpc.max_s | to_entries | map("\(.key) \(.value) s") | join(", "))"' "$facts")" \
  "$facts" '(.rest.outcomes | keys - ["503", "504"]) == []' '(.rest.outcomes["504"] // 0) >= 1' \
  '(.grpc.outcomes | keys - ["UNAVAILABLE", "DEADLINE_EXCEEDED"]) == []' '(.grpc.outcomes.DEADLINE_EXCEEDED // 0) >= 1' \
  '([.rest.max_s[], .grpc.max_s[]] | max) <= .deadline + 0.5'

# --- one access line per call, abandoned and timed-out ones included --------------
stop_service a
stop_service a3
log_scan "${service_log[a]}" --ids "$case_dir/access-ids.txt" >"$case_dir/access-abandoned.json"
log_scan "${service_log[a3]}" --ids "$case_dir/deadline-ids.txt" >"$case_dir/access-deadline.json"
facts="$case_dir/access.facts.json"
facts_merge "$facts" "{\"abandoned\": $(cat "$case_dir/access-abandoned.json"), \"deadline\": $(cat "$case_dir/access-deadline.json")}"
judge access-lines "exactly one access line for each of the $deadline_runs grpc-timeout 300m calls and 5 REST calls abandoned by the client (curl --max-time 0.3)" \
  "$(jq -r '[.deadline, .abandoned] | map("\(.ids) ids: \(.ids_with_1_line) with 1 line, \(.ids_with_0_lines) with none \(.ids_missing_sample[0:2]), \(.ids_with_2_or_more) with more") | "300m calls: \(.[0]); abandoned: \(.[1])"' "$facts")" \
  "$facts" '.deadline.ids == '$deadline_runs '.abandoned.ids == 5' '.deadline.ids_with_1_line == .deadline.ids' \
  '.abandoned.ids_with_1_line == .abandoned.ids'
