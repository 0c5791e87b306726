//! The spans themselves, built after the fact from what the access record
//! and the peer call already know: ids from the request's trace context,
//! times, and the attributes X-Ray reads (the stable semantic-convention
//! names: `http.*`/`url.*` for REST, `rpc.system`, `rpc.service`,
//! `rpc.method`, `rpc.grpc.status_code` for gRPC, `server.*` and
//! `peer.service` on the peer call).

use std::{borrow::Cow, time::SystemTime};

use opentelemetry::{
    KeyValue,
    trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState},
};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use tonic::Code;

use super::SpanSink;
use crate::http::TraceContext;

/// What a request's SERVER span needs from its start until it ends.
#[derive(Debug)]
pub(crate) struct ServerSpan {
    trace: TraceContext,
    sink: SpanSink,
    started: SystemTime,
    method: http::Method,
    /// The path (REST) or `package.Service/Method` (gRPC).
    target: String,
    grpc: bool,
    /// The path is one of the service's routes (all are literal paths).
    known_route: bool,
}

/// How a request ended, as the access record tells it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ending {
    pub(crate) status: u16,
    pub(crate) grpc_code: Option<Code>,
}

impl ServerSpan {
    pub(crate) fn new(
        trace: TraceContext,
        sink: SpanSink,
        method: &http::Method,
        target: &str,
        grpc: bool,
        known_route: bool,
    ) -> Self {
        Self {
            trace,
            sink,
            started: SystemTime::now(),
            method: method.clone(),
            target: target.to_owned(),
            grpc,
            known_route,
        }
    }

    pub(crate) fn end(self, ending: Ending) {
        let (name, attributes, status) = if self.grpc {
            let (name, attributes) = rpc_attributes(&self.target, ending.grpc_code);
            let status = ending
                .grpc_code
                .filter(|code| is_server_error(*code))
                .map_or(Status::Unset, error_status);
            (name, attributes, status)
        } else {
            http_server(&self.method, &self.target, self.known_route, ending.status)
        };
        send_span(
            &self.sink,
            &self.trace,
            SpanKind::Server,
            name,
            self.started,
            attributes,
            status,
        );
    }
}

/// The CLIENT span of a call to the peer. Its id is the parent the call
/// passes on, so the peer's SERVER span is its child.
#[derive(Debug)]
pub(crate) struct PeerCall {
    /// The call's context: a child of the request's SERVER span.
    trace: TraceContext,
    sink: SpanSink,
    started: SystemTime,
}

/// The rpc the peer call makes.
const PEER_RPC: &str = "scdemo.status.v1.StatusService/GetStatus";

impl PeerCall {
    /// Starts the call's span when the request's span is being recorded.
    pub(crate) fn start(request: &TraceContext) -> Option<Self> {
        let sink = request.sink()?.clone();
        Some(Self {
            trace: request.child(),
            sink,
            started: SystemTime::now(),
        })
    }

    /// The context the call carries (`traceparent` names this span).
    pub(crate) fn trace(&self) -> &TraceContext {
        &self.trace
    }

    pub(crate) fn end(self, code: Code) {
        let (name, mut attributes) = rpc_attributes(PEER_RPC, Some(code));
        attributes.extend(self.sink.peer_attributes().iter().cloned());
        let status = if code == Code::Ok {
            Status::Unset
        } else {
            error_status(code)
        };
        send_span(
            &self.sink,
            &self.trace,
            SpanKind::Client,
            name,
            self.started,
            attributes,
            status,
        );
    }
}

#[allow(clippy::too_many_arguments)]
/// Ends the span `trace` names (its ids, its parent) and hands it to `sink`.
fn send_span(
    sink: &SpanSink,
    trace: &TraceContext,
    kind: SpanKind,
    name: Cow<'static, str>,
    started: SystemTime,
    attributes: Vec<KeyValue>,
    status: Status,
) {
    let parent_id = trace.parent_id_bytes();
    sink.send(SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace.trace_id_bytes()),
            SpanId::from_bytes(trace.span_id_bytes()),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: parent_id.map_or(SpanId::INVALID, SpanId::from_bytes),
        // Our SERVER span's parent is the caller's; the CLIENT span's is ours.
        parent_span_is_remote: parent_id.is_some() && kind == SpanKind::Server,
        span_kind: kind,
        name,
        start_time: started,
        end_time: SystemTime::now(),
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: sink.scope().clone(),
    });
}

