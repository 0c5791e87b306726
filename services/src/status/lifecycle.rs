//! Where this instance is in its life (starting, draining, stopping) and
//! its long-lived streams' slots: shared by the server, which drives it,
//! the status it reports and the streams it bounds.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::throttle::Throttle;

/// Where this instance is in its life, shared by the server (which drives
/// it) and the status it reports.
#[derive(Debug)]
pub struct Lifecycle {
    draining: AtomicBool,
    /// Cancelled when the server stops: ends the WatchStatus streams.
    stopping: CancellationToken,
    /// One permit per long-lived stream that may be open (`MAX_WATCH_STREAMS`):
    /// WatchStatus, Health/Watch and reflection streams.
    watch_slots: Arc<Semaphore>,
    max_watch_streams: u32,
    refused_watches: Throttle,
}

impl Lifecycle {
    pub fn new(max_watch_streams: u32) -> Self {
        Self {
            draining: AtomicBool::new(false),
            stopping: CancellationToken::new(),
            watch_slots: Arc::new(Semaphore::new(max_watch_streams as usize)),
            max_watch_streams,
            refused_watches: Throttle::default(),
        }
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// WatchStatus streams open now.
    pub fn open_watch_streams(&self) -> u32 {
        let available = u32::try_from(self.watch_slots.available_permits()).unwrap_or(u32::MAX);
        self.max_watch_streams.saturating_sub(available)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// One of the `MAX_WATCH_STREAMS` slots for a long-lived stream of
    /// `service`, held until the stream ends; RESOURCE_EXHAUSTED when all
    /// are taken.
    pub(crate) fn open_stream(&self, service: &str) -> Result<OwnedSemaphorePermit, Status> {
        Arc::clone(&self.watch_slots)
            .try_acquire_owned()
            .map_err(|_| {
                if let Some(refused) = self.refused_watches.event() {
                    tracing::warn!(
                        service,
                        max_watch_streams = self.max_watch_streams,
                        refused,
                        "streams at MAX_WATCH_STREAMS: refusing new ones"
                    );
                }
                Status::resource_exhausted(format!(
                    "too many streams open (at most {}): retry later",
                    self.max_watch_streams
                ))
            })
    }
}
