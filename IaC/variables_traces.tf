################################################################################
# Variables of the optional trace collector sidecar (traces.tf).
################################################################################

variable "trace_collector_enabled" {
  description = "Run an AWS Distro for OpenTelemetry collector next to each app container and export the services' traces to it (OTLP gRPC on 127.0.0.1:4317), which sends them to AWS X-Ray. Needs task_cpu/task_memory of at least 1024/2048 (app + Service Connect proxy + collector). Off: no collector, no OTEL_ variables, no X-Ray permission; the services export nothing."
  type        = bool
  default     = false
}

variable "trace_collector_image" {
  description = "The ADOT collector image, pinned to a version tag or a digest (copy it into ECR to avoid pulling from public.ecr.aws through the NAT)."
  type        = string
  default     = "public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0"

  validation {
    condition     = can(regex("^[a-z0-9.-]+(/[a-z0-9._-]+)+(:v?[0-9]+\\.[0-9]+\\.[0-9]+[A-Za-z0-9._-]*|@sha256:[0-9a-f]{64})$", var.trace_collector_image))
    error_message = "trace_collector_image must be pinned: <registry>/<repository>:<version> (e.g. :v0.49.0) or @sha256:<digest>; no latest."
  }
}

variable "traces_sample_ratio" {
  description = "OTEL_TRACES_SAMPLER_ARG of the services with the collector on: the share of new traces sampled (parentbased_traceidratio: a request that arrives with a sampled or unsampled parent follows it). 0 to 1."
  type        = number
  default     = 0.05

  validation {
    condition     = var.traces_sample_ratio >= 0 && var.traces_sample_ratio <= 1
    error_message = "traces_sample_ratio must be between 0 and 1."
  }
}
