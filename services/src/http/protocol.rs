//! What kind of request this is, and how to answer it with an error in its
//! own protocol: a gRPC caller reads `grpc-status`, a REST caller a JSON body
//! with the matching HTTP status.

use axum::{body::Body, response::IntoResponse};
use http::{HeaderMap, HeaderValue, Request, Response, Version, header::CONTENT_TYPE};
use status_gateway::ApiError;

/// The ways a request reaches the port, as the access log names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Http1,
    H2c,
    Grpc,
    /// gRPC-Web in binary (`application/grpc-web`, `+proto`).
    GrpcWeb,
    /// gRPC-Web as base64 text (`application/grpc-web-text`, `+proto`).
    GrpcWebText,
}

impl Protocol {
    /// From the content type (one lookup), then the version.
    pub(crate) fn of<B>(request: &Request<B>) -> Self {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .map_or(&b""[..], HeaderValue::as_bytes);
        match content_type.strip_prefix(b"application/grpc") {
            Some(rest) if rest.starts_with(b"-web-text") => Self::GrpcWebText,
            Some(rest) if rest.starts_with(b"-web") => Self::GrpcWeb,
            Some(_) => Self::Grpc,
            None if request.version() == Version::HTTP_2 => Self::H2c,
            None => Self::Http1,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Http1 => "HTTP/1.1",
            Self::H2c => "h2c",
            Self::Grpc => "gRPC",
            Self::GrpcWeb | Self::GrpcWebText => "gRPC-Web",
        }
    }

    /// gRPC or gRPC-Web: the answer's status is a gRPC code.
    pub(crate) fn is_grpc(self) -> bool {
        matches!(self, Self::Grpc | Self::GrpcWeb | Self::GrpcWebText)
    }

    /// gRPC-Web, binary or text.
    pub(crate) fn is_grpc_web(self) -> bool {
        matches!(self, Self::GrpcWeb | Self::GrpcWebText)
    }
}

/// Whether a request speaks gRPC (`application/grpc`, `+proto`, and gRPC-Web).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// gRPC health checks and the REST health check of `service`: the requests
/// that load balancers send, which must be answered even under overload.
pub(crate) fn is_health_check(path: &str, rest_health_path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path == rest_health_path
}

/// An error answer in the caller's protocol: a trailers-only gRPC response,
/// or the gateway's JSON error with the matching HTTP status.
pub(crate) fn error_response(protocol: Protocol, status: tonic::Status) -> Response<Body> {
    let content_type = match protocol {
        Protocol::Grpc => "application/grpc",
        // A trailers-only answer has no body, but a gRPC-Web client checks
        // that the content type is the one it asked in (tonic-web's names).
        Protocol::GrpcWeb => "application/grpc-web+proto",
        Protocol::GrpcWebText => "application/grpc-web-text+proto",
        Protocol::Http1 | Protocol::H2c => return ApiError::Grpc(status).into_response(),
    };
    let mut response = status.into_http::<Body>();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: Version, content_type: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().version(version).uri("/x");
        if let Some(value) = content_type {
            builder = builder.header(CONTENT_TYPE, value);
        }
        builder.body(()).expect("request")
    }

    #[test]
    fn protocol_is_read_from_content_type_then_version() {
        for (version, content_type, expected) in [
            (Version::HTTP_11, None, Protocol::Http1),
            (Version::HTTP_2, None, Protocol::H2c),
            (Version::HTTP_2, Some("application/json"), Protocol::H2c),
            (Version::HTTP_2, Some("application/grpc"), Protocol::Grpc),
            (
                Version::HTTP_2,
                Some("application/grpc+proto"),
                Protocol::Grpc,
            ),
            (
                Version::HTTP_11,
                Some("application/grpc-web+proto"),
                Protocol::GrpcWeb,
            ),
            (
                Version::HTTP_2,
                Some("application/grpc-web-text"),
                Protocol::GrpcWebText,
            ),
            (
                Version::HTTP_11,
                Some("application/grpc-web-text+proto"),
                Protocol::GrpcWebText,
            ),
            // Read in one lookup since issue 17: the same prefixes as the
            // three lookups before, no more (case-sensitive, as they were).
            (
                Version::HTTP_2,
                Some("application/grpc+json"),
                Protocol::Grpc,
            ),
            (
                Version::HTTP_2,
                Some("application/grpc-web+json"),
                Protocol::GrpcWeb,
            ),
            (Version::HTTP_2, Some("Application/grpc"), Protocol::H2c),
            (Version::HTTP_11, Some("application/gr"), Protocol::Http1),
            (Version::HTTP_11, Some(""), Protocol::Http1),
        ] {
            assert_eq!(
                Protocol::of(&request(version, content_type)),
                expected,
                "{version:?} {content_type:?}"
            );
        }
    }

    #[test]
    fn health_checks_are_recognised() {
        let rest = "/service-a/healthcheck";
        assert!(is_health_check("/grpc.health.v1.Health/Check", rest));
        assert!(is_health_check("/grpc.health.v1.Health/Watch", rest));
        assert!(is_health_check(rest, rest));
        for other in [
            "/service-a/status",
            "/service-b/healthcheck",
            "/grpc.health.v1.Healthy/Check",
        ] {
            assert!(!is_health_check(other, rest), "{other}");
        }
    }

    #[test]
    fn errors_answer_in_the_callers_protocol() {
        let grpc = error_response(Protocol::Grpc, tonic::Status::resource_exhausted("full"));
        assert_eq!(grpc.status(), 200);
        assert_eq!(grpc.headers()["grpc-status"], "8");
        let web = error_response(Protocol::GrpcWeb, tonic::Status::resource_exhausted("full"));
        assert_eq!(web.headers()["grpc-status"], "8");
        assert_eq!(web.headers()[CONTENT_TYPE], "application/grpc-web+proto");
        let text = error_response(
            Protocol::GrpcWebText,
            tonic::Status::resource_exhausted("full"),
        );
        assert_eq!(text.headers()["grpc-status"], "8");
        assert_eq!(
            text.headers()[CONTENT_TYPE],
            "application/grpc-web-text+proto"
        );
        let rest = error_response(Protocol::Http1, tonic::Status::resource_exhausted("full"));
        assert_eq!(rest.status(), 429);
        assert_eq!(rest.headers()[CONTENT_TYPE], "application/json");
    }
}
