################################################################################
# Shared values
################################################################################

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

# Zones are pinned by name (var.availability_zones, or <region>a, b[, c]) so
# the subnets never move when AWS adds a zone; the data source only checks
# that the chosen zones exist and are available (see the VPC precondition).
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = local.azs
  }
}

locals {
  name       = var.name
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  region     = var.aws_region

  tags = merge(
    {
      Project   = local.name
      ManagedBy = "terraform"
      Source    = "service-connect-demo/IaC"
    },
    var.tags,
  )

  azs = (
    length(var.availability_zones) > 0
    ? var.availability_zones
    : [for suffix in slice(["a", "b", "c"], 0, var.az_count) : "${var.aws_region}${suffix}"]
  )
  az_count = length(local.azs)

  ##############################################################################
  # The two services. Everything per service (task definition, ECS service,
  # target groups, listener rules, log groups, autoscaling, security group
  # rules) is a for_each over this map. Values are the Rust code's defaults
  # (services/src/topology.rs); the contract test in IaC/checks compares them.
  ##############################################################################
  services = {
    "service-a" = {
      container_port = 8201
      port_name      = "service-a-grpc"
      discovery_name = "service-a"
      dns_name       = "service-a-sc"
      health_path    = "/service-a/healthcheck"
      path_pattern   = "/service-a/*"
      rule_priority  = 10
      peer           = "service-b"
    }
    "service-b" = {
      container_port = 8202
      port_name      = "service-b-grpc"
      discovery_name = "service-b"
      dns_name       = "service-b-sc"
      health_path    = "/service-b/healthcheck"
      path_pattern   = "/service-b/*"
      rule_priority  = 20
      peer           = "service-a"
    }
  }

  # The peer's Service Connect URL, derived from the map (never typed twice).
  peer_urls = {
    for k, s in local.services :
    k => "http://${local.services[s.peer].dns_name}:${local.services[s.peer].container_port}"
  }

  # REST paths each service answers (used for the curl outputs).
  rest_paths = ["healthcheck", "status", "other-status"]

  # Binary inside the image (see the Dockerfile).
  binary = "/usr/local/bin/status-service"

  # App drains DRAIN_DELAY + SHUTDOWN_TIMEOUT = 15 s after SIGTERM; ECS waits
  # stop_timeout before SIGKILL, so it must be larger.
  drain_delay      = "5s"
  shutdown_timeout = "10s"
  stop_timeout     = 30

  # Image by immutable tag or by digest.
  image = (
    startswith(var.image_tag, "sha256:")
    ? "${aws_ecr_repository.app.repository_url}@${var.image_tag}"
    : "${aws_ecr_repository.app.repository_url}:${var.image_tag}"
  )

  ##############################################################################
  # Service Connect TLS
  ##############################################################################
  create_pca = var.service_connect_tls_enabled && var.existing_pca_arn == ""
  pca_arn = (
    var.service_connect_tls_enabled
    ? (local.create_pca ? aws_acmpca_certificate_authority.this[0].arn : var.existing_pca_arn)
    : ""
  )
  create_sc_kms_key = var.service_connect_tls_enabled && var.service_connect_kms_enabled
  # The AWS managed policy of the Service Connect TLS infrastructure role.
  service_connect_tls_policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity"

  # ALB traffic to a task goes through the Service Connect proxy on the
  # container port: it speaks TLS 1.3 when Service Connect TLS is on.
  target_protocol = var.service_connect_tls_enabled ? "HTTPS" : "HTTP"

  ##############################################################################
  # Port mapping appProtocol (var.service_connect_app_protocol); "none" sets
  # none, which Service Connect treats as TCP.
  ##############################################################################
  port_app_protocol = (
    var.service_connect_app_protocol == "none"
    ? {}
    : { appProtocol = var.service_connect_app_protocol }
  )

  ##############################################################################
  # Task sizes. ECS adds a Service Connect proxy container to every task of a
  # Service Connect service (the toolbox too); AWS recommends adding 256 CPU
  # units and at least 64 MiB to the task for it. The app keeps at least the
  # 256 CPU units / 512 MiB that the whole task used to have, so a task needs
  # 512 CPU / 576 MiB: the smallest valid Fargate size is 512 / 1024.
  # The toolbox's grpcurl container idles (`tail -f /dev/null`) and runs one
  # short grpcurl per ECS Exec session: it reserves no CPU and 256 MiB (the
  # ECS Exec agent included), so 256 / 512 holds it and its proxy.
  ##############################################################################
  service_connect_proxy_size = { cpu = 256, memory = 64 }
  app_min_size               = { cpu = 256, memory = 512 }
  toolbox_container_size     = { cpu = 0, memory = 256 }
  toolbox_task_size          = { cpu = 256, memory = 512 }

  # Valid Fargate (Linux) task sizes: CPU units => memory MiB options.
  fargate_memory_options = {
    "256"   = [512, 1024, 2048]
    "512"   = range(1024, 4097, 1024)
    "1024"  = range(2048, 8193, 1024)
    "2048"  = range(4096, 16385, 1024)
    "4096"  = range(8192, 30721, 1024)
    "8192"  = range(16384, 61441, 4096)
    "16384" = range(32768, 122881, 8192)
  }

  # Open files per app container (soft = hard). Fargate's documented default
  # is 65535 today, but it was 1024 (soft) on older platform versions: set
  # it, so the limit never depends on the platform version.
  nofile_limit = 65535

  # IAM role names, here so that the GitHub deploy policy (github_oidc.tf)
  # can name the roles without depending on them.
  role_names = {
    task                = "${local.name}-task"
    task_execution      = "${local.name}-task-execution"
    toolbox_task        = "${local.name}-toolbox-task"
    service_connect_tls = "${local.name}-service-connect-tls"
    flow_logs           = "${local.name}-vpc-flow-logs"
    github_deploy       = "${local.name}-github-deploy"
  }

  certificate_arn   = var.certificate_arn != "" ? var.certificate_arn : aws_acm_certificate.self_signed[0].arn
  self_signed_cert  = var.certificate_arn == ""
  curl_insecure     = local.self_signed_cert ? "-k " : ""
  alb_url           = "https://${aws_lb.this.dns_name}"
  ecr_repository    = var.ecr_repository_name != "" ? var.ecr_repository_name : "${local.name}/status-service"
  toolbox_name      = "toolbox"
  toolbox_container = "grpcurl"
  toolbox_names     = var.toolbox_enabled ? [local.toolbox_name] : []
}
