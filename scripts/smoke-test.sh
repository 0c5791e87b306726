#!/usr/bin/env bash
# Smoke test of a deployment through its ALB: healthcheck, status and
# other-status of every service must answer 200. The one smoke test of this
# repository: scripts/deploy.sh and .github/workflows/deploy.yml both run it.
# When a path fails, it says why instead of only "failed":
#   - other-status fails with a name-resolution error while the rest passes:
#     a task started before its peer's Service Connect endpoint existed
#     (exit 3; `scripts/deploy.sh restart` fixes it, deploy.sh does it itself);
#   - ALB health checks fail while the tasks' own health checks pass: the
#     likely cause is the port's appProtocol; it prints the variable to change.
#
# Usage:
#   scripts/smoke-test.sh                      # reads `terraform -chdir=IaC output -json`
#   scripts/smoke-test.sh --alb-url URL [--services "service-a service-b"] [--no-aws]
#
#   --alb-url URL   base URL instead of the alb_url output (then --services too,
#                   unless terraform outputs are readable)
#   --services S    path prefixes to test (default: the keys of service_names)
#   --no-aws        never call the AWS CLI (no diagnosis of failures)
#
# Exit status: 0 every path answered 200; 3 only other-status failed, each with
# a name-resolution error; 1 anything else failed; 2 bad usage or missing tools.
#
# Needs bash, curl; with terraform outputs also terraform and jq; the diagnosis
# needs the AWS CLI with read access (elbv2 describe-target-health, ecs
# list-tasks/describe-tasks).
#
# Environment (all optional):
#   CURL_INSECURE       auto (default) | 1 | 0. auto adds curl -k when the host is
#                       the ALB's own *.elb.amazonaws.com name, which no trusted
#                       certificate can match (the demo certificate is self-signed)
#   SMOKE_ATTEMPTS      attempts per URL, with backoff 2, 4, ... 30 s (default 8, ~3 min)
#   SMOKE_DNS_ATTEMPTS  attempts of an other-status that fails to resolve its peer
#                       (default 3: retrying does not make the name appear)
#   SMOKE_MAX_TIME      seconds per request (default 15)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
iac_dir="${repo_root}/IaC"

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 2
}

# What the app's other-status answers when the peer's Service Connect name
# does not resolve (hyper-util's connector, glibc and musl wordings).
readonly NAME_RESOLUTION_ERROR='dns error|failed to lookup address|name or service not known|no address associated|temporary failure in name resolution|nodename nor servname'
# ALB target health reasons of failing health checks (not of draining etc.).
readonly FAILED_CHECK_REASONS='Target.FailedHealthChecks|Target.ResponseCodeMismatch|Target.Timeout'

alb_url=""
services=()
use_aws=1
outputs=""

parse_args() {
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --alb-url)
        [[ $# -ge 2 ]] || die "--alb-url needs a value"
        alb_url="$2"
        shift 2
        ;;
      --services)
        [[ $# -ge 2 ]] || die "--services needs a value"
        read -r -a services <<<"$2"
        shift 2
        ;;
      --no-aws)
        use_aws=0
        shift
        ;;
      -h | --help)
        sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//p;}' "${BASH_SOURCE[0]}"
        exit 0
        ;;
      *) die "unknown argument '$1' (--help)" ;;
    esac
  done
}

# An output of `terraform output -json`, as raw text ("" when absent).
output() {
  [[ -n "${outputs}" ]] || return 0
  jq -r --arg k "$1" '.[$k].value // empty | if type == "object" or type == "array" then tojson else . end' <<<"${outputs}"
}

