//! REST errors: a gRPC status (or a routing miss) rendered as JSON with the
//! HTTP status google.rpc.Code documents for it.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use tonic::Code;

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
fn grpc_code_name(code: Code) -> &'static str {
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
