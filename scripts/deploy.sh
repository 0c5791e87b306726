#!/usr/bin/env bash
# Build, push and deploy the status services to ECS Fargate (Terraform in IaC/),
# then smoke-test them through the ALB. Also tears everything down.
#
# Usage:
#   scripts/deploy.sh [deploy] [TERRAFORM_ARGS...]  # ECR -> build/push -> apply -> verify
#   scripts/deploy.sh build    [TERRAFORM_ARGS...]  # ECR -> build/push only; prints the image tag
#   scripts/deploy.sh verify                        # scripts/verify-deployment.sh: wait, smoke test,
#                                                   # restart once if a Service Connect name does not resolve
#   scripts/deploy.sh smoke                         # scripts/smoke-test.sh only
#   scripts/deploy.sh restart                       # restart both services (rolling), wait
#   scripts/deploy.sh destroy  [TERRAFORM_ARGS...]  # terraform destroy (same as scripts/destroy.sh)
#   scripts/deploy.sh bootstrap [TERRAFORM_ARGS...] # as an AWS administrator, once: apply only
#                                                   # local.bootstrap_targets (IaC/iam_boundary.tf):
#                                                   # the GitHub deploy role, its policies, the
#                                                   # roles' boundary, and what the role may read
#                                                   # but not create (KMS keys, CA, namespace,
#                                                   # default security group, demo certificate)
#
#   TERRAFORM_ARGS are passed to `terraform apply/destroy/console`, e.g.
#   -var task_cpu=512 or -var-file=prod.tfvars. Terraform runs with -chdir=IaC,
#   so a relative -var-file here is relative to IaC/ (use TF_VAR_FILE for a path
#   relative to where you are). IaC/terraform.tfvars is loaded automatically.
#
# Flow of `deploy` (no service is created before its image exists):
#   1. check tools and the AWS identity
#   2. terraform init; apply -target=aws_ecr_repository.app (only the repository)
#   3. image tag = <git sha, 12 chars>[-dirty-<UTC timestamp>]-<amd64|arm64>
#      (immutable; the arch suffix keeps an image of the wrong architecture from
#      ever being reused when cpu_architecture changes)
#   4. if that tag is not in ECR yet: docker login + docker buildx build --push
#      for the platform matching var.cpu_architecture (X86_64 -> linux/amd64,
#      ARM64 -> linux/arm64; the Dockerfile cross-compiles, no QEMU needed), or
#      for IMAGE_PLATFORMS
#   5. terraform apply -var image_tag=<tag>
#   6. scripts/verify-deployment.sh: aws ecs wait services-stable, then
#      scripts/smoke-test.sh (the six REST paths through the ALB). If other-status
#      fails only because a peer's Service Connect name does not resolve, restart
#      both services once, wait and smoke-test again (that script's header says
#      why). RESTART_SERVICES=1 restarts them before the smoke test in any case.
#   7. print the ECS Exec + grpcurl command (terraform output grpcurl_exec_command)
#
# Prerequisites: bash, git, terraform >= 1.5, AWS CLI v2 with credentials for the
# target account (ECS Exec additionally needs the Session Manager plugin), docker
# with buildx and a running engine (deploy/build), curl and jq (deploy/verify/smoke).
#
# Environment (all optional):
#   AWS_REGION        region; exported as TF_VAR_aws_region unless that is set
#                     (a value in a tfvars file still wins, and every AWS CLI call
#                     below uses the region Terraform ends up with; default us-east-2)
#   AWS_PROFILE       the usual AWS CLI / Terraform credential selection
#   CPU_ARCHITECTURE  X86_64 or ARM64: passed as -var cpu_architecture=...;
#                     unset = whatever Terraform resolves (tfvars / default X86_64)
#   TF_VAR_FILE       a .tfvars file (path relative to the current directory)
#   TF_BACKEND_CONFIG  a backend file (IaC/backend.hcl.example): keep the state in
#                     S3 with S3-native locking. Writes IaC/backend_override.tf
#                     (git-ignored) so that IaC/ gets an `s3` backend block, then
#                     runs terraform init -backend-config=<file>. Unset: local state.
#   TF_INIT_ARGS      extra `terraform init` arguments, e.g. "-backend-config=bucket=x"
#                     (after TF_BACKEND_CONFIG: these win)
#   IMAGE_TAG         deploy this tag instead of computing one (built and pushed
#                     from the current tree if it is not in ECR yet)
#   IMAGE_PLATFORMS   build for these platforms instead of the one of
#                     cpu_architecture, e.g. linux/amd64,linux/arm64 (one
#                     multi-arch tag; needs a docker-container buildx builder)
#   AUTO_APPROVE=1    pass -auto-approve to terraform apply/destroy (CI)
#   RESTART_SERVICES, CURL_INSECURE, SMOKE_*: see scripts/verify-deployment.sh
#
# Destroy: the ECR repository is deleted with its images only when
# var.ecr_force_delete is true (the default). With ecr_force_delete=false,
# empty the repository first or apply force_delete before destroying:
#   terraform -chdir=IaC apply -target=aws_ecr_repository.app -var ecr_force_delete=true -var image_tag=destroy
# alb_deletion_protection=true also blocks destroy until it is set false and applied.