read_outputs() {
  if [[ -n "${alb_url}" && ${#services[@]} -gt 0 && ${use_aws} == 0 ]]; then
    return
  fi
  command -v terraform >/dev/null 2>&1 || die "terraform is required to read the outputs (or pass --alb-url, --services and --no-aws)"
  command -v jq >/dev/null 2>&1 || die "jq is required to read the terraform outputs"
  outputs="$(terraform -chdir="${iac_dir}" output -json)" || die "terraform output failed (run terraform init with the same backend first)"
  [[ -n "${alb_url}" ]] || alb_url="$(output alb_url)"
  if [[ ${#services[@]} -eq 0 ]]; then
    read -r -a services <<<"$(jq -r '.service_names.value // {} | keys | join(" ")' <<<"${outputs}")"
  fi
}

curl_opts=()

setup_curl() {
  local host="${alb_url#*://}"
  host="${host%%[:/]*}"
  curl_opts=(-sS -L --connect-timeout 5 --max-time "${SMOKE_MAX_TIME:-15}" -o "${body_file}" -w '%{http_code}')
  case "${CURL_INSECURE:-auto}" in
    1) curl_opts+=(-k) ;;
    0) ;;
    auto)
      if [[ "${host}" == *.elb.amazonaws.com ]]; then
        curl_opts+=(-k)
        log "curl -k: ${host} is the ALB's own name, which no trusted certificate matches"
      fi
      ;;
    *) die "CURL_INSECURE must be auto, 1 or 0" ;;
  esac
}

# Fills these for the summary and the diagnosis.
failed_paths=()      # "<service> <path> <code>"
unresolved_paths=()  # other-status paths that failed with a name-resolution error
failed_serving=()    # services whose healthcheck or status failed

# GET one URL until 200 or out of attempts; sets `code` and leaves the last
# body in body_file.
fetch() {
  local url="$1" attempts="${SMOKE_ATTEMPTS:-8}" dns_attempts="${SMOKE_DNS_ATTEMPTS:-3}"
  local n=1 delay=2
  while :; do
    : >"${body_file}"
    code="$(curl "${curl_opts[@]}" "${url}")" || code="000"
    [[ "${code}" == "200" ]] && return 0
    if ((n >= attempts)); then return 1; fi
    if ((n >= dns_attempts)) && grep -qiE "${NAME_RESOLUTION_ERROR}" "${body_file}"; then return 1; fi
    sleep "${delay}"
    n=$((n + 1))
    delay=$((delay * 2 > 30 ? 30 : delay * 2))
  done
}

run_paths() {
  local svc path url body
  log "smoke test through ${alb_url}"
  for svc in "${services[@]}"; do
    for path in healthcheck status other-status; do
      url="${alb_url}/${svc}/${path}"
      if fetch "${url}"; then
        printf '  200 %s  %s\n' "${url}" "$(head -c 200 "${body_file}" | tr -d '\n')" >&2
        continue
      fi
      body="$(head -c 300 "${body_file}" 2>/dev/null | tr -d '\n')"
      printf '  %s %s  FAILED: %s\n' "${code}" "${url}" "${body}" >&2
      failed_paths+=("${svc} ${path} ${code}")
      if [[ "${path}" == other-status ]] && grep -qiE "${NAME_RESOLUTION_ERROR}" "${body_file}"; then
        unresolved_paths+=("${url}")
      elif [[ "${path}" != other-status ]]; then
        [[ " ${failed_serving[*]-} " == *" ${svc} "* ]] || failed_serving+=("${svc}")
      fi
    done
  done
}

# Counts of one service's ALB targets and ECS tasks; prints what it found.
diagnose_service() {
  local svc="$1" region cluster ecs_name tg health tasks task_health line
  region="$(output aws_region)"
  cluster="$(output cluster_name)"
  ecs_name="$(jq -r --arg k "${svc}" '.service_names.value[$k] // empty' <<<"${outputs}")"
  tg="$(jq -r --arg k "${svc}" '.rest_target_group_arns.value[$k] // empty' <<<"${outputs}")"
  if [[ -z "${region}" || -z "${cluster}" || -z "${ecs_name}" || -z "${tg}" ]]; then
    log "${svc}: the terraform outputs lack what the diagnosis needs (apply the current IaC/)"
    return 1
  fi
  health="$(aws elbv2 describe-target-health --region "${region}" --target-group-arn "${tg}" \
    --query 'TargetHealthDescriptions[].[Target.Id,TargetHealth.State,TargetHealth.Reason]' --output text 2>&1)" ||
    {
      log "${svc}: aws elbv2 describe-target-health failed: ${health}"
      return 1
    }
  tasks="$(aws ecs list-tasks --region "${region}" --cluster "${cluster}" --service-name "${ecs_name}" \
    --desired-status RUNNING --query 'taskArns' --output text 2>&1)" ||
    {
      log "${svc}: aws ecs list-tasks failed: ${tasks}"
      return 1
    }
  task_health=""
  if [[ -n "${tasks}" && "${tasks}" != None ]]; then
    # shellcheck disable=SC2086 # task ARNs are whitespace-separated words
    task_health="$(aws ecs describe-tasks --region "${region}" --cluster "${cluster}" --tasks ${tasks} \
      --query 'tasks[].healthStatus' --output text 2>&1)" || task_health=""
  fi
  printf '  %s: ALB targets (id state reason):\n' "${svc}" >&2
  while IFS= read -r line; do printf '      %s\n' "${line}" >&2; done <<<"${health:-none}"
  printf '  %s: ECS task health: %s\n' "${svc}" "${task_health:-no running task}" >&2

  healthy_tasks=$(tr -s '[:space:]' '\n' <<<"${task_health}" | grep -cx HEALTHY || true)
  healthy_targets=$(awk '$2 == "healthy"' <<<"${health}" | grep -c . || true)
  failing_targets=$(awk '$2 == "unhealthy"' <<<"${health}" | grep -cE "${FAILED_CHECK_REASONS}" || true)
}

app_protocol_hint() {
  local current next
  current="$(output service_connect_app_protocol)"
  case "${current:-grpc}" in
    grpc) next="http2" ;;
    http2) next="none" ;;
    *) next="" ;;
  esac
  if [[ -z "${next}" ]]; then
    cat >&2 <<EOF

