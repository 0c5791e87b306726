# shellcheck shell=bash
# `scripts/image.sh test`: runs the built image as the task definitions say
# (taskdef.sh) on a podman network of its own and checks it, one row per
# check with what it saw. Sourced by scripts/image.sh. Removes its
# containers and network when it ends, also on failure.

IMG_FAILED=0
IMG_ROWS=()

# row RESULT CHECK SAW: prints one row and remembers a failure.
row() {
  local line
  line=$(printf '%-4s | %-50s | %s' "$1" "$2" "$3")
  IMG_ROWS+=("$line")
  printf '%s\n' "$line"
  [ "$1" = ok ] || IMG_FAILED=1
}
check() { # check CONDITION-RESULT(0/1) CHECK SAW
  if [ "$1" -eq 0 ]; then row ok "$2" "$3"; else row FAIL "$2" "$3"; fi
}

# podman run, with podman's complaint that it cannot make systemd timers for
# the periodic health checks (no systemd here; the test runs the checks
# itself) left out of stderr; any other message is shown.
pm_run() {
  local err=$IMG_STATE/test/podman-run.err rc=0
  pm run "$@" 2>"$err" || rc=$?
  grep -v 'unable to get systemd connection' "$err" >&2 || true
  return "$rc"
}

remove_test_containers() {
  local ids
  ids=$(pm ps --all --quiet --filter "name=^$IMG_CONTAINER_PREFIX" 2>/dev/null || true)
  # shellcheck disable=SC2086 # one id per word
  [ -z "$ids" ] || pm rm --force --time 0 $ids >/dev/null 2>&1 || true
  pm network rm --force "$IMG_NETWORK" >/dev/null 2>&1 || true
}

# Polls until SERVICE answers its REST health check (bounded).
wait_ready() {
  local service=$1 port deadline=$((SECONDS + 30))
  port=$(host_port "$service")
  until curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/$service/healthcheck" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}

# The app's process on the host (PID 1 of the container is the init).
app_pid() {
  local init
  init=$(pm inspect --format '{{.State.Pid}}' "$(container_name "$1")")
  pgrep -P "$init" -x status-service | head -1
}

check_image() {
  local size binary_size hc entry user
  size=$(pm image inspect --format '{{.Size}}' "$IMG_APP")
  entry=$(pm image inspect --format '{{json .Config.Entrypoint}}' "$IMG_APP")
  user=$(pm image inspect --format '{{.Config.User}}' "$IMG_APP")
  hc=$(pm image inspect --format '{{json .Config.Healthcheck.Test}}' "$IMG_APP")
  local mnt
  mnt=$(pm image mount "$IMG_APP")
  binary_size=$(stat -c %s "$mnt/usr/local/bin/status-service")
  local shells=() path
  for path in bin/sh bin/bash bin/dash bin/busybox usr/bin/sh usr/bin/bash usr/bin/dash usr/bin/busybox; do
    [ ! -e "$mnt/$path" ] && [ ! -L "$mnt/$path" ] || shells+=("/$path")
  done
  pm image unmount "$IMG_APP" >/dev/null
  row ok "image size" "$((size / 1000000)) MB ($size bytes; binary $((binary_size / 1000000)) MB)"
  check "$([ "$user" = 65532:65532 ] && echo 0 || echo 1)" "image USER" "$user"
  check "$([ "$entry" = '["/usr/local/bin/status-service","serve"]' ] && echo 0 || echo 1)" "image ENTRYPOINT" "$entry"
  check "$([ ${#shells[@]} -eq 0 ] && echo 0 || echo 1)" "no shell in the image" \
    "$([ ${#shells[@]} -eq 0 ] && echo "/bin/sh, bash, dash, busybox absent" || echo "found: ${shells[*]}")"
  # What ECS runs is the task definition's command; the image's is the same.
  local task_hc
  task_hc=$(definition "$(services | head -1)" | jq -c '.healthCheck.command')
  check "$([ "$hc" = "$task_hc" ] && echo 0 || echo 1)" "image HEALTHCHECK = task definition's command" "image $hc, task $task_hc"
}

start_services() {
  local service args
  pm network create --subnet "$IMG_SUBNET" "$IMG_NETWORK" >/dev/null
  for service in $(services); do
    mapfile -t args < <(run_args "$service")
    pm_run "${args[@]}" "$IMG_APP" >/dev/null
  done
  for service in $(services); do
    wait_ready "$service" || {
      pm logs "$(container_name "$service")" >&2 || true
      die "$service did not answer its health check within 30 s"
    }
  done
}

check_settings() {
  local service pid limits uid root_ro note
  for service in $(services); do
    pid=$(app_pid "$service")
    if [ -z "$pid" ]; then
      row FAIL "$service: process under the init" "no status-service child of the container's PID 1"
      continue
    fi
    uid=$(awk '/^Uid:/ {print $2; exit}' "/proc/$pid/status"):$(awk '/^Gid:/ {print $2; exit}' "/proc/$pid/status")
    limits=$(awk '/^Max open files/ {print $4 ":" $5}' "/proc/$pid/limits")
    root_ro=$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | cut -d, -f1)
    local want_user want_nofile
    want_user=$(definition "$service" | jq -r '.user')
    want_nofile=$(definition "$service" | jq -r '.ulimits[] | select(.name == "nofile") | "\(.softLimit):\(.hardLimit)"')
    check "$([ "$uid" = "$want_user" ] && echo 0 || echo 1)" "$service: user (task: $want_user)" "uid:gid $uid"
    check "$([ "$root_ro" = ro ] && echo 0 || echo 1)" "$service: readonlyRootFilesystem" "/ mounted $root_ro"
    note=$(ulimit_notes "$service")
    local cap
    cap=$(capped_limit "${want_nofile%%:*}" nofile):$(capped_limit "${want_nofile##*:}" nofile)
    check "$([ "$limits" = "$cap" ] && echo 0 || echo 1)" "$service: nofile (task: $want_nofile)" \
      "soft:hard $limits${note:+ (capped: host hard limit $(host_hard_limit nofile))}"
    check "$(pm inspect --format '{{.Config.StopTimeout}}' "$(container_name "$service")" | grep -qx "$(definition "$service" | jq -r .stopTimeout)" && echo 0 || echo 1)" \
      "$service: stop timeout" "$(pm inspect --format '{{.Config.StopTimeout}}' "$(container_name "$service")") s"
    check "$(pgrep -P "$(pm inspect --format '{{.State.Pid}}' "$(container_name "$service")")" >/dev/null && [ "$(cat "/proc/$(pm inspect --format '{{.State.Pid}}' "$(container_name "$service")")/comm")" != status-service ] && echo 0 || echo 1)" \
      "$service: init as PID 1 (initProcessEnabled)" "PID 1 is $(cat "/proc/$(pm inspect --format '{{.State.Pid}}' "$(container_name "$service")")/comm")"
  done
}

