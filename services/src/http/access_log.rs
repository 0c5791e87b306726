//! One log line per request, REST or gRPC, however it ends: answered,
//! refused, timed out, or abandoned by the client (`outcome: cancelled`,
//! HTTP 499 / CANCELLED when no answer was sent). The same point counts the
//! request for the EMF metrics ([`crate::emf`]), with request lines on or off.
//!
//! A request's [`Entry`], started by the envelope ([`super::envelope`]),
//! also gives it its id ([`super::request_id`]) and its trace context
//! ([`super::trace_context`]); both are plain fields of the line, not a
//! tracing span, because a span per request and its re-serialisation into
//! each line cost more than the line.
//!
//! A gRPC status usually comes in the trailers, after the body, and a
//! stream's latency is its whole life; so for gRPC the line is written when
//! the response body ends (or is dropped), not when the head is sent. A body
//! ends with its trailers, with gRPC-Web's trailer frame (the status as the
//! last data frame), or when it says so (`is_end_stream`, after which hyper
//! stops polling it and drops it).
//!
//! Every request is counted open from its start until its line is written
//! ([`InFlightRequests`]): HTTP/2 streams run as tasks of their own, so the
//! server waits for the count to reach zero before its last metrics and its
//! "stopped" line. Requests the server cuts off at the shutdown timeout are
//! `outcome: aborted` (UNAVAILABLE / 503), not the client's cancellation.

use std::{
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use bytes::Buf;
use http::{HeaderMap, HeaderValue, Method, Request, Response, header::USER_AGENT};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use status_gateway::{ServerFault, grpc_code_name, http_status};
use tokio::sync::Notify;

use super::{protocol::Protocol, request_id::ensure_request_id, trace_context::TraceContext};
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

/// The access log of one service: its name, its metrics and its requests
/// in flight. Built once; each request's [`Entry`] refers to it.
#[derive(Debug, Clone)]
pub(crate) struct AccessLog {
    shared: Arc<Shared>,
}

/// What every request of one service shares.
#[derive(Debug)]
struct Shared {
    service: Arc<str>,
    recorder: Arc<Recorder>,
    spans: Spans,
    /// Requests whose line is not written yet.
    open: AtomicUsize,
    /// Woken when `open` falls to zero.
    all_ended: Notify,
    /// Set when the server cuts off what is still open at its shutdown
    /// timeout: requests ending from then on were aborted, not cancelled.
    aborting: AtomicBool,
}

impl AccessLog {
    pub(crate) fn new(service: &str, recorder: Arc<Recorder>, spans: Spans) -> Self {
        Self {
            shared: Arc::new(Shared {
                service: service.into(),
                recorder,
                spans,
                open: AtomicUsize::new(0),
                all_ended: Notify::new(),
                aborting: AtomicBool::new(false),
            }),
        }
    }

    /// The count of this layer's requests in flight, for the server's stop.
    pub(crate) fn in_flight(&self) -> InFlightRequests {
        InFlightRequests(Arc::clone(&self.shared))
    }
}

/// The requests of one service whose access line is not written yet.
#[derive(Debug, Clone)]
pub(crate) struct InFlightRequests(Arc<Shared>);

impl InFlightRequests {
    /// From now on, requests that end without their whole answer were cut
    /// off by the server (`outcome: aborted`).
    pub(crate) fn aborting(&self) {
        self.0.aborting.store(true, Ordering::Relaxed);
    }

    /// Waits until every request has written its line, at most `timeout`;
    /// returns how many are still open then.
    pub(crate) async fn ended(&self, timeout: Duration) -> usize {
        let open = &self.0.open;
        let all_ended = async {
            loop {
                let notified = self.0.all_ended.notified();
                if open.load(Ordering::Acquire) == 0 {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(timeout, all_ended).await;
        open.load(Ordering::Acquire)
    }
}

/// One request's access entry: what the metrics and the line need,
/// carried until the request ends. It is the finished record too: start,
/// end (latency), ids, method, route, status and gRPC code.
#[derive(Debug)]
pub(crate) struct Entry {
    shared: Arc<Shared>,
    route: RouteId,
    protocol: Protocol,
    started: Instant,
    /// None when request lines are off (RUST_LOG=warn): nothing to carry.
    line: Option<Box<LineFields>>,
    /// The request's SERVER span, when trace export sampled it.
    span: Option<Box<ServerSpan>>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.shared.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.all_ended.notify_waiters();
        }
    }
}

#[derive(Debug)]
struct LineFields {
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
    /// The server cut it off at its shutdown timeout.
    Aborted,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Aborted => "aborted",
        }
    }
}

