//! Load shedding: at most `MAX_CONCURRENT_REQUESTS` requests are worked on
//! at once; beyond that a request is refused at once, with
//! RESOURCE_EXHAUSTED (gRPC) or 503 and `Retry-After` (REST), instead of
//! waiting behind work the task cannot finish in time. A fast refusal lets
//! callers go elsewhere; a slow one turns into their timeouts, and their
//! cancellations into HTTP/2 resets that tear down shared connections.
//!
//! Health checks are never shed: a busy task that says NOT_SERVING (or
//! times out) to its load balancer is taken out and the load falls on the
//! others. A request holds its slot until its response head is ready; a
//! stream's life after that is bounded by `MAX_WATCH_STREAMS` instead.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::body::Body;
use http::{HeaderValue, Request, Response, header::RETRY_AFTER};
use pin_project_lite::pin_project;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::protocol::{Protocol, error_response, is_health_check};
use crate::throttle::Throttle;

/// What the REST answer suggests a client waits before retrying, in seconds.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, Clone)]
pub(crate) struct LoadShedLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    slots: Arc<Semaphore>,
    limit: u32,
    rest_health_path: String,
    service: String,
    warnings: Throttle,
}

impl LoadShedLayer {
    pub(crate) fn new(limit: u32, service: &str, rest_health_path: String) -> Self {
        Self {
            shared: Arc::new(Shared {
                slots: Arc::new(Semaphore::new(limit as usize)),
                limit,
                rest_health_path,
                service: service.to_owned(),
                warnings: Throttle::default(),
            }),
        }
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct LoadShed<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B> Service<Request<B>> for LoadShed<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = LoadShedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = &self.shared;
        if is_health_check(request.uri().path(), &shared.rest_health_path) {
            return LoadShedFuture::Admitted {
                inner: self.inner.call(request),
                permit: None,
            };
        }
        match Arc::clone(&shared.slots).try_acquire_owned() {
            Ok(permit) => LoadShedFuture::Admitted {
                inner: self.inner.call(request),
                permit: Some(permit),
            },
            Err(_) => {
                if let Some(shed) = shared.warnings.event() {
                    tracing::warn!(
                        service = shared.service,
                        limit = shared.limit,
                        shed,
                        "overloaded: shedding requests beyond MAX_CONCURRENT_REQUESTS"
                    );
                }
                LoadShedFuture::Shed {
                    response: Some(shed_response(Protocol::of(&request))),
                }
            }
        }
    }
}

fn shed_response(protocol: Protocol) -> Response<Body> {
    let message = "overloaded: too many requests in flight, retry shortly";
    if protocol.is_grpc() {
        error_response(protocol, tonic::Status::resource_exhausted(message))
    } else {
        let mut response = error_response(protocol, tonic::Status::unavailable(message));
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        response
    }
}

pin_project! {
    #[project = LoadShedProjection]
    pub(crate) enum LoadShedFuture<F> {
        Admitted {
            #[pin]
            inner: F,
            // Released when the response head is ready.
            permit: Option<OwnedSemaphorePermit>,
        },
        Shed {
            response: Option<Response<Body>>,
        },
    }
}

impl<F> Future for LoadShedFuture<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            LoadShedProjection::Admitted { inner, permit } => {
                let response = std::task::ready!(inner.poll(cx));
                permit.take();
                Poll::Ready(response)
            }
            LoadShedProjection::Shed { response } => Poll::Ready(Ok(response
                .take()
                .unwrap_or_else(|| shed_response(Protocol::Http1)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;

    /// A handler that answers 200 after `delay`.
    fn slow(
        delay: Duration,
    ) -> impl Service<Request<()>, Response = Response<Body>, Error = Infallible, Future: Send> + Clone
    {
        tower::service_fn(move |_: Request<()>| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, Infallible>(Response::new(Body::empty()))
        })
    }

    fn request(path: &str, grpc: bool) -> Request<()> {
        let mut builder = Request::builder().uri(path);
        if grpc {
            builder = builder.header("content-type", "application/grpc");
        }
        builder.body(()).expect("request")
    }

    #[tokio::test(start_paused = true)]
    async fn beyond_the_limit_requests_are_refused_at_once_but_health_checks_pass() {
        let layer = LoadShedLayer::new(2, "service-a", "/service-a/healthcheck".into());
        let service = layer.layer(slow(Duration::from_secs(1)));
        let busy: Vec<_> = (0..2)
            .map(|_| tokio::spawn(service.clone().oneshot(request("/service-a/status", false))))
            .collect();
        tokio::task::yield_now().await;

        let rest = service
            .clone()
            .oneshot(request("/service-a/status", false))
            .await
            .expect("infallible");
        assert_eq!(rest.status(), 503);
        assert_eq!(rest.headers()[RETRY_AFTER], "1");
        let grpc = service
            .clone()
            .oneshot(request("/scdemo.status.v1.StatusService/GetStatus", true))
            .await
            .expect("infallible");
        assert_eq!(grpc.headers()["grpc-status"], "8", "RESOURCE_EXHAUSTED");

        for health in ["/service-a/healthcheck", "/grpc.health.v1.Health/Check"] {
            let answer = service
                .clone()
                .oneshot(request(health, health.starts_with("/grpc")))
                .await
                .expect("infallible");
            assert_eq!(answer.status(), 200, "{health} was shed");
        }
        for request in busy {
            assert_eq!(
                request.await.expect("task").expect("infallible").status(),
                200
            );
        }
        // The slots are free again.
        let after = service
            .oneshot(request("/service-a/status", false))
            .await
            .expect("infallible");
        assert_eq!(after.status(), 200);
    }
}
