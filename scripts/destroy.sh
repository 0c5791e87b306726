#!/usr/bin/env bash
# Tear down everything scripts/deploy.sh created: `terraform -chdir=IaC destroy`.
#
# Usage: scripts/destroy.sh [TERRAFORM_ARGS...]     (AUTO_APPROVE=1 skips the prompt)
#
# Same as `scripts/deploy.sh destroy`; see that script's header for the
# environment variables (AWS_REGION, TF_VAR_FILE, TF_INIT_ARGS, AUTO_APPROVE).
# Pass the same -var/-var-file values you deployed with. The ECR repository is
# deleted with its images only when var.ecr_force_delete is true (the default);
# alb_deletion_protection=true blocks destroy until it is set false and applied.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/deploy.sh" destroy "$@"
