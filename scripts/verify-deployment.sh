#!/usr/bin/env bash
# After a `terraform apply` of IaC/: wait until the ECS services are stable,
# run the smoke test (scripts/smoke-test.sh), and restart both services once
# when a Service Connect name does not resolve in some task. What
# scripts/deploy.sh does after its apply, and what the GitHub deploy
# workflow runs after its own.
#
# Usage:
#   scripts/verify-deployment.sh [verify]   # wait, smoke test, restart once if needed
#   scripts/verify-deployment.sh restart    # restart both services (rolling), wait
#
# Why the restart: a Service Connect task knows the endpoints that existed
# when it started. When both services start together (the first deployment,
# a rerun after an apply that created them and then failed, a replacement
# after service_connect_app_protocol changed), a task of one may never
# resolve the other's name. The smoke test shows it as other-status failing
# only with a name-resolution error (exit 3); the decision comes from what the
# tasks answer, not from Terraform's state. A restart is a rolling deployment
# of the same task definition: safe to repeat.
#
# Needs terraform (IaC/ initialised with the state's backend), the AWS CLI
# with credentials, jq, curl.
#
# Environment (all optional):
#   RESTART_SERVICES=1  restart both services once before the smoke test, whatever
#                       it would say
#   CURL_INSECURE, SMOKE_ATTEMPTS, SMOKE_DNS_ATTEMPTS: see scripts/smoke-test.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
iac_dir="${repo_root}/IaC"

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARN: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

tf() { terraform -chdir="${iac_dir}" "$@"; }

# Sets `cluster`, `region` and the array `services` (ECS service names) from
# the terraform outputs.
read_services() {
  cluster="$(tf output -raw cluster_name)"
  region="$(tf output -raw aws_region)"
  export AWS_REGION="${region}" AWS_DEFAULT_REGION="${region}"
  services=()
  read -r -a services <<<"$(tf output -json service_names | jq -r '[.[]] | join(" ")')"
  [[ ${#services[@]} -gt 0 ]] || die "terraform output service_names is empty"
}

wait_stable() {
  log "waiting for ${services[*]} in ${cluster} to become stable (aws ecs wait services-stable, up to 10 min)"
  if ! aws ecs wait services-stable --region "${region}" --cluster "${cluster}" --services "${services[@]}"; then
    warn "services did not become stable; latest events:"
    aws ecs describe-services --region "${region}" --cluster "${cluster}" --services "${services[@]}" \
      --query 'services[].{service:serviceName,running:runningCount,desired:desiredCount,events:events[:5].message}' \
      --output json >&2 || true
    die "deployment not stable (the circuit breaker may be rolling back; see the events above and the CloudWatch logs)"
  fi
}

restart_services() {
  local service
  log "restarting ${services[*]} so that every task knows every Service Connect name"
  for service in "${services[@]}"; do
    aws ecs update-service --region "${region}" --cluster "${cluster}" --service "${service}" \
      --force-new-deployment --query 'service.serviceName' --output text >&2
  done
  wait_stable
}

smoke_test() { "${repo_root}/scripts/smoke-test.sh"; }

verify() {
  local status=0
  wait_stable
  if [[ "${RESTART_SERVICES:-0}" == "1" ]]; then restart_services; fi
  smoke_test || status=$?
  if [[ ${status} == 3 ]]; then
    log "a Service Connect name does not resolve in some task: restarting both services once"
    restart_services
    status=0
    smoke_test || status=$?
  fi
  [[ ${status} == 0 ]] || die "smoke test failed (exit ${status}; its output above says why)"
  print_grpcurl
}

print_grpcurl() {
  local cmd
  cmd="$(tf output -raw grpcurl_exec_command 2>/dev/null || true)"
  if [[ -z "${cmd}" ]]; then
    log "in-cluster grpcurl toolbox is off (set -var toolbox_enabled=true to get one)"
    return
  fi
  cat >&2 <<EOF

gRPC from inside the cluster: this runs grpcurl in the toolbox task through ECS
Exec (needs the AWS CLI Session Manager plugin). Service Connect names such as
service-a-sc:8201 and service-b-sc:8202 resolve only inside ECS services, not from
your machine or a standalone run-task. Paste it, or change the grpcurl arguments
(e.g. 'grpcurl -plaintext service-a-sc:8201 scdemo.status.v1.StatusService/GetStatus'):

  ${cmd}

EOF
}

main() {
  local tool
  case "${1:-}" in
    -h | --help | help)
      sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p;}' "${BASH_SOURCE[0]}"
      return
      ;;
  esac
  for tool in terraform aws jq curl; do
    command -v "${tool}" >/dev/null 2>&1 || die "'${tool}' is required but not on PATH"
  done
  read_services
  case "${1:-verify}" in
    verify) verify ;;
    restart) restart_services ;;
    *) die "unknown subcommand '$1' (verify, restart, help)" ;;
  esac
}

cluster=""
region=""
services=()

main "$@"
