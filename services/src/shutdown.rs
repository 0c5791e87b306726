//! Turns SIGTERM (ECS stopping a task) and SIGINT (Ctrl-C) into a
//! cancellation that every service of the process drains on, and a second
//! signal into an exit at once.
//!
//! The signals are waited for on a thread of their own, not a runtime task:
//! a second signal must end the process even when the runtime has already
//! shut down or every worker is busy, and whatever stdout is doing.

use std::{
    io,
    sync::{Arc, OnceLock},
    thread,
    time::{Duration, Instant},
};

use signal_hook::{
    consts::{SIGINT, SIGTERM},
    iterator::Signals,
};
use tokio_util::sync::CancellationToken;

use crate::logging::Flusher;

/// Exit status after a second signal: 128 + SIGINT, what shells expect.
const EXIT_SECOND_SIGNAL: i32 = 130;
/// After a second signal, how long the queued log lines get to reach
/// stdout before the process exits anyway.
pub const SECOND_SIGNAL_FLUSH: Duration = Duration::from_millis(200);

/// When the first signal came, if one did.
#[derive(Debug, Clone, Default)]
pub struct Stopping {
    since: Arc<OnceLock<Instant>>,
}

impl Stopping {
    /// What is left of `window` after the first signal; `None` before one.
    pub fn time_left(&self, window: Duration) -> Option<Duration> {
        self.since
            .get()
            .map(|since| (*since + window).saturating_duration_since(Instant::now()))
    }
}

/// Cancels `token` on the first SIGTERM or SIGINT. A second signal, for
/// the impatient at a terminal, hands the queued log lines to stdout
/// (waiting at most [`SECOND_SIGNAL_FLUSH`]) and exits with status 130.
pub fn cancel_on_signal(token: CancellationToken, logs: Flusher) -> io::Result<Stopping> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let stopping = Stopping::default();
    let since = Arc::clone(&stopping.since);
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut received = signals.forever();
            let Some(first) = received.next() else { return };
            let _ = since.set(Instant::now());
            tracing::info!(signal = name(first), "shutting down");
            token.cancel();
            if received.next().is_some() {
                tracing::warn!("second signal: exiting now");
                logs.flush_within(SECOND_SIGNAL_FLUSH);
                std::process::exit(EXIT_SECOND_SIGNAL);
            }
        })?;
    Ok(stopping)
}

fn name(signal: i32) -> &'static str {
    if signal == SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}
