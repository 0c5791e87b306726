//! The request-level layers of the server, each in its own module: the
//! request id and trace context, one access line per request, load shedding, deadlines, and
//! answering errors in the caller's protocol. `server::app` stacks them.

pub(crate) mod access_log;
pub(crate) mod app_body;
pub(crate) mod deadline;
pub(crate) mod envelope;
pub(crate) mod grpc_limits;
pub(crate) mod load_shed;
pub(crate) mod logged_body;
pub(crate) mod protocol;
pub(crate) mod refused;
pub(crate) mod request_context;
pub(crate) mod request_headers;
pub(crate) mod request_id;
pub(crate) mod trace_context;
pub(crate) mod vary;

pub use self::{
    deadline::RequestDeadline,
    grpc_limits::MAX_REQUEST_MESSAGE_BYTES,
    protocol::is_grpc,
    request_context::RequestContext,
    request_id::{MAX_REQUEST_ID_LENGTH, REQUEST_ID_HEADER},
    trace_context::TraceContext,
};
