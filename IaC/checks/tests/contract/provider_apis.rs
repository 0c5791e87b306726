//! Every AWS API call the provider makes for the stack's resource types
//! (`provider_apis.txt`, kept beside this file) against the GitHub deploy
//! role's policies (issue 21, points 2, 5, 6 and 8):
//!
//! - every resource and data source type of `IaC/` has rows, and every row
//!   names a type `IaC/` uses;
//! - reads and tag reads of every type, and every call of shipping an image,
//!   are allowed by the policies the role has with
//!   `github_deploy_manage_infrastructure = false` (app and read);
//! - creates, updates and deletes of the stack's types are allowed by all
//!   four policies (`true`);
//! - creates, updates and deletes of the bootstrap's types are allowed by
//!   none of them, and `local.bootstrap_targets` (what `scripts/deploy.sh
//!   bootstrap` applies) reaches every resource of those types.
//!
//! Conditions are taken as met by this stack's requests (they carry the
//! Project tag, the boundary, the passed-to service), except in the
//! bootstrap check: a resource the bootstrap owns is not one the deploy role
//! is creating (`ec2:CreateAction`, `ecs:CreateAction`), and the default
//! security group it adopts is untagged (`aws:ResourceTag`), so statements
//! with those conditions do not count there.

use std::collections::BTreeSet;

use hcl::{Value, eval::Context};

use crate::eval::{ACCOUNT_ID, Findings, Iac, context_value, source};
use crate::iam_policy::{Statement, allows, statements};

const TABLE: &str = include_str!("provider_apis.txt");
const REGION: &str = "us-east-2";

struct Row<'a> {
    kind: &'a str,
    who: &'a str,
    phase: &'a str,
    action: &'a str,
    resource: String,
}

fn rows(name: &str) -> Vec<Row<'_>> {
    TABLE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let f: Vec<_> = line.split_whitespace().collect();
            assert_eq!(f.len(), 5, "provider_apis.txt: bad row {line:?}");
            Row {
                kind: f[0],
                who: f[1],
                phase: f[2],
                action: f[3],
                resource: f[4]
                    .replace("{p}", "aws")
                    .replace("{r}", REGION)
                    .replace("{a}", ACCOUNT_ID)
                    .replace("{n}", name),
            }
        })
        .collect()
}

/// The statements of the deploy role's policies in `context`: the keys of
/// `local.github_deploy_policies` name the documents.
pub(crate) fn deploy_statements(
    iac: &Iac,
    context: &Context<'static>,
) -> (Vec<String>, Vec<Statement>) {
    let names: Vec<String> = match context_value(context, "github_deploy_policies") {
        Value::Object(map) => map.keys().cloned().collect(),
        _ => Vec::new(),
    };
    let all = names
        .iter()
        .filter_map(|n| iac.data("aws_iam_policy_document", &format!("github_deploy_{n}")))
        .flat_map(|doc| statements(doc, context))
        .collect();
    (names, all)
}

/// Conditions that a bootstrap resource's requests do not meet.
fn counts_for_bootstrap(statement: &Statement) -> bool {
    !statement.conditions.iter().any(|(_, variable, _)| {
        variable.starts_with("aws:ResourceTag/")
            || variable == "ec2:CreateAction"
            || variable == "ecs:CreateAction"
    })
}

