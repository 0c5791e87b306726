//! The OpenAPI 3 document of the REST face, generated from the contract: the
//! REST routes (google.api.http and health's http.rules) and the messages in
//! the descriptor set. Schemas describe the JSON the gateway really writes:
//! proto3 JSON with proto field names and defaults written out (pbjson's
//! `preserve_proto_field_names` + `emit_fields`), 64-bit integers as strings,
//! enums as names, Timestamp and Duration as strings; absent message fields
//! and proto3 `optional` fields are the only ones not required.

use std::collections::BTreeMap;

use prost_reflect::{
    Cardinality, DescriptorPool, FieldDescriptor, Kind, MessageDescriptor, MethodDescriptor,
};
use serde_json::{Value, json};

use crate::rest_routes::RestRoute;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The rpc whose REST route answers 503 (with its normal body) when it
/// reports NOT_SERVING: the gateway's one deviation from plain transcoding,
/// so load balancers see a failed health check.
const HEALTH_CHECK: &str = "grpc.health.v1.Health.Check";
/// Component name of the REST error body.
const ERROR_SCHEMA: &str = "google.rpc.Status";
/// The path of the document itself, under the service's prefix.
const DOCUMENT_PATH: &str = "/openapi.json";
/// google.rpc.Code names, by number.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The document, pretty-printed. `servers` names the `/{service}` prefix;
/// each service replaces it with its own (`/service-a`) when serving it.
pub(crate) fn document(
    pool: &DescriptorPool,
    routes: &[RestRoute],
    version: &str,
) -> Result<String> {
    let mut schemas = BTreeMap::new();
    let mut paths = serde_json::Map::new();
    for route in routes {
        let method = find_method(pool, &route.selector)?;
        let mut output = method.output();
        if !route.response_body.is_empty() {
            let field = output
                .get_field_by_name(&route.response_body)
                .ok_or_else(|| {
                    format!(
                        "{}: no response field {:?}",
                        route.selector, route.response_body
                    )
                })?;
            output = match field.kind() {
                Kind::Message(message) if !field.is_list() => message,
                _ => {
                    return Err(format!(
                        "{}: response_body must name a message field",
                        route.selector
                    )
                    .into());
                }
            };
        }
        let body = message_ref(&output, &mut schemas)?;
        let ok = json!({
            "description": format!("The `{}` message as proto3 JSON.", output.full_name()),
            "content": { "application/json": { "schema": body } },
        });
        let mut responses = serde_json::Map::new();
        responses.insert("200".into(), ok.clone());
        if route.selector == HEALTH_CHECK {
            let mut unavailable = ok;
            unavailable["description"] =
                json!("NOT_SERVING (starting or draining): the same body, with HTTP 503.");
            responses.insert("503".into(), unavailable);
        }
        responses.insert("default".into(), error_response());
        let operation = json!({
            "operationId": route.selector,
            "summary": format!("{}/{}", method.parent_service().full_name(), method.name()),
            "description": comments(&method),
            "tags": [method.parent_service().full_name()],
            "responses": responses,
        });
        let entry = paths.entry(route.path.clone()).or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = operation;
    }
    paths.insert(DOCUMENT_PATH.into(), document_path());
    schemas.insert(ERROR_SCHEMA.into(), error_schema());

    let doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "service-a / service-b REST API",
            "version": version,
            "description": "The REST face of scdemo.status.v1.StatusService and grpc.health.v1.Health, \
                generated from proto/ (google.api.http annotations and health_http.yaml) by build.rs. \
                Bodies are proto3 JSON with the proto field names. Request fields are not read from \
                the query string: these routes take no parameters. Errors carry google.rpc.Status \
                fields with the HTTP status google.rpc.Code maps the code to.",
        },
        "servers": [{ "url": "/{service}", "variables": {
            "service": { "default": "service-a", "enum": ["service-a", "service-b"] } } }],
        "paths": paths,
        "components": { "schemas": schemas },
    });
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

fn find_method(pool: &DescriptorPool, selector: &str) -> Result<MethodDescriptor> {
    let (service, method) = selector
        .rsplit_once('.')
        .ok_or_else(|| format!("bad selector {selector}"))?;
    pool.get_service_by_name(service)
        .and_then(|s| s.methods().find(|m| m.name() == method))
        .ok_or_else(|| format!("{selector}: no such method in the descriptor set").into())
}

/// A `$ref` to the message's schema, adding it (and what it uses) to `schemas`.
fn message_ref(
    message: &MessageDescriptor,
    schemas: &mut BTreeMap<String, Value>,
) -> Result<Value> {
    if let Some(inline) = well_known(message.full_name())? {
        return Ok(inline);
    }
    let name = message.full_name().to_owned();
    if !schemas.contains_key(&name) {
        schemas.insert(name.clone(), Value::Null); // placeholder: recursion ends here
        let schema = message_schema(message, schemas)?;
        schemas.insert(name.clone(), schema);
    }
    Ok(json!({ "$ref": format!("#/components/schemas/{name}") }))
}

