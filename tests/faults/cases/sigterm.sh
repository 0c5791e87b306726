#!/usr/bin/env bash
# Case sigterm: SIGTERM under steady load (HTTP/1.1 keep-alive, h2c REST,
# gRPC unary) with a WatchStatus stream open. During DRAIN_DELAY no request
# may fail and HTTP/1.1 answers must carry `Connection: close`; then the
# stream ends with UNAVAILABLE and the process exits 0 within DRAIN_DELAY +
# SHUTDOWN_TIMEOUT, having written exactly one access line per request that
# was answered or abandoned. Run by run.sh.
set -euo pipefail
# shellcheck source=tests/faults/lib/common.sh
source "$(dirname "$0")/../lib/common.sh"
trap case_cleanup EXIT

port=19501
drain=3 shutdown=4 # seconds: DRAIN_DELAY, SHUTDOWN_TIMEOUT

start_service a -- SERVICE_NAME=service-a SERVER_PORT=$port BIND_ADDRESS=$scf_host PEER_URL=http://$scf_host:19599 \
  DRAIN_DELAY=${drain}s SHUTDOWN_TIMEOUT=${shutdown}s
pid=${service_pid[a]}
must_be_healthy a "http://$scf_host:$port/service-a/healthcheck"

sigterm_at=$(python3 -c "import time; print(time.time() + 2)")
# Clients stop sending half a second before the drain ends (the server then
# stops accepting, as it should); answers from 0.3 s after the signal on are
# checked for Connection: close (the signal is handled asynchronously).
stop_at=$(python3 -c "print($sigterm_at + $drain - 0.5)")
drain_from=$(python3 -c "print($sigterm_at + 0.3)")
python3 "$clients/steady_load.py" $scf_host $port --stop-at "$stop_at" --drain-from "$drain_from" \
  --watch-limit $((drain + shutdown + 10)) --ids "$case_dir/ids.txt" >"$case_dir/load.json" &
load=$!
sleep "$(python3 -c "import time; print(max(0, $sigterm_at - time.time()))")"
signalled=$(now)
kill -TERM "$pid"
exit_code=timeout
for _ in $(seq $(((drain + shutdown + 5) * 20))); do
  alive "$pid" || break
  sleep 0.05
done
exit_seconds=$(elapsed "$signalled")
if alive "$pid"; then
  kill -KILL "$pid"
else
  exit_code=0
  wait "$pid" || exit_code=$?
fi
wait "$load" || true
log "load: $(cat "$case_dir/load.json")"
log_scan "${service_log[a]}" --ids "$case_dir/ids.txt" >"$case_dir/log.json"

facts="$case_dir/facts.json"
facts_merge "$facts" "$case_dir/load.json" "{\"log\": $(cat "$case_dir/log.json"), \"exit_code\": \"$exit_code\",
  \"exit_seconds\": $exit_seconds, \"signalled\": $signalled, \"drain\": $drain, \"shutdown\": $shutdown}"
judge no-failures "every request sent in the drain window (and before) answered OK: HTTP/1.1, h2c, gRPC unary" \
  "$(jq -r '"\(.requests) requests, \(.failed) failed: \(.by_kind | to_entries | map("\(.key) \(.value | to_entries | map("\(.key) \(.value)") | join(" "))") | join("; ")) \(.failure_sample[0:2])"' "$facts")" \
  "$facts" '.requests > 100' '.failed == 0'
judge connection-close "HTTP/1.1 answers during the drain carry Connection: close" \
  "$(jq -r '"during the drain: \(.h1_during_drain.close // 0) with close, \(.h1_during_drain["keep-alive"] // 0) keep-alive"' "$facts")" \
  "$facts" '(.h1_during_drain.close // 0) >= 1' '(.h1_during_drain["keep-alive"] // 0) == 0'
judge stream "the WatchStatus stream ends with UNAVAILABLE after the drain delay, before exit" \
  "$(jq -r '"\(.watch.code) after \(.watch.messages) messages, \((.watch.ended_at - .signalled) * 1000 | floor) ms after SIGTERM"' "$facts")" \
  "$facts" '.watch.code == "UNAVAILABLE"' '.watch.ended_at - .signalled >= .drain - 0.2' \
  '.watch.ended_at - .signalled <= .exit_seconds + 0.5'
judge exit "exit 0 within DRAIN_DELAY ${drain}s + SHUTDOWN_TIMEOUT ${shutdown}s" \
  "$(jq -r '"exit \(.exit_code) after \(.exit_seconds) s"' "$facts")" \
  "$facts" '.exit_code == "0"' '.exit_seconds <= .drain + .shutdown + 0.5'
judge access-lines "exactly one access line per answered or abandoned request (by request id, stream included)" \
  "$(jq -r '.log | "\(.ids) ids: \(.ids_with_1_line) with 1 line, \(.ids_with_0_lines) with none (e.g. \(.ids_missing_sample[0:2])), \(.ids_with_2_or_more) with more"' "$facts")" \
  "$facts" '.log.ids > 100' '.log.ids_with_1_line == .log.ids'
