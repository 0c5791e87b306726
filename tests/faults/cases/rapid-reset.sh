#!/usr/bin/env bash
# Case rapid-reset: HEADERS + RST_STREAM in a loop on one connection
# (CVE-2023-44487) as raw frames in bursts of 500 streams, reconnecting after
# each GOAWAY for 6 s. Each of the attacker's connections must be ended by
# the server, each attack stream cost the process little CPU (measured
# without a CPU quota, so the cost shows), and other clients be served as
# usual. Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port=19401
# CPU microseconds per attack stream. A stream that reaches a handler costs
# 18-28 us (BENCHMARKS.md: refused and answered requests); streams dropped by
# h2 cost 1.2-1.9 us here. Per stream, not cores: how many streams the
# attacker gets out in 6 s depends on the machine (1.2M to 2.5M seen).
us_per_stream_bound=6

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
# The server's side of the GOAWAY: h2 logs each time its reset guard ends a
# connection. The client often reads no GOAWAY at all: the server closes with
# the attacker's frames still unread, so the kernel sends a reset that
# discards the GOAWAY on its way (most connections end "closed").
guard_lines=$(grep -c 'reset.*reached limit\|too_many_resets' "${service_log[a]}" || true)
cpu_used=$(python3 -c "print($cpu_after - $cpu_before)")
facts_merge "$facts" "$case_dir/attack.json" "{\"cpu_cores\": $(python3 -c "print(round($cpu_used / $attack_seconds, 3))"),
  \"cpu_us_per_stream\": $(python3 -c "print(round($cpu_used * 1e6 / max(1, $(jq .streams_sent "$case_dir/attack.json")), 2))"),
  \"bound\": $us_per_stream_bound, \"others\": $(health_summary "$polls"), \"alive\": $(alive "$pid" && echo true || echo false),
  \"guard_lines\": $guard_lines}"
judge attacker "every attacker connection ended by the server: GOAWAY (or a reset that can hide it; then h2's guard in the server log); 6 s of raw bursts of 500 HEADERS + RST_STREAM, reconnecting" \
  "$(jq -r '"\(.connections) connections: \(.ended_by | to_entries | map("\(.key) \(.value)") | join(", ")); codes \(.goaway_codes | to_entries | map("\(.key) x\(.value)") | join(", ")); \(.streams_sent) streams, median \(.streams_before_goaway_median) per connection; guard lines in the server log \(.guard_lines)"' "$facts")" \
  "$facts" '.goaways >= 1 or .guard_lines >= 1' '(.ended_by.goaway // 0) + (.ended_by.closed // 0) >= .connections - 1'
judge cpu "process CPU < $us_per_stream_bound us per attack stream (no quota; a stream that reaches a handler costs 18+ us); alive" \
  "$(jq -r '"\(.cpu_us_per_stream) us per stream: \(.cpu_cores) core over \(.seconds) s, alive \(.alive)"' "$facts")" \
  "$facts" '.cpu_us_per_stream < .bound' '.alive'
judge others "GET /service-a/status every 250 ms meanwhile: all 200 within 2 s" \
  "$(jq -r '.others | "\(.ok)/\(.probes) 200, slowest \(.max_s) s"' "$facts")" \
  "$facts" '.others.probes >= 5' '.others.ok == .others.probes' '.others.max_s < 2'
