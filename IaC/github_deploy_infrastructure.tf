################################################################################
# The GitHub deploy role's permissions to create, change and delete the rest
# of the stack (var.github_deploy_manage_infrastructure; attached by
# github_deploy_policy.tf). Two policies: network (EC2, ALB, certificate)
# and platform (IAM roles of the stack, KMS, logs, CA, Cloud Map, ECS,
# autoscaling, the ECR repository).
#
# Where AWS names resources by random IDs (EC2), writes are limited by the
# Project tag that default_tags puts on everything here: created only with
# it (aws:RequestTag), tagged only as part of a create (ec2:CreateAction),
# changed only when already carrying it (aws:ResourceTag). Nothing here may
# tag a resource outside this stack's names: KMS keys, the CA, the Cloud Map
# namespace, the demo certificate and the VPC's default security group,
# which could only be scoped by tags the role could write itself, are
# created by the bootstrap (iam_boundary.tf, local.bootstrap_targets) and
# only read here. IAM writes are limited to roles and policies named
# "<name>-*"; roles are created and their policies written only with the
# stack's permissions boundary on them (iam:PermissionsBoundary), and
# attachments only of this stack's policies and the Service Connect TLS
# managed policy.
################################################################################

locals {
  project_tag = { test = "StringEquals", variable = "aws:RequestTag/Project", values = [local.name] }
  tagged      = { test = "StringEquals", variable = "aws:ResourceTag/Project", values = [local.name] }

  # EC2 create actions of this stack; CreateTags is allowed as part of them.
  ec2_create_actions = [
    "AllocateAddress", "AuthorizeSecurityGroupEgress", "AuthorizeSecurityGroupIngress",
    "CreateFlowLogs", "CreateInternetGateway", "CreateNatGateway", "CreateRouteTable",
    "CreateSecurityGroup", "CreateSubnet", "CreateVpc",
  ]
}

