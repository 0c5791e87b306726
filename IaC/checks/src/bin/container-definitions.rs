//! Prints the app's ECS container definitions as JSON, evaluated from
//! `IaC/*.tf` with the contract test's evaluator (variable defaults, locals,
//! `each` bound to each service), so `scripts/image.sh test` runs the image
//! with what the task definitions say instead of a copy of it.
//!
//!   cargo run -q -p iac-checks --bin container-definitions
//!
//! Output: `{"service-a": {<container definition>}, "service-b": {...}}`.
//! A field that needs a provider's answer (the image's ECR URL, the log
//! group's name) cannot be evaluated offline: it is left out and named in
//! `"unevaluated"` of that service, so a reader sees what is missing.
//! Exits 1 with one line on stderr if a task definition has no container.

// The contract test's evaluator, shared rather than copied. It is test code
// (it panics on a .tf file that does not parse, which the contract test
// already fails on) and the bin uses part of it.
#[allow(dead_code, clippy::expect_used, clippy::panic, clippy::unwrap_used)]
#[path = "../../tests/contract/eval.rs"]
mod eval;
#[allow(dead_code)]
#[path = "../../tests/contract/functions.rs"]
mod functions;

use std::process::ExitCode;

use eval::{Iac, container, context_value, real_files, with_each};
use hcl::{Value, eval::Evaluate};
use serde_json::{Map, json};

fn main() -> ExitCode {
    let iac = Iac::parse(&real_files());
    let context = iac.context(&[]);
    let Value::Object(services) = context_value(&context, "services") else {
        eprintln!("container-definitions: local.services does not evaluate to an object");
        return ExitCode::FAILURE;
    };
    let mut out = Map::new();
    for name in services.keys() {
        let Some(definition) = container(&iac, "this") else {
            eprintln!("container-definitions: aws_ecs_task_definition.this has no container");
            return ExitCode::FAILURE;
        };
        let each = with_each(&context, name);
        let mut fields = Map::new();
        let mut unevaluated = Vec::new();
        for (key, expression) in definition.iter() {
            let key = key.to_string();
            match expression.evaluate(&each) {
                Ok(value) => {
                    fields.insert(key, json!(value));
                }
                Err(_) => unevaluated.push(key),
            }
        }
        fields.insert("unevaluated".to_owned(), json!(unevaluated));
        out.insert(name.clone(), serde_json::Value::Object(fields));
    }
    println!("{}", serde_json::Value::Object(out));
    ExitCode::SUCCESS
}
