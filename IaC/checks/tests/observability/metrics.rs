//! What a metric the dashboard or an alarm reads must be: one of ours
//! (`status_services::emf::catalog`, in the namespace the task definitions
//! pass as METRICS_NAMESPACE, with one of its dimension sets and real
//! values) or an AWS metric as AWS documents it (name and dimension set).

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;
use status_services::{
    emf::{OTHER_ROUTE, catalog},
    topology::KNOWN_SERVICES,
};

use crate::{
    eval::Findings,
    terraform::{MathUse, MetricUse},
};

/// The answer classes the code writes as CodeClass (`catalog::CODE_CLASS`).
pub(crate) const CODE_CLASSES: &[&str] = &["2xx", "4xx", "5xx"];

/// Namespace, metric names, and the dimension sets of those metrics.
type AwsMetrics = (
    &'static str,
    &'static [&'static str],
    &'static [&'static [&'static str]],
);

/// AWS metrics the dashboard and alarms may read: namespace, names, and
/// the dimension sets AWS documents for them.
/// - AWS/ECS service utilization and Service Connect: Amazon ECS Developer
///   Guide, "Amazon ECS CloudWatch metrics",
///   https://docs.aws.amazon.com/AmazonECS/latest/developerguide/available-metrics.html
///   (read from AWS's published source of that page,
///   awsdocs/amazon-ecs-developer-guide doc_source/cloudwatch-metrics.md).
/// - AWS/ApplicationELB: "CloudWatch metrics for your Application Load
///   Balancer", https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-cloudwatch-metrics.html
///   (awsdocs/elb-application-load-balancers-user-guide).
const AWS_METRICS: &[AwsMetrics] = &[
    (
        "AWS/ECS",
        &["CPUUtilization", "MemoryUtilization"],
        &[&["ClusterName"], &["ClusterName", "ServiceName"]],
    ),
    (
        "AWS/ECS",
        &[
            "ActiveConnectionCount",
            "NewConnectionCount",
            "ProcessedBytes",
            "RequestCount",
            "GrpcRequestCount",
        ],
        &[
            &["DiscoveryName"],
            &["DiscoveryName", "ServiceName", "ClusterName"],
        ],
    ),
    (
        "AWS/ECS",
        &[
            "HTTPCode_Target_2XX_Count",
            "HTTPCode_Target_3XX_Count",
            "HTTPCode_Target_4XX_Count",
            "HTTPCode_Target_5XX_Count",
            "RequestCountPerTarget",
            "TargetProcessedBytes",
            "TargetResponseTime",
        ],
        &[
            &["TargetDiscoveryName"],
            &["TargetDiscoveryName", "ServiceName", "ClusterName"],
        ],
    ),
    (
        "AWS/ApplicationELB",
        &[
            "RequestCount",
            "HTTPCode_Target_2XX_Count",
            "HTTPCode_Target_3XX_Count",
            "HTTPCode_Target_4XX_Count",
            "HTTPCode_Target_5XX_Count",
            "TargetResponseTime",
            "HealthyHostCount",
            "UnHealthyHostCount",
            "RequestCountPerTarget",
            "TargetConnectionErrorCount",
            "TargetTLSNegotiationErrorCount",
        ],
        &[&["TargetGroup", "LoadBalancer"]],
    ),
];

/// What the code publishes and the deployment names, per service.
pub(crate) struct Expected {
    /// METRICS_NAMESPACE of the task definitions.
    pub(crate) namespace: String,
    /// The Route values each service writes (its known routes, and `other`).
    pub(crate) routes: BTreeMap<String, BTreeSet<String>>,
}

