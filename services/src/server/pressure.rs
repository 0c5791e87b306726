//! Connection pressure: as open connections approach `MAX_CONNECTIONS`,
//! idle ones (nothing in flight) are closed, longest idle first, so a new
//! connection is always admitted and a health check always answers, however
//! many connections one client opens and leaves idle. nginx does the same
//! with its idle keep-alive connections; Envoy's overload manager scales
//! idle timeouts down as a resource fills (`reduce_timeouts`).
//!
//! - From [`PRESSURE_FROM`] of `MAX_CONNECTIONS` open, the idle timeout
//!   shrinks in proportion, from `CONNECTION_IDLE_TIMEOUT` down to
//!   [`MIN_IDLE_UNDER_PRESSURE`] at the high-water mark (checked once a
//!   second).
//! - Past the high-water mark ([`HIGH_WATER`] of `MAX_CONNECTIONS`), a new
//!   connection makes the longest-idle connections close until the count is
//!   [`RECLAIM_BATCH`] under it: one look over every connection serves the
//!   next batch of arrivals (a flood at 0.25 vCPU spent its CPU on a look
//!   per arrival).
//!
//! A connection with a request or stream in flight is never reclaimed.
//! Each reclaim is counted (EMF `ConnectionsReclaimed`) and logged at warn
//! by the once-a-second sweep, with counts (so at most a line a second, and
//! none lost).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use super::activity::Activity;
use crate::emf::Recorder;

/// Share of `MAX_CONNECTIONS` open from which idle timeouts shrink.
pub(crate) const PRESSURE_FROM: (usize, usize) = (1, 2);
/// Share of `MAX_CONNECTIONS` open above which a new connection reclaims
/// the longest-idle ones (3,072 of the default 4,096).
pub(crate) const HIGH_WATER: (usize, usize) = (3, 4);
/// Share of `MAX_CONNECTIONS` reclaimed beyond the excess at once past the
/// high-water mark (64 of the default 4,096).
pub(crate) const RECLAIM_BATCH: (usize, usize) = (1, 64);
/// The shortest the idle timeout becomes under pressure.
pub(crate) const MIN_IDLE_UNDER_PRESSURE: Duration = Duration::from_secs(1);
/// How often the shrunken idle timeout is applied.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Every open connection of one service, for reclaiming idle ones.
#[derive(Debug)]
pub(crate) struct Pressure {
    service: String,
    idle_timeout: Duration,
    pressure_from: usize,
    high_water: usize,
    batch: usize,
    connections: Mutex<HashMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
    /// Asked to close, not yet gone.
    closing: AtomicUsize,
    reclaimed: AtomicU64,
    /// Reclaimed since the last warn line.
    unlogged: AtomicU64,
    recorder: Arc<Recorder>,
}

