//! One accepted connection, HTTP/1.1 or h2c (told apart by its first
//! bytes), with the limits that keep a client from holding a connection
//! without using it: a connection that sends nothing within
//! `FIRST_BYTE_TIMEOUT` is dropped, and one with no request in flight for
//! `CONNECTION_IDLE_TIMEOUT` is closed gracefully (HTTP/2 preface-only
//! connections included). Request heads are bounded by
//! `MAX_HEADER_LIST_SIZE` and, on HTTP/1.1, `HEADER_READ_TIMEOUT`.
//!
//! While the service drains, HTTP/1.1 answers carry `Connection: close`, so
//! keep-alive clients reconnect (to another task) instead of meeting the
//! close at the stop.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
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

use crate::{
    config::ServerLimits,
    http::{access_log::ClientAddress, refused::Refusals},
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
/// the client has to acknowledge before the socket is simply closed: a
/// client that never answers (preface-only floods) must not keep it.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(2);

pub(crate) type ConnectionBuilder = auto::Builder<TokioExecutor>;

/// The HTTP/1.1 and HTTP/2 settings every connection is served with.
pub(crate) fn builder(limits: &ServerLimits) -> ConnectionBuilder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
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
    pub(crate) idle_timeout: Duration,
    pub(crate) lifecycle: Arc<Lifecycle>,
    /// Cancelled when the server stops: each connection finishes what is in
    /// flight and closes (GOAWAY on HTTP/2).
    pub(crate) closing: CancellationToken,
    /// Logs and counts the requests hyper itself refused.
    pub(crate) refusals: Refusals,
}

/// Serves one connection until it ends.
pub(crate) async fn serve<S, B>(
    stream: TcpStream,
    client: SocketAddr,
    context: ConnectionContext<S>,
) where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
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
        idle_timeout,
        lifecycle,
        closing,
        refusals,
    } = context;
    // `readable()` can report a fresh socket ready before any byte came;
    // peeking waits for a real byte (or the client's close).
    let mut first = [0u8; 1];
    tokio::select! {
        peeked = tokio::time::timeout(first_byte_timeout, stream.peek(&mut first)) => match peeked {
            Ok(Ok(1..)) => {}
            Ok(_) => return, // closed or failed before sending anything
            Err(_) => {
                tracing::debug!(%client, "closed: nothing sent within FIRST_BYTE_TIMEOUT");
                return;
            }
        },
        () = closing.cancelled() => return,
    }

    let activity = Arc::new(Activity::new());
    let service = PerConnection {
        inner: app,
        client,
        activity: Arc::clone(&activity),
        lifecycle,
    };
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let idle = activity.idle_for(idle_timeout);
    tokio::pin!(idle);
    let grace = tokio::time::sleep(Duration::MAX);
    tokio::pin!(grace);
    let mut shutting_down = false;
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
            () = &mut idle, if !shutting_down => {
                tracing::debug!(%client, "closing: idle for CONNECTION_IDLE_TIMEOUT");
                connection.as_mut().graceful_shutdown();
                grace.as_mut().reset(Instant::now() + IDLE_CLOSE_GRACE);
                shutting_down = true;
            }
            () = &mut grace => {
                tracing::debug!(%client, "closed: no answer to the idle close");
                return;
            }
            () = closing.cancelled(), if !shutting_down => {
                connection.as_mut().graceful_shutdown();
                shutting_down = true;
            }
        }
    }
}

/// Requests in flight on a connection, and since when it has had none.
#[derive(Debug)]
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `started` to when `in_flight` last fell to 0.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Completes once the connection has had nothing in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let wait = if self.in_flight.load(Ordering::Relaxed) > 0 {
                timeout
            } else {
                let idle_ms = self
                    .now_ms()
                    .saturating_sub(self.idle_since_ms.load(Ordering::Relaxed));
                match timeout.checked_sub(Duration::from_millis(idle_ms)) {
                    Some(left) if !left.is_zero() => left,
                    _ => return,
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// One request in flight; dropped when its response body is done (or the
/// request is abandoned).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        if activity.in_flight.fetch_sub(1, Ordering::Relaxed) == 1 {
            activity
                .idle_since_ms
                .store(activity.now_ms(), Ordering::Relaxed);
        }
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
}

impl<S, B> Service<Request<Incoming>> for PerConnection<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<InFlightBody<B>>;
    type Error = S::Error;
    type Future = PerConnectionFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ClientAddress(self.client));
        PerConnectionFuture {
            close: request.version() < Version::HTTP_2 && self.lifecycle.is_draining(),
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
        let mut response = ready!(this.inner.poll(cx))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_only_after_the_timeout_with_nothing_in_flight() {
        let activity = Arc::new(Activity::new());
        let timeout = Duration::from_secs(10);
        let request = activity.begin();
        let idle = tokio::spawn({
            let activity = Arc::clone(&activity);
            async move {
                activity.idle_for(timeout).await;
                Instant::now()
            }
        });
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert!(!idle.is_finished(), "idle while a request was in flight");
        let done_at = Instant::now();
        drop(request);
        let idle_at = idle.await.expect("task");
        let waited = idle_at - done_at;
        assert!(
            waited >= timeout && waited <= timeout + Duration::from_millis(10),
            "idle {waited:?} after the last request"
        );
    }
}
