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

use std::{
    collections::VecDeque,
    io::{self, IoSlice},
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::activity::Activity;

/// How often [`ReadGate::tick`] runs (from the server's loop).
pub(crate) const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// Ticks with nothing finished after which one parked reader is let
/// through anyway (1 s): a safety valve, not a pace (a slow peer holding
/// every request for its deadline must not open the gate).
const STALLED_TICKS: u64 = 10;

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

/// One parked reader.
#[derive(Debug, Default)]
struct Parked {
    granted: AtomicBool,
    /// Dropped (its connection closed) while parked: skipped.
    gone: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Parked {
    fn set_waker(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(old) if old.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    fn wake(&self) {
        self.granted.store(true, Ordering::Release);
        let waker = self
            .waker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(waker) = waker {
            waker.wake();
        }
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
            if !next.gone.load(Ordering::Acquire) {
                next.wake();
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
            if !parked.granted.load(Ordering::Acquire) {
                parked.set_waker(cx.waker());
                if !parked.granted.load(Ordering::Acquire) {
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
        parked.gone.store(true, Ordering::Release);
        if parked.granted.load(Ordering::Acquire) {
            self.grant_used();
            if self.open() {
                self.let_one_through(false);
            }
        }
    }

    /// Runs every [`TICK_INTERVAL`]: lets a parked reader through when
    /// there is room but nobody was woken (or the one woken has not read
    /// since the last tick), or when nothing finished for
    /// [`STALLED_TICKS`] ticks (a stall nobody foresaw must not last);
    /// logs (warn, at most once a second) how many reads were
    /// parked.
    pub(crate) fn tick(&self, log: bool) {
        let finished = self.finished.load(Ordering::Relaxed);
        let stalled = if self.finished_at_last_tick.swap(finished, Ordering::Relaxed) == finished {
            self.stalled_ticks.fetch_add(1, Ordering::Relaxed) + 1 >= STALLED_TICKS
        } else {
            self.stalled_ticks.store(0, Ordering::Relaxed);
            false
        };
        // A reader let through that has not read by the next tick (its
        // connection does not want to read yet) must not hold up the rest.
        let outstanding = self.grant_outstanding.load(Ordering::Acquire);
        let stale_grant = self
            .grant_outstanding_at_tick
            .swap(outstanding, Ordering::Relaxed)
            && outstanding;
        if self.parked_now.load(Ordering::Acquire) > 0 {
            if self.open() {
                self.let_one_through(stale_grant);
            } else if stalled {
                self.stalled_ticks.store(0, Ordering::Relaxed);
                self.let_one_through(true);
            }
        }
        if log {
            let parked = self.parked_unlogged.swap(0, Ordering::Relaxed);
            if parked > 0 {
                tracing::warn!(
                    service = self.service,
                    read_gate_requests = self.limit,
                    handling = self.handling(),
                    parked_reads = parked,
                    parked_reads_total = self.parked_total(),
                    waiting_connections = self.parked_now.load(Ordering::Relaxed),
                    "READ_GATE_REQUESTS reached: connections wait before reading more requests"
                );
            }
        }
    }
}

/// Ticks the gate every [`TICK_INTERVAL`] (logging once a second) until
/// the task is aborted.
pub(crate) async fn run_ticks(gate: Arc<ReadGate>) {
    let mut ticks = tokio::time::interval(TICK_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let per_log = (Duration::from_secs(1).as_millis() / TICK_INTERVAL.as_millis()).max(1);
    for count in 0u128.. {
        ticks.tick().await;
        gate.tick(count % per_log == 0);
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

/// A connection's IO whose reads wait at the gate once its first request
/// has begun (`activity`).
#[derive(Debug)]
pub(crate) struct Gated<T> {
    inner: T,
    gate: Arc<ReadGate>,
    activity: Arc<Activity>,
    parked: Option<Arc<Parked>>,
}

impl<T> Gated<T> {
    pub(crate) fn new(inner: T, gate: Arc<ReadGate>, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            gate,
            activity,
            parked: None,
        }
    }
}

impl<T> Drop for Gated<T> {
    fn drop(&mut self) {
        if let Some(parked) = self.parked.take() {
            self.gate.leave(&parked);
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Gated<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let was_granted = this.parked.is_some();
        // A body still coming finishes work admitted: never held back.
        let gated = this.activity.requests_begun() && !this.activity.reading_bodies();
        if !gated {
            if let Some(parked) = this.parked.take() {
                this.gate.leave(&parked);
            }
        } else if this.gate.poll_pass(&mut this.parked, cx).is_pending() {
            return Poll::Pending;
        }
        let filled = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        // Let through but nothing to read: the turn goes to the next.
        if was_granted
            && (read.is_pending() || buf.filled().len() == filled)
            && this.gate.open()
            && this.gate.parked_now.load(Ordering::Acquire) > 0
        {
            this.gate.let_one_through(false);
        }
        read
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Gated<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex},
        task::JoinHandle,
        time::Instant,
    };

    use super::*;

    /// A gated connection that has served a request, and its client's end.
    fn connection(gate: &Arc<ReadGate>) -> (Gated<DuplexStream>, DuplexStream) {
        let (server, client) = duplex(1024);
        let activity = Arc::new(Activity::new());
        drop(activity.begin());
        (Gated::new(server, Arc::clone(gate), activity), client)
    }

    /// Reads once in a task; the task ends with what it read.
    fn read_once(mut server: Gated<DuplexStream>) -> JoinHandle<(Vec<u8>, Gated<DuplexStream>)> {
        tokio::spawn(async move {
            let mut buffer = [0u8; 64];
            let n = server.read(&mut buffer).await.expect("read");
            (buffer[..n].to_vec(), server)
        })
    }

    /// Lets spawned tasks run (time is paused: nothing else moves).
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
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

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_not_gated_before_its_first_request() {
        let gate = ReadGate::new("test", 1);
        let _held = gate.begin();
        let (server, mut client) = duplex(1024);
        let mut server = Gated::new(server, Arc::clone(&gate), Arc::new(Activity::new()));
        client.write_all(b"GET /healthcheck").await.expect("write");
        let mut buffer = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_millis(10), server.read(&mut buffer))
            .await
            .expect("not parked")
            .expect("read");
        assert_eq!(&buffer[..n], b"GET /healthcheck");
        assert_eq!(gate.parked_total(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn writes_go_on_while_reads_are_parked() {
        let gate = ReadGate::new("test", 1);
        let _held = gate.begin();
        let (server, mut client) = duplex(1024);
        let activity = Arc::new(Activity::new());
        drop(activity.begin());
        let mut server = Gated::new(server, Arc::clone(&gate), activity);
        client.write_all(b"request").await.expect("write");
        let mut buffer = [0u8; 64];
        let parked =
            tokio::time::timeout(Duration::from_millis(50), server.read(&mut buffer)).await;
        assert!(parked.is_err(), "read past the limit");
        server.write_all(b"answer").await.expect("write");
        let n = client.read(&mut buffer).await.expect("read");
        assert_eq!(&buffer[..n], b"answer");
    }

    #[tokio::test(start_paused = true)]
    async fn when_nothing_finishes_for_a_second_one_reader_is_let_through() {
        let gate = ReadGate::new("test", 1);
        let _stuck = gate.begin();
        let (first, mut first_client) = connection(&gate);
        let (second, mut second_client) = connection(&gate);
        first_client.write_all(b"body").await.expect("write");
        second_client.write_all(b"body").await.expect("write");
        let first = read_once(first);
        settle().await;
        let second = read_once(second);
        settle().await;
        let started = Instant::now();
        let ticks = tokio::spawn(run_ticks(Arc::clone(&gate)));
        let (read, _first) = first.await.expect("task");
        assert_eq!(read, b"body");
        let stall = TICK_INTERVAL * STALLED_TICKS as u32;
        let first_at = started.elapsed();
        assert!(
            first_at >= stall - TICK_INTERVAL && first_at <= stall,
            "{first_at:?}"
        );
        // One per stall, not all at once.
        settle().await;
        assert!(!second.is_finished());
        let (read, _second) = second.await.expect("task");
        assert_eq!(read, b"body");
        assert!(started.elapsed() >= first_at + stall - TICK_INTERVAL);
        ticks.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_parked_connection_that_closes_gives_its_turn_to_the_next() {
        let gate = ReadGate::new("test", 1);
        let held = gate.begin();
        let (first, _first_client) = connection(&gate);
        let (second, mut second_client) = connection(&gate);
        second_client.write_all(b"next").await.expect("write");
        let first = read_once(first);
        settle().await;
        let second = read_once(second);
        settle().await;
        first.abort();
        settle().await;
        drop(held);
        let (read, _second) = tokio::time::timeout(Duration::from_millis(10), second)
            .await
            .expect("woken by the release, not a tick")
            .expect("task");
        assert_eq!(read, b"next");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_still_receiving_a_request_body_reads_past_the_gate() {
        let gate = ReadGate::new("test", 1);
        let _held = gate.begin();
        let (server, mut client) = duplex(1024);
        let activity = Arc::new(Activity::new());
        drop(activity.begin());
        let body = activity.body_pending();
        let mut server = Gated::new(server, Arc::clone(&gate), Arc::clone(&activity));
        client.write_all(b"DATA").await.expect("write");
        let mut buffer = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_millis(10), server.read(&mut buffer))
            .await
            .expect("not parked")
            .expect("read");
        assert_eq!(&buffer[..n], b"DATA");
        // Once the body is in, the next read waits.
        drop(body);
        client.write_all(b"HEADERS").await.expect("write");
        let parked =
            tokio::time::timeout(Duration::from_millis(50), server.read(&mut buffer)).await;
        assert!(parked.is_err(), "read past the limit");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_let_through_that_does_not_read_does_not_hold_up_the_rest() {
        let gate = ReadGate::new("test", 1);
        let held = gate.begin();
        // Parked, then let through, but its task never reads again.
        let (mut idle, _idle_client) = connection(&gate);
        let mut buffer = [0u8; 8];
        let parked = tokio::time::timeout(Duration::from_millis(10), idle.read(&mut buffer)).await;
        assert!(parked.is_err());
        let (next, mut next_client) = connection(&gate);
        next_client.write_all(b"next").await.expect("write");
        let next = read_once(next);
        settle().await;
        drop(held);
        settle().await;
        assert!(!next.is_finished(), "the first in line goes first");
        // Two ticks: the unused grant goes stale and the next is let through.
        gate.tick(false);
        gate.tick(false);
        let (read, _next) = tokio::time::timeout(Duration::from_millis(10), next)
            .await
            .expect("let through")
            .expect("task");
        assert_eq!(read, b"next");
        drop(idle);
    }
}
