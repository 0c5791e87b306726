################################################################################
# Outputs (names used by scripts/deploy.sh and the docs)
################################################################################

output "aws_region" {
  description = "Region everything is deployed in."
  value       = local.region
}

output "alb_url" {
  description = "Base HTTPS URL of the public ALB."
  value       = local.alb_url
}

output "alb_dns_name" {
  description = "DNS name of the ALB (point your domain's CNAME/alias here)."
  value       = aws_lb.this.dns_name
}

output "ecr_repository_url" {
  description = "ECR repository URL to push the status-service image to."
  value       = aws_ecr_repository.app.repository_url
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "service_names" {
  description = "Map of service key to ECS service name."
  value       = { for k, s in aws_ecs_service.this : k => s.name }
}

output "toolbox_service_name" {
  description = "ECS service name of the grpcurl toolbox (empty when disabled)."
  value       = var.toolbox_enabled ? aws_ecs_service.toolbox[0].name : ""
}

output "curl_commands" {
  description = "Ready-to-paste smoke tests through the ALB (-k while the self-signed demo certificate is used)."
  value = flatten([
    for k in keys(local.services) : [
      for p in local.rest_paths : "curl -sS ${local.curl_insecure}${local.alb_url}/${k}/${p}"
    ]
  ])
}

output "grpcurl_exec_command" {
  description = "ECS Exec into the toolbox and list service-b's gRPC services through Service Connect (empty when the toolbox is off)."
  value = var.toolbox_enabled ? join(" ", [
    "aws ecs execute-command",
    "--region ${local.region}",
    "--cluster ${aws_ecs_cluster.this.name}",
    "--task \"$(aws ecs list-tasks --region ${local.region} --cluster ${aws_ecs_cluster.this.name} --service-name ${aws_ecs_service.toolbox[0].name} --desired-status RUNNING --query 'taskArns[0]' --output text)\"",
    "--container ${local.toolbox_container}",
    "--interactive",
    "--command \"grpcurl -plaintext ${local.services["service-b"].dns_name}:${local.services["service-b"].container_port} list\"",
  ]) : ""
}

output "grpc_ingress_hosts" {
  description = "Host names routed to the GRPC target groups (empty unless grpc_ingress_enabled)."
  value       = { for k in keys(local.services) : k => "${k}.grpc.${var.domain_name}" if var.grpc_ingress_enabled }
}

output "service_connect_namespace_arn" {
  description = "ARN of the Cloud Map HTTP namespace used by Service Connect."
  value       = aws_service_discovery_http_namespace.this.arn
}

output "service_connect_app_protocol" {
  description = "appProtocol of the services' port mapping (\"none\" = not set, TCP); the smoke test names it when ALB health checks fail."
  value       = var.service_connect_app_protocol
}

output "rest_target_group_arns" {
  description = "ALB REST target group ARN per service (the smoke test reads their target health)."
  value       = { for k, tg in aws_lb_target_group.rest : k => tg.arn }
}

output "service_connect_tls_enabled" {
  description = "Whether Service Connect TLS is on (and the ALB target groups use HTTPS)."
  value       = var.service_connect_tls_enabled
}

output "pca_arn" {
  description = "ARN of the Private CA issuing the Service Connect certificates (empty when TLS is off)."
  value       = local.pca_arn
}

output "service_connect_tls_role_arn" {
  description = "ARN of the ECS infrastructure role for Service Connect TLS (empty when TLS is off)."
  value       = var.service_connect_tls_enabled ? aws_iam_role.service_connect_tls[0].arn : ""
}

output "log_group_names" {
  description = "CloudWatch log groups by purpose."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "vpc_id" {
  description = "VPC ID."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets of the tasks."
  value       = aws_subnet.private[*].id
}

output "task_security_group_id" {
  description = "Security group of the service-a/service-b tasks."
  value       = aws_security_group.tasks.id
}

output "github_deploy_role_arn" {
  description = "Role for the deploy workflow: set it as the repository (or environment) variable AWS_DEPLOY_ROLE_ARN (empty unless github_oidc_enabled)."
  value       = var.github_oidc_enabled ? aws_iam_role.github_deploy[0].arn : ""
}

output "observability" {
  description = "Dashboard URL, metric namespace, alarm topic (empty when none) and the saved Logs Insights query that follows one request by trace id."
  value = {
    dashboard_url     = "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards/dashboard/${aws_cloudwatch_dashboard.this.dashboard_name}"
    metrics_namespace = local.metrics_namespace
    alarm_topic_arn   = join("", local.alarm_topic_arns)
    trace_query_name  = aws_cloudwatch_query_definition.request_by_trace_id.name
  }
}
