//! The watch's tests: each drives one watched connection's activity and
//! lifecycle under paused time and polls the watch as its task would.

use std::sync::Arc;

use super::*;
use crate::emf::Recorder;
use crate::server::pressure::Pressure;

const IDLE: Duration = Duration::from_secs(600);
const HEAD: Duration = Duration::from_secs(10);

/// Polls `watch` once, as the connection's task does when woken.
async fn poll_once(watch: &mut Watch<'_, '_>) -> Poll<Action> {
    std::future::poll_fn(|cx| Poll::Ready(watch.poll(cx))).await
}

/// Runs `steps` against one watched connection, after its task's first
/// poll; each step acts on the connection's activity and lifecycle, then the
/// watch is polled.
async fn watched(steps: impl AsyncFnOnce(&Tracked, &Lifecycle, &mut Watch<'_, '_>)) {
    never_polled(async |tracked, lifecycle, watch| {
        assert_eq!(poll_once(watch).await, Poll::Pending, "a new connection");
        steps(tracked, lifecycle, watch).await;
    })
    .await;
}

/// Runs `steps` against one watched connection its task has not polled yet.
async fn never_polled(steps: impl AsyncFnOnce(&Tracked, &Lifecycle, &mut Watch<'_, '_>)) {
    let pressure = Pressure::new("test", 8, IDLE, Arc::new(Recorder::new("test", [])));
    let tracked = pressure.admit();
    let lifecycle = Lifecycle::new(1);
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let reclaim = tracked.activity().reclaim_requested();
    tokio::pin!(reclaim);
    let stop = lifecycle.stopping().cancelled();
    tokio::pin!(stop);
    let mut watch = Watch::new(
        "127.0.0.1:1".parse().expect("address"),
        &tracked,
        &lifecycle,
        Timeouts {
            idle: IDLE,
            header_read: HEAD,
        },
        Wakers {
            timer,
            reclaim,
            stop,
        },
    );
    steps(&tracked, &lifecycle, &mut watch).await;
}

/// Records whether it was woken.
#[derive(Default)]
struct WakeFlag(std::sync::atomic::AtomicBool);

impl std::task::Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl WakeFlag {
    fn take(&self) -> bool {
        self.0.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

/// Spends what is left of the task's coop budget, as a task does that
/// runs from the LIFO slot of the accept loop after a burst of accepts.
fn spend_coop_budget(cx: &mut Context<'_>) {
    while tokio::task::coop::has_budget_remaining() {
        let spend = std::pin::pin!(tokio::task::coop::consume_budget());
        let _ = spend.poll(cx);
    }
}

/// Regression (idle-flood/emfile left one preface-only connection open):
/// a `Sleep` polled with no coop budget left returns Pending without
/// registering the waker. The watch took that poll as a registration,
/// skipped the timer on the next poll, and the timer fired into no waker.
#[tokio::test(start_paused = true)]
async fn a_timer_first_polled_without_coop_budget_still_wakes_the_connection() {
    never_polled(async |_, _, watch| {
        let flag = Arc::new(WakeFlag::default());
        let waker = Waker::from(Arc::clone(&flag));
        let mut task = Context::from_waker(&waker);
        // The connection task's first poll, its budget spent.
        std::future::poll_fn(|cx| {
            spend_coop_budget(cx);
            assert_eq!(watch.poll(&mut task), Poll::Pending);
            Poll::Ready(())
        })
        .await;
        // The runtime polls it again, with a fresh budget: the deferred wake.
        tokio::task::yield_now().await;
        assert!(flag.take(), "asked to be polled again");
        std::future::poll_fn(|_| Poll::Ready(watch.poll(&mut task)))
            .await
            .is_pending()
            .then_some(())
            .expect("nothing due yet");
        tokio::task::yield_now().await;
        assert!(!flag.take(), "nothing to wake it for yet");
        tokio::time::sleep(IDLE + Duration::from_millis(5)).await;
        assert!(flag.take(), "the idle timeout woke the connection's task");
        assert_eq!(watch.poll(&mut task), Poll::Ready(Action::Shutdown));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed_then_dropped_after_the_grace() {
    watched(async |_, _, watch| {
        tokio::time::sleep(IDLE - Duration::from_millis(5)).await;
        assert_eq!(poll_once(watch).await, Poll::Pending);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(poll_once(watch).await, Poll::Ready(Action::Shutdown));
        tokio::time::sleep(IDLE_CLOSE_GRACE - Duration::from_millis(5)).await;
        assert_eq!(poll_once(watch).await, Poll::Pending);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(poll_once(watch).await, Poll::Ready(Action::Drop));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_head_overdue_is_closed_and_dropped_whatever_is_in_flight() {
    watched(async |tracked, _, watch| {
        tokio::time::sleep(Duration::from_secs(30)).await;
        tracked.activity().head_begun();
        let _busy = tracked.activity().begin();
        tracked.activity().head_begun();
        tokio::time::sleep(HEAD - Duration::from_millis(5)).await;
        assert_eq!(poll_once(watch).await, Poll::Pending);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(poll_once(watch).await, Poll::Ready(Action::Shutdown));
        tokio::time::sleep(SHORT_CLOSE_GRACE).await;
        assert_eq!(poll_once(watch).await, Poll::Ready(Action::Drop));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_reclaim_declined_while_busy_is_taken_when_asked_again() {
    watched(async |tracked, _, watch| {
        let busy = tracked.activity().begin();
        assert!(tracked.activity().ask_to_reclaim());
        assert_eq!(poll_once(watch).await, Poll::Pending, "busy: declined");
        assert!(!tracked.activity().reclaim_asked());
        drop(busy);
        assert!(tracked.activity().ask_to_reclaim());
        assert_eq!(poll_once(watch).await, Poll::Ready(Action::Shutdown));
        tokio::time::sleep(SHORT_CLOSE_GRACE).await;
        assert_eq!(poll_once(watch).await, Poll::Ready(Action::Drop));
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn the_stop_closes_gracefully_and_leaves_the_rest_to_the_shutdown_timeout() {
    watched(async |_, lifecycle, watch| {
        lifecycle.start_draining();
        assert_eq!(poll_once(watch).await, Poll::Pending, "draining only");
        lifecycle.stopping().cancel();
        assert_eq!(poll_once(watch).await, Poll::Ready(Action::Shutdown));
        tokio::time::sleep(IDLE * 2).await;
        assert_eq!(poll_once(watch).await, Poll::Pending);
    })
    .await;
}
