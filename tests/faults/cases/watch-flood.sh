#!/usr/bin/env bash
# Case watch-flood: far more WatchStatus streams than the process-wide cap,
# on one connection and on many. The excess must get RESOURCE_EXHAUSTED (or
# REFUSED_STREAM past the per-connection limit), never a GOAWAY of the
# connection carrying the streams within the cap; memory stays bounded and
# /healthcheck answers throughout. Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port=19001
cap=100          # MAX_WATCH_STREAMS for this run
per_conn=256     # HTTP2_MAX_CONCURRENT_STREAMS for this run
flood=3000       # streams on one connection: 30x the cap
many=40          # connections of the second flood, 150 streams each (6000)
# Bound on peak RSS: the idle process, plus 128 KiB per allowed stream (3-9x
# the 14-40 KB measured per stream), plus 16 MiB for buffers and rejected
# streams in flight. Far below the 512 MiB task; an uncapped server holding
# the 6000 streams of the second flood needs about 80 MiB more.
per_stream_kib=128 slack_mib=16

start_service a -- SERVICE_NAME=service-a SERVER_PORT=$port BIND_ADDRESS=$scf_host \
  PEER_URL=http://$scf_host:19099 MAX_WATCH_STREAMS=$cap HTTP2_MAX_CONCURRENT_STREAMS=$per_conn
pid=${service_pid[a]}
must_be_healthy a "http://$scf_host:$port/service-a/healthcheck"
sleep 1
base_mib=$(rss_mib "$pid")
polls="$case_dir/health.txt"
poller=$(health_poller "http://$scf_host:$port/service-a/healthcheck" "$polls")

log "one connection: $flood streams"
python3 "$clients/watch_flood.py" $scf_host $port --connections 1 --streams $flood --hold 7 >"$case_dir/one.json"
log "one connection: $(cat "$case_dir/one.json")"
during_one_mib=$(rss_mib "$pid" || echo 0)
sleep 1
log "$many connections: $((many * 150)) streams"
python3 "$clients/watch_flood.py" $scf_host $port --connections $many --streams $((many * 150)) --hold 7 >"$case_dir/many.json"
log "$many connections: $(cat "$case_dir/many.json")"
sleep 0.5
kill "$poller" 2>/dev/null || true

alive_after=false
alive "$pid" && alive_after=true
peak_mib=$(rss_mib "$pid" VmHWM 2>/dev/null || echo -1)
bound_mib=$(awk -v b="$base_mib" -v c=$cap -v k=$per_stream_kib -v s=$slack_mib 'BEGIN { printf "%.1f", b + c * k / 1024 + s }')

observed_flood='ok-open \(.ok_open), RESOURCE_EXHAUSTED \(.resource_exhausted), REFUSED_STREAM \(.refused), sent \(.streams_sent)/\(.streams_wanted), GOAWAY \(.goaway_count) \(.goaways | map(.code + " " + .debug) | join(","))'
for which in one many; do
  facts="$case_dir/$which.facts.json"
  facts_merge "$facts" "$case_dir/$which.json" "{\"cap\": $cap}"
  label=$([ $which = one ] && echo "$flood streams on one connection" || echo "$((many * 150)) streams on $many connections")
  judge "$which-connection" \
    "$label, cap $cap: at most $cap live streams (at least 90% of it), all others RESOURCE_EXHAUSTED or REFUSED_STREAM, no GOAWAY, live streams keep getting messages" \
    "$(jq -r "\"$observed_flood\"" "$facts")" "$facts" \
    '.streams_sent == .streams_wanted' \
    '.ok_open <= .cap and .ok_open >= (.cap * 0.9)' \
    '.resource_exhausted >= 1' \
    '.ok_open + .resource_exhausted + .refused == .streams_sent' \
    '.goaway_count == 0' \
    '.min_messages_live >= 1'
done

facts="$case_dir/memory.facts.json"
most_live=$(jq -s 'map(.ok_open) | max' "$case_dir/one.json" "$case_dir/many.json")
facts_merge "$facts" "{\"base_mib\": $base_mib, \"peak_mib\": $peak_mib, \"bound_mib\": $bound_mib,
  \"during_one_mib\": $during_one_mib, \"alive\": $alive_after, \"oom_kills\": $(oom_kills a),
  \"most_live\": $most_live}"
judge memory "peak RSS <= idle + $cap x ${per_stream_kib} KiB + ${slack_mib} MiB; alive; no OOM kill (512 MiB task)" \
  "$(jq -r '"peak \(.peak_mib) MiB (idle \(.base_mib), bound \(.bound_mib); \(if .most_live > 0 then ((.peak_mib - .base_mib) * 1024 / .most_live | floor | tostring) + " KiB per live stream" else "no live stream" end)), alive \(.alive), OOM kills \(.oom_kills)"' "$facts")" \
  "$facts" '.peak_mib <= .bound_mib' '.alive' '.oom_kills == 0'

facts="$case_dir/health.facts.json"
health_summary "$polls" >"$facts"
judge health "/healthcheck 200 within 2 s on every probe during both floods" \
  "$(jq -r '"\(.ok)/\(.probes) probes 200, slowest \(.max_s) s"' "$facts")" \
  "$facts" '.probes >= 10' '.ok == .probes' '.max_s < 2'
