//! The REST routes of one service, chosen by one match on the path and the
//! method: no router, no per-route box cloned per request, no nested
//! routers or route layers. What axum's router did for them is done here
//! once: 404 and 405 (with `Allow`) as JSON, HEAD answered like GET without
//! the body (its `Content-Length` kept), `Cache-Control: no-store` on rpc
//! answers; gzip stays tower-http's `Compression`, around the whole, for
//! the callers that send `Accept-Encoding` ([`crate::gzip`]).

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    Json,
    body::Bytes,
    http::{
        HeaderValue, Method, Request, Response, StatusCode,
        header::{ACCEPT_ENCODING, ALLOW},
    },
    response::IntoResponse,
};
use futures_util::FutureExt as _;
use status_api::v1::{
    GetPeerStatusRequest, GetPeerStatusResponse, status_service_server::StatusService,
};
use tonic::metadata::MetadataMap;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_server::Health,
};
use tower::Service;
use tower_http::compression::Compression;

use crate::{
    ApiError,
    answer::{Answer, RouteBody, RouteFuture, error_answer, json_response},
    gzip::{RestBody, RestFuture},
    routes::{GET_PEER_STATUS, GET_STATUS, HEALTHCHECK, OPENAPI},
};

/// What `/status` answers without a `ServiceStatus` built per request:
/// GetStatus's `status` in its proto3 JSON, encoded once per change of the
/// status and shared. The same message gRPC's GetStatus answers.
pub trait StatusJson {
    fn status_json(&self) -> Result<Bytes, tonic::Status>;
}

/// What `/healthcheck` answers without calling `Health/Check` (a boxed
/// future, a lock and a hashed lookup per request): the whole server's
/// status as the health service reports it now, read from a value the
/// implementation keeps beside it. `None` (the default): ask `Check`.
pub trait ServingStatusNow {
    fn serving_status_now(&self) -> Option<ServingStatus> {
        None
    }
}

/// tonic-health's service alone has no cheaper reader than its `Check`.
impl ServingStatusNow for tonic_health::server::HealthService {}

/// The REST routes of the service named `service`, answering from `status`
/// and `health`, the same implementations the gRPC server serves. Cheap to
/// clone (one `Arc`).
pub struct RestRoutes<S, H> {
    routes: Compression<Routes<S, H>>,
}

impl<S, H> Clone for RestRoutes<S, H> {
    fn clone(&self) -> Self {
        Self {
            routes: self.routes.clone(),
        }
    }
}

impl<S, H> RestRoutes<S, H>
where
    S: StatusService + StatusJson,
    H: Health + ServingStatusNow,
{
    /// The routes under `/{service}`; the OpenAPI document names
    /// `/{service}` as its server.
    pub fn new(service: &str, status: Arc<S>, health: Arc<H>) -> Self {
        let routes = Routes(Arc::new(Backends {
            prefix: format!("/{service}").into(),
            status,
            health,
            openapi: crate::openapi_document(service),
        }));
        // gzip when Accept-Encoding asks (bodies over 32 bytes).
        Self {
            routes: Compression::new(routes),
        }
    }

    /// Answers `request`: its path is matched once, here. Only a caller
    /// that sent `Accept-Encoding` goes through `Compression`.
    pub fn call<B>(&self, request: Request<B>) -> RestFuture {
        if request.headers().contains_key(ACCEPT_ENCODING) {
            RestFuture::Negotiated {
                future: Box::pin(self.routes.clone().call(request)),
            }
        } else {
            RestFuture::Plain {
                future: self.routes.get_ref().answer(request),
            }
        }
    }
}

impl<S, H, B> Service<Request<B>> for RestRoutes<S, H>
where
    S: StatusService + StatusJson,
    H: Health + ServingStatusNow,
{
    type Response = Response<RestBody>;
    type Error = Infallible;
    type Future = RestFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        RestRoutes::call(self, request)
    }
}

/// The in-process gRPC implementations the routes call.
struct Backends<S, H> {
    /// `/{service}`.
    prefix: Box<str>,
    status: Arc<S>,
    health: Arc<H>,
    openapi: Bytes,
}

struct Routes<S, H>(Arc<Backends<S, H>>);

// Derived Clone would require `S: Clone` and `H: Clone`; only the Arc is cloned.
impl<S, H> Clone for Routes<S, H> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

/// The routes, by their path under the service's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Healthcheck,
    Status,
    OtherStatus,
    OpenApi,
}

impl Route {
    /// The route of `path` under `prefix`; exact match only (no trailing
    /// slash, no case folding, no percent-decoding), as axum's router had it.
    fn of(prefix: &str, path: &str) -> Option<Self> {
        let under = path.strip_prefix(prefix)?;
        [
            (HEALTHCHECK.path, Self::Healthcheck),
            (GET_STATUS.path, Self::Status),
            (GET_PEER_STATUS.path, Self::OtherStatus),
            (OPENAPI.path, Self::OpenApi),
        ]
        .into_iter()
        .find_map(|(route_path, route)| (route_path == under).then_some(route))
    }

    /// rpc answers change every second: no cache may keep one.
    fn is_rpc(self) -> bool {
        self != Self::OpenApi
    }
}

impl<S, H, B> Service<Request<B>> for Routes<S, H>
where
    S: StatusService + StatusJson,
    H: Health + ServingStatusNow,
{
    type Response = Response<RouteBody>;
    type Error = Infallible;
    type Future = RouteFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> RouteFuture {
        self.answer(request)
    }
}

