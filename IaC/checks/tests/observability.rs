//! The dashboard and alarms of `IaC/observability*.tf` against the metrics
//! the code emits (`status_services::emf::catalog`):
//!
//! - every metric they read in the services' namespace is a catalogue
//!   metric, with dimension names that form one of its dimension sets and
//!   real values (Service, Route: the gateway's paths and the rpcs of the
//!   served descriptor sets, CodeClass);
//! - that namespace is the METRICS_NAMESPACE the task definitions pass, also
//!   when `metrics_namespace` is set, and EMF_INTERVAL is one the code
//!   parses;
//! - AWS metrics (`AWS/ECS`, Service Connect, `AWS/ApplicationELB`) are
//!   documented ones, with a documented dimension set and this stack's
//!   resources as values;
//! - metric math names only ids that exist; every service has each graph
//!   and each alarm; every alarm says what missing data means and notifies
//!   the topic;
//! - the variables accept what the code accepts, and the README's metric
//!   and cost figures are the ones the catalogue and the dashboard give.
//!
//! Values come from evaluating the HCL (`contract/eval.rs`,
//! `observability/context.rs`, `observability/terraform.rs`). Each check is shown to fail on a broken
//! copy of `IaC/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

// Shared with the contract test, which uses all of them.
#[path = "observability/context.rs"]
mod context;
#[allow(dead_code)]
#[path = "contract/eval.rs"]
mod eval;
#[allow(dead_code)]
#[path = "contract/functions.rs"]
mod functions;
#[path = "observability/metrics.rs"]
mod metrics;
#[path = "observability/terraform.rs"]
mod terraform;
#[path = "observability/variables.rs"]
mod variables;

use std::{collections::BTreeSet, fs};

use clap::Parser as _;
use hcl::{Map, Value};
use status_services::{
    config::{Cli, Command, ENV_EMF_INTERVAL, ENV_METRICS_NAMESPACE, RuntimeArgs},
    emf::catalog,
    topology::KNOWN_SERVICES,
};

use eval::{Findings, Iac, container, context_value, environment, iac_dir, real_files, with_each};
use metrics::Expected;

/// The second configuration every check runs on: a namespace of its own
/// (a literal namespace in the dashboard shows up here) and a created alarm
/// topic (alarms that do not notify it show up here).
fn configured() -> Vec<(&'static str, Value)> {
    let mut notifications = Map::new();
    notifications.insert("topic_arn".to_owned(), Value::from(""));
    notifications.insert("create_topic".to_owned(), Value::Bool(true));
    notifications.insert("email".to_owned(), Value::from("ops@example.com"));
    vec![
        ("metrics_namespace", Value::from("team/status")),
        ("alarm_notifications", Value::Object(notifications)),
    ]
}

/// Every finding, for the defaults and for [`configured`].
fn check(iac: &Iac) -> Vec<String> {
    let mut findings = check_with(iac, &[]);
    findings.extend(
        check_with(iac, &configured())
            .into_iter()
            .map(|f| format!("(configured) {f}")),
    );
    findings
}

