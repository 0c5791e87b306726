//! One log line per request, REST or gRPC, however it ends: answered,
//! refused, timed out, or abandoned by the client (`outcome: cancelled`,
//! HTTP 499 / CANCELLED when no answer was sent). The same point counts the
//! request for the EMF metrics ([`crate::emf`]), with request lines on or off.
//!
//! This layer also gives the request its id ([`super::request_id`]) and its
//! trace context ([`super::trace_context`]); both are plain fields of the
//! line, not a tracing span, because a span per request and its
//! re-serialisation into each line cost more than the line.
//!
//! A gRPC status usually comes in the trailers, after the body, and a
//! stream's latency is its whole life; so for gRPC the line is written when
//! the response body ends (or is dropped), not when the head is sent.

use std::{
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Instant,
};

use http::{HeaderMap, HeaderValue, Method, Request, Response, header::USER_AGENT};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use status_gateway::{grpc_code_name, http_status};
use tower::{Layer, Service};

use super::{
    protocol::{Protocol, is_grpc},
    request_id::ensure_request_id,
    trace_context::TraceContext,
};
use crate::{
    emf::{CodeClass, Recorder, RouteId},
    telemetry::{Ending, ServerSpan, Spans},
};

/// Longest path or user agent written to a line; the rest is cut.
const MAX_LOGGED_TEXT: usize = 256;

/// The address of the connection a request came on, put in its extensions
/// by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub SocketAddr);

/// Set on a response by the catch-panic layer: the handler panicked with this message.
#[derive(Debug, Clone)]
pub(crate) struct Panicked(pub(crate) String);

#[derive(Debug, Clone)]
pub(crate) struct AccessLogLayer {
    service: Arc<str>,
    recorder: Arc<Recorder>,
    spans: Spans,
}

