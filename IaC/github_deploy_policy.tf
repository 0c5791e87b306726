################################################################################
# Permissions of the GitHub deploy role (github_oidc.tf), as managed policies
# (each under IAM's 6,144-character limit; the contract test checks):
#
#   app       ship an image: ECR push, task definitions, service updates,
#             PassRole for the task and execution roles only, the Terraform
#             state and its lock file; denies changing the deploy role
#   read      what `terraform plan` reads to refresh the rest of the stack
#   network,  with var.github_deploy_manage_infrastructure (default true):
#   platform  create, change and delete the rest of the stack
#
# Scoped by name prefix (var.name) and ARN where the resource has a name;
# by the Project tag (default_tags) where AWS gives only random IDs (EC2,
# KMS keys, the CA, the Cloud Map namespace, certificates). "Resource": "*"
# only where AWS has no resource-level permission for the action, each
# such statement saying so. Written from the AWS Service Authorization
# Reference and the provider's API calls; not exercised against AWS here
# (IaC/README.md, "Deploy from GitHub", says what that means).
################################################################################

locals {
  tf_state_key_prefix = var.tf_state_key_prefix != "" ? var.tf_state_key_prefix : "${local.name}/"
  tf_state_bucket_arn = "arn:${local.partition}:s3:::${var.tf_state_bucket}"

  arn_suffix      = "${local.region}:${local.account_id}"
  ecr_repo_arn    = "arn:${local.partition}:ecr:${local.arn_suffix}:repository/${local.ecr_repository}"
  ecs_cluster_arn = "arn:${local.partition}:ecs:${local.arn_suffix}:cluster/${local.name}"
  log_group_arns = flatten([
    for prefix in ["/ecs/${local.name}/", "/vpc/${local.name}/"] : [
      "arn:${local.partition}:logs:${local.arn_suffix}:log-group:${prefix}*",
      "arn:${local.partition}:logs:${local.arn_suffix}:log-group:${prefix}*:*",
    ]
  ])
  stack_role_arns   = "${local.iam_arn_prefix}:role/${local.name}-*"
  stack_policy_arns = "${local.iam_arn_prefix}:policy/${local.name}-*"

  github_deploy_policies = merge(
    {
      app  = data.aws_iam_policy_document.github_deploy_app.json
      read = data.aws_iam_policy_document.github_deploy_read.json
    },
    var.github_deploy_manage_infrastructure ? {
      network  = data.aws_iam_policy_document.github_deploy_network.json
      platform = data.aws_iam_policy_document.github_deploy_platform.json
    } : {},
  )
}

resource "aws_iam_policy" "github_deploy" {
  for_each = var.github_oidc_enabled ? local.github_deploy_policies : {}

  name        = "${local.role_names.github_deploy}-${each.key}"
  description = "GitHub deploy role of ${local.name}: ${each.key} (github_deploy_policy.tf)"
  policy      = each.value
}

################################################################################
# app: ship an image
################################################################################

