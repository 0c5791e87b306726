################################################################################
# General
################################################################################

variable "aws_region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-2"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like an AWS region code, e.g. us-east-2."
  }
}

variable "name" {
  description = "Short prefix for every resource name (lowercase letters, digits and '-', at most 10 characters so that target group names stay under 32)."
  type        = string
  default     = "scdemo"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,9}$", var.name))
    error_message = "name must be 2-10 characters: a lowercase letter followed by lowercase letters, digits or '-'."
  }
}

variable "tags" {
  description = "Extra tags merged into the default tags of every resource."
  type        = map(string)
  default     = {}
}

################################################################################
# Container image
################################################################################

variable "image_tag" {
  description = "Immutable tag (e.g. a git SHA) or digest (sha256:...) of the status-service image in the ECR repository. Never 'latest'."
  type        = string

  validation {
    condition     = var.image_tag != "" && lower(var.image_tag) != "latest"
    error_message = "image_tag must be set and must not be 'latest': deploy an immutable tag or a digest."
  }

  validation {
    condition     = can(regex("^(sha256:[a-f0-9]{64}|[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$", var.image_tag))
    error_message = "image_tag must be a valid Docker tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}) or a digest sha256:<64 hex>."
  }
}

variable "ecr_repository_name" {
  description = "Name of the ECR repository for the status-service image. Empty means \"<name>/status-service\"."
  type        = string
  default     = ""

  validation {
    condition     = var.ecr_repository_name == "" || can(regex("^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$", var.ecr_repository_name))
    error_message = "ecr_repository_name must be a valid ECR repository name (lowercase, digits, '.', '_', '-', '/')."
  }
}

variable "ecr_keep_images" {
  description = "How many most recent images the ECR lifecycle policy keeps (per-platform images of a multi-arch push count too)."
  type        = number
  default     = 20

  validation {
    condition     = var.ecr_keep_images >= 1 && var.ecr_keep_images <= 1000
    error_message = "ecr_keep_images must be between 1 and 1000."
  }
}

variable "ecr_force_delete" {
  description = "Let `terraform destroy` delete the ECR repository even if it still holds images (demo convenience; set false to protect images)."
  type        = bool
  default     = true
}

################################################################################
# Network
################################################################################

variable "vpc_cidr" {
  description = "CIDR block of the VPC (a /16 to /20; subnets are /24-sized slices of it)."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20
    error_message = "vpc_cidr must be a valid IPv4 CIDR between /16 and /20."
  }
}

variable "az_count" {
  description = "Number of availability zones (one public and one private subnet in each) when availability_zones is empty."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3
    error_message = "az_count must be 2 or 3."
  }
}

variable "availability_zones" {
  description = "Availability zone names to use (2 or 3). Empty means the first az_count of <region>a, <region>b, <region>c."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.availability_zones) == 0 || (length(var.availability_zones) >= 2 && length(var.availability_zones) <= 3 && length(distinct(var.availability_zones)) == length(var.availability_zones))
    error_message = "availability_zones must be empty or list 2 or 3 distinct zone names."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway shared by all private subnets (cheaper) instead of one per AZ (survives an AZ outage)."
  type        = bool
  default     = true
}

################################################################################
# ECS and Service Connect
################################################################################

variable "namespace_name" {
  description = "Name of the Cloud Map HTTP namespace used by Service Connect."
  type        = string
  default     = "fast-api-namespace"

  validation {
    condition     = length(var.namespace_name) <= 1024 && can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*$", var.namespace_name))
    error_message = "namespace_name must be at most 1024 characters, start with a letter or digit and contain only letters, digits, '.', '_' and '-'."
  }
}

variable "service_connect_tls_enabled" {
  description = "Encrypt Service Connect traffic with TLS 1.3 using certificates from AWS Private CA. Also switches the ALB target groups from HTTP to HTTPS."
  type        = bool
  default     = true
}

variable "existing_pca_arn" {
  description = "ARN of an existing, ACTIVE AWS Private CA to issue Service Connect certificates (it must carry the tag AmazonECSManaged = \"true\"). Empty creates a short-lived-mode root CA."
  type        = string
  default     = ""

  validation {
    condition     = var.existing_pca_arn == "" || can(regex("^arn:aws[a-z-]*:acm-pca:[a-z0-9-]+:[0-9]{12}:certificate-authority/[0-9a-f-]+$", var.existing_pca_arn))
    error_message = "existing_pca_arn must be empty or an ACM PCA certificate authority ARN."
  }
}

