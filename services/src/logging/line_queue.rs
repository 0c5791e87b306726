//! The queue between the threads that write log lines and the one thread
//! that hands them to the output: lines are appended to one buffer, and the
//! writer thread takes the whole buffer and writes it at once. At most
//! [`MAX_QUEUED_LINES`] lines wait or are being written; more are dropped
//! and counted, never waited for.
//!
//! What a line costs the thread that writes it: a lock held for a copy of
//! the line, nothing more unless the writer thread sleeps for want of lines
//! (then one wake-up). Woken, the writer lets lines gather for up to
//! [`LINGER`], or until [`BATCH_BYTES`] wait, so a steady stream of
//! requests costs a wake-up and a `write(2)` per batch, not per line.

use std::{
    io::Write,
    mem,
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

/// Lines waiting for the output at most; more are dropped and counted.
/// About 8 MB of JSON lines.
pub const MAX_QUEUED_LINES: usize = 16_384;
/// How long the writer thread, woken by a first line, lets more join it
/// before writing: how late a line may reach stdout.
pub(crate) const LINGER: Duration = Duration::from_millis(10);
/// Bytes waiting at which the writer thread stops lingering and writes.
pub(crate) const BATCH_BYTES: usize = 64 * 1024;
/// A batch buffer that grew past this (a burst, a blocked output) is freed
/// after its write rather than kept.
const KEPT_CAPACITY: usize = 256 * 1024;

/// The writing side: cheap to clone, never blocks on the output.
#[derive(Clone)]
pub(crate) struct Sender(Arc<Queue>);

/// The queue's ending: what the writer thread reports when it has written
/// everything and stopped.
pub(crate) struct Stopper(Arc<Queue>);

struct Queue {
    state: Mutex<State>,
    /// The writer thread waits here: for a line, for more, or for the stop.
    wake_writer: Condvar,
    /// Signalled when the writer thread has stopped.
    writer_stopped: Condvar,
    /// Lines dropped since start.
    dropped: AtomicU64,
}

struct State {
    /// The lines waiting, end to end.
    pending: Vec<u8>,
    /// How many lines `pending` holds.
    lines: usize,
    /// How many lines the writer thread is writing (they count against
    /// [`MAX_QUEUED_LINES`] until written: a blocked write holds them).
    writing: usize,
    writer: Writer,
    /// Set by [`Stopper::stop`]: the writer thread writes what waits and
    /// ends; lines written from then on are dropped.
    stopping: bool,
    /// Set by the writer thread when it has ended.
    stopped: bool,
}

/// What the writer thread is doing, so that a new line wakes it only when
/// it needs waking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Asleep until a line comes.
    Parked,
    /// Awake, letting lines gather for up to [`LINGER`].
    Lingering,
    /// Writing (or about to take the lines).
    Busy,
}

/// A queue and its writer thread, writing to `output` (named `name`).
/// `None` when the thread cannot start.
pub(crate) fn start<W: Write + Send + 'static>(name: &str, output: W) -> Option<(Sender, Stopper)> {
    let queue = Arc::new(Queue {
        state: Mutex::new(State {
            pending: Vec::new(),
            lines: 0,
            writing: 0,
            writer: Writer::Busy,
            stopping: false,
            stopped: false,
        }),
        wake_writer: Condvar::new(),
        writer_stopped: Condvar::new(),
        dropped: AtomicU64::new(0),
    });
    let theirs = Arc::clone(&queue);
    thread::Builder::new()
        .name(name.into())
        .spawn(move || write_until_stopped(&theirs, output))
        .ok()?;
    Some((Sender(Arc::clone(&queue)), Stopper(queue)))
}

