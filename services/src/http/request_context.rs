//! What the server knows of a request beyond its headers, in one struct in
//! its extensions: the client's address (put there by the connection), its
//! request id, trace context and deadline (by the envelope). The id is
//! carried here, not written back into the request's headers (a header
//! insert, about 230 instructions, on every request without a sane id). One insert of one
//! box instead of three: each extension is a boxed value in a hash map,
//! and the three separate inserts cost about 685 instructions a request
//! where tonic's own cost 125 (bench/findings.md).

use std::net::SocketAddr;

use http::HeaderValue;

use super::{deadline::RequestDeadline, trace_context::TraceContext};

/// A request's client address, request id, trace context and deadline. The
/// handlers that call the peer read the last three to pass them on.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    client: Option<SocketAddr>,
    request_id: Option<HeaderValue>,
    trace: Option<TraceContext>,
    deadline: Option<RequestDeadline>,
}

impl RequestContext {
    /// The context of a request that came from `client`: the envelope adds
    /// the rest.
    pub fn new(client: SocketAddr) -> Self {
        Self {
            client: Some(client),
            ..Self::default()
        }
    }

    /// The address of the connection the request came on.
    pub fn client(&self) -> Option<SocketAddr> {
        self.client
    }

    /// The request's id as the service uses it: the caller's `x-request-id`
    /// if sane, else the one generated in its place (never the caller's
    /// raw value, which may still be in the request's headers).
    pub fn request_id(&self) -> Option<&HeaderValue> {
        self.request_id.as_ref()
    }

    /// The trace the request belongs to and its own span in it.
    pub fn trace(&self) -> Option<&TraceContext> {
        self.trace.as_ref()
    }

    /// When the request must have been answered.
    pub fn deadline(&self) -> Option<RequestDeadline> {
        self.deadline
    }

    /// Set by the envelope once it has read the request's headers.
    pub(crate) fn started(
        &mut self,
        request_id: HeaderValue,
        trace: TraceContext,
        deadline: RequestDeadline,
    ) {
        self.request_id = Some(request_id);
        self.trace = Some(trace);
        self.deadline = Some(deadline);
    }
}
