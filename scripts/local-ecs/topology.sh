# shellcheck shell=bash
# The hosts of the local ECS stand-in and their life: network namespaces on
# one bridge, per-namespace /etc/hosts for the Service Connect aliases, a
# proxy per task, the app per task, the load balancer; `up` builds all of it,
# `down` removes all of it (idempotent, and it needs no state to do so).
# Sourced by scripts/local-ecs.sh after common.sh and pki.sh.

# Every process this stand-in starts carries this variable (as ECS injects its
# own variables into containers), so `down` and `leftovers` find each one by
# pid even if its namespace or pid file is gone.
LECS_MARKER=LOCAL_ECS_ROLE

# Run by `sh -c` inside a task's own UTS namespace: sets the task's host name
# and the open-file limit (soft = hard, as the task definition's ulimit), then
# becomes the app (same pid, so its pid file stays right).
# shellcheck disable=SC2016
LECS_TASK_ENTRYPOINT='hostname "$1" && ulimit -n "$2" && shift 2 && exec "$@"'

lecs_dir() { printf '%s/%s' "$LECS_RUN" "$1"; }

lecs_network_up() {
  local ns
  ip link add "$LECS_BRIDGE" type bridge
  ip addr add "$LECS_GATEWAY/$LECS_PREFIX_LEN" dev "$LECS_BRIDGE"
  ip link set "$LECS_BRIDGE" up
  for ns in "${LECS_NAMESPACES[@]}"; do
    ip netns add "$ns"
    ip link add "lecs-$ns" type veth peer name eth0 netns "$ns"
    ip link set "lecs-$ns" master "$LECS_BRIDGE" up
    ip -n "$ns" addr add "${LECS_ADDR[$ns]}/$LECS_PREFIX_LEN" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
  done
}

# What Service Connect's agent writes into a task's /etc/hosts: every client
# alias of the namespace at the address where the task's own proxy listens.
# `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts.
lecs_hosts_up() {
  local ns service
  for ns in "${LECS_NAMESPACES[@]}"; do
    [ "$ns" = alb ] && continue
    mkdir -p "/etc/netns/$ns"
    {
      printf '127.0.0.1\tlocalhost\n%s\t%s\n' "${LECS_ADDR[$ns]}" "$ns"
      for service in service-a service-b; do
        printf '%s\t%s\n' "${LECS_SC_VIP[$service]}" "$(lecs_alias "$service")"
      done
    } >"/etc/netns/$ns/hosts"
  done
}

# lecs_app_start TASK: `status-service serve` configured exactly as the task
# definition in IaC/ecs.tf configures it (environment, nofile ulimit), except
# BIND_ADDRESS: the app listens on the task's loopback because the proxy owns
# the container port on the task address (on ECS both listen in the same
# task; the proxy takes the traffic). Its own UTS namespace gives it the
# task's host name.
lecs_app_start() {
  local task=$1 service peer dir
  service=${LECS_TASK_SERVICE[$task]}
  peer=${LECS_PEER[$service]}
  dir=$(lecs_dir "$task")
  ip netns exec "$task" env -i PATH="$PATH" "$LECS_MARKER=$task/app" \
    SERVICE_NAME="$service" SERVER_PORT="${LECS_PORT[$service]}" \
    PEER_URL="http://$(lecs_alias "$peer"):${LECS_PORT[$peer]}" \
    BIND_ADDRESS=127.0.0.1 LOG_FORMAT=json RUST_LOG=info \
    DRAIN_DELAY="$LECS_DRAIN_DELAY" SHUTDOWN_TIMEOUT="$LECS_SHUTDOWN_TIMEOUT" \
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
    OTEL_SERVICE_NAME="$service" OTEL_BSP_SCHEDULE_DELAY=200 \
    unshare --uts -- sh -c "$LECS_TASK_ENTRYPOINT" sh "$task" "$LECS_NOFILE" "$LECS_BIN" serve \
    >>"$dir/app.log" 2>&1 &
  echo $! >"$dir/app.pid"
}

lecs_app_pid() { cat "$(lecs_dir "$1")/app.pid"; }

# lecs_collector_start TASK: the trace collector sidecar (IaC's
# trace_collector_enabled) stood in by tests/traces' OpenTelemetry Collector:
# OTLP on the task's loopback, where the app's OTEL_ variables point, and
# the spans it receives written to the task's spans.jsonl.
lecs_collector_start() {
  local task=$1 dir
  dir=$(lecs_dir "$task")
  cat >"$dir/collector.yaml" <<YAML
receivers:
  otlp:
    protocols:
      grpc: {endpoint: 127.0.0.1:4317}
      http: {endpoint: 127.0.0.1:4318}
processors:
  batch: {timeout: 200ms}
exporters:
  file: {path: $dir/spans.jsonl, flush_interval: 100ms}
service:
  telemetry: {metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [file]}
YAML
  ip netns exec "$task" env -i PATH="$PATH" "$LECS_MARKER=$task/collector" \
    "$LECS_COLLECTOR" --config "file:$dir/collector.yaml" >>"$dir/collector.log" 2>&1 &
  echo $! >"$dir/collector.pid"
}

