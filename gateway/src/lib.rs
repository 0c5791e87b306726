//! REST gateway: the HTTP/JSON face of one service, for the ALB's health
//! checks and for people with curl.
//!
//! It owns no logic. Each route calls the gRPC service implementation
//! in-process, through the generated traits (`StatusService`, `Health`), and
//! answers the proto3 JSON mapping of the very message gRPC would have sent.
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

mod cors;
mod error;
pub mod routes;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Request, State},
    http::{
        HeaderValue, StatusCode,
        header::{CACHE_CONTROL, CONTENT_TYPE},
    },
    response::{IntoResponse, Response},
    routing::{MethodFilter, get, on},
};
use status_api::v1::{
    GetPeerStatusRequest, GetPeerStatusResponse, GetStatusRequest, ServiceStatus,
    status_service_server::StatusService,
};
use tonic::metadata::MetadataMap;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_server::Health,
};
use tower_http::{compression::Compression, set_header::SetResponseHeaderLayer};

pub use cors::cors;
pub use error::{ApiError, ServerFault, error_response, grpc_code_name, http_status};
use routes::{GET_PEER_STATUS, GET_STATUS, HEALTHCHECK, OPENAPI, Route};

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

/// The method filter of a route from the table. Every method the table uses
/// (GET) has one, so the fallback to GET is never taken.
fn method_filter(route: &Route) -> MethodFilter {
    MethodFilter::try_from(route.method.clone()).unwrap_or(MethodFilter::GET)
}

