//! The REST mapping the contract declares, as build.rs read it from the
//! descriptor set: the `google.api.http` options of StatusService (AIP-127)
//! and the google.api.Service `http.rules` for grpc.health.v1.Health
//! (`proto/scdemo/status/v1/health_http.yaml`). Paths are relative to the
//! service's prefix `/{SERVICE_NAME}`. The gateway's routes are tested
//! against this table.

/// One REST route of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestRoute {
    /// The rpc, `package.Service.Method` (a google.api.http `selector`).
    pub selector: &'static str,
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path under the service's prefix, e.g. `/status`.
    pub path: &'static str,
    /// The request field read from the body; empty: none.
    pub body: &'static str,
    /// The response field sent as the body; empty: the whole message.
    pub response_body: &'static str,
    /// The file that declares the route.
    pub source: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/rest_routes.rs"));