variable "pca_key_algorithm" {
  description = "Key algorithm of the created Private CA. Service Connect supports ECDSA P-256 and RSA 2048 only."
  type        = string
  default     = "EC_prime256v1"

  validation {
    condition     = contains(["EC_prime256v1", "RSA_2048"], var.pca_key_algorithm)
    error_message = "pca_key_algorithm must be EC_prime256v1 or RSA_2048 (RSA_4096 and P-384 are not supported by Service Connect)."
  }
}

variable "service_connect_kms_enabled" {
  description = "Create a customer managed KMS key for the Service Connect TLS secrets (otherwise an AWS owned key is used)."
  type        = bool
  default     = false
}

variable "service_connect_idle_timeout_seconds" {
  description = "Seconds a Service Connect proxy keeps a connection open with no traffic on it. 0 disables the idle timeout: quiet connections and streams then stay open until a side closes them (dead peers are only found by the app's HTTP/2 keepalive). Long-lived gRPC streams (WatchStatus) need a large value or 0; the per-request timeout is always disabled (0)."
  type        = number
  default     = 3600

  validation {
    condition = (
      var.service_connect_idle_timeout_seconds == floor(var.service_connect_idle_timeout_seconds) &&
      (var.service_connect_idle_timeout_seconds == 0 ||
      (var.service_connect_idle_timeout_seconds >= 60 && var.service_connect_idle_timeout_seconds <= 2147483647))
    )
    error_message = "service_connect_idle_timeout_seconds must be a whole number: 0 (no idle timeout) or 60 to 2147483647 seconds."
  }
}

variable "service_connect_app_protocol" {
  description = "appProtocol of the services' port mapping (what the Service Connect proxy expects on it): \"grpc\" (default: each gRPC call balanced on its own across the peer's tasks, gRPC metrics), \"http2\" (per-request balancing, HTTP/2 metrics), \"http\" (HTTP/1.x handling; AWS does not document that it carries the services' gRPC), or \"none\" (no appProtocol: TCP, a client's connection and every call on it stick to one peer task, no request metrics). ALB health checks and REST requests arrive at the same port over HTTP/1.1; AWS does not document whether a \"grpc\" or \"http2\" port accepts that (\"none\" passes bytes through): if they fail while the tasks are healthy, try \"http2\", then \"none\" (IaC/README.md, Troubleshooting). Changing it replaces both ECS services."
  type        = string
  default     = "grpc"

  validation {
    condition     = contains(["grpc", "http2", "http", "none"], var.service_connect_app_protocol)
    error_message = "service_connect_app_protocol must be \"grpc\", \"http2\", \"http\" or \"none\" (no appProtocol: TCP, per-connection balancing)."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the Fargate tasks; must match the pushed image (ARM64 = Graviton, cheaper)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "task_cpu" {
  description = "Fargate task CPU units for each service: the app and the Service Connect proxy ECS adds to the task share them. AWS recommends 256 units for the proxy on top of the app's; the default 512 gives the app the 256 it was measured with."
  type        = number
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.task_cpu)
    error_message = "task_cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384."
  }
}

variable "task_memory" {
  description = "Fargate task memory in MiB for each service, shared by the app and the Service Connect proxy (AWS recommends at least 64 MiB for the proxy). Must be a valid Fargate combination with task_cpu; 1024 is the smallest for 512 CPU units."
  type        = number
  default     = 1024

  validation {
    condition     = var.task_memory >= 512 && var.task_memory <= 122880 && var.task_memory % 512 == 0
    error_message = "task_memory must be a multiple of 512 between 512 and 122880 MiB (and a valid Fargate combination with task_cpu)."
  }
}

variable "rust_log" {
  description = "RUST_LOG filter passed to both services."
  type        = string
  default     = "info"
}

variable "health_check_grace_period_seconds" {
  description = "Seconds ECS ignores failing ALB health checks after a task starts."
  type        = number
  default     = 60

  validation {
    condition     = var.health_check_grace_period_seconds >= 0 && var.health_check_grace_period_seconds <= 2147483647
    error_message = "health_check_grace_period_seconds must be >= 0."
  }
}

