//! CORS for browser clients: REST with fetch, and gRPC-Web (which always
//! sends a preflight: its content type and `x-grpc-web` header are not
//! "simple"). The API is public and takes no credentials, so any origin may
//! call it.
//!
//! Only requests with an `Origin` header go through the CORS layer: browsers
//! send it on every cross-origin request and preflight, and nothing else
//! reads CORS headers. Other callers (curl, the ALB's health checks, load
//! balancers) get answers without the four extra headers, but with
//! `Vary: origin`: the answer depends on the `Origin`, and a cache that
//! kept one without CORS headers must not serve it to a page.

use std::{
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{
    TryFutureExt,
    future::{Either, MapOk},
};
use http::{HeaderName, HeaderValue, Method, Request, Response, header};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

/// How long a browser may reuse a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Request headers browsers may send: gRPC-Web's (Connect-ES and grpc-web
/// both send `x-grpc-web` and `x-user-agent`), deadlines, compression, and
/// our request id.
const ALLOWED_HEADERS: [HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::ACCEPT_ENCODING,
    HeaderName::from_static("x-grpc-web"),
    HeaderName::from_static("x-user-agent"),
    HeaderName::from_static("grpc-timeout"),
    HeaderName::from_static("grpc-accept-encoding"),
    HeaderName::from_static("x-request-id"),
];

/// Response headers browsers may read: a gRPC-Web error is in these when
/// the call fails before the body, and the request id is worth showing.
const EXPOSED_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("grpc-status"),
    HeaderName::from_static("grpc-message"),
    HeaderName::from_static("grpc-status-details-bin"),
    HeaderName::from_static("grpc-encoding"),
    HeaderName::from_static("x-request-id"),
];

/// The CORS layer for everything browsers call (REST, gRPC-Web), the
/// refusals of limits in front of the routes included; it answers every
/// preflight, whatever its path.
pub fn cors() -> BrowserCorsLayer {
    BrowserCorsLayer {
        cors: CorsLayer::new()
            .allow_origin(AllowOrigin::any())
            .allow_methods([Method::GET, Method::HEAD, Method::POST])
            .allow_headers(ALLOWED_HEADERS)
            .expose_headers(EXPOSED_HEADERS)
            .max_age(PREFLIGHT_MAX_AGE),
    }
}

/// tower-http's CORS, for requests that carry an `Origin` only.
#[derive(Debug, Clone)]
pub struct BrowserCorsLayer {
    cors: CorsLayer,
}

impl<S: Clone> Layer<S> for BrowserCorsLayer {
    type Service = BrowserCors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BrowserCors {
            cors: self.cors.layer(inner.clone()),
            inner,
        }
    }
}

/// See [`BrowserCorsLayer`].
#[derive(Debug, Clone)]
pub struct BrowserCors<S> {
    cors: Cors<S>,
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for BrowserCors<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Either<
        <Cors<S> as Service<Request<ReqBody>>>::Future,
        MapOk<S::Future, fn(Response<ResBody>) -> Response<ResBody>>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both wrap clones of one always-ready kind of service (a Router);
        // the one called must be ready.
        match (self.cors.poll_ready(cx), self.inner.poll_ready(cx)) {
            (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
            (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => Poll::Ready(Err(e)),
            _ => Poll::Pending,
        }
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if request.headers().contains_key(header::ORIGIN) {
            Either::Left(self.cors.call(request))
        } else {
            Either::Right(
                self.inner
                    .call(request)
                    .map_ok(vary_origin::<ResBody> as fn(_) -> _),
            )
        }
    }
}

/// Marks an answer given without CORS headers as depending on `Origin`.
fn vary_origin<B>(mut response: Response<B>) -> Response<B> {
    response
        .headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
    response
}
