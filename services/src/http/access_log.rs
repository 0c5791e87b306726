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
//! the response body ends (or is dropped), not when the head is sent
//! ([`super::logged_body`]). The line itself is a typed record written
//! without `tracing`'s formatting ([`crate::logging::access_line`]); this
//! module decides whether it is written (`RUST_LOG`, for this module's
//! target, checked once when the request starts) and carries its fields.
//!
//! Every request is counted open from its start until its line is written
//! ([`InFlightRequests`]): HTTP/2 streams run as tasks of their own, so the
//! server waits for the count to reach zero before its last metrics and its
//! "stopped" line. Requests the server cuts off at the shutdown timeout are
//! `outcome: aborted` (UNAVAILABLE / 503), not the client's cancellation.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, header::USER_AGENT,
};
use status_gateway::{ServerFault, grpc_code_name, http_status};
use tokio::sync::Notify;

pub(crate) use super::logged_body::LoggedBody;
use super::{
    protocol::Protocol,
    request_id::ensure_request_id,
    trace_context::{Hex, TraceContext},
};
use crate::{
    emf::{CodeClass, Recorder, RouteId},
    logging::access_line::{AccessRecord, Resource, write_access_line},
    telemetry::{Ending, ServerSpan, Spans},
};

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
    pub(super) protocol: Protocol,
    started: Instant,
    /// None when request lines are off (RUST_LOG=warn): nothing to carry.
    /// Boxed: inline, its ~300 bytes made every move of the request's
    /// future and answer dearer than the allocation (bench/findings.md).
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

/// What the line needs of the request, kept without copying text: the
/// header values and the URI share the request's bytes.
#[derive(Debug)]
struct LineFields {
    request_id: HeaderValue,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    parent_span_id: Option<[u8; 8]>,
    amzn_trace_root: Option<[u8; 35]>,
    method: Method,
    /// Its path is the line's `path` (REST) or `rpc` (gRPC).
    uri: Uri,
    peer: Option<SocketAddr>,
    forwarded_for: Option<IpAddr>,
    user_agent: Option<HeaderValue>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy)]
