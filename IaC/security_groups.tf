################################################################################
# Security groups (least privilege, one rule per resource, every rule
# described)
#
#   internet --80/443--> alb --service ports--> tasks
#   tasks --service ports--> tasks            (Service Connect proxy to proxy)
#   toolbox --service ports--> tasks          (grpcurl through its own proxy)
#   tasks, toolbox --443--> AWS APIs via NAT  (ECR, CloudWatch Logs, the
#                                              Service Connect control plane;
#                                              SSM messages for the toolbox's
#                                              ECS Exec)
################################################################################

resource "aws_security_group" "alb" {
  name_prefix = "${local.name}-alb-"
  description = "Public ALB: HTTP/HTTPS from the internet, to the service ports of the tasks only"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.name}-alb" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "tasks" {
  name_prefix = "${local.name}-tasks-"
  description = "service-a and service-b tasks: service ports from the ALB, from each other and from the toolbox"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.name}-tasks" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "toolbox" {
  count = var.toolbox_enabled ? 1 : 0

  name_prefix = "${local.name}-toolbox-"
  description = "grpcurl toolbox: no ingress; egress to the service ports of the tasks and to AWS APIs"
  vpc_id      = aws_vpc.this.id

  tags = { Name = "${local.name}-toolbox" }

  lifecycle {
    create_before_destroy = true
  }
}

################################################################################
# ALB rules
################################################################################

locals {
  alb_ingress = merge([
    for port in [80, 443] : {
      for cidr in var.alb_ingress_cidrs : "${port}-${cidr}" => { port = port, cidr = cidr }
    }
  ]...)
}

resource "aws_vpc_security_group_ingress_rule" "alb" {
  #checkov:skip=CKV_AWS_260:Port 80 is open to the internet only to answer with a redirect to HTTPS (listener action redirect, no backend reachable over HTTP).
  for_each = local.alb_ingress

  security_group_id = aws_security_group.alb.id
  description       = each.value.port == 80 ? "HTTP from ${each.value.cidr} (redirected to HTTPS)" : "HTTPS from ${each.value.cidr}"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  for_each = local.services

  security_group_id            = aws_security_group.alb.id
  description                  = "To ${each.key} tasks (traffic and health checks via the Service Connect proxy)"
  ip_protocol                  = "tcp"
  from_port                    = each.value.container_port
  to_port                      = each.value.container_port
  referenced_security_group_id = aws_security_group.tasks.id
}

################################################################################
# Task rules
################################################################################

locals {
  task_ingress_sources = merge(
    { alb = aws_security_group.alb.id, tasks = aws_security_group.tasks.id },
    { for sg in aws_security_group.toolbox : "toolbox" => sg.id },
  )

  task_ingress = merge([
    for source, sg in local.task_ingress_sources : {
      for k, s in local.services : "${source}-${k}" => {
        source  = source
        sg      = sg
        service = k
        port    = s.container_port
      }
    }
  ]...)
}

resource "aws_vpc_security_group_ingress_rule" "tasks" {
  for_each = local.task_ingress

  security_group_id            = aws_security_group.tasks.id
  description                  = "${each.value.service} port ${each.value.port} from the ${each.value.source} security group"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = each.value.sg
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_peers" {
  for_each = local.services

  security_group_id            = aws_security_group.tasks.id
  description                  = "Service Connect proxy to ${each.key} tasks"
  ip_protocol                  = "tcp"
  from_port                    = each.value.container_port
  to_port                      = each.value.container_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs through the NAT gateway (ECR, CloudWatch Logs, Service Connect)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

################################################################################
# Toolbox rules
################################################################################

resource "aws_vpc_security_group_egress_rule" "toolbox_to_tasks" {
  for_each = { for k, s in local.services : k => s if var.toolbox_enabled }

  security_group_id            = aws_security_group.toolbox[0].id
  description                  = "Service Connect proxy of the toolbox to ${each.key} tasks"
  ip_protocol                  = "tcp"
  from_port                    = each.value.container_port
  to_port                      = each.value.container_port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_vpc_security_group_egress_rule" "toolbox_https" {
  count = var.toolbox_enabled ? 1 : 0

  security_group_id = aws_security_group.toolbox[0].id
  description       = "HTTPS to Docker Hub (image pull) and AWS APIs through the NAT gateway"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}
