################################################################################
# Public Application Load Balancer
#
#   client --HTTPS (TLS13 policy)--> ALB --HTTPS, TLS 1.3--> Service Connect
#   proxy on the task port --plaintext h2c--> app (same task)
#
# The ALB target is the task's container port, which the Service Connect proxy
# owns (no ingress_port_override), so with Service Connect TLS on the target
# groups must speak HTTPS (TLS 1.3: the proxy accepts nothing older, and the
# ALB offers TLS 1.3 to targets only with a TLS13 listener policy).
################################################################################

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_28:WAF is out of scope for this reference deployment; attach an aws_wafv2_web_acl_association in production.
  #checkov:skip=CKV_AWS_150:Deletion protection is var.alb_deletion_protection (default false so the demo can be destroyed); set it to true in production.
  #checkov:skip=CKV_AWS_91:Access logs need an S3 bucket with the ELB delivery policy; they are enabled by var.alb_access_logs_bucket and off by default in the demo.
  name                       = local.name
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb.id]
  subnets                    = aws_subnet.public[*].id
  drop_invalid_header_fields = true
  enable_deletion_protection = var.alb_deletion_protection
  idle_timeout               = var.alb_idle_timeout

  dynamic "access_logs" {
    for_each = var.alb_access_logs_bucket != "" ? [var.alb_access_logs_bucket] : []

    content {
      bucket  = access_logs.value
      prefix  = local.name
      enabled = true
    }
  }
}

################################################################################
# Certificate: var.certificate_arn, or a self-signed one (DEMO ONLY)
# The private key of the self-signed certificate is kept in the Terraform
# state; clients must skip verification (curl -k, grpcurl -insecure).
################################################################################

resource "tls_private_key" "self_signed" {
  count = local.self_signed_cert ? 1 : 0

  algorithm = "RSA"
  rsa_bits  = 2048
}

resource "tls_self_signed_cert" "self_signed" {
  count = local.self_signed_cert ? 1 : 0

  private_key_pem       = tls_private_key.self_signed[0].private_key_pem
  validity_period_hours = 24 * 365
  early_renewal_hours   = 24 * 30
  dns_names             = [var.domain_name, "*.grpc.${var.domain_name}"]

  subject {
    common_name  = var.domain_name
    organization = "${local.name} demo (self-signed)"
  }

  allowed_uses = [
    "key_encipherment",
    "digital_signature",
    "server_auth",
  ]
}

resource "aws_acm_certificate" "self_signed" {
  #checkov:skip=CKV_AWS_234:Certificate transparency logging applies to certificates ACM issues; this is an imported self-signed demo certificate.
  count = local.self_signed_cert ? 1 : 0

  private_key      = tls_private_key.self_signed[0].private_key_pem
  certificate_body = tls_self_signed_cert.self_signed[0].cert_pem

  tags = { Name = "${local.name}-self-signed-demo" }

  lifecycle {
    create_before_destroy = true
  }
}

################################################################################
# Listeners
################################################################################

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-Res-2021-06"
  certificate_arn   = local.certificate_arn

  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "application/json"
      message_body = jsonencode({ error = "not found" })
      status_code  = "404"
    }
  }
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}

################################################################################
# REST: one HTTP/1.1 target group and one path rule per service
################################################################################

resource "aws_lb_target_group" "rest" {
  for_each = local.services

  # The protocol is in the name so that toggling Service Connect TLS creates
  # the new target group before the old one is destroyed.
  name                 = "${local.name}-${each.key}-${lower(local.target_protocol)}"
  vpc_id               = aws_vpc.this.id
  target_type          = "ip"
  port                 = each.value.container_port
  protocol             = local.target_protocol
  protocol_version     = "HTTP1"
  deregistration_delay = var.deregistration_delay

  health_check {
    enabled             = true
    path                = each.value.health_path
    port                = "traffic-port"
    protocol            = local.target_protocol
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = { Name = "${local.name}-${each.key}" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener_rule" "rest" {
  for_each = local.services

  listener_arn = aws_lb_listener.https.arn
  priority     = each.value.rule_priority

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.rest[each.key].arn
  }

  condition {
    path_pattern {
      values = [each.value.path_pattern]
    }
  }
}

################################################################################
# Optional gRPC ingress: a GRPC target group per service, selected by host
# header (both services expose the same rpc paths, so paths cannot tell them
# apart). Rules are evaluated after the REST path rules.
#   grpcurl -insecure -authority service-a.grpc.<domain_name> <alb dns>:443 list
################################################################################

resource "aws_lb_target_group" "grpc" {
  for_each = { for k, s in local.services : k => s if var.grpc_ingress_enabled }

  name                 = "${local.name}-${each.key}-g${lower(local.target_protocol)}"
  vpc_id               = aws_vpc.this.id
  target_type          = "ip"
  port                 = each.value.container_port
  protocol             = local.target_protocol
  protocol_version     = "GRPC"
  deregistration_delay = var.deregistration_delay

  health_check {
    enabled             = true
    path                = "/grpc.health.v1.Health/Check"
    port                = "traffic-port"
    protocol            = local.target_protocol
    matcher             = "0"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = { Name = "${local.name}-${each.key}-grpc" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener_rule" "grpc" {
  for_each = { for k, s in local.services : k => s if var.grpc_ingress_enabled }

  listener_arn = aws_lb_listener.https.arn
  priority     = 100 + each.value.rule_priority

  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.grpc[each.key].arn
  }

  condition {
    host_header {
      values = ["${each.key}.grpc.${var.domain_name}"]
    }
  }
}
