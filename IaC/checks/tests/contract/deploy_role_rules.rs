//! Rules on the GitHub deploy role's permissions that close the escalation
//! and takeover paths of issue 21:
//!
//! - point 7: roles are created, and their policies written or attached,
//!   only with the stack's permissions boundary on them
//!   (`iam:PermissionsBoundary`); removing a boundary and changing the
//!   boundary policy are denied; every stack role carries the boundary;
//! - point 8: no tag action on a resource outside the stack's names: each
//!   tag statement names the stack in every resource ARN, or is limited to
//!   tagging during a create (`ec2:CreateAction`, `ecs:CreateAction`) or to
//!   resources already tagged as the stack's (`aws:ResourceTag/Project`);
//! - point 5: no KMS write depends on tags (KMS authorizes on tags up to
//!   five minutes after they are written) or applies to any key: KMS writes
//!   name exact keys.

use hcl::{Value, eval::Context};

use crate::eval::{ACCOUNT_ID, Findings, Iac, attribute, context_value, eval, source};
use crate::iam_policy::{Statement, allows, covers};

/// Actions that give a role permissions.
const ROLE_PERMISSION_WRITES: [&str; 6] = [
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:PutRolePermissionsBoundary",
];

fn verb(action: &str) -> &str {
    action.split(':').nth(1).unwrap_or_default()
}

fn is_read(action: &str) -> bool {
    let v = verb(action);
    v.starts_with("Describe") || v.starts_with("Get") || v.starts_with("List")
}

fn has_condition(statement: &Statement, variable: &str) -> bool {
    statement.conditions.iter().any(|(_, v, _)| v == variable)
}

pub(crate) fn check_deploy_role_rules(
    iac: &Iac,
    context: &Context<'static>,
    statements: &[Statement],
    findings: &mut Findings,
) {
    let text = |local: &str| context_value(context, local).as_str().map(str::to_owned);
    let name = text("name").unwrap_or_default();
    let boundary = text("role_boundary_arn").unwrap_or_default();
    let sample_role = format!("arn:aws:iam::{ACCOUNT_ID}:role/{name}-task");

    // Point 7: the boundary condition on every statement that gives roles
    // permissions.
    for s in statements.iter().filter(|s| !s.deny) {
        let writes: Vec<_> = ROLE_PERMISSION_WRITES
            .iter()
            .filter(|a| s.actions.iter().any(|x| covers_action(x, a)))
            .collect();
        if writes.is_empty() {
            continue;
        }
        let bounded = s.conditions.iter().any(|(test, variable, values)| {
            test == "StringEquals"
                && variable == "iam:PermissionsBoundary"
                && *values == [boundary.clone()]
        });
        findings.require(
            bounded,
            format!("deploy role statement {:?}: {writes:?} without the condition iam:PermissionsBoundary = {boundary}", s.sid),
        );
    }
    findings.require(
        allows(statements, "iam:PutRolePolicy", &sample_role, |_| true)
            && !allows(
                statements,
                "iam:DeleteRolePermissionsBoundary",
                &sample_role,
                |_| true,
            )
            && statements
                .iter()
                .any(|s| s.deny && covers(s, "iam:DeleteRolePermissionsBoundary", &sample_role)),
        "deploy role: removing a role's permissions boundary is not denied".to_owned(),
    );
    for action in [
        "iam:CreatePolicyVersion",
        "iam:SetDefaultPolicyVersion",
        "iam:DeletePolicy",
    ] {
        findings.require(
            !boundary.is_empty() && !allows(statements, action, &boundary, |_| true),
            format!("deploy role: {action} on the boundary {boundary:?} is allowed"),
        );
    }
    let boundary_name = iac
        .resource("aws_iam_policy", "role_boundary")
        .and_then(|b| eval(attribute(b, "name"), context));
    findings.require(
        boundary_name.as_ref().and_then(Value::as_str).is_some_and(|n| boundary.ends_with(&format!(":policy/{n}"))),
        format!("aws_iam_policy.role_boundary: name {boundary_name:?} is not the boundary the deploy role requires ({boundary})"),
    );
    for (role, body) in iac.resources("aws_iam_role") {
        if role == "github_deploy" {
            continue;
        }
        let set = attribute(body, "permissions_boundary").map(source);
        findings.require(
            set.as_deref() == Some("aws_iam_policy.role_boundary.arn"),
            format!("aws_iam_role.{role}: permissions_boundary is {set:?}, want aws_iam_policy.role_boundary.arn"),
        );
    }

    for s in statements.iter().filter(|s| !s.deny) {
        // Point 8: tagging only within the stack.
        let tagging: Vec<_> = s
            .actions
            .iter()
            .filter(|a| verb(a).contains("Tag") && !is_read(a))
            .collect();
        let scoped = s
            .resources
            .iter()
            .all(|r| !name.is_empty() && r.contains(&name))
            || has_condition(s, "ec2:CreateAction")
            || has_condition(s, "ecs:CreateAction")
            || has_condition(s, "aws:ResourceTag/Project");
        findings.require(
            tagging.is_empty() || scoped,
            format!("deploy role statement {:?}: {tagging:?} on {:?}, outside the stack's names (a tag condition on the request alone lets it tag any resource, then change it)", s.sid, s.resources),
        );

        // Point 5: KMS writes on exact keys, never by tag.
        let kms_writes: Vec<_> = s
            .actions
            .iter()
            .filter(|a| a.starts_with("kms:") && !is_read(a))
            .collect();
        let exact = s.resources.iter().all(|r| !r.contains('*'))
            && !s.conditions.iter().any(|(_, v, _)| {
                v.starts_with("aws:ResourceTag/") || v.starts_with("aws:RequestTag/")
            });
        findings.require(
            kms_writes.is_empty() || exact,
            format!("deploy role statement {:?}: {kms_writes:?} on {:?} with {:?}: KMS writes must name exact keys, not depend on tags", s.sid, s.resources, s.conditions),
        );
    }
}

/// Whether the action pattern `pattern` (IAM wildcards) names `action`.
fn covers_action(pattern: &str, action: &str) -> bool {
    crate::iam_policy::glob(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}
