//! One accepted connection, HTTP/1.1 or h2c (told apart by its first
//! bytes), with the limits that keep a client from holding a connection
//! without using it:
//! - one that sends nothing within `FIRST_BYTE_TIMEOUT` is dropped;
//! - from its first byte, a request head must be complete within
//!   `HEADER_READ_TIMEOUT`: on HTTP/1.1 each request head, on HTTP/2 the
//!   preface and SETTINGS, then every header block (HEADERS and its
//!   CONTINUATION frames) ([`super::head_watch`]); past it the connection
//!   is closed (GOAWAY on HTTP/2);
//! - one with no request in flight for `CONNECTION_IDLE_TIMEOUT` is closed
//!   gracefully (a keep-alive HTTP/1.1 connection waiting for its next
//!   request is idle, not reading a head);
//! - under connection pressure an idle one may be asked to close sooner
//!   ([`super::pressure`]);
//! - while the service handles `READ_GATE_REQUESTS` requests, it stops
//!   reading more after its first request ([`super::read_gate`]).
//!
//! A graceful close (GOAWAY) never cuts work in flight: the connection is
//! dropped only once it has had nothing in flight for a short grace, so a
//! client that never answers the GOAWAY cannot keep it either. The timers
//! and close requests are watched by [`watch`], the requests counted by
//! [`per_request`].
//!
//! While the service drains, HTTP/1.1 answers carry `Connection: close`, so
//! keep-alive clients reconnect (to another task) instead of meeting the
//! close at the stop.

mod per_request;
mod watch;

use std::{
    net::SocketAddr,
    sync::Arc,
    task::{Poll, ready},
    time::Duration,
};

use http::{Request, Response};
use http_body::Body;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::Service;

pub(crate) use self::per_request::RequestBody;
use self::{
    per_request::PerConnection,
    watch::{Action, Timeouts, Wakers, Watch},
};
use super::{
    head_watch::HeadWatch,
    pressure::Tracked,
    read_gate::{Gated, ReadGate},
};
use crate::{config::ServerLimits, http::refused::Refusals, status::Lifecycle};

/// hyper's smallest HTTP/1.1 read buffer: a smaller header limit is
/// enforced on HTTP/2 only.
const MIN_HTTP1_BUFFER: usize = 8192;
/// Streams a client may reset before the server accepted them, before h2's
/// rapid-reset guard closes the connection (h2's default: 20), as a
/// multiple of the stream limit. A peer service whose callers give up at
/// once resets every stream it has open (at most the stream limit) and the
/// ones it opens in the same burst for calls that were waiting: twice the
/// limit. The one shared connection must survive that; a rapid-reset
/// attacker still meets the guard that many streams in (past that, each
/// burst costs the server as much again: the fault suite measures it).
const PENDING_ACCEPT_RESETS_PER_STREAM: usize = 2;
pub(crate) type ConnectionBuilder = auto::Builder<TokioExecutor>;

/// The HTTP/1.1 and HTTP/2 settings every connection is served with.
pub(crate) fn builder(limits: &ServerLimits) -> ConnectionBuilder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's timer also runs while a keep-alive connection waits for
        // its next request; heads are timed by `head_watch` instead.
        .header_read_timeout(None)
        .max_buf_size((limits.max_header_list_size as usize).max(MIN_HTTP1_BUFFER));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_pending_accept_reset_streams(
            limits.http2_max_concurrent_streams as usize * PENDING_ACCEPT_RESETS_PER_STREAM,
        )
        .max_header_list_size(limits.max_header_list_size)
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_interval);
    builder
}

/// What a connection task needs besides its socket.
#[derive(Clone)]
pub(crate) struct ConnectionContext<S> {
    pub(crate) app: S,
    pub(crate) builder: Arc<ConnectionBuilder>,
    pub(crate) first_byte_timeout: Duration,
    pub(crate) header_read_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) lifecycle: Arc<Lifecycle>,
    /// Cancelled when the server stops: each connection finishes what is in
    /// flight and closes (GOAWAY on HTTP/2).
    pub(crate) closing: CancellationToken,
    /// Logs and counts the requests hyper itself refused.
    pub(crate) refusals: Refusals,
    /// Connections stop reading while this many requests are handled.
    pub(crate) read_gate: Arc<ReadGate>,
}

/// Serves one connection until it ends.
pub(crate) async fn serve<S, B>(
    stream: TcpStream,
    client: SocketAddr,
    tracked: Tracked,
    context: ConnectionContext<S>,
) where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let ConnectionContext {
        app,
        builder,
        first_byte_timeout,
        header_read_timeout,
        idle_timeout,
        lifecycle,
        closing,
        refusals,
        read_gate,
    } = context;
    let activity = Arc::clone(tracked.activity());
    // `readable()` can report a fresh socket ready before any byte came;
    // peeking waits for a real byte (or the client's close).
    let mut first = [0u8; 1];
    loop {
        tokio::select! {
            peeked = tokio::time::timeout(first_byte_timeout, stream.peek(&mut first)) => match peeked {
                Ok(Ok(1..)) => break,
                Ok(_) => return, // closed or failed before sending anything
                Err(_) => {
                    tracing::debug!(%client, "closed: nothing sent within FIRST_BYTE_TIMEOUT");
                    return;
                }
            },
            () = activity.reclaim_requested() => {
                if tracked.accept_reclaim() {
                    tracing::debug!(%client, "closed: reclaimed under pressure before its first byte");
                    return;
                }
            }
            () = closing.cancelled() => return,
        }
    }

    let service = PerConnection {
        inner: app,
        client,
        activity: Arc::clone(&activity),
        lifecycle: Arc::clone(&lifecycle),
        read_gate: Arc::clone(&read_gate),
    };
    let io = Gated::new(
        HeadWatch::new(stream, Arc::clone(&activity)),
        read_gate,
        Arc::clone(&activity),
    );
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let timer = tokio::time::sleep(first_byte_timeout);
    tokio::pin!(timer);
    let reclaim = activity.reclaim_requested();
    tokio::pin!(reclaim);
    let stop = closing.cancelled();
    tokio::pin!(stop);
    let mut watch = Watch::new(
        client,
        &tracked,
        &lifecycle,
        Timeouts {
            idle: idle_timeout,
            header_read: header_read_timeout,
        },
        Wakers {
            timer,
            reclaim,
            stop,
        },
    );
    let ended = std::future::poll_fn(|cx| {
        loop {
            if let Poll::Ready(ended) = connection.as_mut().poll(cx) {
                return Poll::Ready(Some(ended));
            }
            match ready!(watch.poll(cx)) {
                Action::Shutdown => connection.as_mut().graceful_shutdown(),
                Action::Drop => return Poll::Ready(None),
            }
        }
    })
    .await;
    if let Some(Err(error)) = ended
        && !refusals.connection_ended(client, &*error)
    {
        tracing::debug!(%client, %error, "connection ended with an error");
    }
}
