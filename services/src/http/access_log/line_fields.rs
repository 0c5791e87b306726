//! What the access line needs of a request, taken when it starts without
//! copying text (the header values and the URI share the request's bytes),
//! and the line's record made of it when the request ends.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use http::{HeaderValue, Method, Request, Uri};
use status_gateway::grpc_code_name;

use super::{Outcome, TARGET};
use crate::{
    http::{
        protocol::Protocol,
        request_headers::RequestHeaders,
        trace_context::{Hex, TraceContext},
    },
    logging::access_line::{AccessRecord, Resource, write_access_line},
};

/// What the line needs of the request, kept without copying text: the
/// header values and the URI share the request's bytes.
#[derive(Debug)]
pub(super) struct LineFields {
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

impl LineFields {
    pub(super) fn new<B>(
        request: &Request<B>,
        headers: &RequestHeaders<'_>,
        request_id: HeaderValue,
        trace: &TraceContext,
        peer: Option<SocketAddr>,
    ) -> Self {
        Self {
            request_id,
            trace_id: trace.trace_id_bytes(),
            span_id: trace.span_id_bytes(),
            parent_span_id: trace.parent_id_bytes(),
            amzn_trace_root: trace.amzn_root(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            peer,
            forwarded_for: headers.forwarded_for.and_then(last_forwarded_for),
            user_agent: headers.user_agent.cloned(),
        }
    }

    pub(super) fn write(
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
            target: TARGET,
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
    pub(super) fn write_fault(
        &self,
        service: &str,
        grpc_code: tonic::Code,
        error: &str,
        message: &str,
    ) {
        tracing::error!(
            target: TARGET,
            service,
            request_id = self.request_id.to_str().ok(),
            trace_id = %Hex(&self.trace_id),
            grpc_code = grpc_code_name(grpc_code),
            error,
            "{message}"
        );
    }
}

/// The right-most `X-Forwarded-For` hop: the address the nearest proxy (the
/// ALB) saw the request come from. Every hop left of it was sent by the
/// client and proves nothing (`X-Forwarded-For: 6.6.6.6` is one header away).
fn last_forwarded_for(value: &HeaderValue) -> Option<IpAddr> {
    let value = value.to_str().ok()?;
    value.rsplit(',').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use http::header::USER_AGENT;

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
            assert_eq!(
                last_forwarded_for(&HeaderValue::from_str(value).expect("ascii")),
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
            let trace = TraceContext::from_headers(request.headers());
            let fields = LineFields::new(
                &request,
                &RequestHeaders::scan(request.headers()),
                HeaderValue::from_static("id-1"),
                &trace,
                Some(peer),
            );
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
            // What RUST_LOG names, whichever file of the module writes it.
            assert_eq!(record.target, "status_services::http::access_log");
        }
    }
}
