//! The contract between `IaC/` and the code: what the Terraform deploys must
//! be what the binary expects. Ports, port names, Service Connect discovery
//! and DNS names, `PEER_URL`s, health-check paths and `appProtocol` must equal
//! the code's defaults (`status_services::topology`) and the gateway's
//! routes; every service that serves through Service Connect must have the
//! `tls` block pointing at the Private CA and the infrastructure role; the CA
//! must be short-lived and tagged for ECS; the HTTPS listener must use a TLS
//! 1.3 policy.
//!
//! Values are read by evaluating the HCL (locals, variable defaults, and
//! `each` bound to one service) with hcl-rs, not by matching text. Each
//! check is shown to fail on a deliberately broken copy of `IaC/`.

use std::{fs, path::Path};

use clap::CommandFactory;
use hcl::{
    Block, Body, Expression, Map, Value,
    eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType},
};
use status_services::topology::{KNOWN_SERVICES, KnownService};

/// The binary the task definitions run, as built by the Dockerfile.
const BINARY_PATH: &str = "/usr/local/bin/status-service";
const SERVICE_CONNECT_TLS_POLICY: &str =
    "policy/service-role/AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity";

/// Every top-level block of a set of .tf files.
struct Iac {
    blocks: Vec<Block>,
}

impl Iac {
    fn parse(files: &[(String, String)]) -> Self {
        let blocks = files
            .iter()
            .flat_map(|(name, text)| {
                let body: Body = hcl::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
                body.into_blocks()
            })
            .collect();
        Self { blocks }
    }

    /// `resource "kind" "name"` bodies.
    fn resources<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a Body)> {
        self.blocks
            .iter()
            .filter_map(move |block| match block.labels() {
                [k, name] if block.identifier() == "resource" && k.as_str() == kind => {
                    Some((name.as_str(), block.body()))
                }
                _ => None,
            })
    }

    fn resource<'a>(&'a self, kind: &'a str, name: &str) -> Option<&'a Body> {
        self.resources(kind)
            .find(|(n, _)| *n == name)
            .map(|(_, body)| body)
    }

    /// A context with `var` (variable defaults, with `overrides`) and every
    /// local that can be evaluated without provider data.
    fn context(&self, overrides: &[(&str, Value)]) -> Context<'static> {
        let mut vars = Map::new();
        for block in self.blocks.iter().filter(|b| b.identifier() == "variable") {
            let default =
                attribute(block.body(), "default").and_then(|e| e.evaluate(&Context::new()).ok());
            if let (Some(name), Some(value)) = (block.labels().first(), default) {
                vars.insert(name.as_str().to_owned(), value);
            }
        }
        for (name, value) in overrides {
            vars.insert((*name).to_owned(), value.clone());
        }
        let pending: Vec<_> = self
            .blocks
            .iter()
            .filter(|b| b.identifier() == "locals")
            .flat_map(|b| b.body().attributes())
            .collect();
        // Locals refer to each other: evaluate until nothing more resolves.
        let mut locals = Map::new();
        locals.insert("partition".to_owned(), Value::from("aws"));
        loop {
            let mut context = Context::new();
            context.declare_func(
                "tostring",
                FuncDef::builder()
                    .param(ParamType::Any)
                    .build(terraform_tostring),
            );
            context.declare_var("var", Value::Object(vars.clone()));
            context.declare_var("local", Value::Object(locals.clone()));
            let resolved: Vec<_> = pending
                .iter()
                .filter(|a| !locals.contains_key(a.key()))
                .filter_map(|a| {
                    a.expr()
                        .evaluate(&context)
                        .ok()
                        .map(|v| (a.key().to_owned(), v))
                })
                .collect();
            if resolved.is_empty() {
                return context;
            }
            locals.extend(resolved);
        }
    }
}

