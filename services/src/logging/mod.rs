//! Logs: `tracing` to stdout, JSON lines (for CloudWatch) or text.
//!
//! One line per request is the busiest thing a service writes, and at 100k
//! requests/s every microsecond of it shows. Two measured choices:
//! - [`JsonLines`] writes each event's JSON directly. tracing-subscriber's
//!   own JSON formatter (serde_json through an adaptor that re-checks UTF-8
//!   on every write, Debug-formatting for values) cost ~1 us more a line:
//!   server CPU per logged REST request 11.0 us with it, 10.0 us without.
//! - [`BatchWriter`]: a request thread appends its line to a shared buffer
//!   (a short memcpy under a lock: no syscall, no thread wake-up) and a
//!   writer thread writes the buffer to stdout in large chunks. Handing each
//!   line to a thread through a channel (tracing-appender's non-blocking
//!   writer) cost a thread wake-up per line, which tripled the CPU cost of a
//!   request. No line is dropped: when stdout falls far behind, writers wait.

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