set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
iac_dir="${repo_root}/IaC"

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARN: %s\n' "$*" >&2; }
die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not on PATH"
  done
}

# ---------------------------------------------------------------- terraform args
# tf_args: user arguments for apply/destroy/console (bash 3.2 safe: always
# expanded as ${tf_args[@]+"${tf_args[@]}"} so an empty array is fine with set -u).
tf_args=()
approve_args=()
init_args=()

setup_terraform_args() {
  if [[ -n "${AWS_REGION:-}" && -z "${TF_VAR_aws_region:-}" ]]; then
    export TF_VAR_aws_region="${AWS_REGION}"
  fi
  if [[ -n "${TF_VAR_FILE:-}" ]]; then
    [[ -f "${TF_VAR_FILE}" ]] || die "TF_VAR_FILE=${TF_VAR_FILE} does not exist"
    local abs
    abs="$(cd "$(dirname "${TF_VAR_FILE}")" && pwd)/$(basename "${TF_VAR_FILE}")"
    tf_args+=("-var-file=${abs}")
  fi
  if [[ -n "${CPU_ARCHITECTURE:-}" ]]; then
    case "${CPU_ARCHITECTURE}" in
      X86_64 | ARM64) tf_args+=("-var" "cpu_architecture=${CPU_ARCHITECTURE}") ;;
      *) die "CPU_ARCHITECTURE must be X86_64 or ARM64 (got '${CPU_ARCHITECTURE}')" ;;
    esac
  fi
  if [[ "${AUTO_APPROVE:-0}" == "1" ]]; then
    approve_args=("-auto-approve")
  fi
  if [[ -n "${TF_INIT_ARGS:-}" ]]; then
    read -r -a init_args <<<"${TF_INIT_ARGS}"
  fi
}

tf() { terraform -chdir="${iac_dir}" "$@"; }

tf_init() {
  local backend=() override="${iac_dir}/backend_override.tf"
  if [[ -n "${TF_BACKEND_CONFIG:-}" ]]; then
    [[ -f "${TF_BACKEND_CONFIG}" ]] || die "TF_BACKEND_CONFIG=${TF_BACKEND_CONFIG} does not exist"
    # IaC/ has no backend block (local state by default): this override file
    # gives it an empty s3 one, which the backend file fills in.
    printf '%s\n' "# Written by scripts/deploy.sh (TF_BACKEND_CONFIG); git-ignored." \
      'terraform {' '  backend "s3" {}' '}' >"${override}"
    backend=("-backend-config=$(cd "$(dirname "${TF_BACKEND_CONFIG}")" && pwd)/$(basename "${TF_BACKEND_CONFIG}")")
  elif [[ -f "${override}" ]]; then
    die "${override} exists (an earlier run with TF_BACKEND_CONFIG): set TF_BACKEND_CONFIG again, or delete it to go back to local state"
  fi
  log "terraform init"
  tf init -input=false ${backend[@]+"${backend[@]}"} ${init_args[@]+"${init_args[@]}"} >&2
}

