//! Metrics with no agent: CloudWatch Embedded Metric Format. Each service
//! counts its requests and peer calls ([`Recorder`]) and, every
//! `EMF_INTERVAL` (and once more when it stops), writes what it counted as
//! a few JSON lines to stdout, which awslogs ships to CloudWatch Logs and
//! CloudWatch turns into metrics ([`catalog`] names them). Never a line per
//! request: a line per route and code class that had requests, plus one per
//! service.
//!
//! Lines are written only when logs are JSON (the format CloudWatch
//! reads), through the same non-blocking writer as the log lines (a
//! blocked stdout drops them rather than making anything wait).

pub mod catalog;
mod histogram;
mod recorder;

use std::{
    io::Write,
    sync::{Arc, OnceLock},
    time::{Duration, SystemTime},
};

use tokio_util::sync::CancellationToken;

pub(crate) use self::recorder::{CodeClass, RouteId};
pub use self::recorder::{Gauges, OTHER_ROUTE, Recorder};
use crate::logging::LogWriter;

static OUTPUT: OnceLock<LogWriter> = OnceLock::new();

/// Sends EMF lines to `writer` from now on (set once, at start, when logs
/// are JSON). Without it, services count but write nothing.
pub fn set_output(writer: LogWriter) {
    let _ = OUTPUT.set(writer);
}

/// Where and how often EMF lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmfSettings {
    /// CloudWatch namespace of every metric.
    pub namespace: String,
    /// Time between two writes; zero writes nothing.
    pub interval: Duration,
}

impl Default for EmfSettings {
    fn default() -> Self {
        Self {
            namespace: catalog::DEFAULT_NAMESPACE.to_owned(),
            interval: Duration::from_secs(60),
        }
    }
}

/// Writes `recorder`'s lines every interval until `stop`, then once more
/// (what was counted since the last write). Returns at once when there is
/// nowhere to write or the interval is zero.
pub(crate) async fn publish(
    recorder: Arc<Recorder>,
    settings: EmfSettings,
    gauges: impl Fn() -> Gauges,
    stop: CancellationToken,
) {
    let Some(output) = OUTPUT.get() else { return };
    if settings.interval.is_zero() {
        return;
    }
    let first = tokio::time::Instant::now() + settings.interval;
    let mut ticks = tokio::time::interval_at(first, settings.interval);
    loop {
        let stopping = tokio::select! {
            _ = ticks.tick() => false,
            () = stop.cancelled() => true,
        };
        let lines = recorder.take_lines(&settings.namespace, now_ms(), gauges());
        let mut bytes = Vec::with_capacity(lines.len() * 512);
        for line in &lines {
            if serde_json::to_writer(&mut bytes, line).is_ok() {
                bytes.push(b'\n');
            }
        }
        // One message: all of this window's lines reach stdout, or none
        // (counted as dropped) while stdout is blocked.
        let _ = output.clone().write_all(&bytes);
        if stopping {
            return;
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}
