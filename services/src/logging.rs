//! Logs: `tracing` to stdout, JSON lines (for CloudWatch) or text.
//!
//! Lines go through a non-blocking writer: request threads format the line
//! and hand it to a writer thread, so a slow stdout never stalls a request.
//! The writer is not lossy: if it falls far behind, callers wait rather than
//! lines being dropped.

use tracing::Subscriber;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter};

use crate::config::LogFormat;

/// Filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

#[derive(Debug, thiserror::Error)]
#[error("invalid value '{value}' for RUST_LOG: {reason}")]
pub struct LogFilterError {
    value: String,
    reason: String,
}

/// Installs the global subscriber, writing to stdout. Keep the guard alive
/// until exit: dropping it flushes the lines still queued.
pub fn init(format: LogFormat) -> Result<WorkerGuard, LogFilterError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) => EnvFilter::try_new(&value).map_err(|error| LogFilterError {
            value,
            reason: error.to_string(),
        })?,
        Err(_) => EnvFilter::new(DEFAULT_FILTER),
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let ansi = format == LogFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stdout());
    // Fails only if a subscriber is installed already; then that one logs.
    let _ = tracing::subscriber::set_global_default(subscriber(format, filter, writer, ansi));
    Ok(guard)
}

/// The subscriber `init` installs, writing to any writer (tests capture it).
/// JSON lines have the event's fields at the top level and the request's
/// span (with `request_id`) under `"span"`.
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
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.finish()),
    }
}
