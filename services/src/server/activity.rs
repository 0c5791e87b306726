//! What one connection is doing, shared by the parts that watch it: the
//! requests in flight and since when it has had none (idle close, and which
//! connections pressure may reclaim), whether a request head (or the
//! HTTP/2 handshake) is half read and since when (`HEADER_READ_TIMEOUT`),
//! and whether the pressure reclaim asked it to close.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};

/// `head_since_ms` when no head is being read.
const NO_HEAD: u64 = u64::MAX;

#[derive(Debug)]
pub(crate) struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// A request has begun on it (its reads are gated from then on:
    /// [`super::read_gate`]).
    requests_begun: AtomicBool,
    /// Request bodies not yet received in full: the connection reads past
    /// the read gate while any is (the bytes finish work admitted).
    bodies_pending: AtomicUsize,
    /// Milliseconds from `started` to when `in_flight` last fell to 0.
    idle_since_ms: AtomicU64,
    /// Milliseconds from `started` to when the head being read began
    /// ([`NO_HEAD`]: none).
    head_since_ms: AtomicU64,
    /// HTTP/1.1: a request's head is complete when the app is called.
    http1: AtomicBool,
    head_started: Notify,
    reclaim_asked: AtomicBool,
    reclaim: Notify,
}

impl Activity {
    /// A connection just accepted: idle, no head begun.
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests_begun: AtomicBool::new(false),
            bodies_pending: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_since_ms: AtomicU64::new(NO_HEAD),
            http1: AtomicBool::new(false),
            head_started: Notify::new(),
            reclaim_asked: AtomicBool::new(false),
            reclaim: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// How long it has had nothing in flight (None: something is).
    pub(crate) fn idle_time(&self) -> Option<Duration> {
        if self.in_flight() > 0 {
            return None;
        }
        let since = self.idle_since_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(self.now_ms().saturating_sub(since)))
    }

    /// Whether any request has begun on this connection.
    pub(crate) fn requests_begun(&self) -> bool {
        self.requests_begun.load(Ordering::Relaxed)
    }

    /// Whether a request body is still being received.
    pub(crate) fn reading_bodies(&self) -> bool {
        self.bodies_pending.load(Ordering::Acquire) > 0
    }

    /// A request body is being received until the guard is dropped.
    pub(crate) fn body_pending(self: &Arc<Self>) -> BodyPending {
        self.bodies_pending.fetch_add(1, Ordering::AcqRel);
        BodyPending(Arc::clone(self))
    }

    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests_begun.store(true, Ordering::Relaxed);
        if self.http1.load(Ordering::Relaxed) {
            self.head_done();
        }
        InFlight(Arc::clone(self))
    }

    /// Completes once the connection has had nothing in flight for
    /// `timeout`, counting idleness from `not_before` at the earliest.
    pub(crate) async fn idle_for(&self, timeout: Duration, not_before: Instant) {
        loop {
            let wait = if self.in_flight() > 0 {
                timeout
            } else {
                let since = self.at(self.idle_since_ms.load(Ordering::Relaxed));
                let deadline = since.max(not_before) + timeout;
                match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// The connection speaks HTTP/1.1: a head ends when its request begins.
    pub(crate) fn set_http1(&self) {
        self.http1.store(true, Ordering::Relaxed);
    }

    /// Bytes of a head arrived; its time starts now unless it had started.
    pub(crate) fn head_begun(&self) {
        if self.head_since_ms.load(Ordering::Relaxed) == NO_HEAD {
            self.head_since_ms.store(self.now_ms(), Ordering::Relaxed);
            self.head_started.notify_one();
        }
    }

    pub(crate) fn head_done(&self) {
        self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn reading_head(&self) -> bool {
        self.head_since_ms.load(Ordering::Relaxed) != NO_HEAD
    }

    /// Completes once one head has been in progress for `timeout`.
    pub(crate) async fn head_overdue(&self, timeout: Duration) {
        loop {
            let started = self.head_started.notified();
            let since = self.head_since_ms.load(Ordering::Relaxed);
            if since == NO_HEAD {
                started.await;
                continue;
            }
            let deadline = self.at(since) + timeout;
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    if self.head_since_ms.load(Ordering::Relaxed) == since {
                        return;
                    }
                }
                () = started => {}
            }
        }
    }

    /// Asks the connection to close if it is idle; false if it was asked
    /// already.
    pub(crate) fn ask_to_reclaim(&self) -> bool {
        let first = !self.reclaim_asked.swap(true, Ordering::Relaxed);
        if first {
            self.reclaim.notify_one();
        }
        first
    }

    pub(crate) fn reclaim_asked(&self) -> bool {
        self.reclaim_asked.load(Ordering::Relaxed)
    }

    /// The connection had work in flight when asked: it stays, and may be
    /// asked again.
    pub(crate) fn reclaim_declined(&self) {
        self.reclaim_asked.store(false, Ordering::Relaxed);
    }

    pub(crate) async fn reclaim_requested(&self) {
        self.reclaim.notified().await;
    }
}

/// One request in flight; dropped when its response body is done (or the
/// request is abandoned).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            activity
                .idle_since_ms
                .store(activity.now_ms(), Ordering::Relaxed);
        }
    }
}

/// A request body not yet received in full.
#[derive(Debug)]
pub(crate) struct BodyPending(Arc<Activity>);

impl Drop for BodyPending {
    fn drop(&mut self) {
        self.0.bodies_pending.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_the_timeout_with_nothing_in_flight() {
        let activity = Arc::new(Activity::new());
        let timeout = Duration::from_secs(10);
        let request = activity.begin();
        let idle = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move {
                activity.idle_for(timeout, Instant::now()).await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!idle.is_finished(), "idle while a request was in flight");
        let done_at = Instant::now();
        drop(request);
        let idle_at = idle.await.expect("task");
        let waited = idle_at - done_at;
        assert!(
            waited >= timeout && waited <= timeout + Duration::from_millis(10),
            "idle {waited:?} after the last request"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn idleness_counts_from_not_before() {
        let activity = Arc::new(Activity::new());
        tokio::time::sleep(Duration::from_secs(60)).await;
        let asked = Instant::now();
        activity.idle_for(Duration::from_secs(2), asked).await;
        assert_eq!(Instant::now() - asked, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_is_overdue_only_if_it_is_still_the_same_head() {
        let activity = Arc::new(Activity::new());
        activity.set_http1();
        activity.head_begun();
        let timeout = Duration::from_secs(10);
        let overdue = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move {
                activity.head_overdue(timeout).await;
                Instant::now()
            }
        });
        // The first head completes in time; the connection then idles.
        tokio::time::sleep(Duration::from_secs(9)).await;
        let request = activity.begin();
        drop(request);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!overdue.is_finished(), "an idle connection is not a head");
        // The next head starts and stalls.
        let begun = Instant::now();
        activity.head_begun();
        let at = overdue.await.expect("task");
        assert_eq!(at - begun, timeout);
    }
}