/// Span name and attributes of a REST request.
fn http_server(
    method: &http::Method,
    path: &str,
    known_route: bool,
    status: u16,
) -> (Cow<'static, str>, Vec<KeyValue>, Status) {
    let method = method.as_str().to_owned();
    let mut attributes = vec![
        KeyValue::new("http.request.method", method.clone()),
        KeyValue::new("url.path", path.to_owned()),
        KeyValue::new("http.response.status_code", i64::from(status)),
    ];
    // Unknown paths keep a bounded span name: no route, method only.
    let name = if known_route {
        attributes.push(KeyValue::new("http.route", path.to_owned()));
        format!("{method} {path}")
    } else {
        method
    };
    let status = if status >= 500 {
        Status::error(status.to_string())
    } else {
        Status::Unset
    };
    (name.into(), attributes, status)
}

/// Span name and attributes of a gRPC call to `package.Service/Method`.
fn rpc_attributes(rpc: &str, code: Option<Code>) -> (Cow<'static, str>, Vec<KeyValue>) {
    let mut attributes = Vec::with_capacity(8);
    attributes.push(KeyValue::new("rpc.system", "grpc"));
    if let Some((service, method)) = rpc.split_once('/') {
        attributes.push(KeyValue::new("rpc.service", service.to_owned()));
        attributes.push(KeyValue::new("rpc.method", method.to_owned()));
    }
    // gRPC-Web's status is in the body, out of the access record's sight.
    if let Some(code) = code {
        attributes.push(KeyValue::new("rpc.grpc.status_code", code as i64));
    }
    (rpc.to_owned().into(), attributes)
}

/// The codes the semantic conventions count as a server's own failure.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

fn error_status(code: Code) -> Status {
    Status::error(status_gateway::grpc_code_name(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(attributes: &[KeyValue], key: &str) -> Option<String> {
        attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn rest_requests_get_http_attributes_and_5xx_is_an_error() {
        for (path, known, status, name, route, error) in [
            (
                "/service-a/status",
                true,
                200,
                "GET /service-a/status",
                Some("/service-a/status"),
                false,
            ),
            (
                "/service-a/other-status",
                true,
                503,
                "GET /service-a/other-status",
                Some("/service-a/other-status"),
                true,
            ),
            ("/wp-admin", false, 404, "GET", None, false),
        ] {
            let (span_name, attributes, span_status) =
                http_server(&http::Method::GET, path, known, status);
            assert_eq!(span_name, name);
            assert_eq!(
                value(&attributes, "http.request.method").as_deref(),
                Some("GET")
            );
            assert_eq!(value(&attributes, "url.path").as_deref(), Some(path));
            assert_eq!(value(&attributes, "http.route").as_deref(), route);
            assert_eq!(
                value(&attributes, "http.response.status_code"),
                Some(status.to_string())
            );
            assert_eq!(matches!(span_status, Status::Error { .. }), error, "{path}");
        }
    }

    #[test]
    fn grpc_calls_get_rpc_attributes() {
        let (name, attributes) = rpc_attributes(
            "scdemo.status.v1.StatusService/GetPeerStatus",
            Some(Code::Unavailable),
        );
        assert_eq!(name, "scdemo.status.v1.StatusService/GetPeerStatus");
        assert_eq!(value(&attributes, "rpc.system").as_deref(), Some("grpc"));
        assert_eq!(
            value(&attributes, "rpc.service").as_deref(),
            Some("scdemo.status.v1.StatusService")
        );
        assert_eq!(
            value(&attributes, "rpc.method").as_deref(),
            Some("GetPeerStatus")
        );
        assert_eq!(
            value(&attributes, "rpc.grpc.status_code").as_deref(),
            Some("14")
        );
        // gRPC-Web: no code seen, none made up.
        let (_, attributes) = rpc_attributes("grpc.health.v1.Health/Check", None);
        assert_eq!(value(&attributes, "rpc.grpc.status_code"), None);
    }

    #[test]
    fn server_errors_follow_the_conventions_list() {
        for (code, error) in [
            (Code::Ok, false),
            (Code::InvalidArgument, false),
            (Code::NotFound, false),
            (Code::ResourceExhausted, false),
            (Code::Cancelled, false),
            (Code::Unknown, true),
            (Code::DeadlineExceeded, true),
            (Code::Unavailable, true),
            (Code::Internal, true),
        ] {
            assert_eq!(is_server_error(code), error, "{code:?}");
        }
    }
}
