//! [`BatchWriter`]: log lines reach stdout through a buffer and one writer
//! thread. A request thread appends its line to a shared buffer (a short
//! memcpy under a lock: no syscall, no thread wake-up) and the writer thread
//! writes the buffer in large chunks (against tracing-appender's
//! non-blocking writer: see the logging module).
//!
//! No line is dropped: when stdout falls far behind, writers wait. If the
//! writer thread cannot be started, lines are written directly instead.
//! [`FlushGuard`] (dropped at exit) and [`Flusher`] (for an exit that cannot
//! wait for the guard, like a second signal) write what is buffered.

use std::{
    io::{self, Write},
    mem,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::{self, JoinHandle},
    time::Duration,
};

use tracing_subscriber::fmt::MakeWriter;

/// Lines reach stdout at most this late.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// A buffer this full is written at once.
const FLUSH_SIZE: usize = 64 * 1024;
/// Writers wait while this much is pending (stdout not keeping up).
const MAX_PENDING: usize = 8 * 1024 * 1024;

/// Buffers whole lines in memory; a background thread writes them. Cheap to
/// clone.
#[derive(Clone)]
pub struct BatchWriter {
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer thread early (buffer full, or closing).
    full: Condvar,
    /// Wakes writers waiting for room, and closers waiting for the end.
    room: Condvar,
    output: Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Pending {
    buffer: Vec<u8>,
    /// No writer thread: lines go straight to the output.
    direct: bool,
    /// Asked to write what is left and stop.
    closed: bool,
    /// The writer thread has written everything and stopped.
    finished: bool,
}

/// Writes what is buffered and stops the writer thread when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Writes what is buffered and stops the writer thread, from anywhere.
#[derive(Clone)]
pub struct Flusher {
    shared: Arc<Shared>,
}

impl BatchWriter {
    pub fn new<W: Write + Send + 'static>(output: W) -> (Self, FlushGuard) {
        Self::start(output, true)
    }

    fn start<W: Write + Send + 'static>(output: W, with_thread: bool) -> (Self, FlushGuard) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            full: Condvar::new(),
            room: Condvar::new(),
            output: Mutex::new(Box::new(output)),
        });
        let writer_shared = Arc::clone(&shared);
        let thread = with_thread
            .then(|| {
                thread::Builder::new()
                    .name("log-writer".into())
                    .spawn(move || write_batches(&writer_shared))
            })
            .and_then(|spawned| {
                spawned
                    .inspect_err(|error| {
                        eprintln!(
                            "warning: no log writer thread ({error}): writing log lines directly"
                        );
                    })
                    .ok()
            });
        if thread.is_none() {
            let mut pending = shared.lock();
            pending.direct = true;
            pending.finished = true;
        }
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

    fn write_out(&self, bytes: &[u8]) {
        let mut output = self
            .output
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Nowhere to report a failing stdout; the next write tries again.
        let _ = output.write_all(bytes).and_then(|()| output.flush());
    }

    /// Asks the writer thread to write everything and stop, and waits until it has.
    fn close_and_wait(&self) {
        let mut pending = self.lock();
        pending.closed = true;
        self.full.notify_one();
        while !pending.finished {
            pending = self
                .room
                .wait(pending)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

fn write_batches(shared: &Shared) {
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
            shared.write_out(&batch);
            batch.clear();
            // A burst can grow the buffer to megabytes; do not keep them.
            batch.shrink_to(FLUSH_SIZE);
        }
        if closed {
            let mut pending = shared.lock();
            if pending.buffer.is_empty() {
                pending.finished = true;
                shared.room.notify_all();
                return;
            }
        }
    }
}

impl Write for &BatchWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &self.shared;
        let mut pending = shared.lock();
        if pending.direct {
            drop(pending);
            shared.write_out(line);
            return Ok(line.len());
        }
        while pending.buffer.len() >= MAX_PENDING && !pending.closed {
            pending = shared
                .room
                .wait(pending)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let before = pending.buffer.len();
        pending.buffer.extend_from_slice(line);
        // Wake the writer once, when the buffer fills, not on every line after.
        if before < FLUSH_SIZE && pending.buffer.len() >= FLUSH_SIZE {
            shared.full.notify_one();
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

impl FlushGuard {
    /// The writer the lines go to, for lines written without `tracing`
    /// (the EMF metrics).
    pub fn writer(&self) -> BatchWriter {
        BatchWriter {
            shared: Arc::clone(&self.shared),
        }
    }

    /// A handle that can flush before this guard is dropped.
    pub fn flusher(&self) -> Flusher {
        Flusher {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.close_and_wait();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Flusher {
    /// Writes every line buffered so far and stops the writer thread; lines
    /// logged after this are not written. For an exit that cannot wait.
    pub fn flush_and_stop(&self) {
        self.shared.close_and_wait();
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

    impl Recorder {
        fn bytes(&self) -> Vec<u8> {
            self.0.lock().unwrap().concat()
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
        assert_eq!(output.bytes(), b"hello\n");
    }

    #[test]
    fn the_flusher_writes_everything_before_the_guard_is_dropped() {
        let output = Recorder::default();
        let (writer, guard) = BatchWriter::new(output.clone());
        (&writer).write_all(b"before a second signal\n").unwrap();
        // Immediately, well within the flush interval.
        guard.flusher().flush_and_stop();
        assert_eq!(output.bytes(), b"before a second signal\n");
        drop(guard);
    }

    #[test]
    fn without_a_writer_thread_lines_are_written_directly_and_never_block() {
        let output = Recorder::default();
        let (writer, guard) = BatchWriter::start(output.clone(), false);
        let line = vec![b'x'; 1024 * 1024];
        // More than MAX_PENDING: with no thread to drain the buffer, a
        // buffering writer would wait here for ever.
        for _ in 0..(MAX_PENDING / line.len() + 2) {
            (&writer).write_all(&line).unwrap();
        }
        assert_eq!(
            output.bytes().len(),
            (MAX_PENDING / line.len() + 2) * line.len()
        );
        drop(guard);
    }
}
