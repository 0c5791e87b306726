//! The ECS part of the contract (the review of issue 12): ECS Exec only
//! where there is a shell (the toolbox), task sizes that hold the app plus
//! the Service Connect proxy and are valid on Fargate, the app's open-file
//! limit, the values the idle timeout accepts, and the `appProtocol`
//! variable with the services replaced when it changes.

use hcl::{Value, eval::Context};

use crate::eval::{
    Findings, Iac, all_true, attribute, block, container, eval, field, get, preconditions, source,
    with_each, with_vars,
};

/// CPU units and MiB.
#[derive(Clone, Copy, Debug)]
struct Size {
    cpu: i64,
    memory: i64,
}

/// AWS: add 256 CPU units and at least 64 MiB to the task for the Service
/// Connect proxy container.
const PROXY: Size = Size {
    cpu: 256,
    memory: 64,
};
/// What the app keeps at least: the whole task of the earlier default.
const APP_MIN: Size = Size {
    cpu: 256,
    memory: 512,
};
/// What the trace collector sidecar reserves when it is on (traces.tf):
/// AWS's ECS templates give an ADOT collector task 256 CPU units; 256 MiB
/// holds its batch of sampled spans.
const COLLECTOR: Size = Size {
    cpu: 256,
    memory: 256,
};
/// The app's open-file limit (soft and hard).
const NOFILE: i64 = 65535;
/// The values `service_connect_app_protocol` takes; "none" sets no appProtocol.
const APP_PROTOCOLS: [&str; 4] = ["grpc", "http2", "http", "none"];

/// Fargate (Linux) task sizes, from the ECS task definition parameters page:
/// an independent copy of the table `local.fargate_memory_options` encodes.
fn fargate_valid(cpu: i64, memory: i64) -> bool {
    let gib = 1024;
    match cpu {
        256 => [512, 1024, 2048].contains(&memory),
        512 => (1..=4).any(|g| memory == g * gib),
        1024 => (2..=8).any(|g| memory == g * gib),
        2048 => (4..=16).any(|g| memory == g * gib),
        4096 => (8..=30).any(|g| memory == g * gib),
        8192 => (16..=60).step_by(4).any(|g| memory == g * gib),
        16384 => (32..=120).step_by(8).any(|g| memory == g * gib),
        _ => false,
    }
}

