//! The one envelope every request passes through, in one `Service` and one
//! future: its protocol (read once), request id and trace context, access
//! entry, load-shedding slot, deadline, CORS for browsers, and a handler's
//! panic turned into that request's INTERNAL / 500. It replaced five
//! nested layers, each with its own future, clone and header lookups.
//!
//! - The deadline timer is armed only when the handler is not ready at its
//!   first poll: REST handlers answer without waiting.
//! - CORS (tower-http) only for requests with an `Origin`, around the
//!   limits too, so a page can read a refusal; other answers get
//!   `Vary: origin` and nothing else.
//! - The envelope is an `Arc`: hyper clones the service per request.

use std::{
    any::Any,
    convert::Infallible,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use http::{HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep, sleep_until};
use tower::{Layer, Service};
use tower_http::cors::CorsLayer;

pub(crate) use super::app_body::AppBody;
use super::{
    access_log::{AccessLog, Entry, LoggedBody, Panicked},
    deadline::{RequestDeadline, deadline_exceeded, timeout_of},
    load_shed::{Admission, LoadShed},
    protocol::{Protocol, error_response},
    vary::vary_on_origin,
};

/// Where the envelope sends a request it let in: the routes.
pub(crate) trait Dispatch<B>: Send + Sync + 'static {
    type Future: Future<Output = Response<AppBody>> + Send + 'static;

    fn dispatch(&self, protocol: Protocol, request: Request<B>) -> Self::Future;
}

/// The HTTP service of one instance: the envelope around its routes.
pub(crate) struct Envelope<D> {
    inner: Arc<Inner<D>>,
}

impl<D> Clone for Envelope<D> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<D> {
    log: AccessLog,
    core: Arc<Core<D>>,
    cors: CorsLayer,
}

/// What comes inside CORS: the limits and the routes.
struct Core<D> {
    shed: LoadShed,
    request_timeout: Duration,
    routes: D,
}

impl<D> Envelope<D> {
    pub(crate) fn new(
        log: AccessLog,
        shed: LoadShed,
        request_timeout: Duration,
        cors: CorsLayer,
        routes: D,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                log,
                core: Arc::new(Core {
                    shed,
                    request_timeout,
                    routes,
                }),
                cors,
            }),
        }
    }
}

impl<D, B> Service<Request<B>> for Envelope<D>
where
    D: Dispatch<B>,
{
    type Response = Response<LoggedBody<AppBody>>;
    type Error = Infallible;
    type Future = EnvelopeFuture<D::Future>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let protocol = Protocol::of(&request);
        // One clock read: the access line's start and the deadline's.
        let now = Instant::now();
        let core = &self.inner.core;
        let timeout = timeout_of(protocol, request.headers(), core.request_timeout);
        let deadline = now + timeout;
        let (entry, request_id) = Entry::start(
            &self.inner.log,
            protocol,
            now.into_std(),
            RequestDeadline(deadline),
            &mut request,
        );
        let started = Started {
            protocol,
            deadline,
            timeout,
        };
        let stage = if request.headers().contains_key(header::ORIGIN) {
            let core = CoreService {
                core: Arc::clone(core),
                started,
            };
            Stage::Cors {
                future: Box::pin(self.inner.cors.layer(core).call(request)),
            }
        } else {
            Stage::Direct {
                future: core.call(started, request),
            }
        };
        EnvelopeFuture {
            stage,
            entry: Some((entry, request_id)),
        }
    }
}

/// What the envelope read of a request before the limits: its protocol and
/// its deadline (`timeout` from its start).
#[derive(Debug, Clone, Copy)]
struct Started {
    protocol: Protocol,
    deadline: Instant,
    timeout: Duration,
}

impl<D> Core<D> {
    fn call<B>(&self, started: Started, request: Request<B>) -> CoreFuture<D::Future>
    where
        D: Dispatch<B>,
    {
        let Started {
            protocol,
            deadline,
            timeout,
        } = started;
        let admission = match self.shed.admit(request.uri().path()) {
            Ok(admission) => admission,
            Err(overloaded) => {
                return CoreFuture::ready(overloaded.response(protocol).map(AppBody::http));
            }
        };
        // A panic while starting the handler answers like one in it.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.routes.dispatch(protocol, request)))
        {
            Ok(inner) => CoreFuture::Running {
                inner,
                admission,
                timer: Timer::Unarmed,
                deadline,
                timeout,
                protocol,
            },
            Err(panic) => CoreFuture::ready(panicked(protocol, &*panic)),
        }
    }
}

/// The core as a `Service`, for tower-http's CORS to wrap: one request's.
struct CoreService<D> {
    core: Arc<Core<D>>,
    started: Started,
}