impl AccessLogLayer {
    pub(crate) fn new(service: &str, recorder: Arc<Recorder>, spans: Spans) -> Self {
        Self {
            service: service.into(),
            recorder,
            spans,
        }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            service: Arc::clone(&self.service),
            recorder: Arc::clone(&self.recorder),
            spans: self.spans.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AccessLog<S> {
    inner: S,
    service: Arc<str>,
    recorder: Arc<Recorder>,
    spans: Spans,
}

/// What the metrics and the line need, carried until the request ends.
#[derive(Debug)]
struct Entry {
    recorder: Arc<Recorder>,
    route: RouteId,
    protocol: Protocol,
    started: Instant,
    /// None when request lines are off (RUST_LOG=warn): nothing to carry.
    line: Option<Box<LineFields>>,
    /// The request's SERVER span, when trace export sampled it.
    span: Option<Box<ServerSpan>>,
}

#[derive(Debug)]
struct LineFields {
    service: Arc<str>,
    request_id: HeaderValue,
    trace: TraceContext,
    method: Method,
    /// The path (REST) or the rpc (gRPC), cut to [`MAX_LOGGED_TEXT`].
    target: String,
    peer: Option<SocketAddr>,
    forwarded_for: Option<IpAddr>,
    user_agent: Option<String>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    /// The whole answer was handed to the connection.
    Completed,
    /// The client went away first (or the connection broke).
    Cancelled,
}

impl Entry {
    fn new<B>(
        access_log: &AccessLog<impl Sized>,
        request: &Request<B>,
        line: Option<LineFields>,
        trace: &TraceContext,
    ) -> Self {
        let route = access_log.recorder.route(target(request));
        let protocol = Protocol::of(request);
        let span = trace.sink().map(|sink| {
            Box::new(ServerSpan::new(
                trace.clone(),
                sink.clone(),
                request.method(),
                target(request),
                protocol.is_grpc(),
                access_log.recorder.is_known(route),
            ))
        });
        Self {
            recorder: Arc::clone(&access_log.recorder),
            route,
            protocol,
            started: Instant::now(),
            line: line.map(Box::new),
            span,
        }
    }

    /// Counts the request and writes its line.
    fn finish(self, status: u16, grpc_status: Option<&HeaderValue>, outcome: Outcome) {
        let latency = self.started.elapsed();
        let grpc = self.protocol.is_grpc();
        let grpc_code = match (grpc, grpc_status, outcome) {
            (false, ..) => None,
            (true, Some(value), _) => Some(tonic::Code::from_bytes(value.as_bytes())),
            (true, None, Outcome::Cancelled) => Some(tonic::Code::Cancelled),
            // gRPC-Web carries its status in the body's last frame, out of sight here.
            (true, None, Outcome::Completed) if self.protocol == Protocol::GrpcWeb => None,
            // A gRPC answer that ended without a status: the stream broke.
            (true, None, Outcome::Completed) => Some(tonic::Code::Unknown),
        };
        // gRPC answers count by their code's HTTP equivalent.
        let class_status = grpc_code.map_or(status, |code| http_status(code).as_u16());
        self.recorder
            .record_request(self.route, CodeClass::of_http(class_status), latency);
        if let Some(line) = self.line {
            line.write(self.protocol, latency, status, grpc_code, outcome);
        }
        if let Some(span) = self.span {
            span.end(Ending { status, grpc_code });
        }
    }
}

impl LineFields {
    fn new<B>(
        service: &Arc<str>,
        request: &Request<B>,
        request_id: HeaderValue,
        trace: TraceContext,
    ) -> Self {
        Self {
            service: Arc::clone(service),
            request_id,
            trace,
            method: request.method().clone(),
            target: truncated(target(request)),
            peer: request.extensions().get::<ClientAddress>().map(|c| c.0),
            forwarded_for: first_forwarded_for(request.headers()),
            user_agent: request
                .headers()
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(truncated),
        }
    }

    fn write(
        &self,
        protocol: Protocol,
        latency: std::time::Duration,
        status: u16,
        grpc_code: Option<tonic::Code>,
        outcome: Outcome,
    ) {
        // Whole microseconds, shown in milliseconds: 0.16, not 0.16048099999999998.
        let latency_ms = latency.as_micros() as f64 / 1000.0;
        let (path, rpc) = if protocol.is_grpc() {
            (None, Some(self.target.as_str()))
        } else {
            (Some(self.target.as_str()), None)
        };
        // The client is the first X-Forwarded-For hop when a proxy set one.
        let client = self.forwarded_for.or(self.peer.map(|peer| peer.ip()));
        tracing::info!(
            service = &*self.service,
            request_id = self.request_id.to_str().ok(),
            trace_id = %self.trace.trace_id(),
            span_id = %self.trace.span_id(),
            parent_span_id = self.trace.parent_id().map(tracing::field::display),
            amzn_trace_root = self.trace.amzn_root(),
            method = self.method.as_str(),
            path,
            rpc,
            protocol = protocol.as_str(),
            status,
            grpc_code = grpc_code.map(grpc_code_name),
            latency_ms,
            client = client.map(tracing::field::display),
            peer = self.peer.map(tracing::field::display),
            user_agent = self.user_agent.as_deref(),
            outcome = match outcome {
                Outcome::Completed => "completed",
                Outcome::Cancelled => "cancelled",
            },
            "request"
        );
    }
}

/// The path (REST) or the rpc (gRPC: `/package.Service/Method` without the slash).
fn target<B>(request: &Request<B>) -> &str {
    let path = request.uri().path();
    if is_grpc(request.headers()) {
        path.strip_prefix('/').unwrap_or(path)
    } else {
        path
    }
}

fn first_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    value.split(',').next()?.trim().parse().ok()
}

fn truncated(text: &str) -> String {
    if text.len() <= MAX_LOGGED_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_LOGGED_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
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

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let request_id = ensure_request_id(request.headers_mut());
        let mut trace = TraceContext::from_headers(request.headers());
        self.spans.sample(&mut trace);
        // Nothing to carry when the line would not be written (RUST_LOG=warn).
        let line = tracing::enabled!(tracing::Level::INFO)
            .then(|| LineFields::new(&self.service, &request, request_id.clone(), trace.clone()));
        let entry = Some(Entry::new(self, &request, line, &trace));
        request.extensions_mut().insert(trace);
        ResponseFuture {
            inner: self.inner.call(request),
            request_id,
            entry,
        }
    }
}

