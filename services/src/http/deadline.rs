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

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Body;
use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};
use tower::{Layer, Service};

use super::protocol::{Protocol, error_response};

/// When the request must have been answered, in its extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestDeadline(pub Instant);

impl RequestDeadline {
    /// Time left, zero once passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct DeadlineLayer {
    pub(crate) request_timeout: Duration,
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            request_timeout: self.request_timeout,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Deadline<S> {
    inner: S,
    request_timeout: Duration,
}

impl<S, B> Service<Request<B>> for Deadline<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let protocol = Protocol::of(&request);
        // gRPC-Web callers send `grpc-timeout` too (CORS allows it).
        let timeout = if protocol.is_grpc() {
            grpc_timeout(request.headers())
                .map_or(self.request_timeout, |t| t.min(self.request_timeout))
        } else {
            self.request_timeout
        };
        let deadline = Instant::now() + timeout;
        request.extensions_mut().insert(RequestDeadline(deadline));
        DeadlineFuture {
            inner: self.inner.call(request),
            sleep: sleep_until(deadline),
            protocol,
            timeout,
        }
    }
}

pin_project! {
    pub(crate) struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
        protocol: Protocol,
        timeout: Duration,
    }
}

impl<F> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(response) = this.inner.poll(cx) {
            return Poll::Ready(response);
        }
        match this.sleep.poll(cx) {
            Poll::Ready(()) => {
                let status = tonic::Status::deadline_exceeded(format!(
                    "not answered within the request's deadline of {}",
                    humantime::format_duration(*this.timeout)
                ));
                Poll::Ready(Ok(error_response(*this.protocol, status)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The caller's deadline from its `grpc-timeout` header (`<1-8 digits><unit>`,
/// unit one of H M S m u n).
pub(crate) fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
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
    use tower::ServiceExt;

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

    /// A handler that never answers.
    fn hung()
    -> impl Service<Request<()>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
    {
        tower::service_fn(|_: Request<()>| std::future::pending())
    }

    fn request(grpc_timeout: Option<&str>, content_type: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().uri("/x");
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        if let Some(value) = grpc_timeout {
            builder = builder.header("grpc-timeout", value);
        }
        builder.body(()).expect("request")
    }

    #[tokio::test(start_paused = true)]
    async fn the_sooner_of_grpc_timeout_and_request_timeout_wins() {
        let layer = DeadlineLayer {
            request_timeout: Duration::from_secs(30),
        };
        let grpc = Some("application/grpc");
        for (timeout, content_type, expected) in [
            (Some("300m"), grpc, Duration::from_millis(300)),
            (Some("1H"), grpc, Duration::from_secs(30)),
            (None, grpc, Duration::from_secs(30)),
            // gRPC-Web's deadline is the caller's too.
            (
                Some("300m"),
                Some("application/grpc-web+proto"),
                Duration::from_millis(300),
            ),
            (
                Some("200m"),
                Some("application/grpc-web-text"),
                Duration::from_millis(200),
            ),
            // REST ignores grpc-timeout.
            (Some("300m"), None, Duration::from_secs(30)),
        ] {
            let started = Instant::now();
            let response = layer
                .layer(hung())
                .oneshot(request(timeout, content_type))
                .await
                .expect("infallible");
            assert_eq!(started.elapsed(), expected, "{timeout:?} {content_type:?}");
            if content_type.is_some() {
                assert_eq!(response.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
            } else {
                assert_eq!(response.status(), 504);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_handler_sees_its_deadline() {
        let layer = DeadlineLayer {
            request_timeout: Duration::from_secs(30),
        };
        let seen = tower::service_fn(|request: Request<()>| async move {
            let deadline = request.extensions().get::<RequestDeadline>().copied();
            assert_eq!(
                deadline.map(RequestDeadline::remaining),
                Some(Duration::from_millis(300))
            );
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let response = layer
            .layer(seen)
            .oneshot(request(Some("300m"), Some("application/grpc")))
            .await
            .expect("infallible");
        assert_eq!(response.status(), 200);
    }
}
