//! The OpenAPI document each service serves: a valid OpenAPI 3 document
//! (parsed with the openapiv3 crate), naming every REST route of the
//! contract and the document itself, under the service's prefix, with
//! schemas that name the fields the gateway really writes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::{collections::BTreeSet, sync::Arc};

use common::{StandIn, call, health};
use openapiv3::{OpenAPI, ReferenceOr, SchemaKind, Type};
use status_api::v1::{EcsTask, ServiceStatus};
use status_gateway::routes::{OPENAPI, RPC_ROUTES};
use tonic_health::ServingStatus;

async fn served_document() -> (serde_json::Value, OpenAPI) {
    let health = health(ServingStatus::Serving).await;
    let router = status_gateway::RestRoutes::new("service-x", Arc::new(StandIn::default()), health);
    let (code, json) = call(router, "GET", "/service-x/openapi.json").await;
    assert_eq!(code, http::StatusCode::OK);
    let document: OpenAPI = serde_json::from_value(json.clone()).expect("an OpenAPI 3 document");
    (json, document)
}

#[tokio::test]
async fn names_every_rest_route_under_the_service_prefix() {
    let (_, document) = served_document().await;
    assert!(document.openapi.starts_with("3."), "{}", document.openapi);
    let servers: Vec<_> = document.servers.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(servers, ["/service-x"]);
    let paths: BTreeSet<&str> = document.paths.paths.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = RPC_ROUTES
        .iter()
        .chain([&OPENAPI])
        .map(|route| route.path)
        .collect();
    assert_eq!(paths, expected);
    for route in &RPC_ROUTES {
        let Some(ReferenceOr::Item(item)) = document.paths.paths.get(route.path) else {
            panic!("{} missing", route.path);
        };
        let operation = item.get.as_ref().expect("a GET operation");
        assert_eq!(operation.operation_id.as_deref(), Some(route.rpc));
        assert!(
            operation
                .responses
                .responses
                .contains_key(&openapiv3::StatusCode::Code(200))
        );
        assert!(
            operation.responses.default.is_some(),
            "{}: no error response",
            route.path
        );
    }
}

#[tokio::test]
async fn the_status_schema_names_exactly_the_fields_written() {
    let (_, document) = served_document().await;
    let components = document.components.expect("components");
    let Some(ReferenceOr::Item(schema)) = components.schemas.get("scdemo.status.v1.ServiceStatus")
    else {
        panic!("no ServiceStatus schema");
    };
    let SchemaKind::Type(Type::Object(object)) = &schema.schema_kind else {
        panic!("ServiceStatus is not an object");
    };
    // Every optional field set, so every field is written.
    let full = ServiceStatus {
        container_memory_limit_bytes: Some(1),
        ecs_task: Some(EcsTask::default()),
        start_time: Some(status_api::Timestamp::default()),
        sample_time: Some(status_api::Timestamp::default()),
        uptime: Some(pbjson_types::Duration::default()),
        ..Default::default()
    };
    let written = serde_json::to_value(&full).unwrap();
    let written = written.as_object().unwrap();
    let written_names: BTreeSet<&str> = written.keys().map(String::as_str).collect();
    let documented: BTreeSet<&str> = object.properties.keys().map(String::as_str).collect();
    assert_eq!(documented, written_names);

    // Required: what is written even when unset.
    let bare = serde_json::to_value(ServiceStatus::default()).unwrap();
    let always: BTreeSet<&str> = bare
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let required: BTreeSet<&str> = object.required.iter().map(String::as_str).collect();
    assert_eq!(required, always);

    // 64-bit integers are strings on the wire, and documented so.
    for field in ["memory_used_bytes", "container_memory_limit_bytes"] {
        assert!(written[field].is_string(), "{field}: {}", written[field]);
        let Some(ReferenceOr::Item(property)) = object.properties.get(field) else {
            panic!("{field} undocumented");
        };
        assert!(
            matches!(property.schema_kind, SchemaKind::Type(Type::String(_))),
            "{field} is not documented as a string"
        );
    }
}
