//! The GitHub deploy role part of the contract (issue 13): off by default;
//! its trust policy accepts only GitHub's OIDC tokens for audience
//! `sts.amazonaws.com` whose `sub` names the repository variable and a
//! deploy environment or branch, exactly (no wildcards); `iam:PassRole` in
//! the app policy only for the task and execution roles of this stack, and
//! elsewhere only for named infrastructure roles, each to one service; the
//! role cannot change itself; no `*` action, no unconditioned `"*"`
//! resource except for read-only actions and the few AWS grants on `*`
//! only; every policy within IAM's size limit.

use hcl::{Value, eval::Context};
use serde_json::json;

use crate::eval::{ACCOUNT_ID, Findings, Iac, attribute, eval, get, source};
use crate::iam_policy::{Statement, statements, text};

const REPOSITORY: &str = "octo-org/status-app";
/// github.repository_owner_id and github.repository_id of that repository.
const OWNER_ID: &str = "4242";
const REPO_ID: &str = "987654";
const OIDC_HOST: &str = "token.actions.githubusercontent.com";
/// IAM's limit for a managed policy, whitespace not counted.
const MANAGED_POLICY_MAX_CHARS: usize = 6144;
/// Actions AWS authorises on `"*"` only that are not plain reads.
const STAR_ONLY_WRITES: [&str; 5] = [
    "ecr:GetAuthorizationToken",
    "ecs:RegisterTaskDefinition",
    "ecs:DeregisterTaskDefinition",
    // The Logs Insights query definition (observability.tf).
    "logs:PutQueryDefinition",
    "logs:DeleteQueryDefinition",
];

/// The policy JSON as `aws_iam_policy_document` renders it, without
/// whitespace: what IAM counts against its size limit.
fn policy_chars(statements: &[Statement]) -> usize {
    let rendered: Vec<_> = statements
        .iter()
        .map(|s| {
            let mut conditions = serde_json::Map::new();
            for (test, variable, values) in &s.conditions {
                let by_test = conditions.entry(test.clone()).or_insert_with(|| json!({}));
                by_test[variable] = json!(values);
            }
            json!({
                "Sid": s.sid,
                "Effect": if s.deny { "Deny" } else { "Allow" },
                "Action": s.actions,
                "Resource": s.resources,
                "Condition": conditions,
            })
        })
        .collect();
    json!({ "Version": "2012-10-17", "Statement": rendered })
        .to_string()
        .len()
}

fn role_arn(context: &Context<'static>, iac: &Iac, resource: &str) -> String {
    let name = iac
        .resource("aws_iam_role", resource)
        .and_then(|b| eval(attribute(b, "name"), context));
    format!("arn:aws:iam::{ACCOUNT_ID}:role/{}", text(name))
}

pub(crate) fn check_github_oidc(iac: &Iac, findings: &mut Findings) {
    let defaults = iac.context(&[]);
    findings.expect(
        "variable github_oidc_enabled",
        "default",
        iac.variable("github_oidc_enabled")
            .and_then(|b| eval(attribute(b, "default"), &defaults)),
        false,
    );
    let count = iac
        .resource("aws_iam_role", "github_deploy")
        .and_then(|b| eval(attribute(b, "count"), &defaults));
    findings.expect("aws_iam_role.github_deploy", "count by default", count, 0);

    // With the ids GitHub gives the workflow (github.repository_owner_id,
    // github.repository_id); resources stand in for themselves.
    let enabled = |repository: &str, ids: bool, manage: bool| {
        let mut overrides = vec![
            ("github_oidc_enabled", Value::Bool(true)),
            ("github_repository", Value::from(repository)),
            ("tf_state_bucket", Value::from("octo-tf-state")),
            ("github_deploy_branches", Value::from(vec!["main"])),
            ("github_deploy_manage_infrastructure", Value::Bool(manage)),
        ];
        if ids {
            overrides.push(("github_repository_owner_id", Value::from(OWNER_ID)));
            overrides.push(("github_repository_id", Value::from(REPO_ID)));
        }
        crate::context::context(iac, &overrides)
    };
    let context = enabled(REPOSITORY, true, true);
    check_trust(iac, &context, findings);
    // The immutable form written into github_repository gives the same trust.
    let immutable = format!("octo-org@{OWNER_ID}/status-app@{REPO_ID}");
    check_trust(iac, &enabled(&immutable, false, true), findings);
    check_repository_variable(iac, &context, findings);
    check_workflow(findings);
    check_permissions(iac, &context, findings);
    let (_, all) = crate::provider_apis::deploy_statements(iac, &context);
    crate::deploy_role_rules::check_deploy_role_rules(iac, &context, &all, findings);
    crate::provider_apis::check_provider_apis(
        iac,
        &context,
        &enabled(REPOSITORY, true, false),
        findings,
    );
}

