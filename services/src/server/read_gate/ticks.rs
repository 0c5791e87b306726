//! The read gate's clock: every [`TICK_INTERVAL`] it lets a parked reader
//! through that finished requests did not (room nobody was woken for, a
//! reader let through that does not read), lets one through anyway when
//! nothing finished for a second, and logs what was parked (at most a line
//! a second).

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use super::ReadGate;

/// How often [`ReadGate::tick`] runs (from the server's loop).
pub(crate) const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Ticks with nothing finished after which one parked reader is let
/// through anyway (1 s): a safety valve, not a pace (a slow peer holding
/// every request for its deadline must not open the gate).
pub(super) const STALLED_TICKS: u64 = 10;

impl ReadGate {
    /// Runs every [`TICK_INTERVAL`]: lets a parked reader through when
    /// there is room but nobody was woken (or the one woken has not read
    /// since the last tick), or when nothing finished for
    /// [`STALLED_TICKS`] ticks (a stall nobody foresaw must not last);
    /// logs (warn, at most once a second) how many reads were
    /// parked.
    pub(crate) fn tick(&self, log: bool) {
        let finished = self.finished.load(Ordering::Relaxed);
        let stalled = if self.finished_at_last_tick.swap(finished, Ordering::Relaxed) == finished {
            self.stalled_ticks.fetch_add(1, Ordering::Relaxed) + 1 >= STALLED_TICKS
        } else {
            self.stalled_ticks.store(0, Ordering::Relaxed);
            false
        };
        // A reader let through that has not read by the next tick (its
        // connection does not want to read yet) must not hold up the rest.
        let outstanding = self.grant_outstanding.load(Ordering::Acquire);
        let stale_grant = self
            .grant_outstanding_at_tick
            .swap(outstanding, Ordering::Relaxed)
            && outstanding;
        if self.parked_now.load(Ordering::Acquire) > 0 {
            if self.open() {
                self.let_one_through(stale_grant);
            } else if stalled {
                self.stalled_ticks.store(0, Ordering::Relaxed);
                self.let_one_through(true);
            }
        }
        if log {
            let parked = self.parked_unlogged.swap(0, Ordering::Relaxed);
            if parked > 0 {
                tracing::warn!(
                    service = self.service,
                    read_gate_requests = self.limit,
                    handling = self.handling(),
                    parked_reads = parked,
                    parked_reads_total = self.parked_total(),
                    waiting_connections = self.parked_now.load(Ordering::Relaxed),
                    "READ_GATE_REQUESTS reached: connections wait before reading more requests"
                );
            }
        }
    }
}

/// Ticks the gate every [`TICK_INTERVAL`] (logging once a second) until
/// the task is aborted.
pub(crate) async fn run_ticks(gate: Arc<ReadGate>) {
    let mut ticks = tokio::time::interval(TICK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let per_log = (Duration::from_secs(1).as_millis() / TICK_INTERVAL.as_millis()).max(1);
    for count in 0u128.. {
        ticks.tick().await;
        gate.tick(count % per_log == 0);
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        time::Instant,
    };

    use super::{
        super::testing::{connection, read_once, settle},
        *,
    };

    #[tokio::test(start_paused = true)]
    async fn when_nothing_finishes_for_a_second_one_reader_is_let_through() {
        let gate = ReadGate::new("test", 1);
        let _stuck = gate.begin();
        let (first, mut first_client) = connection(&gate);
        let (second, mut second_client) = connection(&gate);
        first_client.write_all(b"body").await.expect("write");
        second_client.write_all(b"body").await.expect("write");
        let first = read_once(first);
        settle().await;
        let second = read_once(second);
        settle().await;
        let started = Instant::now();
        let ticks = tokio::spawn(run_ticks(Arc::clone(&gate)));
        let (read, _first) = first.await.expect("task");
        assert_eq!(read, b"body");
        let stall = TICK_INTERVAL * STALLED_TICKS as u32;
        let first_at = started.elapsed();
        assert!(
            first_at >= stall - TICK_INTERVAL && first_at <= stall,
            "{first_at:?}"
        );
        // One per stall, not all at once.
        settle().await;
        assert!(!second.is_finished());
        let (read, _second) = second.await.expect("task");
        assert_eq!(read, b"body");
        assert!(started.elapsed() >= first_at + stall - TICK_INTERVAL);
        ticks.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_let_through_that_does_not_read_does_not_hold_up_the_rest() {
        let gate = ReadGate::new("test", 1);
        let held = gate.begin();
        // Parked, then let through, but its task never reads again.
        let (mut idle, _idle_client) = connection(&gate);
        let mut buffer = [0u8; 8];
        let parked = tokio::time::timeout(Duration::from_millis(10), idle.read(&mut buffer)).await;
        assert!(parked.is_err());
        let (next, mut next_client) = connection(&gate);
        next_client.write_all(b"next").await.expect("write");
        let next = read_once(next);
        settle().await;
        drop(held);
        settle().await;
        assert!(!next.is_finished(), "the first in line goes first");
        // Two ticks: the unused grant goes stale and the next is let through.
        gate.tick(false);
        gate.tick(false);
        let (read, _next) = tokio::time::timeout(Duration::from_millis(10), next)
            .await
            .expect("let through")
            .expect("task");
        assert_eq!(read, b"next");
        drop(idle);
    }
}
