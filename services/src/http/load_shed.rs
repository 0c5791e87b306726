//! Load shedding: at most `MAX_CONCURRENT_REQUESTS` requests are worked on
//! at once; beyond that a request is refused at once, with
//! RESOURCE_EXHAUSTED (gRPC) or 503 and `Retry-After` (REST), instead of
//! waiting behind work the task cannot finish in time. A fast refusal lets
//! callers go elsewhere; a slow one turns into their timeouts, and their
//! cancellations into HTTP/2 resets that tear down shared connections.
//!
//! Health checks are never shed: a busy task that says NOT_SERVING (or
//! times out) to its load balancer is taken out and the load falls on the
//! others. A request holds its slot until its response head is ready; a
//! stream's life after that is bounded by `MAX_WATCH_STREAMS` instead.

use std::sync::Arc;

use axum::body::Body;
use http::{HeaderValue, Response, header::RETRY_AFTER};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::protocol::{Protocol, error_response, is_health_check};
use crate::throttle::Throttle;

/// What the REST answer suggests a client waits before retrying, in seconds.
const RETRY_AFTER_SECONDS: &str = "1";

/// The `MAX_CONCURRENT_REQUESTS` slots of one service.
#[derive(Debug)]
pub(crate) struct LoadShed {
    slots: Arc<Semaphore>,
    limit: u32,
    rest_health_path: String,
    service: String,
    warnings: Throttle,
}

/// A request let in: holds its slot (none for health checks) until its
/// response head is ready.
pub(crate) type Admission = Option<OwnedSemaphorePermit>;

impl LoadShed {
    pub(crate) fn new(limit: u32, service: &str, rest_health_path: String) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limit as usize)),
            limit,
            rest_health_path,
            service: service.to_owned(),
            warnings: Throttle::default(),
        }
    }

    /// Lets a request to `path` in, or refuses it at once.
    pub(crate) fn admit(&self, path: &str) -> Result<Admission, Overloaded> {
        if is_health_check(path, &self.rest_health_path) {
            return Ok(None);
        }
        match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                if let Some(shed) = self.warnings.event() {
                    tracing::warn!(
                        service = self.service,
                        limit = self.limit,
                        shed,
                        "overloaded: shedding requests beyond MAX_CONCURRENT_REQUESTS"
                    );
                }
                Err(Overloaded)
            }
        }
    }
}

/// A request refused for want of a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overloaded;

impl Overloaded {
    /// The refusal in the caller's protocol.
    pub(crate) fn response(self, protocol: Protocol) -> Response<Body> {
        shed_response(protocol)
    }
}

fn shed_response(protocol: Protocol) -> Response<Body> {
    let message = "overloaded: too many requests in flight, retry shortly";
    if protocol.is_grpc() {
        error_response(protocol, tonic::Status::resource_exhausted(message))
    } else {
        let mut response = error_response(protocol, tonic::Status::unavailable(message));
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_the_limit_requests_are_refused_at_once_but_health_checks_pass() {
        let shed = LoadShed::new(2, "service-a", "/service-a/healthcheck".into());
        let status = "/service-a/status";
        let busy: Vec<_> = (0..2)
            .map(|_| shed.admit(status).expect("a slot"))
            .collect();

        let rest = shed
            .admit(status)
            .expect_err("shed")
            .response(Protocol::Http1);
        assert_eq!(rest.status(), 503);
        assert_eq!(rest.headers()[RETRY_AFTER], "1");
        let grpc = shed
            .admit("/scdemo.status.v1.StatusService/GetStatus")
            .expect_err("shed")
            .response(Protocol::Grpc);
        assert_eq!(grpc.headers()["grpc-status"], "8", "RESOURCE_EXHAUSTED");

        for health in ["/service-a/healthcheck", "/grpc.health.v1.Health/Check"] {
            assert!(shed.admit(health).is_ok(), "{health} was shed");
        }
        // The slots are free again once the requests are answered.
        drop(busy);
        assert!(shed.admit(status).is_ok());
    }
}