check_rest() {
  local service port path code body
  for service in $(services); do
    port=$(host_port "$service")
    for path in healthcheck status other-status; do
      body=$(curl -sS --max-time 5 -o - -w '\n%{http_code}' "http://127.0.0.1:$port/$service/$path" 2>&1) || true
      code=${body##*$'\n'}
      body=${body%$'\n'*}
      check "$([ "$code" = 200 ] && echo 0 || echo 1)" "REST GET /$service/$path (port $(container_port "$service"))" \
        "$code $(printf '%s' "$body" | tr -d '\n' | cut -c1-90)"
    done
  done
}

check_grpc() {
  local service port list out rc
  for service in $(services); do
    port=$(host_port "$service")
    list=$(grpcurl -plaintext -max-time 5 "127.0.0.1:$port" list 2>&1) && rc=0 || rc=$?
    check "$([ "$rc" = 0 ] && grep -qx scdemo.status.v1.StatusService <<<"$list" && echo 0 || echo 1)" \
      "gRPC list $service" "$(tr '\n' ' ' <<<"$list")"
    out=$(grpcurl -plaintext -max-time 10 -d '{}' "127.0.0.1:$port" scdemo.status.v1.StatusService/GetPeerStatus 2>&1) && rc=0 || rc=$?
    local peer
    peer=$(peer_of "$service")
    check "$([ "$rc" = 0 ] && grep -q "$peer" <<<"$out" && echo 0 || echo 1)" \
      "gRPC GetPeerStatus $service -> $peer" "exit $rc $(tr -d '\n ' <<<"$out" | cut -c1-100)"
  done
}

check_health() {
  local service command rc status
  for service in $(services); do
    mapfile -t command < <(definition "$service" | jq -r '.healthCheck.command[1:][]')
    pm exec "$(container_name "$service")" "${command[@]}" >/dev/null 2>&1 && rc=0 || rc=$?
    check "$rc" "$service: task health command in the container" "${command[*]} exit $rc"
    pm healthcheck run "$(container_name "$service")" >/dev/null 2>&1 && rc=0 || rc=$?
    status=$(pm inspect --format '{{.State.Health.Status}}' "$(container_name "$service")")
    check "$([ "$rc" = 0 ] && [ "$status" = healthy ] && echo 0 || echo 1)" \
      "$service: podman healthcheck (task's healthCheck)" \
      "$(pm inspect --format '{{json .Config.Healthcheck.Test}}' "$(container_name "$service")") exit $rc, $status"
    pm exec "$(container_name "$service")" /bin/sh -c true >/dev/null 2>&1 && rc=0 || rc=$?
    check "$([ "$rc" != 0 ] && echo 0 || echo 1)" "$service: exec /bin/sh in the container" "exit $rc (no shell)"
  done
  # The image's own HEALTHCHECK: a container without the task's override.
  local first args filtered=() i name
  first=$(services | head -1)
  mapfile -t args < <(run_args "$first")
  name=${IMG_CONTAINER_PREFIX}image-healthcheck
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
      --health-*) i=$((i + 1)) ;;
      --name) filtered+=(--name "$name") && i=$((i + 1)) ;;
      --ip | --publish) i=$((i + 1)) ;;
      *) filtered+=("${args[i]}") ;;
    esac
  done
  pm_run "${filtered[@]}" "$IMG_APP" >/dev/null
  local deadline=$((SECONDS + 30))
  until pm healthcheck run "$name" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || break
    sleep 1
  done
  status=$(pm inspect --format '{{.State.Health.Status}}' "$name")
  check "$([ "$status" = healthy ] && echo 0 || echo 1)" "image HEALTHCHECK (no task override)" \
    "$(pm inspect --format '{{json .Config.Healthcheck.Test}}' "$name") -> $status"
  pm rm --force --time 0 "$name" >/dev/null 2>&1
}

