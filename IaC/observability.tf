################################################################################
# Observability: one CloudWatch dashboard for both services and a saved Logs
# Insights query that follows one request across them. The alarms and their
# SNS topic are in observability_alarms.tf.
#
# Three sources of metrics, all without an agent:
# - the services' own EMF lines (namespace local.metrics_namespace; names,
#   units and dimensions in services/src/emf/catalog.rs, checked against this
#   file by IaC/checks/tests/observability.rs);
# - AWS/ECS: service CPU and memory, and Service Connect's proxy metrics;
# - AWS/ApplicationELB: the REST target groups.
################################################################################

locals {
  # The namespace the services write to (METRICS_NAMESPACE in ecs.tf) and the
  # dashboard and alarms read.
  metrics_namespace = var.metrics_namespace != "" ? var.metrics_namespace : local.name

  # EMF Route values shown per route. Latency of the client-facing unary
  # routes (alarmed, observability_alarms.tf) and of the health checks (shown
  # only: the ALB and container health checks already act on them). Streams
  # (WatchStatus, health Watch, reflection) are left out: their Latency is the
  # stream's whole life.
  emf_client_routes = {
    for k, s in local.services : k => {
      "rest-status"        = "/${k}/status"
      "rest-other-status"  = "/${k}/other-status"
      "grpc-GetStatus"     = "scdemo.status.v1.StatusService/GetStatus"
      "grpc-GetPeerStatus" = "scdemo.status.v1.StatusService/GetPeerStatus"
    }
  }
  emf_health_routes = {
    for k, s in local.services : k => {
      "rest-healthcheck"  = s.health_path
      "grpc-health-Check" = "grpc.health.v1.Health/Check"
    }
  }

  # Per service, twelve graphs in three rows of four: what the service
  # answers (EMF), its peer calls, CPU and memory, then the ALB's and Service
  # Connect's view of it.
  dashboard_graphs = {
    for k, s in local.services : k => [
      {
        title = "${k}: requests, 5xx, 5xx rate", stat = "Sum"
        metrics = [
          [local.metrics_namespace, "Requests", "Service", k, { id = "requests", label = "requests / min" }],
          [local.metrics_namespace, "Errors", "Service", k, { id = "errors", label = "5xx / min" }],
          [{ id = "rate", expression = "100 * errors / requests", label = "5xx rate (%)", yAxis = "right" }],
        ]
        annotations = { horizontal = [{ label = "5xx rate alarm", value = var.alarm_5xx_rate_percent, yAxis = "right" }] }
      },
      {
        title = "${k}: p99 latency (ms) of 2xx answers, unary routes", stat = "p99"
        metrics = [
          for label, route in merge(local.emf_client_routes[k], local.emf_health_routes[k]) :
          [local.metrics_namespace, "Latency", "Service", k, "Route", route, "CodeClass", "2xx", { label = label }]
        ]
        annotations = { horizontal = [{ label = "latency alarm", value = var.alarm_p99_latency_ms }] }
      },
      {
        title = "${k}: requests by route and code class", stat = "Sum"
        metrics = [
          [{ id = "byroute", label = "", expression = "SEARCH('{\"${local.metrics_namespace}\",Service,Route,CodeClass} Service=\"${k}\" MetricName=\"Requests\"', 'Sum', ${local.dashboard_period})" }],
        ]
      },
      {
        title = "${k}: open WatchStatus streams", stat = "Maximum"
        metrics = [
          [local.metrics_namespace, "WatchStreams", "Service", k, { label = "streams (max of the tasks)" }],
        ]
      },
      {
        title = "${k}: idle connections reclaimed near MAX_CONNECTIONS", stat = "Sum"
        metrics = [
          [local.metrics_namespace, "ConnectionsReclaimed", "Service", k, { label = "reclaimed / min" }],
        ]
      },
      {
        title = "${k}: trace spans dropped (export on only)", stat = "Sum"
        metrics = [
          [local.metrics_namespace, "TraceSpansDropped", "Service", k, { label = "dropped / min" }],
        ]
      },
      {
        title = "${k}: calls to ${s.peer}", stat = "Sum"
        metrics = [
          [local.metrics_namespace, "PeerCalls", "Service", k, { label = "peer calls / min" }],
          [local.metrics_namespace, "PeerErrors", "Service", k, { label = "failed (UNAVAILABLE, DEADLINE_EXCEEDED) / min" }],
        ]
        annotations = { horizontal = [{ label = "peer errors alarm", value = var.alarm_peer_errors_per_minute }] }
      },
      {
        title = "${k}: peer call latency (ms)", stat = "p99"
        metrics = [
          [local.metrics_namespace, "PeerLatency", "Service", k, { stat = "p50", label = "p50" }],
          [local.metrics_namespace, "PeerLatency", "Service", k, { stat = "p99", label = "p99" }],
        ]
      },
      # CPU and memory twice: the task as ECS measures it (app + Service
      # Connect proxy, percent of the task size: what autoscaling tracks) and
      # the app process alone (EMF: ProcessCpu in percent of the CPU its
      # cgroup may use, so of the task's CPU when the task's quota is the
      # one it sees; else of the host's cores). Same scale: the difference
      # is the proxy's share.
      {
        title = "${k}: CPU", stat = "Average"
        metrics = [
          ["AWS/ECS", "CPUUtilization", "ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.this[k].name, { label = "task, % of task_cpu (ECS)" }],
          [local.metrics_namespace, "ProcessCpu", "Service", k, { label = "app process, % of its CPU quota (EMF)" }],
        ]
      },
      {
        title = "${k}: memory", stat = "Average"
        metrics = [
          ["AWS/ECS", "MemoryUtilization", "ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.this[k].name, { label = "task, % of task_memory (ECS)" }],
          [local.metrics_namespace, "ProcessMemory", "Service", k, { stat = "Maximum", label = "app process RSS, bytes (max of the tasks)", yAxis = "right" }],
        ]
      },
      {
        title = "${k}: ALB target group: requests, target 5xx, response time", stat = "Sum"
        metrics = [
          ["AWS/ApplicationELB", "RequestCount", "TargetGroup", aws_lb_target_group.rest[k].arn_suffix, "LoadBalancer", aws_lb.this.arn_suffix, { label = "requests / min" }],
          ["AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "TargetGroup", aws_lb_target_group.rest[k].arn_suffix, "LoadBalancer", aws_lb.this.arn_suffix, { label = "target 5xx / min" }],
          ["AWS/ApplicationELB", "TargetResponseTime", "TargetGroup", aws_lb_target_group.rest[k].arn_suffix, "LoadBalancer", aws_lb.this.arn_suffix, { stat = "p99", label = "response time p99 (s)", yAxis = "right" }],
        ]
      },
      {
        title = "${k}: ALB target health", stat = "Maximum"
        metrics = [
          ["AWS/ApplicationELB", "HealthyHostCount", "TargetGroup", aws_lb_target_group.rest[k].arn_suffix, "LoadBalancer", aws_lb.this.arn_suffix, { label = "healthy (max over the ALB's nodes)" }],
          ["AWS/ApplicationELB", "UnHealthyHostCount", "TargetGroup", aws_lb_target_group.rest[k].arn_suffix, "LoadBalancer", aws_lb.this.arn_suffix, { stat = "Minimum", label = "unhealthy (min over the ALB's nodes)" }],
        ]
        annotations = { horizontal = [{ label = "unhealthy hosts alarm", value = var.alarm_unhealthy_hosts }] }
      },
      # Service Connect's proxies, metrics and dimensions as documented in
      # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/available-metrics.html
      # DiscoveryName + ServiceName + ClusterName: traffic into this service's
      # tasks. TargetDiscoveryName: traffic from other Service Connect tasks to
      # this discovery name. GrpcRequestCount needs appProtocol grpc (the
      # default), HTTPCode_Target_*XX_Count needs http or http2.
      {
        title = "${k}: Service Connect, into its tasks", stat = "Sum"
        metrics = [
          for metric in ["RequestCount", "GrpcRequestCount", "NewConnectionCount", "ActiveConnectionCount", "ProcessedBytes"] :
          ["AWS/ECS", metric, "DiscoveryName", s.discovery_name, "ServiceName", aws_ecs_service.this[k].name, "ClusterName", aws_ecs_cluster.this.name, { label = metric, yAxis = metric == "ProcessedBytes" ? "right" : "left" }]
        ]
      },
      {
        title = "${k}: Service Connect, as the target of other tasks", stat = "Sum"
        metrics = [
          ["AWS/ECS", "TargetResponseTime", "TargetDiscoveryName", s.discovery_name, { stat = "p99", label = "target response time p99 (ms)", yAxis = "right" }],
          ["AWS/ECS", "RequestCountPerTarget", "TargetDiscoveryName", s.discovery_name, { stat = "Average", label = "requests per target" }],
          ["AWS/ECS", "HTTPCode_Target_5XX_Count", "TargetDiscoveryName", s.discovery_name, { label = "target 5xx (appProtocol http, http2)" }],
        ]
      },
    ]
  }

  # Layout (the grid is 24 wide): alarms on top, then per service a title
  # line and its graphs, four 6x6 graphs a row.
  dashboard_period     = 60
  dashboard_top        = 5
  dashboard_per_row    = 4
  dashboard_graph_size = 6
  dashboard_block_rows = 1 + ceil(length(local.dashboard_graphs[keys(local.services)[0]]) / local.dashboard_per_row) * local.dashboard_graph_size

  dashboard_service_widgets = flatten([
    for i, k in keys(local.services) : concat(
      [{
        type       = "text", width = 24, height = 1, x = 0, y = local.dashboard_top + i * local.dashboard_block_rows
        properties = { markdown = "## ${k}" }
      }],
      [for j, graph in local.dashboard_graphs[k] : {
        type   = "metric"
        width  = local.dashboard_graph_size
        height = local.dashboard_graph_size
        x      = (j % local.dashboard_per_row) * local.dashboard_graph_size
        y      = local.dashboard_top + i * local.dashboard_block_rows + 1 + floor(j / local.dashboard_per_row) * local.dashboard_graph_size
        properties = merge(
          { region = local.region, view = "timeSeries", period = local.dashboard_period },
          graph,
        )
      }],
    )
  ])

  # Every alarm of observability_alarms.tf, for the status widget.
  alarm_arns = concat(
    [for a in aws_cloudwatch_metric_alarm.error_rate : a.arn],
    [for a in aws_cloudwatch_metric_alarm.latency : a.arn],
    [for a in aws_cloudwatch_metric_alarm.peer_errors : a.arn],
    [for a in aws_cloudwatch_metric_alarm.unhealthy_hosts : a.arn],
    [for a in aws_cloudwatch_metric_alarm.no_healthy_host : a.arn],
  )
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = local.name

  dashboard_body = jsonencode({
    widgets = concat(
      [
        {
          type       = "alarm", x = 0, y = 0, width = 16, height = local.dashboard_top
          properties = { title = "Alarms", alarms = local.alarm_arns }
        },
        {
          type = "text", x = 16, y = 0, width = 8, height = local.dashboard_top
          properties = {
            markdown = join("\n", [
              "**One request across the ALB and both services:** Logs Insights, saved query `${aws_cloudwatch_query_definition.request_by_trace_id.name}`.",
              "",
              "Metrics: namespace `${local.metrics_namespace}` (EMF, every ${var.emf_interval}), `AWS/ECS`, `AWS/ApplicationELB`.",
            ])
          }
        },
      ],
      local.dashboard_service_widgets,
    )
  })
}

# One request in both services' lines: every access line carries the W3C
# trace id (from traceparent, else the ALB's X-Amzn-Trace-Id root without
# "1-" and the dash), so one filter finds the hop through A and the call to B.
resource "aws_cloudwatch_query_definition" "request_by_trace_id" {
  name            = "${local.name}/request-by-trace-id"
  log_group_names = [for k in keys(local.services) : aws_cloudwatch_log_group.this[k].name]

  query_string = <<-EOT
    fields @timestamp, service, message, method, path, rpc, status, grpc_code, latency_ms, span_id, parent_span_id, request_id, client
    | filter trace_id = "5759e988bd862e3fe1be46a994272793"
    | sort @timestamp asc
  EOT
}
