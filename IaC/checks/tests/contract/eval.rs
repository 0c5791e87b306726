//! Reads `IaC/*.tf` for the contract test: parses the files with hcl-rs and
//! evaluates expressions (variable defaults, locals, `each`) with the
//! Terraform functions the configuration uses (`functions.rs`), so checks
//! compare values, not text.

use std::{fs, path::Path};

use hcl::{
    Block, Body, Expression, Map, Object, ObjectKey, Value,
    eval::{Context, Evaluate},
};

use crate::functions::terraform_functions;

/// Every top-level block of a set of .tf files.
/// The account the data source `aws_caller_identity` stands for in tests.
pub(crate) const ACCOUNT_ID: &str = "123456789012";

pub(crate) struct Iac {
    pub(crate) blocks: Vec<Block>,
    /// Every local, and whether it reads resources or data sources (those
    /// evaluate only on stand-ins for them, see [`Iac::context_on`]).
    locals: Vec<(String, Expression, bool)>,
}

impl Iac {
    pub(crate) fn parse(files: &[(String, String)]) -> Self {
        let blocks = files
            .iter()
            .flat_map(|(name, text)| {
                let body: Body = hcl::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
                body.into_blocks()
            })
            .collect::<Vec<Block>>();
        let locals = blocks
            .iter()
            .filter(|b| b.identifier() == "locals")
            .flat_map(|b| b.body().attributes())
            .map(|a| {
                let text = source(a.expr());
                let reads_resources = ["data.", "aws_", "tls_"]
                    .iter()
                    .any(|root| refers_to(&text, root));
                (a.key().to_owned(), a.expr().clone(), reads_resources)
            })
            .collect();
        Self { blocks, locals }
    }

    /// `resource "kind" "name"` bodies.
    pub(crate) fn resources<'a>(
        &'a self,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Body)> {
        self.labelled("resource", kind)
    }

    pub(crate) fn resource<'a>(&'a self, kind: &'a str, name: &str) -> Option<&'a Body> {
        self.resources(kind)
            .find(|(n, _)| *n == name)
            .map(|(_, body)| body)
    }

    /// `data "kind" "name"` body.
    pub(crate) fn data<'a>(&'a self, kind: &'a str, name: &str) -> Option<&'a Body> {
        self.labelled("data", kind)
            .find(|(n, _)| *n == name)
            .map(|(_, body)| body)
    }

    /// `variable "name"` body.
    pub(crate) fn variable(&self, name: &str) -> Option<&Body> {
        self.blocks
            .iter()
            .find(|b| {
                b.identifier() == "variable"
                    && b.labels().first().is_some_and(|l| l.as_str() == name)
            })
            .map(|b| b.body())
    }

    /// Whether every `validation` of `variable "name"` accepts `value`
    /// (None: no validation, or one that does not evaluate to a bool).
    /// A validation refers only to its own variable, so `context`'s locals
    /// are not evaluated again.
    pub(crate) fn accepts(
        &self,
        context: &Context<'static>,
        name: &str,
        value: Value,
    ) -> Option<bool> {
        let conditions: Vec<_> = self
            .variable(name)?
            .blocks()
            .filter(|b| b.identifier() == "validation")
            .filter_map(|b| attribute(b.body(), "condition"))
            .collect();
        if conditions.is_empty() {
            return None;
        }
        all_true(&conditions, &with_vars(context, &[(name, value)]))
    }

    fn labelled<'a>(
        &'a self,
        identifier: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Body)> {
        self.blocks
            .iter()
            .filter_map(move |block| match block.labels() {
                [k, name] if block.identifier() == identifier && k.as_str() == kind => {
                    Some((name.as_str(), block.body()))
                }
                _ => None,
            })
    }

    /// A context with `var` (variable defaults, with `overrides`) and every
    /// local that can be evaluated without provider data.
    pub(crate) fn context(&self, overrides: &[(&str, Value)]) -> Context<'static> {
        self.evaluate(terraform_functions(), overrides, false)
    }

    /// [`Iac::context`] on `base`, which declares more functions and
    /// stand-ins for resources and data sources: every local is evaluated.
    #[allow(dead_code)] // for tests/observability.rs
    pub(crate) fn context_on(
        &self,
        base: &Context<'static>,
        overrides: &[(&str, Value)],
    ) -> Context<'static> {
        self.evaluate(base.clone(), overrides, true)
    }

    fn evaluate(
        &self,
        mut context: Context<'static>,
        overrides: &[(&str, Value)],
        with_resources: bool,
    ) -> Context<'static> {
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
        // What the data sources would say: the partition and an account.
        let mut locals = Map::new();
        locals.insert("partition".to_owned(), Value::from("aws"));
        locals.insert("account_id".to_owned(), Value::from(ACCOUNT_ID));
        context.declare_var("var", Value::Object(vars));
        // Locals refer to each other: evaluate until nothing more resolves.
        loop {
            let before = locals.len();
            context.declare_var("local", Value::Object(locals.clone()));
            for (key, expr, reads_resources) in &self.locals {
                if locals.contains_key(key) || (*reads_resources && !with_resources) {
                    continue;
                }
                if let Ok(value) = expr.evaluate(&context) {
                    locals.insert(key.clone(), value);
                }
            }
            if locals.len() == before {
                context.declare_var("local", Value::Object(locals));
                return context;
            }
        }
    }
}