The tasks are healthy but the ALB's health checks fail, with appProtocol
"${current}" already. Check the security groups (ALB -> tasks on the service
ports), the target group protocol (HTTPS with Service Connect TLS on) and the
proxy logs in the service-connect log group (IaC/README.md, Troubleshooting).
EOF
    return
  fi
  cat >&2 <<EOF

LIKELY CAUSE: the port's appProtocol. The tasks' own health checks pass, but
the ALB's health checks fail. They reach the Service Connect proxy over
HTTP/1.1 on a port whose appProtocol is "${current:-grpc}", and AWS does not
document whether the proxy accepts HTTP/1.1 there. Change the Terraform
variable

    service_connect_app_protocol = "${next}"

(in IaC/terraform.tfvars or your -var-file, or: scripts/deploy.sh -var
service_connect_app_protocol=${next}) and apply again. Terraform then replaces
both services, since appProtocol is immutable on a Service Connect service.
EOF
  if [[ "${next}" == http2 ]]; then
    echo 'If "http2" fails the same way, use "none" (TCP: gRPC between the services is then balanced per connection, not per call).' >&2
  else
    echo '"none" sets no appProtocol: TCP, so gRPC between the services is balanced per connection, not per call.' >&2
  fi
  echo 'IaC/README.md, Troubleshooting, has the details.' >&2
}

diagnose() {
  local svc suspect=0
  if [[ ${use_aws} == 0 || -z "${outputs}" ]]; then
    log "no diagnosis (--no-aws or no terraform outputs)"
    return
  fi
  command -v aws >/dev/null 2>&1 || {
    log "no diagnosis: the AWS CLI is not installed"
    return
  }
  log "diagnosis: ALB target health and ECS task health"
  for svc in "${failed_serving[@]}"; do
    healthy_tasks=0 healthy_targets=0 failing_targets=0
    diagnose_service "${svc}" || continue
    if ((healthy_tasks > 0 && healthy_targets == 0 && failing_targets > 0)); then suspect=1; fi
  done
  if ((suspect)); then app_protocol_hint; fi
}

main() {
  parse_args "$@"
  command -v curl >/dev/null 2>&1 || die "curl is required"
  body_file="$(mktemp)"
  trap 'rm -f "${body_file}"' EXIT
  read_outputs
  alb_url="${alb_url%/}"
  [[ -n "${alb_url}" ]] || die "no ALB URL (terraform output alb_url is empty; pass --alb-url)"
  [[ ${#services[@]} -gt 0 ]] || die "no services to test (terraform output service_names is empty; pass --services)"
  setup_curl
  run_paths

  if [[ ${#failed_paths[@]} -eq 0 ]]; then
    log "smoke test passed: all $((${#services[@]} * 3)) REST paths answered 200"
    return 0
  fi
  if [[ ${#unresolved_paths[@]} -eq ${#failed_paths[@]} ]]; then
    cat >&2 <<EOF
==> smoke test: only other-status failed, with a name-resolution error. A task
    started before its peer's Service Connect endpoint existed and will never
    learn the name (Service Connect tasks know the endpoints that existed when
    they started). Restart the services: scripts/deploy.sh restart
EOF
    return 3
  fi
  if [[ ${#failed_serving[@]} -gt 0 ]]; then diagnose; fi
  log "smoke test failed: ${#failed_paths[@]} of $((${#services[@]} * 3)) paths"
  return 1
}

healthy_tasks=0
healthy_targets=0
failing_targets=0
code=""
body_file=""

main "$@"
