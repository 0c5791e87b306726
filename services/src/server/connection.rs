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
//! client that never answers the GOAWAY cannot keep it either.
//!
//! While the service drains, HTTP/1.1 answers carry `Connection: close`, so
//! keep-alive clients reconnect (to another task) instead of meeting the
//! close at the stop.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{HeaderValue, Request, Response, Version, header::CONNECTION};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use pin_project_lite::pin_project;
use tokio::{net::TcpStream, time::Instant};
use tokio_util::sync::CancellationToken;
use tower::Service;

use super::{
    activity::{Activity, BodyPending, InFlight},
    head_watch::HeadWatch,
    pressure::Tracked,
    read_gate::{Gated, Handling, ReadGate},
};
use crate::{
    config::ServerLimits,
    http::{RequestContext, refused::Refusals},
    status::Lifecycle,
};

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
/// After an idle connection is told to close (GOAWAY on HTTP/2), how long
/// it must stay without work in flight before the socket is simply closed:
/// a client that never answers (preface-only floods) must not keep it.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(2);
/// The same for connections closed by pressure or for an unfinished head:
/// enough to send the GOAWAY, short so a flood's slots free at once.
const SHORT_CLOSE_GRACE: Duration = Duration::from_millis(250);

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

/// Whether and why a connection is being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    Open,
    /// Idle or reclaimed: dropped once nothing is in flight for this long.
    WhenQuiet(Duration),
    /// A head overdue: dropped this long after, whatever is in flight (the
    /// client can send nothing but the rest of that head).
    Now(Duration),
    /// The server stops: its shutdown timeout bounds the rest.
    Stopping,
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
        lifecycle,
        read_gate: Arc::clone(&read_gate),
    };
    let io = Gated::new(
        HeadWatch::new(stream, Arc::clone(&activity)),
        read_gate,
        Arc::clone(&activity),
    );
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let idle = activity.idle_for(idle_timeout, Instant::now());
    tokio::pin!(idle);
    let head_overdue = activity.head_overdue(header_read_timeout);
    tokio::pin!(head_overdue);
    let mut grace = close_after(&activity, Closing::Open);
    let mut state = Closing::Open;
    loop {
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(error) = ended
                    && !refusals.connection_ended(client, &*error)
                {
                    tracing::debug!(%client, %error, "connection ended with an error");
                }
                return;
            }
            () = &mut idle, if state == Closing::Open => {
                tracing::debug!(%client, "closing: idle for CONNECTION_IDLE_TIMEOUT");
                connection.as_mut().graceful_shutdown();
                state = Closing::WhenQuiet(IDLE_CLOSE_GRACE);
                grace = close_after(&activity, state);
            }
            () = activity.reclaim_requested(), if state == Closing::Open => {
                if tracked.accept_reclaim() {
                    tracing::debug!(%client, "closing: idle, reclaimed under connection pressure");
                    connection.as_mut().graceful_shutdown();
                    state = Closing::WhenQuiet(SHORT_CLOSE_GRACE);
                    grace = close_after(&activity, state);
                }
            }
            () = &mut head_overdue, if matches!(state, Closing::Open | Closing::WhenQuiet(_)) => {
                tracing::debug!(%client, "closing: request head not complete within HEADER_READ_TIMEOUT");
                connection.as_mut().graceful_shutdown();
                state = Closing::Now(SHORT_CLOSE_GRACE);
                grace = close_after(&activity, state);
            }
            () = &mut grace => {
                tracing::debug!(%client, "closed: no answer to the close");
                return;
            }
            () = closing.cancelled(), if state == Closing::Open => {
                connection.as_mut().graceful_shutdown();
                state = Closing::Stopping;
            }
        }
    }
}

/// When a connection being closed is dropped: after the grace from now,
/// and for a graceful close only once nothing has been in flight for that
/// long (work that raced the GOAWAY is finished first).
fn close_after(
    activity: &Arc<Activity>,
    state: Closing,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    let activity = Arc::clone(activity);
    let from = Instant::now();
    match state {
        Closing::Open | Closing::Stopping => Box::pin(std::future::pending()),
        Closing::WhenQuiet(grace) => Box::pin(async move { activity.idle_for(grace, from).await }),
        Closing::Now(grace) => Box::pin(tokio::time::sleep_until(from + grace)),
    }
}

/// The app as one connection sees it: requests carry the client's address,
/// count as activity until their body ends, and HTTP/1.1 answers say
/// `Connection: close` while draining.
#[derive(Clone)]
struct PerConnection<S> {
    inner: S,
    client: SocketAddr,
    activity: Arc<Activity>,
    lifecycle: Arc<Lifecycle>,
    read_gate: Arc<ReadGate>,
}

impl<S, B> Service<Request<Incoming>> for PerConnection<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>>,
{
    type Response = Response<InFlightBody<B>>;
    type Error = S::Error;
    type Future = PerConnectionFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let mut request = request.map(|inner| RequestBody {
            pending: (!inner.is_end_stream()).then(|| self.activity.body_pending()),
            inner,
        });
        request
            .extensions_mut()
            .insert(RequestContext::new(self.client));
        PerConnectionFuture {
            close: request.version() < Version::HTTP_2 && self.lifecycle.is_draining(),
            handling: Some(self.read_gate.begin()),
            in_flight: Some(self.activity.begin()),
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    struct PerConnectionFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
        // Until the response is ready (a stream's first answer).
        handling: Option<Handling>,
        close: bool,
    }
}

impl<F, B, E> Future for PerConnectionFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<InFlightBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = ready!(this.inner.poll(cx));
        this.handling.take();
        let mut response = answer?;
        if *this.close {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|inner| InFlightBody {
            inner,
            _in_flight: in_flight,
        })))
    }
}

pin_project! {
    /// A request body, counted as still coming until it ends (or is
    /// dropped): its connection reads past the read gate meanwhile.
    pub(crate) struct RequestBody {
        #[pin]
        inner: Incoming,
        pending: Option<BodyPending>,
    }
}

impl Body for RequestBody {
    type Data = <Incoming as Body>::Data;
    type Error = <Incoming as Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        if !matches!(frame, Some(Ok(_))) || this.inner.is_end_stream() {
            this.pending.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A response body that keeps its request counted as in flight.
    struct InFlightBody<B> {
        #[pin]
        inner: B,
        _in_flight: Option<InFlight>,
    }
}

impl<B: Body> Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
