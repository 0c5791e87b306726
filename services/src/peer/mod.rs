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
//! - at most `MAX_PEER_CALLS` calls are in flight; beyond, a call waits for
//!   a free one for part of its time, then fails with UNAVAILABLE,
//!   rather than opening a stream it would cancel when its deadline passes
//!   (a flood of cancelled streams makes the peer close the connection
//!   under everyone);
//! - while the peer is unreachable, calls fail at once (one probes), as a
//!   gRPC channel in transient failure does ([`reachability`]);
//! - only the request id and trace context the access log validated are
//!   passed on;
//! - each call gets the caller's remaining deadline minus
//!   `PEER_DEADLINE_MARGIN`, so this service answers DEADLINE_EXCEEDED
//!   before its caller gives up.

mod failure;
mod reachability;

use std::{sync::Arc, time::Duration};

use http::{HeaderMap, HeaderValue};

use status_api::v1::{
    GetPeerStatusResponse, GetStatusRequest, GetStatusResponse,
    status_service_client::StatusServiceClient,
};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tonic::{
    Extensions, Status,
    metadata::MetadataMap,
    transport::{Channel, Endpoint},
};

use self::{failure::Evidence, reachability::Reachability};
use crate::{
    config::PeerSettings,
    emf::Recorder,
    http::{RequestDeadline, TraceContext, request_id::REQUEST_ID},
    throttle::Throttle,
};

/// A call waits for a free slot at most this share of its remaining time,
/// leaving the rest for the call itself. Waiting costs no CPU, while a
/// caller refused early sends again early: the fault suite measured goodput
/// under overload at a quarter (15% of capacity at 4x) far below a half
/// (53%), and a half put the failures' p90 at the edge of 0.6 x the
/// deadline; 40% keeps failures well before the deadline.
const SLOT_PATIENCE: f64 = 0.4;

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
    reachability: Arc<Reachability>,
    recorder: Arc<Recorder>,
}