/// `github_repository` takes both forms of the repository and nothing else.
fn check_repository_variable(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
    for (value, want) in [
        (REPOSITORY, true),
        ("octo-org@111/status-app@222", true),
        ("", true),
        ("octo-org/*", false),
        ("octo-org@111/status-app", false),
        ("octo-org@x/status-app@222", false),
        ("repo:octo-org/status-app", false),
    ] {
        let got = iac.accepts(context, "github_repository", Value::from(value));
        findings.require(
            got == Some(want),
            format!(
                "variable github_repository: validation gives {got:?} for {value:?}, want {want}"
            ),
        );
    }
}

/// deploy.yml gives Terraform what the bootstrap applied: the repository
/// ids (both sub forms) and which policies the role has.
fn check_workflow(findings: &mut Findings) {
    let path = crate::eval::iac_dir().join("../.github/workflows/deploy.yml");
    let workflow = std::fs::read_to_string(&path).unwrap_or_default();
    for line in [
        "TF_VAR_github_repository_owner_id: ${{ github.repository_owner_id }}",
        "TF_VAR_github_repository_id: ${{ github.repository_id }}",
        "TF_VAR_github_deploy_manage_infrastructure: ${{ vars.DEPLOY_MANAGE_INFRASTRUCTURE || 'true' }}",
    ] {
        findings.require(
            workflow.lines().any(|l| l.trim() == line),
            format!(".github/workflows/deploy.yml: no `{line}`"),
        );
    }
}

fn check_trust(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
    let place = "data.aws_iam_policy_document.github_deploy_assume";
    let Some(doc) = iac.data("aws_iam_policy_document", "github_deploy_assume") else {
        findings.0.push(format!("{place}: missing"));
        return;
    };
    let assume = iac
        .resource("aws_iam_role", "github_deploy")
        .and_then(|b| attribute(b, "assume_role_policy"))
        .map(source);
    findings.require(
        assume.as_deref() == Some("data.aws_iam_policy_document.github_deploy_assume.json"),
        format!("aws_iam_role.github_deploy: assume_role_policy is {assume:?}"),
    );
    let statements = statements(doc, context);
    findings.require(
        statements.len() == 1
            && statements[0].actions == ["sts:AssumeRoleWithWebIdentity"]
            && !statements[0].deny,
        format!("{place}: want one Allow of sts:AssumeRoleWithWebIdentity, got {statements:?}"),
    );
    let principal = doc
        .blocks()
        .filter(|b| b.identifier() == "statement")
        .flat_map(|b| b.body().blocks())
        .find(|b| b.identifier() == "principals")
        .map(|p| {
            (
                text(eval(attribute(p.body(), "type"), context)),
                attribute(p.body(), "identifiers")
                    .map(|e| source(e).split_whitespace().collect::<String>()),
            )
        });
    findings.require(
        principal
            == Some((
                "Federated".to_owned(),
                Some("[local.github_oidc_provider_arn]".to_owned()),
            )),
        format!("{place}: principal is {principal:?}, want the GitHub OIDC provider"),
    );
    let Some(statement) = statements.first() else {
        return;
    };
    let condition = |key: &str| {
        statement
            .conditions
            .iter()
            .find(|(_, variable, _)| *variable == format!("{OIDC_HOST}:{key}"))
    };
    let aud = condition("aud");
    findings.require(
        aud.is_some_and(|(test, _, values)| {
            test == "StringEquals" && values == &["sts.amazonaws.com"]
        }),
        format!("{place}: aud condition is {aud:?}, want StringEquals sts.amazonaws.com"),
    );
    // The sub claim: exact values for this repository (the variable), its
    // deploy environment and branch; no pattern that another repository,
    // environment or branch could match.
    let sub = condition("sub");
    let immutable = format!("repo:octo-org@{OWNER_ID}/status-app@{REPO_ID}");
    let want = vec![
        format!("repo:{REPOSITORY}:environment:production"),
        format!("repo:{REPOSITORY}:ref:refs/heads/main"),
        format!("{immutable}:environment:production"),
        format!("{immutable}:ref:refs/heads/main"),
    ];
    findings.require(
        sub.is_some_and(|(test, _, values)| test == "StringEquals" && *values == want),
        format!("{place}: sub condition is {sub:?}, want StringEquals {want:?} (both forms, from var.github_repository and its ids, environments, branches)"),
    );
}

