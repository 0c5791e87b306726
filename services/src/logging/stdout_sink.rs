//! Where log lines go: stdout, without ever making a request wait for it.
//!
//! stdout can block: awslogs in blocking mode while CloudWatch throttles, a
//! pipe nobody reads. So lines go through tracing-appender's non-blocking
//! writer in lossy mode: a queue of at most [`MAX_QUEUED_LINES`] lines and
//! one writer thread. While the queue is full a new line is dropped and
//! counted, never waited for; once a second a reporter logs
//! `"log lines dropped"` with how many, a line that reaches stdout when it
//! moves again. At exit the queue gets a bounded time to reach stdout
//! ([`Flusher::flush_within`]); what a blocked stdout has not taken by then
//! is lost.
//!
//! The writer thread writes to its own copy of the stdout descriptor through
//! a 64 KiB buffer: few large writes, and never `std::io::stdout()`'s lock,
//! which a blocked write would hold against every other user (the exit's
//! own cleanup among them).

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    mem,
    os::fd::AsFd,
    panic::{self, AssertUnwindSafe},
    sync::{Arc, Mutex, MutexGuard, mpsc},
    thread,
    time::Duration,
};

use tracing::Dispatch;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};

/// Lines waiting for stdout at most; more are dropped and counted. About
/// 8 MB of JSON lines, and 512 KiB of queue allocated at start.
pub const MAX_QUEUED_LINES: usize = 16_384;
/// Bytes the writer thread gathers before a write (it also writes whenever
/// the queue is empty).
const WRITE_BUFFER: usize = 64 * 1024;
/// How often dropped lines are reported.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Where log lines (and EMF lines) are written: cheap to clone, never blocks.
pub type LogWriter = NonBlocking;

#[derive(Debug, thiserror::Error)]
#[error("cannot start the log writer thread")]
pub struct SinkError;

/// Hands what is queued to stdout when dropped, waiting at most
/// [`LOG_FLUSH_TIMEOUT`]; [`Flusher::flush_within`] chooses the bound.
pub struct LogGuard {
    flusher: Flusher,
    stop_reporter: Option<mpsc::Sender<()>>,
}

/// How long dropping a [`LogGuard`] waits for the queue to reach stdout.
pub const LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Hands what is queued to stdout, from anywhere (the second-signal exit).
#[derive(Clone)]
pub struct Flusher {
    worker: Arc<Mutex<Option<WorkerGuard>>>,
}

/// A writer to stdout and its guard.
pub fn stdout_sink() -> Result<(LogWriter, LogGuard), SinkError> {
    // A descriptor of our own; `io::stdout()` if it cannot be had.
    let output: Box<dyn Write + Send> = match io::stdout().as_fd().try_clone_to_owned() {
        Ok(descriptor) => Box::new(File::from(descriptor)),
        Err(_) => Box::new(io::stdout()),
    };
    sink(BufWriter::with_capacity(WRITE_BUFFER, output))
}

/// A non-blocking writer to `output` and its guard.
pub(crate) fn sink<W: Write + Send + 'static>(
    output: W,
) -> Result<(LogWriter, LogGuard), SinkError> {
    // tracing-appender panics when it cannot start its thread; that is an
    // error here, reported once by the caller.
    let (writer, worker) = panic::catch_unwind(AssertUnwindSafe(|| {
        NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(MAX_QUEUED_LINES)
            .thread_name("log-writer")
            .finish(output)
    }))
    .map_err(|_| SinkError)?;
    let guard = LogGuard {
        flusher: Flusher {
            worker: Arc::new(Mutex::new(Some(worker))),
        },
        stop_reporter: None,
    };
    Ok((writer, guard))
}

impl LogGuard {
    pub fn flusher(&self) -> Flusher {
        self.flusher.clone()
    }

    /// Starts logging, once a second while lines are being dropped, how many
    /// (through `dispatch`, or the global subscriber). Without a thread for
    /// it, drops are still counted, only not reported.
    pub fn report_drops(&mut self, writer: &LogWriter, dispatch: Option<Dispatch>) {
        let (stop, stopped) = mpsc::channel();
        let counter = writer.error_counter();
        let started = thread::Builder::new()
            .name("log-drops".into())
            .spawn(move || report_drops(&counter, &stopped, dispatch.as_ref()));
        if started.is_ok() {
            self.stop_reporter = Some(stop);
        }
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        drop(self.stop_reporter.take());
        self.flusher.flush_within(LOG_FLUSH_TIMEOUT);
    }
}

impl Flusher {
    /// Hands every queued line to stdout and stops the writer thread,
    /// waiting at most `limit`. False when stdout did not take them in
    /// time (they are lost when the process exits). Lines logged after this
    /// are dropped.
    pub fn flush_within(&self, limit: Duration) -> bool {
        let Some(worker) = lock(&self.worker).take() else {
            return true; // flushed already, or being flushed
        };
        // The guard's drop waits for the writer thread (up to 1.1 s), and
        // when the queue is full it prints to stdout, which blocks for as
        // long as stdout does: drop it on a thread of its own.
        let parked = Arc::new(Mutex::new(Some(worker)));
        let theirs = Arc::clone(&parked);
        let (done, finished) = mpsc::channel();
        let started = thread::Builder::new()
            .name("log-flush".into())
            .spawn(move || {
                drop(lock(&theirs).take());
                let _ = done.send(());
            });
        if started.is_err() {
            // Dropping it here could block: leave the queued lines.
            if let Some(worker) = lock(&parked).take() {
                mem::forget(worker);
            }
            return false;
        }
        finished.recv_timeout(limit).is_ok()
    }
}