# Evaluate an expression with the same variables apply would use (tfvars,
# TF_VAR_*, -var/-var-file); prints the bare string.
tf_eval() {
  local out err_file="${tmp_file}.tf_eval"
  if ! out="$(printf '%s\n' "$1" | tf console -var image_tag=console ${tf_args[@]+"${tf_args[@]}"} 2>"${err_file}")" ||
    [[ -z "${out}" ]]; then
    cat "${err_file}" >&2
    rm -f "${err_file}"
    die "terraform console could not evaluate: $1"
  fi
  rm -f "${err_file}"
  out="${out#\"}"
  printf '%s\n' "${out%\"}"
}

tf_output_raw() { tf output -raw "$1"; }

# ------------------------------------------------------------------------ checks
check_aws_identity() {
  local who
  who="$(aws sts get-caller-identity --region "${region}" --query Arn --output text)" ||
    die "no working AWS credentials (aws sts get-caller-identity failed)"
  log "AWS identity: ${who} (region ${region})"
}

check_docker() {
  docker buildx version >/dev/null 2>&1 || die "docker buildx is required (Docker >= 23 or the buildx plugin)"
  docker info >/dev/null 2>&1 || die "the Docker engine is not reachable (docker info failed)"
}

# ------------------------------------------------------------------------- image
# Sets: region, cpu_arch, platform, arch_suffix (from Terraform's resolved vars).
resolve_settings() {
  local resolved
  resolved="$(tf_eval 'format("%s %s", var.aws_region, var.cpu_architecture)')"
  read -r region cpu_arch <<<"${resolved}"
  [[ -n "${region:-}" && -n "${cpu_arch:-}" ]] || die "could not resolve aws_region/cpu_architecture from Terraform (got '${resolved}')"
  case "${cpu_arch}" in
    X86_64) platform="linux/amd64" arch_suffix="amd64" ;;
    ARM64) platform="linux/arm64" arch_suffix="arm64" ;;
    *) die "unexpected cpu_architecture '${cpu_arch}'" ;;
  esac
  if [[ -n "${IMAGE_PLATFORMS:-}" ]]; then
    [[ ",${IMAGE_PLATFORMS}," == *",${platform},"* ]] ||
      die "IMAGE_PLATFORMS=${IMAGE_PLATFORMS} lacks ${platform}, the platform of cpu_architecture ${cpu_arch}"
    platform="${IMAGE_PLATFORMS}"
  fi
  export AWS_REGION="${region}" AWS_DEFAULT_REGION="${region}"
  log "region ${region}, cpu_architecture ${cpu_arch} (image platforms ${platform})"
}

compute_tag() {
  if [[ -n "${IMAGE_TAG:-}" ]]; then
    printf '%s\n' "${IMAGE_TAG}"
    return
  fi
  local sha dirty=""
  sha="$(git -C "${repo_root}" rev-parse --short=12 HEAD 2>/dev/null)" ||
    die "not a git checkout with a commit: set IMAGE_TAG"
  if [[ -n "$(git -C "${repo_root}" status --porcelain)" ]]; then
    dirty="-dirty-$(date -u +%Y%m%d%H%M%S)"
  fi
  printf '%s%s-%s\n' "${sha}" "${dirty}" "${arch_suffix}"
}

# 0 = tag exists, 1 = not found; any other error is fatal.
image_exists() {
  local repo_name="$1" tag="$2" err
  if err="$(aws ecr describe-images --region "${region}" --repository-name "${repo_name}" \
    --image-ids "imageTag=${tag}" --query 'imageDetails[0].imageDigest' --output text 2>&1)"; then
    return 0
  fi
  [[ "${err}" == *ImageNotFoundException* ]] && return 1
  die "aws ecr describe-images failed: ${err}"
}