fn check_with(iac: &Iac, overrides: &[(&str, Value)]) -> Vec<String> {
    let mut findings = Findings::default();
    let context = context::context(iac, overrides);

    // What the task definitions pass.
    let mut namespaces = BTreeSet::new();
    for service in KNOWN_SERVICES {
        let place = format!("aws_ecs_task_definition.this[\"{}\"]", service.name);
        let env = environment(container(iac, "this"), &with_each(&context, service.name));
        let var = |name: &str| env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        match var(ENV_METRICS_NAMESPACE) {
            Some(Value::String(namespace)) => {
                namespaces.insert(namespace);
            }
            other => findings
                .0
                .push(format!("{place}: {ENV_METRICS_NAMESPACE} is {other:?}")),
        }
        match var(ENV_EMF_INTERVAL) {
            Some(Value::String(interval)) if serve(&["--emf-interval", &interval]).is_ok() => {}
            other => findings.0.push(format!(
                "{place}: {ENV_EMF_INTERVAL} is {other:?}, not an interval the code parses"
            )),
        }
    }
    if namespaces.len() != 1 {
        findings.0.push(format!(
            "the task definitions pass METRICS_NAMESPACE {namespaces:?}, want one"
        ));
    }
    let expected = Expected {
        namespace: namespaces.into_iter().next().unwrap_or_default(),
        routes: KNOWN_SERVICES
            .iter()
            .map(|s| (s.name.to_owned(), metrics::routes(s.name)))
            .collect(),
    };

    // What the dashboard and the alarms read.
    let reads = terraform::reads(iac, &context);
    findings.0.extend(reads.problems.iter().cloned());
    for metric in reads.dashboard.iter().chain(&reads.alarms) {
        metrics::check_use(metric, &expected, &mut findings);
    }
    metrics::check_one_service_each(&reads.dashboard, &mut findings);
    metrics::check_one_service_each(&reads.alarms, &mut findings);
    for math in &reads.math {
        metrics::check_math(math, &mut findings);
    }
    metrics::check_coverage(
        &reads.dashboard,
        &reads.alarms,
        &expected.namespace,
        &mut findings,
    );

    // Every alarm decides what missing data means and notifies the topic.
    let topics = context_value(&context, "alarm_topic_arns");
    let creates_topic = overrides
        .iter()
        .any(|(name, _)| *name == "alarm_notifications");
    findings.require(
        !creates_topic || matches!(&topics, Value::Array(arns) if arns.len() == 1),
        format!("local.alarm_topic_arns is {topics:?} with a created topic, want its ARN"),
    );
    for alarm in &reads.alarm_settings {
        let place = &alarm.place;
        let treat = alarm.treat_missing_data.as_ref().and_then(Value::as_str);
        findings.require(
            treat.is_some_and(|t| ["breaching", "notBreaching", "ignore", "missing"].contains(&t)),
            format!("{place}: treat_missing_data is {treat:?}; choose it (and say why)"),
        );
        for (what, actions) in [
            ("alarm_actions", &alarm.alarm_actions),
            ("ok_actions", &alarm.ok_actions),
        ] {
            findings.require(
                actions.as_ref() == Some(&topics),
                format!("{place}: {what} is {actions:?}, want local.alarm_topic_arns ({topics:?})"),
            );
        }
    }
    findings.require(
        reads.alarm_settings.len() >= 5 * KNOWN_SERVICES.len(),
        format!(
            "{} alarms, want at least five per service",
            reads.alarm_settings.len()
        ),
    );
    findings.0
}