check_logs() {
  local service out lines json stderr_lines
  for service in $(services); do
    out=$(pm logs "$(container_name "$service")" 2>/dev/null)
    stderr_lines=$(pm logs "$(container_name "$service")" 2>&1 >/dev/null | grep -c . || true)
    lines=$(grep -c . <<<"$out" || true)
    json=$(grep . <<<"$out" | jq -c 'select(type == "object")' 2>/dev/null | grep -c . || true)
    check "$([ "$lines" -gt 0 ] && [ "$lines" = "$json" ] && echo 0 || echo 1)" "$service: JSON log lines on stdout" \
      "$json of $lines stdout lines are JSON objects; $stderr_lines stderr lines"
  done
}

# SIGTERM (podman stop) while a bounded load runs: exit 0 within the stop
# timeout, no failed request during the drain.
check_stop() {
  local service port name stop_timeout drain load_out started stopped rc exit_code
  service=$(services | head -1)
  port=$(host_port "$service")
  name=$(container_name "$service")
  stop_timeout=$(definition "$service" | jq -r .stopTimeout)
  drain=$(env_value "$service" DRAIN_DELAY)
  load_out=$IMG_STATE/test/h2load.txt
  # 4 s of load; SIGTERM after 1 s, so the load ends inside DRAIN_DELAY (5 s).
  timeout 20 h2load --duration=4 --clients=4 --max-concurrent-streams=4 \
    "http://127.0.0.1:$port/$service/status" >"$load_out" 2>&1 &
  local load_pid=$!
  sleep 1
  started=$(date +%s.%N)
  pm stop "$name" >/dev/null 2>"$IMG_STATE/test/podman-stop.err" && rc=0 || rc=$?
  grep -v 'unable to get systemd connection' "$IMG_STATE/test/podman-stop.err" >&2 || true
  stopped=$(date +%s.%N)
  wait "$load_pid" || true
  exit_code=$(pm inspect --format '{{.State.ExitCode}}' "$name")
  local seconds
  seconds=$(awk -v a="$started" -v b="$stopped" 'BEGIN {printf "%.1f", b - a}')
  check "$([ "$rc" = 0 ] && [ "$exit_code" = 0 ] && awk -v s="$seconds" -v t="$stop_timeout" 'BEGIN {exit !(s < t)}' && echo 0 || echo 1)" \
    "$service: podman stop (SIGTERM) under load" "exit code $exit_code after $seconds s (stop timeout $stop_timeout s, DRAIN_DELAY $drain)"
  local requests codes failed errored done_
  requests=$(grep '^requests:' "$load_out" || echo "no h2load summary")
  codes=$(grep '^status codes:' "$load_out" || true)
  failed=$(sed -n 's/^requests:.* \([0-9]*\) failed.*/\1/p' "$load_out")
  errored=$(sed -n 's/^requests:.* \([0-9]*\) errored.*/\1/p' "$load_out")
  done_=$(sed -n 's/^requests:.* \([0-9]*\) done.*/\1/p' "$load_out")
  check "$([ "${failed:-x}" = 0 ] && [ "${errored:-x}" = 0 ] && [ "${done_:-0}" -gt 0 ] && echo 0 || echo 1)" \
    "$service: load during the drain (h2load 4 s, SIGTERM at 1 s)" "${requests#requests: }; ${codes#status codes: }"
  local last
  last=$(pm logs "$name" 2>/dev/null | grep . | tail -1 | cut -c1-110)
  row ok "$service: last log line" "$last"
}

cmd_test() {
  require_tools podman runc jq curl grpcurl h2load cargo pgrep
  img_dirs
  have_image "$IMG_APP" || die "no $IMG_APP: run scripts/image.sh build first"
  # The network's name, subnet and bridge are fixed: one test at a time on
  # this machine, whichever clone runs it.
  exec 9>/run/lock/status-image-test.lock
  flock --timeout 900 9 || die "another scripts/image.sh test held the lock for 15 min"
  remove_test_containers
  trap remove_test_containers EXIT
  load_definitions
  say "test: settings from IaC/*.tf: $(jq -c 'map_values(.unevaluated)' "$IMG_STATE/test/definitions.json") not evaluable offline (not needed here)"
  printf '%-4s | %-50s | %s\n' result check saw
  check_image
  start_services
  check_settings
  check_rest
  check_grpc
  check_health
  check_logs
  check_stop
  remove_test_containers
  trap - EXIT
  if [ "$IMG_FAILED" -ne 0 ]; then
    say "image test: FAILED (rows marked FAIL above)"
    return 1
  fi
  say "image test: all ${#IMG_ROWS[@]} checks passed"
}
