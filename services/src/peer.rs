//! The client side of service-to-service calls.
//!
//! One tonic `Channel` per peer, created lazily: start-up never waits for the
//! peer, and the one HTTP/2 connection is shared by all requests (Service
//! Connect's proxy balances each request, since the port's appProtocol is
//! grpc). tonic reconnects by itself when the peer restarts, and keepalive
//! pings run even while the connection is idle, so a dead connection is
//! found before the next request waits on it.
//!
//! Because that one connection carries every caller's call, nothing one
//! caller does may tear it down:
//! - at most `MAX_PEER_CALLS` calls are in flight; beyond, a call fails at
//!   once with UNAVAILABLE instead of queueing until it times out (timed-out
//!   calls are cancelled with HTTP/2 resets, and a flood of resets makes the
//!   peer close the connection under everyone);
//! - only the request id and trace context the access log validated are
//!   passed on;
//! - each call gets the caller's remaining deadline minus
//!   `PEER_DEADLINE_MARGIN`, so this service answers DEADLINE_EXCEEDED
//!   before its caller gives up.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use status_api::v1::{
    GetPeerStatusResponse, GetStatusRequest, status_service_client::StatusServiceClient,
};
use tokio::sync::Semaphore;
use tonic::{
    Code, Status,
    metadata::{MetadataMap, MetadataValue},
    transport::{Channel, Endpoint},
};

use crate::{
    config::PeerSettings,
    emf::Recorder,
    http::{REQUEST_ID_HEADER, RequestDeadline, TraceContext},
    throttle::Throttle,
};

#[derive(Debug, Clone)]
pub struct PeerClient {
    client: StatusServiceClient<Channel>,
    /// As configured, for messages and for `GetPeerStatusResponse.peer_address`.
    address: String,
    request_timeout: Duration,
    deadline_margin: Duration,
    calls: Arc<Semaphore>,
    max_calls: u32,
    refusals: Arc<Throttle>,
    recorder: Arc<Recorder>,
}

impl PeerClient {
    pub fn new(settings: &PeerSettings, recorder: Arc<Recorder>) -> Self {
        let endpoint = Endpoint::from(settings.url.uri().clone())
            .connect_timeout(settings.connect_timeout)
            .http2_keep_alive_interval(settings.keepalive_interval)
            .keep_alive_timeout(settings.keepalive_interval)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        Self {
            client: StatusServiceClient::new(endpoint.connect_lazy()),
            address: settings.url.to_string(),
            request_timeout: settings.request_timeout,
            deadline_margin: settings.deadline_margin,
            calls: Arc::new(Semaphore::new(settings.max_calls as usize)),
            max_calls: settings.max_calls,
            refusals: Arc::default(),
            recorder,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Calls the peer's `GetStatus`, passing on the caller's request id and
    /// what is left of its deadline (capped by `PEER_REQUEST_TIMEOUT`).
    pub async fn get_status(
        &self,
        caller: &MetadataMap,
        caller_deadline: Option<RequestDeadline>,
        trace: Option<&TraceContext>,
    ) -> Result<GetPeerStatusResponse, Status> {
        let peer = &self.address;
        let budget = caller_deadline.map_or(self.request_timeout, |deadline| {
            deadline
                .remaining()
                .saturating_sub(self.deadline_margin)
                .min(self.request_timeout)
        });
        if budget.is_zero() {
            return Err(Status::deadline_exceeded(format!(
                "no time left in the caller's deadline to call peer {peer}"
            )));
        }
        let Ok(_in_flight) = Arc::clone(&self.calls).try_acquire_owned() else {
            if let Some(refused) = self.refusals.event() {
                tracing::warn!(
                    peer,
                    max_peer_calls = self.max_calls,
                    refused,
                    "peer calls at MAX_PEER_CALLS: failing new ones"
                );
            }
            return Err(Status::unavailable(format!(
                "peer {peer} has {} calls in flight already: retry later",
                self.max_calls
            )));
        };
        let mut request = tonic::Request::new(GetStatusRequest {});
        request.set_timeout(budget);
        if let Some(id) = caller.get(REQUEST_ID_HEADER) {
            request.metadata_mut().insert(REQUEST_ID_HEADER, id.clone());
        }
        for (name, value) in trace
            .map(TraceContext::outgoing_headers)
            .unwrap_or_default()
        {
            if let Ok(value) = MetadataValue::try_from(value.as_bytes()) {
                request.metadata_mut().insert(name, value);
            }
        }
        let started = Instant::now();
        let mut client = self.client.clone();
        let answer = tokio::time::timeout(budget, client.get_status(request)).await;
        self.recorder
            .record_peer_call(matches!(answer, Ok(Ok(_))), started.elapsed());
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(status)) => return Err(self.describe_failure(&status, budget)),
            Err(_) => return Err(timed_out(peer, budget)),
        };
        Ok(GetPeerStatusResponse {
            status: response.into_inner().status,
            peer_address: peer.clone(),
            latency: Some(started.elapsed().into()),
        })
    }