impl Entry {
    /// Starts the entry of `request` (whose protocol is `protocol`): gives it
    /// its request id (returned, for the answer), its trace context (in its
    /// extensions, for the peer call) and, when sampled for export, its
    /// SERVER span.
    pub(crate) fn start<B>(
        log: &AccessLog,
        protocol: Protocol,
        request: &mut Request<B>,
    ) -> (Self, HeaderValue) {
        let shared = &log.shared;
        let request_id = ensure_request_id(request.headers_mut());
        let mut trace = TraceContext::from_headers(request.headers());
        shared.spans.sample(&mut trace);
        let target = target(protocol, request);
        // Nothing to carry when the line would not be written (RUST_LOG=warn).
        let line = tracing::enabled!(tracing::Level::INFO).then(|| {
            Box::new(LineFields::new(
                request,
                target,
                request_id.clone(),
                trace.clone(),
            ))
        });
        let route = shared.recorder.route(target);
        let span = trace.sink().map(|sink| {
            Box::new(ServerSpan::new(
                trace.clone(),
                sink.clone(),
                request.method(),
                target,
                protocol.is_grpc(),
                shared.recorder.is_known(route),
            ))
        });
        request.extensions_mut().insert(trace);
        shared.open.fetch_add(1, Ordering::AcqRel);
        let entry = Self {
            shared: Arc::clone(shared),
            route,
            protocol,
            started: Instant::now(),
            line,
            span,
        };
        (entry, request_id)
    }

    /// The request ended without an answer: the client went away (or the
    /// server cut it off at its stop). 499 is nginx's "client closed request".
    pub(crate) fn abandoned(self) {
        let outcome = self.cut_short();
        self.finish(499, None, outcome);
    }

    /// The answer's head is ready: puts the request id on it, writes a
    /// handler's panic or server fault once, and counts and logs the request
    /// now (REST, trailers-only gRPC) or when its body ends.
    pub(crate) fn answered<B>(
        self,
        mut response: Response<B>,
        request_id: HeaderValue,
    ) -> Response<LoggedBody<B>> {
        response
            .headers_mut()
            .insert(super::request_id::REQUEST_ID_HEADER, request_id);
        if let Some(line) = &self.line {
            let service = &self.shared.service;
            if let Some(Panicked(message)) = response.extensions().get::<Panicked>() {
                line.write_fault(service, tonic::Code::Internal, message, "handler panicked");
            } else if let Some(fault) = response.extensions().get::<ServerFault>() {
                line.write_fault(service, fault.code, &fault.message, "request failed");
            }
        }
        let status = response.status().as_u16();
        // REST answers, and "trailers-only" gRPC answers (most errors, with
        // grpc-status in the head), are complete already.
        let head_grpc_status = response.headers().get("grpc-status").map(grpc_code);
        if !self.protocol.is_grpc() || head_grpc_status.is_some() {
            self.finish(status, head_grpc_status, Outcome::Completed);
            return response.map(LoggedBody::done);
        }
        response.map(|body| LoggedBody::pending(body, (self, status)))
    }

    /// How a request that ended without its whole answer ended: cancelled
    /// by its client, or aborted by the server's stop.
    fn cut_short(&self) -> Outcome {
        if self.shared.aborting.load(Ordering::Relaxed) {
            Outcome::Aborted
        } else {
            Outcome::Cancelled
        }
    }

