################################################################################
# GitHub Actions -> AWS without long-lived keys (var.github_oidc_enabled).
#
# .github/workflows/deploy.yml asks GitHub for an OIDC token and exchanges
# it for this role's credentials (aws-actions/configure-aws-credentials,
# role-to-assume). The trust policy pins the audience (sts.amazonaws.com)
# and the token's sub claim to this repository and its deploy environments
# (or branches): no other repository, fork or environment gets in.
#
# The sub claim comes in two forms: repo:<owner>/<name>:... and, for
# repositories created since 2026-07-15 or opted in, the immutable
# repo:<owner>@<owner_id>/<name>@<repo_id>:... (GitHub "Immutable subject
# claims"; aws-actions/configure-aws-credentials README). Both are trusted
# when the ids are known (github_repository_owner_id/_id, or written in
# github_repository); deploy.yml passes github.repository_owner_id and
# github.repository_id so that its plan matches the bootstrap's.
#
# Bootstrap once with an administrator: `scripts/deploy.sh bootstrap`
# (IaC/README.md, "Bootstrap"). It applies local.bootstrap_targets: this
# role, its policies, the boundary of the stack's roles, and the resources
# the role may read but not create (KMS keys, the CA, the namespace, the
# default security group, the demo certificate). The role cannot change
# itself, the provider or the boundary (github_deploy_policy.tf denies
# it): changes to them are applied by an administrator the same way.
################################################################################

locals {
  github_oidc_host = "token.actions.githubusercontent.com"

  create_github_oidc_provider = var.github_oidc_enabled && var.github_oidc_provider_arn == ""
  github_oidc_provider_arn = (
    local.create_github_oidc_provider
    ? aws_iam_openid_connect_provider.github[0].arn
    : var.github_oidc_provider_arn
  )

  # github_repository split into owner and name, each with its id if the
  # immutable form was given ("" when absent).
  github_repository_parts = concat(split("/", var.github_repository), [""])
  github_owner_parts      = concat(split("@", local.github_repository_parts[0]), [""])
  github_name_parts       = concat(split("@", local.github_repository_parts[1]), [""])
  github_owner_id         = var.github_repository_owner_id != "" ? var.github_repository_owner_id : local.github_owner_parts[1]
  github_repo_id          = var.github_repository_id != "" ? var.github_repository_id : local.github_name_parts[1]

  # repo:<owner>/<name>, and repo:<owner>@<id>/<name>@<id> when the ids are known.
  github_subject_repos = concat(
    ["repo:${local.github_owner_parts[0]}/${local.github_name_parts[0]}"],
    local.github_owner_id != "" && local.github_repo_id != "" ? ["repo:${local.github_owner_parts[0]}@${local.github_owner_id}/${local.github_name_parts[0]}@${local.github_repo_id}"] : [],
  )

  # The sub claims allowed to assume the role: exact values, no wildcards.
  github_deploy_subjects = flatten([
    for repo in local.github_subject_repos : concat(
      [for e in var.github_deploy_environments : "${repo}:environment:${e}"],
      [for b in var.github_deploy_branches : "${repo}:ref:refs/heads/${b}"],
    )
  ])

  iam_arn_prefix    = "arn:${local.partition}:iam::${local.account_id}"
  github_deploy_arn = "${local.iam_arn_prefix}:role/${local.role_names.github_deploy}"
}

resource "aws_iam_openid_connect_provider" "github" {
  count = local.create_github_oidc_provider ? 1 : 0

  url            = "https://${local.github_oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
  # No thumbprint_list: it is optional, and IAM verifies GitHub's OIDC
  # endpoint with its own library of trusted root CAs, not with thumbprints
  # (IAM API reference, UpdateOpenIDConnectProviderThumbprint).
}

data "aws_iam_policy_document" "github_deploy_assume" {
  statement {
    sid     = "GitHubActionsOidc"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "${local.github_oidc_host}:sub"
      values   = local.github_deploy_subjects
    }
  }
}

resource "aws_iam_role" "github_deploy" {
  count = var.github_oidc_enabled ? 1 : 0

  name                 = local.role_names.github_deploy
  description          = "Assumed by GitHub Actions (${var.github_repository}) through OIDC to deploy ${local.name}"
  assume_role_policy   = data.aws_iam_policy_document.github_deploy_assume.json
  max_session_duration = 3600

  lifecycle {
    precondition {
      condition     = var.github_repository != "" && var.tf_state_bucket != ""
      error_message = "github_oidc_enabled needs github_repository (owner/name) and tf_state_bucket."
    }

    precondition {
      condition     = (var.github_repository_owner_id == "") == (var.github_repository_id == "")
      error_message = "Set both github_repository_owner_id and github_repository_id (the immutable sub claim needs both), or neither."
    }

    precondition {
      condition     = length(local.github_deploy_subjects) > 0
      error_message = "github_deploy_environments and github_deploy_branches are both empty: nothing could assume the deploy role."
    }
  }
}

resource "aws_iam_role_policy_attachment" "github_deploy" {
  for_each = var.github_oidc_enabled ? local.github_deploy_policies : {}

  role       = aws_iam_role.github_deploy[0].name
  policy_arn = aws_iam_policy.github_deploy[each.key].arn
}
