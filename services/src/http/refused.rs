//! Requests hyper refuses by itself, before any service sees them: on
//! HTTP/1.1 a head over `MAX_HEADER_LIST_SIZE` (431), a URI too long (414)
//! or one that does not parse (400). hyper writes that answer and ends the
//! connection with the parse error; this turns the error into the
//! request's access line (`outcome: refused`, no request id: hyper wrote
//! the answer, so none could be put on it) and its count in the metrics.
//!
//! On HTTP/2, h2 answers an oversized header block with 431 (or a reset)
//! inside the connection and tells nobody: those refusals have no line.

use std::{error::Error, net::SocketAddr, sync::Arc, time::Duration};

use crate::emf::{CodeClass, OTHER_ROUTE, Recorder};

/// Logs and counts the requests hyper refused on a service's connections.
#[derive(Debug, Clone)]
pub(crate) struct Refusals {
    service: Arc<str>,
    recorder: Arc<Recorder>,
}

impl Refusals {
    pub(crate) fn new(service: &str, recorder: Arc<Recorder>) -> Self {
        Self {
            service: service.into(),
            recorder,
        }
    }

    /// Called with the error a connection ended with: true when it was a
    /// request hyper refused (and is now logged and counted).
    pub(crate) fn connection_ended(
        &self,
        client: SocketAddr,
        error: &(dyn Error + 'static),
    ) -> bool {
        let Some(status) = refusal_status(error) else {
            return false;
        };
        self.recorder.record_request(
            self.recorder.route(OTHER_ROUTE),
            CodeClass::of_http(status),
            Duration::ZERO,
        );
        tracing::info!(
            service = &*self.service,
            protocol = "HTTP/1.1",
            status,
            client = %client.ip(),
            peer = %client,
            error = %error,
            outcome = "refused",
            "request"
        );
        true
    }
}

/// The status hyper answered for this connection error, if it answered.
fn refusal_status(error: &(dyn Error + 'static)) -> Option<u16> {
    let error = error.downcast_ref::<hyper::Error>()?;
    if !error.is_parse() {
        return None;
    }
    // hyper's own mapping (proto/h1/role.rs `on_error`); a URI too long
    // counts as "too large" too, and says so in its text.
    Some(if error.is_parse_too_large() {
        if error.to_string().contains("URI") {
            414
        } else {
            431
        }
    } else {
        400
    })
}