variable "log_retention_days" {
  description = "Retention of every CloudWatch log group (application, Service Connect proxy, ECS Exec, VPC flow logs)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

################################################################################
# Autoscaling
################################################################################

variable "min_capacity" {
  description = "Minimum (and initial) number of tasks per service."
  type        = number
  default     = 1

  validation {
    condition     = var.min_capacity >= 1
    error_message = "min_capacity must be at least 1."
  }
}

variable "max_capacity" {
  description = "Maximum number of tasks per service."
  type        = number
  default     = 4

  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity <= 100
    error_message = "max_capacity must be between 1 and 100 (and >= min_capacity)."
  }
}

variable "cpu_target_value" {
  description = "Target average CPU utilization (percent) for target-tracking autoscaling."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_value > 0 && var.cpu_target_value <= 100
    error_message = "cpu_target_value must be in (0, 100]."
  }
}

variable "requests_per_target" {
  description = "Target ALB requests per task (per minute) for target-tracking autoscaling."
  type        = number
  default     = 1000

  validation {
    condition     = var.requests_per_target > 0
    error_message = "requests_per_target must be positive."
  }
}

################################################################################
# Load balancer
################################################################################

variable "certificate_arn" {
  description = "ACM certificate ARN for the HTTPS listener. Empty imports a self-signed certificate generated by the tls provider (demo only: browsers and curl will not trust it)."
  type        = string
  default     = ""

  validation {
    condition     = var.certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.certificate_arn))
    error_message = "certificate_arn must be empty or an ACM certificate ARN."
  }
}

variable "domain_name" {
  description = "DNS name used for the self-signed demo certificate and, with grpc_ingress_enabled, for the host rules <service>.grpc.<domain_name>."
  type        = string
  default     = "scdemo.example.com"

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain_name))
    error_message = "domain_name must be a lowercase DNS name such as scdemo.example.com."
  }
}

variable "alb_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach the ALB on ports 80 and 443."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.alb_ingress_cidrs) > 0 && alltrue([for c in var.alb_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "alb_ingress_cidrs must be a non-empty list of valid IPv4 CIDRs."
  }
}

variable "alb_deletion_protection" {
  description = "Enable deletion protection on the ALB (set true in production; `terraform destroy` then fails until it is turned off)."
  type        = bool
  default     = false
}

variable "alb_idle_timeout" {
  description = "ALB idle timeout in seconds (raise it for long, quiet gRPC streams)."
  type        = number
  default     = 300

  validation {
    condition     = var.alb_idle_timeout >= 1 && var.alb_idle_timeout <= 4000
    error_message = "alb_idle_timeout must be between 1 and 4000 seconds."
  }
}

variable "alb_access_logs_bucket" {
  description = "Name of an existing S3 bucket (SSE-S3, with the ELB log delivery bucket policy) for ALB access logs. Empty disables access logs."
  type        = string
  default     = ""
}

variable "deregistration_delay" {
  description = "Seconds the ALB keeps draining a deregistered target (the app itself drains for DRAIN_DELAY + SHUTDOWN_TIMEOUT = 15 s after SIGTERM)."
  type        = number
  default     = 15

  validation {
    condition     = var.deregistration_delay >= 0 && var.deregistration_delay <= 3600
    error_message = "deregistration_delay must be between 0 and 3600."
  }
}

variable "grpc_ingress_enabled" {
  description = "Also expose gRPC through the ALB: one GRPC target group per service, reached with the host header <service>.grpc.<domain_name> on the HTTPS listener."
  type        = bool
  default     = false
}

################################################################################
# Toolbox (in-cluster grpcurl)
################################################################################

variable "toolbox_enabled" {
  description = "Run a client-only ECS service with grpcurl, reachable with ECS Exec, to call the services by their Service Connect names."
  type        = bool
  default     = true
}

variable "toolbox_image" {
  description = "Public grpcurl image for the toolbox, pinned to a version (its Alpine variant has /bin/sh for ECS Exec)."
  type        = string
  default     = "fullstorydev/grpcurl:v1.8.9-alpine"

  validation {
    condition     = can(regex("^[^@]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$", var.toolbox_image)) && !endswith(var.toolbox_image, ":latest")
    error_message = "toolbox_image must be pinned to a tag other than 'latest' or to a digest."
  }
}