fn report_drops(counter: &ErrorCounter, stop: &mpsc::Receiver<()>, dispatch: Option<&Dispatch>) {
    let mut reported = 0;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(REPORT_INTERVAL) {
        let total = counter.dropped_lines();
        if total <= reported {
            continue;
        }
        let report = || {
            tracing::warn!(
                dropped = total - reported,
                dropped_total = total,
                "log lines dropped: stdout is not keeping up"
            );
        };
        match dispatch {
            Some(dispatch) => tracing::dispatcher::with_default(dispatch, report),
            None => report(),
        }
        // A report dropped too is counted, and the next one says so.
        reported = total;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the guard is fine.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::{
        sync::Condvar,
        time::{Duration, Instant},
    };

    use tracing_subscriber::EnvFilter;

    use super::*;
    use crate::logging::{LogFormat, subscriber};

    /// An output that blocks every write until opened, then keeps what
    /// reached it: stdout as a pipe nobody reads, until someone does.
    #[derive(Clone, Default)]
    struct Gate(Arc<(Mutex<GateState>, Condvar)>);

    /// Whether the gate is open, and what passed it.
    type GateState = (bool, Vec<u8>);

    impl Gate {
        fn open(&self) {
            lock(&self.0.0).0 = true;
            self.0.1.notify_all();
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&lock(&self.0.0).1).into_owned()
        }
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let (state, opened) = &*self.0;
            let mut state = lock(state);
            while !state.0 {
                state = opened.wait(state).unwrap();
            }
            state.1.extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Runs `work` on a thread; fails if it has not finished within 30 s
    /// (a writer that waits for stdout would never finish).
    fn finishes<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, finished) = mpsc::channel();
        thread::spawn(move || done.send(work()));
        finished
            .recv_timeout(Duration::from_secs(30))
            .expect("blocked on a blocked output")
    }

    #[test]
    fn a_blocked_output_drops_and_counts_lines_and_reports_them_once_it_moves() {
        let gate = Gate::default();
        let (writer, mut guard) =
            sink(BufWriter::with_capacity(WRITE_BUFFER, gate.clone())).unwrap();
        let dispatch = Dispatch::new(subscriber(
            LogFormat::Json,
            EnvFilter::new("warn"),
            writer.clone(),
            false,
        ));
        guard.report_drops(&writer, Some(dispatch));
        let extra = 1_000;
        let lines = MAX_QUEUED_LINES + extra;
        let mut sender = writer.clone();
        finishes(move || {
            let mut line = vec![b'x'; 1023];
            line.push(b'\n');
            for _ in 0..lines {
                sender.write_all(&line).unwrap();
            }
        });
        // Every line past the queue and what the writer thread holds (64
        // lines in its buffer, one in its blocked write) was dropped.
        let dropped = writer.error_counter().dropped_lines();
        assert!((extra - 70..=extra).contains(&dropped), "{dropped} dropped");
        gate.open();
        let deadline = Instant::now() + Duration::from_secs(10);
        let report = loop {
            let text = gate.text();
            if let Some(line) = text.lines().find(|l| l.contains("log lines dropped")) {
                break serde_json::from_str::<serde_json::Value>(line).unwrap();
            }
            assert!(Instant::now() < deadline, "no report of dropped lines");
            thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(report["level"], "WARN");
        assert!(report["dropped_total"].as_u64().unwrap() >= dropped as u64);
        drop(guard);
    }

    #[test]
    fn flushing_into_a_blocked_output_gives_up_at_its_bound() {
        let gate = Gate::default();
        let (mut writer, guard) = sink(gate.clone()).unwrap();
        writer.write_all(b"stuck\n").unwrap();
        let flusher = guard.flusher();
        let limit = Duration::from_millis(200);
        let (flushed, took) = finishes(move || {
            let started = Instant::now();
            (flusher.flush_within(limit), started.elapsed())
        });
        assert!(!flushed);
        assert!(took >= limit, "{took:?}");
        // Dropping the guard after it does not wait again.
        finishes(move || drop(guard));
        gate.open();
    }

    #[test]
    fn a_flush_writes_every_line_in_order() {
        let gate = Gate::default();
        gate.open();
        let (mut writer, guard) = sink(BufWriter::new(gate.clone())).unwrap();
        let lines: Vec<String> = (0..10_000).map(|i| format!("line {i}\n")).collect();
        for line in &lines {
            writer.write_all(line.as_bytes()).unwrap();
        }
        assert!(guard.flusher().flush_within(Duration::from_secs(10)));
        assert_eq!(gate.text(), lines.concat());
        assert_eq!(writer.error_counter().dropped_lines(), 0);
    }
}
