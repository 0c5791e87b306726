//! Logs: `tracing` to stdout, JSON lines (for CloudWatch) or text.
//!
//! One line per request is the busiest thing a service writes, and at 100k
//! requests/s every microsecond of it shows. Three choices:
//! - The access line is not a `tracing` event: [`access_line`] writes its
//!   typed record directly, in the same schema, to the same writer (about
//!   a third of the instructions the event cost; bench/findings.md).
//! - [`JsonLines`] writes each event's JSON directly. tracing-subscriber's
//!   own JSON formatter (serde_json through an adaptor that re-checks UTF-8
//!   on every write, Debug-formatting for values) costs ~15k instructions
//!   and 2.4-3.1 us of CPU more a request (BENCHMARKS.md, A/B).
//! - Lines reach stdout through a queue and a writer thread of our own
//!   ([`stdout_sink`], [`line_queue`]): a request never waits for stdout.
//!   When stdout blocks (awslogs in blocking mode while CloudWatch
//!   throttles, a pipe nobody reads), at most [`MAX_QUEUED_LINES`] lines
//!   wait; later ones are dropped and counted, and a `"log lines dropped"`
//!   line says how many once stdout moves again. Exit waits for the queue
//!   at most a bounded time. A line costs a copy under a lock; the writer
//!   thread is woken once per batch and writes each batch at once, where
//!   tracing-appender's non-blocking writer (the same function) cost a heap
//!   copy, a channel send and often a wake-up and a `write(2)` per line
//!   (bench/findings.md has the A/B).
//!
//! This module depends on nothing else of the crate: `config` and `emf`
//! use it, never the other way round.

pub(crate) mod access_line;
mod json_lines;
mod line_bytes;
mod line_queue;
mod line_values;
mod stdout_sink;

use std::io;

use clap::ValueEnum;
use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, layer::SubscriberExt};

pub use self::{
    access_line::AccessLines,
    json_lines::JsonLines,
    stdout_sink::{
        Flusher, LOG_FLUSH_TIMEOUT, LogGuard, LogWriter, MAX_QUEUED_LINES, SinkError, stdout_sink,
    },
};

/// Filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// `LOG_FORMAT`: JSON lines for CloudWatch, or text for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, thiserror::Error)]
pub enum LogInitError {
    #[error("invalid value '{value}' for RUST_LOG: {reason}")]
    Filter { value: String, reason: String },
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Installs the global subscriber, writing to stdout, and returns the
/// writer (for lines written without `tracing`: the EMF metrics) and the
/// guard. Keep the guard alive until exit: dropping it hands the queued
/// lines to stdout, waiting at most [`LOG_FLUSH_TIMEOUT`].
pub fn init(format: LogFormat) -> Result<(LogWriter, LogGuard), LogInitError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) => EnvFilter::try_new(&value).map_err(|error| LogInitError::Filter {
            value,
            reason: error.to_string(),
        })?,
        Err(_) => EnvFilter::new(DEFAULT_FILTER),
    };
    let (writer, mut guard) = stdout_sink()?;
    let ansi = format == LogFormat::Text && io::IsTerminal::is_terminal(&io::stdout());
    // Fails only if a subscriber is installed already; then that one logs.
    let _ =
        tracing::subscriber::set_global_default(subscriber(format, filter, writer.clone(), ansi));
    guard.report_drops(&writer, None);
    Ok((writer, guard))
}

/// The subscriber `init` installs, writing to any writer (tests capture it).
/// JSON lines have the event's fields (`request_id` among them) at the top
/// level. Access lines are written by [`access_line`] in the same format to
/// the same writer.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    let access_lines = AccessLines::new(format, ansi, writer.clone());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => Box::new(builder.event_format(JsonLines).finish().with(access_lines)),
        LogFormat::Text => Box::new(builder.finish().with(access_lines)),
    }
}
