//! The contract between `IaC/` and the code: what the Terraform deploys must
//! be what the binary expects, and the deployment rules of the review.
//!
//! - `contract/services.rs`: ports, port names, Service Connect discovery and
//!   DNS names, `PEER_URL`s, health-check paths and `appProtocol` equal the
//!   code's defaults (`status_services::topology`) and the gateway's routes.
//! - `contract/tls.rs`: every service serving through Service Connect has the
//!   `tls` block (Private CA, infrastructure role); the CA is short-lived and
//!   tagged for ECS; the HTTPS listener uses a TLS 1.3 policy.
//! - `contract/ecs_tasks.rs`: ECS Exec only on the toolbox, task sizes that
//!   hold the app plus the Service Connect proxy, the nofile limit, the idle
//!   timeout's values, the `appProtocol` variable.
//! - `contract/github_oidc.rs`: the GitHub deploy role: off by default, the
//!   trust policy pinned to the repository variable and the deploy
//!   environments/branches, `iam:PassRole` only for the named roles, no
//!   unscoped writes, policies within IAM's size limit; both forms of the
//!   OIDC `sub` claim (issue 21).
//! - `contract/provider_apis.rs` (+ `provider_apis.txt`): every AWS call
//!   the provider makes for the stack's types against the deploy role's
//!   policies, reads also with `github_deploy_manage_infrastructure =
//!   false`; the bootstrap's types not writable by the role (issue 21).
//! - `contract/deploy_role_rules.rs`: the permissions boundary on every
//!   role the deploy role writes, no tagging outside the stack, no KMS
//!   write by tag (issue 21).
//! - `contract/traces.rs`: the optional trace collector sidecar and the
//!   app's OpenTelemetry variables pointing at it (issue 19).
//!
//! Values are read by evaluating the HCL (locals, variable defaults and
//! validations, preconditions, `each` bound to one service) with hcl-rs
//! (`contract/eval.rs`, `contract/functions.rs`), not by matching text. Each check is shown to fail on
//! a deliberately broken copy of `IaC/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

#[path = "observability/context.rs"]
mod context;
#[path = "contract/deploy_role_rules.rs"]
mod deploy_role_rules;
#[path = "contract/ecs_tasks.rs"]
mod ecs_tasks;
#[path = "contract/eval.rs"]
mod eval;
#[path = "contract/functions.rs"]
mod functions;
#[path = "contract/github_oidc.rs"]
mod github_oidc;
#[path = "contract/iam_policy.rs"]
mod iam_policy;
#[path = "contract/provider_apis.rs"]
mod provider_apis;
#[path = "contract/services.rs"]
mod services;
#[path = "contract/tls.rs"]
mod tls;
#[path = "contract/traces.rs"]
mod traces;

use std::fs;

use clap::CommandFactory;
use status_services::topology::KNOWN_SERVICES;

use eval::{Findings, Iac, iac_dir, real_files};
use services::BINARY_PATH;

/// Every check of the contract; an empty list means IaC/ matches the code.
fn check(iac: &Iac) -> Vec<String> {
    let mut findings = Findings::default();
    let context = iac.context(&[]);
    let trace_contexts = traces::trace_contexts(iac);
    for service in KNOWN_SERVICES {
        services::check_service(iac, &context, service, &mut findings);
        traces::check_traces(iac, &trace_contexts, service.name, &mut findings);
    }
    tls::check_tls(iac, &context, &mut findings);
    ecs_tasks::check_ecs_tasks(iac, &context, &mut findings);
    github_oidc::check_github_oidc(iac, &mut findings);
    findings.0
}

#[test]
fn iac_matches_the_code() {
    let findings = check(&Iac::parse(&real_files()));
    assert!(
        findings.is_empty(),
        "IaC/ disagrees with the code:\n{}",
        findings.join("\n")
    );
}