fn int(value: Option<Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

pub(crate) fn check_ecs_tasks(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
    check_ecs_exec(iac, context, findings);
    check_task_sizes(iac, context, findings);
    check_open_files(iac, context, findings);
    check_idle_timeout(iac, context, findings);
    check_app_protocol(iac, context, findings);
}

/// ECS Exec starts commands through `sh`: the distroless app has none.
fn check_ecs_exec(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
    for (name, body) in iac.resources("aws_ecs_service") {
        let exec = eval(attribute(body, "enable_execute_command"), context);
        let place = format!("aws_ecs_service.{name}");
        if name == "toolbox" {
            findings.expect(&place, "enable_execute_command", exec, true);
        } else {
            findings.require(
                matches!(exec, None | Some(Value::Bool(false))),
                format!("{place}: enable_execute_command is {exec:?}; the distroless app has no shell, ECS Exec belongs on the toolbox only"),
            );
        }
    }

    let place = "aws_ecs_task_definition.this";
    let task = iac.resource("aws_ecs_task_definition", "this");
    findings.require(
        task.is_some_and(|body| block(body, &["volume"]).is_none()),
        format!("{place}: has volumes (the ECS Exec workaround volumes belong to no app task)"),
    );
    findings.require(
        field(container(iac, "this"), "mountPoints").is_none(),
        format!("{place}: the app container has mountPoints (ECS Exec workaround)"),
    );

    // The app's task role carries no permissions; the toolbox's has ECS Exec.
    let mut toolbox_exec = false;
    for kind in ["aws_iam_role_policy_attachment", "aws_iam_role_policy"] {
        for (name, body) in iac.resources(kind) {
            let role = attribute(body, "role").map(source).unwrap_or_default();
            // Only the collector's X-Ray write (traces.rs checks it).
            findings.require(
                !role.contains("aws_iam_role.task.") || (kind, name) == ("aws_iam_role_policy", "task_xray"),
                format!("{kind}.{name}: attaches a policy to the app's task role ({role}); it must have none but the trace collector's X-Ray write"),
            );
            let policy = attribute(body, "policy_arn").map(source);
            toolbox_exec |= role.contains("aws_iam_role.toolbox_task")
                && policy.as_deref() == Some("aws_iam_policy.ecs_exec.arn");
        }
    }
    findings.require(
        toolbox_exec,
        "aws_iam_role.toolbox_task: no attachment of aws_iam_policy.ecs_exec".to_owned(),
    );
    let ssm_channels = iac
        .data("aws_iam_policy_document", "ecs_exec")
        .is_some_and(|doc| {
            doc.blocks()
                .filter(|b| b.identifier() == "statement")
                .filter_map(|b| attribute(b.body(), "actions"))
                .any(|a| source(a).contains("ssmmessages:CreateControlChannel"))
        });
    findings.require(
        ssm_channels,
        "data.aws_iam_policy_document.ecs_exec: no ssmmessages channels".to_owned(),
    );
}

fn task_size(iac: &Iac, name: &str, context: &Context<'static>) -> Option<Size> {
    let body = iac.resource("aws_ecs_task_definition", name)?;
    Some(Size {
        cpu: int(eval(attribute(body, "cpu"), context))?,
        memory: int(eval(attribute(body, "memory"), context))?,
    })
}

fn check_task_sizes(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
    let place = "aws_ecs_task_definition.this (task_cpu/task_memory defaults)";
    match task_size(iac, "this", context) {
        Some(size) => {
            findings.require(
                fargate_valid(size.cpu, size.memory),
                format!("{place}: {size:?} is not a valid Fargate size"),
            );
            findings.require(
                size.cpu >= APP_MIN.cpu + PROXY.cpu && size.memory >= APP_MIN.memory + PROXY.memory,
                format!("{place}: {size:?} does not hold the app {APP_MIN:?} plus the Service Connect proxy {PROXY:?}"),
            );
        }
        None => findings
            .0
            .push(format!("{place}: cpu/memory do not evaluate")),
    }

    // The preconditions accept exactly the valid sizes that hold app + proxy.
    let conditions = iac
        .resource("aws_ecs_task_definition", "this")
        .map(preconditions)
        .unwrap_or_default();
    let memories = [
        512, 1024, 1536, 2048, 3072, 4096, 5120, 8192, 9216, 16384, 20480, 30720, 32768, 61440,
        65536, 122880,
    ];
    // With the trace collector sidecar, it too (issue 19).
    let with_collector = iac.context(&[("trace_collector_enabled", Value::Bool(true))]);
    for (base, extra) in [
        (context, Size { cpu: 0, memory: 0 }),
        (&with_collector, COLLECTOR),
    ] {
        for cpu in [256, 512, 1024, 2048, 4096, 8192, 16384] {
            for memory in memories {
                let overrides = [
                    ("task_cpu", Value::from(cpu)),
                    ("task_memory", Value::from(memory)),
                ];
                // No local depends on task_cpu/task_memory.
                let accepted = all_true(&conditions, &with_vars(base, &overrides));
                let want = fargate_valid(cpu, memory)
                    && cpu >= APP_MIN.cpu + PROXY.cpu + extra.cpu
                    && memory >= APP_MIN.memory + PROXY.memory + extra.memory;
                findings.require(
                    accepted == Some(want),
                    format!("aws_ecs_task_definition.this: the preconditions give {accepted:?} for task_cpu {cpu} / task_memory {memory} with a collector of {extra:?}, want {want}"),
                );
            }
        }
    }

    // The toolbox: its container's reservation plus the proxy.
    let place = "aws_ecs_task_definition.toolbox";
    let toolbox = container(iac, "toolbox");
    let reserved = Size {
        cpu: int(eval(field(toolbox, "cpu"), context)).unwrap_or(0),
        memory: int(eval(field(toolbox, "memoryReservation"), context)).unwrap_or(0),
    };
    match task_size(iac, "toolbox", context) {
        Some(size) => findings.require(
            fargate_valid(size.cpu, size.memory)
                && size.cpu >= reserved.cpu + PROXY.cpu
                && size.memory >= reserved.memory + PROXY.memory,
            format!("{place}: {size:?} is not a valid Fargate size holding the toolbox container {reserved:?} plus the Service Connect proxy {PROXY:?}"),
        ),
        None => findings.0.push(format!("{place}: cpu/memory do not evaluate")),
    }
}

fn check_open_files(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
    let each = with_each(context, "service-a");
    let ulimits = match eval(field(container(iac, "this"), "ulimits"), &each) {
        Some(Value::Array(limits)) => limits,
        _ => Vec::new(),
    };
    let nofile = ulimits
        .into_iter()
        .map(Some)
        .find(|l| get(l, "name") == Some(Value::from("nofile")));
    let (soft, hard) = nofile
        .map(|l| (int(get(&l, "softLimit")), int(get(&l, "hardLimit"))))
        .unwrap_or_default();
    findings.require(
        soft == hard && soft.is_some_and(|s| s >= NOFILE),
        format!("aws_ecs_task_definition.this: nofile ulimit soft {soft:?} / hard {hard:?}; want soft = hard >= {NOFILE}"),
    );
}

fn check_idle_timeout(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
    let variable = "service_connect_idle_timeout_seconds";
    let used = iac
        .resource("aws_ecs_service", "this")
        .and_then(|b| block(b, &["service_connect_configuration", "service", "timeout"]))
        .and_then(|b| attribute(b, "idle_timeout_seconds"))
        .map(source);
    findings.require(
        used.as_deref() == Some(&format!("var.{variable}")),
        format!(
            "aws_ecs_service.this: timeout.idle_timeout_seconds is {used:?}, want var.{variable}"
        ),
    );
    // 0 disables the idle timeout (a valid API value); below a minute is a
    // mistake; no fractions.
    for (value, want) in [
        (Value::from(0), true),
        (Value::from(60), true),
        (Value::from(3600), true),
        (Value::from(2_147_483_647_i64), true),
        (Value::from(30), false),
        (Value::from(-1), false),
        (Value::from(1.5), false),
        (Value::from(2_147_483_648_i64), false),
    ] {
        let accepted = iac.accepts(context, variable, value.clone());
        findings.require(
            accepted == Some(want),
            format!(
                "variable {variable}: validation gives {accepted:?} for {value:?}, want {want}"
            ),
        );
    }
    let description = iac
        .variable(variable)
        .and_then(|b| attribute(b, "description"))
        .map(source)
        .unwrap_or_default();
    findings.require(
        description.contains("0 disables"),
        format!(
            "variable {variable}: the description does not say that 0 disables the idle timeout"
        ),
    );
}

fn check_app_protocol(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
    let variable = "service_connect_app_protocol";
    let default = iac
        .variable(variable)
        .and_then(|b| eval(attribute(b, "default"), context));
    findings.expect(&format!("variable {variable}"), "default", default, "grpc");
    for candidate in APP_PROTOCOLS.iter().chain(&["tcp", "GRPC", "", "http1"]) {
        let want = APP_PROTOCOLS.contains(candidate);
        let accepted = iac.accepts(context, variable, Value::from(*candidate));
        findings.require(
            accepted == Some(want),
            format!(
                "variable {variable}: validation gives {accepted:?} for {candidate:?}, want {want}"
            ),
        );
    }
    // Each value reaches the port mapping; "none" sets no appProtocol.
    for value in APP_PROTOCOLS {
        let context = with_each(&iac.context(&[(variable, Value::from(value))]), "service-a");
        let mapping = match eval(field(container(iac, "this"), "portMappings"), &context) {
            Some(Value::Array(mappings)) => mappings.into_iter().next(),
            _ => None,
        };
        let got = get(&mapping, "appProtocol");
        let want = (value != "none").then(|| Value::from(value));
        findings.require(
            mapping.is_some() && got == want,
            format!("aws_ecs_task_definition.this with {variable} = {value:?}: portMappings.appProtocol is {got:?}, want {want:?}"),
        );
    }
    // appProtocol is immutable on a Service Connect service: a change must
    // replace the services (and the toolbox, so it starts after them).
    let input = iac
        .resource("terraform_data", variable)
        .and_then(|b| attribute(b, "input"))
        .map(source);
    findings.require(
        input.as_deref() == Some(&format!("var.{variable}")),
        format!("terraform_data.{variable}: input is {input:?}, want var.{variable}"),
    );
    for service in ["this", "toolbox"] {
        let triggers = iac
            .resource("aws_ecs_service", service)
            .and_then(|b| block(b, &["lifecycle"]))
            .and_then(|b| attribute(b, "replace_triggered_by"))
            .map(source)
            .unwrap_or_default();
        findings.require(
            triggers.contains(&format!("terraform_data.{variable}")),
            format!("aws_ecs_service.{service}: lifecycle.replace_triggered_by lacks terraform_data.{variable}"),
        );
    }
}
