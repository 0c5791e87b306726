//! gzip for REST answers, paid for only by callers that can take it.
//!
//! tower-http's `Compression` does the negotiation and the gzip. A request
//! without `Accept-Encoding` (curl, the ALB's health checks, load
//! generators) can only get the body as it is, so it skips the layer (its
//! encoding parse, its predicate's content-type checks and the answer taken
//! apart and rebuilt: about 1.6k instructions of a `/status` answer) and gets
//! what the layer would have answered: the body unchanged, with
//! `Vary: accept-encoding` when the body is big enough that a caller asking
//! for gzip gets it compressed (tower-http's own size rule; every route
//! answers `application/json`, never a content type the layer leaves alone).

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll, ready},
};

use axum::{
    BoxError,
    body::Bytes,
    http::{HeaderValue, Response, header::VARY},
};
use http_body::{Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_http::compression::{
    CompressionBody, DefaultPredicate, ResponseFuture,
    predicate::{Predicate, SizeAbove},
};

use crate::answer::{RouteBody, RouteFuture, empty_body};

pin_project! {
    /// The body of every REST answer: gzip (when asked for and worth it),
    /// or as the route wrote it. The gzip body is boxed: its encoder's
    /// state (~300 bytes) would otherwise be copied with every answer's
    /// every move through the server's layers, gzip or not.
    #[project = RestBodyProjection]
    pub enum RestBody {
        Plain { #[pin] body: RouteBody },
        Negotiated { body: Pin<Box<CompressionBody<RouteBody>>> },
    }
}

/// An empty body (what CORS answers a preflight with).
impl Default for RestBody {
    fn default() -> Self {
        Self::Plain { body: empty_body() }
    }
}

impl http_body::Body for RestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project() {
            RestBodyProjection::Plain { body } => body.poll_frame(cx),
            RestBodyProjection::Negotiated { body } => body.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Plain { body } => body.is_end_stream(),
            Self::Negotiated { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Plain { body } => body.size_hint(),
            Self::Negotiated { body } => body.size_hint(),
        }
    }
}

pin_project! {
    /// One REST request, from its match to its answer's head: through
    /// tower-http's `Compression` when the caller sent `Accept-Encoding`.
    /// That future is boxed: the plain one, moved through the server's
    /// layers on every request, stays small.
    #[project = RestFutureProjection]
    pub enum RestFuture {
        Plain { #[pin] future: RouteFuture },
        Negotiated { future: Pin<Box<ResponseFuture<RouteFuture, DefaultPredicate>>> },
    }
}

impl Future for RestFuture {
    type Output = Result<Response<RestBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(match self.project() {
            RestFutureProjection::Plain { future } => {
                let Ok(mut response) = ready!(future.poll(cx));
                if SizeAbove::default().should_compress(&response) {
                    response
                        .headers_mut()
                        .append(VARY, HeaderValue::from_static("accept-encoding"));
                }
                response.map(|body| RestBody::Plain { body })
            }
            RestFutureProjection::Negotiated { future } => {
                let Ok(response) = ready!(future.as_mut().poll(cx));
                response.map(|body| RestBody::Negotiated {
                    body: Box::pin(body),
                })
            }
        }))
    }
}
