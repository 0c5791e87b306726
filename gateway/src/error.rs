//! REST errors: a gRPC status (or a routing miss) rendered as JSON with the
//! HTTP status google.rpc.Code documents for it.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use tonic::Code;

/// Why a REST request failed. Renders as the JSON of google.rpc.Status
/// (`code` number, `message`, `details`) plus `status`, the code's name,
/// with the HTTP status google.rpc.Code documents for the code: the body
/// grpc-gateway writes, with the name added. Server-side faults are not
/// sent: the answer carries them as a [`ServerFault`] for the server's
/// access log, which writes them with the request's ids.
#[derive(Debug)]
pub enum ApiError {
    /// The gRPC implementation answered with an error status.
    Grpc(tonic::Status),
    /// No route has this path: NOT_FOUND, 404.
    NotFound,
    /// The path exists, the method does not (only GET and HEAD do):
    /// UNIMPLEMENTED as grpc-gateway maps it, with HTTP 405 kept.
    MethodNotAllowed,
}

/// In the extensions of an answer whose error details were kept from the
/// caller (INTERNAL, UNKNOWN, DATA_LOSS): what really happened, for the
/// server to log once, with the request's service, id and trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFault {
    pub code: Code,
    pub message: String,
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        Self::Grpc(status)
    }
}

/// The REST error response for a gRPC status: what the gateway's routes
/// answer when an rpc fails, for layers outside the gateway (timeouts,
/// panics) to answer the same way.
pub fn error_response(status: tonic::Status) -> Response {
    ApiError::Grpc(status).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut fault = None;
        let (http, code, message) = match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                Code::NotFound,
                "no such route".to_owned(),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                Code::Unimplemented,
                "only GET and HEAD are allowed here".to_owned(),
            ),
            Self::Grpc(status) => {
                let code = status.code();
                let message = if is_server_fault(code) {
                    fault = Some(ServerFault {
                        code,
                        message: status.message().to_owned(),
                    });
                    "internal error".to_owned()
                } else {
                    status.message().to_owned()
                };
                (http_status(code), code, message)
            }
        };
        // `details` stays empty: the services attach no error details, and
        // google.protobuf.Any values of unknown types have no JSON form.
        let body = serde_json::json!({
            "code": code as i32,
            "status": grpc_code_name(code),
            "message": message,
            "details": [],
        });
        let mut response = (http, Json(body)).into_response();
        if let Some(fault) = fault {
            response.extensions_mut().insert(fault);
        }
        response
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
