//! IAM policy documents of `IaC/` as the contract test reads them: the
//! evaluated `statement` blocks of an `aws_iam_policy_document`, and whether
//! a set of statements allows an action on a resource (IAM's wildcard
//! matching; Deny wins).

use hcl::{Body, Value, eval::Context};

use crate::eval::{attribute, eval};

/// One evaluated `statement` block.
#[derive(Clone, Debug, Default)]
pub(crate) struct Statement {
    pub(crate) sid: String,
    pub(crate) deny: bool,
    pub(crate) actions: Vec<String>,
    pub(crate) resources: Vec<String>,
    /// (test, variable, values)
    pub(crate) conditions: Vec<(String, String, Vec<String>)>,
}

pub(crate) fn strings(value: Option<Value>) -> Vec<String> {
    match value {
        Some(Value::Array(list)) => list
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn text(value: Option<Value>) -> String {
    value
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(crate) fn statements(doc: &Body, context: &Context<'static>) -> Vec<Statement> {
    doc.blocks()
        .filter(|b| b.identifier() == "statement")
        .map(|b| {
            let body = b.body();
            Statement {
                sid: text(eval(attribute(body, "sid"), context)),
                deny: text(eval(attribute(body, "effect"), context)) == "Deny",
                actions: strings(eval(attribute(body, "actions"), context)),
                resources: strings(eval(attribute(body, "resources"), context)),
                conditions: body
                    .blocks()
                    .filter(|c| c.identifier() == "condition")
                    .map(|c| {
                        let at = |key| eval(attribute(c.body(), key), context);
                        (
                            text(at("test")),
                            text(at("variable")),
                            strings(at("values")),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

/// IAM's wildcard match (case-insensitive for actions): `*` any run of
/// characters, `?` one.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some((b'*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some((b'?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

/// Whether `statement` names `action` and `resource`.
pub(crate) fn covers(statement: &Statement, action: &str, resource: &str) -> bool {
    let action = action.to_ascii_lowercase();
    statement
        .actions
        .iter()
        .any(|a| glob(&a.to_ascii_lowercase(), &action))
        && statement.resources.iter().any(|r| glob(r, resource))
}

/// Whether the statements allow `action` on `resource`: an Allow that
/// covers it and `counts` (the caller's view of its conditions), and no
/// unconditional Deny that covers it.
pub(crate) fn allows(
    statements: &[Statement],
    action: &str,
    resource: &str,
    counts: impl Fn(&Statement) -> bool,
) -> bool {
    let denied = statements
        .iter()
        .any(|s| s.deny && s.conditions.is_empty() && covers(s, action, resource));
    !denied
        && statements
            .iter()
            .any(|s| !s.deny && covers(s, action, resource) && counts(s))
}