fn check_permissions(iac: &Iac, context: &Context<'static>, findings: &mut Findings) {
    let docs = ["app", "read", "network", "platform"];
    let task_roles = [
        role_arn(context, iac, "task"),
        role_arn(context, iac, "toolbox_task"),
        role_arn(context, iac, "task_execution"),
    ];
    // Where iam:PassRole may appear, for which roles, to which service.
    let pass_role = [
        ("app", task_roles.to_vec(), "ecs-tasks.amazonaws.com"),
        (
            "network",
            vec![role_arn(context, iac, "flow_logs")],
            "vpc-flow-logs.amazonaws.com",
        ),
        (
            "platform",
            vec![role_arn(context, iac, "service_connect_tls")],
            "ecs.amazonaws.com",
        ),
    ];
    let deploy_role = get(
        &Some(crate::eval::context_value(context, "role_names")),
        "github_deploy",
    );
    let deploy_arn = format!("arn:aws:iam::{ACCOUNT_ID}:role/{}", text(deploy_role));
    let mut self_protected = false;

    for name in docs {
        let place = format!("data.aws_iam_policy_document.github_deploy_{name}");
        let Some(doc) = iac.data("aws_iam_policy_document", &format!("github_deploy_{name}"))
        else {
            findings.0.push(format!("{place}: missing"));
            continue;
        };
        let statements = statements(doc, context);
        let chars = policy_chars(&statements);
        findings.require(
            chars <= MANAGED_POLICY_MAX_CHARS,
            format!("{place}: about {chars} characters, over IAM's {MANAGED_POLICY_MAX_CHARS} for a managed policy"),
        );
        for s in &statements {
            let at = format!("{place} statement {:?}", s.sid);
            findings.require(
                !s.actions.is_empty() && !s.resources.is_empty(),
                format!("{at}: actions or resources do not evaluate"),
            );
            if s.deny {
                self_protected |= s.resources.contains(&deploy_arn)
                    && ["iam:Put*", "iam:Attach*", "iam:Update*"]
                        .iter()
                        .all(|a| s.actions.iter().any(|x| x == a));
                continue;
            }
            for action in &s.actions {
                findings.require(
                    action != "*" && !action.ends_with(":*") && !action.contains("FullAccess"),
                    format!("{at}: allows {action}"),
                );
            }
            if s.resources.iter().any(|r| r == "*") && s.conditions.is_empty() {
                let unscoped: Vec<_> = s
                    .actions
                    .iter()
                    .filter(|a| {
                        let verb = a.split(':').nth(1).unwrap_or_default();
                        !(verb.starts_with("Describe")
                            || verb.starts_with("List")
                            || verb.starts_with("Get")
                            || STAR_ONLY_WRITES.contains(&a.as_str()))
                    })
                    .collect();
                findings.require(
                    unscoped.is_empty(),
                    format!("{at}: {unscoped:?} on \"*\" without a condition"),
                );
            }
            if s.actions.iter().any(|a| a == "iam:PassRole") {
                let allowed = pass_role.iter().find(|(doc, _, _)| *doc == name);
                let service: Vec<_> = s
                    .conditions
                    .iter()
                    .filter(|(test, variable, _)| {
                        test == "StringEquals" && variable == "iam:PassedToService"
                    })
                    .flat_map(|(_, _, values)| values.clone())
                    .collect();
                findings.require(
                    allowed.is_some_and(|(_, roles, to)| s.resources == *roles && service == [*to]),
                    format!(
                        "{at}: iam:PassRole on {:?} to {service:?}; want {:?}",
                        s.resources,
                        allowed.map(|(_, r, to)| (r, to))
                    ),
                );
            }
        }
    }
    findings.require(
        self_protected,
        format!("github_deploy policies: no Deny of IAM writes on the deploy role {deploy_arn}"),
    );
    for (name, body) in iac.resources("aws_iam_role_policy_attachment") {
        let policy = attribute(body, "policy_arn")
            .map(source)
            .unwrap_or_default();
        findings.require(
            !policy.contains("FullAccess") && !policy.contains("AdministratorAccess"),
            format!("aws_iam_role_policy_attachment.{name}: attaches {policy}"),
        );
    }
}
