################################################################################
# Toolbox: an in-cluster grpcurl, client-only member of the Service Connect
# namespace (no `service` block), kept alive so that ECS Exec can run
#   grpcurl -plaintext service-b-sc:8202 list
# inside it. Its own proxy resolves the service-x-sc names and does the TLS, so
# grpcurl talks plaintext to localhost's proxy.
#
# A standalone `aws ecs run-task` CANNOT do this: only tasks of ECS services
# get a Service Connect proxy, so run-task tasks cannot resolve service-b-sc.
################################################################################

resource "aws_iam_role" "toolbox_task" {
  count = var.toolbox_enabled ? 1 : 0

  name               = local.role_names.toolbox_task
  description        = "Task role of the grpcurl toolbox: ECS Exec only"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  # The stack boundary (iam_boundary.tf): the deploy role may write this
  # role's policies only under it.
  permissions_boundary = aws_iam_policy.role_boundary.arn
}

resource "aws_iam_role_policy_attachment" "toolbox_ecs_exec" {
  count = var.toolbox_enabled ? 1 : 0

  role       = aws_iam_role.toolbox_task[0].name
  policy_arn = aws_iam_policy.ecs_exec.arn
}

resource "aws_ecs_task_definition" "toolbox" {
  #checkov:skip=CKV_AWS_336:The toolbox exists only to be entered with ECS Exec, whose SSM agent needs a writable root filesystem (AWS ECS Exec considerations); it runs no server and holds no data.
  count = var.toolbox_enabled ? 1 : 0

  family                   = "${local.name}-${local.toolbox_name}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = local.toolbox_task_size.cpu
  memory                   = local.toolbox_task_size.memory
  execution_role_arn       = aws_iam_role.task_execution.arn
  task_role_arn            = aws_iam_role.toolbox_task[0].arn

  runtime_platform {
    operating_system_family = "LINUX"
    # Fixed to X86_64 whatever the services use: every grpcurl release image
    # exists for amd64, and the toolbox's architecture does not matter.
    cpu_architecture = "X86_64"
  }

  container_definitions = jsonencode([
    {
      name      = local.toolbox_container
      image     = var.toolbox_image
      essential = true

      # The image's entrypoint is grpcurl itself; keep the container idle
      # instead. ECS Exec sessions run as root, so grpcurl works there.
      entryPoint = ["tail", "-f", "/dev/null"]

      # ECS Exec officially needs a writable root filesystem (its SSM agent
      # creates files in the container), and this container exists only for
      # ECS Exec.
      user                   = "65534:65534"
      readonlyRootFilesystem = false
      stopTimeout            = 2

      # grpcurl and the ECS Exec agent; the rest of the task is the proxy's.
      memoryReservation = local.toolbox_container_size.memory

      linuxParameters = {
        initProcessEnabled = true
      }

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this[local.toolbox_name].name
          awslogs-region        = local.region
          awslogs-stream-prefix = local.toolbox_name
        }
      }
    }
  ])

  lifecycle {
    precondition {
      condition = (
        contains(lookup(local.fargate_memory_options, tostring(local.toolbox_task_size.cpu), []), local.toolbox_task_size.memory) &&
        local.toolbox_task_size.cpu >= local.toolbox_container_size.cpu + local.service_connect_proxy_size.cpu &&
        local.toolbox_task_size.memory >= local.toolbox_container_size.memory + local.service_connect_proxy_size.memory
      )
      error_message = "local.toolbox_task_size must be a valid Fargate size that holds the toolbox container plus the Service Connect proxy."
    }
  }
}

resource "aws_ecs_service" "toolbox" {
  count = var.toolbox_enabled ? 1 : 0

  name                   = local.toolbox_name
  cluster                = aws_ecs_cluster.this.arn
  task_definition        = aws_ecs_task_definition.toolbox[0].arn
  desired_count          = 1
  launch_type            = "FARGATE"
  platform_version       = "LATEST"
  enable_execute_command = true
  propagate_tags         = "SERVICE"

  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.toolbox[0].id]
    assign_public_ip = false
  }

  # Client only: no `service` block, so nothing is published, but the proxy
  # knows every endpoint in the namespace.
  service_connect_configuration {
    enabled   = true
    namespace = aws_service_discovery_http_namespace.this.arn

    log_configuration {
      log_driver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.this["service-connect"].name
        awslogs-region        = local.region
        awslogs-stream-prefix = local.toolbox_name
      }
    }
  }

  # Replaced with the services (when their appProtocol changes), so that it
  # starts again after them and knows their new endpoints.
  lifecycle {
    replace_triggered_by = [terraform_data.service_connect_app_protocol]
  }

  # A Service Connect client sees the endpoints that exist when its task
  # starts: start it after service-a and service-b.
  depends_on = [
    aws_ecs_service.this,
    aws_iam_role_policy.task_execution,
    aws_iam_role_policy_attachment.toolbox_ecs_exec,
    aws_route.private_nat,
  ]
}