/// Inline schemas of the well-known types the contract uses; other ones
/// fail the build until they are mapped here.
fn well_known(full_name: &str) -> Result<Option<Value>> {
    if !full_name.starts_with("google.protobuf.") {
        return Ok(None);
    }
    Ok(Some(match full_name {
        "google.protobuf.Timestamp" => json!({
            "type": "string", "format": "date-time",
            "description": "RFC 3339, UTC, ending in Z, e.g. 2026-11-28T04:27:44.687073670Z",
        }),
        "google.protobuf.Duration" => json!({
            "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$",
            "description": "Seconds with up to 9 fractional digits and the suffix s, e.g. 1.5s",
        }),
        other => {
            return Err(format!("{other}: no OpenAPI mapping for this well-known type").into());
        }
    }))
}

fn message_schema(
    message: &MessageDescriptor,
    schemas: &mut BTreeMap<String, Value>,
) -> Result<Value> {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for field in message.fields() {
        let mut schema = field_schema(&field, schemas)?;
        let description = comments_at(
            &field.parent_file().file_descriptor_proto().source_code_info,
            field.path(),
        );
        if !description.is_empty() {
            // A $ref cannot carry siblings in OpenAPI 3.0: wrap it.
            if schema.get("$ref").is_some() {
                schema = json!({ "allOf": [schema] });
            }
            schema["description"] = json!(description);
        }
        properties.insert(field.name().to_owned(), schema);
        // Written even at their default value (emit_fields), except message
        // fields and proto3 optional / oneof fields, which are absent when unset.
        let absent_when_unset = field.supports_presence();
        if !absent_when_unset {
            required.push(field.name().to_owned());
        }
    }
    let mut schema = json!({ "type": "object", "properties": properties });
    let description = comments_at(
        &message
            .parent_file()
            .file_descriptor_proto()
            .source_code_info,
        message.path(),
    );
    if !description.is_empty() {
        schema["description"] = json!(description);
    }
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    Ok(schema)
}

fn field_schema(field: &FieldDescriptor, schemas: &mut BTreeMap<String, Value>) -> Result<Value> {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return Err(format!("{}: map without entry", field.full_name()).into());
        };
        let value = entry.map_entry_value_field();
        return Ok(
            json!({ "type": "object", "additionalProperties": field_schema(&value, schemas)? }),
        );
    }
    let item = match field.kind() {
        Kind::Double | Kind::Float => json!({ "type": "number" }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            json!({ "type": "integer", "format": "int32" })
        }
        Kind::Uint32 | Kind::Fixed32 => {
            json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": 4_294_967_295_u32 })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            json!({ "type": "string", "format": "int64", "pattern": "^-?[0-9]+$" })
        }
        Kind::Uint64 | Kind::Fixed64 => {
            json!({ "type": "string", "format": "uint64", "pattern": "^[0-9]+$" })
        }
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "format": "byte" }),
        Kind::Enum(e) => {
            json!({ "type": "string", "enum": e.values().map(|v| v.name().to_owned()).collect::<Vec<_>>() })
        }
        Kind::Message(m) => message_ref(&m, schemas)?,
    };
    Ok(if field.cardinality() == Cardinality::Repeated {
        json!({ "type": "array", "items": item })
    } else {
        item
    })
}

fn comments(method: &MethodDescriptor) -> String {
    comments_at(
        &method
            .parent_file()
            .file_descriptor_proto()
            .source_code_info,
        method.path(),
    )
}

/// The leading comment of the element at `path`, tidied into one paragraph.
fn comments_at(info: &Option<prost_types::SourceCodeInfo>, path: &[i32]) -> String {
    info.as_ref()
        .and_then(|info| info.location.iter().find(|l| l.path == path))
        .and_then(|l| l.leading_comments.as_deref())
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn error_response() -> Value {
    json!({
        "description": "The rpc failed: google.rpc.Status fields, with the HTTP status google.rpc.Code \
            maps the code to (UNAVAILABLE 503, DEADLINE_EXCEEDED 504, INVALID_ARGUMENT 400, ...).",
        "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{ERROR_SCHEMA}") } } },
    })
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "The fields of google.rpc.Status as grpc-gateway writes them (code, message, \
            details), plus `status`, the code's name.",
        "required": ["code", "status", "message", "details"],
        "properties": {
            "code": { "type": "integer", "format": "int32", "minimum": 0, "maximum": 16,
                "description": "The google.rpc.Code number, e.g. 14." },
            "status": { "type": "string", "enum": CODE_NAMES, "description": "The google.rpc.Code name, e.g. UNAVAILABLE." },
            "message": { "type": "string", "description": "What went wrong, for a developer." },
            "details": { "type": "array", "description": "google.protobuf.Any messages with more detail (none today).",
                "items": { "type": "object", "properties": { "@type": { "type": "string" } }, "required": ["@type"] } },
        },
    })
}

fn document_path() -> Value {
    json!({ "get": {
        "operationId": "openapi",
        "summary": "This document",
        "description": "The OpenAPI document of this service's REST face, generated from proto/. Not an rpc.",
        "tags": ["openapi"],
        "responses": {
            "200": { "description": "OpenAPI 3.0 document.",
                "content": { "application/json": { "schema": { "type": "object", "required": ["openapi", "paths"] } } } },
        },
    } })
}