impl Pressure {
    pub(crate) fn new(
        service: &str,
        max_connections: u32,
        idle_timeout: Duration,
        recorder: Arc<Recorder>,
    ) -> Arc<Self> {
        let max = max_connections as usize;
        let share = |(num, den): (usize, usize)| (max * num / den).max(1);
        Arc::new(Self {
            service: service.to_owned(),
            idle_timeout,
            pressure_from: share(PRESSURE_FROM),
            high_water: share(HIGH_WATER),
            batch: share(RECLAIM_BATCH),
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            closing: AtomicUsize::new(0),
            reclaimed: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
            recorder,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Activity>>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn open(&self) -> usize {
        self.lock().len()
    }

    /// Connections reclaimed since start.
    #[cfg(test)]
    pub(crate) fn reclaimed(&self) -> u64 {
        self.reclaimed.load(Ordering::Relaxed)
    }

    /// Registers a new connection; past the high-water mark, asks the
    /// longest-idle ones to close, a batch more than the excess.
    pub(crate) fn admit(self: &Arc<Self>) -> Tracked {
        let activity = Arc::new(Activity::new());
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let open = {
            let mut connections = self.lock();
            connections.insert(id, Arc::clone(&activity));
            connections.len()
        };
        let staying = open.saturating_sub(self.closing.load(Ordering::Relaxed));
        if staying > self.high_water {
            self.reclaim(|_| true, staying - self.high_water + self.batch);
        }
        Tracked {
            id,
            activity,
            pressure: Arc::clone(self),
        }
    }

    /// The idle timeout at `open` connections.
    pub(crate) fn idle_timeout_at(&self, open: usize) -> Duration {
        if open < self.pressure_from {
            return self.idle_timeout;
        }
        let room = self.high_water.saturating_sub(open) as u32;
        let span = (self.high_water - self.pressure_from).max(1) as u32;
        (self.idle_timeout * room / span).max(MIN_IDLE_UNDER_PRESSURE)
    }

    /// Under pressure, closes the connections idle longer than the shrunken
    /// idle timeout, and logs what was reclaimed since the last call.
    /// Called every [`SWEEP_INTERVAL`].
    pub(crate) fn sweep(&self) {
        let open = self.open();
        let reclaimed = self.unlogged.swap(0, Ordering::Relaxed);
        if reclaimed > 0 {
            tracing::warn!(
                service = self.service,
                open_connections = open,
                high_water = self.high_water,
                idle_timeout_now = ?self.idle_timeout_at(open),
                reclaimed,
                reclaimed_total = self.reclaimed.load(Ordering::Relaxed),
                "connections under pressure: closing idle ones, longest idle first"
            );
        }
        if open < self.pressure_from {
            return;
        }
        let timeout = self.idle_timeout_at(open);
        self.reclaim(|idle| idle >= timeout, usize::MAX);
    }

    /// Asks at most `wanted` idle connections for which `eligible(idle
    /// time)` holds to close, longest idle first.
    fn reclaim(&self, eligible: impl Fn(Duration) -> bool, wanted: usize) {
        let now = Instant::now();
        let mut idle: Vec<(Duration, Arc<Activity>)> = self
            .lock()
            .values()
            .filter(|activity| !activity.reclaim_asked())
            .filter_map(|activity| {
                let idle = activity.idle_time_at(now)?;
                eligible(idle).then(|| (idle, Arc::clone(activity)))
            })
            .collect();
        if wanted < idle.len() {
            idle.select_nth_unstable_by(wanted, |a, b| b.0.cmp(&a.0));
            idle.truncate(wanted);
        }
        for (_, activity) in idle {
            if activity.ask_to_reclaim() {
                self.closing.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A connection asked to close was idle and is closing.
    fn closed_one(&self) {
        self.reclaimed.fetch_add(1, Ordering::Relaxed);
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        self.recorder.record_reclaimed_connection();
    }
}

/// One open connection in the [`Pressure`] registry; leaves it when dropped.
#[derive(Debug)]
pub(crate) struct Tracked {
    id: u64,
    activity: Arc<Activity>,
    pressure: Arc<Pressure>,
}

impl Tracked {
    pub(crate) fn activity(&self) -> &Arc<Activity> {
        &self.activity
    }

    /// The connection was asked to close: true if it should (nothing in
    /// flight; counted as reclaimed), false if work came in meanwhile.
    pub(crate) fn accept_reclaim(&self) -> bool {
        if self.activity.in_flight() > 0 {
            self.pressure.closing.fetch_sub(1, Ordering::Relaxed);
            self.activity.reclaim_declined();
            return false;
        }
        self.pressure.closed_one();
        true
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.activity.reclaim_asked() {
            self.pressure.closing.fetch_sub(1, Ordering::Relaxed);
        }
        self.pressure.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pressure(max: u32) -> Arc<Pressure> {
        Pressure::new(
            "test",
            max,
            Duration::from_secs(600),
            Arc::new(Recorder::new("test", [])),
        )
    }

    #[test]
    fn idle_timeout_shrinks_from_half_to_the_high_water_mark() {
        let pressure = pressure(4096);
        for (open, expected) in [
            (0, 600),
            (2047, 600),
            (2048, 600),
            (2560, 300),
            (3000, 42),
            (3071, 1),
            (3072, 1),
            (4096, 1),
        ] {
            let got = pressure.idle_timeout_at(open);
            assert!(
                got.as_secs_f64() >= expected as f64 * 0.99
                    && got.as_secs_f64() <= expected as f64 + 1.0,
                "{open} open: {got:?}, expected about {expected}s"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_high_water_mark_the_longest_idle_are_asked_first_never_the_busy() {
        let pressure = pressure(8); // high water 6, batch 1
        let mut open = Vec::new();
        for _ in 0..6 {
            open.push(pressure.admit());
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let asked = |open: &[Tracked]| -> Vec<bool> {
            open.iter().map(|c| c.activity().reclaim_asked()).collect()
        };
        // The oldest is busy; the next two are idle longest.
        let _busy = open[0].activity().begin();
        assert!(open.iter().all(|c| !c.activity().reclaim_asked()));
        open.push(pressure.admit());
        assert_eq!(
            asked(&open),
            [false, true, true, false, false, false, false]
        );
        // One asked closes (it is idle); work arriving at the other before
        // it closes keeps it open.
        assert!(open[1].accept_reclaim());
        assert_eq!(pressure.reclaimed(), 1);
        open.remove(1);
        let _work = open[1].activity().begin();
        assert!(!open[1].accept_reclaim());
        assert!(!open[1].activity().reclaim_asked());
        assert_eq!(pressure.reclaimed(), 1);
        // Past the mark again: the longest idle left, never the busy two.
        open.push(pressure.admit());
        assert_eq!(
            asked(&open),
            [false, false, true, true, false, false, false]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn one_look_past_the_high_water_mark_frees_room_for_a_batch() {
        let pressure = pressure(256); // high water 192, batch 4
        let mut open: Vec<_> = (0..192).map(|_| pressure.admit()).collect();
        tokio::time::sleep(Duration::from_secs(1)).await;
        open.push(pressure.admit());
        let asked = |open: &[Tracked]| open.iter().filter(|c| c.activity().reclaim_asked()).count();
        assert_eq!(asked(&open), 1 + 4, "the excess and a batch");
        for _ in 0..4 {
            open.push(pressure.admit());
        }
        assert_eq!(asked(&open), 5, "the batch made room: no new look");
        open.push(pressure.admit());
        assert_eq!(asked(&open), 5 + 1 + 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_closes_only_connections_idle_past_the_shrunken_timeout() {
        let pressure = pressure(8); // from 4 open, idle timeout shrinks
        let old: Vec<_> = (0..3).map(|_| pressure.admit()).collect();
        tokio::time::sleep(Duration::from_secs(5)).await;
        pressure.sweep();
        assert!(
            old.iter().all(|c| !c.activity().reclaim_asked()),
            "3 of 8: no pressure"
        );
        let new = pressure.admit(); // 4 of 8 open: half, idle timeout still 600 s
        pressure.sweep();
        assert!(!new.activity().reclaim_asked());
        assert!(old.iter().all(|c| !c.activity().reclaim_asked()));
        let newer = pressure.admit(); // 5 of 8: 300 s
        tokio::time::sleep(Duration::from_secs(301)).await;
        let newest = pressure.admit(); // 6 of 8, the mark: 1 s
        pressure.sweep();
        assert!(old.iter().all(|c| c.activity().reclaim_asked()));
        assert!(new.activity().reclaim_asked() && newer.activity().reclaim_asked());
        assert!(!newest.activity().reclaim_asked(), "idle for less than 1 s");
    }
}