lecs_collector_ready() { grep -q "Everything is ready" "$(lecs_dir "$1")/collector.log" 2>/dev/null; }

# The app answers SERVING on its own port, inside the task.
lecs_app_serving() {
  local service=${LECS_TASK_SERVICE[$1]}
  ip netns exec "$1" curl -sf --max-time 1 --http2-prior-knowledge \
    "http://127.0.0.1:${LECS_PORT[$service]}/$service/healthcheck"
}

# A process is gone once it is no longer listed or is a zombie.
lecs_pid_alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}
lecs_pid_gone() { ! lecs_pid_alive "$1"; }

# lecs_proxy_start NAMESPACE: HAProxy with the stand-in's configuration files
# (scripts/local-ecs/haproxy/), checked first, in the foreground of a
# background job so its pid is known; its log goes to the namespace's dir.
lecs_proxy_start() {
  local ns=$1 dir files vars
  dir=$(lecs_dir "$ns")
  vars=(
    "$LECS_MARKER=$ns/proxy"
    LECS_ADMIN_SOCKET="$(lecs_admin_socket "$ns")"
    LECS_CHECK_TIMEOUT="$LECS_CHECK_TIMEOUT"
    LECS_PORT_SERVICE_A="${LECS_PORT[service-a]}"
    LECS_PORT_SERVICE_B="${LECS_PORT[service-b]}"
    LECS_ADDR_TASK_A="${LECS_ADDR[task-a]}"
    LECS_ADDR_TASK_B1="${LECS_ADDR[task-b1]}"
    LECS_ADDR_TASK_B2="${LECS_ADDR[task-b2]}"
  )
  if [ "$ns" = alb ]; then
    files=(-f "$LECS_HAPROXY_CONFIGS/alb.cfg")
    vars+=(
      LECS_ALB_ADDR="${LECS_ADDR[alb]}"
      LECS_ALB_CERT="$(lecs_pki_dir)/alb.pem"
      LECS_IDLE_TIMEOUT="$LECS_ALB_IDLE_TIMEOUT"
      LECS_CHECK_INTER="$LECS_ALB_CHECK_INTER"
      LECS_CHECK_FALL="$LECS_ALB_CHECK_FALL"
      LECS_CHECK_RISE="$LECS_ALB_CHECK_RISE"
    )
  else
    files=(-f "$LECS_HAPROXY_CONFIGS/sc-common.cfg")
    if [ -n "${LECS_TASK_SERVICE[$ns]:-}" ]; then
      files+=(-f "$LECS_HAPROXY_CONFIGS/sc-inbound.cfg")
      vars+=(
        LECS_TASK_ADDR="${LECS_ADDR[$ns]}"
        LECS_APP_PORT="${LECS_PORT[${LECS_TASK_SERVICE[$ns]}]}"
        LECS_TASK_CERT="$(lecs_pki_dir)/$ns.pem"
      )
    fi
    files+=(-f "$LECS_HAPROXY_CONFIGS/sc-outbound.cfg")
    vars+=(
      LECS_CA_FILE="$(lecs_ca_file)"
      LECS_VIP_SERVICE_A="${LECS_SC_VIP[service-a]}"
      LECS_VIP_SERVICE_B="${LECS_SC_VIP[service-b]}"
      LECS_IDLE_TIMEOUT="$LECS_SC_IDLE_TIMEOUT"
      LECS_CHECK_INTER="$LECS_SC_CHECK_INTER"
      LECS_CHECK_FALL="$LECS_SC_CHECK_FALL"
      LECS_CHECK_RISE="$LECS_SC_CHECK_RISE"
    )
  fi
  ip netns exec "$ns" env "${vars[@]}" haproxy -c -q "${files[@]}" ||
    lecs_die "HAProxy refuses the configuration of $ns"
  ip netns exec "$ns" env "${vars[@]}" haproxy -db "${files[@]}" >>"$dir/proxy.log" 2>&1 &
  echo $! >"$dir/proxy.pid"
}

lecs_is_up() { [ -e "/run/netns/${LECS_NAMESPACES[0]}" ] || [ -d "$LECS_RUN" ]; }