impl PeerClient {
    pub fn new(settings: &PeerSettings, recorder: Arc<Recorder>) -> Self {
        let endpoint = Endpoint::from(settings.url.uri().clone())
            .connect_timeout(settings.connect_timeout)
            .http2_keep_alive_interval(settings.keepalive_interval)
            .keep_alive_timeout(settings.keepalive_interval)
            .keep_alive_while_idle(true)
            // A call that ends early (its caller gone, its deadline passed)
            // resets its stream, and the peer's frames already on the way
            // for it arrive after. h2 remembers 50 reset streams and answers
            // a frame for a forgotten one with RST_STREAM, counting it toward
            // a limit (1,024) that never goes down and, once reached, closes
            // the connection under every caller: 100 calls dropped at once a
            // few times did it in the fault suite. Remember every call that
            // can be in flight, and set no limit for this trusted peer (a
            // frame for a forgotten stream costs one RST_STREAM, holds nothing).
            .http2_max_concurrent_reset_streams(settings.max_calls as usize)
            .http2_max_local_error_reset_streams(None)
            .tcp_nodelay(true);
        Self {
            client: StatusServiceClient::new(endpoint.connect_lazy()),
            address: settings.url.to_string(),
            request_timeout: settings.request_timeout,
            deadline_margin: settings.deadline_margin,
            calls: Arc::new(Semaphore::new(settings.max_calls as usize)),
            max_calls: settings.max_calls,
            refusals: Arc::default(),
            reachability: Arc::default(),
            recorder,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Calls the peer's `GetStatus`, passing on the caller's request id,
    /// trace context and what is left of its deadline (capped by
    /// `PEER_REQUEST_TIMEOUT`). Every call counts in `PeerCalls`, those
    /// refused before they were sent included (and in `PeerErrors`).
    pub async fn get_status(
        &self,
        request_id: Option<&HeaderValue>,
        caller_deadline: Option<RequestDeadline>,
        trace: Option<&TraceContext>,
    ) -> Result<GetPeerStatusResponse, Status> {
        let peer = &self.address;
        let deadline = Instant::now()
            + caller_deadline.map_or(self.request_timeout, |deadline| {
                deadline
                    .remaining()
                    .saturating_sub(self.deadline_margin)
                    .min(self.request_timeout)
            });
        let admission = self.reachability.admit().map_err(|unreachable| {
            self.refused(Status::unavailable(format!(
                "peer {peer} is unreachable (for {} ms, a probe is under way): {}",
                unreachable.for_ms, unreachable.error
            )))
        })?;
        let _in_flight = self
            .call_slot(deadline)
            .await
            .map_err(|status| self.refused(status))?;
        let budget = deadline.saturating_duration_since(Instant::now());
        if budget.is_zero() {
            return Err(self.refused(Status::deadline_exceeded(format!(
                "no time left in the caller's deadline to call peer {peer}"
            ))));
        }
        let started = Instant::now();
        let answer = self
            .call_peer(outgoing_request(request_id, trace, budget), budget)
            .await;
        self.recorder
            .record_peer_call(answer.is_ok(), started.elapsed());
        match answer {
            Ok(status) => {
                admission.answered();
                Ok(GetPeerStatusResponse {
                    status: status.status,
                    peer_address: peer.clone(),
                    latency: Some(started.elapsed().into()),
                })
            }
            Err(status) => {
                match failure::evidence(&status) {
                    Evidence::Answered => admission.answered(),
                    Evidence::TransportFailed => {
                        admission.transport_failed(failure::error_chain(&status));
                    }
                    // Dropping the admission frees a probe's place; the
                    // peer's state stays as it was.
                    Evidence::TimedOut => drop(admission),
                }
                Err(failure::describe(peer, &status, budget))
            }
        }
    }

    /// The call to the peer itself: one `GetStatus` on the shared channel,
    /// bounded by `budget` (tonic's channel enforces the same deadline, from
    /// the request's `grpc-timeout`).
    async fn call_peer(
        &self,
        request: tonic::Request<GetStatusRequest>,
        budget: Duration,
    ) -> Result<GetStatusResponse, Status> {
        let mut client = self.client.clone();
        match tokio::time::timeout(budget, client.get_status(request)).await {
            Ok(answer) => answer.map(tonic::Response::into_inner),
            Err(_) => Err(failure::timed_out(&self.address, budget)),
        }
    }

    /// A call refused before it was sent: counted, then returned.
    fn refused(&self, status: Status) -> Status {
        self.recorder.record_peer_refusal();
        status
    }

    /// One of the `MAX_PEER_CALLS` slots. When all are taken, waits for one
    /// (first come, first served) for at most [`SLOT_PATIENCE`] of the time left, then
    /// fails with UNAVAILABLE: waiting costs no CPU, whereas refusing at once
    /// invites callers to send again at once.
    async fn call_slot(&self, deadline: Instant) -> Result<OwnedSemaphorePermit, Status> {
        if let Ok(slot) = Arc::clone(&self.calls).try_acquire_owned() {
            return Ok(slot);
        }
        let patience = deadline
            .saturating_duration_since(Instant::now())
            .mul_f64(SLOT_PATIENCE);
        match tokio::time::timeout(patience, Arc::clone(&self.calls).acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => {
                if let Some(refused) = self.refusals.event() {
                    tracing::warn!(
                        peer = self.address,
                        max_peer_calls = self.max_calls,
                        refused,
                        "peer calls at MAX_PEER_CALLS: no slot freed in time"
                    );
                }
                Err(Status::unavailable(format!(
                    "peer {} has {} calls in flight and none ended within {}: retry later",
                    self.address,
                    self.max_calls,
                    humantime::format_duration(patience)
                )))
            }
        }
    }
}

/// The request to the peer: its deadline, and only the request id and
/// trace context the access log validated.
fn outgoing_request(
    request_id: Option<&HeaderValue>,
    trace: Option<&TraceContext>,
    budget: Duration,
) -> tonic::Request<GetStatusRequest> {
    // The headers under names parsed once, their values shared, not
    // checked and copied again as metadata.
    let mut headers = HeaderMap::with_capacity(5);
    if let Some(id) = request_id {
        headers.insert(&REQUEST_ID, id.clone());
    }
    if let Some(trace) = trace {
        trace.write_outgoing_headers(&mut headers);
    }
    let mut request = tonic::Request::from_parts(
        MetadataMap::from_headers(headers),
        Extensions::default(),
        GetStatusRequest {},
    );
    request.set_timeout(budget);
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    use crate::config::PeerUrl;

    /// PeerCalls and PeerErrors counted since the last look.
    fn peer_counts(peer: &PeerClient) -> (u64, u64) {
        let lines = peer.recorder.take_lines("test", 0, Default::default());
        let service = lines.last().expect("the per-service line");
        (
            service["PeerCalls"].as_u64().expect("PeerCalls"),
            service["PeerErrors"].as_u64().expect("PeerErrors"),
        )
    }

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
    async fn an_expired_caller_deadline_fails_before_calling() {
        let peer = client(4);
        let deadline = RequestDeadline(tokio::time::Instant::now() + Duration::from_millis(10));
        let status = peer
            .get_status(None, Some(deadline), None)
            .await
            .expect_err("no time left after the margin");
        assert_eq!(status.code(), Code::DeadlineExceeded);
        assert_eq!(peer_counts(&peer), (1, 1), "a refused call counts");
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_max_peer_calls_a_call_waits_part_of_its_time_for_a_slot() {
        let peer = client(1);
        let busy = Arc::clone(&peer.calls).try_acquire_owned().expect("a slot");
        let deadline = RequestDeadline(Instant::now() + Duration::from_millis(1020));
        let started = Instant::now();
        let status = peer
            .get_status(None, Some(deadline), None)
            .await
            .expect_err("no slot freed");
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("in flight"), "{status:?}");
        // 40% of the 1 s left after the 20 ms margin.
        assert_eq!(started.elapsed(), Duration::from_millis(400));
        assert_eq!(peer_counts(&peer), (1, 1), "a refused call counts");

        // A slot that frees in time is taken.
        let freed = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(busy);
        });
        let slot = peer
            .call_slot(Instant::now() + Duration::from_secs(1))
            .await;
        assert!(slot.is_ok());
        freed.await.expect("task");
    }

    #[tokio::test]
    async fn an_unreachable_peer_fails_calls_at_once_while_one_probes() {
        let peer = client(8);
        // Nothing listens: the first call is refused and starts the failure.
        let first = peer.get_status(None, None, None).await;
        assert_eq!(first.expect_err("refused").code(), Code::Unavailable);
        // A probe is let through; while it is under way, others fail at once.
        let probe = peer.reachability.admit().expect("a probe");
        let started = Instant::now();
        let status = peer
            .get_status(None, None, None)
            .await
            .expect_err("unreachable");
        assert!(status.message().contains("unreachable"), "{status:?}");
        assert!(started.elapsed() < Duration::from_millis(50));
        // The refused connection and the call failed at once: two errors.
        assert_eq!(peer_counts(&peer), (2, 2));
        drop(probe);
    }
}