/// Terraform's `tostring` for the scalars it accepts.
fn terraform_tostring(args: FuncArgs) -> Result<Value, String> {
    match args.into_values().pop() {
        Some(Value::String(s)) => Ok(Value::String(s)),
        Some(Value::Number(n)) => Ok(Value::String(n.to_string())),
        Some(Value::Bool(b)) => Ok(Value::String(b.to_string())),
        other => Err(format!("tostring of {other:?}")),
    }
}

fn attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// The first nested block on `path`; `dynamic "x"` counts as block `x`
/// (its `content`).
fn block<'a>(body: &'a Body, path: &[&str]) -> Option<&'a Body> {
    let Some((first, rest)) = path.split_first() else {
        return Some(body);
    };
    let found = body.blocks().find_map(|b| match b.identifier() {
        id if id == *first => Some(b.body()),
        "dynamic" if b.labels().first().is_some_and(|l| l.as_str() == *first) => b
            .body()
            .blocks()
            .find(|c| c.identifier() == "content")
            .map(|c| c.body()),
        _ => None,
    })?;
    block(found, rest)
}

fn source(expression: &Expression) -> String {
    hcl::format::to_string(expression).unwrap_or_default()
}

/// `context` with `each` bound to one entry of `local.services`.
fn with_each(context: &Context<'static>, service: &str) -> Context<'static> {
    let services = Some(context_value(context, "services"));
    let mut each = Map::new();
    each.insert("key".to_owned(), Value::from(service));
    each.insert(
        "value".to_owned(),
        get(&services, service).unwrap_or(Value::Null),
    );
    let mut context = context.clone();
    context.declare_var("each", Value::Object(each));
    context
}

fn context_value(context: &Context<'static>, local: &str) -> Value {
    let expr: Expression = Expression::Traversal(Box::new(
        hcl::Traversal::builder(hcl::Variable::unchecked("local"))
            .attr(local)
            .build(),
    ));
    expr.evaluate(context).unwrap_or(Value::Null)
}

/// Collects what does not match, with where and what was expected.
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn expect(&mut self, place: &str, what: &str, got: Option<Value>, want: impl Into<Value>) {
        let want = want.into();
        if got.as_ref() != Some(&want) {
            self.0.push(format!(
                "{place}: {what} is {got:?}, the code expects {want:?}"
            ));
        }
    }

    fn require(&mut self, condition: bool, message: String) {
        if !condition {
            self.0.push(message);
        }
    }
}

fn eval(expression: Option<&Expression>, context: &Context<'static>) -> Option<Value> {
    expression?.evaluate(context).ok()
}

fn get(value: &Option<Value>, key: &str) -> Option<Value> {
    match value {
        Some(Value::Object(map)) => map.get(key).cloned(),
        _ => None,
    }
}

/// Every check of the contract; an empty list means IaC/ matches the code.
fn check(iac: &Iac) -> Vec<String> {
    let mut findings = Findings::default();
    let context = iac.context(&[]);
    for service in KNOWN_SERVICES {
        check_service(iac, &context, service, &mut findings);
    }
    check_tls(iac, &context, &mut findings);
    findings.0
}

