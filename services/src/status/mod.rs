//! The Status service: what a service reports about itself, and the call
//! through to its peer. gRPC serves it directly; the REST gateway calls the
//! same implementation in-process.

mod lifecycle;
mod serving;

use std::{
    pin::Pin,
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use pin_project_lite::pin_project;
use status_api::v1::{
    EcsTask, GetPeerStatusRequest, GetPeerStatusResponse, GetStatusRequest, GetStatusResponse,
    ServiceStatus, WatchStatusRequest, WatchStatusResponse, service_status::State,
    status_service_server::StatusService,
};
use tokio::{
    sync::OwnedSemaphorePermit,
    time::{Interval, MissedTickBehavior},
};
use tokio_stream::Stream;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::{Request, Response, Status};

pub use self::lifecycle::Lifecycle;
pub(crate) use self::serving::ServerHealth;
use crate::{
    http::RequestContext,
    metrics::{Metrics, Sample},
    peer::PeerClient,
    telemetry::PeerCall,
};

/// WatchStatus interval when the request sets none.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Bounds on the WatchStatus interval: faster is a load test, not a watch;
/// slower than the longest idle timeout of a proxy loses the stream.
pub const WATCH_INTERVAL_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(100)..=Duration::from_secs(3600);

/// What does not change while the process runs.
#[derive(Debug)]
pub struct Identity {
    pub service: String,
    pub version: String,
    pub hostname: String,
    pub start_time: SystemTime,
    /// `start_time` as the message carries it, converted once.
    start_timestamp: status_api::Timestamp,
    /// Filled in once the metadata endpoint has answered (on ECS only).
    pub ecs_task: OnceLock<EcsTask>,
}

impl Identity {
    pub fn new(service: &str) -> Self {
        let start_time = SystemTime::now();
        Self {
            service: service.to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            hostname: sysinfo::System::host_name().unwrap_or_default(),
            start_time,
            start_timestamp: timestamp(start_time),
            ecs_task: OnceLock::new(),
        }
    }
}

/// The implementation of `scdemo.status.v1.StatusService`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusApi {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    identity: Identity,
    metrics: Metrics,
    peer: PeerClient,
    lifecycle: Arc<Lifecycle>,
    /// The status last built, reused while nothing it is made of changed.
    snapshot: ArcSwapOption<Snapshot>,
}

/// A status and what it was built from. A status changes once per metrics
/// sample (a second) while it is asked for thousands of times a second:
/// building it (timestamps, percentages, the identity's strings) on every
/// request was waste.
#[derive(Debug)]
struct Snapshot {
    sample: Arc<Sample>,
    draining: bool,
    ecs_task_loaded: bool,
    status: ServiceStatus,
    /// `status` in proto3 JSON (REST's `/status`), encoded on first use.
    json: OnceLock<Result<Bytes, String>>,
}

impl StatusApi {
    pub fn new(
        identity: Identity,
        metrics: Metrics,
        peer: PeerClient,
        lifecycle: Arc<Lifecycle>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                identity,
                metrics,
                peer,
                lifecycle,
                snapshot: ArcSwapOption::empty(),
            }),
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// This instance's status from the latest metrics sample. UNAVAILABLE
    /// only in the first ~200 ms of life, before the first sample (the
    /// server reports NOT_SERVING until then).
    pub fn current_status(&self) -> Result<ServiceStatus, Status> {
        Ok(self.snapshot()?.status.clone())
    }

    /// The snapshot of the latest sample: the one kept while nothing it is
    /// made of changed, else a new one (then kept).
    fn snapshot(&self) -> Result<Arc<Snapshot>, Status> {
        let Inner {
            identity,
            metrics,
            lifecycle,
            snapshot,
            ..
        } = &*self.inner;
        let sample = metrics
            .latest()
            .ok_or_else(|| Status::unavailable("starting: no metrics sample yet"))?;
        let draining = lifecycle.is_draining();
        let ecs_task = identity.ecs_task.get();
        let kept = snapshot.load();
        if let Some(last) = &*kept
            && Arc::ptr_eq(&last.sample, &sample)
            && last.draining == draining
            && last.ecs_task_loaded == ecs_task.is_some()
        {
            return Ok(Arc::clone(last));
        }
        let status = build_status(identity, &sample, draining, ecs_task);
        let fresh = Arc::new(Snapshot {
            sample,
            draining,
            ecs_task_loaded: ecs_task.is_some(),
            status,
            json: OnceLock::new(),
        });
        snapshot.store(Some(Arc::clone(&fresh)));
        Ok(fresh)
    }
}

