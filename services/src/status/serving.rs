//! The whole server's health as `/healthcheck` reads it: tonic-health's
//! reporter stays the one source of truth (the server sets SERVING and
//! NOT_SERVING there, and gRPC's `Health/Check` and `Watch` answer from
//! it), and this keeps a copy of its status for the whole server ("") in
//! an atomic, so the REST route reads it without `Check`'s boxed future,
//! lock and hashed lookup (about 800 instructions a request).
//!
//! The copy follows the reporter through tonic-health's own `Watch`, so it
//! trails a change by one task wake-up; it never claims SERVING when the
//! reporter does not: a drain is read from [`Lifecycle`] (set before the
//! reporter goes NOT_SERVING), and until the copy has its first value the
//! route asks `Check`.

use std::sync::{
    Arc,
    atomic::{AtomicI32, Ordering},
};

use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status};
use tonic_health::{
    pb::{
        HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
        health_server::Health,
    },
    server::{HealthReporter, HealthService, WatchStream},
};

use super::Lifecycle;

/// No value copied yet: ask `Check`.
const UNKNOWN: i32 = -1;

/// tonic-health's service for the whole server, with the copy of its
/// status the REST route reads.
pub(crate) struct ServerHealth {
    checks: HealthService,
    /// The reporter's status for "" as a `ServingStatus` value, or
    /// [`UNKNOWN`].
    copied: Arc<AtomicI32>,
    lifecycle: Arc<Lifecycle>,
}

impl ServerHealth {
    /// Reads `reporter`'s status; the copy is kept by a task until the
    /// server stops (`lifecycle`), spawned on the current runtime (none:
    /// no copy, every read asks `Check`).
    pub(crate) fn new(reporter: &HealthReporter, lifecycle: Arc<Lifecycle>) -> Self {
        let copied = Arc::new(AtomicI32::new(UNKNOWN));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(copy_status(
                HealthService::from_health_reporter(reporter.clone()),
                Arc::clone(&copied),
                Arc::clone(&lifecycle),
            ));
        }
        Self {
            checks: HealthService::from_health_reporter(reporter.clone()),
            copied,
            lifecycle,
        }
    }
}

/// Copies the status of "" into `copied` at every change, until the server
/// stops (then it is NOT_SERVING for good: the drain came first).
async fn copy_status(watched: HealthService, copied: Arc<AtomicI32>, lifecycle: Arc<Lifecycle>) {
    let request = Request::new(HealthCheckRequest::default());
    let Ok(changes) = watched.watch(request).await else {
        return;
    };
    let mut changes = changes.into_inner();
    let stopping = lifecycle.stopping().clone();
    loop {
        tokio::select! {
            () = stopping.cancelled() => return,
            change = changes.next() => match change {
                Some(Ok(status)) => copied.store(status.status, Ordering::Release),
                _ => return,
            },
        }
    }
}

impl status_gateway::ServingStatusNow for ServerHealth {
    fn serving_status_now(&self) -> Option<ServingStatus> {
        if self.lifecycle.is_draining() {
            return Some(ServingStatus::NotServing);
        }
        ServingStatus::try_from(self.copied.load(Ordering::Acquire)).ok()
    }
}

/// gRPC's `Check` and `Watch`, as tonic-health answers them: the REST route
/// calls `Check` only until the copy has a value.
#[tonic::async_trait]
impl Health for ServerHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.checks.check(request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.checks.watch(request).await
    }
}

#[cfg(test)]
mod tests {
    use status_gateway::ServingStatusNow as _;
    use tonic_health::ServingStatus as ReportedStatus;

    use super::*;

    /// What the copy says once it has caught up with the reporter.
    async fn settled(health: &ServerHealth) -> Option<ServingStatus> {
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        health.serving_status_now()
    }

    #[tokio::test]
    async fn the_copy_follows_the_reporter_and_a_drain_at_once() {
        let reporter = HealthReporter::new();
        reporter
            .set_service_status("", ReportedStatus::NotServing)
            .await;
        let lifecycle = Arc::new(Lifecycle::new(4));
        let health = ServerHealth::new(&reporter, Arc::clone(&lifecycle));
        assert_eq!(settled(&health).await, Some(ServingStatus::NotServing));

        reporter
            .set_service_status("", ReportedStatus::Serving)
            .await;
        assert_eq!(settled(&health).await, Some(ServingStatus::Serving));

        // The drain is read at once, before the reporter is told.
        lifecycle.start_draining();
        assert_eq!(health.serving_status_now(), Some(ServingStatus::NotServing));
        reporter
            .set_service_status("", ReportedStatus::NotServing)
            .await;
        lifecycle.stopping().cancel();
        assert_eq!(settled(&health).await, Some(ServingStatus::NotServing));
    }

    #[test]
    fn without_a_runtime_there_is_no_copy_and_check_answers() {
        let health = ServerHealth::new(&HealthReporter::new(), Arc::new(Lifecycle::new(4)));
        assert_eq!(health.serving_status_now(), None);
    }
}