/// The code's own parsing of `serve` with `flags`.
fn serve(flags: &[&str]) -> Result<RuntimeArgs, String> {
    let args = ["status-service", "serve"].iter().chain(flags);
    match Cli::try_parse_from(args) {
        Ok(Cli {
            command: Some(Command::Serve(serve)),
            ..
        }) => Ok(serve.runtime),
        Ok(other) => Err(format!("not serve: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn dashboard_and_alarms_read_what_the_code_emits() {
    let findings = check(&Iac::parse(&real_files()));
    assert!(
        findings.is_empty(),
        "observability*.tf disagrees with the code:\n{}",
        findings.join("\n")
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
        // A renamed metric, in the dashboard and in an alarm.
        (
            "\"Requests\", \"Service\", k,",
            "\"Request\", \"Service\", k,",
            "Request is not a metric the code emits",
        ),
        (
            "metric_name         = \"PeerErrors\"",
            "metric_name         = \"PeerError\"",
            "PeerError is not a metric",
        ),
        // A wrong dimension: a name, a missing one, in a SEARCH schema.
        (
            "dimensions  = { Service = each.key }",
            "dimensions  = { ServiceName = each.key }",
            "with dimensions {\"ServiceName\"}",
        ),
        (
            "Route = each.value.route, CodeClass = \"2xx\" }",
            "Route = each.value.route }",
            "with dimensions {\"Route\", \"Service\"}",
        ),
        (
            "Service,Route,CodeClass}",
            "Service,Route}",
            "with dimensions {\"Route\", \"Service\"}",
        ),
        // A namespace mismatch: the task definition, a literal in the dashboard.
        (
            "value = local.metrics_namespace }",
            "value = \"scdemo-metrics\" }",
            "METRICS_NAMESPACE=\"scdemo-metrics\"",
        ),
        (
            "[local.metrics_namespace, \"WatchStreams\"",
            "[\"scdemo\", \"WatchStreams\"",
            "(configured) aws_cloudwatch_dashboard.this: widget \"service-a: open WatchStatus streams\": WatchStreams read from namespace \"scdemo\"",
        ),
        (
            "{ name = \"EMF_INTERVAL\", value = var.emf_interval },",
            "",
            "EMF_INTERVAL is None",
        ),
        // Dimension values: a route the code does not write, a code class.
        (
            "\"rest-other-status\"  = \"/${k}/other-status\"",
            "\"rest-other-status\"  = \"/${k}/other_status\"",
            "Route \"/service-a/other_status\" is not a route",
        ),
        (
            "\"CodeClass\", \"2xx\", { label = label }",
            "\"CodeClass\", \"200\", { label = label }",
            "CodeClass \"200\"",
        ),
        // AWS metrics: a name AWS does not publish, a dimension set it does not use, a swapped value.
        (
            "metric_name         = \"UnHealthyHostCount\"",
            "metric_name         = \"UnhealthyHostCount\"",
            "UnhealthyHostCount is not a metric AWS documents",
        ),
        (
            "\"TargetResponseTime\", \"TargetDiscoveryName\"",
            "\"TargetResponseTime\", \"DiscoveryName\"",
            "TargetResponseTime with dimensions {\"DiscoveryName\"}",
        ),
        (
            "\"TargetGroup\", aws_lb_target_group.rest[k].arn_suffix, \"LoadBalancer\", aws_lb.this.arn_suffix, { label = \"requests / min\" }",
            "\"TargetGroup\", aws_lb_target_group.rest[\"service-b\"].arn_suffix, \"LoadBalancer\", aws_lb.this.arn_suffix, { label = \"requests / min\" }",
            "mixes services",
        ),
        // Metric math naming an id that is not there.
        (
            "expression  = \"100 * errors / requests\"",
            "expression  = \"100 * errors / request\"",
            "names \"request\", which is no id",
        ),
        (
            "expression = \"100 * errors / requests\", label",
            "expression = \"100 * error / requests\", label",
            "names \"error\", which is no id",
        ),
        // A graph or an alarm gone.
        (
            "[local.metrics_namespace, \"ProcessMemory\"",
            "[local.metrics_namespace, \"ProcessCpu\"",
            "the dashboard shows no team/status ProcessMemory for service-a",
        ),
        (
            "metric_name         = \"HealthyHostCount\"",
            "metric_name         = \"UnHealthyHostCount\"",
            "no alarm reads AWS/ApplicationELB HealthyHostCount",
        ),
        // Alarm settings.
        (
            "  treat_missing_data = \"breaching\"\n  alarm_actions",
            "  alarm_actions",
            "treat_missing_data is None",
        ),
        (
            "  ok_actions         = local.alarm_topic_arns\n}\n\nresource \"aws_cloudwatch_metric_alarm\" \"unhealthy_hosts\"",
            "  ok_actions         = []\n}\n\nresource \"aws_cloudwatch_metric_alarm\" \"unhealthy_hosts\"",
            "ok_actions is Some(Array([]))",
        ),
    ] {
        let findings = broken(from, to);
        assert!(
            findings.iter().any(|f| f.contains(expected)),
            "replacing {from:?} with {to:?} should be caught ({expected}); findings: {findings:#?}"
        );
    }
}

/// CloudWatch's price of a custom metric per month (first 10,000 metrics)
/// and of a standard-resolution alarm metric, in USD, as IaC/README.md
/// quotes them.
const PRICE_PER_METRIC: f64 = 0.30;
const PRICE_PER_ALARM_METRIC: f64 = 0.10;

#[test]
fn readme_figures_are_the_catalogue_and_the_dashboard() {
    // Series: one per metric, dimension set and value combination written.
    // `routes_answered`: how many (Route, CodeClass) pairs had requests;
    // None: every pair the code can write.
    let series = |service: &str, routes_answered: Option<usize>| -> usize {
        let every_pair = metrics::routes(service).len() * metrics::CODE_CLASSES.len();
        catalog::ALL
            .iter()
            .flat_map(|spec| spec.dimension_sets.iter())
            .map(|set| {
                if set.contains(&catalog::ROUTE) {
                    routes_answered.unwrap_or(every_pair)
                } else {
                    1
                }
            })
            .sum()
    };
    let service = KNOWN_SERVICES[0].name;
    let per_service = series(service, None);
    let total: usize = KNOWN_SERVICES.iter().map(|s| series(s.name, None)).sum();
    // Only the ALB's and the container's health checks (REST healthcheck and
    // grpc.health.v1.Health/Check, 2xx); and with the four client routes.
    let idle = series(service, Some(2));
    let busy = series(service, Some(6));
    let iac = Iac::parse(&real_files());
    let reads = terraform::reads(&iac, &context::context(&iac, &[]));
    // Words as one line: a figure may wrap in the Markdown source.
    let readme = fs::read_to_string(iac_dir().join("README.md"))
        .expect("IaC/README.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for figure in [
        format!("at most {total} metric series"),
        format!("{per_service} per service"),
        format!("{idle} per service when only the health checks call"),
        format!("{busy} per service when the four client routes answer too"),
        format!(
            "${:.2} a month at idle",
            (idle * KNOWN_SERVICES.len()) as f64 * PRICE_PER_METRIC
        ),
        format!("${:.2} a month", total as f64 * PRICE_PER_METRIC),
        format!("{} metrics on the dashboard", reads.dashboard.len()),
        format!("{} alarm metrics", reads.alarms.len()),
        format!(
            "${:.2} a month for the alarms",
            reads.alarms.len() as f64 * PRICE_PER_ALARM_METRIC
        ),
        format!("{} alarms", reads.alarm_settings.len()),
    ] {
        assert!(
            readme.contains(&figure),
            "IaC/README.md should say {figure:?}"
        );
    }
}