/// Whether `text` has a reference starting with `root` (not inside a longer
/// name such as `var.service_connect_tls_enabled`).
fn refers_to(text: &str, root: &str) -> bool {
    text.match_indices(root).any(|(at, _)| {
        !text[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    })
}

pub(crate) fn attribute<'a>(body: &'a Body, key: &str) -> Option<&'a Expression> {
    body.attributes().find(|a| a.key() == key).map(|a| a.expr())
}

/// The first nested block on `path`; `dynamic "x"` counts as block `x`
/// (its `content`).
pub(crate) fn block<'a>(body: &'a Body, path: &[&str]) -> Option<&'a Body> {
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

/// The `condition`s of the `lifecycle { precondition { ... } }` blocks.
pub(crate) fn preconditions(body: &Body) -> Vec<&Expression> {
    body.blocks()
        .filter(|b| b.identifier() == "lifecycle")
        .flat_map(|b| b.body().blocks())
        .filter(|b| b.identifier() == "precondition")
        .filter_map(|b| attribute(b.body(), "condition"))
        .collect()
}

/// Whether all `conditions` evaluate to true (None if one is not a bool).
pub(crate) fn all_true(conditions: &[&Expression], context: &Context<'static>) -> Option<bool> {
    conditions.iter().try_fold(true, |all, condition| {
        match condition.evaluate(context).ok()? {
            Value::Bool(b) => Some(all && b),
            _ => None,
        }
    })
}

/// The first container of `aws_ecs_task_definition.NAME`, written as
/// `container_definitions = jsonencode([{ ... }, ...])` or
/// `jsonencode(concat([{ ... }, ...], ...))`.
pub(crate) fn container<'a>(iac: &'a Iac, name: &str) -> Option<&'a Object<ObjectKey, Expression>> {
    let definitions = iac
        .resource("aws_ecs_task_definition", name)
        .and_then(|body| attribute(body, "container_definitions"))?;
    let call = |e: &'a Expression, function: &str| match e {
        Expression::FuncCall(call) if call.name.name.as_str() == function => call.args.first(),
        _ => None,
    };
    let list = call(definitions, "jsonencode")?;
    let list = call(list, "concat").unwrap_or(list);
    match list {
        Expression::Array(containers) => match containers.first()? {
            Expression::Object(object) => Some(object),
            _ => None,
        },
        _ => None,
    }
}

/// One field of a [`container`], unevaluated.
pub(crate) fn field<'a>(
    container: Option<&'a Object<ObjectKey, Expression>>,
    key: &str,
) -> Option<&'a Expression> {
    container?
        .iter()
        .find(|(k, _)| matches!(k, ObjectKey::Identifier(id) if id.as_str() == key))
        .map(|(_, v)| v)
}

/// The `environment` of a [`container`], evaluated: (name, value) pairs.
pub(crate) fn environment(
    container: Option<&Object<ObjectKey, Expression>>,
    context: &Context<'static>,
) -> Vec<(String, Value)> {
    match eval(field(container, "environment"), context) {
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
    }
}

pub(crate) fn source(expression: &Expression) -> String {
    hcl::format::to_string(expression).unwrap_or_default()
}

/// `context` with `each` bound to one entry of `local.services`.
/// `context` with some variables replaced, without evaluating the locals
/// again: only for variables that no local depends on.
pub(crate) fn with_vars(
    context: &Context<'static>,
    overrides: &[(&str, Value)],
) -> Context<'static> {
    let var = Expression::from(hcl::Variable::unchecked("var"));
    let mut vars = match var.evaluate(context) {
        Ok(Value::Object(vars)) => vars,
        _ => Map::new(),
    };
    for (name, value) in overrides {
        vars.insert((*name).to_owned(), value.clone());
    }
    let mut context = context.clone();
    context.declare_var("var", Value::Object(vars));
    context
}

pub(crate) fn with_each(context: &Context<'static>, service: &str) -> Context<'static> {
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

pub(crate) fn context_value(context: &Context<'static>, local: &str) -> Value {
    let expr: Expression = Expression::Traversal(Box::new(
        hcl::Traversal::builder(hcl::Variable::unchecked("local"))
            .attr(local)
            .build(),
    ));
    expr.evaluate(context).unwrap_or(Value::Null)
}

/// Collects what does not match, with where and what was expected.
#[derive(Default)]
pub(crate) struct Findings(pub(crate) Vec<String>);

impl Findings {
    pub(crate) fn expect(
        &mut self,
        place: &str,
        what: &str,
        got: Option<Value>,
        want: impl Into<Value>,
    ) {
        let want = want.into();
        if got.as_ref() != Some(&want) {
            self.0.push(format!(
                "{place}: {what} is {got:?}, the code expects {want:?}"
            ));
        }
    }

    pub(crate) fn require(&mut self, condition: bool, message: String) {
        if !condition {
            self.0.push(message);
        }
    }
}

pub(crate) fn eval(expression: Option<&Expression>, context: &Context<'static>) -> Option<Value> {
    expression?.evaluate(context).ok()
}

pub(crate) fn get(value: &Option<Value>, key: &str) -> Option<Value> {
    match value {
        Some(Value::Object(map)) => map.get(key).cloned(),
        _ => None,
    }
}

pub(crate) fn attribute_of_locals<'a>(iac: &'a Iac, key: &str) -> Option<&'a Expression> {
    iac.blocks
        .iter()
        .filter(|b| b.identifier() == "locals")
        .find_map(|b| attribute(b.body(), key))
}

pub(crate) fn iac_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn real_files() -> Vec<(String, String)> {
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
