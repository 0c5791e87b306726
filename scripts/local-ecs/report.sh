# shellcheck shell=bash
# What `scripts/local-ecs.sh test` prints: the summary table at the end, the
# logs' last lines when it fails, and the stopping of its background jobs.
# Sourced by scripts/local-ecs.sh.

LECS_RESULTS=()
LECS_LOG_TAIL_LINES=15

# lecs_result CHECK REQUESTS FAILED DETAIL: one row of the summary.
lecs_result() { LECS_RESULTS+=("$1|$2|$3|$4"); }

lecs_report_summary() {
  local row check requests failed detail total=0
  printf '\n%-46s %9s %7s  %s\n' "local-ecs test" requests failed detail
  printf '%s\n' "--------------------------------------------------------------------------------------------------------------"
  for row in "${LECS_RESULTS[@]}"; do
    IFS='|' read -r check requests failed detail <<<"$row"
    printf '%-46s %9s %7s  %s\n' "$check" "$requests" "$failed" "$detail"
    total=$((total + requests))
  done
  printf '%s\n' "--------------------------------------------------------------------------------------------------------------"
  printf '%-46s %9s %7s  %s\n' "all checks passed" "$total" "" "in $1 s (up, checks, down)"
}

# Stops whatever the test still runs in the background (loads, captures).
lecs_stop_background() {
  local pid
  for pid in "${LECS_BG_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# The proxies' logs (errors and state changes only) and the apps' lines that
# are not access-log lines.
lecs_report_logs_tail() {
  local ns file
  [ -d "$LECS_RUN" ] || return 0
  for ns in "${LECS_NAMESPACES[@]}"; do
    for file in "$LECS_RUN/$ns/proxy.log" "$LECS_RUN/$ns/app.log"; do
      [ -s "$file" ] || continue
      printf -- '--- %s (last %s lines)\n' "${file#"$LECS_RUN"/}" "$LECS_LOG_TAIL_LINES" >&2
      grep -v -e 'access_log"' -e '^\[WARNING\]' "$file" |
        tail -n "$LECS_LOG_TAIL_LINES" | cut -c1-300 >&2
    done
  done
}
