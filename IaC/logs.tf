################################################################################
# CloudWatch log groups: one per service, the Service Connect proxies, ECS
# Exec sessions, the toolbox and the VPC flow logs. All KMS-encrypted with a
# finite retention.
################################################################################

locals {
  log_groups = merge(
    { for k in keys(local.services) : k => "/ecs/${local.name}/${k}" },
    {
      "service-connect" = "/ecs/${local.name}/service-connect"
      "ecs-exec"        = "/ecs/${local.name}/ecs-exec"
      "flow-logs"       = "/vpc/${local.name}/flow-logs"
    },
    { for t in local.toolbox_names : t => "/ecs/${local.name}/${t}" },
  )
}

resource "aws_cloudwatch_log_group" "this" {
  for_each = local.log_groups

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.platform.arn
}
