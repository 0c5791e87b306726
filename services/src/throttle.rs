//! Warnings about floods (refused connections, shed requests) written at
//! most once a second, each saying how many events it stands for, so a
//! flood cannot turn into a flood of log lines.

use std::{
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Shortest time between two lines about the same kind of event.
const INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    /// Milliseconds since [`epoch`] of the last line written, plus one (0: never).
    last_written: AtomicU64,
    /// Events since the last line written.
    pending: AtomicU64,
}

impl Throttle {
    /// Counts one event; `Some(n)` when a line should be written now, for
    /// the `n` events (this one included) since the last line.
    pub(crate) fn event(&self) -> Option<u64> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        let last = self.last_written.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= INTERVAL.as_millis() as u64;
        if due
            && self
                .last_written
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.pending.swap(0, Ordering::Relaxed));
        }
        None
    }
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_written_then_at_most_one_line_a_second() {
        let throttle = Throttle::default();
        assert_eq!(throttle.event(), Some(1));
        let written: Vec<_> = (0..1000).filter_map(|_| throttle.event()).collect();
        assert!(written.is_empty(), "{written:?}");
        std::thread::sleep(INTERVAL);
        // The line after the pause counts everything since the last one.
        assert_eq!(throttle.event(), Some(1001));
    }
}