data "aws_iam_policy_document" "github_deploy_network" {
  # EC2 create actions are authorised on resources that do not exist yet:
  # "*", allowed only when the request tags them Project = var.name.
  statement {
    sid       = "Ec2CreateTagged"
    actions   = [for a in local.ec2_create_actions : "ec2:${a}"]
    resources = ["*"]

    condition {
      test     = local.project_tag.test
      variable = local.project_tag.variable
      values   = local.project_tag.values
    }
  }

  statement {
    sid       = "Ec2TagOnCreate"
    actions   = ["ec2:CreateTags"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = local.ec2_create_actions
    }
  }

  # Changes and deletions of EC2 resources: their IDs are random, so "*"
  # limited to resources tagged Project = var.name.
  statement {
    sid = "Ec2ChangeTagged"
    actions = [
      "ec2:AssociateRouteTable", "ec2:AttachInternetGateway", "ec2:CreateRoute", "ec2:CreateTags",
      "ec2:DeleteFlowLogs", "ec2:DeleteInternetGateway", "ec2:DeleteNatGateway", "ec2:DeleteRoute",
      "ec2:DeleteRouteTable", "ec2:DeleteSecurityGroup", "ec2:DeleteSubnet", "ec2:DeleteTags",
      "ec2:DeleteVpc", "ec2:DetachInternetGateway", "ec2:DisassociateAddress",
      "ec2:DisassociateRouteTable", "ec2:ModifySecurityGroupRules", "ec2:ModifySubnetAttribute",
      "ec2:ModifyVpcAttribute", "ec2:ReleaseAddress", "ec2:ReplaceRoute", "ec2:ReplaceRouteTableAssociation",
      "ec2:RevokeSecurityGroupEgress", "ec2:RevokeSecurityGroupIngress",
      "ec2:UpdateSecurityGroupRuleDescriptionsEgress", "ec2:UpdateSecurityGroupRuleDescriptionsIngress",
    ]
    resources = ["*"]

    condition {
      test     = local.tagged.test
      variable = local.tagged.variable
      values   = local.tagged.values
    }
  }

  statement {
    sid = "LoadBalancer"
    actions = [
      "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:AddTags",
      "elasticloadbalancing:CreateListener", "elasticloadbalancing:CreateLoadBalancer",
      "elasticloadbalancing:CreateRule", "elasticloadbalancing:CreateTargetGroup",
      "elasticloadbalancing:DeleteListener", "elasticloadbalancing:DeleteLoadBalancer",
      "elasticloadbalancing:DeleteRule", "elasticloadbalancing:DeleteTargetGroup",
      "elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyListenerAttributes",
      "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:ModifyRule",
      "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:ModifyTargetGroupAttributes",
      "elasticloadbalancing:RemoveListenerCertificates", "elasticloadbalancing:RemoveTags",
      "elasticloadbalancing:SetRulePriorities", "elasticloadbalancing:SetSecurityGroups",
      "elasticloadbalancing:SetSubnets",
    ]
    resources = [
      "arn:${local.partition}:elasticloadbalancing:${local.arn_suffix}:loadbalancer/app/${local.name}/*",
      "arn:${local.partition}:elasticloadbalancing:${local.arn_suffix}:listener/app/${local.name}/*",
      "arn:${local.partition}:elasticloadbalancing:${local.arn_suffix}:listener-rule/app/${local.name}/*",
      "arn:${local.partition}:elasticloadbalancing:${local.arn_suffix}:targetgroup/${local.name}-*/*",
    ]
  }

  statement {
    sid       = "PassFlowLogsRole"
    actions   = ["iam:PassRole"]
    resources = ["${local.iam_arn_prefix}:role/${local.role_names.flow_logs}"]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["vpc-flow-logs.amazonaws.com"]
    }
  }

  statement {
    sid       = "ServiceLinkedRoles"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["${local.iam_arn_prefix}:role/aws-service-role/*"]

    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["ecs.amazonaws.com", "ecs.application-autoscaling.amazonaws.com", "elasticloadbalancing.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "github_deploy_platform" {
  # Role creation and the role's policies only with the stack's boundary on
  # the role (iam_boundary.tf); removing a boundary is denied (app policy).
  statement {
    sid = "StackRolesWithBoundary"
    actions = [
      "iam:CreateRole", "iam:DeleteRolePolicy", "iam:PutRolePermissionsBoundary", "iam:PutRolePolicy",
    ]
    resources = [local.stack_role_arns]

    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [local.role_boundary_arn]
    }
  }

  statement {
    sid = "StackRoles"
    actions = [
      "iam:DeleteRole", "iam:TagRole", "iam:UntagRole", "iam:UpdateAssumeRolePolicy",
      "iam:UpdateRole", "iam:UpdateRoleDescription",
    ]
    resources = [local.stack_role_arns]
  }

  statement {
    sid = "StackPolicies"
    actions = [
      "iam:CreatePolicy", "iam:CreatePolicyVersion", "iam:DeletePolicy",
      "iam:DeletePolicyVersion", "iam:TagPolicy", "iam:UntagPolicy",
    ]
    resources = [local.stack_policy_arns]
  }

  # Only this stack's policies and the Service Connect TLS managed policy
  # can be attached, and only to roles with the boundary.
  statement {
    sid       = "AttachKnownPolicies"
    actions   = ["iam:AttachRolePolicy", "iam:DetachRolePolicy"]
    resources = [local.stack_role_arns]

    condition {
      test     = "ArnLike"
      variable = "iam:PolicyARN"
      values   = [local.stack_policy_arns, local.service_connect_tls_policy_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [local.role_boundary_arn]
    }
  }

  statement {
    sid       = "PassServiceConnectTlsRole"
    actions   = ["iam:PassRole"]
    resources = ["${local.iam_arn_prefix}:role/${local.role_names.service_connect_tls}"]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs.amazonaws.com"]
    }
  }

  # The ECR repository encrypts with the platform key through a grant that
  # ECR creates with the caller's permissions: that key only, for ECR only.
  # (The keys themselves are the bootstrap's.)
  statement {
    sid       = "PlatformKeyGrantForEcr"
    actions   = ["kms:CreateGrant", "kms:RetireGrant"]
    resources = [aws_kms_key.platform.arn]

    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ecr.${local.region}.amazonaws.com"]
    }
  }

  statement {
    sid = "LogGroups"
    actions = [
      "logs:AssociateKmsKey", "logs:CreateLogGroup", "logs:DeleteLogGroup",
      "logs:DeleteRetentionPolicy", "logs:DisassociateKmsKey", "logs:PutRetentionPolicy",
      "logs:TagLogGroup", "logs:TagResource", "logs:UntagLogGroup", "logs:UntagResource",
    ]
    resources = local.log_group_arns
  }

  statement {
    sid = "ClusterAndServices"
    actions = [
      "ecs:CreateCluster", "ecs:CreateService", "ecs:DeleteCluster", "ecs:DeleteService",
      "ecs:PutClusterCapacityProviders", "ecs:UpdateCluster", "ecs:UpdateClusterSettings",
    ]
    resources = [
      local.ecs_cluster_arn,
      "arn:${local.partition}:ecs:${local.arn_suffix}:service/${local.name}/*",
    ]
  }

  # Scalable targets get generated IDs: any in this account and region. No
  # tagging: their ARNs carry no name to scope it by, so the targets are
  # created untagged (autoscaling.tf, provider aws.untagged).
  statement {
    sid = "Autoscaling"
    actions = [
      "application-autoscaling:DeleteScalingPolicy", "application-autoscaling:DeregisterScalableTarget",
      "application-autoscaling:PutScalingPolicy", "application-autoscaling:RegisterScalableTarget",
    ]
    resources = ["arn:${local.partition}:application-autoscaling:${local.arn_suffix}:scalable-target/*"]
  }

  # Target tracking creates its alarms with the caller's permissions.
  statement {
    sid       = "TargetTrackingAlarms"
    actions   = ["cloudwatch:DeleteAlarms", "cloudwatch:PutMetricAlarm"]
    resources = ["arn:${local.partition}:cloudwatch:${local.arn_suffix}:alarm:TargetTracking-service/${local.name}/*"]
  }

  # observability.tf and observability_alarms.tf: the dashboard (dashboards
  # are global: no region in their ARN), the alarms, the optional alarm topic.
  statement {
    sid       = "Dashboard"
    actions   = ["cloudwatch:DeleteDashboards", "cloudwatch:PutDashboard"]
    resources = ["arn:${local.partition}:cloudwatch::${local.account_id}:dashboard/${local.name}"]
  }

  statement {
    sid = "Alarms"
    actions = [
      "cloudwatch:DeleteAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:TagResource",
      "cloudwatch:UntagResource",
    ]
    resources = ["arn:${local.partition}:cloudwatch:${local.arn_suffix}:alarm:${local.name}-*"]
  }

  statement {
    sid = "AlarmTopic"
    actions = [
      "sns:CreateTopic", "sns:DeleteTopic", "sns:SetTopicAttributes", "sns:Subscribe",
      "sns:TagResource", "sns:Unsubscribe", "sns:UntagResource",
    ]
    resources = [
      "arn:${local.partition}:sns:${local.arn_suffix}:${local.name}-alarms",
      "arn:${local.partition}:sns:${local.arn_suffix}:${local.name}-alarms:*",
    ]
  }

  # The saved Logs Insights query. AWS's Service Authorization Reference lists
  # no resource type for the query-definition actions, so they take "*".
  statement {
    sid       = "QueryDefinitions"
    actions   = ["logs:DeleteQueryDefinition", "logs:PutQueryDefinition"]
    resources = ["*"]
  }

  statement {
    sid = "EcrRepository"
    actions = [
      "ecr:CreateRepository", "ecr:DeleteLifecyclePolicy", "ecr:DeleteRepository",
      "ecr:PutImageScanningConfiguration", "ecr:PutImageTagMutability", "ecr:PutLifecyclePolicy",
      "ecr:TagResource", "ecr:UntagResource",
    ]
    resources = [local.ecr_repo_arn]
  }
}