data "aws_iam_policy_document" "github_deploy_app" {
  # The role must not widen its own permissions or its trust: no IAM write on
  # itself, its policies or the OIDC provider (an administrator applies
  # github_oidc.tf), and no assuming other roles (a role it created could
  # trust it).
  statement {
    sid    = "DenyChangingTheDeployRole"
    effect = "Deny"
    actions = [
      "iam:Add*", "iam:Attach*", "iam:Create*", "iam:Delete*", "iam:Detach*", "iam:PassRole",
      "iam:Put*", "iam:Remove*", "iam:Set*", "iam:Tag*", "iam:Untag*", "iam:Update*",
    ]
    resources = [
      local.github_deploy_arn,
      "${local.iam_arn_prefix}:policy/${local.role_names.github_deploy}-*",
      "${local.iam_arn_prefix}:oidc-provider/${local.github_oidc_host}",
    ]
  }

  # The stack's roles keep their boundary (iam_boundary.tf).
  statement {
    sid       = "DenyRemovingBoundaries"
    effect    = "Deny"
    actions   = ["iam:DeleteRolePermissionsBoundary"]
    resources = ["*"]
  }

  statement {
    sid       = "DenyAssumingOtherRoles"
    effect    = "Deny"
    actions   = ["sts:AssumeRole"]
    resources = ["*"]
  }

  statement {
    sid       = "StateBucket"
    actions   = ["s3:ListBucket"]
    resources = [local.tf_state_bucket_arn]
  }

  # The state and its S3-native lock file (<key>.tflock, use_lockfile).
  statement {
    sid       = "StateObjects"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.tf_state_bucket_arn}/${local.tf_state_key_prefix}*"]
  }

  statement {
    sid       = "StateLockRelease"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.tf_state_bucket_arn}/${local.tf_state_key_prefix}*.tflock"]
  }

  # ecr:GetAuthorizationToken has no resource-level permissions: "*" only.
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "EcrPushPull"
    actions = [
      "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload",
      "ecr:DescribeImages", "ecr:DescribeRepositories", "ecr:GetDownloadUrlForLayer",
      "ecr:GetLifecyclePolicy", "ecr:InitiateLayerUpload", "ecr:ListImages",
      "ecr:ListTagsForResource", "ecr:PutImage", "ecr:UploadLayerPart",
    ]
    resources = [local.ecr_repo_arn]
  }

  # Task definition registration, listing and description have no
  # resource-level permissions: "*" only.
  statement {
    sid = "TaskDefinitions"
    actions = [
      "ecs:DeregisterTaskDefinition", "ecs:DescribeTaskDefinition",
      "ecs:ListTaskDefinitions", "ecs:RegisterTaskDefinition",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "TagNewTaskDefinitions"
    actions   = ["ecs:TagResource"]
    resources = ["arn:${local.partition}:ecs:${local.arn_suffix}:task-definition/${local.name}-*:*"]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RegisterTaskDefinition"]
    }
  }

  statement {
    sid = "Services"
    actions = [
      "ecs:DescribeClusters", "ecs:DescribeServices", "ecs:DescribeTasks",
      "ecs:ListTagsForResource", "ecs:TagResource", "ecs:UntagResource", "ecs:UpdateService",
    ]
    resources = [
      local.ecs_cluster_arn,
      "arn:${local.partition}:ecs:${local.arn_suffix}:service/${local.name}/*",
      "arn:${local.partition}:ecs:${local.arn_suffix}:task/${local.name}/*",
    ]
  }

  # ecs:ListTasks is authorised on container instances, which Fargate has
  # none of: "*", limited to this cluster by the condition.
  statement {
    sid       = "ListTasks"
    actions   = ["ecs:ListTasks"]
    resources = ["*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [local.ecs_cluster_arn]
    }
  }

  statement {
    sid     = "PassTaskRoles"
    actions = ["iam:PassRole"]
    resources = [
      "${local.iam_arn_prefix}:role/${local.role_names.task}",
      "${local.iam_arn_prefix}:role/${local.role_names.toolbox_task}",
      "${local.iam_arn_prefix}:role/${local.role_names.task_execution}",
    ]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

################################################################################
# read: refresh the rest of the stack
################################################################################

data "aws_iam_policy_document" "github_deploy_read" {
  # Everything a plan reads of every resource type of the stack, tags
  # included, so that deploys work with github_deploy_manage_infrastructure
  # = false (the contract test checks this against its table of the
  # provider's calls, tests/contract/provider_apis.txt).
  #
  # These Describe/List actions have no resource-level permissions: "*" only.
  # All read-only.
  statement {
    sid = "DescribeWithoutResourceLevelPermissions"
    actions = [
      "acm:ListCertificates", "acm-pca:ListCertificateAuthorities",
      "application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingActivities",
      "application-autoscaling:DescribeScalingPolicies", "ec2:DescribeAccountAttributes",
      "ec2:DescribeAddresses", "ec2:DescribeAddressesAttribute", "ec2:DescribeAvailabilityZones",
      "ec2:DescribeFlowLogs", "ec2:DescribeInternetGateways", "ec2:DescribeNatGateways",
      "ec2:DescribeNetworkAcls", "ec2:DescribeNetworkInterfaces", "ec2:DescribePrefixLists",
      "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroupRules", "ec2:DescribeSecurityGroups",
      "ec2:DescribeSubnets", "ec2:DescribeTags", "ec2:DescribeVpcs",
      "elasticloadbalancing:Describe*", "iam:ListOpenIDConnectProviders", "kms:ListAliases",
      "logs:DescribeLogGroups", "logs:DescribeQueryDefinitions", "servicediscovery:GetOperation",
      "servicediscovery:ListNamespaces",
    ]
    resources = ["*"]
  }

  statement {
    sid = "ReadStackIam"
    actions = [
      "iam:GetOpenIDConnectProvider", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:GetRole",
      "iam:GetRolePolicy", "iam:ListAttachedRolePolicies", "iam:ListInstanceProfilesForRole",
      "iam:ListPolicyTags", "iam:ListPolicyVersions", "iam:ListRolePolicies", "iam:ListRoleTags",
    ]
    resources = [
      local.stack_role_arns,
      local.stack_policy_arns,
      local.service_connect_tls_policy_arn,
      "${local.iam_arn_prefix}:oidc-provider/${local.github_oidc_host}",
    ]
  }

  # Resources with generated IDs: limited to this account and region.
  statement {
    sid = "ReadStackResources"
    actions = [
      "acm:DescribeCertificate", "acm:GetCertificate", "acm:ListTagsForCertificate",
      "acm-pca:DescribeCertificateAuthority", "acm-pca:GetCertificate",
      "acm-pca:GetCertificateAuthorityCertificate", "acm-pca:GetCertificateAuthorityCsr",
      "acm-pca:ListTags", "application-autoscaling:ListTagsForResource", "cloudwatch:DescribeAlarms",
      "cloudwatch:ListTagsForResource", "ec2:DescribeVpcAttribute",
      "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus",
      "kms:ListResourceTags", "logs:ListTagsForResource", "logs:ListTagsLogGroup",
      "servicediscovery:GetNamespace", "servicediscovery:ListTagsForResource",
    ]
    resources = concat(
      [
        "arn:${local.partition}:acm:${local.arn_suffix}:certificate/*",
        "arn:${local.partition}:acm-pca:${local.arn_suffix}:certificate-authority/*",
        "arn:${local.partition}:application-autoscaling:${local.arn_suffix}:scalable-target/*",
        "arn:${local.partition}:cloudwatch:${local.arn_suffix}:alarm:*",
        "arn:${local.partition}:ec2:${local.arn_suffix}:vpc/*",
        "arn:${local.partition}:kms:${local.arn_suffix}:key/*",
        "arn:${local.partition}:servicediscovery:${local.arn_suffix}:namespace/*",
      ],
      local.log_group_arns,
    )
  }

  # observability*.tf: the dashboard (global: no region in its ARN) and the
  # optional alarm topic with its subscriptions.
  statement {
    sid = "ReadObservability"
    actions = [
      "cloudwatch:GetDashboard", "sns:GetSubscriptionAttributes", "sns:GetTopicAttributes",
      "sns:ListTagsForResource",
    ]
    resources = [
      "arn:${local.partition}:cloudwatch::${local.account_id}:dashboard/${local.name}",
      "arn:${local.partition}:sns:${local.arn_suffix}:${local.name}-alarms",
      "arn:${local.partition}:sns:${local.arn_suffix}:${local.name}-alarms:*",
    ]
  }
}
