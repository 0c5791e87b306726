#!/usr/bin/env bash
# Runs every client against the real services, as .ci/run's `clients` part
# does: the Go, TypeScript (gRPC and gRPC-Web), Python and Java clients, and
# schemathesis against each service's OpenAPI document. Fails if any fails.
#
#   bash clients/run.sh BINARY [HOST]     # HOST default 127.0.0.1
#
# Needs the stubs (bash clients/generate.sh) and schemathesis on PATH.
# Starts `BINARY local` on HOST ports 8201/8202, which must be free.
set -euo pipefail

binary=$(realpath "${1:?usage: clients/run.sh BINARY [HOST]}")
cd "$(dirname "$0")"
host=${2:-127.0.0.1}
a=$host:8201
b=$host:8202
# Bounds on each step; the clients bound their own calls to 5 s each.
START_TIMEOUT_S=10
CLIENT_TIMEOUT_S=180
# Fuzzing effort per schemathesis operation: enough to try every response
# path of these parameterless routes, small enough to stay in seconds.
SCHEMATHESIS_EXAMPLES=50

log=$(mktemp)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -f "$log"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- server log (last 30 lines)" >&2
  tail -n 30 "$log" >&2 || true
  exit 1
}
step() { printf '\n== %s\n' "$*"; }

step "start both services on $host"
"$binary" local --bind-address "$host" >"$log" 2>&1 &
server_pid=$!
for _ in $(seq $((START_TIMEOUT_S * 10))); do
  curl -sf "http://$a/service-a/healthcheck" >/dev/null && curl -sf "http://$b/service-b/healthcheck" >/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || fail "the server exited at start"
  sleep 0.1
done
curl -sf "http://$b/service-b/healthcheck" >/dev/null || fail "not healthy after ${START_TIMEOUT_S} s"

step "Go (grpc-go, gzip)"
(cd go && timeout "$CLIENT_TIMEOUT_S" go run . "$a" "$b") || fail "go client"
step "TypeScript (Connect-ES gRPC transport, gzip)"
(cd typescript && timeout "$CLIENT_TIMEOUT_S" npm run -s grpc -- "$a" "$b") || fail "typescript client"
step "TypeScript (Connect-ES gRPC-Web transport, as a browser)"
(cd typescript && timeout "$CLIENT_TIMEOUT_S" npm run -s grpc-web -- "$a" "$b") || fail "grpc-web client"
step "Python (grpcio, gzip)"
(cd python && timeout "$CLIENT_TIMEOUT_S" .venv/bin/python client.py "$a" "$b") || fail "python client"
step "Java (grpc-java, gzip)"
(cd java && timeout "$CLIENT_TIMEOUT_S" mvn -B -q -Dstyle.color=never compile exec:java -Dexec.args="$a $b") ||
  fail "java client"

for target in "$a/service-a" "$b/service-b"; do
  step "schemathesis: http://$target/openapi.json"
  timeout "$CLIENT_TIMEOUT_S" schemathesis run "http://$target/openapi.json" \
    --checks all --max-examples "$SCHEMATHESIS_EXAMPLES" --request-timeout 5 || fail "schemathesis $target"
done

printf '\nclients: all passed\n'
