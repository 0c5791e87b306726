//! REST gateway: the HTTP/JSON face of one service, for the ALB's health
//! checks and for people with curl.
//!
//! It owns no logic. Each route calls the gRPC service implementation
//! in-process, through the generated traits (`StatusService`, `Health`), and
//! answers the proto3 JSON mapping of the very message gRPC would have sent.
//! The JSON impls come from `status-api` (pbjson), so there is one source of
//! truth: `proto/`.
//!
//! | route | answers |
//! |---|---|
//! | `GET /{service}/healthcheck` | `{"status":"SERVING"}` 200, or 503 while draining |
//! | `GET /{service}/status` | `ServiceStatus` |
//! | `GET /{service}/other-status` | `GetPeerStatusResponse` (503/504 when the peer fails) |
//!
//! Errors are JSON too, with the HTTP status that matches the gRPC code
//! (never a 200), in the shape of Google's JSON APIs:
//! `{"error":{"code":503,"status":"UNAVAILABLE","message":"..."}}`.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::get,
};
use status_api::v1::{
    GetPeerStatusRequest, GetPeerStatusResponse, GetStatusRequest, ServiceStatus,
    status_service_server::StatusService,
};
use tonic::{Code, metadata::MetadataMap};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_server::Health,
};

/// Path of the health check route: the ALB target group's health check.
pub fn healthcheck_path(service: &str) -> String {
    format!("/{service}/healthcheck")
}

/// Path of the route answering this service's `GetStatus`.
pub fn status_path(service: &str) -> String {
    format!("/{service}/status")
}

/// Path of the route answering `GetPeerStatus` (a call through to the peer).
pub fn other_status_path(service: &str) -> String {
    format!("/{service}/other-status")
}

/// The REST routes of the service named `service`, answering from `status`
/// and `health`, the same implementations the gRPC server serves.
///
/// Unknown paths answer 404 and wrong methods 405, both as JSON.
pub fn router<S, H>(service: &str, status: Arc<S>, health: Arc<H>) -> Router
where
    S: StatusService,
    H: Health,
{
    Router::new()
        .route(&healthcheck_path(service), get(healthcheck::<S, H>))
        .route(&status_path(service), get(get_status::<S, H>))
        .route(&other_status_path(service), get(get_peer_status::<S, H>))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(Backends {
            status,
            health,
            status_json: Arc::default(),
        })
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
            // The proto3 JSON mapping of grpc.health.v1.HealthCheckResponse.
            let body = format!(r#"{{"status":"{}"}}"#, serving.as_str_name());
            (code, json_response(Bytes::from(body))).into_response()
        }
        Err(status) => ApiError::Grpc(status).into_response(),
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

/// Why a REST request failed. Renders as a JSON error with a matching HTTP
/// status; server-side faults are logged and their details not sent.
#[derive(Debug)]
pub enum ApiError {
    /// The gRPC implementation answered with an error status.
    Grpc(tonic::Status),
    /// No route has this path.
    NotFound,
    /// The path exists, the method does not (only GET and HEAD do).
    MethodNotAllowed,
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::Grpc(status)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (http, status_name, message) = match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "no such route".to_owned(),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "only GET and HEAD are allowed here".to_owned(),
            ),
            Self::Grpc(status) => {
                let code = status.code();
                let message = if is_server_fault(code) {
                    tracing::error!(code = ?code, message = status.message(), "request failed");
                    "internal error".to_owned()
                } else {
                    status.message().to_owned()
                };
                (http_status(code), grpc_code_name(code), message)
            }
        };
        let body = serde_json::json!({
            "error": { "code": http.as_u16(), "status": status_name, "message": message }
        });
        (http, Json(body)).into_response()
    }
}

/// Codes whose messages may carry internals that callers should not see.
fn is_server_fault(code: Code) -> bool {
    matches!(code, Code::Internal | Code::Unknown | Code::DataLoss)
}

/// The HTTP status for a gRPC code, as google.rpc.Code documents it.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The canonical upper-case name of a gRPC code ("UNAVAILABLE").
pub fn grpc_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
