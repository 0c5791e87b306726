//! Every request's deadline: the caller's `grpc-timeout` (gRPC) or
//! `REQUEST_TIMEOUT`, whichever is sooner. When it passes, the handler is
//! dropped (which cancels its peer call) and the caller gets
//! DEADLINE_EXCEEDED, or 504 over REST. tonic's own server timer answered
//! CANCELLED ("Timeout expired") instead, racing the peer call's deadline.
//!
//! The deadline is also put in the request's extensions as a
//! [`RequestDeadline`], so the peer call can pass on what is left of it.
//! It bounds the time to the response head: a stream, once started, lives
//! until the client or the server ends it.

use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, HeaderName, Response};
use tokio::time::Instant;

use super::protocol::{Protocol, error_response};

/// `grpc-timeout`, parsed once (a `&str` name is parsed at every lookup).
static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// When the request must have been answered, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDeadline(pub Instant);

impl RequestDeadline {
    /// Time left, zero once passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// A request's time: its caller's `grpc-timeout` (gRPC and gRPC-Web, whose
/// callers send it too and CORS allows it) or `request_timeout`, whichever
/// is sooner.
pub(crate) fn timeout_of(
    protocol: Protocol,
    headers: &HeaderMap,
    request_timeout: Duration,
) -> Duration {
    if protocol.is_grpc() {
        grpc_timeout(headers).map_or(request_timeout, |t| t.min(request_timeout))
    } else {
        request_timeout
    }
}

/// The answer when `timeout` passed first: DEADLINE_EXCEEDED, 504 over REST.
pub(crate) fn deadline_exceeded(protocol: Protocol, timeout: Duration) -> Response<Body> {
    let status = tonic::Status::deadline_exceeded(format!(
        "not answered within the request's deadline of {}",
        humantime::format_duration(timeout)
    ));
    error_response(protocol, status)
}

/// The caller's deadline from its `grpc-timeout` header (`<1-8 digits><unit>`,
/// unit one of H M S m u n).
pub(crate) fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(&GRPC_TIMEOUT)?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    // Digits only: `u64::from_str` would also take a leading `+`.
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn with_timeout(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-timeout", HeaderValue::from_str(value).expect("ascii"));
        headers
    }

    #[test]
    fn reads_grpc_timeout_in_every_unit() {
        for (value, expected) in [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("4S", Duration::from_secs(4)),
            ("250m", Duration::from_millis(250)),
            ("99u", Duration::from_micros(99)),
            ("7n", Duration::from_nanos(7)),
            ("99999999H", Duration::from_secs(99_999_999 * 3600)),
        ] {
            assert_eq!(
                grpc_timeout(&with_timeout(value)),
                Some(expected),
                "{value}"
            );
        }
        for bad in [
            "",
            "S",
            "10",
            "10x",
            "-1S",
            "+1S",
            "+10m",
            "123456789S",
            "1.5S",
        ] {
            assert_eq!(grpc_timeout(&with_timeout(bad)), None, "{bad}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn the_sooner_of_grpc_timeout_and_request_timeout_wins() {
        let request_timeout = Duration::from_secs(30);
        for (timeout, protocol, expected) in [
            (Some("300m"), Protocol::Grpc, Duration::from_millis(300)),
            (Some("1H"), Protocol::Grpc, Duration::from_secs(30)),
            (None, Protocol::Grpc, Duration::from_secs(30)),
            // gRPC-Web's deadline is the caller's too.
            (Some("300m"), Protocol::GrpcWeb, Duration::from_millis(300)),
            (
                Some("200m"),
                Protocol::GrpcWebText,
                Duration::from_millis(200),
            ),
            // REST ignores grpc-timeout.
            (Some("300m"), Protocol::Http1, Duration::from_secs(30)),
            (Some("300m"), Protocol::H2c, Duration::from_secs(30)),
        ] {
            let headers = timeout.map_or_else(HeaderMap::new, with_timeout);
            assert_eq!(
                timeout_of(protocol, &headers, request_timeout),
                expected,
                "{timeout:?} {protocol:?}"
            );
        }
    }

    #[test]
    fn the_deadline_answer_is_in_the_callers_protocol() {
        let grpc = deadline_exceeded(Protocol::Grpc, Duration::from_millis(300));
        assert_eq!(grpc.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
        let rest = deadline_exceeded(Protocol::Http1, Duration::from_millis(300));
        assert_eq!(rest.status(), 504);
    }
}
