################################################################################
# Optional trace collector sidecar (var.trace_collector_enabled; issue 19).
#
# Path to X-Ray: the app exports OTLP/gRPC to 127.0.0.1:4317 in its own task
# (awsvpc: the containers of a task share one network namespace); the AWS
# Distro for OpenTelemetry (ADOT) collector receives it with its built-in
# ECS configuration /etc/ecs/ecs-xray.yaml (OTLP receiver on 4317 and 4318,
# resource detection env/system/ecs/ec2, batch, the awsxray exporter, the
# health_check extension) and sends segments with xray:PutTraceSegments.
#
# Why ADOT and not the CloudWatch agent (which AWS's OTLP page recommends
# "for most customers"): ADOT's image ships that traces-only configuration
# and a /healthcheck binary for a container health check without a shell,
# and its X-Ray exporter needs only xray:PutTraceSegments, while the agent
# needs a JSON configuration of its own and documents no health check
# command. Sources: IaC/README.md, "Traces".
################################################################################

locals {
  trace_collector_container = "otel-collector"
  trace_collectors          = var.trace_collector_enabled ? [local.trace_collector_container] : []

  # The OTLP gRPC receiver of /etc/ecs/ecs-xray.yaml, reached over the
  # task's loopback.
  trace_collector_otlp_grpc_port = 4317
  otlp_endpoint                  = "http://127.0.0.1:${local.trace_collector_otlp_grpc_port}"

  # What the collector reserves of the task (CPU units, MiB): AWS's ECS
  # templates give a collector task 256 CPU units; it holds at most one
  # batch of the sampled spans.
  trace_collector_size = { cpu = 256, memory = 256 }
  trace_collector_reserved = (
    var.trace_collector_enabled ? local.trace_collector_size : { cpu = 0, memory = 0 }
  )

  # The standard OpenTelemetry variables the app reads (nothing
  # project-specific); none without the collector, so export stays off.
  otel_environment = {
    for k in keys(local.services) : k => var.trace_collector_enabled ? [
      { name = "OTEL_EXPORTER_OTLP_ENDPOINT", value = local.otlp_endpoint },
      { name = "OTEL_EXPORTER_OTLP_PROTOCOL", value = "grpc" },
      { name = "OTEL_SERVICE_NAME", value = k },
      { name = "OTEL_TRACES_SAMPLER", value = "parentbased_traceidratio" },
      { name = "OTEL_TRACES_SAMPLER_ARG", value = tostring(var.traces_sample_ratio) },
    ] : []
  }
}

# X-Ray write for the task role (the collector runs with it). PutTraceSegments
# has no resource-level permission and no condition key: "*" only (AWS
# Service Authorization Reference, AWS X-Ray). PutTelemetryRecords is left
# out: the exporter calls it only with its telemetry option on, which
# ecs-xray.yaml does not set. No sampling-rule reads: the app samples.
data "aws_iam_policy_document" "task_xray" {
  statement {
    sid       = "WriteTraceSegments"
    actions   = ["xray:PutTraceSegments"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "task_xray" {
  count = var.trace_collector_enabled ? 1 : 0

  name   = "xray-write"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task_xray.json
}
