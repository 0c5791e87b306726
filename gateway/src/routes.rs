//! The REST routes, as a table: which rpc each path answers.
//!
//! The contract declares the same mapping (`google.api.http` in status.proto,
//! `http.rules` in health_http.yaml); `tests/annotations.rs` reads it from the
//! descriptor set and fails when this table, or the router built from it,
//! differs. Paths are relative to the service's prefix `/{SERVICE_NAME}`.

use http::Method;

/// One REST route of the gateway and the rpc it calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Full name of the rpc, as a google.api.http `selector` names it
    /// (`package.Service.Method`).
    pub rpc: &'static str,
    pub method: Method,
    /// Path under the service's prefix, e.g. `/status`.
    pub path: &'static str,
    /// The response field sent as the body (google.api.http `response_body`);
    /// None: the whole response message.
    pub response_body: Option<&'static str>,
}

impl Route {
    /// The route's path for the service named `service`: `/service-a/status`.
    pub fn path_for(&self, service: &str) -> String {
        format!("/{service}{}", self.path)
    }
}

/// `grpc.health.v1.Health/Check` of the whole server: the ALB's health check.
pub const HEALTHCHECK: Route = Route {
    rpc: "grpc.health.v1.Health.Check",
    method: Method::GET,
    path: "/healthcheck",
    response_body: None,
};

/// `GetStatus`, answering the bare `ServiceStatus`.
pub const GET_STATUS: Route = Route {
    rpc: "scdemo.status.v1.StatusService.GetStatus",
    method: Method::GET,
    path: "/status",
    response_body: Some("status"),
};

/// `GetPeerStatus`: a call through to the peer.
pub const GET_PEER_STATUS: Route = Route {
    rpc: "scdemo.status.v1.StatusService.GetPeerStatus",
    method: Method::GET,
    path: "/other-status",
    response_body: None,
};

/// Every route that answers an rpc.
pub const RPC_ROUTES: [Route; 3] = [HEALTHCHECK, GET_STATUS, GET_PEER_STATUS];

/// The OpenAPI document of the REST face: a route of its own, not an rpc.
pub const OPENAPI: Route = Route {
    rpc: "",
    method: Method::GET,
    path: "/openapi.json",
    response_body: None,
};
