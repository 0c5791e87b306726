//! Logs: `tracing` to stdout, JSON lines (for CloudWatch) or text.
//!
//! One line per request is the busiest thing a service writes, so lines go
//! through a [`BatchWriter`]: a request thread appends its line to a shared
//! buffer (a short memcpy under a lock: no syscall, no thread wake-up) and a
//! writer thread writes the buffer to stdout in large chunks. Handing each
//! line to a thread through a channel (tracing-appender's non-blocking
//! writer) cost a thread wake-up per line, which tripled the CPU cost of a
//! request. No line is dropped: when stdout falls far behind, writers wait.

use std::{
    io::{self, Write},
    mem,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::{self, JoinHandle},
    time::Duration,
};

use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter};

use crate::config::LogFormat;

/// Filter when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";
/// Lines reach stdout at most this late.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// A buffer this full is written at once.
const FLUSH_SIZE: usize = 64 * 1024;
/// Writers wait while this much is pending (stdout not keeping up).
const MAX_PENDING: usize = 8 * 1024 * 1024;

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
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.finish()),
    }
}

/// Buffers whole lines in memory; a background thread writes them. Cheap to
/// clone. Its [`FlushGuard`] writes what is left when dropped.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer thread early (buffer full, or closing).
    full: Condvar,
    /// Wakes writers waiting for room.
    room: Condvar,
}

#[derive(Default)]
struct Pending {
    buffer: Vec<u8>,
    closed: bool,
}

/// Stops the writer thread once everything buffered is written.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchWriter {
    pub fn new<W: Write + Send + 'static>(output: W) -> (Self, FlushGuard) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            full: Condvar::new(),
            room: Condvar::new(),
        });
        let writer_shared = Arc::clone(&shared);
        // Without the thread (the OS refused one) lines stay buffered and
        // the guard writes them at exit.
        let thread = thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_batches(&writer_shared, output))
            .ok();
        (
            Self {
                shared: Arc::clone(&shared),
            },
            FlushGuard { shared, thread },
        )
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A poisoned lock only means a panic elsewhere; the bytes are fine.
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn write_batches(shared: &Shared, mut output: impl Write) {
    let mut batch = Vec::with_capacity(FLUSH_SIZE);
    loop {
        let closed = {
            let mut pending = shared.lock();
            // Wait for a full buffer or the interval, so a busy service
            // writes a few large chunks instead of a stream of small ones.
            if !pending.closed && pending.buffer.len() < FLUSH_SIZE {
                pending = match shared.full.wait_timeout(pending, FLUSH_INTERVAL) {
                    Ok((guard, _)) => guard,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
            mem::swap(&mut batch, &mut pending.buffer);
            pending.closed
        };
        shared.room.notify_all();
        if !batch.is_empty() {
            // Nowhere to report a failing stdout; keep going for the next batch.
            let _ = output.write_all(&batch).and_then(|()| output.flush());
            batch.clear();
            // A burst can grow the buffer to megabytes; do not keep them.
            batch.shrink_to(FLUSH_SIZE);
        }
        if closed && shared.lock().buffer.is_empty() {
            return;
        }
    }
}

impl Write for &BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let mut pending = self.shared.lock();
        while pending.buffer.len() >= MAX_PENDING && !pending.closed {
            pending = self
                .shared
                .room
                .wait(pending)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let before = pending.buffer.len();
        pending.buffer.extend_from_slice(line);
        // Wake the writer once, when the buffer fills, not on every line after.
        if before < FLUSH_SIZE && pending.buffer.len() >= FLUSH_SIZE {
            self.shared.full.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.full.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output that records what reached it, in how many writes.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(bytes.to_vec());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_in_order_in_few_writes_and_drop_flushes() {
        let output = Recorder::default();
        let (writer, guard) = BatchWriter::new(output.clone());
        let lines: Vec<String> = (0..10_000).map(|i| format!("line {i}\n")).collect();
        for line in &lines {
            (&writer).write_all(line.as_bytes()).unwrap();
        }
        drop(guard);
        let writes = output.0.lock().unwrap();
        assert_eq!(writes.concat(), lines.concat().into_bytes());
        assert!(
            writes.len() < 100,
            "{} writes for 10,000 lines",
            writes.len()
        );
    }

    #[test]
    fn a_quiet_line_is_written_within_the_flush_interval() {
        let output = Recorder::default();
        let (writer, _guard) = BatchWriter::new(output.clone());
        (&writer).write_all(b"hello\n").unwrap();
        thread::sleep(FLUSH_INTERVAL * 4);
        assert_eq!(output.0.lock().unwrap().concat(), b"hello\n");
    }
}