#[test]
fn the_code_side_of_the_contract_exists() {
    // The binary has the subcommand the container health check runs, and
    // the path the task definition uses is the binary's name.
    let cli = status_services::config::Cli::command();
    assert!(cli.find_subcommand("healthcheck").is_some());
    assert_eq!(BINARY_PATH.rsplit('/').next(), Some(cli.get_name()));
    let dockerfile = fs::read_to_string(iac_dir().join("../Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains(BINARY_PATH),
        "the Dockerfile installs the binary elsewhere"
    );
}

/// `IaC/` with one text replacement made in the file that contains `from`.
fn broken(from: &str, to: &str) -> Vec<String> {
    let mut files = real_files();
    let file = files
        .iter_mut()
        .find(|(_, text)| text.contains(from))
        .unwrap_or_else(|| panic!("no file contains {from:?}"));
    file.1 = file.1.replacen(from, to, 1);
    check(&Iac::parse(&files))
}

#[test]
fn each_check_fails_on_a_broken_copy() {
    for (from, to, expected) in [
        (
            "container_port = 8202",
            "container_port = 8203",
            "container_port",
        ),
        (
            "dns_name       = \"service-a-sc\"",
            "dns_name       = \"service-a\"",
            "dns_name",
        ),
        (
            "discovery_name = \"service-b\"",
            "discovery_name = \"b\"",
            "discovery_name",
        ),
        (
            "health_path    = \"/service-a/healthcheck\"",
            "health_path    = \"/service-a/status\"",
            "health_check.path",
        ),
        (
            "  default     = \"grpc\"",
            "  default     = \"http\"",
            "appProtocol",
        ),
        (
            "{ name = \"PEER_URL\", value = local.peer_urls[each.key] }",
            "{ name = \"PEER_URL\", value = \"http://service-b:8202\" }",
            "PEER_URL",
        ),
        (
            "{ name = \"SERVER_PORT\", value = tostring(each.value.container_port) }",
            "{ name = \"SERVER_PORT\", value = \"80\" }",
            "SERVER_PORT",
        ),
        (
            "name          = each.value.port_name",
            "name          = \"grpc\"",
            "port_name",
        ),
        (
            "command     = [\"CMD\", local.binary, \"healthcheck\"]",
            "command     = [\"CMD-SHELL\", \"curl localhost\"]",
            "healthCheck.command",
        ),
        (
            "== \"none\" ? null : 0",
            "== \"none\" ? null : 15",
            "per_request_timeout_seconds",
        ),
        // Issue 21 point 4: no per-request timeout with appProtocol none (TCP).
        (
            "per_request_timeout_seconds = var.service_connect_app_protocol == \"none\" ? null : 0",
            "per_request_timeout_seconds = 0",
            "with appProtocol none",
        ),
        (
            "dynamic \"tls\" {",
            "dynamic \"tls_off\" {",
            "without a tls block",
        ),
        (
            "aws_pca_authority_arn = local.pca_arn",
            "aws_pca_authority_arn = var.existing_pca_arn",
            "tls issuer",
        ),
        (
            "usage_mode                      = \"SHORT_LIVED_CERTIFICATE\"",
            "usage_mode                      = \"GENERAL_PURPOSE\"",
            "usage_mode",
        ),
        (
            "    AmazonECSManaged = \"true\"",
            "    Managed = \"true\"",
            "AmazonECSManaged",
        ),
        (
            "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
            "ELBSecurityPolicy-2016-08",
            "ssl_policy",
        ),
        (
            "protocol_version     = \"HTTP1\"",
            "protocol_version     = \"HTTP2\"",
            "protocol_version",
        ),
        (
            "aws_acmpca_certificate_authority_certificate.root,\n",
            "",
            "depends_on lacks",
        ),
        (
            "AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity",
            "AdministratorAccess",
            "policy_arn",
        ),
        // ECS Exec only on the toolbox.
        (
            "enable_execute_command            = false",
            "enable_execute_command            = true",
            "enable_execute_command",
        ),
        (
            "      ulimits = [",
            "      mountPoints = [{ sourceVolume = \"x\", containerPath = \"/var/lib/amazon\" }]\n      ulimits = [",
            "mountPoints",
        ),
        (
            "role       = aws_iam_role.toolbox_task[0].name",
            "role       = aws_iam_role.task.name",
            "app's task role",
        ),
        // Task sizes.
        (
            "  default     = 512\n",
            "  default     = 256\n",
            "does not hold the app",
        ),
        (
            "  default     = 1024\n",
            "  default     = 1536\n",
            "not a valid Fargate size",
        ),
        (
            "var.task_cpu >= local.app_min_size.cpu + local.service_connect_proxy_size.cpu + local.trace_collector_reserved.cpu &&",
            "true &&",
            "the preconditions give Some(true) for task_cpu 256",
        ),
        (
            "\"512\"   = range(1024, 4097, 1024)",
            "\"512\"   = range(512, 4097, 512)",
            "task_memory 1536",
        ),
        (
            "toolbox_container_size     = { cpu = 0, memory = 256 }",
            "toolbox_container_size     = { cpu = 0, memory = 480 }",
            "toolbox container",
        ),
        (
            "softLimit = local.nofile_limit",
            "softLimit = 1024",
            "nofile",
        ),
        // Idle timeout: 0 allowed.
        (
            "var.service_connect_idle_timeout_seconds == 0 ||",
            "false ||",
            "for Number(Number(0))",
        ),
        (
            "idle_timeout_seconds        = var.service_connect_idle_timeout_seconds",
            "idle_timeout_seconds        = 3600",
            "timeout.idle_timeout_seconds",
        ),
        // appProtocol variable.
        (
            "contains([\"grpc\", \"http2\", \"http\", \"none\"], var.service_connect_app_protocol)",
            "contains([\"grpc\", \"http2\", \"http\"], var.service_connect_app_protocol)",
            "for \"none\"",
        ),
        (
            "var.service_connect_app_protocol == \"none\"\n    ? {}",
            "var.service_connect_app_protocol == \"tcp\"\n    ? {}",
            "appProtocol is Some(String(\"none\"))",
        ),
        (
            "    replace_triggered_by = [terraform_data.service_connect_app_protocol]\n  }\n\n  # A Service",
            "  }\n\n  # A Service",
            "aws_ecs_service.toolbox: lifecycle.replace_triggered_by",
        ),
        (
            "    replace_triggered_by = [terraform_data.service_connect_app_protocol]\n  }\n\n  # Create after",
            "  }\n\n  # Create after",
            "aws_ecs_service.this: lifecycle.replace_triggered_by",
        ),
        // Issue 19: the trace collector sidecar.
        (
            "{ name = \"OTEL_EXPORTER_OTLP_ENDPOINT\", value = local.otlp_endpoint },",
            "{ name = \"OTEL_EXPORTER_OTLP_ENDPOINT\", value = \"http://collector:4317\" },",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            "trace_collector_otlp_grpc_port = 4317",
            "trace_collector_otlp_grpc_port = 4318",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            "{ name = \"OTEL_EXPORTER_OTLP_PROTOCOL\", value = \"grpc\" },",
            "{ name = \"OTEL_EXPORTER_OTLP_PROTOCOL\", value = \"http/protobuf\" },",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
        (
            "value = tostring(var.traces_sample_ratio)",
            "value = \"0.05\"",
            "traces_sample_ratio 0.25",
        ),
        (
            "    ] : []\n  }",
            "    ] : [{ name = \"OTEL_SDK_DISABLED\", value = \"true\" }]\n  }",
            "with trace_collector_enabled = false",
        ),
        (
            "condition = \"HEALTHY\" }",
            "condition = \"START\" }",
            "app dependsOn",
        ),
        (
            "essential              = false",
            "essential              = true",
            "collector essential",
        ),
        (
            "command     = [\"CMD\", \"/healthcheck\"]",
            "command     = [\"CMD-SHELL\", \"wget -q localhost:13133\"]",
            "collector healthCheck.command",
        ),
        (
            "actions   = [\"xray:PutTraceSegments\"]",
            "actions   = [\"xray:*\"]",
            "task_xray",
        ),
        (
            "trace_collector_size = { cpu = 256, memory = 256 }",
            "trace_collector_size = { cpu = 0, memory = 256 }",
            "with a collector of",
        ),
        (
            "|@sha256:[0-9a-f]{64})$",
            "|@sha256:[0-9a-f]{64}|:latest)$",
            "aws-otel-collector:latest",
        ),
        (
            "count = var.trace_collector_enabled ? 1 : 0\n\n  name   = \"xray-write\"",
            "count = 1\n\n  name   = \"xray-write\"",
            "count with the collector off",
        ),
        // GitHub deploy role.
        (
            "[for e in var.github_deploy_environments : \"${repo}:environment:${e}\"]",
            "[\"repo:${var.github_repository}:*\"]",
            "sub condition",
        ),
        (
            "\"${repo}:environment:${e}\"",
            "\"repo:octo-org/other:environment:${e}\"",
            "sub condition",
        ),
        // Issue 21 point 1: both forms of the sub claim, and the variable
        // accepts both forms of the repository.
        (
            "local.github_owner_id != \"\" && local.github_repo_id != \"\"",
            "false",
            "sub condition",
        ),
        (
            "[A-Za-z0-9-]+/[A-Za-z0-9._-]+|[A-Za-z0-9-]+@[0-9]+/[A-Za-z0-9._-]+@[0-9]+",
            "[A-Za-z0-9-]+/[A-Za-z0-9._-]+",
            "validation gives Some(false) for \"octo-org@111/status-app@222\"",
        ),
        // Issue 21 points 2 and 6: the provider's calls against the
        // policies, reads with github_deploy_manage_infrastructure = false.
        (
            "\"application-autoscaling:ListTagsForResource\", ",
            "",
            "aws_appautoscaling_target tags application-autoscaling:ListTagsForResource",
        ),
        (
            "\"cloudwatch:GetDashboard\", ",
            "",
            "manage_infrastructure = false): aws_cloudwatch_dashboard read cloudwatch:GetDashboard",
        ),
        (
            "\"ec2:ReplaceRouteTableAssociation\",",
            "",
            "ec2:ReplaceRouteTableAssociation on",
        ),
        // Issue 21 points 5 and 8: the bootstrap's resources.
        (
            "actions   = [\"logs:DeleteQueryDefinition\", \"logs:PutQueryDefinition\"]",
            "actions   = [\"kms:CreateKey\", \"logs:DeleteQueryDefinition\", \"logs:PutQueryDefinition\"]",
            "the bootstrap owns aws_kms_key",
        ),
        (
            "    \"aws_service_discovery_http_namespace.this\",\n",
            "",
            "does not reach aws_service_discovery_http_namespace.this",
        ),
        (
            "variable = \"ec2:CreateAction\"",
            "variable = \"aws:RequestTag/Project\"",
            "outside the stack's names",
        ),
        (
            "    resources = [aws_kms_key.platform.arn]\n\n    condition {\n      test     = \"Bool\"",
            "    resources = [\"arn:${local.partition}:kms:${local.arn_suffix}:key/*\"]\n\n    condition {\n      test     = \"Bool\"",
            "KMS writes must name exact keys",
        ),
        // Issue 21 point 7: the permissions boundary.
        (
            "\"iam:DeleteRole\", \"iam:TagRole\",",
            "\"iam:DeleteRole\", \"iam:PutRolePolicy\", \"iam:TagRole\",",
            "without the condition iam:PermissionsBoundary",
        ),
        (
            "actions   = [\"iam:DeleteRolePermissionsBoundary\"]",
            "actions   = [\"iam:DeleteRolePolicy\"]",
            "removing a role's permissions boundary is not denied",
        ),
        (
            "  permissions_boundary = aws_iam_policy.role_boundary.arn\n",
            "",
            "permissions_boundary is None",
        ),
        (
            "      values   = [\"sts.amazonaws.com\"]",
            "      values   = [\"sigstore\"]",
            "aud condition",
        ),
        (
            "\"${local.iam_arn_prefix}:role/${local.role_names.toolbox_task}\",",
            "\"${local.iam_arn_prefix}:role/${local.name}-*\",",
            "iam:PassRole on",
        ),
        (
            "values   = [\"ecs-tasks.amazonaws.com\"]",
            "values   = [\"ecs.amazonaws.com\"]",
            "iam:PassRole on",
        ),
        (
            "sid    = \"DenyChangingTheDeployRole\"\n    effect = \"Deny\"",
            "sid    = \"DenyChangingTheDeployRole\"\n    effect = \"Allow\"",
            "no Deny of IAM writes",
        ),
        (
            "resources = [\"arn:${local.partition}:application-autoscaling:${local.arn_suffix}:scalable-target/*\"]",
            "resources = [\"*\"]",
            "without a condition",
        ),
        (
            "    sid = \"DescribeWithoutResourceLevelPermissions\"\n    actions = [",
            "    sid = \"DescribeWithoutResourceLevelPermissions\"\n    actions = [for i in range(0, 300, 1) : \"ec2:DescribeSomethingLonger${i}\"]\n    unused = [",
            "characters, over IAM's",
        ),
        (
            "  description = \"Create an IAM role that GitHub Actions assumes through OIDC to deploy this stack (.github/workflows/deploy.yml), and, unless github_oidc_provider_arn is set, the account's OIDC provider for token.actions.githubusercontent.com.\"\n  type        = bool\n  default     = false",
            "  description = \"\"\n  type        = bool\n  default     = true",
            "count by default",
        ),
    ] {
        let findings = broken(from, to);
        assert!(
            findings.iter().any(|f| f.contains(expected)),
            "replacing {from:?} with {to:?} should be caught ({expected}); findings: {findings:#?}"
        );
    }
}
