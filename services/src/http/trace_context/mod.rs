//! Trace context: which trace a request belongs to, so the ALB's access
//! logs and both services' lines can be joined.
//!
//! Accepted from the caller: W3C `traceparent` (+ `tracestate`) and AWS's
//! `X-Amzn-Trace-Id` (which the ALB adds to every request). A valid
//! `traceparent` wins; otherwise the X-Ray root gives the trace id (X-Ray
//! root `1-5759e988-bd862e3fe1be46a994272793` is trace id
//! `5759e988bd862e3fe1be46a994272793`, as X-Ray maps them); otherwise a new
//! trace starts. Every request gets a span id of its own, the child of the
//! caller's, and that span id is the parent the peer call carries
//! onward: `traceparent` per the W3C spec, `X-Amzn-Trace-Id` with the same
//! root, our span as `Parent` and the caller's `Sampled` decision, as AWS
//! documents for downstream calls. Malformed or oversized values are
//! ignored (a new trace starts), never echoed, logged or passed on. Several
//! `tracestate` headers are one list (W3C: combined with commas, in order).

//!
//! Split by job: reading the caller's headers ([`incoming`]), the context
//! itself (here), and writing the headers of the peer call ([`outgoing`]).

mod incoming;
mod outgoing;
#[cfg(test)]
mod tests;

use http::{HeaderMap, HeaderName, HeaderValue};

pub(crate) use self::outgoing::Hex;
use self::{
    incoming::{parse_amzn, parse_traceparent, tracestate},
    outgoing::amzn_root_text,
};
use super::request_id::random_id;
use crate::telemetry::SpanSink;

pub(crate) const TRACEPARENT: &str = "traceparent";
pub(crate) const TRACESTATE: &str = "tracestate";
pub(crate) const AMZN_TRACE_ID: &str = "x-amzn-trace-id";
// The names parsed once, for the lookups on every request.
pub(crate) static TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
pub(crate) static TRACESTATE_NAME: HeaderName = HeaderName::from_static(TRACESTATE);
pub(crate) static AMZN_TRACE_ID_NAME: HeaderName = HeaderName::from_static(AMZN_TRACE_ID);
/// Longest `tracestate` or `X-Amzn-Trace-Id` passed on (the W3C spec allows
/// 32 tracestate members of up to 256 characters; 512 keeps the common ones).
const MAX_PASSED_ON_LENGTH: usize = 512;

/// The trace a request belongs to and its own span in it, in the request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    /// This request's span, a child of `parent_id`.
    span_id: [u8; 8],
    /// The caller's span, when the caller sent one.
    parent_id: Option<[u8; 8]>,
    /// W3C trace-flags (bit 0: sampled), passed on as received.
    flags: u8,
    tracestate: Option<HeaderValue>,
    /// `Sampled=` of the caller's `X-Amzn-Trace-Id`, when it sent one.
    amzn_sampled: Option<Option<char>>,
    /// The X-Ray root of the caller's `X-Amzn-Trace-Id` (what the ALB's
    /// access log shows), kept even when a `traceparent` chose the trace.
    amzn_root: Option<[u8; 16]>,
    /// Where this request's spans go, when trace export is on and sampled
    /// it ([`crate::telemetry`]).
    sink: Option<SpanSink>,
    /// See [`Self::caller_sampled`].
    caller_sampled: Option<bool>,
}

