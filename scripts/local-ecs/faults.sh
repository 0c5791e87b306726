# shellcheck shell=bash
# The fault checks of `scripts/local-ecs.sh test`, under a steady, bounded
# load through the load balancer: a rolling restart of service-b (0 failed
# requests allowed) and a kill -9 of one replica (failures counted, printed
# and bounded). Sourced by scripts/local-ecs.sh.

# Each load is one curl with a request count and a rate cap (--rate): a steady
# stream over one reused connection, bounded in count and time.
LECS_LOAD_RATE=50                 # requests per second, per load
LECS_LOAD_MAX_TIME=5              # seconds, per request
LECS_ROLLING_LOAD_SECONDS=30      # covers two replicas' drain, stop, start, rise (~17 s here)
LECS_KILL_LOAD_SECONDS=15
LECS_LOAD_LEAD_SECONDS=2          # load on both replicas before the first fault
# The two loads: B directly through the ALB, and A calling B through
# service-b-sc (each request a gRPC call through both proxies).
declare -A LECS_LOADS=([alb-b]=/service-b/status [alb-a-other]=/service-a/other-status)
LECS_BG_PIDS=()
declare -A LECS_LOAD_PID=()

lecs_now_ms() { date +%s%3N; }
lecs_seconds_since() { awk -v t0="$1" -v t1="$(lecs_now_ms)" 'BEGIN { printf "%.1f", (t1 - t0) / 1000 }'; }

# lecs_load_start NAME COUNT: starts LECS_LOADS[NAME] in the background; one
# line per request: the body, a tab, the HTTP status (000: no answer).
lecs_load_start() {
  local name=$1 count=$2 out
  out=$LECS_RUN/loads/$name.out
  mkdir -p "$LECS_RUN/loads"
  env "$LECS_MARKER=load/$name" curl -s --http2 --cacert "$(lecs_ca_file)" --max-time "$LECS_LOAD_MAX_TIME" \
    --rate "$LECS_LOAD_RATE/s" -w '\t%{http_code}\n' \
    "$(lecs_alb_url)${LECS_LOADS[$name]}?n=[1-$count]" >"$out" 2>/dev/null &
  LECS_LOAD_PID[$name]=$!
  LECS_BG_PIDS+=("$!")
}

# lecs_load_wait NAME COUNT: waits (bounded) for the load to send everything.
lecs_load_wait() {
  local name=$1 count=$2 pid=${LECS_LOAD_PID[$1]}
  lecs_wait $((count / LECS_LOAD_RATE + 2 * LECS_LOAD_MAX_TIME + 10)) "load $name to finish" lecs_pid_gone "$pid" ||
    lecs_die "load $name did not finish"
  wait "$pid" 2>/dev/null || true
}

# lecs_load_counts NAME: "requests failed task-b1 task-b2" (replica = the
# hostname in the answer, which is B's own status in both loads).
lecs_load_counts() {
  awk -F'\t' '
    { n++; if ($NF != 200) bad++ }
    /"hostname":"task-b1"/ { b1++ }
    /"hostname":"task-b2"/ { b2++ }
    END { printf "%d %d %d %d\n", n, bad, b1, b2 }' "$LECS_RUN/loads/$1.out"
}

# lecs_load_failures_sample NAME: the first few failures, status and body.
lecs_load_failures_sample() {
  awk -F'\t' '$NF != 200 { body = substr($1, 1, 150); printf "HTTP %s %s\n", $NF, (body == "" ? "(empty body)" : body) }' \
    "$LECS_RUN/loads/$1.out" | head -n 3
}

# Retries and redispatches so far of task-a's sc-service-b: how service-a's
# calls to service-b-sc were replayed on another replica.
lecs_sc_retries() {
  lecs_proxy_cmd task-a "show stat" | awk -F, '$1 == "sc-service-b" && $2 == "BACKEND" { print $16 + 0, $17 + 0 }'
}

