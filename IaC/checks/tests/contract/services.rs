//! The contract for each service of `status_services::topology`: ports,
//! port names, Service Connect discovery and DNS names, `PEER_URL`, the
//! container health check, `appProtocol` (default), the Service Connect
//! timeouts and the ALB target group must be what the binary expects.

use hcl::{Value, eval::Context};
use status_services::topology::KnownService;

use crate::eval::{
    Findings, Iac, attribute, block, container, context_value, eval, get, with_each,
};

/// The binary the task definitions run, as built by the Dockerfile.
pub(crate) const BINARY_PATH: &str = "/usr/local/bin/status-service";

pub(crate) fn check_service(
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
    let container = container(iac, "this");
    let field = |key: &str| crate::eval::field(container, key);
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
    let environment = crate::eval::environment(container, &each);
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
    // ECS rejects a per-request timeout when appProtocol is TCP ("none").
    let tcp = with_each(
        &iac.context(&[("service_connect_app_protocol", Value::from("none"))]),
        name,
    );
    let per_request_tcp = eval(
        connect
            .and_then(|c| block(c, &["timeout"]))
            .and_then(|b| attribute(b, "per_request_timeout_seconds")),
        &tcp,
    );
    findings.require(
        matches!(per_request_tcp, Some(Value::Null)),
        format!("{place}: timeout.per_request_timeout_seconds is {per_request_tcp:?} with appProtocol none (TCP); ECS accepts it only for HTTP-based protocols, want null"),
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