pub(crate) fn check_provider_apis(
    iac: &Iac,
    manage: &Context<'static>,
    image_only: &Context<'static>,
    findings: &mut Findings,
) {
    let name = context_value(manage, "name");
    let rows = rows(name.as_str().unwrap_or_default());
    let (all_docs, all) = deploy_statements(iac, manage);
    let (few_docs, few) = deploy_statements(iac, image_only);

    let used: BTreeSet<&str> = iac
        .blocks
        .iter()
        .filter(|b| b.identifier() == "resource" || b.identifier() == "data")
        .filter_map(|b| b.labels().first().map(|l| l.as_str()))
        .collect();
    let listed: BTreeSet<&str> = rows.iter().map(|r| r.kind).collect();
    for kind in used.difference(&listed) {
        findings.0.push(format!(
            "provider_apis.txt: no rows for {kind}, which IaC/ uses"
        ));
    }
    for kind in listed.difference(&used) {
        findings.0.push(format!(
            "provider_apis.txt: rows for {kind}, which IaC/ does not use"
        ));
    }

    for row in rows.iter().filter(|r| r.action != "none") {
        let at = format!(
            "{} {} {} on {}",
            row.kind, row.phase, row.action, row.resource
        );
        let reading = matches!(row.phase, "read" | "tags");
        match row.who {
            "image" | "data" => findings.require(
                allows(&few, row.action, &row.resource, |_| true),
                format!("deploy role ({few_docs:?}): {at} is not allowed"),
            ),
            "deploy" | "bootstrap" if reading => findings.require(
                allows(&few, row.action, &row.resource, |_| true),
                format!("deploy role ({few_docs:?}, github_deploy_manage_infrastructure = false): {at} is not allowed"),
            ),
            "deploy" => findings.require(
                allows(&all, row.action, &row.resource, |_| true),
                format!("deploy role ({all_docs:?}): {at} is not allowed"),
            ),
            "bootstrap" => findings.require(
                !allows(&all, row.action, &row.resource, counts_for_bootstrap),
                format!("deploy role ({all_docs:?}): {at} is allowed; the bootstrap owns {}", row.kind),
            ),
            other => findings
                .0
                .push(format!("provider_apis.txt: unknown who {other:?} in {at}")),
        }
    }
    check_bootstrap_targets(iac, manage, &rows, findings);
}

/// `local.bootstrap_targets`, with what Terraform adds to a `-target`
/// (everything a target refers to, transitively), reaches every resource of
/// a bootstrap type.
fn check_bootstrap_targets(
    iac: &Iac,
    context: &Context<'static>,
    rows: &[Row<'_>],
    findings: &mut Findings,
) {
    let targets: Vec<String> = match context_value(context, "bootstrap_targets") {
        Value::Array(list) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    findings.require(
        !targets.is_empty(),
        "local.bootstrap_targets: missing or empty".to_owned(),
    );
    // Every addressable node and the text it refers from.
    let mut nodes: Vec<(String, String)> = Vec::new();
    for block in &iac.blocks {
        let text = hcl::format::to_string(block.body()).unwrap_or_default();
        match (block.identifier(), block.labels()) {
            ("resource", [kind, name]) => {
                nodes.push((format!("{}.{}", kind.as_str(), name.as_str()), text));
            }
            ("data", [kind, name]) => {
                nodes.push((format!("data.{}.{}", kind.as_str(), name.as_str()), text));
            }
            ("locals", _) => {
                for attr in block.body().attributes() {
                    nodes.push((format!("local.{}", attr.key()), source(attr.expr())));
                }
            }
            _ => {}
        }
    }
    let refers = |text: &str, address: &str| {
        text.match_indices(address).any(|(at, _)| {
            let after = text[at + address.len()..].chars().next();
            !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    let mut reached: BTreeSet<String> = targets.iter().cloned().collect();
    loop {
        let texts: Vec<&String> = nodes
            .iter()
            .filter(|(address, _)| reached.contains(address))
            .map(|(_, text)| text)
            .collect();
        let new: Vec<String> = nodes
            .iter()
            .filter(|(address, _)| !reached.contains(address))
            .filter(|(address, _)| texts.iter().any(|t| refers(t, address)))
            .map(|(address, _)| address.clone())
            .collect();
        if new.is_empty() {
            break;
        }
        reached.extend(new);
    }
    let bootstrap: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.who == "bootstrap")
        .map(|r| r.kind)
        .collect();
    for (address, _) in &nodes {
        let kind = address.split('.').next().unwrap_or_default();
        findings.require(
            !bootstrap.contains(kind) || reached.contains(address),
            format!("local.bootstrap_targets: does not reach {address}, which the deploy role may not create"),
        );
    }
    for target in &targets {
        findings.require(
            nodes.iter().any(|(address, _)| address == target),
            format!("local.bootstrap_targets: {target} is not a resource of IaC/"),
        );
    }
}