impl Sender {
    /// Queues one line (or several, written together), or drops and counts
    /// it when the queue is full or stopping.
    pub(crate) fn send(&self, line: &[u8]) {
        let queue = &*self.0;
        let mut state = lock(&queue.state);
        if state.lines + state.writing >= MAX_QUEUED_LINES || state.stopping {
            drop(state);
            queue.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.pending.extend_from_slice(line);
        state.lines += 1;
        let wake = match state.writer {
            Writer::Parked => true,
            Writer::Lingering => state.pending.len() >= BATCH_BYTES,
            Writer::Busy => false,
        };
        if wake {
            // One wake-up is enough: later lines see it busy.
            state.writer = Writer::Busy;
        }
        drop(state);
        if wake {
            queue.wake_writer.notify_one();
        }
    }

    /// Lines dropped since start.
    pub(crate) fn dropped_lines(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

impl Stopper {
    /// Has the writer thread write what waits and stop, waiting at most
    /// `limit` for it; false if it did not finish in time (a blocked
    /// output). From now on lines are dropped. A second call does not wait:
    /// it says whether the writer has stopped.
    pub(crate) fn stop(&self, limit: Duration) -> bool {
        let queue = &*self.0;
        let mut state = lock(&queue.state);
        if state.stopping {
            return state.stopped;
        }
        state.stopping = true;
        queue.wake_writer.notify_one();
        let deadline = Instant::now() + limit;
        while !state.stopped {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            state = match queue.writer_stopped.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        true
    }
}

/// The writer thread: takes what waits and writes it, until stopped.
fn write_until_stopped(queue: &Queue, mut output: impl Write) {
    let mut batch = Vec::new();
    let mut state = lock(&queue.state);
    loop {
        while state.lines == 0 && !state.stopping {
            state.writer = Writer::Parked;
            state = wait(&queue.wake_writer, state, None);
        }
        if state.lines == 0 {
            break; // stopping, and everything is written
        }
        if !state.stopping && state.pending.len() < BATCH_BYTES {
            state.writer = Writer::Lingering;
            state = wait(&queue.wake_writer, state, Some(LINGER));
        }
        state.writer = Writer::Busy;
        mem::swap(&mut state.pending, &mut batch);
        state.writing = mem::take(&mut state.lines);
        drop(state);
        // A failed write (stdout closed) loses its lines, like a dropped one.
        let _ = output.write_all(&batch).and_then(|()| output.flush());
        batch.clear();
        if batch.capacity() > KEPT_CAPACITY {
            batch = Vec::new();
        }
        state = lock(&queue.state);
        state.writing = 0;
    }
    state.stopped = true;
    drop(state);
    queue.writer_stopped.notify_all();
}

fn wait<'a>(
    condvar: &Condvar,
    state: MutexGuard<'a, State>,
    timeout: Option<Duration>,
) -> MutexGuard<'a, State> {
    // A poisoned lock only means a panic elsewhere; the state is fine.
    match timeout {
        None => condvar
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
        Some(timeout) => match condvar.wait_timeout(state, timeout) {
            Ok((state, _)) => state,
            Err(poisoned) => poisoned.into_inner().0,
        },
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the value is fine.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::{io, sync::mpsc};

    use super::*;

    /// An output that counts its writes and passes what it got on.
    struct Counting {
        writes: Arc<AtomicU64>,
        bytes: mpsc::Sender<Vec<u8>>,
    }

    impl Write for Counting {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            let _ = self.bytes.send(bytes.to_vec());
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn counting() -> (Sender, Stopper, Arc<AtomicU64>, mpsc::Receiver<Vec<u8>>) {
        let writes = Arc::new(AtomicU64::new(0));
        let (bytes, received) = mpsc::channel();
        let output = Counting {
            writes: Arc::clone(&writes),
            bytes,
        };
        let (sender, stopper) = start("test-writer", output).unwrap();
        (sender, stopper, writes, received)
    }

    #[test]
    fn a_line_reaches_a_writer_that_was_asleep() {
        let (sender, _stopper, _, received) = counting();
        for line in ["first\n", "second\n"] {
            // Long enough for the writer to have written and parked again.
            thread::sleep(LINGER * 5);
            sender.send(line.as_bytes());
            let got = received.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(got, line.as_bytes());
        }
    }

    #[test]
    fn lines_that_come_together_are_written_together() {
        let (sender, stopper, writes, received) = counting();
        let lines = 2_000;
        for line in 0..lines {
            sender.send(format!("{line}\n").as_bytes());
        }
        assert!(stopper.stop(Duration::from_secs(10)));
        let text: Vec<u8> = received.try_iter().flatten().collect();
        let expected: String = (0..lines).map(|line| format!("{line}\n")).collect();
        assert_eq!(String::from_utf8(text).unwrap(), expected);
        // A write per batch, not per line (each wake-up lets lines gather).
        let writes = writes.load(Ordering::Relaxed);
        assert!(writes < lines / 10, "{writes} writes for {lines} lines");
    }

    #[test]
    fn a_stopped_queue_drops_and_counts_and_a_second_stop_does_not_wait() {
        let (sender, stopper, _, _received) = counting();
        sender.send(b"kept\n");
        assert!(stopper.stop(Duration::from_secs(10)));
        sender.send(b"late\n");
        assert_eq!(sender.dropped_lines(), 1);
        assert!(stopper.stop(Duration::ZERO));
    }
}
