//! The read gate: backpressure that costs no CPU. While the service is
//! handling `READ_GATE_REQUESTS` requests, connections stop reading: their
//! `poll_read` returns Pending and parks the connection's waker here, so
//! new requests wait in the kernel's socket buffers and in the clients' own
//! queues instead of being parsed only to be refused (a refusal costs
//! nearly what an answer costs, and a client that sends again at once turns
//! refusals into a loop that starves the work admitted: issue 18).
//!
//! Writing is never gated: h2 still flushes responses while its read is
//! pending (`h2::proto::Connection::poll` runs `poll_complete` when reading
//! is Pending), so answers flow and each one frees room for more.
//!
//! A request counts from the moment the app is called until its response
//! is ready (a stream counts until its first answer, not for its life).
//! As requests finish, parked readers are let through in the order they
//! parked, one at a time: each let through reads what its client sent
//! (up to its HTTP/2 stream limit of requests) before the next one is, so
//! the count overshoots the limit by at most about one connection's batch.
//!
//! Never gated: a connection's reads before its first request (the
//! HTTP/2 handshake, and the ALB's health probe, which comes on a new
//! HTTP/1.1 connection each time), so a probe answers however busy the
//! service is; and a connection's reads while one of its request bodies is
//! still coming (HTTP/2 clients send a burst of HEADERS before the DATA
//! frames: holding those back would stall the requests admitted). If
//! nothing at all finishes for a second, [`ReadGate::tick`] lets one
//! parked reader through anyway.
//!
//! Here the gate itself (the count and the queue of parked readers); the
//! connection's IO wrapper in [`gated`], the clock in [`ticks`].

mod gated;
#[cfg(test)]
mod testing;
mod ticks;

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
};

pub(crate) use self::{gated::Gated, ticks::run_ticks};

/// The requests being handled by one service, and the readers parked
/// until fewer are.
#[derive(Debug)]
pub(crate) struct ReadGate {
    service: String,
    limit: usize,
    handling: AtomicUsize,
    /// Readers waiting, first parked first.
    parked: Mutex<VecDeque<Arc<Parked>>>,
    parked_now: AtomicUsize,
    /// A reader was let through and has not read yet.
    grant_outstanding: AtomicBool,
    /// One was outstanding at the last tick too.
    grant_outstanding_at_tick: AtomicBool,
    /// Requests finished since start (for [`Self::tick`]'s stall check).
    finished: AtomicU64,
    finished_at_last_tick: AtomicU64,
    /// Consecutive ticks with nothing finished.
    stalled_ticks: AtomicU64,
    /// Reads parked since start, and since the last warn line.
    parked_total: AtomicU64,
    parked_unlogged: AtomicU64,
}

/// One parked reader: waiting, granted its turn, or gone (its connection
/// closed). One atomic holds the three, so a grant and a leave racing each
/// other cannot both lose the turn: exactly one of them sees the other.
#[derive(Debug, Default)]
struct Parked {
    state: AtomicU8,
    waker: Mutex<Option<Waker>>,
}

const WAITING: u8 = 0;
const GRANTED: u8 = 1;
const GONE: u8 = 2;

impl Parked {
    fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(old) if old.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn granted(&self) -> bool {
        self.state.load(Ordering::Acquire) == GRANTED
    }