    /// Counts the request and writes its line.
    fn finish(mut self, status: u16, grpc_status: Option<tonic::Code>, outcome: Outcome) {
        let latency = self.started.elapsed();
        let grpc = self.protocol.is_grpc();
        let grpc_code = match (grpc, grpc_status, outcome) {
            (false, ..) => None,
            (true, Some(code), _) => Some(code),
            (true, None, Outcome::Cancelled) => Some(tonic::Code::Cancelled),
            (true, None, Outcome::Aborted) => Some(tonic::Code::Unavailable),
            // A gRPC answer that ended without a status: the stream broke.
            (true, None, Outcome::Completed) => Some(tonic::Code::Unknown),
        };
        // What a REST client cut off by the server sees: the service stopped.
        let status = match (outcome, grpc) {
            (Outcome::Aborted, false) => 503,
            _ => status,
        };
        // gRPC answers count by their code's HTTP equivalent.
        let class_status = grpc_code.map_or(status, |code| http_status(code).as_u16());
        self.shared
            .recorder
            .record_request(self.route, CodeClass::of_http(class_status), latency);
        if let Some(line) = &self.line {
            line.write(
                &self.shared.service,
                self.protocol,
                latency,
                status,
                grpc_code,
                outcome,
            );
        }
        if let Some(span) = self.span.take() {
            span.end(Ending { status, grpc_code });
        }
    }
}

impl LineFields {
    fn new<B>(
        request: &Request<B>,
        target: &str,
        request_id: HeaderValue,
        trace: TraceContext,
    ) -> Self {
        Self {
            request_id,
            trace,
            method: request.method().clone(),
            target: truncated(target),
            peer: request.extensions().get::<ClientAddress>().map(|c| c.0),
            forwarded_for: last_forwarded_for(request.headers()),
            user_agent: request
                .headers()
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(truncated),
        }
    }

    fn write(
        &self,
        service: &str,
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
        // The client is the last X-Forwarded-For hop, the one the load
        // balancer appended; earlier hops are whatever the caller sent.
        let client = self.forwarded_for.or(self.peer.map(|peer| peer.ip()));
        tracing::info!(
            service,
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
            outcome = outcome.as_str(),
            "request"
        );
    }

    /// The error line of a request whose handler panicked or failed on
    /// the server's side: once, with the request's ids.
    fn write_fault(&self, service: &str, grpc_code: tonic::Code, error: &str, message: &str) {
        tracing::error!(
            service,
            request_id = self.request_id.to_str().ok(),
            trace_id = %self.trace.trace_id(),
            grpc_code = grpc_code_name(grpc_code),
            error,
            "{message}"
        );
    }
}

/// The path (REST) or the rpc (gRPC: `/package.Service/Method` without the slash).
fn target<B>(protocol: Protocol, request: &Request<B>) -> &str {
    let path = request.uri().path();
    if protocol.is_grpc() {
        path.strip_prefix('/').unwrap_or(path)
    } else {
        path
    }
}

/// The right-most `X-Forwarded-For` hop: the address the nearest proxy (the
/// ALB) saw the request come from. Every hop left of it was sent by the
/// client and proves nothing (`X-Forwarded-For: 6.6.6.6` is one header away).
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    value.rsplit(',').next()?.trim().parse().ok()
}

fn grpc_code(value: &HeaderValue) -> tonic::Code {
    tonic::Code::from_bytes(value.as_bytes())
}

