//! Logs: `tracing` to stdout, JSON lines (for CloudWatch) or text.
//!
//! One line per request is the busiest thing a service writes, and at 100k
//! requests/s every microsecond of it shows. Two measured choices:
//! - [`JsonLines`] writes each event's JSON directly. tracing-subscriber's
//!   own JSON formatter (serde_json through an adaptor that re-checks UTF-8
//!   on every write, Debug-formatting for values) costs ~15k instructions
//!   and 2.4-3.1 us of CPU more a request (BENCHMARKS.md, A/B).
//! - [`BatchWriter`]: a request thread appends its line to a shared buffer
//!   (a short memcpy under a lock: no syscall, no thread wake-up) and a
//!   writer thread writes the buffer to stdout in large chunks. No line is
//!   dropped: when stdout falls far behind, writers wait. Against
//!   tracing-appender's non-blocking writer it is not clearly faster
//!   (BENCHMARKS.md: -2.3 us in one full run, +1.2 us in the next); it stays
//!   for what the appender lacks (a direct-write fallback, the `Flusher` of
//!   the second-signal exit) until a replacement keeps those.

mod batch_writer;
mod json_lines;

use std::io;

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter};

pub use self::{
    batch_writer::{BatchWriter, FlushGuard, Flusher},
    json_lines::JsonLines,
};
use crate::config::LogFormat;

/// Filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";
#[derive(Debug, thiserror::Error)]
#[error("invalid value '{value}' for RUST_LOG: {reason}")]
pub struct LogFilterError {
    value: String,
    reason: String,
}

/// Installs the global subscriber, writing to stdout. Keep the returned
/// guard alive until exit: dropping it writes what is still buffered.
pub fn init(format: LogFormat) -> Result<FlushGuard, LogFilterError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) => EnvFilter::try_new(&value).map_err(|error| LogFilterError {
            value,
            reason: error.to_string(),
        })?,
        Err(_) => EnvFilter::new(DEFAULT_FILTER),
    };
    let (writer, guard) = BatchWriter::new(io::stdout());
    let ansi = format == LogFormat::Text && io::IsTerminal::is_terminal(&io::stdout());
    // Fails only if a subscriber is installed already; then that one logs.
    let _ = tracing::subscriber::set_global_default(subscriber(format, filter, writer, ansi));
    Ok(guard)
}

/// The subscriber `init` installs, writing to any writer (tests capture it).
/// JSON lines have the event's fields (`request_id` among them) at the top
/// level.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => Box::new(builder.event_format(JsonLines).finish()),
        LogFormat::Text => Box::new(builder.finish()),
    }
}
