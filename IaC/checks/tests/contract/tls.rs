//! The Service Connect TLS part of the contract: every service that serves
//! through Service Connect has the `tls` block (the Private CA, the
//! infrastructure role, the destroy order); the CA is a short-lived root
//! tagged for ECS; the HTTPS listener uses a TLS 1.3 policy.

use hcl::{Value, eval::Context};

use crate::eval::{Findings, Iac, attribute, attribute_of_locals, block, eval, get, source};

const SERVICE_CONNECT_TLS_POLICY: &str =
    "policy/service-role/AmazonECSInfrastructureRolePolicyForServiceConnectTransportLayerSecurity";

pub(crate) fn check_tls(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
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