# lecs_out_of_rotation_before_exit TASK PID T0: every balancer marks TASK
# DOWN while its app (PID) still runs; prints the seconds it took since T0.
lecs_out_of_rotation_before_exit() {
  local task=$1 pid=$2 t0=$3 deadline=$((SECONDS + LECS_STOP_TIMEOUT))
  until lecs_all_balancers_see "$task" DOWN; do
    lecs_pid_alive "$pid" || lecs_die "$task's app stopped before every balancer took it out"
    ((SECONDS < deadline)) || lecs_die "$task never went DOWN everywhere"
    sleep 0.05
  done
  lecs_pid_alive "$pid" || lecs_die "$task's app stopped before every balancer took it out"
  lecs_seconds_since "$t0"
}

# lecs_restart_app TASK: start the app again and wait until every balancer
# has it UP; prints the seconds that took.
lecs_restart_app() {
  local task=$1 t0
  t0=$(lecs_now_ms)
  lecs_app_start "$task"
  lecs_wait "$LECS_START_TIMEOUT" "$task SERVING" lecs_app_serving "$task" || lecs_die "$task did not restart"
  lecs_wait "$LECS_START_TIMEOUT" "$task UP everywhere" lecs_all_balancers_see "$task" UP ||
    lecs_die "$task not UP everywhere after restart"
  lecs_seconds_since "$t0"
}

# Rolling restart, b1 then b2, as an ECS deployment with minimum healthy 100%
# replaces tasks: SIGTERM, the app drains (health NOT_SERVING at once, still
# serving for DRAIN_DELAY), the balancers take it out, it exits 0, it starts
# again and the next replica waits until it is UP everywhere.
lecs_fault_rolling_restart() {
  local count=$((LECS_LOAD_RATE * LECS_ROLLING_LOAD_SECONDS)) name task pid t0 out_s exit_s up_s status
  local before after requests failed b1 b2 total=0
  lecs_log "rolling restart of service-b under load: $count requests per load at $LECS_LOAD_RATE/s"
  before=$(lecs_sc_retries)
  for name in "${!LECS_LOADS[@]}"; do lecs_load_start "$name" "$count"; done
  sleep "$LECS_LOAD_LEAD_SECONDS"
  for task in task-b1 task-b2; do
    pid=$(lecs_app_pid "$task")
    t0=$(lecs_now_ms)
    kill -TERM "$pid"
    out_s=$(lecs_out_of_rotation_before_exit "$task" "$pid" "$t0")
    lecs_wait "$LECS_STOP_TIMEOUT" "$task's app to exit" lecs_pid_gone "$pid" || lecs_die "$task did not exit"
    exit_s=$(lecs_seconds_since "$t0")
    status=0
    wait "$pid" || status=$?
    [ "$status" = 0 ] || lecs_die "$task's app exited $status after SIGTERM, want 0"
    up_s=$(lecs_restart_app "$task")
    printf '  %s: SIGTERM -> out of every balancer %ss -> exit 0 at %ss -> restarted, UP everywhere %ss later\n' \
      "$task" "$out_s" "$exit_s" "$up_s"
  done
  for name in "${!LECS_LOADS[@]}"; do
    lecs_pid_alive "${LECS_LOAD_PID[$name]}" ||
      lecs_die "load $name ended before the restart did: raise LECS_ROLLING_LOAD_SECONDS"
  done
  for name in "${!LECS_LOADS[@]}"; do lecs_load_wait "$name" "$count"; done
  after=$(lecs_sc_retries)
  for name in "${!LECS_LOADS[@]}"; do
    read -r requests failed b1 b2 < <(lecs_load_counts "$name")
    printf '  load %-12s %s: %s requests, %s failed (task-b1 %s, task-b2 %s)\n' \
      "$name" "${LECS_LOADS[$name]}" "$requests" "$failed" "$b1" "$b2"
    [ "$requests" = "$count" ] || lecs_die "load $name sent $requests of $count"
    [ "$failed" = 0 ] || lecs_die "rolling restart: $failed failed on $name: $(lecs_load_failures_sample "$name")"
    total=$((total + requests))
  done
  # Nothing was hidden by retries either: the drain alone kept every answer.
  printf '  service-a -> service-b-sc retries (retried, redispatched): %s -> %s\n' "$before" "$after"
  [ "$before" = "$after" ] || lecs_die "rolling restart: service-a's proxy had to retry ($before -> $after)"
  lecs_result "rolling restart b1, b2 under load" "$total" 0 \
    "out of every balancer before exit; 0 retries; $LECS_LOAD_RATE/s x 2 loads"
}