pub(super) enum Outcome {
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
        let line = tracing::enabled!(tracing::Level::INFO)
            .then(|| Box::new(LineFields::new(request, request_id.clone(), &trace)));
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
            .insert(super::request_id::REQUEST_ID.clone(), request_id);
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
        let head_grpc_status = response.headers().get(&GRPC_STATUS).map(grpc_code);
        if !self.protocol.is_grpc() || head_grpc_status.is_some() {
            self.finish(status, head_grpc_status, Outcome::Completed);
            return response.map(LoggedBody::done);
        }
        response.map(|body| LoggedBody::pending(body, (self, status)))
    }

    /// How a request that ended without its whole answer ended: cancelled
    /// by its client, or aborted by the server's stop.
    pub(super) fn cut_short(&self) -> Outcome {
        if self.shared.aborting.load(Ordering::Relaxed) {
            Outcome::Aborted
        } else {
            Outcome::Cancelled
        }
    }

    /// Counts the request and writes its line.
    pub(super) fn finish(
        mut self,
        status: u16,
        grpc_status: Option<tonic::Code>,
        outcome: Outcome,
    ) {
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
    fn new<B>(request: &Request<B>, request_id: HeaderValue, trace: &TraceContext) -> Self {
        Self {
            request_id,
            trace_id: trace.trace_id_bytes(),
            span_id: trace.span_id_bytes(),
            parent_span_id: trace.parent_id_bytes(),
            amzn_trace_root: trace.amzn_root(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            peer: request.extensions().get::<ClientAddress>().map(|c| c.0),
            forwarded_for: last_forwarded_for(request.headers()),
            user_agent: request.headers().get(USER_AGENT).cloned(),
        }
    }

    fn write(
        &self,
        service: &str,
        protocol: Protocol,
        latency: Duration,
        status: u16,
        grpc_code: Option<tonic::Code>,
        outcome: Outcome,
    ) {
        write_access_line(&self.record(service, protocol, latency, status, grpc_code, outcome));
    }

    /// The line's record: these fields and how the request ended.
    fn record<'a>(
        &'a self,
        service: &'a str,
        protocol: Protocol,
        latency: Duration,
        status: u16,
        grpc_code: Option<tonic::Code>,
        outcome: Outcome,
    ) -> AccessRecord<'a> {
        let path = self.uri.path();
        let resource = if protocol.is_grpc() {
            Resource::Rpc(path.strip_prefix('/').unwrap_or(path))
        } else {
            Resource::Path(path)
        };
        AccessRecord {
            target: module_path!(),
            service,
            request_id: self.request_id.to_str().ok(),
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            amzn_trace_root: self.amzn_trace_root,
            method: self.method.as_str(),
            resource,
            protocol: protocol.as_str(),
            status,
            grpc_code: grpc_code.map(grpc_code_name),
            latency,
            // The client is the last X-Forwarded-For hop, the one the load
            // balancer appended; earlier hops are whatever the caller sent.
            client: self.forwarded_for.or(self.peer.map(|peer| peer.ip())),
            peer: self.peer,
            // Only visible ASCII (and tabs) is written: other bytes leave it out.
            user_agent: self.user_agent.as_ref().and_then(|v| v.to_str().ok()),
            outcome: outcome.as_str(),
        }
    }

    /// The error line of a request whose handler panicked or failed on
    /// the server's side: once, with the request's ids.
    fn write_fault(&self, service: &str, grpc_code: tonic::Code, error: &str, message: &str) {
        tracing::error!(
            service,
            request_id = self.request_id.to_str().ok(),
            trace_id = %Hex(&self.trace_id),
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

/// `grpc-status`, parsed once (a `&str` name is parsed at every lookup).
pub(super) static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

pub(super) fn grpc_code(value: &HeaderValue) -> tonic::Code {
    tonic::Code::from_bytes(value.as_bytes())
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
    fn the_record_takes_the_requests_fields_as_the_line_shows_them() {
        let trace_headers = [(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )];
        // (protocol, uri, user agent bytes, forwarded for) -> (resource, user agent, client)
        for (protocol, uri, agent, forwarded, resource, user_agent, client) in [
            (
                Protocol::Http1,
                "/service-a/status?x=1",
                &b"curl/8.0"[..],
                None,
                "/service-a/status",
                Some("curl/8.0"),
                "10.0.0.9",
            ),
            (
                Protocol::Grpc,
                "/scdemo.S/Get",
                b"tab\there",
                Some("6.6.6.6, 203.0.113.7"),
                "scdemo.S/Get",
                Some("tab\there"),
                "203.0.113.7",
            ),
            // Bytes that are not visible ASCII: the user agent is left out.
            (
                Protocol::Http1,
                "/caf%C3%A9",
                b"bad \xff\xfe agent",
                None,
                "/caf%C3%A9",
                None,
                "10.0.0.9",
            ),
        ] {
            let mut request = Request::builder().uri(uri).body(()).expect("request");
            for (name, value) in trace_headers {
                request
                    .headers_mut()
                    .insert(name, HeaderValue::from_static(value));
            }
            request.headers_mut().insert(
                USER_AGENT,
                HeaderValue::from_bytes(agent).expect("obs-text"),
            );
            if let Some(hops) = forwarded {
                request
                    .headers_mut()
                    .insert("x-forwarded-for", HeaderValue::from_static(hops));
            }
            let peer: SocketAddr = "10.0.0.9:52114".parse().expect("address");
            request.extensions_mut().insert(ClientAddress(peer));
            let trace = TraceContext::from_headers(request.headers());
            let fields = LineFields::new(&request, HeaderValue::from_static("id-1"), &trace);
            let record = fields.record(
                "service-a",
                protocol,
                Duration::from_micros(1),
                200,
                None,
                Outcome::Completed,
            );
            let written = match record.resource {
                Resource::Path(path) if !protocol.is_grpc() => path,
                Resource::Rpc(rpc) if protocol.is_grpc() => rpc,
                other => panic!("{other:?} for {protocol:?}"),
            };
            assert_eq!(written, resource);
            assert_eq!(record.user_agent, user_agent, "{uri}");
            assert_eq!(record.client, Some(client.parse().expect("ip")));
            assert_eq!(record.peer, Some(peer));
            assert_eq!(record.request_id, Some("id-1"));
            assert_eq!(record.trace_id, trace.trace_id_bytes());
            assert_eq!(record.parent_span_id, trace.parent_id_bytes());
            assert_eq!(record.method, "GET");
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
