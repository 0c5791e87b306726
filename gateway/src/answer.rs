//! A REST route's answer and its body, finished as axum's router finished
//! it (`Cache-Control: no-store` on rpc answers, HEAD without the body):
//! its own module because answering is one job and choosing the route
//! ([`crate::rest`]) another.
//!
//! A body already encoded (the status, the health, the peer's answer) is
//! sent as it is, as http-body-util's `Full` (in an `Either` with axum's
//! `Body`), not boxed behind axum's `Body` (an allocation and a dynamic
//! call per poll); errors come from axum's `IntoResponse` and keep its body.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    body::{Body, Bytes},
    http::{
        HeaderValue, Response,
        header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE},
    },
    response::IntoResponse,
};
use http_body_util::{Either, Full};

use crate::ApiError;

/// The body of a route's answer: bytes already encoded, or axum's.
pub type RouteBody = Either<Full<Bytes>, Body>;

fn full_body(bytes: Bytes) -> RouteBody {
    Either::Left(Full::new(bytes))
}

/// An empty body (what HEAD answers and CORS's preflights are sent with).
pub(crate) fn empty_body() -> RouteBody {
    full_body(Bytes::new())
}

/// A 200 JSON response with a body already encoded.
pub(crate) fn json_response(body: Bytes) -> Response<RouteBody> {
    let mut response = Response::new(full_body(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error's JSON answer, as axum writes it.
pub(crate) fn error_answer(error: ApiError) -> Response<RouteBody> {
    error.into_response().map(Either::Right)
}

/// One route's answer: ready at the match, or an rpc to wait for.
pub(crate) enum Answer {
    Ready(Option<Response<RouteBody>>),
    Waiting(Pin<Box<dyn Future<Output = Response<RouteBody>> + Send>>),
}

/// A REST request's answer, finished as axum's router finished it.
pub struct RouteFuture {
    pub(crate) answer: Answer,
    /// A HEAD request: the answer's head alone.
    pub(crate) head: bool,
    pub(crate) no_store: bool,
}

impl RouteFuture {
    pub(crate) fn ready(response: Response<RouteBody>, head: bool) -> Self {
        Self {
            answer: Answer::Ready(Some(response)),
            head,
            no_store: false,
        }
    }
}

impl Future for RouteFuture {
    type Output = Result<Response<RouteBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        use http_body::Body as _;
        let this = self.get_mut();
        let mut response = match &mut this.answer {
            Answer::Ready(response) => response.take().unwrap_or_else(|| {
                error_answer(ApiError::Grpc(tonic::Status::internal(
                    "polled after completion",
                )))
            }),
            Answer::Waiting(future) => std::task::ready!(future.as_mut().poll(cx)),
        };
        if this.no_store {
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        if this.head {
            // The length GET would have sent, then no body.
            if !response.headers().contains_key(CONTENT_LENGTH)
                && let Some(length) = response.body().size_hint().exact()
            {
                response
                    .headers_mut()
                    .insert(CONTENT_LENGTH, HeaderValue::from(length));
            }
            *response.body_mut() = empty_body();
        }
        Poll::Ready(Ok(response))
    }
}
