################################################################################
# ECS cluster
################################################################################

resource "aws_ecs_cluster" "this" {
  name = local.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = aws_kms_key.platform.arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.this["ecs-exec"].name
      }
    }
  }

  # New services in this cluster default to the Service Connect namespace.
  service_connect_defaults {
    namespace = aws_service_discovery_http_namespace.this.arn
  }
}

################################################################################
# Task definitions (one per service, from local.services)
################################################################################

resource "aws_ecs_task_definition" "this" {
  for_each = local.services

  family                   = "${local.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.task_cpu
  memory                   = var.task_memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.task.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # The app, then the optional trace collector (traces.tf).
  container_definitions = jsonencode(concat([
    {
      name      = each.key
      image     = local.image
      essential = true

      # distroless nonroot; the image needs no writable path.
      user                   = "65532:65532"
      readonlyRootFilesystem = true
      stopTimeout            = local.stop_timeout

      # appProtocol (var.service_connect_app_protocol) is immutable on a
      # Service Connect service: the services are replaced when it changes
      # (replace_triggered_by below).
      portMappings = [
        merge(
          {
            name          = each.value.port_name
            containerPort = each.value.container_port
            protocol      = "tcp"
          },
          local.port_app_protocol,
        )
      ]

      environment = concat([
        { name = "SERVICE_NAME", value = each.key },
        { name = "SERVER_PORT", value = tostring(each.value.container_port) },
        { name = "PEER_URL", value = local.peer_urls[each.key] },
        { name = "LOG_FORMAT", value = "json" },
        { name = "RUST_LOG", value = var.rust_log },
        { name = "DRAIN_DELAY", value = local.drain_delay },
        { name = "SHUTDOWN_TIMEOUT", value = local.shutdown_timeout },
        # EMF metrics (observability.tf reads this namespace).
        { name = "METRICS_NAMESPACE", value = local.metrics_namespace },
        { name = "EMF_INTERVAL", value = var.emf_interval },
        # OTLP trace export to the collector sidecar, if any (traces.tf).
      ], local.otel_environment[each.key])

      # Started after the collector is healthy and stopped before it, so
      # that the spans flushed at shutdown still reach it.
      dependsOn = var.trace_collector_enabled ? [
        { containerName = local.trace_collector_container, condition = "HEALTHY" }
      ] : null

      healthCheck = {
        command     = ["CMD", local.binary, "healthcheck"]
        interval    = 10
        timeout     = 5
        retries     = 3
        startPeriod = 10
      }

      # A tiny init as PID 1 forwards SIGTERM to the app and reaps orphans.
      # No ECS Exec here: the distroless image has no shell (see toolbox.tf).
      linuxParameters = {
        initProcessEnabled = true
      }

      # Connections are file descriptors: soft = hard, so the limit the app
      # sees does not depend on Fargate's default.
      ulimits = [
        { name = "nofile", softLimit = local.nofile_limit, hardLimit = local.nofile_limit }
      ]

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this[each.key].name
          awslogs-region        = local.region
          awslogs-stream-prefix = "app"
          mode                  = "non-blocking"
          max-buffer-size       = "4m"
        }
      }
    }
    ], [for c in local.trace_collectors : {
      name  = c
      image = var.trace_collector_image
      # Not essential: a collector that stops costs traces, not requests
      # (the app drops spans it cannot export).
      essential              = false
      command                = ["--config=/etc/ecs/ecs-xray.yaml"]
      cpu                    = local.trace_collector_size.cpu
      memoryReservation      = local.trace_collector_size.memory
      readonlyRootFilesystem = true
      stopTimeout            = 10
      environment            = [{ name = "AWS_REGION", value = local.region }]

      # The image's own health check binary (GET 127.0.0.1:13133, the
      # health_check extension of ecs-xray.yaml); the image has no shell.
      healthCheck = {
        command     = ["CMD", "/healthcheck"]
        interval    = 10
        timeout     = 5
        retries     = 3
        startPeriod = 10
      }

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this[each.key].name
          awslogs-region        = local.region
          awslogs-stream-prefix = c
          mode                  = "non-blocking"
        }
      }
  }]))

  lifecycle {
    precondition {
      condition     = contains(lookup(local.fargate_memory_options, tostring(var.task_cpu), []), var.task_memory)
      error_message = "task_cpu/task_memory is not a valid Fargate size (e.g. 512/1024, 1024/2048; see local.fargate_memory_options)."
    }

    precondition {
      condition = (
        var.task_cpu >= local.app_min_size.cpu + local.service_connect_proxy_size.cpu + local.trace_collector_reserved.cpu &&
        var.task_memory >= local.app_min_size.memory + local.service_connect_proxy_size.memory + local.trace_collector_reserved.memory
      )
      error_message = "task_cpu/task_memory must hold the app (256 CPU units, 512 MiB) plus the Service Connect proxy (256 CPU units, 64 MiB): at least 512/1024; with trace_collector_enabled also the collector (256, 256 MiB): at least 1024/2048."
    }

    precondition {
      condition     = alltrue([for k, s in local.services : contains(keys(local.services), s.peer) && s.peer != k])
      error_message = "Every service's peer must be another key of local.services."
    }
  }
}

