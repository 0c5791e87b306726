//! The Terraform functions `IaC/*.tf` uses, for hcl-rs's evaluator (which
//! has none built in), with Terraform's semantics for the argument types the
//! configuration passes them.

use hcl::{
    Map, Value,
    eval::{Context, FuncArgs, FuncDef, ParamType},
};

/// A context with the Terraform functions `IaC/` uses, for the argument
/// types it uses them with.
pub(crate) fn terraform_functions() -> Context<'static> {
    let mut context = Context::new();
    let functions: [(&str, FuncDef); 11] = [
        (
            "tostring",
            FuncDef::builder().param(ParamType::Any).build(tostring),
        ),
        (
            "floor",
            FuncDef::builder().param(ParamType::Number).build(floor),
        ),
        (
            "range",
            FuncDef::builder()
                .params([ParamType::Number, ParamType::Number, ParamType::Number])
                .build(range),
        ),
        (
            "contains",
            FuncDef::builder()
                .params([ParamType::array_of(ParamType::Any), ParamType::Any])
                .build(contains),
        ),
        (
            "lookup",
            FuncDef::builder()
                .params([
                    ParamType::object_of(ParamType::Any),
                    ParamType::String,
                    ParamType::Any,
                ])
                .build(lookup),
        ),
        (
            "alltrue",
            FuncDef::builder()
                .param(ParamType::array_of(ParamType::Bool))
                .build(alltrue),
        ),
        (
            "keys",
            FuncDef::builder()
                .param(ParamType::object_of(ParamType::Any))
                .build(keys),
        ),
        (
            "concat",
            FuncDef::builder()
                .variadic_param(ParamType::array_of(ParamType::Any))
                .build(concat),
        ),
        (
            "flatten",
            FuncDef::builder()
                .param(ParamType::array_of(ParamType::Any))
                .build(flatten),
        ),
        (
            "split",
            FuncDef::builder()
                .params([ParamType::String, ParamType::String])
                .build(split),
        ),
        (
            "merge",
            FuncDef::builder()
                .variadic_param(ParamType::object_of(ParamType::Any))
                .build(merge),
        ),
    ];
    for (name, function) in functions {
        context.declare_func(name, function);
    }
    context
}

/// Terraform's `tostring` for the scalars it accepts.
fn tostring(args: FuncArgs) -> Result<Value, String> {
    match args.into_values().pop() {
        Some(Value::String(s)) => Ok(Value::String(s)),
        Some(Value::Number(n)) => Ok(Value::String(n.to_string())),
        Some(Value::Bool(b)) => Ok(Value::String(b.to_string())),
        other => Err(format!("tostring of {other:?}")),
    }
}

fn number(value: Option<&Value>) -> Result<f64, String> {
    match value {
        Some(Value::Number(n)) => n.as_f64().ok_or_else(|| format!("{n} is not finite")),
        other => Err(format!("{other:?} is not a number")),
    }
}

/// A whole number as an HCL integer (so that `4096 == 4096.0` compares
/// equal to the integers written in .tf files).
fn whole(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

fn floor(args: FuncArgs) -> Result<Value, String> {
    Ok(whole(number(args.into_values().first())?.floor()))
}

/// `range(start, limit, step)`: start, start + step, ... while < limit.
fn range(args: FuncArgs) -> Result<Value, String> {
    let values = args.into_values();
    let (start, limit, step) = (
        number(values.first())?,
        number(values.get(1))?,
        number(values.get(2))?,
    );
    if step <= 0.0 {
        return Err("range: only a positive step is supported here".into());
    }
    let count = ((limit - start) / step).ceil().max(0.0) as usize;
    if count > 1024 {
        return Err(format!(
            "range: {count} elements is more than Terraform allows"
        ));
    }
    Ok(Value::Array(
        (0..count).map(|i| whole(start + step * i as f64)).collect(),
    ))
}

fn contains(args: FuncArgs) -> Result<Value, String> {
    let values = args.into_values();
    match (values.first(), values.get(1)) {
        (Some(Value::Array(list)), Some(wanted)) => Ok(Value::Bool(list.contains(wanted))),
        other => Err(format!("contains{other:?}")),
    }
}

fn lookup(args: FuncArgs) -> Result<Value, String> {
    let mut values = args.into_values().into_iter();
    match (values.next(), values.next(), values.next()) {
        (Some(Value::Object(map)), Some(Value::String(key)), Some(default)) => {
            Ok(map.get(&key).cloned().unwrap_or(default))
        }
        other => Err(format!("lookup{other:?}")),
    }
}

fn alltrue(args: FuncArgs) -> Result<Value, String> {
    match args.into_values().pop() {
        Some(Value::Array(list)) => Ok(Value::Bool(list.iter().all(|v| *v == Value::Bool(true)))),
        other => Err(format!("alltrue of {other:?}")),
    }
}

/// Object keys, sorted (hcl-rs objects are ordered by insertion; Terraform
/// sorts them).
fn keys(args: FuncArgs) -> Result<Value, String> {
    match args.into_values().pop() {
        Some(Value::Object(map)) => {
            let mut keys: Vec<_> = map.into_iter().map(|(k, _)| k).collect();
            keys.sort();
            Ok(Value::from(keys))
        }
        other => Err(format!("keys of {other:?}")),
    }
}

fn concat(args: FuncArgs) -> Result<Value, String> {
    let mut all = Vec::new();
    for value in args.into_values() {
        match value {
            Value::Array(list) => all.extend(list),
            other => return Err(format!("concat of {other:?}")),
        }
    }
    Ok(Value::Array(all))
}

/// Terraform's `flatten`: nested lists become one list, at any depth.
fn flatten(args: FuncArgs) -> Result<Value, String> {
    fn into(value: Value, out: &mut Vec<Value>) {
        match value {
            Value::Array(list) => list.into_iter().for_each(|v| into(v, out)),
            other => out.push(other),
        }
    }
    let mut out = Vec::new();
    args.into_values()
        .into_iter()
        .for_each(|v| into(v, &mut out));
    Ok(Value::Array(out))
}

fn merge(args: FuncArgs) -> Result<Value, String> {
    let mut merged = Map::new();
    for value in args.into_values() {
        match value {
            Value::Object(map) => merged.extend(map),
            other => return Err(format!("merge of {other:?}")),
        }
    }
    Ok(Value::Object(merged))
}

/// Terraform's `split(separator, string)`.
fn split(args: FuncArgs) -> Result<Value, String> {
    let values = args.into_values();
    match (values.first(), values.get(1)) {
        (Some(Value::String(separator)), Some(Value::String(text))) => Ok(Value::from(
            text.split(separator.as_str())
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )),
        other => Err(format!("split{other:?}")),
    }
}
