################################################################################
# Permissions boundary of every IAM role of the stack (task, task execution,
# toolbox task, Service Connect TLS, flow logs), and what the bootstrap
# applies.
#
# The GitHub deploy role may create those roles and write their policies
# (github_deploy_infrastructure.tf), but only with this boundary on them
# (the iam:PermissionsBoundary condition), and it may neither remove a
# boundary nor change this policy (github_deploy_policy.tf denies both).
# Whatever it writes into a role's policies, the role can do no more than
# this: pull this stack's image, write this stack's logs, ECS Exec
# channels, the platform key for exec sessions, X-Ray writes, and what
# Service Connect TLS needs of the CA, its secrets and its key. Without
# the boundary a role policy it wrote could grant anything, and the tasks
# it deploys would run with it (issue 21, point 7).
################################################################################

data "aws_iam_policy_document" "role_boundary" {
  # No resource-level permissions for these: "*" only (AWS Service
  # Authorization Reference).
  statement {
    sid = "WithoutResourceLevelPermissions"
    actions = [
      "ecr:GetAuthorizationToken",
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
      "xray:PutTelemetryRecords",
      "xray:PutTraceSegments",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "PullTheAppImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [local.ecr_repo_arn]
  }

  statement {
    sid       = "WriteTheStackLogs"
    actions   = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    resources = local.log_group_arns
  }

  statement {
    sid       = "FindLogGroups"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${local.partition}:logs:${local.arn_suffix}:log-group:*"]
  }

  statement {
    sid       = "ExecSessionDecrypt"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.platform.arn]
  }

  # Service Connect TLS (what the AWS managed policy of the infrastructure
  # role allows): certificates from this stack's CA and the ecs-sc!* secrets.
  dynamic "statement" {
    for_each = var.service_connect_tls_enabled ? [local.pca_arn] : []

    content {
      sid = "ServiceConnectTlsCertificates"
      actions = [
        "acm-pca:DescribeCertificateAuthority", "acm-pca:GetCertificate",
        "acm-pca:GetCertificateAuthorityCertificate", "acm-pca:IssueCertificate",
      ]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.service_connect_tls_enabled ? ["arn:${local.partition}:secretsmanager:${local.arn_suffix}:secret:ecs-sc!*"] : []

    content {
      sid       = "ServiceConnectTlsSecrets"
      actions   = ["secretsmanager:*"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = local.create_sc_kms_key ? [aws_kms_key.service_connect[0].arn] : []

    content {
      sid       = "ServiceConnectTlsKey"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:GenerateDataKeyPair"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_policy" "role_boundary" {
  name        = local.role_boundary_name
  description = "Permissions boundary of the IAM roles of ${local.name} (iam_boundary.tf)"
  policy      = data.aws_iam_policy_document.role_boundary.json
}

locals {
  # Named under the deploy role's prefix, so that its deny covers it.
  role_boundary_name = "${local.role_names.github_deploy}-boundary"
  role_boundary_arn  = "${local.iam_arn_prefix}:policy/${local.role_boundary_name}"

  # What `scripts/deploy.sh bootstrap` applies as an administrator (with
  # -target; Terraform adds what these depend on, e.g. the VPC of the
  # default security group): the deploy role and its policies, the boundary,
  # and every resource the deploy role may read but not create or change,
  # because it could only be scoped by tags it could write itself (KMS keys,
  # the CA, the namespace, the demo certificate) or adopts a resource AWS
  # created untagged (the default security group). Issue 21, points 5 and 8.
  bootstrap_targets = [
    "aws_iam_role_policy_attachment.github_deploy",
    "aws_iam_policy.role_boundary",
    "aws_kms_alias.platform",
    "aws_kms_alias.service_connect",
    "aws_kms_key.alarms",
    "aws_acmpca_certificate_authority_certificate.root",
    "aws_service_discovery_http_namespace.this",
    "aws_default_security_group.this",
    "aws_acm_certificate.self_signed",
  ]
}