impl TraceContext {
    /// The context of an incoming request, from its headers.
    #[cfg(test)]
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        Self::from_values(
            headers.get(&AMZN_TRACE_ID_NAME),
            headers.get(&TRACEPARENT_NAME),
            headers,
        )
    }

    /// The context of an incoming request, from its `X-Amzn-Trace-Id` and
    /// `traceparent` (the first of each, found by the caller) and its
    /// headers (for `tracestate`, read only with a valid `traceparent`).
    pub(crate) fn from_values(
        amzn_trace_id: Option<&HeaderValue>,
        traceparent: Option<&HeaderValue>,
        headers: &HeaderMap,
    ) -> Self {
        let amzn = amzn_trace_id.and_then(parse_amzn);
        let amzn_sampled = amzn.as_ref().map(|amzn| amzn.sampled);
        let amzn_root = amzn.as_ref().map(|amzn| amzn.trace_id);
        if let Some((trace_id, parent_id, flags)) = traceparent.and_then(parse_traceparent) {
            return Self {
                trace_id,
                span_id: random_id(),
                parent_id: Some(parent_id),
                flags,
                tracestate: tracestate(headers),
                amzn_sampled,
                amzn_root,
                sink: None,
                caller_sampled: Some(flags & 1 == 1),
            };
        }
        if let Some(amzn) = amzn {
            return Self {
                trace_id: amzn.trace_id,
                span_id: random_id(),
                parent_id: amzn.parent_id,
                flags: u8::from(amzn.sampled == Some('1')),
                tracestate: None,
                amzn_sampled,
                amzn_root,
                sink: None,
                caller_sampled: amzn
                    .parent_id
                    .and(amzn.sampled)
                    .filter(|c| *c != '?')
                    .map(|c| c == '1'),
            };
        }
        // A new trace: its id and our span's in one draw.
        let ids = random_id::<24>();
        let (trace_id, span_id) = ids.split_at(16);
        Self {
            trace_id: trace_id.try_into().unwrap_or_default(),
            span_id: span_id.try_into().unwrap_or_default(),
            parent_id: None,
            // We record no spans ourselves: not sampled.
            flags: 0,
            tracestate: None,
            amzn_sampled: None,
            amzn_root: None,
            sink: None,
            caller_sampled: None,
        }
    }

    pub(crate) fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    pub(crate) fn span_id_bytes(&self) -> [u8; 8] {
        self.span_id
    }

    pub(crate) fn parent_id_bytes(&self) -> Option<[u8; 8]> {
        self.parent_id
    }

    /// The caller's sampling decision, when it made one: its `traceparent`
    /// flag, or its `X-Amzn-Trace-Id` `Parent` with `Sampled=0|1` (`?` or
    /// none: undecided, as the ALB sends it).
    pub(crate) fn caller_sampled(&self) -> Option<bool> {
        self.caller_sampled
    }

    /// This service's sampling decision (trace export on): passed on in
    /// both headers, and where the request's spans go when sampled.
    pub(crate) fn set_sampled(&mut self, sampled: bool, sink: Option<SpanSink>) {
        self.flags = (self.flags & !1) | u8::from(sampled);
        if let Some(amzn) = &mut self.amzn_sampled {
            *amzn = Some(if sampled { '1' } else { '0' });
        }
        self.sink = sink;
    }

    /// Where this request's spans go, when they are recorded.
    pub(crate) fn sink(&self) -> Option<&SpanSink> {
        self.sink.as_ref()
    }

    /// The context of a call made on behalf of this request: a new span,
    /// the child of this one, in the same trace with the same decision.
    pub(crate) fn child(&self) -> Self {
        Self {
            span_id: random_id::<8>(),
            parent_id: Some(self.span_id),
            ..self.clone()
        }
    }

    /// The caller's X-Ray root (`1-5759e988-bd862e3fe1be46a994272793`, as
    /// the ALB logs it), when it sent an `X-Amzn-Trace-Id`.
    pub(crate) fn amzn_root(&self) -> Option<[u8; 35]> {
        self.amzn_root.as_ref().map(amzn_root_text)
    }

    pub fn trace_id(&self) -> Hex<'_> {
        Hex(&self.trace_id)
    }

    pub fn span_id(&self) -> Hex<'_> {
        Hex(&self.span_id)
    }

    pub fn parent_id(&self) -> Option<Hex<'_>> {
        self.parent_id.as_ref().map(|id| Hex(id))
    }
}
