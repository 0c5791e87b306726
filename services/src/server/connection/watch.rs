//! What a connection watches for besides its requests, in one poll that
//! costs a few loads when nothing is due: its idle time, its request heads,
//! the pressure reclaim, the server's stop, and once it is being closed,
//! the grace before it is dropped.
//!
//! One timer serves every deadline: it is armed at the earliest moment
//! anything could be due and, when it fires, the connection's
//! [`Activity`] says what is due and when to look again. Requests and
//! reads only store times there, so a request costs no timer and no
//! wake-up (a `select!` of the futures instead rebuilt and re-registered
//! them on every request: ~1.4k instructions). The reclaim and the stop
//! are registered once and polled again only once their flag is set.

use std::{
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll, Waker},
    time::Duration,
};

use tokio::{
    sync::futures::Notified,
    time::{Instant, Sleep},
};
use tokio_util::sync::WaitForCancellationFuture;

use super::super::{
    activity::{Activity, Deadline},
    pressure::Tracked,
};
use crate::status::Lifecycle;

/// After an idle connection is told to close (GOAWAY on HTTP/2), how long
/// it must stay without work in flight before the socket is simply closed:
/// a client that never answers (preface-only floods) must not keep it.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The same for connections closed by pressure or for an unfinished head:
/// enough to send the GOAWAY, short so a flood's slots free at once.
const SHORT_CLOSE_GRACE: Duration = Duration::from_millis(250);
/// The timer's shortest step (a zero timeout must not spin).
const MIN_STEP: Duration = Duration::from_millis(1);

/// What the connection must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Close gracefully (GOAWAY on HTTP/2, `Connection: close` on HTTP/1.1).
    Shutdown,
    /// Drop it now.
    Drop,
}

/// Whether and why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// Idle or reclaimed: dropped once nothing is in flight for `grace`
    /// (counted from `from` at the earliest).
    WhenQuiet {
        grace: Duration,
        from: Instant,
    },
    /// A head overdue: dropped at this instant, whatever is in flight (the
    /// client can send nothing but the rest of that head).
    At(Instant),
    /// The server stops: its shutdown timeout bounds the rest.
    Stopping,
}

/// The timeouts one connection is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub(super) idle: Duration,
    pub(super) header_read: Duration,
}

/// The futures a [`Watch`] polls, pinned by its caller.
pub(super) struct Wakers<'f, 'a> {
    pub(super) timer: Pin<&'f mut Sleep>,
    pub(super) reclaim: Pin<&'f mut Notified<'a>>,
    pub(super) stop: Pin<&'f mut WaitForCancellationFuture<'a>>,
}

/// One connection's watch over its deadlines and close requests.
pub(super) struct Watch<'f, 'a> {
    client: SocketAddr,
    activity: &'a Activity,
    tracked: &'a Tracked,
    lifecycle: &'a Lifecycle,
    timeouts: Timeouts,
    serving_since: Instant,
    state: Closing,
    futures: Wakers<'f, 'a>,
    /// The waker the futures were last polled with (they wake it).
    registered: Option<Waker>,
    /// The timer was reset and has not been polled since.
    timer_unpolled: bool,
}

impl<'f, 'a> Watch<'f, 'a> {
    pub(super) fn new(
        client: SocketAddr,
        tracked: &'a Tracked,
        lifecycle: &'a Lifecycle,
        timeouts: Timeouts,
        mut futures: Wakers<'f, 'a>,
    ) -> Self {
        let now = Instant::now();
        futures
            .timer
            .as_mut()
            .reset(now + timeouts.idle.min(timeouts.header_read).max(MIN_STEP));
        Self {
            client,
            activity: tracked.activity(),
            tracked,
            lifecycle,
            timeouts,
            serving_since: now,
            state: Closing::Open,
            futures,
            registered: None,
            timer_unpolled: true,
        }
    }

