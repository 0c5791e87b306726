//! The REST mapping declared by the contract, read from the descriptor set:
//! `google.api.http` options on our methods (AIP-127) and the `http.rules` of
//! google.api.Service files (for vendored services whose .proto we must not
//! edit, like grpc.health.v1). Only what the gateway serves is accepted:
//! one binding per method, GET/PUT/POST/DELETE/PATCH, no custom verbs.

use std::{error::Error, fs, path::Path};

use prost_reflect::{DescriptorPool, DynamicMessage, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// One REST route of the contract.
#[derive(Debug, Clone)]
pub(crate) struct RestRoute {
    /// `package.Service.Method`.
    pub(crate) selector: String,
    pub(crate) method: &'static str,
    /// Relative to the service's prefix, e.g. `/status`.
    pub(crate) path: String,
    /// The request field taken from the body; empty: none.
    pub(crate) body: String,
    /// The response field sent as the body; empty: the whole message.
    pub(crate) response_body: String,
    /// The file that declares it.
    pub(crate) source: String,
}

const METHODS: [(&str, &str); 5] = [
    ("get", "GET"),
    ("put", "PUT"),
    ("post", "POST"),
    ("delete", "DELETE"),
    ("patch", "PATCH"),
];

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Every `google.api.http` option on the methods of `package`'s services.
pub(crate) fn from_annotations(pool: &DescriptorPool, package: &str) -> Result<Vec<RestRoute>> {
    let extension = pool
        .get_extension_by_name("google.api.http")
        .ok_or("google/api/annotations.proto is not in the descriptor set")?;
    let mut routes = Vec::new();
    for service in pool.services().filter(|s| s.package_name() == package) {
        for method in service.methods() {
            let options = method.options();
            if !options.has_extension(&extension) {
                continue;
            }
            let value = options.get_extension(&extension);
            let rule = value
                .as_message()
                .ok_or("google.api.http is not a message")?;
            let selector = method.full_name().to_owned();
            let text = |field: &str| -> String {
                rule.get_field_by_name(field)
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            };
            refuse_unsupported(rule, &selector)?;
            let (verb, path) = METHODS
                .iter()
                .find_map(|(field, verb)| {
                    rule.has_field_by_name(field).then(|| (*verb, text(field)))
                })
                .ok_or_else(|| format!("{selector}: google.api.http has no method"))?;
            routes.push(RestRoute {
                selector,
                method: verb,
                path,
                body: text("body"),
                response_body: text("response_body"),
                source: method.parent_file().name().to_owned(),
            });
        }
    }
    Ok(routes)
}

fn refuse_unsupported(rule: &DynamicMessage, selector: &str) -> Result<()> {
    if rule.has_field_by_name("custom") {
        return Err(format!("{selector}: custom HTTP verbs are not served").into());
    }
    if let Some(bindings) = rule.get_field_by_name("additional_bindings")
        && matches!(&*bindings, Value::List(list) if !list.is_empty())
    {
        return Err(format!("{selector}: additional_bindings are not served").into());
    }
    Ok(())
}

/// The `http.rules` of every file in `paths` (relative to `root`), in order.
pub(crate) fn from_service_config_files(root: &str, paths: &[&str]) -> Result<Vec<RestRoute>> {
    let mut routes = Vec::new();
    for path in paths {
        routes.extend(from_service_config(Path::new(root), path)?);
    }
    Ok(routes)
}

/// The `http.rules` of a google.api.Service YAML file (grpc-gateway's
/// `grpc_api_configuration`).
fn from_service_config(root: &Path, path: &str) -> Result<Vec<RestRoute>> {
    let text = fs::read_to_string(root.join(path))?;
    let source = path.to_owned();
    let docs = YamlLoader::load_from_str(&text)?;
    let doc = docs.first().ok_or_else(|| format!("{source}: empty"))?;
    if doc["type"].as_str() != Some("google.api.Service") {
        return Err(format!("{source}: `type` must be google.api.Service").into());
    }
    let rules = doc["http"]["rules"]
        .as_vec()
        .ok_or_else(|| format!("{source}: no http.rules list"))?;
    rules
        .iter()
        .map(|rule| {
            let text = |key: &str| rule[key].as_str().unwrap_or_default().to_owned();
            let selector = text("selector");
            if selector.is_empty() {
                return Err(format!("{source}: a rule has no selector").into());
            }
            if !matches!(rule["additional_bindings"], Yaml::BadValue)
                || !matches!(rule["custom"], Yaml::BadValue)
            {
                return Err(
                    format!("{source}: {selector}: only one plain binding is served").into(),
                );
            }
            let (verb, path) = METHODS
                .iter()
                .find_map(|(key, verb)| rule[*key].as_str().map(|p| (*verb, p.to_owned())))
                .ok_or_else(|| format!("{source}: {selector}: no method"))?;
            Ok(RestRoute {
                selector,
                method: verb,
                path,
                body: text("body"),
                response_body: text("response_body"),
                source: source.clone(),
            })
        })
        .collect()
}

/// The routes as Rust source: a `ROUTES` table for `status_api::rest`.
pub(crate) fn to_rust(routes: &[RestRoute]) -> String {
    let mut out = String::from("pub const ROUTES: &[RestRoute] = &[\n");
    for r in routes {
        out += &format!(
            "    RestRoute {{ selector: {:?}, method: {:?}, path: {:?}, body: {:?}, response_body: {:?}, source: {:?} }},\n",
            r.selector, r.method, r.path, r.body, r.response_body, r.source
        );
    }
    out + "];\n"
}
