//! The trace collector sidecar (issue 19, `traces.tf`): off, the app gets no
//! `OTEL_` variable (export stays off) and the task has one container and no
//! X-Ray permission; on, the app's standard OpenTelemetry variables point at
//! the sidecar's OTLP gRPC receiver over the task's loopback, the app starts
//! after the collector is healthy (and stops before it), the collector is
//! pinned, not essential, health-checked with its own binary, and the task
//! role may write trace segments and nothing else.

use hcl::{Expression, Value, eval::Context};

use crate::eval::{Findings, Iac, attribute, environment, eval, get, with_each};

/// The OTLP gRPC port of the ADOT collector's built-in ECS configuration
/// `/etc/ecs/ecs-xray.yaml` (its `otlp` receiver listens on 4317 for gRPC
/// and 4318 for HTTP: aws-observability/aws-otel-collector,
/// config/ecs/ecs-xray.yaml).
const ECS_XRAY_CONFIG: &str = "/etc/ecs/ecs-xray.yaml";
const OTLP_GRPC_PORT: u16 = 4317;
/// `image_tag` has no default; the image reference needs one.
const IMAGE_TAG: (&str, Value) = ("image_tag", Value::String(String::new()));
/// What the app is configured with, all standard OpenTelemetry variables.
const OTEL_VARIABLES: [&str; 5] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
];

/// Every container of `aws_ecs_task_definition.this`, evaluated (the
/// argument of `jsonencode`).
fn containers(iac: &Iac, context: &Context<'static>) -> Vec<Value> {
    let list = iac
        .resource("aws_ecs_task_definition", "this")
        .and_then(|b| attribute(b, "container_definitions"))
        .and_then(|e| match e {
            Expression::FuncCall(call) => call.args.first(),
            _ => None,
        });
    match eval(list, context) {
        Some(Value::Array(containers)) => containers,
        _ => Vec::new(),
    }
}

fn count(iac: &Iac, kind: &str, name: &str, context: &Context<'static>) -> Option<Value> {
    iac.resource(kind, name)
        .and_then(|b| eval(attribute(b, "count"), context))
}

/// The three configurations every service is checked in: off (the
/// default), on, on with another sample ratio.
pub(crate) struct TraceContexts {
    off: Context<'static>,
    on: Context<'static>,
    quarter: Context<'static>,
}

pub(crate) fn trace_contexts(iac: &Iac) -> TraceContexts {
    let on = |more: &[(&str, Value)]| {
        let mut overrides = vec![IMAGE_TAG, ("trace_collector_enabled", Value::Bool(true))];
        overrides.extend(more.iter().cloned());
        crate::context::context(iac, &overrides)
    };
    TraceContexts {
        off: crate::context::context(iac, &[IMAGE_TAG]),
        on: on(&[]),
        quarter: on(&[("traces_sample_ratio", Value::from(0.25))]),
    }
}