/// The routes a service names in its metrics: the gateway's REST paths and
/// every rpc of the services it serves (Status, health, reflection), read
/// from their descriptor sets, plus `other`.
pub(crate) fn routes(service: &str) -> BTreeSet<String> {
    let mut routes: BTreeSet<String> = [
        status_gateway::healthcheck_path(service),
        status_gateway::status_path(service),
        status_gateway::other_status_path(service),
        OTHER_ROUTE.to_owned(),
    ]
    .into();
    for descriptors in [
        status_api::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ] {
        let set = prost_types::FileDescriptorSet::decode(descriptors).expect("descriptor set");
        for file in set.file {
            for grpc_service in &file.service {
                for method in &grpc_service.method {
                    routes.insert(format!(
                        "{}.{}/{}",
                        file.package(),
                        grpc_service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    routes
}

pub(crate) fn check_use(metric: &MetricUse, expected: &Expected, findings: &mut Findings) {
    let place = &metric.place;
    let Some(name) = metric.name.as_deref() else {
        findings.0.push(format!(
            "{place}: names no metric (SEARCH without MetricName=\"...\")"
        ));
        return;
    };
    let names: BTreeSet<&str> = metric.dimensions.iter().map(|(n, _)| n.as_str()).collect();
    if names.len() != metric.dimensions.len() {
        findings
            .0
            .push(format!("{place}: {name} repeats a dimension"));
    }
    if metric.namespace.starts_with("AWS/") {
        check_aws(metric, name, &names, findings);
        return;
    }
    if metric.namespace != expected.namespace {
        findings.0.push(format!(
            "{place}: {name} read from namespace {:?}, but the task definitions pass METRICS_NAMESPACE={:?}",
            metric.namespace, expected.namespace
        ));
    }
    let Some(spec) = catalog::ALL.iter().find(|spec| spec.name == name) else {
        findings.0.push(format!(
            "{place}: {name} is not a metric the code emits (catalog::ALL: {:?})",
            catalog::ALL.iter().map(|s| s.name).collect::<Vec<_>>()
        ));
        return;
    };
    if !spec
        .dimension_sets
        .iter()
        .any(|set| set.iter().copied().collect::<BTreeSet<_>>() == names)
    {
        findings.0.push(format!(
            "{place}: {name} with dimensions {names:?}, but the code publishes it under {:?}",
            spec.dimension_sets
        ));
    }
    let service = metric.dimension(catalog::SERVICE);
    if let Some(service) = service
        && !KNOWN_SERVICES.iter().any(|s| s.name == service)
    {
        findings.0.push(format!(
            "{place}: {name}: Service {service:?} is not a service of the code"
        ));
    }
    if let Some(route) = metric.dimension(catalog::ROUTE) {
        let known = service.and_then(|s| expected.routes.get(s));
        if !known.is_some_and(|routes| routes.contains(route)) {
            findings.0.push(format!(
                "{place}: {name}: Route {route:?} is not a route {service:?} writes ({known:?})"
            ));
        }
    }
    if let Some(class) = metric.dimension(catalog::CODE_CLASS)
        && !CODE_CLASSES.contains(&class)
    {
        findings.0.push(format!(
            "{place}: {name}: CodeClass {class:?} is not one of {CODE_CLASSES:?}"
        ));
    }
}

fn check_aws(metric: &MetricUse, name: &str, names: &BTreeSet<&str>, findings: &mut Findings) {
    let place = &metric.place;
    let documented: Vec<_> = AWS_METRICS
        .iter()
        .filter(|(namespace, metrics, _)| *namespace == metric.namespace && metrics.contains(&name))
        .collect();
    if documented.is_empty() {
        findings.0.push(format!(
            "{place}: {} {name} is not a metric AWS documents (see AWS_METRICS)",
            metric.namespace
        ));
        return;
    }
    if !documented.iter().any(|(_, _, sets)| {
        sets.iter()
            .any(|set| set.iter().copied().collect::<BTreeSet<_>>() == *names)
    }) {
        findings.0.push(format!(
            "{place}: {} {name} with dimensions {names:?}, but AWS publishes it under {:?}",
            metric.namespace,
            documented
                .iter()
                .flat_map(|(_, _, sets)| sets.iter())
                .collect::<Vec<_>>()
        ));
    }
    // Values: the stand-ins of this stack's resources, and the services'
    // discovery names (the contract test checks they are the service names).
    let services = || KNOWN_SERVICES.iter().map(|s| s.name);
    for (dimension, value) in &metric.dimensions {
        let allowed: Vec<String> = match dimension.as_str() {
            "ClusterName" => vec!["aws_ecs_cluster.this.name".to_owned()],
            "ServiceName" => services()
                .map(|s| format!("aws_ecs_service.this[{s}].name"))
                .collect(),
            "DiscoveryName" | "TargetDiscoveryName" => services().map(str::to_owned).collect(),
            "TargetGroup" => services()
                .map(|s| format!("aws_lb_target_group.rest[{s}].arn_suffix"))
                .collect(),
            "LoadBalancer" => vec!["aws_lb.this.arn_suffix".to_owned()],
            _ => continue,
        };
        if !value.as_ref().is_some_and(|v| allowed.contains(v)) {
            findings.0.push(format!(
                "{place}: {name}: {dimension} is {value:?}, want one of {allowed:?}"
            ));
        }
    }
}

/// The service a metric is about, from whichever dimension names it.
fn service_of(metric: &MetricUse) -> BTreeSet<&'static str> {
    KNOWN_SERVICES
        .iter()
        .map(|s| s.name)
        .filter(|service| {
            metric.dimensions.iter().any(|(dimension, value)| {
                let Some(value) = value.as_deref() else {
                    return false;
                };
                match dimension.as_str() {
                    "Service" | "DiscoveryName" | "TargetDiscoveryName" => value == *service,
                    "ServiceName" | "TargetGroup" => value.contains(&format!("[{service}]")),
                    _ => false,
                }
            })
        })
        .collect()
}

/// One graph or alarm is about one service: a figure of another service in
/// it is a copy-and-paste slip.
pub(crate) fn check_one_service_each(uses: &[MetricUse], findings: &mut Findings) {
    let mut by_place: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for metric in uses {
        by_place
            .entry(&metric.place)
            .or_default()
            .extend(service_of(metric));
    }
    for (place, services) in by_place {
        if services.len() > 1 {
            findings
                .0
                .push(format!("{place}: mixes services {services:?}"));
        }
    }
}

/// A metric math expression may only name ids of its widget or alarm.
pub(crate) fn check_math(math: &MathUse, findings: &mut Findings) {
    let identifier = regex::Regex::new(r"\b[a-z][A-Za-z0-9_]*\b").expect("regex");
    for id in identifier.find_iter(&math.expression) {
        if !math.ids.iter().any(|known| known == id.as_str()) {
            findings.0.push(format!(
                "{}: expression {:?} names {:?}, which is no id there ({:?})",
                math.place,
                math.expression,
                id.as_str(),
                math.ids
            ));
        }
    }
}

/// Every metric the code emits is on the dashboard for every service, with
/// the AWS figures the issue asks for; every service has each alarm.
pub(crate) fn check_coverage(
    dashboard: &[MetricUse],
    alarms: &[MetricUse],
    namespace: &str,
    findings: &mut Findings,
) {
    let has = |uses: &[MetricUse], ns: &str, name: &str, dimension: &str, value: &str| {
        uses.iter().any(|u| {
            u.namespace == ns
                && u.name.as_deref() == Some(name)
                && u.dimension(dimension) == Some(value)
        })
    };
    for service in KNOWN_SERVICES.iter().map(|s| s.name) {
        let target_group = format!("aws_lb_target_group.rest[{service}].arn_suffix");
        let ecs_service = format!("aws_ecs_service.this[{service}].name");
        let mut wanted: Vec<(&str, &str, &str, String)> = catalog::ALL
            .iter()
            .map(|spec| (namespace, spec.name, catalog::SERVICE, service.to_owned()))
            .collect();
        wanted.extend([
            (
                "AWS/ECS",
                "CPUUtilization",
                "ServiceName",
                ecs_service.clone(),
            ),
            ("AWS/ECS", "MemoryUtilization", "ServiceName", ecs_service),
            (
                "AWS/ApplicationELB",
                "HTTPCode_Target_5XX_Count",
                "TargetGroup",
                target_group.clone(),
            ),
            (
                "AWS/ApplicationELB",
                "TargetResponseTime",
                "TargetGroup",
                target_group.clone(),
            ),
            (
                "AWS/ECS",
                "RequestCount",
                "DiscoveryName",
                service.to_owned(),
            ),
            (
                "AWS/ECS",
                "TargetResponseTime",
                "TargetDiscoveryName",
                service.to_owned(),
            ),
        ]);
        for (ns, name, dimension, value) in &wanted {
            if !has(dashboard, ns, name, dimension, value) {
                findings.0.push(format!(
                    "the dashboard shows no {ns} {name} for {service} ({dimension}={value})"
                ));
            }
        }
        for (ns, name, dimension, value) in [
            (namespace, "Requests", catalog::SERVICE, service.to_owned()),
            (namespace, "Errors", catalog::SERVICE, service.to_owned()),
            (namespace, "Latency", catalog::SERVICE, service.to_owned()),
            (
                namespace,
                "PeerErrors",
                catalog::SERVICE,
                service.to_owned(),
            ),
            (
                "AWS/ApplicationELB",
                "UnHealthyHostCount",
                "TargetGroup",
                target_group.clone(),
            ),
            (
                "AWS/ApplicationELB",
                "HealthyHostCount",
                "TargetGroup",
                target_group.clone(),
            ),
        ] {
            if !has(alarms, ns, name, dimension, &value) {
                findings.0.push(format!(
                    "no alarm reads {ns} {name} for {service} ({dimension}={value})"
                ));
            }
        }
    }
}
