#!/usr/bin/env bash
# Offline test of scripts/smoke-test.sh and of `scripts/deploy.sh verify`
# (scripts/verify-deployment.sh)
# against the real status-service binary behind a small path-routing
# stand-in for the ALB, so that the smoke test's verdicts (exit 0 / 3 / 1),
# its diagnosis (the appProtocol hint) and deploy.sh's restart decision are
# shown to happen, not assumed. AWS and Terraform are stubs that print canned
# answers (the aws stub's `ecs update-service` "restarts" service-a by
# switching the router to a correctly configured copy); nothing leaves
# 127.0.0.7.
#
# Usage: scripts/test-deploy-scripts.sh BINARY     (e.g. target/debug/status-service)
set -euo pipefail

binary="${1:?usage: $0 path/to/status-service}"
[[ -x "${binary}" ]] || {
  echo "not executable: ${binary}" >&2
  exit 2
}
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
smoke="${repo_root}/scripts/smoke-test.sh"

# Addresses and ports of this test only.
readonly HOST=127.0.0.7 PORT_A=8201 PORT_B=8202 PORT_A_RESTARTED=8211 PORT_ALB=8280
readonly STARTUP_TIMEOUT=20 # seconds for a process to answer

work="$(mktemp -d)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "${pid}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "${pid}" 2>/dev/null || true; done
  rm -rf "${work}"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

wait_for() {
  local url="$1" deadline=$((SECONDS + STARTUP_TIMEOUT))
  until curl -s -o /dev/null --max-time 2 "${url}"; do
    ((SECONDS < deadline)) || fail "nothing answers ${url} after ${STARTUP_TIMEOUT}s"
    sleep 0.2
  done
}

# service NAME PORT PEER_URL: starts one service; sets `last_pid`.
service() {
  SERVICE_NAME="$1" SERVER_PORT="$2" BIND_ADDRESS="${HOST}" PEER_URL="$3" \
    DRAIN_DELAY=0s SHUTDOWN_TIMEOUT=1s LOG_FORMAT=json RUST_LOG=warn \
    "${binary}" serve >>"${work}/$1.log" 2>&1 &
  last_pid=$!
  pids+=("${last_pid}")
  wait_for "http://${HOST}:$2/$1/healthcheck"
}

stop() {
  kill "$1"
  wait "$1" 2>/dev/null || true
}

# The ALB stand-in: /service-a/* to A (to the restarted A once the file
# `restarted` exists), /service-b/* to B, 502 when the upstream does not
# answer (as an ALB with no reachable target).
timeout 300 python3 - "${HOST}" "${PORT_ALB}" "${PORT_A}" "${PORT_B}" "${PORT_A_RESTARTED}" "${work}/restarted" <<'EOF' &
import http.client, http.server, os, sys
host, (port, port_a, port_b, port_a2) = sys.argv[1], map(int, sys.argv[2:6])
restarted = sys.argv[6]
class Router(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/service-a/"):
            upstream = port_a2 if os.path.exists(restarted) else port_a
        else:
            upstream = port_b
        try:
            conn = http.client.HTTPConnection(host, upstream, timeout=10)
            conn.request("GET", self.path)
            reply = conn.getresponse()
            status, body = reply.status, reply.read()
        except OSError:
            status, body = 502, b"<html>502 Bad Gateway</html>"
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((host, port), Router).serve_forever()
EOF
pids+=($!)
alb="http://${HOST}:${PORT_ALB}"

# Stubs of terraform (outputs) and aws (target and task health) for the
# diagnosis; the answers come from files the cases write.
mkdir -p "${work}/bin"
cat >"${work}/bin/terraform" <<EOF
#!/usr/bin/env bash
# terraform [-chdir=DIR] output [-json|-raw] [NAME]
name="\${*: -1}"
case "\$*" in
  *" output -json") cat "${work}/outputs.json" ;;
  *" output -json "*) jq -c --arg k "\$name" '.[\$k].value' "${work}/outputs.json" ;;
  *" output -raw "*) jq -j --arg k "\$name" '.[\$k].value // error("no output")' "${work}/outputs.json" ;;
  *) echo "unexpected terraform \$*" >&2; exit 1 ;;
esac
EOF
cat >"${work}/bin/aws" <<EOF
#!/usr/bin/env bash
echo "aws \$*" >>"${work}/aws-calls"
case "\$1 \$2" in
  "ecs wait") ;;
  "ecs update-service") touch "${work}/restarted"; echo "restarted" ;;
  "elbv2 describe-target-health") cat "${work}/target-health.txt" ;;
  "ecs list-tasks") echo "arn:aws:ecs:us-east-2:123456789012:task/scdemo/0123" ;;
  "ecs describe-tasks") cat "${work}/task-health.txt" ;;
  *) echo "unexpected aws \$*" >&2; exit 1 ;;