# Creates the ECR repository, builds and pushes the image if needed; sets image_tag.
ensure_image() {
  log "creating the ECR repository (terraform apply -target=aws_ecr_repository.app)"
  tf apply -input=false ${approve_args[@]+"${approve_args[@]}"} -target=aws_ecr_repository.app \
    ${tf_args[@]+"${tf_args[@]}"} -var image_tag=bootstrap >&2

  local repo_url registry repo_name
  repo_url="$(tf_output_raw ecr_repository_url)" || die "terraform output ecr_repository_url is missing"
  [[ "${repo_url}" == *.dkr.ecr.*/* ]] || die "unexpected ecr_repository_url '${repo_url}'"
  registry="${repo_url%%/*}"
  repo_name="${repo_url#*/}"

  image_tag="$(compute_tag)"
  if image_exists "${repo_name}" "${image_tag}"; then
    log "image ${repo_url}:${image_tag} is already in ECR: not rebuilding"
    return
  fi

  check_docker
  log "docker login ${registry}"
  aws ecr get-login-password --region "${region}" |
    docker login --username AWS --password-stdin "${registry}" >/dev/null

  log "building and pushing ${repo_url}:${image_tag} (${platform})"
  # No provenance/SBOM attestations: the tag stays a plain image manifest (or,
  # for several platforms, an index of plain manifests), which ECR basic
  # scan-on-push can scan.
  docker buildx build \
    --platform "${platform}" \
    --provenance=false --sbom=false \
    --build-arg "VCS_REF=$(git -C "${repo_root}" rev-parse HEAD 2>/dev/null || echo unknown)" \
    --tag "${repo_url}:${image_tag}" \
    --push \
    "${repo_root}" >&2
}

# -------------------------------------------------------------------- subcommands
cmd_deploy() {
  need terraform aws git curl jq
  tf_init
  resolve_settings
  check_aws_identity
  ensure_image
  log "deploying image tag ${image_tag}"
  tf apply -input=false ${approve_args[@]+"${approve_args[@]}"} ${tf_args[@]+"${tf_args[@]}"} \
    -var "image_tag=${image_tag}" >&2
  "${repo_root}/scripts/verify-deployment.sh" verify
  log "deployed ${image_tag}"
}

cmd_build() {
  need terraform aws git
  tf_init
  resolve_settings
  check_aws_identity
  ensure_image
  printf '%s\n' "${image_tag}"
}


# The administrator's part of a GitHub deploy (IaC/README.md, "Bootstrap"):
# the -target list comes from Terraform (local.bootstrap_targets), so it is
# written once.
cmd_bootstrap() {
  need terraform aws
  tf_init
  resolve_settings
  check_aws_identity
  local targets=() target
  for target in $(tf_eval 'join(" ", local.bootstrap_targets)'); do
    targets+=("-target=${target}")
  done
  [[ ${#targets[@]} -gt 0 ]] || die "local.bootstrap_targets is empty"
  log "bootstrap: terraform apply ${targets[*]}"
  tf apply -input=false ${approve_args[@]+"${approve_args[@]}"} "${targets[@]}" \
    ${tf_args[@]+"${tf_args[@]}"} -var image_tag=bootstrap >&2
  log "deploy role (AWS_DEPLOY_ROLE_ARN of the workflow):"
  tf_output_raw github_deploy_role_arn
  printf '\n'
}

cmd_destroy() {
  need terraform
  tf_init
  log "terraform destroy (the ECR repository goes with its images only if ecr_force_delete=true, the default)"
  tf destroy -input=false ${approve_args[@]+"${approve_args[@]}"} ${tf_args[@]+"${tf_args[@]}"} \
    -var image_tag=destroy
}

main() {
  local sub="deploy"
  case "${1:-}" in
    -h | --help | help)
      sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
      return
      ;;
  esac
  if [[ $# -gt 0 && "$1" != -* ]]; then
    sub="$1"
    shift
  fi
  tf_args=("$@")
  setup_terraform_args

  tmp_file="$(mktemp)"
  trap 'rm -f "${tmp_file}" "${tmp_file}.tf_eval"' EXIT

  case "${sub}" in
    deploy) cmd_deploy ;;
    build) cmd_build ;;
    verify | restart) exec "${repo_root}/scripts/verify-deployment.sh" "${sub}" ;;
    smoke) exec "${repo_root}/scripts/smoke-test.sh" ;;
    destroy) cmd_destroy ;;
    bootstrap) cmd_bootstrap ;;
    *) die "unknown subcommand '${sub}' (deploy, build, verify, smoke, restart, destroy, bootstrap, help)" ;;
  esac
}

# Globals set by the functions above.
region=""
cpu_arch=""
platform=""
arch_suffix=""
image_tag=""
tmp_file=""

main "$@"
