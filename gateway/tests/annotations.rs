//! The gateway's routes against the REST mapping the contract declares
//! (`google.api.http` in status.proto, `http.rules` in health_http.yaml, read
//! from the descriptor set by build.rs into `status_api::rest::ROUTES`).
//!
//! Fails when a route's method, path or response body differs from its
//! annotation, when either side has a route the other lacks, or when a
//! path reaches a different rpc than the contract says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::{collections::BTreeSet, sync::Arc};

use common::{Record, RecordingHealth, StandIn, call};
use http::StatusCode;
use status_api::rest::ROUTES as CONTRACT;
use status_gateway::routes::RPC_ROUTES;

const SERVICE: &str = "service-x";

/// (rpc, method, path, response_body) of each route.
type Key = (String, String, String, String);

#[test]
fn the_route_table_is_the_contracts_mapping() {
    let contract: BTreeSet<Key> = CONTRACT
        .iter()
        .map(|r| {
            assert!(
                r.body.is_empty(),
                "{}: request bodies are not served",
                r.selector
            );
            (
                r.selector.into(),
                r.method.into(),
                r.path.into(),
                r.response_body.into(),
            )
        })
        .collect();
    let gateway: BTreeSet<Key> = RPC_ROUTES
        .iter()
        .map(|r| {
            let response_body = r.response_body.unwrap_or_default();
            (
                r.rpc.into(),
                r.method.to_string(),
                r.path.into(),
                response_body.into(),
            )
        })
        .collect();
    assert_eq!(contract.len(), CONTRACT.len(), "a rule is declared twice");
    assert_eq!(
        gateway, contract,
        "the gateway's routes (left) differ from the contract's (right)"
    );
}

#[tokio::test]
async fn each_annotated_path_reaches_its_rpc_and_answers_its_response_body() {
    assert!(!CONTRACT.is_empty(), "the contract declares no REST route");
    for route in CONTRACT {
        let record = Arc::new(Record::default());
        let status = StandIn {
            record: Arc::clone(&record),
            ..Default::default()
        };
        let health = RecordingHealth {
            record: Arc::clone(&record),
            ..Default::default()
        };
        let router = status_gateway::RestRoutes::new(SERVICE, Arc::new(status), Arc::new(health));
        let path = format!("/{SERVICE}{}", route.path);

        let (code, body) = call(router, route.method, &path).await;

        assert_eq!(code, StatusCode::OK, "{} {path}: {body}", route.method);
        let calls = record.calls.lock().unwrap();
        let [(rpc, answer)] = calls.as_slice() else {
            panic!("{} {path} made {} rpc calls", route.method, calls.len());
        };
        assert_eq!(
            *rpc, route.selector,
            "{} {path} reached the wrong rpc",
            route.method
        );
        let expected = match route.response_body {
            "" => answer.clone(),
            field => answer[field].clone(),
        };
        assert_eq!(
            body, expected,
            "{path}: response_body {:?}",
            route.response_body
        );
    }
}
