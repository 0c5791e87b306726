//! Where log lines go: stdout, without ever making a request wait for it.
//!
//! stdout can block: awslogs in blocking mode while CloudWatch throttles, a
//! pipe nobody reads. So lines go through a queue in memory
//! ([`super::line_queue`]: at most [`MAX_QUEUED_LINES`] lines) and one
//! writer thread. While the queue is full a new line is dropped and
//! counted, never waited for; once a second a reporter logs
//! `"log lines dropped"` with how many, a line that reaches stdout when it
//! moves again. At exit the queue gets a bounded time to reach stdout
//! ([`Flusher::flush_within`]); what a blocked stdout has not taken by then
//! is lost.
//!
//! The queue replaced tracing-appender's non-blocking writer, which has the
//! same function but costs a heap copy and a channel send per line, and a
//! wake-up and a `write(2)` per line whenever its thread has caught up:
//! bench/findings.md has the A/B (`ab-appender` against `ab-ours`).
//!
//! The writer thread writes to its own copy of the stdout descriptor, never
//! through `std::io::stdout()`'s lock, which a blocked write would hold
//! against every other user (the exit's own cleanup among them).

use std::{
    fs::File,
    io::{self, Write},
    os::fd::AsFd,
    sync::mpsc,
    thread,
    time::Duration,
};

use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;

pub use super::line_queue::MAX_QUEUED_LINES;
use super::line_queue::{self, Sender, Stopper};

/// How often dropped lines are reported.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// Where log lines (and EMF lines) are written: cheap to clone, never
/// blocks. Each `write` is one line (or several written together): queued
/// whole, or dropped whole.
#[derive(Clone)]
pub struct LogWriter(Sender);

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
pub struct Flusher(std::sync::Arc<Stopper>);

/// A writer to stdout and its guard.
pub fn stdout_sink() -> Result<(LogWriter, LogGuard), SinkError> {
    // A descriptor of our own; `io::stdout()` if it cannot be had.
    let output: Box<dyn Write + Send> = match io::stdout().as_fd().try_clone_to_owned() {
        Ok(descriptor) => Box::new(File::from(descriptor)),
        Err(_) => Box::new(io::stdout()),
    };
    sink(output)
}

/// A non-blocking writer to `output` and its guard.
pub(crate) fn sink<W: Write + Send + 'static>(
    output: W,
) -> Result<(LogWriter, LogGuard), SinkError> {
    let (sender, stopper) = line_queue::start("log-writer", output).ok_or(SinkError)?;
    let guard = LogGuard {
        flusher: Flusher(std::sync::Arc::new(stopper)),
        stop_reporter: None,
    };
    Ok((LogWriter(sender), guard))
}

impl LogWriter {
    /// Lines dropped since start (the queue was full, or stopped).
    pub fn dropped_lines(&self) -> u64 {
        self.0.dropped_lines()
    }
}

impl Write for LogWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.0.send(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &LogWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.0.send(line);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = &'a LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
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
        let writer = writer.clone();
        let started = thread::Builder::new()
            .name("log-drops".into())
            .spawn(move || report_drops(&writer, &stopped, dispatch.as_ref()));
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
    /// are dropped. Only the first call waits; later ones say whether the
    /// writer has finished.
    pub fn flush_within(&self, limit: Duration) -> bool {
        self.0.stop(limit)
    }
}

fn report_drops(writer: &LogWriter, stop: &mpsc::Receiver<()>, dispatch: Option<&Dispatch>) {
    let mut reported = 0;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(REPORT_INTERVAL) {
        let total = writer.dropped_lines();
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

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Condvar, Mutex},
        time::{Duration, Instant},
    };

    use tracing_subscriber::EnvFilter;

    use super::*;
    use crate::logging::{LogFormat, line_queue::lock, subscriber};

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
        let (writer, mut guard) = sink(gate.clone()).unwrap();
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
        // Every line past the queue (what waits and what the blocked write
        // holds) was dropped; a report dropped too would count.
        let dropped = writer.dropped_lines();
        assert!(
            (extra as u64..=extra as u64 + 2).contains(&dropped),
            "{dropped} dropped"
        );
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
        assert!(report["dropped_total"].as_u64().unwrap() >= dropped);
        drop(guard);
    }

    #[test]
    fn a_blocked_output_gets_what_the_queue_held_and_the_rest_is_counted() {
        let gate = Gate::default();
        let (writer, guard) = sink(gate.clone()).unwrap();
        let lines = MAX_QUEUED_LINES + 5_000;
        let mut sender = writer.clone();
        finishes(move || {
            for line in 0..lines {
                // One write, one line (`writeln!` would write in pieces).
                sender
                    .write_all(format!("line {line}\n").as_bytes())
                    .unwrap();
            }
        });
        let dropped = writer.dropped_lines();
        gate.open();
        assert!(guard.flusher().flush_within(Duration::from_secs(10)));
        let text = gate.text();
        let written: Vec<&str> = text.lines().collect();
        // Each line whole, in order, and either written or counted.
        assert_eq!(written.len(), MAX_QUEUED_LINES);
        assert_eq!(written.len() as u64 + dropped, lines as u64);
        let numbers: Vec<usize> = written
            .iter()
            .map(|line| line.strip_prefix("line ").unwrap().parse().unwrap())
            .collect();
        assert!(numbers.windows(2).all(|pair| pair[0] < pair[1]));
        // Lines written after the flush are dropped and counted.
        writer.clone().write_all(b"late\n").unwrap();
        assert_eq!(writer.dropped_lines(), dropped + 1);
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
        let (mut writer, guard) = sink(io::BufWriter::new(gate.clone())).unwrap();
        let lines: Vec<String> = (0..10_000).map(|i| format!("line {i}\n")).collect();
        for line in &lines {
            writer.write_all(line.as_bytes()).unwrap();
        }
        assert!(guard.flusher().flush_within(Duration::from_secs(10)));
        assert_eq!(gate.text(), lines.concat());
        assert_eq!(writer.dropped_lines(), 0);
    }
}
