# shellcheck shell=bash disable=SC2034
# Names, addresses and settings of the local ECS stand-in (scripts/local-ecs.sh),
# and the small helpers all its parts use. Sourced, never run on its own.
# Every name and address here belongs to this stand-in only: namespaces alb,
# task-a, task-b1, task-b2, toolbox; links lecs-*; subnet 10.231.0.0/24.
# (SC2034 is off: the settings here are used by the other parts.)

# Everything `up` generates (keys, certificates, logs, pids, admin sockets)
# lives here, on tmpfs and outside the repository; `down` removes it.
LECS_RUN=${LECS_RUN:-/run/local-ecs}
LECS_BIN=${LECS_BIN:-$LECS_ROOT/target/release/status-service}
LECS_HAPROXY_CONFIGS=$LECS_ROOT/scripts/local-ecs/haproxy
# The collector sidecar's stand-in: tests/traces/build-collector.sh builds it.
LECS_COLLECTOR=${LECS_COLLECTOR:-$LECS_ROOT/target/traces-collector}

# The "VPC": one bridge in the root namespace and one /24. The bridge's own
# address is where clients of the load balancer (curl, the loads) come from.
LECS_BRIDGE=lecs-br0
LECS_PREFIX_LEN=24
LECS_GATEWAY=10.231.0.1
LECS_NAMESPACES=(alb task-a task-b1 task-b2 toolbox)
declare -A LECS_ADDR=(
  [alb]=10.231.0.10
  [task-a]=10.231.0.11
  [task-b1]=10.231.0.21
  [task-b2]=10.231.0.22
  [toolbox]=10.231.0.30
)
# Tasks that run the app, and which service each one is.
LECS_TASKS=(task-a task-b1 task-b2)
declare -A LECS_TASK_SERVICE=([task-a]=service-a [task-b1]=service-b [task-b2]=service-b)
declare -A LECS_SERVICE_TASKS=([service-a]="task-a" [service-b]="task-b1 task-b2")
# Container ports, as in IaC/locals.tf (the proxy owns them on the task address).
declare -A LECS_PORT=([service-a]=8201 [service-b]=8202)
declare -A LECS_PEER=([service-a]=service-b [service-b]=service-a)
# Service Connect writes each client alias into a task's /etc/hosts with an
# address from 127.255.0.0/16 on which the task's own proxy listens.
declare -A LECS_SC_VIP=([service-a]=127.255.0.1 [service-b]=127.255.0.2)

# The app's drain settings and open-file limit are the ones ECS runs with:
# read from the IaC, so they are never typed twice.
lecs_iac_local() {
  sed -n "s/^ *$1 *= *\"\\(.*\\)\"/\\1/p" "$LECS_ROOT/IaC/locals.tf" | head -n1
}
LECS_DRAIN_DELAY=$(lecs_iac_local drain_delay)
LECS_SHUTDOWN_TIMEOUT=$(lecs_iac_local shutdown_timeout)
# The task definition's nofile ulimit (soft = hard), a bare number there.
LECS_NOFILE=$(sed -n 's/^ *nofile_limit *= *\([0-9]*\) *$/\1/p' "$LECS_ROOT/IaC/locals.tf" | head -n1)

# Health checks. The design point: a replica sent SIGTERM answers
# NOT_SERVING (503) at once and keeps serving for DRAIN_DELAY (5 s), so every
# balancer must mark it DOWN within fall x inter (+ one check's timeout) < 5 s.
#   Service Connect stand-in: 2 failures 1 s apart -> out in at most ~3 s.
#   ALB stand-in: the target groups' thresholds (3 unhealthy, 2 healthy) with
#   the 10 s interval scaled down to 1 s -> out in at most ~4 s. (The real
#   ALB cannot react in 5 s by checks alone: ECS deregisters the target first.)
LECS_SC_CHECK_INTER=1s
LECS_SC_CHECK_FALL=2
LECS_SC_CHECK_RISE=2
LECS_ALB_CHECK_INTER=1s
LECS_ALB_CHECK_FALL=3
LECS_ALB_CHECK_RISE=2
LECS_CHECK_TIMEOUT=1s

# Idle timeouts, from IaC/variables.tf defaults (Service Connect 3600 s, ALB 300 s).
LECS_SC_IDLE_TIMEOUT=3600s
LECS_ALB_IDLE_TIMEOUT=300s

# Certificates: EC P-256 as the Private CA's EC_prime256v1; short-lived like
# the PCA's short-lived mode (Service Connect rotates every 5 days).
LECS_CA_DAYS=2
LECS_CERT_DAYS=1

# Bounds on waiting (seconds).
LECS_START_TIMEOUT=20       # an app to answer, the proxies to see every replica UP
LECS_STOP_TIMEOUT=25        # DRAIN_DELAY + SHUTDOWN_TIMEOUT + margin

lecs_log() { printf 'local-ecs: %s\n' "$*" >&2; }
lecs_die() {
  printf 'local-ecs: FAIL: %s\n' "$*" >&2
  exit 1
}

lecs_alias() { printf '%s-sc' "$1"; }
# The CA's certificate, readable by anyone (curl --cacert); keys stay in pki/.
lecs_ca_file() { printf '%s/ca.pem' "$LECS_RUN"; }
lecs_alb_url() { printf 'https://%s' "${LECS_ADDR[alb]}"; }
lecs_admin_socket() { printf '%s/%s/proxy.sock' "$LECS_RUN" "$1"; }

# lecs_wait SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s until it
# succeeds; fails with DESCRIPTION when SECONDS pass.
lecs_wait() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || {
      lecs_log "timed out after ${seconds}s waiting for: $what"
      return 1
    }
    sleep 0.1
  done
}

# lecs_proxy_cmd NAMESPACE COMMAND: one command on a proxy's admin socket.
lecs_proxy_cmd() {
  printf '%s\n' "$2" | socat -t 2 stdio "unix-connect:$(lecs_admin_socket "$1")"
}

# lecs_server_field NAMESPACE BACKEND SERVER FIELD: a field of `show stat`
# (CSV: 16 wretr, 17 wredis, 18 status) for one server.
lecs_server_field() {
  lecs_proxy_cmd "$1" "show stat" | awk -F, -v b="$2" -v s="$3" -v f="$4" '$1 == b && $2 == s { print $f }'
}
lecs_server_status() { lecs_server_field "$1" "$2" "$3" 18; }
lecs_server_is() { [ "$(lecs_server_status "$1" "$2" "$3")" = "$4" ]; }

# The balancers that route to a service's tasks: the ALB's target group and
# the outbound listener for its alias in every task (each task's proxy serves
# every alias of the namespace, as Service Connect's does).
lecs_balancers_of() {
  local ns
  printf 'alb tg-%s\n' "$1"
  for ns in "${LECS_NAMESPACES[@]}"; do
    [ "$ns" = alb ] || printf '%s sc-%s\n' "$ns" "$1"
  done
}

# lecs_all_balancers_see TASK STATE: every balancer of TASK's service shows it in STATE.
lecs_all_balancers_see() {
  local task=$1 state=$2 ns backend
  while read -r ns backend; do
    lecs_server_is "$ns" "$backend" "$task" "$state" || return 1
  done < <(lecs_balancers_of "${LECS_TASK_SERVICE[$task]}")
}