lecs_up() {
  local ns task
  lecs_is_up && lecs_die "already up (or left over): run '$0 down' first"
  [ -x "$LECS_BIN" ] || lecs_die "no binary at $LECS_BIN: cargo build --release --locked -p status-services"
  [ -x "$LECS_COLLECTOR" ] || lecs_die "no collector at $LECS_COLLECTOR: bash tests/traces/build-collector.sh"
  [ -n "$LECS_DRAIN_DELAY" ] && [ -n "$LECS_SHUTDOWN_TIMEOUT" ] && [ -n "$LECS_NOFILE" ] ||
    lecs_die "drain_delay, shutdown_timeout or nofile_limit not found in IaC/locals.tf"
  # Without CAP_SYS_RESOURCE (containers, sandboxes) a hard limit cannot rise.
  if [ "$(ulimit -Hn)" != unlimited ] && (($(ulimit -Hn) < LECS_NOFILE)); then
    lecs_log "nofile: the task definition's $LECS_NOFILE is above this machine's hard limit; using $(ulimit -Hn)"
    LECS_NOFILE=$(ulimit -Hn)
  fi
  mkdir -m 755 "$LECS_RUN"
  for ns in "${LECS_NAMESPACES[@]}"; do mkdir -p "$(lecs_dir "$ns")"; done
  lecs_log "CA and certificates (EC P-256, ${LECS_CERT_DAYS} day) in $(lecs_pki_dir)"
  lecs_pki_up
  lecs_log "namespaces ${LECS_NAMESPACES[*]} on $LECS_BRIDGE, ${LECS_GATEWAY%.*}.0/$LECS_PREFIX_LEN"
  lecs_network_up
  lecs_hosts_up
  for task in "${LECS_TASKS[@]}"; do lecs_collector_start "$task"; done
  for task in "${LECS_TASKS[@]}"; do
    lecs_wait "$LECS_START_TIMEOUT" "$task's collector to start" lecs_collector_ready "$task" ||
      lecs_die "$task's collector did not start: $(tail -n 5 "$(lecs_dir "$task")/collector.log")"
  done
  for task in "${LECS_TASKS[@]}"; do lecs_app_start "$task"; done
  for task in "${LECS_TASKS[@]}"; do
    lecs_wait "$LECS_START_TIMEOUT" "$task's app to answer SERVING" lecs_app_serving "$task" ||
      lecs_die "$task's app did not start: $(tail -n 5 "$(lecs_dir "$task")/app.log")"
  done
  # Tasks first, so the first health checks of the others find them.
  for ns in "${LECS_TASKS[@]}" toolbox alb; do lecs_proxy_start "$ns"; done
  for task in "${LECS_TASKS[@]}"; do
    lecs_wait "$LECS_START_TIMEOUT" "every balancer to see $task UP" lecs_all_balancers_see "$task" UP ||
      lecs_die "$task is not UP everywhere"
  done
  lecs_log "up: every task SERVING and UP in every balancer"
}

lecs_print_usage_hints() {
  cat <<EOF
Try:
  curl --cacert $(lecs_ca_file) $(lecs_alb_url)/service-a/other-status
  curl --cacert $(lecs_ca_file) --http2 $(lecs_alb_url)/service-b/status
  ip netns exec toolbox grpcurl -plaintext service-b-sc:8202 list
  ip netns exec toolbox grpcurl -plaintext service-a-sc:8201 scdemo.status.v1.StatusService/GetPeerStatus
  echo 'show stat' | socat stdio unix:$(lecs_admin_socket task-a) | cut -d, -f1,2,18
  $0 down
EOF
}

# Pids of every process this stand-in started (the marker), wherever it is.
lecs_our_pids() {
  local environ pid
  for environ in /proc/[0-9]*/environ; do
    pid=${environ#/proc/}
    pid=${pid%/environ}
    [ "$pid" = "$$" ] && continue
    grep -qz "^$LECS_MARKER=" "$environ" 2>/dev/null && printf '%s\n' "$pid"
  done
  return 0
}

# Everything `up` creates that still exists, one line each; nothing = clean.
lecs_leftovers() {
  local ns pid
  for ns in "${LECS_NAMESPACES[@]}"; do
    [ -e "/run/netns/$ns" ] && echo "namespace $ns"
    [ -e "/etc/netns/$ns" ] && echo "file /etc/netns/$ns"
  done
  ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2) } $2 ~ /^lecs/ { print "link " $2 }'
  [ -e "$LECS_RUN" ] && echo "file $LECS_RUN"
  for pid in $(lecs_our_pids); do
    echo "process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
  done
  return 0
}

# Idempotent: kills every process of the stand-in by pid (SIGKILL: nothing
# is worth draining now), waits until they are gone, then removes the
# namespaces, links and files. Safe to run when nothing is up.
lecs_down() {
  local ns pids=() pid
  for ns in "${LECS_NAMESPACES[@]}"; do
    [ -e "/run/netns/$ns" ] && mapfile -t -O "${#pids[@]}" pids < <(ip netns pids "$ns")
  done
  mapfile -t -O "${#pids[@]}" pids < <(lecs_our_pids)
  # (stderr off: bash would report each killed background job of `test`.)
  if ((${#pids[@]})); then
    {
      kill -KILL "${pids[@]}" || true
      for pid in "${pids[@]}"; do
        lecs_wait 10 "process $pid to end" lecs_pid_gone "$pid" || true
        wait "$pid" || true
      done
    } 2>/dev/null
  fi
  for ns in "${LECS_NAMESPACES[@]}"; do
    [ -e "/run/netns/$ns" ] && ip netns del "$ns"
    rm -rf "/etc/netns/$ns"
  done
  rmdir /etc/netns 2>/dev/null || true
  ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2) } $2 ~ /^lecs/ { print $2 }' |
    while read -r link; do ip link del "$link" 2>/dev/null || true; done
  rm -rf "$LECS_RUN"
}