impl<D> Clone for CoreService<D> {
    fn clone(&self) -> Self {
        Self {
            core: Arc::clone(&self.core),
            started: self.started,
        }
    }
}

impl<D, B> Service<Request<B>> for CoreService<D>
where
    D: Dispatch<B>,
{
    type Response = Response<AppBody>;
    type Error = Infallible;
    type Future = CoreFuture<D::Future>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.core.call(self.started, request)
    }
}

pin_project! {
    #[project = StageProjection]
    enum Stage<F> {
        Direct { #[pin] future: CoreFuture<F> },
        // Boxed: browsers' requests alone pay for tower-http's larger
        // future, not every request's moves through the server's layers.
        Cors { future: Pin<Box<tower_http::cors::ResponseFuture<CoreFuture<F>>>> },
    }
}

pin_project! {
    /// One request, from the envelope's call to its answer's head.
    pub(crate) struct EnvelopeFuture<F> {
        #[pin]
        stage: Stage<F>,
        entry: Option<(Entry, HeaderValue)>,
    }

    impl<F> PinnedDrop for EnvelopeFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before an answer: the client went away (or the
            // connection was closed at shutdown).
            if let Some((entry, _)) = this.project().entry.take() {
                entry.abandoned();
            }
        }
    }
}

impl<F> Future for EnvelopeFuture<F>
where
    F: Future<Output = Response<AppBody>>,
{
    type Output = Result<Response<LoggedBody<AppBody>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.stage.project() {
            StageProjection::Direct { future } => {
                let Ok(mut response) = ready!(future.poll(cx));
                vary_on_origin(response.headers_mut());
                response
            }
            StageProjection::Cors { future } => {
                let Ok(response) = ready!(future.as_mut().poll(cx));
                response
            }
        };
        let Some((entry, request_id)) = this.entry.take() else {
            // Polled again after the answer: never done by hyper.
            return Poll::Ready(Ok(response.map(LoggedBody::done)));
        };
        Poll::Ready(Ok(entry.answered(response, request_id)))
    }
}

pin_project! {
    /// The limits and the handler: the shedding slot held until the head
    /// is ready, the deadline's timer armed only if the handler waits.
    #[project = CoreProjection]
    pub(crate) enum CoreFuture<F> {
        Ready { response: Option<Response<AppBody>> },
        Running {
            #[pin]
            inner: F,
            admission: Admission,
            #[pin]
            timer: Timer,
            deadline: Instant,
            timeout: Duration,
            protocol: Protocol,
        },
    }
}

pin_project! {
    #[project = TimerProjection]
    pub(crate) enum Timer {
        Unarmed,
        Armed { #[pin] sleep: Sleep },
    }
}

impl<F> CoreFuture<F> {
    fn ready(response: Response<AppBody>) -> Self {
        Self::Ready {
            response: Some(response),
        }
    }
}

impl<F> Future for CoreFuture<F>
where
    F: Future<Output = Response<AppBody>>,
{
    type Output = Result<Response<AppBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CoreProjection::Ready { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                    error_response(
                        Protocol::Http1,
                        tonic::Status::internal("polled after completion"),
                    )
                    .map(AppBody::http)
                })))
            }
            CoreProjection::Running {
                inner,
                admission,
                mut timer,
                deadline,
                timeout,
                protocol,
            } => {
                // A handler's panic answers this request alone.
                match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
                    Ok(Poll::Ready(response)) => {
                        admission.take();
                        return Poll::Ready(Ok(response));
                    }
                    Ok(Poll::Pending) => {}
                    Err(panic) => {
                        admission.take();
                        return Poll::Ready(Ok(panicked(*protocol, &*panic)));
                    }
                }
                if let TimerProjection::Unarmed = timer.as_mut().project() {
                    timer.set(Timer::Armed {
                        sleep: sleep_until(*deadline),
                    });
                }
                let TimerProjection::Armed { sleep } = timer.project() else {
                    return Poll::Pending;
                };
                ready!(sleep.poll(cx));
                admission.take();
                Poll::Ready(Ok(deadline_exceeded(*protocol, *timeout).map(AppBody::http)))
            }
        }
    }
}

/// The answer to a request whose handler panicked: INTERNAL in its
/// protocol, marked so the access log writes the panic with its ids.
fn panicked(protocol: Protocol, panic: &(dyn Any + Send)) -> Response<AppBody> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    let mut response = error_response(protocol, tonic::Status::internal("internal error"));
    response.extensions_mut().insert(Panicked(message));
    response.map(AppBody::http)
}
