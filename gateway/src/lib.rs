//! REST gateway: the HTTP/JSON face of one service, for the ALB's health
//! checks and for people with curl.
//!
//! It owns no logic. Each route calls the gRPC service implementation
//! in-process, through the generated traits (`StatusService`, `Health`), and
//! answers the proto3 JSON mapping of the very message gRPC would have sent;
//! `/status` reads it already encoded ([`StatusJson`]: once per change of
//! the status, not per request). [`RestRoutes`] picks the route with one
//! match on the path and method, without a router.
//! The JSON impls come from `status-api` (pbjson), so there is one source of
//! truth: `proto/`.
//!
//! | route | rpc | answers |
//! |---|---|---|
//! | `GET /{service}/healthcheck` | `grpc.health.v1.Health/Check` | `{"status":"SERVING"}` 200, or 503 while draining |
//! | `GET /{service}/status` | `GetStatus` | `ServiceStatus` (`response_body: "status"`) |
//! | `GET /{service}/other-status` | `GetPeerStatus` | `GetPeerStatusResponse` (503/504 when the peer fails) |
//!
//! The contract declares these routes (`google.api.http`, relative to the
//! `/{service}` prefix); [`routes`] holds them as a table, checked against
//! the descriptor set by `tests/annotations.rs`.
//!
//! | `GET /{service}/openapi.json` | | the OpenAPI 3 document of these routes (generated from the contract) |
//!
//! Errors are JSON too, with the HTTP status that matches the gRPC code
//! (never a 200), in grpc-gateway's shape (google.rpc.Status) plus the
//! code's name: `{"code":14,"status":"UNAVAILABLE","message":"...","details":[]}`.
//!
//! Answers are gzip-compressed when the client asks (`Accept-Encoding`), and
//! rpc answers carry `Cache-Control: no-store`. [`cors`] is the CORS policy
//! for browsers, for the server to put around REST and gRPC-Web alike.

mod answer;
mod cors;
mod error;
mod gzip;
mod rest;
pub mod routes;

use axum::body::Bytes;

pub use answer::{RouteBody, RouteFuture};
pub use cors::cors;
pub use error::{ApiError, ServerFault, error_response, grpc_code_name, http_status};
pub use gzip::{RestBody, RestFuture};
pub use rest::{RestRoutes, ServingStatusNow, StatusJson};
use routes::{GET_PEER_STATUS, GET_STATUS, HEALTHCHECK};

/// Path of the health check route: the ALB target group's health check.
pub fn healthcheck_path(service: &str) -> String {
    HEALTHCHECK.path_for(service)
}

/// Path of the route answering this service's `GetStatus`.
pub fn status_path(service: &str) -> String {
    GET_STATUS.path_for(service)
}

/// Path of the route answering `GetPeerStatus` (a call through to the peer).
pub fn other_status_path(service: &str) -> String {
    GET_PEER_STATUS.path_for(service)
}

/// The contract's OpenAPI document with `servers` set to `/{service}`.
pub fn openapi_document(service: &str) -> Bytes {
    let generated = status_api::OPENAPI_JSON;
    let Ok(mut document) = serde_json::from_str::<serde_json::Value>(generated) else {
        // build.rs wrote it with serde_json: it always parses.
        return Bytes::from_static(generated.as_bytes());
    };
    document["servers"] = serde_json::json!([{ "url": format!("/{service}") }]);
    serde_json::to_vec_pretty(&document)
        .map_or_else(|_| Bytes::from_static(generated.as_bytes()), Bytes::from)
}
