//! What one connection is doing, shared by the parts that watch it: the
//! requests in flight and since when it has had none (idle close, and which
//! connections pressure may reclaim), whether a request head (or the
//! HTTP/2 handshake) is half read and since when (`HEADER_READ_TIMEOUT`),
//! and whether the pressure reclaim asked it to close.
//!
//! Requests and reads only store a time here and wake nobody: the
//! connection's one timer asks [`Activity::idle_deadline`] and
//! [`Activity::head_deadline`] when it fires (a request costs no timer
//! and no wake-up of the connection's task).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    sync::{Notify, futures::Notified},
    time::Instant,
};

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

    /// How long, at `now`, it has had nothing in flight (None: something
    /// is).
    pub(crate) fn idle_time_at(&self, now: Instant) -> Option<Duration> {
        if self.in_flight() > 0 {
            return None;
        }
        let since = self.at(self.idle_since_ms.load(Ordering::Relaxed));
        Some(now.saturating_duration_since(since))
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

    /// When the connection will have had nothing in flight for `timeout`,
    /// counting idleness from `not_before` at the earliest.
    pub(crate) fn idle_deadline(
        &self,
        timeout: Duration,
        not_before: Instant,
        now: Instant,
    ) -> Deadline {
        if self.in_flight() > 0 {
            // Idle from when the last request ends, which is not yet.
            return Deadline::NotBefore(now + timeout);
        }
        let since = self.at(self.idle_since_ms.load(Ordering::Relaxed));
        Deadline::At(since.max(not_before) + timeout)
    }

    /// The connection speaks HTTP/1.1: a head ends when its request begins.
    pub(crate) fn set_http1(&self) {
        self.http1.store(true, Ordering::Relaxed);
    }

    /// Bytes of a head arrived; its time starts now unless it had started.
    pub(crate) fn head_begun(&self) {
        if self.head_since_ms.load(Ordering::Relaxed) == NO_HEAD {
            self.head_since_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    pub(crate) fn head_done(&self) {
        self.head_since_ms.store(NO_HEAD, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn reading_head(&self) -> bool {
        self.head_since_ms.load(Ordering::Relaxed) != NO_HEAD
    }

    /// When the head being read will have taken `timeout` (one that begins
    /// later is due `timeout` after it begins, so not before `now +
    /// timeout`).
    pub(crate) fn head_deadline(&self, timeout: Duration, now: Instant) -> Deadline {
        match self.head_since_ms.load(Ordering::Relaxed) {
            NO_HEAD => Deadline::NotBefore(now + timeout),
            since => Deadline::At(self.at(since) + timeout),
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

    /// Completes when the pressure reclaim asks the connection to close
    /// ([`Self::reclaim_asked`] is true from just before).
    pub(crate) fn reclaim_requested(&self) -> Notified<'_> {
        self.reclaim.notified()
    }
}

/// When something a connection watches for is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// At this instant, unless what it watches changes first.
    At(Instant),
    /// Nothing is due before this instant: look again then.
    NotBefore(Instant),
}

impl Deadline {
    pub(crate) fn is_due(self, now: Instant) -> bool {
        matches!(self, Self::At(at) if at <= now)
    }

    pub(crate) fn instant(self) -> Instant {
        match self {
            Self::At(at) | Self::NotBefore(at) => at,
        }
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
        let serving = Instant::now();
        let request = activity.begin();
        tokio::time::sleep(Duration::from_secs(25)).await;
        let now = Instant::now();
        let busy = activity.idle_deadline(timeout, serving, now);
        assert_eq!(
            busy,
            Deadline::NotBefore(now + timeout),
            "a request in flight"
        );
        assert!(!busy.is_due(now + timeout), "not due while busy");
        let done_at = Instant::now();
        drop(request);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let idle = activity.idle_deadline(timeout, serving, Instant::now());
        assert_eq!(
            idle,
            Deadline::At(done_at + timeout),
            "from the last request's end"
        );
        assert!(!idle.is_due(done_at + timeout - Duration::from_millis(1)));
        assert!(idle.is_due(done_at + timeout));
    }

    #[tokio::test(start_paused = true)]
    async fn idleness_counts_from_not_before() {
        let activity = Arc::new(Activity::new());
        tokio::time::sleep(Duration::from_secs(60)).await;
        let asked = Instant::now();
        let deadline = activity.idle_deadline(Duration::from_secs(2), asked, asked);
        assert_eq!(deadline, Deadline::At(asked + Duration::from_secs(2)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_is_overdue_only_if_it_is_still_the_same_head() {
        let activity = Arc::new(Activity::new());
        activity.set_http1();
        let timeout = Duration::from_secs(10);
        let first = Instant::now();
        activity.head_begun();
        assert_eq!(
            activity.head_deadline(timeout, first),
            Deadline::At(first + timeout)
        );
        // The first head completes in time; the connection then idles.
        tokio::time::sleep(Duration::from_secs(9)).await;
        let request = activity.begin();
        drop(request);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let now = Instant::now();
        let idle = activity.head_deadline(timeout, now);
        assert_eq!(idle, Deadline::NotBefore(now + timeout));
        assert!(
            !idle.is_due(now + timeout),
            "an idle connection is not a head"
        );
        // The next head starts and stalls: due a timeout after it began,
        // however many bytes of it come meanwhile.
        let begun = Instant::now();
        activity.head_begun();
        tokio::time::sleep(Duration::from_secs(4)).await;
        activity.head_begun();
        let due = activity.head_deadline(timeout, Instant::now());
        assert_eq!(due, Deadline::At(begun + timeout));
        assert!(due.is_due(begun + timeout));
    }
}