pub(crate) fn check_traces(
    iac: &Iac,
    contexts: &TraceContexts,
    service: &str,
    findings: &mut Findings,
) {
    let place = format!("aws_ecs_task_definition.this[\"{service}\"]");
    let app = crate::eval::container(iac, "this");
    let env_of = |context: &Context<'static>| environment(app, &with_each(context, service));

    // Off (the default): nothing of it.
    let off = &contexts.off;
    let otel: Vec<_> = env_of(off)
        .into_iter()
        .filter(|(k, _)| k.starts_with("OTEL_"))
        .collect();
    findings.require(
        otel.is_empty(),
        format!("{place}: {otel:?} with trace_collector_enabled = false; export must stay off"),
    );
    let n = containers(iac, &with_each(off, service)).len();
    findings.require(
        n == 1,
        format!("{place}: {n} containers with the collector off, want the app alone"),
    );
    findings.expect(
        "aws_iam_role_policy.task_xray",
        "count with the collector off",
        count(iac, "aws_iam_role_policy", "task_xray", off),
        0,
    );

    // On.
    let on = &contexts.on;
    let each = with_each(on, service);
    let env = env_of(on);
    let var = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let names: Vec<_> = env
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| k.starts_with("OTEL_"))
        .collect();
    findings.require(
        names == OTEL_VARIABLES,
        format!("{place}: OTEL_ variables {names:?}, want exactly {OTEL_VARIABLES:?}"),
    );
    let all = containers(iac, &each);
    let collector = all.get(1).cloned();
    let collector_name = get(&collector, "name");
    findings.require(
        all.len() == 2 && get(&all.first().cloned(), "name") == Some(Value::from(service)),
        format!(
            "{place}: with the collector on, containers are {:?}, want the app then the collector",
            all.iter()
                .map(|c| get(&Some(c.clone()), "name"))
                .collect::<Vec<_>>()
        ),
    );
    // The endpoint is the collector's OTLP gRPC receiver: same task
    // (awsvpc: one network namespace, so loopback), its port, gRPC.
    let command = get(&collector, "command");
    findings.require(
        crate::iam_policy::strings(command.clone()).contains(&format!("--config={ECS_XRAY_CONFIG}")),
        format!("{place}: collector command {command:?}, want --config={ECS_XRAY_CONFIG} (the receiver the app's endpoint names)"),
    );
    findings.expect(
        &place,
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        var("OTEL_EXPORTER_OTLP_ENDPOINT"),
        format!("http://127.0.0.1:{OTLP_GRPC_PORT}"),
    );
    findings.expect(
        &place,
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        var("OTEL_EXPORTER_OTLP_PROTOCOL"),
        "grpc",
    );
    findings.expect(
        &place,
        "OTEL_SERVICE_NAME",
        var("OTEL_SERVICE_NAME"),
        service,
    );
    findings.expect(
        &place,
        "OTEL_TRACES_SAMPLER",
        var("OTEL_TRACES_SAMPLER"),
        "parentbased_traceidratio",
    );
    findings.expect(
        &place,
        "OTEL_TRACES_SAMPLER_ARG (default)",
        var("OTEL_TRACES_SAMPLER_ARG"),
        "0.05",
    );
    let quarter = &contexts.quarter;
    findings.expect(
        &place,
        "OTEL_TRACES_SAMPLER_ARG with traces_sample_ratio 0.25",
        environment(app, &with_each(quarter, service))
            .into_iter()
            .find(|(k, _)| k == "OTEL_TRACES_SAMPLER_ARG")
            .map(|(_, v)| v),
        "0.25",
    );
    let depends = get(&all.first().cloned(), "dependsOn");
    let want_depends = Value::from(vec![Value::Object(
        [
            (
                "containerName".to_owned(),
                collector_name.clone().unwrap_or(Value::Null),
            ),
            ("condition".to_owned(), Value::from("HEALTHY")),
        ]
        .into_iter()
        .collect(),
    )]);
    findings.require(
        collector_name.is_some() && depends.as_ref() == Some(&want_depends),
        format!("{place}: app dependsOn is {depends:?}, want the collector HEALTHY (start after it, stop before it)"),
    );
    findings.expect(
        &place,
        "collector essential",
        get(&collector, "essential"),
        false,
    );
    findings.expect(
        &place,
        "collector healthCheck.command",
        get(&get(&collector, "healthCheck"), "command"),
        Value::from(vec!["CMD", "/healthcheck"]),
    );
    findings.expect(
        &place,
        "collector readonlyRootFilesystem",
        get(&collector, "readonlyRootFilesystem"),
        true,
    );
    findings.expect(
        "aws_iam_role_policy.task_xray",
        "count with the collector on",
        count(iac, "aws_iam_role_policy", "task_xray", on),
        1,
    );
    let actions = iac
        .data("aws_iam_policy_document", "task_xray")
        .map(|doc| crate::iam_policy::statements(doc, on))
        .unwrap_or_default();
    findings.require(
        actions.len() == 1 && actions[0].actions == ["xray:PutTraceSegments"] && !actions[0].deny,
        format!("data.aws_iam_policy_document.task_xray: {actions:?}, want one Allow of xray:PutTraceSegments"),
    );

    // The image is pinned, by the variable's validation.
    for (image, want) in [
        (
            "public.ecr.aws/aws-observability/aws-otel-collector:v0.49.0",
            true,
        ),
        (
            "123456789012.dkr.ecr.us-east-2.amazonaws.com/adot@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            true,
        ),
        (
            "public.ecr.aws/aws-observability/aws-otel-collector:latest",
            false,
        ),
        ("public.ecr.aws/aws-observability/aws-otel-collector", false),
    ] {
        let got = iac.accepts(on, "trace_collector_image", Value::from(image));
        findings.require(
            got == Some(want),
            format!("variable trace_collector_image: validation gives {got:?} for {image:?}, want {want}"),
        );
    }
    findings.require(
        get(&collector, "image")
            .is_some_and(|i| iac.accepts(on, "trace_collector_image", i) == Some(true)),
        format!(
            "{place}: collector image {:?} is not a pinned one",
            get(&collector, "image")
        ),
    );
    for (ratio, want) in [
        (0.0, true),
        (0.05, true),
        (1.0, true),
        (-0.1, false),
        (1.5, false),
    ] {
        let got = iac.accepts(on, "traces_sample_ratio", Value::from(ratio));
        findings.require(
            got == Some(want),
            format!(
                "variable traces_sample_ratio: validation gives {got:?} for {ratio}, want {want}"
            ),
        );
    }
}