################################################################################
# Services (one per service, from local.services)
################################################################################

resource "aws_ecs_service" "this" {
  for_each = local.services

  name                              = each.key
  cluster                           = aws_ecs_cluster.this.arn
  task_definition                   = aws_ecs_task_definition.this[each.key].arn
  desired_count                     = var.min_capacity
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST" # Service Connect needs >= 1.4.0
  enable_execute_command            = false    # distroless: no shell to exec into; use the toolbox
  enable_ecs_managed_tags           = true
  propagate_tags                    = "SERVICE"
  health_check_grace_period_seconds = var.health_check_grace_period_seconds

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.rest[each.key].arn
    container_name   = each.key
    container_port   = each.value.container_port
  }

  dynamic "load_balancer" {
    for_each = var.grpc_ingress_enabled ? [aws_lb_target_group.grpc[each.key].arn] : []

    content {
      target_group_arn = load_balancer.value
      container_name   = each.key
      container_port   = each.value.container_port
    }
  }

  service_connect_configuration {
    enabled   = true
    namespace = aws_service_discovery_http_namespace.this.arn

    log_configuration {
      log_driver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this["service-connect"].name
        awslogs-region        = local.region
        awslogs-stream-prefix = each.key
      }
    }

    # No ingress_port_override: the proxy owns the container port, so ALB
    # traffic also goes through it (and through its TLS).
    service {
      port_name      = each.value.port_name
      discovery_name = each.value.discovery_name

      client_alias {
        dns_name = each.value.dns_name
        port     = each.value.container_port
      }

      # Service Connect's default per-request timeout (15 s) would cut the
      # WatchStatus server stream: 0 disables it. ECS accepts a per-request
      # timeout only when appProtocol is not TCP (TimeoutConfiguration in
      # the ECS API reference): with "none" (TCP) it is left out.
      timeout {
        per_request_timeout_seconds = var.service_connect_app_protocol == "none" ? null : 0
        idle_timeout_seconds        = var.service_connect_idle_timeout_seconds
      }

      dynamic "tls" {
        for_each = var.service_connect_tls_enabled ? [1] : []

        content {
          issuer_cert_authority {
            aws_pca_authority_arn = local.pca_arn
          }
          role_arn = aws_iam_role.service_connect_tls[0].arn
          kms_key  = local.create_sc_kms_key ? aws_kms_key.service_connect[0].arn : null
        }
      }
    }
  }

  lifecycle {
    # Autoscaling owns the task count after creation.
    ignore_changes = [desired_count]

    # appProtocol cannot change on a Service Connect service: replace it.
    replace_triggered_by = [terraform_data.service_connect_app_protocol]
  }

  # Create after (and destroy before) everything the tasks and the proxies
  # use: the TLS role and its policy, the activated CA, the KMS key, the
  # listener rules that make the target groups usable, the IAM policies.
  depends_on = [
    aws_iam_role_policy_attachment.service_connect_tls,
    aws_acmpca_certificate_authority_certificate.root,
    aws_kms_key.service_connect,
    aws_lb_listener_rule.rest,
    aws_lb_listener_rule.grpc,
    aws_iam_role_policy.task_execution,
    aws_route.private_nat,
  ]
}

# Holds var.service_connect_app_protocol so that changing it replaces the
# services (replace_triggered_by) instead of failing the update.
resource "terraform_data" "service_connect_app_protocol" {
  input = var.service_connect_app_protocol
}
