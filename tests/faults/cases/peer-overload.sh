#!/usr/bin/env bash
# Case peer-overload: service-a's GetPeerStatus driven at 4x, 8x and 12x the
# concurrency at which service-b's capacity is measured (both at 0.25 vCPU).
# Goodput must hold, service-a's one connection to service-b must never be
# torn down, and failures must be fast UNAVAILABLE / RESOURCE_EXHAUSTED,
# not piles of DEADLINE_EXCEEDED or UNKNOWN / CANCELLED. Codes, counts and
# latencies come from service-a's access log (h2load counts every gRPC
# answer as HTTP 200). Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port_a=19701 port_b=19702
base=1000          # concurrent calls of the capacity measurement (1x)
calls_per_stream=3 # each level sends levelx${base}x3 calls in all (h2load -n)
goodput_floor=0.5  # goodput under overload >= this x the path's goodput at 1x
rpc=/scdemo.status.v1.StatusService
printf '\0\0\0\0\0' >"$case_dir/empty.grpc"
grpc_load() { # URL CONCURRENCY CALLS
  h2load_run -c $(($2 / 100)) -m 100 -n "$3" -d "$case_dir/empty.grpc" \
    -H 'content-type: application/grpc' -H 'te: trailers' "$1"
}

start_service b -- SERVICE_NAME=service-b SERVER_PORT=$port_b BIND_ADDRESS=$scf_host PEER_URL=http://$scf_host:$port_a
start_service a -- SERVICE_NAME=service-a SERVER_PORT=$port_a BIND_ADDRESS=$scf_host PEER_URL=http://$scf_host:$port_b
must_be_healthy b "http://$scf_host:$port_b/service-b/healthcheck"
must_be_healthy a "http://$scf_host:$port_a/service-a/healthcheck"

# Capacity: service-b alone, then the A->B path, both at $base concurrent calls.
from=$(now)
grpc_load "http://$scf_host:$port_b$rpc/GetStatus" $base $((base * calls_per_stream)) >"$case_dir/capacity-b.json"
to=$(now)
log_scan "${service_log[b]}" --path $rpc/GetStatus --since "$from" --until "$to" >"$case_dir/capacity-b.log.json"
b_ok_per_s=$(jq --argjson s "$(python3 -c "print($to - $from)")" '(.path.OK.count // 0) / $s | floor' "$case_dir/capacity-b.log.json")
log "service-b capacity: $b_ok_per_s OK/s at $base concurrent calls"
conns="$case_dir/peer-connections.txt"
sampler=$(conn_sampler "${service_pid[a]}" $port_b "$conns")

levels=(1 4 8 12)
for level in "${levels[@]}"; do
  from=$(now)
  grpc_load "http://$scf_host:$port_a$rpc/GetPeerStatus" $((level * base)) $((level * base * calls_per_stream)) >"$case_dir/level-$level.json"
  to=$(now)
  sleep 1.5 # the log writer flushes in the background
  log_scan "${service_log[a]}" --path $rpc/GetPeerStatus --since "$from" --until "$to" >"$case_dir/level-$level.log.json"
  jq --argjson s "$(python3 -c "print($to - $from)")" --argjson level "$level" '{level: $level, seconds: $s,
      calls: ([.path[].count] | add // 0), codes: (.path | map_values(.count)),
      ok_per_s: ((.path.OK.count // 0) / $s | floor),
      failure_p90_ms: ([.path | to_entries[] | select(.key != "OK") | .value.p90_ms] | max // 0)}' \
    "$case_dir/level-$level.log.json" >"$case_dir/level-$level.facts.json"
  log "level ${level}x: $(cat "$case_dir/level-$level.facts.json" | tr -d '\n ')"
done
kill "$sampler"
path_ok_per_s=$(jq .ok_per_s "$case_dir/level-1.facts.json")
b_goaway_lines=$(log_scan "${service_log[b]}" | jq .goaway_lines)
peer=$(conn_summary "$conns")

for level in 4 8 12; do
  facts="$case_dir/judge-$level.json"
  facts_merge "$facts" "$case_dir/level-$level.facts.json" "{\"path_ok_per_s\": $path_ok_per_s, \"b_ok_per_s\": $b_ok_per_s,
    \"floor\": $goodput_floor, \"peer\": $peer, \"b_goaway_lines\": $b_goaway_lines}"
  judge "${level}x" "$((level * base)) concurrent GetPeerStatus ($level x $base): OK/s >= $goodput_floor x the 1x path goodput; DEADLINE_EXCEEDED <= 5% of calls; no UNKNOWN/INTERNAL/CANCELLED; failures' p90 < 1 s" \
    "$(jq -r '"\(.calls) calls in \(.seconds * 10 | floor / 10) s: \(.codes | to_entries | map("\(.key) \(.value)") | join(", ")); \(.ok_per_s) OK/s (1x path \(.path_ok_per_s), B alone \(.b_ok_per_s)); failures p90 \(.failure_p90_ms) ms"' "$facts")" \
    "$facts" '.calls >= 1' '.ok_per_s >= .floor * .path_ok_per_s' '(.codes.DEADLINE_EXCEEDED // 0) <= 0.05 * .calls' \
    '([.codes.UNKNOWN, .codes.INTERNAL, .codes.CANCELLED] | map(. // 0) | add) == 0' '.failure_p90_ms < 1000'
done
facts="$case_dir/peer.json"
facts_merge "$facts" "{\"peer\": $peer, \"b_goaway_lines\": $b_goaway_lines}"
judge peer-connection "service-a's connection to service-b never torn down over all levels (one local port in every 200 ms sample); no GOAWAY in service-b's log" \
  "$(jq -r '"\(.peer.samples) samples, at most \(.peer.max_open) open, \(.peer.distinct_ports) distinct local ports; B GOAWAY lines \(.b_goaway_lines)"' "$facts")" \
  "$facts" '.peer.samples >= 10' '.peer.distinct_ports == 1' '.peer.max_open == 1' '.b_goaway_lines == 0'
