#!/usr/bin/env bash
# Case conn-pressure (issue 18): connection floods at the shipped defaults
# (no shortened timeouts: MAX_CONNECTIONS 4096, HEADER_READ_TIMEOUT 10s,
# CONNECTION_IDLE_TIMEOUT 10m), service-a and its peer each at 0.25 vCPU.
# One client opens MAX_CONNECTIONS + 500 connections that send only the
# HTTP/2 preface, then as many that send the preface and SETTINGS and stay
# idle, while a WatchStatus stream and a steady request load run on other
# connections and an ALB-style probe (HTTP/1.1 GET of the health path, a new
# connection each time, 2 s timeout) runs every 250 ms. Then unfinished
# heads alone: preface-only and slow-CONTINUATION connections must be
# closed within HEADER_READ_TIMEOUT + 5 s. Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port=19901 port_b=19902
flood=4596               # MAX_CONNECTIONS (4096) + 500
flood_seconds=25         # each flood is held this long at most
header=10                # HEADER_READ_TIMEOUT's default, seconds
head_bound=$((header + 5))
watch_limit=62           # the stream's own deadline: it outlives both floods

start_service b -- SERVICE_NAME=service-b SERVER_PORT=$port_b BIND_ADDRESS=$scf_host \
  PEER_URL=http://$scf_host:$port
start_service a -- SERVICE_NAME=service-a SERVER_PORT=$port BIND_ADDRESS=$scf_host \
  PEER_URL=http://$scf_host:$port_b
health="http://$scf_host:$port/service-a/healthcheck"
must_be_healthy a "$health"
must_be_healthy b "http://$scf_host:$port_b/service-b/healthcheck"

# The stream and the steady load, on their own connections, for both floods.
stop_at=$(python3 -c "import time; print(time.time() + 2 * $flood_seconds + 8)")
python3 "$clients/steady_load.py" $scf_host $port --service service-a --stop-at "$stop_at" \
  --drain-from 1e12 --watch-limit $watch_limit --h1 2 --h2 1 --h2-streams 2 --grpc 2 \
  --ids "$case_dir/ids.txt" >"$case_dir/load.json" 2>"$case_dir/load.err" &
load_pid=$!
remember pid "$load_pid"
sleep 2

# reclaimed_total: the server's count of reclaimed connections so far (its
# warn lines carry it; 0 before the first).
reclaimed_total() {
  jq -R 'fromjson? | select(.message // "" | startswith("connections under pressure")) | .reclaimed_total' \
    "${service_log[a]}" | sort -n | tail -n 1 | grep . || echo 0
}

# listen_overflows: the host's count of connections dropped because a listen
# queue was full (TcpExt ListenOverflows); nothing else here listens under load.
listen_overflows() {
  awk '$1 == "TcpExt:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == "ListenOverflows") col = i; n = 1 } else print $col }' \
    /proc/net/netstat
}

# flood NAME KIND: MAX_CONNECTIONS + 500 connections of KIND (bare: the
# preface alone; preface: preface and SETTINGS), health probed throughout.
flood() {
  local name=$1 kind=$2 polls="$case_dir/health-$1.txt" poller before after facts started
  local overflows_before backlog
  before=$(reclaimed_total)
  overflows_before=$(listen_overflows)
  started=$(now)
  poller=$(health_poller "$health" "$polls")
  python3 "$clients/conn_flood.py" $scf_host $port --idle 0 --preface 0 \
    --deadline $flood_seconds "--$kind" $flood >"$case_dir/$name.json"
  # Probed for the whole window, however soon the server closed the flood.
  sleep "$(python3 -c "print(max(0, $started + $flood_seconds - $(now)))")"
  kill "$poller"
  backlog=$(ss -ltnH "sport = :$port" | awk '{ print $3; exit }')
  sleep 1.5 # the last throttled warn line
  after=$(reclaimed_total)
  log "$name: $(cat "$case_dir/$name.json"), reclaimed $before -> $after"
  facts="$case_dir/$name.facts.json"
  facts_merge "$facts" "$case_dir/$name.json" \
    "{\"health\": $(health_summary "$polls"), \"reclaimed\": $((after - before)), \"kind\": \"$kind\", \"backlog\": ${backlog:-0}, \"listen_overflows\": $(($(listen_overflows) - overflows_before)), \"bound\": $head_bound}"
  echo "$facts"
}