    /// A status that names the peer and the cause: DEADLINE_EXCEEDED when
    /// the peer (or tonic's own timer, which says CANCELLED "Timeout
    /// expired") ran out of time, UNAVAILABLE for every other failure: a
    /// refused or broken connection, or a peer that is starting, draining
    /// or overloaded. Either way the caller should try again later.
    fn describe_failure(&self, status: &Status, budget: Duration) -> Status {
        let peer = &self.address;
        if is_timeout(status) {
            return timed_out(peer, budget);
        }
        Status::unavailable(format!(
            "peer {peer} is unavailable: {:?}: {}",
            status.code(),
            error_chain(status)
        ))
    }
}

fn timed_out(peer: &str, budget: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "peer {peer} did not answer within {}",
        humantime::format_duration(budget)
    ))
}

fn is_timeout(status: &Status) -> bool {
    status.code() == Code::DeadlineExceeded
        || (status.code() == Code::Cancelled
            && sources(status).any(|error| error.is::<tonic::TimeoutExpired>()))
}

/// The status message followed by its sources ("tcp connect error: Connection refused").
fn error_chain(status: &Status) -> String {
    let mut text = status.message().to_owned();
    for error in sources(status) {
        let part = error.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

/// The errors behind a status, outermost first.
fn sources(status: &Status) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(status), |error| error.source())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PeerUrl;

    fn client(max_calls: u32) -> PeerClient {
        let recorder = Arc::new(Recorder::new("test", []));
        PeerClient::new(
            &PeerSettings {
                // Nothing listens on port 9 (discard) here: calls fail fast.
                url: "http://127.0.0.1:9".parse::<PeerUrl>().expect("url"),
                connect_timeout: Duration::from_millis(200),
                request_timeout: Duration::from_secs(2),
                keepalive_interval: Duration::from_secs(20),
                max_calls,
                deadline_margin: Duration::from_millis(20),
            },
            recorder,
        )
    }

    #[tokio::test]
    async fn every_failure_but_a_timeout_is_unavailable() {
        let peer = client(4);
        for (status, expected) in [
            (
                Status::unknown("h2 protocol error: broken pipe"),
                Code::Unavailable,
            ),
            (Status::internal("boom"), Code::Unavailable),
            (Status::resource_exhausted("overloaded"), Code::Unavailable),
            (Status::unavailable("starting"), Code::Unavailable),
            (Status::deadline_exceeded("late"), Code::DeadlineExceeded),
        ] {
            let described = peer.describe_failure(&status, Duration::from_secs(1));
            assert_eq!(described.code(), expected, "{status:?}");
            assert!(described.message().contains("127.0.0.1:9"), "{described:?}");
        }
    }

    #[tokio::test]
    async fn an_expired_caller_deadline_fails_before_calling() {
        let peer = client(4);
        let deadline = RequestDeadline(tokio::time::Instant::now() + Duration::from_millis(10));
        let status = peer
            .get_status(&MetadataMap::new(), Some(deadline), None)
            .await
            .expect_err("no time left after the margin");
        assert_eq!(status.code(), Code::DeadlineExceeded);
    }

    #[tokio::test]
    async fn calls_beyond_max_peer_calls_fail_at_once() {
        let peer = client(1);
        let _busy = Arc::clone(&peer.calls).try_acquire_owned().expect("a slot");
        let started = Instant::now();
        let status = peer
            .get_status(&MetadataMap::new(), None, None)
            .await
            .expect_err("no slot left");
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("in flight"), "{status:?}");
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
    }
}