/// The REST routes of the service named `service`, answering from `status`
/// and `health`, the same implementations the gRPC server serves.
///
/// Unknown paths answer 404 and wrong methods 405, both as JSON. The router
/// serves the OpenAPI document at `/{service}/openapi.json`, naming
/// `/{service}` as its server.
pub fn router<S, H>(service: &str, status: Arc<S>, health: Arc<H>) -> Router
where
    S: StatusService,
    H: Health,
{
    let route = |route: &Route| (route.path_for(service), method_filter(route));
    let (health_path, health_method) = route(&HEALTHCHECK);
    let (status_path, status_method) = route(&GET_STATUS);
    let (peer_path, peer_method) = route(&GET_PEER_STATUS);
    let routes = Router::new()
        .route(&health_path, on(health_method, healthcheck::<S, H>))
        .route(&status_path, on(status_method, get_status::<S, H>))
        .route(&peer_path, on(peer_method, get_peer_status::<S, H>))
        // Statuses change every second: no cache may keep one.
        .route_layer(SetResponseHeaderLayer::overriding(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .route(&OPENAPI.path_for(service), get(openapi_handler(service)))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Backends {
            status,
            health,
            status_json: Arc::default(),
        });
    // gzip when Accept-Encoding asks (bodies over 32 bytes). Around the
    // whole router: `Router::layer` boxes every route once more, and each
    // request clones every box.
    Router::new().fallback_service(Compression::new(routes))
}

/// Answers the OpenAPI document with this service's prefix as its server.
fn openapi_handler(service: &str) -> impl Fn() -> std::future::Ready<Response> + Clone + use<> {
    let document = openapi_document(service);
    move || std::future::ready(json_response(document.clone()))
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

/// The in-process gRPC implementations the routes call.
struct Backends<S, H> {
    status: Arc<S>,
    health: Arc<H>,
    status_json: Arc<JsonCache<ServiceStatus>>,
}

// Derived Clone would require `S: Clone` and `H: Clone`; only the Arcs are cloned.
impl<S, H> Clone for Backends<S, H> {
    fn clone(&self) -> Self {
        Self {
            status: Arc::clone(&self.status),
            health: Arc::clone(&self.health),
            status_json: Arc::clone(&self.status_json),
        }
    }
}

/// The last message served and its JSON. A status changes once per metrics
/// sample (a second) while it is asked for thousands of times a second, and
/// its proto3 JSON (RFC 3339 timestamps, durations) was the largest cost of
/// a `/status` request.
#[derive(Default)]
struct JsonCache<T> {
    last: ArcSwapOption<(T, Bytes)>,
}

impl<T: serde::Serialize + PartialEq> JsonCache<T> {
    fn to_json(&self, message: T) -> Result<Bytes, ApiError> {
        if let Some(last) = &*self.last.load()
            && last.0 == message
        {
            return Ok(last.1.clone());
        }
        let json = Bytes::from(serde_json::to_vec(&message).map_err(|e| {
            ApiError::Grpc(tonic::Status::internal(format!("cannot encode JSON: {e}")))
        })?);
        self.last.store(Some(Arc::new((message, json.clone()))));
        Ok(json)
    }
}

/// A 200 JSON response with a body already encoded.
fn json_response(body: Bytes) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response()
}

/// A gRPC request carrying the HTTP request's headers as metadata and its
/// extensions, so the implementation sees what a gRPC caller would send
/// (`x-request-id` above all, which it passes on to the peer) and what the
/// server attached (the request's deadline). Both are moved, not copied.
fn grpc_request<T>(request: Request, message: T) -> tonic::Request<T> {
    let (parts, _body) = request.into_parts();
    tonic::Request::from_parts(
        MetadataMap::from_headers(parts.headers),
        parts.extensions,
        message,
    )
}

async fn healthcheck<S, H>(State(backends): State<Backends<S, H>>, request: Request) -> Response
where
    S: StatusService,
    H: Health,
{
    // "" is the whole server, as in the gRPC health checking protocol.
    let request = grpc_request(
        request,
        HealthCheckRequest {
            service: String::new(),
        },
    );
    match backends.health.check(request).await {
        Ok(response) => {
            let serving = response.into_inner().status();
            let code = if serving == ServingStatus::Serving {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (
                code,
                json_response(Bytes::from_static(health_body(serving))),
            )
                .into_response()
        }
        Err(status) => ApiError::Grpc(status).into_response(),
    }
}

/// The proto3 JSON mapping of grpc.health.v1.HealthCheckResponse: one
/// static body per status, not one formatted per request.
fn health_body(serving: ServingStatus) -> &'static [u8] {
    match serving {
        ServingStatus::Serving => br#"{"status":"SERVING"}"#,
        ServingStatus::NotServing => br#"{"status":"NOT_SERVING"}"#,
        ServingStatus::ServiceUnknown => br#"{"status":"SERVICE_UNKNOWN"}"#,
        ServingStatus::Unknown => br#"{"status":"UNKNOWN"}"#,
    }
}

async fn get_status<S, H>(
    State(backends): State<Backends<S, H>>,
    request: Request,
) -> Result<Response, ApiError>
where
    S: StatusService,
    H: Health,
{
    let response = backends
        .status
        .get_status(grpc_request(request, GetStatusRequest {}))
        .await?;
    // The REST body is the status itself (like google.api.http's
    // `response_body: "status"`), which keeps the original API's flat shape.
    let status = response
        .into_inner()
        .status
        .ok_or(ApiError::Grpc(tonic::Status::internal(
            "GetStatus returned no status",
        )))?;
    Ok(json_response(backends.status_json.to_json(status)?))
}

async fn get_peer_status<S, H>(
    State(backends): State<Backends<S, H>>,
    request: Request,
) -> Result<Json<GetPeerStatusResponse>, ApiError>
where
    S: StatusService,
    H: Health,
{
    let response = backends
        .status
        .get_peer_status(grpc_request(request, GetPeerStatusRequest {}))
        .await?;
    Ok(Json(response.into_inner()))
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_bodies_are_the_json_of_each_status() {
        for serving in [
            ServingStatus::Serving,
            ServingStatus::NotServing,
            ServingStatus::ServiceUnknown,
            ServingStatus::Unknown,
        ] {
            let body: serde_json::Value =
                serde_json::from_slice(health_body(serving)).expect("JSON");
            assert_eq!(body, serde_json::json!({ "status": serving.as_str_name() }));
        }
    }
}
