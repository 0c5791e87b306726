################################################################################
# IAM for the tasks
#
# - task execution role (shared by every task definition): what ECS/Fargate
#   itself needs to start a task: pull the app image from ECR and write the
#   container and Service Connect proxy logs.
# - task role of service-a and service-b: what the code in the container may
#   do. The app calls no AWS API, so the role has no permissions at all (ECS
#   Exec is off for the distroless app containers, which have no shell),
#   except xray:PutTraceSegments for the optional trace collector sidecar
#   (traces.tf).
# - toolbox task role (toolbox.tf): ECS Exec only, the policy below (SSM
#   messages channels and session logging).
# The Service Connect TLS infrastructure role is in service_connect.tf.
################################################################################

# Task roles: confused-deputy protection as in the ECS task IAM role docs.
data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

################################################################################
# Task execution role
################################################################################

# The execution role keeps the plain trust policy of the AWS documentation.
data "aws_iam_policy_document" "ecs_tasks_assume_execution" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "task_execution" {
  statement {
    sid = "EcrAuthToken"
    # ecr:GetAuthorizationToken has no resource-level permissions: AWS only
    # accepts Resource "*" for it. The pull itself is limited to the app
    # repository below.
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid = "EcrPullAppImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [aws_ecr_repository.app.arn]
  }

  statement {
    sid     = "WriteContainerLogs"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = flatten([
      for k, g in aws_cloudwatch_log_group.this : [g.arn, "${g.arn}:*"]
      if k != "flow-logs" && k != "ecs-exec"
    ])
  }
}

resource "aws_iam_role" "task_execution" {
  name               = local.role_names.task_execution
  description        = "ECS task execution role: pull the app image, write container and Service Connect proxy logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume_execution.json
  # The stack boundary (iam_boundary.tf): the deploy role may write this
  # role's policies only under it.
  permissions_boundary = aws_iam_policy.role_boundary.arn
}

resource "aws_iam_role_policy" "task_execution" {
  name   = "pull-image-write-logs"
  role   = aws_iam_role.task_execution.id
  policy = data.aws_iam_policy_document.task_execution.json
}

################################################################################
# ECS Exec permissions (attached to the toolbox task role only)
################################################################################

data "aws_iam_policy_document" "ecs_exec" {
  statement {
    sid = "SsmMessagesChannels"
    # The ssmmessages actions ECS Exec needs have no resource-level
    # permissions: AWS only accepts Resource "*" for them.
    actions = [
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
    ]
    resources = ["*"]
  }

  statement {
    sid       = "ExecSessionLogGroupLookup"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
  }

  statement {
    sid = "ExecSessionLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    resources = [
      aws_cloudwatch_log_group.this["ecs-exec"].arn,
      "${aws_cloudwatch_log_group.this["ecs-exec"].arn}:*",
    ]
  }

  statement {
    sid       = "ExecSessionDecrypt"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.platform.arn]
  }
}

resource "aws_iam_policy" "ecs_exec" {
  name        = "${local.name}-ecs-exec"
  description = "Permissions a task needs for ECS Exec with session logging to CloudWatch"
  policy      = data.aws_iam_policy_document.ecs_exec.json
}

################################################################################
# Task role of the services: no permissions
################################################################################

# Kept although empty: the tasks get an identity of their own, and a future
# AWS call of the app gets its permissions here, not on the execution role.
resource "aws_iam_role" "task" {
  name               = local.role_names.task
  description        = "Task role of service-a and service-b: no permissions (the app calls no AWS API; no ECS Exec)"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  # The stack boundary (iam_boundary.tf): the deploy role may write this
  # role's policies only under it.
  permissions_boundary = aws_iam_policy.role_boundary.arn
}
