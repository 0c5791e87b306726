//! The app as one connection sees it: each request carries the client's
//! address, counts as the connection's activity (idle close, pressure)
//! and as the service's work (the read gate) until its answer is ready and
//! its body ends, and an HTTP/1.1 answer says `Connection: close` while the
//! service drains.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use http::{HeaderValue, Request, Response, Version, header::CONNECTION};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tower::Service;

use super::super::{
    activity::{Activity, BodyPending, InFlight},
    read_gate::{Handling, ReadGate},
};
use crate::{http::RequestContext, status::Lifecycle};

/// The app as one connection sees it: requests carry the client's address,
/// count as activity until their body ends, and HTTP/1.1 answers say
/// `Connection: close` while draining.
#[derive(Clone)]
pub(super) struct PerConnection<S> {
    pub(super) inner: S,
    pub(super) client: SocketAddr,
    pub(super) activity: Arc<Activity>,
    pub(super) lifecycle: Arc<Lifecycle>,
    pub(super) read_gate: Arc<ReadGate>,
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
    pub(super) struct PerConnectionFuture<F> {
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
    pub(super) struct InFlightBody<B> {
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
