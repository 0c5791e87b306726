################################################################################
# Alarms per service, and where they notify (var.alarm_notifications):
# - 5xx rate (EMF Errors / Requests, metric math);
# - p99 latency of each client-facing unary route (EMF Latency, 2xx);
# - failed peer calls (EMF PeerErrors);
# - unhealthy and no healthy targets in the REST target group (ALB).
# Every alarm evaluates one-minute periods and goes off on 3 of the last 5:
# one slow minute or one late EMF line does not page, three do.
# treat_missing_data is chosen per alarm, with the reason next to it.
################################################################################

locals {
  alarm_period              = 60
  alarm_evaluation_periods  = 5
  alarm_datapoints_to_alarm = 3

  alarm_topic_arns = (
    var.alarm_notifications.create_topic
    ? [aws_sns_topic.alarms[0].arn]
    : (var.alarm_notifications.topic_arn != "" ? [var.alarm_notifications.topic_arn] : [])
  )

  # One latency alarm per service and client-facing route: the alarm's name
  # says which route is slow.
  latency_alarms = {
    for alarm in flatten([
      for k, routes in local.emf_client_routes : [
        for label, route in routes : { key = "${k}-${label}", service = k, route = route }
      ]
    ]) : alarm.key => alarm
  }
}

resource "aws_cloudwatch_metric_alarm" "error_rate" {
  for_each = local.services

  alarm_name          = "${local.name}-${each.key}-5xx-rate"
  alarm_description   = "More than ${var.alarm_5xx_rate_percent}% of ${each.key}'s requests answered with a 5xx-class status (EMF Errors / Requests, namespace ${local.metrics_namespace}). Which routes: dashboard ${local.name}, 'requests by route and code class'; which requests: status >= 500 in ${aws_cloudwatch_log_group.this[each.key].name}."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_5xx_rate_percent
  evaluation_periods  = local.alarm_evaluation_periods
  datapoints_to_alarm = local.alarm_datapoints_to_alarm
  # A minute without requests has no 5xx. A service with no task left writes
  # nothing at all: the no-healthy-host alarm catches that.
  treat_missing_data = "notBreaching"
  alarm_actions      = local.alarm_topic_arns
  ok_actions         = local.alarm_topic_arns

  metric_query {
    id          = "rate"
    expression  = "100 * errors / requests"
    label       = "5xx rate (%)"
    return_data = true
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = local.metrics_namespace
      metric_name = "Requests"
      dimensions  = { Service = each.key }
      stat        = "Sum"
      period      = local.alarm_period
    }
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = local.metrics_namespace
      metric_name = "Errors"
      dimensions  = { Service = each.key }
      stat        = "Sum"
      period      = local.alarm_period
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "latency" {
  for_each = local.latency_alarms

  alarm_name          = "${local.name}-${each.key}-p99"
  alarm_description   = "p99 latency of ${each.value.route} on ${each.value.service} (2xx answers, EMF Latency) above ${var.alarm_p99_latency_ms} ms."
  namespace           = local.metrics_namespace
  metric_name         = "Latency"
  dimensions          = { Service = each.value.service, Route = each.value.route, CodeClass = "2xx" }
  extended_statistic  = "p99"
  period              = local.alarm_period
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_p99_latency_ms
  evaluation_periods  = local.alarm_evaluation_periods
  datapoints_to_alarm = local.alarm_datapoints_to_alarm
  # A minute in which the route had no successful request has no latency to
  # judge; the 5xx and healthy-host alarms cover failing and absent services.
  treat_missing_data = "notBreaching"
  alarm_actions      = local.alarm_topic_arns
  ok_actions         = local.alarm_topic_arns
}

resource "aws_cloudwatch_metric_alarm" "peer_errors" {
  for_each = local.services

  alarm_name          = "${local.name}-${each.key}-peer-errors"
  alarm_description   = "${each.key}'s calls to ${each.value.peer} failed (UNAVAILABLE or DEADLINE_EXCEEDED) at least ${var.alarm_peer_errors_per_minute} times a minute, or ${each.key} stopped writing metrics (no EMF line in namespace ${local.metrics_namespace}: no running task, logs not shipped, or a namespace mismatch)."
  namespace           = local.metrics_namespace
  metric_name         = "PeerErrors"
  dimensions          = { Service = each.key }
  statistic           = "Sum"
  period              = local.alarm_period
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.alarm_peer_errors_per_minute
  evaluation_periods  = local.alarm_evaluation_periods
  datapoints_to_alarm = local.alarm_datapoints_to_alarm
  # Every EMF_INTERVAL each task writes PeerErrors, 0 included, so missing
  # data means the service's metrics stopped and every EMF-based alarm is
  # blind: this alarm is the one that says so.
  treat_missing_data = "breaching"
  alarm_actions      = local.alarm_topic_arns
  ok_actions         = local.alarm_topic_arns
}

resource "aws_cloudwatch_metric_alarm" "unhealthy_hosts" {
  for_each = local.services

  alarm_name          = "${local.name}-${each.key}-unhealthy-hosts"
  alarm_description   = "At least ${var.alarm_unhealthy_hosts} target(s) of ${each.key}'s REST target group unhealthy on every ALB node (UnHealthyHostCount Minimum). Why: aws elbv2 describe-target-health (terraform output rest_target_group_arns); see Troubleshooting in IaC/README.md."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  dimensions          = { TargetGroup = aws_lb_target_group.rest[each.key].arn_suffix, LoadBalancer = aws_lb.this.arn_suffix }
  statistic           = "Minimum"
  period              = local.alarm_period
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.alarm_unhealthy_hosts
  evaluation_periods  = local.alarm_evaluation_periods
  datapoints_to_alarm = local.alarm_datapoints_to_alarm
  # The ALB reports this every minute while health checks are on; a gap is a
  # reporting delay, not an unhealthy target. No target at all is the
  # no-healthy-host alarm's case.
  treat_missing_data = "notBreaching"
  alarm_actions      = local.alarm_topic_arns
  ok_actions         = local.alarm_topic_arns
}

resource "aws_cloudwatch_metric_alarm" "no_healthy_host" {
  for_each = local.services

  alarm_name          = "${local.name}-${each.key}-no-healthy-host"
  alarm_description   = "No healthy target in ${each.key}'s REST target group on any ALB node (HealthyHostCount Maximum < 1): the ALB answers 503 for /${each.key}/*."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "HealthyHostCount"
  dimensions          = { TargetGroup = aws_lb_target_group.rest[each.key].arn_suffix, LoadBalancer = aws_lb.this.arn_suffix }
  statistic           = "Maximum"
  period              = local.alarm_period
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  evaluation_periods  = local.alarm_evaluation_periods
  datapoints_to_alarm = local.alarm_datapoints_to_alarm
  # No data about the target group is no evidence of a healthy target.
  treat_missing_data = "breaching"
  alarm_actions      = local.alarm_topic_arns
  ok_actions         = local.alarm_topic_arns
}

################################################################################
# Optional SNS topic for the alarms (alarm_notifications.create_topic), with
# its own KMS key: CloudWatch cannot publish to a topic encrypted with the
# AWS managed key alias/aws/sns, and the platform key is not for it. See
# https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
################################################################################

data "aws_iam_policy_document" "alarms_kms" {
  #checkov:skip=CKV_AWS_111:This is a KMS key policy, not an IAM policy: Resource "*" means this key only, and the account-root kms:* statement is the AWS default that delegates key access to IAM.
  #checkov:skip=CKV_AWS_356:This is a KMS key policy: Resource "*" in a key policy refers to the key itself, no other resource can be named.
  #checkov:skip=CKV_AWS_109:This is a KMS key policy: the account-root statement is the AWS default key policy (without it the key becomes unmanageable); CloudWatch gets only the two actions SNS encryption needs.
  count = var.alarm_notifications.create_topic ? 1 : 0

  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${local.name}-*"]
    }
  }
}

resource "aws_kms_key" "alarms" {
  count = var.alarm_notifications.create_topic ? 1 : 0

  description             = "${local.name}: alarm notifications topic"
  enable_key_rotation     = true
  deletion_window_in_days = 7
  policy                  = data.aws_iam_policy_document.alarms_kms[0].json
}

resource "aws_sns_topic" "alarms" {
  count = var.alarm_notifications.create_topic ? 1 : 0

  name              = "${local.name}-alarms"
  kms_master_key_id = aws_kms_key.alarms[0].arn
}

# Only this stack's alarms may publish.
data "aws_iam_policy_document" "alarms_topic" {
  count = var.alarm_notifications.create_topic ? 1 : 0

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms[0].arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${local.name}-*"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  count = var.alarm_notifications.create_topic ? 1 : 0

  arn    = aws_sns_topic.alarms[0].arn
  policy = data.aws_iam_policy_document.alarms_topic[0].json
}

# The recipient confirms the subscription from the email SNS sends; until
# then nothing is delivered.
resource "aws_sns_topic_subscription" "alarm_email" {
  count = var.alarm_notifications.create_topic && var.alarm_notifications.email != "" ? 1 : 0

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = var.alarm_notifications.email
}