pin_project! {
    pub(crate) struct ResponseFuture<F> {
        #[pin]
        inner: F,
        request_id: HeaderValue,
        entry: Option<Entry>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before an answer: the client went away (or the
            // connection was closed at shutdown). 499 is nginx's "client
            // closed request".
            if let Some(entry) = this.project().entry.take() {
                entry.finish(499, None, Outcome::Cancelled);
            }
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<LoggedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match ready!(this.inner.poll(cx)) {
            Ok(response) => response,
            Err(error) => {
                if let Some(entry) = this.entry.take() {
                    entry.finish(500, None, Outcome::Cancelled);
                }
                return Poll::Ready(Err(error));
            }
        };
        response.headers_mut().insert(
            super::request_id::REQUEST_ID_HEADER,
            this.request_id.clone(),
        );
        let Some(entry) = this.entry.take() else {
            return Poll::Ready(Ok(response.map(LoggedBody::done)));
        };
        if let Some(Panicked(message)) = response.extensions().get::<Panicked>()
            && let Some(line) = &entry.line
        {
            tracing::error!(
                service = &*line.service,
                request_id = line.request_id.to_str().ok(),
                trace_id = %line.trace.trace_id(),
                error = message.as_str(),
                "handler panicked"
            );
        }
        let status = response.status().as_u16();
        // REST answers, and "trailers-only" gRPC answers (most errors, with
        // grpc-status in the head), are complete already.
        let head_grpc_status = response.headers().get("grpc-status");
        if !entry.protocol.is_grpc() || head_grpc_status.is_some() {
            entry.finish(status, head_grpc_status, Outcome::Completed);
            return Poll::Ready(Ok(response.map(LoggedBody::done)));
        }
        Poll::Ready(Ok(
            response.map(|body| LoggedBody::pending(body, (entry, status)))
        ))
    }
}

pin_project! {
    /// A response body that writes the access line when it ends.
    pub(crate) struct LoggedBody<B> {
        #[pin]
        inner: B,
        pending: Option<(Entry, u16)>,
    }

    impl<B> PinnedDrop for LoggedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((entry, status)) = this.project().pending.take() {
                entry.finish(status, None, Outcome::Cancelled);
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

    fn pending(inner: B, pending: (Entry, u16)) -> Self {
        Self {
            inner,
            pending: Some(pending),
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
        let ended = match &frame {
            Some(Ok(frame)) => frame.trailers_ref().map(|t| t.get("grpc-status").cloned()),
            Some(Err(_)) | None => Some(None),
        };
        if let Some(grpc_status) = ended
            && let Some((entry, status)) = this.pending.take()
        {
            entry.finish(status, grpc_status.as_ref(), Outcome::Completed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_the_first_valid_hop_only() {
        for (value, expected) in [
            ("203.0.113.7", Some("203.0.113.7")),
            ("203.0.113.7, 10.0.0.1", Some("203.0.113.7")),
            (" 2001:db8::1 ,10.0.0.1", Some("2001:db8::1")),
            ("not-an-ip, 10.0.0.1", None),
            ("", None),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-forwarded-for",
                HeaderValue::from_str(value).expect("ascii"),
            );
            assert_eq!(
                first_forwarded_for(&headers),
                expected.map(|ip| ip.parse().expect("ip")),
                "{value:?}"
            );
        }
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        assert_eq!(truncated("short"), "short");
        let long = "é".repeat(200);
        let cut = truncated(&long);
        assert!(
            cut.len() <= MAX_LOGGED_TEXT + 3 && cut.ends_with("..."),
            "{cut}"
        );
    }

    #[test]
    fn grpc_status_values_get_their_canonical_names() {
        for (value, name) in [
            ("0", "OK"),
            ("4", "DEADLINE_EXCEEDED"),
            ("14", "UNAVAILABLE"),
            ("99", "UNKNOWN"),
        ] {
            let code = tonic::Code::from_bytes(HeaderValue::from_static(value).as_bytes());
            assert_eq!(grpc_code_name(code), name);
        }
    }
}