    /// Gives it the turn and wakes it; false if it is gone.
    fn grant(&self) -> bool {
        if self
            .state
            .compare_exchange(WAITING, GRANTED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Marks it gone; true if it held a turn it will not use.
    fn leave(&self) -> bool {
        self.state.swap(GONE, Ordering::AcqRel) == GRANTED
    }
}

impl ReadGate {
    pub(crate) fn new(service: &str, limit: u32) -> Arc<Self> {
        Arc::new(Self {
            service: service.to_owned(),
            limit: limit as usize,
            handling: AtomicUsize::new(0),
            parked: Mutex::default(),
            parked_now: AtomicUsize::new(0),
            grant_outstanding: AtomicBool::new(false),
            grant_outstanding_at_tick: AtomicBool::new(false),
            finished: AtomicU64::new(0),
            finished_at_last_tick: AtomicU64::new(0),
            stalled_ticks: AtomicU64::new(0),
            parked_total: AtomicU64::new(0),
            parked_unlogged: AtomicU64::new(0),
        })
    }

    /// Requests being handled now.
    pub(crate) fn handling(&self) -> usize {
        self.handling.load(Ordering::Acquire)
    }

    /// Reads parked since start.
    pub(crate) fn parked_total(&self) -> u64 {
        self.parked_total.load(Ordering::Relaxed)
    }

    fn open(&self) -> bool {
        self.handling() < self.limit
    }

    /// One request begins; it counts until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> Handling {
        self.handling.fetch_add(1, Ordering::AcqRel);
        Handling(Arc::clone(self))
    }

    fn finish(&self) {
        self.handling.fetch_sub(1, Ordering::AcqRel);
        self.finished.fetch_add(1, Ordering::Relaxed);
        if self.parked_now.load(Ordering::Acquire) > 0 && self.open() {
            self.let_one_through(false);
        }
    }

    /// Wakes the first parked reader, unless one let through has not read
    /// yet (`force`: even then).
    fn let_one_through(&self, force: bool) {
        if !force && self.grant_outstanding.swap(true, Ordering::AcqRel) {
            return;
        }
        self.grant_outstanding.store(true, Ordering::Release);
        let mut parked = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(next) = parked.pop_front() {
            self.parked_now.fetch_sub(1, Ordering::AcqRel);
            if next.grant() {
                return;
            }
        }
        self.grant_outstanding.store(false, Ordering::Release);
    }

    /// A reader let through has read (or is gone): the next may be let
    /// through when requests finish, or now if there is room.
    fn grant_used(&self) {
        self.grant_outstanding.store(false, Ordering::Release);
    }

    /// Whether a reader may read now; if not, it is parked (`slot` keeps
    /// its place) and woken when its turn comes.
    fn poll_pass(&self, slot: &mut Option<Arc<Parked>>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(parked) = slot {
            if !parked.granted() {
                parked.set_waker(cx.waker());
                if !parked.granted() {
                    return Poll::Pending;
                }
            }
            *slot = None;
            self.grant_used();
            return Poll::Ready(());
        }
        if self.open() && self.parked_now.load(Ordering::Acquire) == 0 {
            return Poll::Ready(());
        }
        let mut queue = self.parked.lock().unwrap_or_else(PoisonError::into_inner);
        if self.open() && queue.is_empty() {
            return Poll::Ready(());
        }
        let parked = Arc::new(Parked::default());
        parked.set_waker(cx.waker());
        queue.push_back(Arc::clone(&parked));
        self.parked_now.fetch_add(1, Ordering::AcqRel);
        drop(queue);
        self.parked_total.fetch_add(1, Ordering::Relaxed);
        self.parked_unlogged.fetch_add(1, Ordering::Relaxed);
        *slot = Some(parked);
        // Room may have come between the check and the parking.
        if self.open() {
            self.let_one_through(false);
        }
        Poll::Pending
    }

    /// A parked reader's connection is gone.
    fn leave(&self, parked: &Parked) {
        if parked.leave() {
            self.grant_used();
            if self.open() {
                self.let_one_through(false);
            }
        }
    }
}

/// A request being handled; finishes it when dropped.
#[derive(Debug)]
pub(crate) struct Handling(Arc<ReadGate>);

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::{
        testing::{connection, read_once, settle},
        *,
    };

    #[test]
    fn a_turn_and_a_leave_never_both_miss_each_other() {
        // Granted, then gone: the turn is handed back to be passed on.
        let parked = Parked::default();
        assert!(parked.grant());
        assert!(parked.leave());
        // Gone, then its turn comes: the turn goes to the next instead.
        let parked = Parked::default();
        assert!(!parked.leave());
        assert!(!parked.grant());
        assert!(!parked.granted());
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_reads_wait_and_resume_in_order_as_requests_finish() {
        // No ticks run here: only finished requests open the gate.
        let gate = ReadGate::new("test", 2);
        let (first, mut first_client) = connection(&gate);
        let (second, mut second_client) = connection(&gate);
        let (third, mut third_client) = connection(&gate);
        // Below the limit a read passes.
        let held = gate.begin();
        first_client.write_all(b"one").await.expect("write");
        let (read, first) = read_once(first).await.expect("task");
        assert_eq!(read, b"one");
        // At the limit reads park, even with bytes waiting.
        let held_too = gate.begin();
        for client in [&mut first_client, &mut second_client, &mut third_client] {
            client.write_all(b"more").await.expect("write");
        }
        let first = read_once(first);
        settle().await;
        let second = read_once(second);
        settle().await;
        let third = read_once(third);
        settle().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!first.is_finished() && !second.is_finished() && !third.is_finished());
        assert_eq!(gate.parked_total(), 3);
        // One request finishes: the first parked reader reads, the others wait.
        drop(held);
        let (read, _first) = first.await.expect("task");
        assert_eq!(read, b"more");
        settle().await;
        assert!(!second.is_finished() && !third.is_finished());
        // The next finishes: the second reads, in the order they parked.
        drop(held_too);
        let (read, _second) = second.await.expect("task");
        assert_eq!(read, b"more");
        // Nothing left to finish: the gate is open, the tick lets the last through.
        gate.tick(false);
        let (read, _third) = third.await.expect("task");
        assert_eq!(read, b"more");
        assert_eq!(gate.handling(), 0);
    }
}