# kill -9 of task-b1's app under load: nothing drains. The ALB (no retries)
# fails what it sends to b1 until its checks see it DOWN; the Service Connect
# stand-in retries what it can (connection refused, 503 from the peer proxy,
# empty answers) on b2, and cannot retry a request b1 was processing.
lecs_fault_kill_replica() {
  local count=$((LECS_LOAD_RATE * LECS_KILL_LOAD_SECONDS)) name pid t0 out_s up_s before after
  local requests failed b1 b2 total=0 total_failed=0 bound
  lecs_log "kill -9 of task-b1's app under load: $count requests per load at $LECS_LOAD_RATE/s"
  before=$(lecs_sc_retries)
  for name in "${!LECS_LOADS[@]}"; do lecs_load_start "$name" "$count"; done
  sleep "$LECS_LOAD_LEAD_SECONDS"
  pid=$(lecs_app_pid task-b1)
  t0=$(lecs_now_ms)
  kill -KILL "$pid"
  lecs_wait "$LECS_STOP_TIMEOUT" "task-b1 DOWN everywhere" lecs_all_balancers_see task-b1 DOWN ||
    lecs_die "task-b1 never went DOWN everywhere after kill -9"
  out_s=$(lecs_seconds_since "$t0")
  wait "$pid" 2>/dev/null || true
  up_s=$(lecs_restart_app task-b1)
  printf '  task-b1: kill -9 -> out of every balancer %ss -> restarted, UP everywhere %ss later\n' "$out_s" "$up_s"
  for name in "${!LECS_LOADS[@]}"; do lecs_load_wait "$name" "$count"; done
  after=$(lecs_sc_retries)
  for name in "${!LECS_LOADS[@]}"; do
    read -r requests failed b1 b2 < <(lecs_load_counts "$name")
    bound=$(lecs_kill_bound "$name")
    printf '  load %-12s %s: %s requests, %s failed (bound %s; task-b1 %s, task-b2 %s)\n' \
      "$name" "${LECS_LOADS[$name]}" "$requests" "$failed" "$bound" "$b1" "$b2"
    ((failed == 0)) || printf '    e.g. %s\n' "$(lecs_load_failures_sample "$name" | head -n 1)"
    [ "$requests" = "$count" ] || lecs_die "load $name sent $requests of $count"
    ((failed <= bound)) || lecs_die "kill -9: $failed failed on $name, more than $bound"
    total=$((total + requests))
    total_failed=$((total_failed + failed))
  done
  printf '  service-a -> service-b-sc retries (retried, redispatched): %s -> %s\n' "$before" "$after"
  lecs_result "kill -9 task-b1 under load" "$total" "$total_failed" \
    "bounds: ALB $(lecs_kill_bound alb-b), via service-b-sc $(lecs_kill_bound alb-a-other)"
}

# lecs_kill_bound LOAD: most failures a kill -9 may cost that load.
#   alb-b: the ALB does not retry, so every request it sends to b1 between the
#     kill and its checks marking b1 DOWN fails: at most the whole load for
#     fall x inter + one check timeout + 1 s of slack.
#   alb-a-other: the Service Connect stand-in retries refused connections and
#     503s on b2; only a request b1 was processing when it died is lost, and
#     the load has one request in flight at a time.
lecs_kill_bound() {
  case $1 in
    alb-b) echo $((LECS_LOAD_RATE * (LECS_ALB_CHECK_FALL * ${LECS_ALB_CHECK_INTER%s} + ${LECS_CHECK_TIMEOUT%s} + 1))) ;;
    alb-a-other) echo 1 ;;
  esac
}
