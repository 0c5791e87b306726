#!/usr/bin/env bash
# Case peer-overload: service-b (the peer) at 0.25 vCPU driven far past its
# capacity through service-a's GetPeerStatus, by h2load at 4,000, 8,000 and
# 12,000 concurrent calls (4x, 8x, 12x the 1,000 the issue found fine before
# the fixes). Service-a gets 1 vCPU, so that the peer is what is
# overloaded, which is the issue's case: the peer saturated, the caller
# facing it. The capacity is measured first in the same run: service-b
# alone, and the A->B path at 128 concurrent calls (about MAX_PEER_CALLS,
# 100, in flight: the path's throughput, no overload). Goodput must hold,
# service-a's one connection to service-b must never be torn down, and
# failures must be fast UNAVAILABLE / RESOURCE_EXHAUSTED, not piles of
# DEADLINE_EXCEEDED or UNKNOWN / CANCELLED.
#
# Then "self-overload" (issue 18): service-a restarted at 0.25 vCPU too, so
# that service-a itself is what its callers saturate, at 1x, 2x, 4x and 8x
# where 1x is 1,000 concurrent calls (h2load: 10 connections x 100 streams;
# the base above, already about 8 times the 128 calls that reach the path's
# capacity at 0.25 vCPU); 2x 2,000, 4x 4,000, 8x 8,000. h2load sends again
# the moment an answer comes, so every refusal comes straight back. An
# ALB-style probe (HTTP/1.1 GET of /service-a/healthcheck on a new
# connection, 2 s timeout) runs every 250 ms throughout; each level's
# window must hold at least 3 of its probes (on a loaded host the poller's
# own curl runs slow: 6 in a 4 s window seen, each answered in 0.05 s).
#
# Codes, counts and latencies come from service-a's access log (h2load
# counts every gRPC answer as HTTP 200), over each run less its first
# second and last half second. Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port_a=19701 port_b=19702
base=1000          # concurrent calls of the 1x load
capacity_streams=128
seconds=4          # h2load -D per run
# Self-overload runs are longer: each h2load run opens new connections whose
# first batches get in at once (a connection's first read is never gated),
# a wave that a 2.5 s window over-weights; 8 s leaves a 6.5 s steady window.
self_seconds=8
# OK/s under overload >= this x the path's capacity, per level. h2load is a
# closed loop that sends again the moment an answer comes, so refusals come
# back at once and take a share of the CPU that grows with the overload: a
# quarter, not a half, for that reason. At 12x, h2load's 12,000 streams also
# take CPU the services had when the capacity was measured (2 cores in all):
# 22-65% of capacity seen across runs, hence a tenth there. The collapse
# this case guards against gave 2% at 8x and 0.5% at 12x.
declare -A goodput_floor=([4]=0.25 [8]=0.25 [12]=0.1)
# Self-overload (service-a at 0.25 vCPU as well): OK/s >= this x that path's
# capacity, per level (issue 18: half at 4x, 0.35 at 8x). Before the read
# gate (server/read_gate/) every refusal cost service-a most of what an
# answer costs and came straight back: 24% at 4x.
declare -A self_floor=([1]=0.5 [2]=0.5 [4]=0.5 [8]=0.35)
deadline_ms=2000   # PEER_REQUEST_TIMEOUT (the default)
# Failures' p90 <= this x the deadline: a call waits at most 0.4 of its time
# for a peer slot (SLOT_PATIENCE), the rest is service-a's own queueing when
# its CPU is saturated; DEADLINE_EXCEEDED is bounded on its own (<= 5%).
failure_p90_share=0.8
# Self-overload: failures before the deadline, as the peer rows: a call
# waits at most 0.4 of its time for a peer slot, the rest is service-a's own
# queueing at its quota (8x: p90 0.99-1.31 s seen; 0.6 failed once at 1.31).
self_failure_p90_share=0.8
rpc=/scdemo.status.v1.StatusService
printf '\0\0\0\0\0' >"$case_dir/empty.grpc"
grpc_load() { # URL CONNECTIONS STREAMS_PER_CONNECTION
  h2load_run -c "$2" -m "$3" -D "${run_seconds:-$seconds}" -d "$case_dir/empty.grpc" \
    -H 'content-type: application/grpc' -H 'te: trailers' "$1"
}
# measure NAME LABEL PATH CONNECTIONS STREAMS: one h2load run; its access-log
# figures (in the run's steady window) go to $case_dir/NAME.facts.json.
measure() {
  local name=$1 label=$2 path=$3 from to a_cpu b_cpu
  a_cpu=$(cpu_seconds "${service_pid[a]}")
  b_cpu=$(cpu_seconds "${service_pid[b]}")
  from=$(now)
  grpc_load "http://$scf_host:${ports[$label]}$path" "$4" "$5" >"$case_dir/$name.h2load.json"
  to=$(now)
  a_cpu=$(python3 -c "print(round(($(cpu_seconds "${service_pid[a]}") - $a_cpu) / ($to - $from), 3))")
  b_cpu=$(python3 -c "print(round(($(cpu_seconds "${service_pid[b]}") - $b_cpu) / ($to - $from), 3))")
  sleep 1.5 # the log writer flushes in the background
  local since until
  since=$(python3 -c "print($from + 1)")
  until=$(python3 -c "print($to - 0.5)")
  log_scan "${service_log[$label]}" --path "$path" --since "$since" --until "$until" >"$case_dir/$name.log.json"
  jq --argjson s "$(python3 -c "print($until - $since)")" --argjson concurrency $(($4 * $5)) \
    --argjson a_cpu "$a_cpu" --argjson b_cpu "$b_cpu" --argjson from "$from" --argjson to "$to" \
    '{concurrency: $concurrency, a_cpu: $a_cpu, b_cpu: $b_cpu, from: $from, to: $to,
      seconds: $s, calls: ([.path[].count] | add // 0), codes: (.path | map_values(.count)),
      ok_per_s: (((.path.OK.count // 0) / $s) | floor), failure_p90_ms: (.path_failures.p90_ms // 0)}' \
    "$case_dir/$name.log.json" >"$case_dir/$name.facts.json"
  log "$name: $(tr -d '\n ' <"$case_dir/$name.facts.json")"
}

start_service b -- SERVICE_NAME=service-b SERVER_PORT=$port_b BIND_ADDRESS=$scf_host PEER_URL=http://$scf_host:$port_a
caller_cpu_quota_us=100000 # 1 vCPU: the peer, not the caller, is the bottleneck
start_a() { # CPU_QUOTA_US
  start_service a --cpu "$1" -- SERVICE_NAME=service-a SERVER_PORT=$port_a BIND_ADDRESS=$scf_host PEER_URL=http://$scf_host:$port_b
}
start_a $caller_cpu_quota_us
declare -A ports=([a]=$port_a [b]=$port_b)
must_be_healthy b "http://$scf_host:$port_b/service-b/healthcheck"
must_be_healthy a "http://$scf_host:$port_a/service-a/healthcheck"

measure capacity-b b $rpc/GetStatus 4 $((capacity_streams / 4))
conns="$case_dir/peer-connections.txt"
sampler=$(conn_sampler "${service_pid[a]}" $port_b "$conns")
measure capacity-path a $rpc/GetPeerStatus 4 $((capacity_streams / 4))
for level in 4 8 12; do
  measure "level-$level" a $rpc/GetPeerStatus $((level * base / 100)) 100
done
kill "$sampler"
b_goaway_lines=$(log_scan "${service_log[b]}" | jq .goaway_lines)
peer=$(conn_summary "$conns")

# Self-overload: the caller at 0.25 vCPU as well, at 1x-8x, health probed.
stop_service a
# service-a's log of the peer rows is kept apart: a replaced peer connection
# is explained by what either side's HTTP/2 stack said (h2 logs a connection
# it closes itself, e.g. "locally-reset streams reached limit", at warn).
mv "${service_log[a]}" "$case_dir/a-peer.log"
h2_warnings=$(cat "$case_dir/a-peer.log" "${service_log[b]}" | grep -c '"target":"h2' || true)
start_a "$task_cpu_quota_us"
must_be_healthy a "http://$scf_host:$port_a/service-a/healthcheck"
polls="$case_dir/health-self.txt"
poller=$(health_poller "http://$scf_host:$port_a/service-a/healthcheck" "$polls")
run_seconds=$self_seconds measure capacity-small-a a $rpc/GetPeerStatus 4 $((capacity_streams / 4))
for level in 1 2 4 8; do
  run_seconds=$self_seconds measure "self-$level" a $rpc/GetPeerStatus $((level * base / 100)) 100
done
kill "$poller"
for level in 1 2 4 8; do
  facts="$case_dir/judge-self-$level.json"
  window=$(jq -r '"\(.from) \(.to)"' "$case_dir/self-$level.facts.json")
  # shellcheck disable=SC2086 # two epochs
  facts_merge "$facts" "$case_dir/self-$level.facts.json" "{\"path\": $(cat "$case_dir/capacity-small-a.facts.json"),
    \"floor\": ${self_floor[$level]}, \"health\": $(health_summary "$polls" $window)}"
  judge "self-${level}x" "$((level * base)) concurrent GetPeerStatus, service-a and service-b at 0.25 vCPU: OK/s >= ${self_floor[$level]} x that path's capacity (at $capacity_streams concurrent); DEADLINE_EXCEEDED <= 5% of calls; no UNKNOWN/INTERNAL/CANCELLED; failures' p90 <= $self_failure_p90_share x PEER_REQUEST_TIMEOUT; /healthcheck (HTTP/1.1, new connection) 200 within 2 s on every probe" \
    "$(jq -r '"\(.calls) calls in \(.seconds * 10 | floor / 10) s: \(.codes | to_entries | map("\(.key) \(.value)") | join(", ")); \(.ok_per_s) OK/s (path capacity \(.path.ok_per_s)); failures p90 \(.failure_p90_ms) ms; CPU A \(.a_cpu) B \(.b_cpu) core; health \(.health.ok)/\(.health.probes), slowest \(.health.max_s) s"' "$facts")" \
    "$facts" '.calls >= 1' '.path.ok_per_s >= 1' '.ok_per_s >= .floor * .path.ok_per_s' \
    '(.codes.DEADLINE_EXCEEDED // 0) <= 0.05 * .calls' \
    '([.codes.UNKNOWN, .codes.INTERNAL, .codes.CANCELLED] | map(. // 0) | add) == 0' ".failure_p90_ms <= $self_failure_p90_share * $deadline_ms" \
    '.health.probes >= 3' '.health.ok == .health.probes' '.health.max_s < 2'
done

for level in 4 8 12; do
  facts="$case_dir/judge-$level.json"
  facts_merge "$facts" "$case_dir/level-$level.facts.json" "{\"path\": $(cat "$case_dir/capacity-path.facts.json"),
    \"b\": $(cat "$case_dir/capacity-b.facts.json"), \"floor\": ${goodput_floor[$level]}}"
  judge "${level}x" "$((level * base)) concurrent GetPeerStatus: OK/s >= ${goodput_floor[$level]} x the path's capacity (measured at $capacity_streams concurrent); DEADLINE_EXCEEDED <= 5% of calls; no UNKNOWN/INTERNAL/CANCELLED; failures' p90 <= $failure_p90_share x PEER_REQUEST_TIMEOUT (before the deadline)" \
    "$(jq -r '"\(.calls) calls in \(.seconds * 10 | floor / 10) s: \(.codes | to_entries | map("\(.key) \(.value)") | join(", ")); \(.ok_per_s) OK/s (path capacity \(.path.ok_per_s), B alone \(.b.ok_per_s)); failures p90 \(.failure_p90_ms) ms; CPU A \(.a_cpu) B \(.b_cpu) core"' "$facts")" \
    "$facts" '.calls >= 1' '.path.ok_per_s >= 1' '.ok_per_s >= .floor * .path.ok_per_s' \
    '(.codes.DEADLINE_EXCEEDED // 0) <= 0.05 * .calls' \
    '([.codes.UNKNOWN, .codes.INTERNAL, .codes.CANCELLED] | map(. // 0) | add) == 0' ".failure_p90_ms <= $failure_p90_share * $deadline_ms"
done
facts="$case_dir/peer.json"
facts_merge "$facts" "{\"peer\": $peer, \"b_goaway_lines\": $b_goaway_lines, \"h2_warnings\": $h2_warnings}"
judge peer-connection "service-a's connection to service-b never torn down over all levels (one local port in every 200 ms sample); no GOAWAY in service-b's log" \
  "$(jq -r '"\(.peer.samples) samples, at most \(.peer.max_open) open, \(.peer.distinct_ports) distinct local ports; B GOAWAY lines \(.b_goaway_lines); h2 warnings (a-peer.log, b.log) \(.h2_warnings)"' "$facts")" \
  "$facts" '.peer.samples >= 10' '.peer.distinct_ports == 1' '.peer.max_open == 1' '.b_goaway_lines == 0'