/// The status of a gRPC-Web trailer frame (flag 0x80, then the trailers as
/// `name:value\r\n` lines), as tonic-web sends it: one data frame of its
/// own, base64 as a whole when it answers `grpc-web-text` (which it does
/// when the client accepts it, whatever the request's own type). The first
/// byte tells them apart: 0x80 (binary) or `g` (base64 of 0x80), where a
/// message frame starts with 0x00/0x01 or `A`. None for any other frame.
fn grpc_web_trailer_status(chunk: &[u8]) -> Option<tonic::Code> {
    use base64::Engine as _;
    let decoded;
    let frame = match chunk.first()? {
        0x80 => chunk,
        b'g' => {
            decoded = base64::engine::general_purpose::STANDARD
                .decode(chunk)
                .ok()?;
            decoded.as_slice()
        }
        _ => return None,
    };
    let (&flag, rest) = frame.split_first()?;
    if flag != 0x80 || rest.len() < 4 {
        return None;
    }
    let trailers = &rest[4..];
    let code = trailers
        .split(|&byte| byte == b'\n')
        .find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"grpc-status")
                .then(|| value[1..].trim_ascii())
        })
        .map_or(tonic::Code::Unknown, tonic::Code::from_bytes);
    Some(code)
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
                let outcome = entry.cut_short();
                entry.finish(status, None, outcome);
            }
        }
    }
}

impl<B> LoggedBody<B> {
    pub(crate) fn done(inner: B) -> Self {
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

impl<B: Body> Body for LoggedBody<B>
where
    B::Data: Buf,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        let Some((entry, _)) = this.pending.as_ref() else {
            return Poll::Ready(frame);
        };
        // Some(code): the answer is over, with this status if one was seen.
        let ended = match &frame {
            Some(Ok(frame)) => match (frame.trailers_ref(), frame.data_ref()) {
                (Some(trailers), _) => Some(trailers.get("grpc-status").map(grpc_code)),
                (None, Some(data)) if entry.protocol.is_grpc_web() => {
                    grpc_web_trailer_status(data.chunk()).map(Some)
                }
                _ => None,
            },
            Some(Err(_)) | None => Some(None),
        };
        // hyper stops polling (and drops) a body once it says it has ended.
        let ended = ended.or_else(|| this.inner.is_end_stream().then_some(None));
        if let Some(grpc_status) = ended
            && let Some((entry, status)) = this.pending.take()
        {
            entry.finish(status, grpc_status, Outcome::Completed);
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
    fn forwarded_for_is_the_hop_the_nearest_proxy_appended() {
        for (value, expected) in [
            ("203.0.113.7", Some("203.0.113.7")),
            // A client that sends its own header cannot choose the address.
            ("6.6.6.6, 203.0.113.7", Some("203.0.113.7")),
            ("10.0.0.1, 2001:db8::1 ", Some("2001:db8::1")),
            ("10.0.0.1, not-an-ip", None),
            ("", None),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-forwarded-for",
                HeaderValue::from_str(value).expect("ascii"),
            );
            assert_eq!(
                last_forwarded_for(&headers),
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
    fn grpc_web_trailer_frames_give_their_status() {
        use base64::Engine as _;
        let frame = |flag: u8, payload: &[u8]| {
            let mut frame = vec![flag];
            frame.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
            frame.extend_from_slice(payload);
            frame
        };
        let ok = frame(0x80, b"grpc-status:0\r\ngrpc-message:\r\n");
        let late = frame(0x80, b"grpc-message:too%20slow\r\ngrpc-status:4\r\n");
        let message = frame(0, b"\x0a\x00");
        let text = |frame: &[u8]| base64::engine::general_purpose::STANDARD.encode(frame);
        for (chunk, expected) in [
            (ok.clone(), Some(tonic::Code::Ok)),
            (late.clone(), Some(tonic::Code::DeadlineExceeded)),
            (message.clone(), None),
            (text(&ok).into_bytes(), Some(tonic::Code::Ok)),
            (
                text(&late).into_bytes(),
                Some(tonic::Code::DeadlineExceeded),
            ),
            (text(&message).into_bytes(), None),
            (frame(0x80, b"no-status:1\r\n"), Some(tonic::Code::Unknown)),
            (Vec::new(), None),
        ] {
            assert_eq!(
                grpc_web_trailer_status(&chunk),
                expected,
                "{:?}",
                String::from_utf8_lossy(&chunk)
            );
        }
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
