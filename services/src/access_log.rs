//! One log line per request, REST or gRPC: method, path (the rpc, for gRPC),
//! HTTP status, gRPC status, latency and request id.
//!
//! The request id (`x-request-id`, set by tower-http's request-id layer when
//! the caller sent none) is also a field of the request's tracing span, so
//! every line logged while handling the request carries it.
//!
//! A gRPC status usually comes in the trailers, after the body; a stream's
//! latency is its whole life. So for gRPC the line is written when the
//! response body ends (or is dropped, when the client goes away), not when
//! the headers are sent.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
    time::Instant,
};

use http::{HeaderMap, Method, Request, Response, header::CONTENT_TYPE};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tracing::{Instrument, Span, instrument::Instrumented};

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Whether a request speaks gRPC (including `application/grpc+proto`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLogLayer;

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog { inner }
    }
}

#[derive(Debug, Clone)]
pub struct AccessLog<S> {
    inner: S,
}

/// What the log line needs, carried until the response is complete.
#[derive(Debug)]
struct Entry {
    method: Method,
    path: String,
    started: Instant,
    span: Span,
}

impl Entry {
    fn log(self, http_status: Option<u16>, grpc_status: Option<&str>, outcome: &str) {
        // Whole microseconds, shown in milliseconds: 0.16, not 0.16048099999999998.
        let latency_ms = self.started.elapsed().as_micros() as f64 / 1000.0;
        tracing::info!(
            parent: &self.span,
            method = %self.method,
            path = %self.path,
            status = http_status,
            grpc_status,
            latency_ms,
            "{outcome}"
        );
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AccessLog<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<LoggedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let request_id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let span = tracing::info_span!("request", request_id);
        let entry = Entry {
            method: request.method().clone(),
            path: request.uri().path().to_owned(),
            started: Instant::now(),
            span: span.clone(),
        };
        let grpc = is_grpc(request.headers());
        ResponseFuture {
            inner: self.inner.call(request).instrument(span),
            entry: Some(entry),
            grpc,
        }
    }
}

pin_project! {
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        entry: Option<Entry>,
        grpc: bool,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<LoggedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        let Some(entry) = this.entry.take() else {
            // Polled again after completion: a caller bug, not ours to log.
            return Poll::Ready(result.map(|response| response.map(LoggedBody::done)));
        };
        let response = match result {
            Ok(response) => response,
            Err(error) => {
                entry.log(None, None, "request failed");
                return Poll::Ready(Err(error));
            }
        };
        let http_status = response.status().as_u16();
        // "Trailers-only" gRPC responses (most errors) put grpc-status in the
        // headers; then the response is complete already.
        let header_grpc_status = response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok());
        if !*this.grpc || header_grpc_status.is_some() {
            entry.log(Some(http_status), header_grpc_status, "request");
            return Poll::Ready(Ok(response.map(LoggedBody::done)));
        }
        Poll::Ready(Ok(
            response.map(|body| LoggedBody::pending(body, entry, http_status))
        ))
    }
}

pin_project! {
    /// A response body that writes the access log line when it ends.
    pub struct LoggedBody<B> {
        #[pin]
        inner: B,
        pending: Option<(Entry, u16)>,
    }

    impl<B> PinnedDrop for LoggedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((entry, http_status)) = this.project().pending.take() {
                entry.log(Some(http_status), None, "request ended by client");
            }
        }
    }
}

impl<B> LoggedBody<B> {
    fn done(inner: B) -> Self {
        Self {
            inner,
            pending: None,
        }
    }

    fn pending(inner: B, entry: Entry, http_status: u16) -> Self {
        Self {
            inner,
            pending: Some((entry, http_status)),
        }
    }
}

impl<B: Body> Body for LoggedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        let finished = match &frame {
            Some(Ok(frame)) => frame.trailers_ref().map(|trailers| {
                trailers
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            }),
            Some(Err(_)) => Some(None),
            None => Some(None),
        };
        if let Some(grpc_status) = finished
            && let Some((entry, http_status)) = this.pending.take()
        {
            entry.log(Some(http_status), grpc_status.as_deref(), "request");
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
