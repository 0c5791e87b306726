#!/usr/bin/env bash
# Case idle-flood: 1,200 connections that send nothing (600) or only the
# HTTP/2 preface (600). The first-byte and idle timeouts (short here) must
# close them all while /healthcheck keeps answering. Then the same flood
# against a process whose open-file limit is 1024 (hard and soft, so the
# server cannot raise it): accept hits EMFILE, which must give warn lines,
# no CPU spin (measured without a CPU quota, so a spin would show), and
# health answering again once the timeouts have reclaimed the connections.
# Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port=19101 port_emfile=19102
first_byte=1 idle=2        # seconds: FIRST_BYTE_TIMEOUT, CONNECTION_IDLE_TIMEOUT
deadline=12                # seconds the flood client waits for the server to close
close_bound=$((idle + 5))  # each connection closed this long after connect at most
timeouts=("FIRST_BYTE_TIMEOUT=${first_byte}s" "CONNECTION_IDLE_TIMEOUT=${idle}s")

# --- 1. the flood against a normal process ----------------------------------
start_service a -- SERVICE_NAME=service-a SERVER_PORT=$port BIND_ADDRESS=$scf_host \
  PEER_URL=http://$scf_host:19199 "${timeouts[@]}"
health="http://$scf_host:$port/service-a/healthcheck"
must_be_healthy a "$health"
polls="$case_dir/health.txt"
poller=$(health_poller "$health" "$polls")
python3 "$clients/conn_flood.py" $scf_host $port --idle 600 --preface 600 --deadline $deadline >"$case_dir/flood.json"
log "flood: $(cat "$case_dir/flood.json")"
kill "$poller"
facts="$case_dir/flood.facts.json"
facts_merge "$facts" "$case_dir/flood.json" "{\"health\": $(health_summary "$polls"), \"bound\": $close_bound}"
judge closed "all 1200 closed by the server within ${close_bound} s of connecting (FIRST_BYTE_TIMEOUT ${first_byte}s, CONNECTION_IDLE_TIMEOUT ${idle}s)" \
  "$(jq -r '"closed \(.closed_by_server)/\(.total) (idle \(.idle.closed_by_server), preface \(.preface.closed_by_server)), slowest \(.close_s_max) s, still open after '$deadline' s: \(.still_open), connect failures \(.connect_failed)"' "$facts")" \
  "$facts" '.closed_by_server == .total' '.close_s_max <= .bound'
judge health "/healthcheck 200 within 2 s on every probe during the flood" \
  "$(jq -r '.health | "\(.ok)/\(.probes) probes 200, slowest \(.max_s) s"' "$facts")" \
  "$facts" '.health.probes >= 10' '.health.ok == .health.probes' '.health.max_s < 2'
stop_service a

# --- 2. the same flood at the open-file limit --------------------------------
start_service emfile --cpu none --nofile 1024 -- SERVICE_NAME=service-a SERVER_PORT=$port_emfile \
  BIND_ADDRESS=$scf_host PEER_URL=http://$scf_host:19199 "${timeouts[@]}"
pid=${service_pid[emfile]}
health="http://$scf_host:$port_emfile/service-a/healthcheck"
must_be_healthy emfile "$health"
polls="$case_dir/health-emfile.txt"
poller=$(health_poller "$health" "$polls")
cpu_before=$(cpu_seconds "$pid")
flood_start=$(now)
python3 "$clients/conn_flood.py" $scf_host $port_emfile --idle 600 --preface 600 --deadline $deadline >"$case_dir/emfile.json"
flood_seconds=$(elapsed "$flood_start")
cpu_after=$(cpu_seconds "$pid" 2>/dev/null || echo "$cpu_before")
kill "$poller"
log "flood at nofile 1024: $(cat "$case_dir/emfile.json")"
# Health must answer in the second half of the flood (every probe that fell
# there: how many did depends on how fast the flood went) and, a fixed
# number of times, right after it, once the timeouts have reclaimed it.
late=$(python3 -c "print($flood_start + $flood_seconds / 2)")
after="$case_dir/health-emfile-after.txt"
health_probes "$health" 5 "$after"
log_scan "${service_log[emfile]}" --warn 'accept|EMFILE|open files|os error 24' >"$case_dir/emfile-log.json"
facts="$case_dir/emfile.facts.json"
facts_merge "$facts" "$case_dir/emfile.json" "$case_dir/emfile-log.json" \
  "{\"cpu_cores\": $(python3 -c "print(round(($cpu_after - $cpu_before) / $flood_seconds, 3))"),
    \"late_health\": $(health_summary "$polls" "$late"), \"after_health\": $(health_summary "$after"), \"alive\": $(alive "$pid" && echo true || echo false),
    \"bound\": $close_bound}"
judge emfile "nofile 1024: warn log lines about accept errors, process CPU < 0.3 core over the flood, all 1200 reclaimed by the timeouts, /healthcheck 200 on every probe in the second half of the flood and on 5 of 5 right after it" \
  "$(jq -r '"warn lines \(.warn_lines) (\(.warn_samples[0] // "none" | .[0:120])), CPU \(.cpu_cores) core, closed \(.closed_by_server)/\(.total) (slowest \(.close_s_max) s, still open \(.still_open)), late health \(.late_health.ok)/\(.late_health.probes), after \(.after_health.ok)/\(.after_health.probes), alive \(.alive)"' "$facts")" \
  "$facts" '.warn_lines >= 1' '.cpu_cores < 0.3' '.closed_by_server + .connect_failed == .total' \
  '.late_health.ok == .late_health.probes' '.after_health.probes == 5' '.after_health.ok == 5' '.alive'
