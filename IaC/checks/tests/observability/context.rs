//! The evaluation context of the observability test: the contract test's
//! (`contract/eval.rs`, `contract/functions.rs`), plus the Terraform
//! functions observability*.tf and its variables use, and stand-ins for
//! the attributes of resources and data sources, which only exist after
//! apply.

use hcl::{
    Map, Value,
    eval::{Context, Evaluate, FuncArgs, FuncDef, ParamType},
};

use crate::{
    eval::{Iac, attribute},
    functions::terraform_functions,
};

/// A context for `iac` with `overrides` of variables: Terraform's functions
/// as far as these files use them, and a stand-in object for every resource
/// and data source (its attributes are strings naming themselves, e.g.
/// `aws_lb_target_group.rest[service-a].arn_suffix`).
pub(crate) fn context(iac: &Iac, overrides: &[(&str, Value)]) -> Context<'static> {
    let mut base = terraform_functions();
    add_functions(&mut base);
    // Keys of for_each resources, from the locals that read no resources
    // (the for_each expressions here depend on variables and locals only).
    let first = iac.context(overrides);
    let mut resources = Map::new();
    let mut data = Map::new();
    for block in &iac.blocks {
        let (kind, name) = match block.labels() {
            [kind, name] => (kind.as_str(), name.as_str()),
            _ => continue,
        };
        let target = match block.identifier() {
            "resource" => &mut resources,
            "data" => &mut data,
            _ => continue,
        };
        let instance = |key: &str| stand_in(kind, name, key);
        let value = if let Some(for_each) = attribute(block.body(), "for_each") {
            match for_each.evaluate(&first) {
                Ok(Value::Object(keys)) => Value::Object(
                    keys.keys()
                        .map(|key| (key.clone(), instance(&format!("[{key}]"))))
                        .collect(),
                ),
                _ => Value::Object(Map::new()),
            }
        } else if attribute(block.body(), "count").is_some() {
            Value::Array(vec![instance("[0]")])
        } else {
            instance("")
        };
        let by_name = target
            .entry(kind.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(map) = by_name {
            map.insert(name.to_owned(), value);
        }
    }
    for (kind, value) in resources {
        base.declare_var(kind, value);
    }
    base.declare_var("data", Value::Object(data));
    iac.context_on(&base, overrides)
}

fn stand_in(kind: &str, name: &str, key: &str) -> Value {
    const ATTRIBUTES: &[&str] = &[
        "arn",
        "arn_suffix",
        "name",
        "id",
        "json",
        "dashboard_name",
        "dns_name",
        "repository_url",
        "account_id",
        "partition",
    ];
    Value::Object(
        ATTRIBUTES
            .iter()
            .map(|attr| {
                (
                    (*attr).to_owned(),
                    Value::from(format!("{kind}.{name}{key}.{attr}")),
                )
            })
            .collect(),
    )
}

/// Terraform functions used by observability*.tf and its variables beyond
/// those of `contract/functions.rs`. A
/// Terraform error (no regex match, a non-number) is a null here, which is
/// what `can` looks at.
fn add_functions(context: &mut Context<'static>) {
    let any = || FuncDef::builder().param(ParamType::Any);
    context.declare_func(
        "can",
        any().build(|args| Ok(Value::Bool(!first(args).is_null()))),
    );
    context.declare_func(
        "regex",
        FuncDef::builder()
            .params([ParamType::String, ParamType::String])
            .build(|args| {
                let values = args.into_values();
                let (pattern, text) = (text(values.first())?, text(values.get(1))?);
                let regex = regex::Regex::new(&pattern).map_err(|e| e.to_string())?;
                Ok(regex
                    .find(&text)
                    .map_or(Value::Null, |m| Value::from(m.as_str())))
            }),
    );
    context.declare_func(
        "startswith",
        FuncDef::builder()
            .params([ParamType::String, ParamType::String])
            .build(|args| {
                let values = args.into_values();
                Ok(Value::Bool(
                    text(values.first())?.starts_with(&text(values.get(1))?),
                ))
            }),
    );
    context.declare_func(
        "join",
        FuncDef::builder()
            .params([ParamType::String, ParamType::array_of(ParamType::String)])
            .build(|args| {
                let values = args.into_values();
                let separator = text(values.first())?;
                let parts: Vec<String> = list(values.get(1))?
                    .iter()
                    .map(|v| text(Some(v)))
                    .collect::<Result<_, _>>()?;
                Ok(Value::from(parts.join(&separator)))
            }),
    );
    context.declare_func(
        "length",
        any().build(|args| match first(args) {
            Value::Array(items) => Ok(Value::from(items.len())),
            Value::Object(map) => Ok(Value::from(map.len())),
            Value::String(s) => Ok(Value::from(s.chars().count())),
            other => Err(format!("length of {other:?}")),
        }),
    );
    context.declare_func(
        "ceil",
        FuncDef::builder()
            .param(ParamType::Number)
            .build(|args| match first(args) {
                Value::Number(n) => n
                    .as_f64()
                    .map(|x| Value::from(x.ceil() as i64))
                    .ok_or_else(|| format!("ceil of {n}")),
                other => Err(format!("ceil of {other:?}")),
            }),
    );
}

fn first(args: FuncArgs) -> Value {
    args.into_values().into_iter().next().unwrap_or(Value::Null)
}

fn text(value: Option<&Value>) -> Result<String, String> {
    match value {
        Some(Value::String(s)) => Ok(s.clone()),
        other => Err(format!("{other:?} is not a string")),
    }
}

fn list(value: Option<&Value>) -> Result<Vec<Value>, String> {
    match value {
        Some(Value::Array(items)) => Ok(items.clone()),
        other => Err(format!("{other:?} is not a list")),
    }
}