    /// Ready when the connection must act; its task is woken when it may.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Action> {
        let fresh = !self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()));
        if fresh {
            self.registered = Some(cx.waker().clone());
        }
        if self.state == Closing::Open {
            // The server drains before it stops (`server::serve`): the stop
            // is looked at only from then on.
            if (fresh || self.lifecycle.is_draining())
                && self.futures.stop.as_mut().poll(cx).is_ready()
            {
                self.state = Closing::Stopping;
                return Poll::Ready(Action::Shutdown);
            }
            if (fresh || self.activity.reclaim_asked())
                && let Poll::Ready(action) = self.poll_reclaim(cx)
            {
                return Poll::Ready(action);
            }
        }
        if self.state == Closing::Stopping {
            return Poll::Pending;
        }
        while fresh || self.timer_unpolled || self.futures.timer.is_elapsed() {
            // With the task's coop budget spent, a `Sleep` answers Pending
            // without registering the waker (it only has the task polled
            // again): it counts as registered only if polled with budget.
            // A connection's task can start with little budget (spawned by
            // the accept loop, it runs from its LIFO slot on what a burst
            // of accepts left).
            let registers = tokio::task::coop::has_budget_remaining();
            if self.futures.timer.as_mut().poll(cx).is_pending() {
                self.timer_unpolled = !registers;
                break;
            }
            self.timer_unpolled = false;
            let now = Instant::now();
            let action = self.check(now);
            self.rearm(now);
            if let Some(action) = action {
                return Poll::Ready(action);
            }
        }
        Poll::Pending
    }

    /// The reclaim was asked: closes if idle, else waits for the next ask.
    fn poll_reclaim(&mut self, cx: &mut Context<'_>) -> Poll<Action> {
        while self.futures.reclaim.as_mut().poll(cx).is_ready() {
            // Registered (polled) again at once: the next ask wakes the task.
            self.futures.reclaim.set(self.activity.reclaim_requested());
            if self.tracked.accept_reclaim() {
                tracing::debug!(client = %self.client, "closing: idle, reclaimed under connection pressure");
                let now = Instant::now();
                self.state = Closing::WhenQuiet {
                    grace: SHORT_CLOSE_GRACE,
                    from: now,
                };
                self.rearm(now);
                return Poll::Ready(Action::Shutdown);
            }
        }
        Poll::Pending
    }

    /// What is due at `now`, if anything; moves the state on.
    fn check(&mut self, now: Instant) -> Option<Action> {
        let client = self.client;
        match self.state {
            Closing::Open => {
                if self.idle(now).is_due(now) {
                    tracing::debug!(%client, "closing: idle for CONNECTION_IDLE_TIMEOUT");
                    self.state = Closing::WhenQuiet {
                        grace: IDLE_CLOSE_GRACE,
                        from: now,
                    };
                    return Some(Action::Shutdown);
                }
                self.check_head(now)
            }
            Closing::WhenQuiet { grace, from } => {
                if self.activity.idle_deadline(grace, from, now).is_due(now) {
                    tracing::debug!(%client, "closed: no answer to the close");
                    return Some(Action::Drop);
                }
                self.check_head(now)
            }
            Closing::At(at) if at <= now => {
                tracing::debug!(%client, "closed: no answer to the close");
                Some(Action::Drop)
            }
            Closing::At(_) | Closing::Stopping => None,
        }
    }

    fn check_head(&mut self, now: Instant) -> Option<Action> {
        if !self.head(now).is_due(now) {
            return None;
        }
        tracing::debug!(client = %self.client, "closing: request head not complete within HEADER_READ_TIMEOUT");
        self.state = Closing::At(now + SHORT_CLOSE_GRACE);
        Some(Action::Shutdown)
    }

    fn idle(&self, now: Instant) -> Deadline {
        self.activity
            .idle_deadline(self.timeouts.idle, self.serving_since, now)
    }

    fn head(&self, now: Instant) -> Deadline {
        self.activity.head_deadline(self.timeouts.header_read, now)
    }

    /// Sets the timer to the earliest moment anything could be due.
    fn rearm(&mut self, now: Instant) {
        let next = match self.state {
            Closing::Open => self.idle(now).instant().min(self.head(now).instant()),
            Closing::WhenQuiet { grace, from } => self
                .activity
                .idle_deadline(grace, from, now)
                .instant()
                .min(self.head(now).instant()),
            Closing::At(at) => at,
            Closing::Stopping => return,
        };
        self.futures.timer.as_mut().reset(next.max(now + MIN_STEP));
        self.timer_unpolled = true;
    }
}

#[cfg(test)]
mod tests;
