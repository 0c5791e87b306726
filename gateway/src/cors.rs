//! CORS for browser clients: REST with fetch, and gRPC-Web (which always
//! sends a preflight: its content type and `x-grpc-web` header are not
//! "simple"). The API is public and takes no credentials, so any origin may
//! call it.
//!
//! The server puts only requests with an `Origin` header through it:
//! browsers send it on every cross-origin request and preflight, and
//! nothing else reads CORS headers. Other callers (curl, the ALB's health
//! checks, load balancers) get answers without the extra headers, but with
//! `Vary: origin`: the answer depends on the `Origin`, and a cache that
//! kept one without CORS headers must not serve it to a page.

use std::time::Duration;

use http::{HeaderName, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may reuse a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Request headers browsers may send: gRPC-Web's (Connect-ES and grpc-web
/// both send `x-grpc-web` and `x-user-agent`), deadlines, compression, and
/// our request id.
const ALLOWED_HEADERS: [HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::ACCEPT_ENCODING,
    HeaderName::from_static("x-grpc-web"),
    HeaderName::from_static("x-user-agent"),
    HeaderName::from_static("grpc-timeout"),
    HeaderName::from_static("grpc-accept-encoding"),
    HeaderName::from_static("x-request-id"),
];

/// Response headers browsers may read: a gRPC-Web error is in these when
/// the call fails before the body, and the request id is worth showing.
const EXPOSED_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("grpc-status"),
    HeaderName::from_static("grpc-message"),
    HeaderName::from_static("grpc-status-details-bin"),
    HeaderName::from_static("grpc-encoding"),
    HeaderName::from_static("x-request-id"),
];

/// The CORS policy for everything browsers call (REST, gRPC-Web), the
/// refusals of limits in front of the routes included; it answers every
/// preflight, whatever its path. The server applies it to requests with an
/// `Origin` only, and marks the others `Vary: origin`.
pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::HEAD, Method::POST])
        .allow_headers(ALLOWED_HEADERS)
        .expose_headers(EXPOSED_HEADERS)
        .max_age(PREFLIGHT_MAX_AGE)
}
