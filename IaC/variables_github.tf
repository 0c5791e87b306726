################################################################################
# Variables of the GitHub Actions deploy role (github_oidc.tf,
# github_deploy_policy.tf). Off by default: a laptop deploy needs none of it.
################################################################################

variable "github_oidc_enabled" {
  description = "Create an IAM role that GitHub Actions assumes through OIDC to deploy this stack (.github/workflows/deploy.yml), and, unless github_oidc_provider_arn is set, the account's OIDC provider for token.actions.githubusercontent.com."
  type        = bool
  default     = false
}

variable "github_oidc_provider_arn" {
  description = "ARN of an existing IAM OIDC provider for token.actions.githubusercontent.com (an account has at most one per URL). Empty creates it."
  type        = string
  default     = ""

  validation {
    condition     = var.github_oidc_provider_arn == "" || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com$", var.github_oidc_provider_arn))
    error_message = "github_oidc_provider_arn must be empty or the ARN of the token.actions.githubusercontent.com OIDC provider."
  }
}

variable "github_repository" {
  description = "The repository allowed to assume the deploy role: owner/name, or its immutable form owner@<owner_id>/name@<repo_id> (GitHub's immutable subject claims). Required with github_oidc_enabled."
  type        = string
  default     = ""

  validation {
    condition     = var.github_repository == "" || can(regex("^([A-Za-z0-9-]+/[A-Za-z0-9._-]+|[A-Za-z0-9-]+@[0-9]+/[A-Za-z0-9._-]+@[0-9]+)$", var.github_repository))
    error_message = "github_repository must be owner/name or owner@<owner_id>/name@<repo_id> (letters, digits, '-', '.', '_'; numeric ids; no wildcards)."
  }
}

variable "github_repository_owner_id" {
  description = "Numeric id of the repository's owner (github.repository_owner_id in a workflow; `gh api repos/OWNER/NAME --jq .owner.id`). With github_repository_id, the trust also accepts the immutable sub claim repo:owner@<owner_id>/name@<repo_id>:..., which new repositories emit. Empty: only the ids written in github_repository, if any."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[0-9]*$", var.github_repository_owner_id))
    error_message = "github_repository_owner_id must be empty or a number (github.repository_owner_id)."
  }
}

variable "github_repository_id" {
  description = "Numeric id of the repository (github.repository_id in a workflow; `gh api repos/OWNER/NAME --jq .id`). See github_repository_owner_id."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[0-9]*$", var.github_repository_id))
    error_message = "github_repository_id must be empty or a number (github.repository_id)."
  }
}

variable "github_deploy_environments" {
  description = "GitHub environments whose jobs may assume the deploy role (sub = repo:<owner>/<name>:environment:<env>). Protect them in the repository settings: required reviewers, deployment branch main."
  type        = list(string)
  default     = ["production"]

  validation {
    condition     = alltrue([for e in var.github_deploy_environments : can(regex("^[A-Za-z0-9 ._-]{1,255}$", e))])
    error_message = "github_deploy_environments must be environment names (letters, digits, space, '.', '_', '-'; no wildcards)."
  }
}

variable "github_deploy_branches" {
  description = "Branches whose jobs without an environment may assume the deploy role (sub = repo:<owner>/<name>:ref:refs/heads/<branch>). Empty by default: the deploy workflow always runs in an environment."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for b in var.github_deploy_branches : can(regex("^[A-Za-z0-9._/-]{1,255}$", b))])
    error_message = "github_deploy_branches must be branch names (no wildcards)."
  }
}

variable "github_deploy_manage_infrastructure" {
  description = "Also let the deploy role create, change and delete the rest of the stack (network, ALB, CA, KMS, log groups, IAM roles of the stack), so that the workflow can apply any change. false: it can only ship new images (task definitions, services, ECR pushes) and read the rest; apply other changes with an administrator."
  type        = bool
  default     = true
}

variable "tf_state_bucket" {
  description = "S3 bucket of the Terraform state the deploy workflow uses (IaC/backend.hcl.example). Required with github_oidc_enabled."
  type        = string
  default     = ""

  validation {
    condition     = var.tf_state_bucket == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.tf_state_bucket))
    error_message = "tf_state_bucket must be an S3 bucket name."
  }
}

variable "tf_state_key_prefix" {
  description = "Key prefix of this stack's state objects in tf_state_bucket (the state and its .tflock lock file). Empty means \"<name>/\"."
  type        = string
  default     = ""

  validation {
    condition     = var.tf_state_key_prefix == "" || can(regex("^[A-Za-z0-9!_.()'/-]+/$", var.tf_state_key_prefix))
    error_message = "tf_state_key_prefix must end with '/' and contain no wildcard characters."
  }
}