facts=$(flood bare-flood bare)
judge bare-flood "$flood preface-only connections from one client at the defaults: /healthcheck 200 within 2 s on every probe (every 250 ms for ${flood_seconds} s, at least 40), at least 500 reclaimed by the server, every one closed within HEADER_READ_TIMEOUT + 5 s, no connection dropped by a full listen queue" \
  "$(jq -r '"health \(.health.ok)/\(.health.probes) (slowest \(.health.max_s) s), reclaimed \(.reclaimed), closed by the server \(.bare.closed_by_server)/\(.bare.opened) (slowest \(.bare.close_s_max) s), connect failures \(.connect_failed), opened in \(.open_seconds) s, listen backlog \(.backlog), dropped \(.listen_overflows)"' "$facts")" \
  "$facts" '.health.probes >= 40' '.health.ok == .health.probes' '.health.max_s < 2' '.listen_overflows == 0' \
  '.reclaimed >= 500' '.bare.closed_by_server == .bare.opened' '.bare.close_s_max <= .bound'

facts=$(flood settings-flood preface)
judge settings-flood "$flood connections sending the preface and SETTINGS, then idle, from one client at the defaults: /healthcheck 200 within 2 s on every probe (every 250 ms for ${flood_seconds} s, at least 40), at least 500 reclaimed by the server, no connection dropped by a full listen queue" \
  "$(jq -r '"health \(.health.ok)/\(.health.probes) (slowest \(.health.max_s) s), reclaimed \(.reclaimed), closed by the server \(.preface.closed_by_server)/\(.preface.opened), connect failures \(.connect_failed), opened in \(.open_seconds) s, listen backlog \(.backlog), dropped \(.listen_overflows)"' "$facts")" \
  "$facts" '.health.probes >= 40' '.health.ok == .health.probes' '.health.max_s < 2' '.reclaimed >= 500' '.listen_overflows == 0'

wait "$load_pid" || true
facts="$case_dir/load.facts.json"
facts_merge "$facts" "$case_dir/load.json" "{\"watch_limit\": $watch_limit, \"min_messages\": $((2 * flood_seconds))}"
judge stream-and-load "during both floods: the WatchStatus stream keeps receiving (a message every 0.5 s) until its own ${watch_limit} s deadline, never closed by the server; the steady load (HTTP/1.1, h2c, gRPC) has no failure" \
  "$(jq -r '"stream \(.watch.code) after \(.watch.messages) messages; load \(.requests) requests, \(.failed) failed \(.failure_sample)"' "$facts")" \
  "$facts" '.watch.code == "DEADLINE_EXCEEDED"' '.watch.messages >= .min_messages' '.failed == 0' '.requests > 100'

# Unfinished heads alone, no pressure: only HEADER_READ_TIMEOUT can close them.
python3 "$clients/conn_flood.py" $scf_host $port --idle 0 --preface 0 --bare 20 \
  --deadline $((head_bound + 3)) >"$case_dir/heads-bare.json" &
bare_pid=$!
remember pid "$bare_pid"
python3 "$clients/slowloris.py" $scf_host $port --h1 0 --h2 20 --h2-trickle 3 --h2-frames 4 \
  --deadline $((head_bound + 3)) >"$case_dir/heads-continuation.json"
wait "$bare_pid"
facts="$case_dir/heads.facts.json"
facts_merge "$facts" "{\"bare\": $(jq .bare "$case_dir/heads-bare.json")}" \
  "{\"h2\": $(jq .h2 "$case_dir/heads-continuation.json")}" "{\"bound\": $head_bound}"
judge slow-heads "20 preface-only and 20 slow-CONTINUATION connections (one frame every 3 s) at the defaults: all closed within HEADER_READ_TIMEOUT + 5 s" \
  "$(jq -r '"preface-only closed \(.bare.closed_by_server)/\(.bare.opened) (slowest \(.bare.close_s_max) s); CONTINUATION closed \(.h2.closed_by_server)/\(.h2.connections) (slowest \(.h2.close_s_max) s)"' "$facts")" \
  "$facts" '.bare.closed_by_server == 20' '.bare.close_s_max <= .bound' \
  '.h2.closed_by_server == 20' '.h2.close_s_max <= .bound'
stop_service a
stop_service b
