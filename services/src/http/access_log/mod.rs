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
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use http::{HeaderName, HeaderValue, Request, Response};
use status_gateway::{ServerFault, http_status};
use tokio::sync::Notify;

mod line_fields;

use self::line_fields::LineFields;
pub(crate) use super::logged_body::LoggedBody;
use super::{
    deadline::RequestDeadline, protocol::Protocol, request_context::RequestContext,
    request_headers::RequestHeaders, request_id::request_id_of, trace_context::TraceContext,
};
use crate::{
    emf::{CodeClass, Recorder, RouteId},
    telemetry::{Ending, ServerSpan, Spans},
};

/// The lines' target, whichever of this module's files writes them: what
/// `RUST_LOG` names to turn request lines on or off.
pub(super) const TARGET: &str = module_path!();

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
    /// Starts the entry of `request` (whose protocol is `protocol`, which
    /// started at `started` and must be answered by `deadline`): gives it
    /// its request id (returned, for the answer) and, in its
    /// [`RequestContext`] (for the peer call), its trace context and
    /// deadline; and, when sampled for export, its SERVER span.
    pub(crate) fn start<B>(
        log: &AccessLog,
        protocol: Protocol,
        started: Instant,
        deadline: RequestDeadline,
        request: &mut Request<B>,
    ) -> (Self, HeaderValue) {
        let shared = &log.shared;
        let headers = RequestHeaders::scan(request.headers());
        let request_id = request_id_of(headers.request_id);
        let mut trace = TraceContext::from_values(
            headers.amzn_trace_id,
            headers.traceparent,
            request.headers(),
        );
        shared.spans.sample(&mut trace);
        let target = target(protocol, request);
        // Nothing to carry when the line would not be written (RUST_LOG=warn).
        let line = tracing::enabled!(target: TARGET, tracing::Level::INFO).then(|| {
            let client = request
                .extensions()
                .get::<RequestContext>()
                .and_then(RequestContext::client);
            Box::new(LineFields::new(
                request,
                &headers,
                request_id.clone(),
                &trace,
                client,
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
        request
            .extensions_mut()
            .get_or_insert_default::<RequestContext>()
            .started(request_id.clone(), trace, deadline);
        shared.open.fetch_add(1, Ordering::AcqRel);
        let entry = Self {
            shared: Arc::clone(shared),
            route,
            protocol,
            started,
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
        if !self.protocol.is_grpc() {
            self.finish(status, None, Outcome::Completed);
            return response.map(LoggedBody::done);
        }
        if let Some(head_grpc_status) = response.headers().get(&GRPC_STATUS).map(grpc_code) {
            self.finish(status, Some(head_grpc_status), Outcome::Completed);
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

/// The path (REST) or the rpc (gRPC: `/package.Service/Method` without the slash).
fn target<B>(protocol: Protocol, request: &Request<B>) -> &str {
    let path = request.uri().path();
    if protocol.is_grpc() {
        path.strip_prefix('/').unwrap_or(path)
    } else {
        path
    }
}

/// `grpc-status`, parsed once (a `&str` name is parsed at every lookup).
pub(super) static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

pub(super) fn grpc_code(value: &HeaderValue) -> tonic::Code {
    tonic::Code::from_bytes(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use status_gateway::grpc_code_name;

    use super::*;

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