/// `/status` reads the kept snapshot's JSON: no `ServiceStatus` is built or
/// cloned per request, and the JSON is encoded once per snapshot.
impl status_gateway::StatusJson for StatusApi {
    fn status_json(&self) -> Result<Bytes, Status> {
        let snapshot = self.snapshot()?;
        snapshot
            .json
            .get_or_init(|| {
                serde_json::to_vec(&snapshot.status)
                    .map(Bytes::from)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| Status::internal(format!("cannot encode JSON: {e}")))
    }
}

fn build_status(
    identity: &Identity,
    sample: &Sample,
    draining: bool,
    ecs_task: Option<&EcsTask>,
) -> ServiceStatus {
    let state = if draining {
        State::Draining
    } else {
        State::Running
    };
    ServiceStatus {
        service: identity.service.clone(),
        state: state.into(),
        version: identity.version.clone(),
        hostname: identity.hostname.clone(),
        start_time: Some(identity.start_timestamp),
        sample_time: Some(timestamp(sample.taken_at)),
        uptime: Some(
            sample
                .taken_at
                .duration_since(identity.start_time)
                .unwrap_or_default()
                .into(),
        ),
        cpu_percent: sample.cpu_percent,
        process_cpu_percent: sample.process_cpu_percent,
        memory_percent: sample.memory_percent(),
        memory_used_bytes: sample.memory_used_bytes,
        memory_total_bytes: sample.memory_total_bytes,
        process_memory_bytes: sample.process_memory_bytes,
        container_memory_limit_bytes: sample.container_memory_limit_bytes,
        ecs_task: ecs_task.cloned(),
    }
}

fn timestamp(time: SystemTime) -> status_api::Timestamp {
    chrono::DateTime::<chrono::Utc>::from(time).into()
}

#[tonic::async_trait]
impl StatusService for StatusApi {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(GetStatusResponse {
            status: Some(self.current_status()?),
        }))
    }

    async fn get_peer_status(
        &self,
        request: Request<GetPeerStatusRequest>,
    ) -> Result<Response<GetPeerStatusResponse>, Status> {
        let peer = &self.inner.peer;
        let context = request.extensions().get::<RequestContext>();
        let deadline = context.and_then(RequestContext::deadline);
        let trace = context.and_then(RequestContext::trace);
        // The call's CLIENT span, when this request's span is recorded.
        let call = trace.and_then(PeerCall::start);
        let request_id = context.and_then(RequestContext::request_id);
        let answer = peer
            .get_status(
                request_id,
                deadline,
                call.as_ref().map_or(trace, |c| Some(c.trace())),
            )
            .await;
        if let Some(call) = call {
            call.end(
                answer
                    .as_ref()
                    .map_or_else(Status::code, |_| tonic::Code::Ok),
            );
        }
        match answer {
            Ok(response) => Ok(Response::new(response)),
            Err(status) => {
                let request_id = request_id.and_then(|id| id.to_str().ok());
                tracing::warn!(
                    service = self.inner.identity.service,
                    request_id,
                    trace_id = trace.map(|t| tracing::field::display(t.trace_id())),
                    peer = peer.address(),
                    grpc_code = status_gateway::grpc_code_name(status.code()),
                    error = status.message(),
                    "peer call failed"
                );
                Err(status)
            }
        }
    }

    type WatchStatusStream = WatchStream;

    async fn watch_status(
        &self,
        request: Request<WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let interval = watch_interval(request.get_ref())?;
        // Fail the call itself, not the first message, while starting up.
        self.current_status()?;
        let lifecycle = &self.inner.lifecycle;
        let slot = lifecycle.open_stream(&self.inner.identity.service)?;
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Response::new(WatchStream {
            api: self.clone(),
            ticks,
            stopping: lifecycle.stopping().clone().cancelled_owned(),
            _slot: slot,
            ended: false,
        }))
    }
}

pin_project! {
    /// A WatchStatus stream: a status per tick until the client goes away
    /// (the response body, and with it this stream, is dropped) or the
    /// server stops (a last UNAVAILABLE). It holds one of the
    /// `MAX_WATCH_STREAMS` slots while it lives.
    pub struct WatchStream {
        api: StatusApi,
        ticks: Interval,
        #[pin]
        stopping: WaitForCancellationFutureOwned,
        _slot: OwnedSemaphorePermit,
        ended: bool,
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchStatusResponse, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        if *this.ended {
            return Poll::Ready(None);
        }
        if this.stopping.poll(cx).is_ready() {
            *this.ended = true;
            return Poll::Ready(Some(Err(Status::unavailable("server is shutting down"))));
        }
        std::task::ready!(this.ticks.poll_tick(cx));
        Poll::Ready(Some(this.api.current_status().map(|status| {
            WatchStatusResponse {
                status: Some(status),
            }
        })))
    }
}

fn watch_interval(request: &WatchStatusRequest) -> Result<Duration, Status> {
    let Some(interval) = request.interval else {
        return Ok(DEFAULT_WATCH_INTERVAL);
    };
    let range = &WATCH_INTERVAL_RANGE;
    Duration::try_from(interval)
        .ok()
        .filter(|interval| range.contains(interval))
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "interval must be from {} to {}",
                humantime::format_duration(*range.start()),
                humantime::format_duration(*range.end())
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(seconds: i64, nanos: i32) -> WatchStatusRequest {
        WatchStatusRequest {
            interval: Some(pbjson_types::Duration { seconds, nanos }),
        }
    }

    #[test]
    fn watch_interval_defaults_and_bounds() {
        let accepted = |request: &WatchStatusRequest| watch_interval(request).ok();
        assert_eq!(
            accepted(&WatchStatusRequest { interval: None }),
            Some(DEFAULT_WATCH_INTERVAL)
        );
        assert_eq!(
            accepted(&request(0, 100_000_000)),
            Some(Duration::from_millis(100))
        );
        assert_eq!(accepted(&request(3600, 0)), Some(Duration::from_secs(3600)));
        for (seconds, nanos) in [(0, 0), (0, 99_999_999), (3601, 0), (-1, 0)] {
            let error = watch_interval(&request(seconds, nanos)).expect_err("out of range");
            assert_eq!(
                error.code(),
                tonic::Code::InvalidArgument,
                "{seconds}s {nanos}ns"
            );
        }
    }
}