impl<S, H> Routes<S, H>
where
    S: StatusService + StatusJson,
    H: Health + ServingStatusNow,
{
    fn answer<B>(&self, request: Request<B>) -> RouteFuture {
        let backends = &*self.0;
        let head = request.method() == Method::HEAD;
        let Some(route) = Route::of(&backends.prefix, request.uri().path()) else {
            return RouteFuture::ready(error_answer(ApiError::NotFound), head);
        };
        if !(head || request.method() == Method::GET) {
            let mut response = error_answer(ApiError::MethodNotAllowed);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET,HEAD"));
            return RouteFuture::ready(response, head);
        }
        let answer = match route {
            Route::Status => Answer::Ready(Some(match backends.status.status_json() {
                Ok(json) => json_response(json),
                Err(status) => error_answer(ApiError::Grpc(status)),
            })),
            Route::OpenApi => Answer::Ready(Some(json_response(backends.openapi.clone()))),
            Route::Healthcheck => {
                if let Some(serving) = backends.health.serving_status_now() {
                    return RouteFuture {
                        answer: Answer::Ready(Some(serving_answer(serving))),
                        head,
                        no_store: true,
                    };
                }
                // "" is the whole server, as in the gRPC health checking
                // protocol. The check reads the reporter's state and is
                // ready at once unless a change is being written: answered
                // here then, without a boxed future to poll later.
                let check = tonic::Request::new(HealthCheckRequest::default());
                match backends.health.check(check).now_or_never() {
                    Some(answer) => Answer::Ready(Some(healthcheck_answer(answer))),
                    None => {
                        let health = Arc::clone(&backends.health);
                        let request = grpc_request(request, HealthCheckRequest::default());
                        Answer::Waiting(Box::pin(async move {
                            healthcheck_answer(health.check(request).await)
                        }))
                    }
                }
            }
            Route::OtherStatus => {
                let status = Arc::clone(&backends.status);
                let request = grpc_request(request, GetPeerStatusRequest {});
                Answer::Waiting(Box::pin(async move {
                    match status.get_peer_status(request).await {
                        Ok(response) => peer_json(response.into_inner()),
                        Err(status) => error_answer(ApiError::Grpc(status)),
                    }
                }))
            }
        };
        RouteFuture {
            answer,
            head,
            no_store: route.is_rpc(),
        }
    }
}

/// A gRPC request carrying the HTTP request's headers as metadata and its
/// extensions, so the implementation sees what a gRPC caller would send
/// (`x-request-id` above all, which it passes on to the peer) and what the
/// server attached (the request's deadline and trace). Both are moved.
fn grpc_request<B, T>(request: Request<B>, message: T) -> tonic::Request<T> {
    let (parts, _body) = request.into_parts();
    tonic::Request::from_parts(
        MetadataMap::from_headers(parts.headers),
        parts.extensions,
        message,
    )
}

fn healthcheck_answer(
    answer: Result<tonic::Response<tonic_health::pb::HealthCheckResponse>, tonic::Status>,
) -> Response<RouteBody> {
    match answer {
        Ok(response) => serving_answer(response.into_inner().status()),
        Err(status) => error_answer(ApiError::Grpc(status)),
    }
}

/// `/healthcheck`'s answer for the whole server's `serving` status: 200
/// when SERVING, else 503, with the status's JSON.
fn serving_answer(serving: ServingStatus) -> Response<RouteBody> {
    let code = if serving == ServingStatus::Serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = json_response(Bytes::from_static(health_body(serving)));
    *response.status_mut() = code;
    response
}

/// The proto3 JSON mapping of grpc.health.v1.HealthCheckResponse: one
/// static body per status, not one formatted per request.
pub(crate) fn health_body(serving: ServingStatus) -> &'static [u8] {
    match serving {
        ServingStatus::Serving => br#"{"status":"SERVING"}"#,
        ServingStatus::NotServing => br#"{"status":"NOT_SERVING"}"#,
        ServingStatus::ServiceUnknown => br#"{"status":"SERVICE_UNKNOWN"}"#,
        ServingStatus::Unknown => br#"{"status":"UNKNOWN"}"#,
    }
}

/// The peer's answer as JSON, written into one buffer big enough for it
/// (axum's `Json` starts at 128 bytes and grows it about three times).
fn peer_json(answer: GetPeerStatusResponse) -> Response<RouteBody> {
    /// A peer's status in JSON is ~600 bytes; an ECS task's adds ~400.
    const EXPECTED_BYTES: usize = 2048;
    let mut json = Vec::with_capacity(EXPECTED_BYTES);
    match serde_json::to_writer(&mut json, &answer) {
        Ok(()) => json_response(Bytes::from(json)),
        // As axum's `Json` answers it (a 500 saying why).
        Err(_) => Json(answer)
            .into_response()
            .map(http_body_util::Either::Right),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_bodies_are_the_json_of_each_status() {
        for serving in [
            ServingStatus::Serving,
            ServingStatus::NotServing,
            ServingStatus::ServiceUnknown,
            ServingStatus::Unknown,
        ] {
            let body: serde_json::Value =
                serde_json::from_slice(health_body(serving)).expect("JSON");
            assert_eq!(body, serde_json::json!({ "status": serving.as_str_name() }));
        }
    }

    #[test]
    fn a_path_matches_exactly_under_the_prefix() {
        let route = |path| Route::of("/service-x", path);
        assert_eq!(route("/service-x/status"), Some(Route::Status));
        assert_eq!(route("/service-x/healthcheck"), Some(Route::Healthcheck));
        assert_eq!(route("/service-x/other-status"), Some(Route::OtherStatus));
        assert_eq!(route("/service-x/openapi.json"), Some(Route::OpenApi));
        for miss in [
            "/service-x/status/",
            "/service-x",
            "/service-x/",
            "/service-xy/status",
            "/service-y/status",
            "//service-x/status",
            "/service-x/STATUS",
            "/service-x/%73tatus",
            "/status",
        ] {
            assert_eq!(route(miss), None, "{miss}");
        }
    }
}