esac
EOF
chmod +x "${work}/bin/terraform" "${work}/bin/aws"
outputs() {
  cat >"${work}/outputs.json" <<EOF
{
  "alb_url": {"value": "${alb}"},
  "aws_region": {"value": "us-east-2"},
  "cluster_name": {"value": "scdemo"},
  "service_names": {"value": {"service-a": "service-a", "service-b": "service-b"}},
  "rest_target_group_arns": {"value": {
    "service-a": "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/a/1",
    "service-b": "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/b/2"}},
  "service_connect_app_protocol": {"value": "$1"}
}
EOF
}

# case NAME WANT_STATUS WANT_TEXT [SMOKE ARGS...]: runs the smoke test.
case_() {
  local name="$1" want="$2" text="$3" status=0
  shift 3
  SMOKE_ATTEMPTS=2 SMOKE_DNS_ATTEMPTS=1 SMOKE_MAX_TIME=5 CURL_INSECURE=0 \
    PATH="${work}/bin:${PATH}" "${smoke}" "$@" >"${work}/out" 2>&1 || status=$?
  if [[ "${status}" != "${want}" ]] || ! grep -qF -- "${text}" "${work}/out"; then
    cat "${work}/out" >&2
    fail "${name}: exit ${status} (want ${want}), output should contain: ${text}"
  fi
  echo "ok: ${name} (exit ${status})"
}

service service-b "${PORT_B}" "http://${HOST}:${PORT_A}"
b=${last_pid}
service service-a "${PORT_A}" "http://${HOST}:${PORT_B}"
a=${last_pid}
wait_for "${alb}/service-a/healthcheck"

case_ "every path answers" 0 "all 6 REST paths answered 200" \
  --alb-url "${alb}" --services "service-a service-b" --no-aws
outputs grpc
case_ "paths from the terraform outputs" 0 "all 6 REST paths answered 200"

# deploy.sh verify: restart the services only when a name does not resolve
# (or when asked to).
verify_case() {
  local name="$1" want_restarts="$2" status=0 restarts
  shift 2
  rm -f "${work}/restarted" "${work}/aws-calls"
  env SMOKE_ATTEMPTS=2 SMOKE_DNS_ATTEMPTS=1 SMOKE_MAX_TIME=5 CURL_INSECURE=0 \
    PATH="${work}/bin:${PATH}" "$@" "${repo_root}/scripts/deploy.sh" verify >"${work}/out" 2>&1 || status=$?
  restarts=$(grep -c "ecs update-service .*--service service-a " "${work}/aws-calls" || true)
  if [[ ${status} != 0 || "${restarts}" != "${want_restarts}" ]]; then
    cat "${work}/out" >&2
    fail "verify, ${name}: exit ${status} (want 0), service-a restarted ${restarts} times (want ${want_restarts})"
  fi
  echo "ok: verify, ${name} (service-a restarted ${restarts} times)"
}
# The restarted A resolves its peer; the router switches to it once the aws
# stub saw `ecs update-service`.
service service-a "${PORT_A_RESTARTED}" "http://${HOST}:${PORT_B}"
verify_case "names resolve" 0
verify_case "RESTART_SERVICES=1" 1 RESTART_SERVICES=1

# A started "before its peer's endpoint existed": the name does not resolve.
stop "${a}"
service service-a "${PORT_A}" "http://service-b-sc.invalid:${PORT_B}"
a=${last_pid}
rm -f "${work}/restarted"
case_ "peer name does not resolve" 3 "scripts/deploy.sh restart" \
  --alb-url "${alb}" --services "service-a service-b" --no-aws
verify_case "a name does not resolve: restart once" 1
rm -f "${work}/restarted"

# B gone: ALB 502s, A's other-status fails too, but not on a name.
stop "${b}"
case_ "a service is down" 1 "smoke test failed" \
  --alb-url "${alb}" --services "service-a service-b" --no-aws

# The diagnosis: tasks healthy, ALB health checks failing -> appProtocol.
printf '10.0.10.5\tunhealthy\tTarget.FailedHealthChecks\n' >"${work}/target-health.txt"
printf 'HEALTHY\n' >"${work}/task-health.txt"
case_ "appProtocol named when grpc" 1 'service_connect_app_protocol = "http2"'
outputs http2
case_ "appProtocol named when http2" 1 'service_connect_app_protocol = "none"'
printf 'UNHEALTHY\n' >"${work}/task-health.txt"
outputs grpc
case_ "no appProtocol hint for unhealthy tasks" 1 "ECS task health: UNHEALTHY"
if grep -q "LIKELY CAUSE" "${work}/out"; then fail "appProtocol blamed although the tasks are unhealthy"; fi

echo "smoke-test.sh and deploy.sh verify: all cases passed"