fn check_service(
    iac: &Iac,
    context: &Context<'static>,
    service: KnownService,
    findings: &mut Findings,
) {
    let name = service.name;
    let peer = service.peer_service();
    let each = with_each(context, name);
    let entry = get(&Some(context_value(context, "services")), name);
    let place = format!("local.services[\"{name}\"]");
    findings.require(entry.is_some(), format!("{place}: missing"));
    findings.expect(
        &place,
        "container_port",
        get(&entry, "container_port"),
        service.port,
    );
    findings.expect(
        &place,
        "dns_name",
        get(&entry, "dns_name"),
        service.service_connect_dns_name,
    );
    findings.expect(
        &place,
        "discovery_name",
        get(&entry, "discovery_name"),
        name,
    );
    findings.expect(&place, "app_protocol", get(&entry, "app_protocol"), "grpc");
    findings.expect(
        &place,
        "health_path",
        get(&entry, "health_path"),
        status_gateway::healthcheck_path(name),
    );
    findings.expect(
        &place,
        "path_pattern",
        get(&entry, "path_pattern"),
        format!("/{name}/*"),
    );

    // The task definition: its one container, evaluated for this service.
    let place = format!("aws_ecs_task_definition.this[\"{name}\"]");
    let container = iac
        .resource("aws_ecs_task_definition", "this")
        .and_then(|body| attribute(body, "container_definitions"))
        .and_then(|e| match e {
            Expression::FuncCall(call) if call.name.name.as_str() == "jsonencode" => {
                call.args.first()
            }
            _ => None,
        })
        .and_then(|e| match e {
            Expression::Array(containers) => containers.first(),
            _ => None,
        })
        .and_then(|e| match e {
            Expression::Object(object) => Some(object),
            _ => None,
        });
    let field = |key: &str| {
        container.and_then(|object| {
            object
                .iter()
                .find(|(k, _)| matches!(k, hcl::ObjectKey::Identifier(id) if id.as_str() == key))
                .map(|(_, v)| v)
        })
    };
    findings.require(
        container.is_some(),
        format!("{place}: no jsonencode([{{...}}]) container_definitions"),
    );
    let port_mapping = match eval(field("portMappings"), &each) {
        Some(Value::Array(mappings)) if mappings.len() == 1 => mappings.into_iter().next(),
        other => {
            findings.0.push(format!(
                "{place}: portMappings is {other:?}, want exactly one"
            ));
            None
        }
    };
    let port_name = get(&port_mapping, "name");
    findings.expect(
        &place,
        "portMappings.containerPort",
        get(&port_mapping, "containerPort"),
        service.port,
    );
    findings.expect(
        &place,
        "portMappings.appProtocol",
        get(&port_mapping, "appProtocol"),
        "grpc",
    );
    findings.require(
        port_name
            .as_ref()
            .is_some_and(|n| matches!(n, Value::String(s) if !s.is_empty())),
        format!("{place}: portMappings.name is {port_name:?}; Service Connect needs a named port"),
    );
    let environment: Vec<(String, Value)> = match eval(field("environment"), &each) {
        Some(Value::Array(variables)) => variables
            .into_iter()
            .filter_map(|v| {
                Some((
                    get(&Some(v.clone()), "name")?.as_str()?.to_owned(),
                    get(&Some(v), "value")?,
                ))
            })
            .collect(),
        _ => Vec::new(),
    };
    let env = |key: &str| {
        environment
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    findings.expect(&place, "SERVICE_NAME", env("SERVICE_NAME"), name);
    findings.expect(
        &place,
        "SERVER_PORT",
        env("SERVER_PORT"),
        service.port.to_string(),
    );
    findings.expect(
        &place,
        "PEER_URL",
        env("PEER_URL"),
        peer.service_connect_url(),
    );
    let health_command = get(&eval(field("healthCheck"), &each), "command");
    findings.expect(
        &place,
        "healthCheck.command",
        health_command,
        Value::from(vec!["CMD", BINARY_PATH, "healthcheck"]),
    );

    // The ECS service's Service Connect block, for this service.
    let place = format!("aws_ecs_service.this[\"{name}\"]");
    let ecs_service = iac.resource("aws_ecs_service", "this");
    let connect =
        ecs_service.and_then(|body| block(body, &["service_connect_configuration", "service"]));
    let at = |path: &[&str], key: &str| {
        eval(
            connect
                .and_then(|c| block(c, path))
                .and_then(|b| attribute(b, key)),
            &each,
        )
    };
    findings.require(
        connect.is_some(),
        format!("{place}: no service_connect_configuration.service"),
    );
    findings.expect(
        &place,
        "port_name (the task's port mapping name)",
        at(&[], "port_name"),
        port_name.unwrap_or(Value::Null),
    );
    findings.expect(&place, "discovery_name", at(&[], "discovery_name"), name);
    findings.expect(
        &place,
        "client_alias.dns_name",
        at(&["client_alias"], "dns_name"),
        service.service_connect_dns_name,
    );
    findings.expect(
        &place,
        "client_alias.port",
        at(&["client_alias"], "port"),
        service.port,
    );
    findings.expect(
        &place,
        "timeout.per_request_timeout_seconds",
        at(&["timeout"], "per_request_timeout_seconds"),
        0,
    );
    findings.require(
        connect.is_some_and(|c| attribute(c, "ingress_port_override").is_none()),
        format!("{place}: ingress_port_override would let ALB traffic bypass the proxy"),
    );
    let container_port = ecs_service
        .and_then(|b| block(b, &["load_balancer"]))
        .and_then(|b| attribute(b, "container_port"));
    findings.expect(
        &place,
        "load_balancer.container_port",
        eval(container_port, &each),
        service.port,
    );

    // The ALB target group health-checks the gateway's route.
    let place = format!("aws_lb_target_group.rest[\"{name}\"]");
    let target_group = iac.resource("aws_lb_target_group", "rest");
    let tg = |key: &str| eval(target_group.and_then(|b| attribute(b, key)), &each);
    let health = |key: &str| {
        eval(
            target_group
                .and_then(|b| block(b, &["health_check"]))
                .and_then(|b| attribute(b, key)),
            &each,
        )
    };
    findings.expect(&place, "port", tg("port"), service.port);
    findings.expect(&place, "target_type", tg("target_type"), "ip");
    findings.expect(&place, "protocol_version", tg("protocol_version"), "HTTP1");
    findings.expect(
        &place,
        "health_check.path",
        health("path"),
        status_gateway::healthcheck_path(name),
    );
    findings.expect(&place, "health_check.port", health("port"), "traffic-port");
    findings.expect(&place, "health_check.matcher", health("matcher"), "200");
    // Through the Service Connect proxy: TLS when Service Connect TLS is on.
    findings.expect(&place, "protocol", tg("protocol"), "HTTPS");
    findings.expect(&place, "health_check.protocol", health("protocol"), "HTTPS");
    let without_tls = with_each(
        &iac.context(&[("service_connect_tls_enabled", Value::Bool(false))]),
        name,
    );
    let protocol_without_tls = eval(
        target_group.and_then(|b| attribute(b, "protocol")),
        &without_tls,
    );
    findings.expect(
        &place,
        "protocol with Service Connect TLS off",
        protocol_without_tls,
        "HTTP",
    );
}

fn check_tls(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
    // Every service that serves through Service Connect has the tls block,
    // issued by the PCA, with the infrastructure role.
    for (name, body) in iac.resources("aws_ecs_service") {
        let place = format!("aws_ecs_service.{name}");
        let Some(connect) = block(body, &["service_connect_configuration", "service"]) else {
            continue;
        };
        let Some(tls) = block(connect, &["tls"]) else {
            findings.0.push(format!(
                "{place}: Service Connect service without a tls block"
            ));
            continue;
        };
        let issuer = block(tls, &["issuer_cert_authority"])
            .and_then(|b| attribute(b, "aws_pca_authority_arn"))
            .map(source);
        findings.require(
            issuer.as_deref() == Some("local.pca_arn"),
            format!("{place}: tls issuer is {issuer:?}, want local.pca_arn"),
        );
        let role = attribute(tls, "role_arn").map(source).unwrap_or_default();
        findings.require(
            role.contains("aws_iam_role.service_connect_tls"),
            format!("{place}: tls role_arn is {role:?}"),
        );
        let depends_on = attribute(body, "depends_on")
            .map(source)
            .unwrap_or_default();
        for needed in [
            "aws_iam_role_policy_attachment.service_connect_tls",
            "aws_acmpca_certificate_authority_certificate.root",
            "aws_kms_key.service_connect",
        ] {
            findings.require(
                depends_on.contains(needed),
                format!("{place}: depends_on lacks {needed} (destroy order)"),
            );
        }
    }
    let pca_arn = attribute_of_locals(iac, "pca_arn")
        .map(source)
        .unwrap_or_default();
    findings.require(
        pca_arn.contains("aws_acmpca_certificate_authority.this")
            && pca_arn.contains("var.existing_pca_arn"),
        format!("local.pca_arn is {pca_arn:?}: want the created CA or var.existing_pca_arn"),
    );

    let place = "aws_acmpca_certificate_authority.this";
    let pca = iac.resource("aws_acmpca_certificate_authority", "this");
    let pca_attr = |key: &str| eval(pca.and_then(|b| attribute(b, key)), context);
    findings.require(pca.is_some(), format!("{place}: missing"));
    findings.expect(
        place,
        "usage_mode",
        pca_attr("usage_mode"),
        "SHORT_LIVED_CERTIFICATE",
    );
    findings.expect(place, "type", pca_attr("type"), "ROOT");
    findings.expect(
        place,
        "permanent_deletion_time_in_days",
        pca_attr("permanent_deletion_time_in_days"),
        7,
    );
    findings.expect(
        place,
        "tags.AmazonECSManaged",
        get(&pca_attr("tags"), "AmazonECSManaged"),
        "true",
    );
    let key_algorithm = eval(
        pca.and_then(|b| block(b, &["certificate_authority_configuration"]))
            .and_then(|b| attribute(b, "key_algorithm")),
        context,
    );
    findings.require(
        matches!(&key_algorithm, Some(Value::String(k)) if k == "EC_prime256v1" || k == "RSA_2048"),
        format!("{place}: key_algorithm is {key_algorithm:?}; Service Connect supports EC_prime256v1 and RSA_2048"),
    );
    findings.require(
        iac.resource("aws_acmpca_certificate_authority_certificate", "root")
            .is_some(),
        format!("{place}: never activated (no aws_acmpca_certificate_authority_certificate.root)"),
    );

    let attachment = iac.resource("aws_iam_role_policy_attachment", "service_connect_tls");
    let policy = eval(attachment.and_then(|b| attribute(b, "policy_arn")), context);
    findings.expect(
        "aws_iam_role_policy_attachment.service_connect_tls",
        "policy_arn",
        policy,
        format!("arn:aws:iam::aws:{SERVICE_CONNECT_TLS_POLICY}"),
    );

    let https = iac
        .resources("aws_lb_listener")
        .find(|(_, b)| eval(attribute(b, "port"), context) == Some(Value::from(443)));
    let policy = https.and_then(|(_, b)| eval(attribute(b, "ssl_policy"), context));
    findings.require(
        matches!(&policy, Some(Value::String(p)) if p.starts_with("ELBSecurityPolicy-TLS13-")),
        format!("HTTPS listener: ssl_policy is {policy:?}; the ALB speaks TLS 1.3 to targets only with a TLS13 policy"),
    );
}

fn attribute_of_locals<'a>(iac: &'a Iac, key: &str) -> Option<&'a Expression> {
    iac.blocks
        .iter()
        .filter(|b| b.identifier() == "locals")
        .find_map(|b| attribute(b.body(), key))
}

fn iac_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn real_files() -> Vec<(String, String)> {
    let mut files: Vec<_> = fs::read_dir(iac_dir())
        .expect("IaC/ exists")
        .map(|entry| entry.expect("readable").path())
        .filter(|path| path.extension().is_some_and(|e| e == "tf"))
        .map(|path| {
            (
                path.display().to_string(),
                fs::read_to_string(&path).expect("readable .tf"),
            )
        })
        .collect();
    files.sort();
    files
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
            "app_protocol   = \"grpc\"",
            "app_protocol   = \"http\"",
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
            "per_request_timeout_seconds = 0",
            "per_request_timeout_seconds = 15",
            "per_request_timeout_seconds",
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
    ] {
        let findings = broken(from, to);
        assert!(
            findings.iter().any(|f| f.contains(expected)),
            "replacing {from:?} with {to:?} should be caught ({expected}); findings: {findings:#?}"
        );
    }
}
