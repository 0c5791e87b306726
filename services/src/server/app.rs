//! The HTTP service of one instance: what every request passes through,
//! outermost first.
//!
//! 1. access log: the request id, and one line per request however it ends;
//! 2. CORS, for requests from browsers (with an `Origin`) only: every
//!    preflight answered, and every answer readable by the page, the
//!    refusals of the layers below included;
//! 3. load shedding: beyond `MAX_CONCURRENT_REQUESTS`, refused at once
//!    (health checks never);
//! 4. deadline: `grpc-timeout` or `REQUEST_TIMEOUT`, answered with
//!    DEADLINE_EXCEEDED / 504 when it passes;
//! 5. dispatch by content type: gRPC (Status, Health, reflection v1 and
//!    v1alpha) or the REST gateway, each behind its own catch-panic layer,
//!    so a handler's panic answers that request alone (INTERNAL / 500) in
//!    its own protocol instead of dropping a connection that carries other
//!    callers' streams.

use std::{
    any::Any,
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{Router, body::Body};
use http::{Request, Response};
use status_api::v1::status_service_server::StatusServiceServer;
use status_gateway::BrowserCors;
use tonic::{codec::CompressionEncoding, server::NamedService, service::Routes};
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tower::{Layer, Service};
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};

use super::ServeError;
use crate::{
    config::ServerLimits,
    emf::Recorder,
    http::{
        access_log::{AccessLog, AccessLogLayer, Panicked},
        deadline::{Deadline, DeadlineLayer},
        load_shed::{LoadShed, LoadShedLayer},
        protocol::{Protocol, error_response, is_grpc, is_grpc_web},
    },
    status::StatusApi,
    telemetry::Spans,
};

/// The HTTP service of one instance.
pub(crate) type App = AccessLog<BrowserCors<LoadShed<Deadline<GrpcOrRest>>>>;

// contract: a generated gRPC server that accepts gzip and zstd requests and
// compresses its answers when the client asks (`grpc-accept-encoding`).
macro_rules! compressed {
    ($server:expr) => {
        $server
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .send_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Zstd)
    };
}

/// Builds the HTTP service of the instance that `api` describes.
pub(crate) fn app(
    api: StatusApi,
    health: &HealthReporter,
    limits: &ServerLimits,
    recorder: Arc<Recorder>,
    spans: Spans,
) -> Result<App, ServeError> {
    let service = api.identity().service.clone();
    let health = Arc::new(HealthService::from_health_reporter(health.clone()));
    let api = Arc::new(api);
    let rest = status_gateway::router(&service, Arc::clone(&api), Arc::clone(&health));
    // Around the whole router, not with `Router::layer`, which boxes every
    // route once more per layer: each request then cloned every box (two
    // layers were ~10 allocations a request; bench/findings.md).
    let rest = Router::new()
        .fallback_service(CatchPanicLayer::custom(PanicResponse(Protocol::Http1)).layer(rest));

    // Both reflection versions describe every service on the port: ours,
    // health (so `grpcurl describe grpc.health.v1.Health` works) and both
    // reflection services. v1alpha is what grpcurl 1.8 and Postman ask for.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .include_reflection_service(false)
            .register_encoded_file_descriptor_set(status_api::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            )
    };
    // contract: gzip/zstd requests accepted and answers compressed when the
    // client asks, on Status and Health.
    let grpc = Routes::new(compressed!(StatusServiceServer::from_arc(api)))
        .add_service(compressed!(HealthServer::from_arc(health)))
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .into_axum_router()
        .layer(CatchPanicLayer::custom(PanicResponse(Protocol::Grpc)));
    // contract: gRPC-Web (tonic-web), for browsers only, so native gRPC
    // calls do not pay for it.
    let grpc_web = grpc.clone().layer(tonic_web::GrpcWebLayer::new());
    // contract: end

    let rest_health_path = status_gateway::healthcheck_path(&service);
    let shed = LoadShedLayer::new(limits.max_concurrent_requests, &service, rest_health_path);
    let deadline = DeadlineLayer {
        request_timeout: limits.request_timeout,
    };
    let routes = GrpcOrRest {
        grpc,
        grpc_web,
        rest,
    };
    Ok(AccessLogLayer::new(&service, recorder, spans)
        .layer(status_gateway::cors().layer(shed.layer(deadline.layer(routes)))))
}

/// The routes the EMF metrics name (every other path counts as `other`):
/// the REST paths and the rpcs this port serves.
pub(crate) fn known_routes(service: &str) -> Vec<String> {
    let status = <StatusServiceServer<StatusApi> as NamedService>::NAME;
    let health = <HealthServer<HealthService> as NamedService>::NAME;
    let mut routes = vec![
        status_gateway::healthcheck_path(service),
        status_gateway::status_path(service),
        status_gateway::other_status_path(service),
        format!("/{service}/openapi.json"),
    ];
    for rpc in ["GetStatus", "GetPeerStatus", "WatchStatus"] {
        routes.push(format!("{status}/{rpc}"));
    }
    for rpc in ["Check", "Watch"] {
        routes.push(format!("{health}/{rpc}"));
    }
    for version in ["v1", "v1alpha"] {
        routes.push(format!(
            "grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
        ));
    }
    routes
}

/// Sends gRPC requests (by content type) to the gRPC routes and everything
/// else to the REST gateway. Each side keeps its own fallback: unknown rpcs
/// get gRPC UNIMPLEMENTED, unknown REST paths a JSON 404.
#[derive(Debug, Clone)]
pub(crate) struct GrpcOrRest {
    grpc: Router,
    /// contract: the gRPC routes behind tonic-web.
    grpc_web: Router,
    rest: Router,
}

impl<B> Service<Request<B>> for GrpcOrRest
where
    Router: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = <Router as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // axum routers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if is_grpc_web(request.headers()) {
            self.grpc_web.call(request)
        } else if is_grpc(request.headers()) {
            self.grpc.call(request)
        } else {
            self.rest.call(request)
        }
    }
}

/// The answer to a request whose handler panicked: INTERNAL in the
/// request's protocol, marked so the access log writes the panic with the
/// request's id.
#[derive(Debug, Clone, Copy)]
struct PanicResponse(Protocol);

impl ResponseForPanic for PanicResponse {
    type ResponseBody = Body;

    fn response_for_panic(&mut self, panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
        let message = panic
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        let mut response = error_response(self.0, tonic::Status::internal("internal error"));
        response.extensions_mut().insert(Panicked(message));
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn panics() -> &'static str {
        panic!("boom")
    }

    fn panicking_routes() -> GrpcOrRest {
        GrpcOrRest {
            grpc_web: Router::new(),
            grpc: Router::new()
                .route(
                    "/scdemo.status.v1.StatusService/GetStatus",
                    axum::routing::post(panics),
                )
                .layer(CatchPanicLayer::custom(PanicResponse(Protocol::Grpc))),
            rest: Router::new()
                .route("/service-a/status", get(panics))
                .layer(CatchPanicLayer::custom(PanicResponse(Protocol::Http1))),
        }
    }

    #[tokio::test]
    async fn a_panic_answers_internal_in_the_callers_protocol() {
        let rest = panicking_routes()
            .oneshot(
                Request::get("/service-a/status")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(rest.status(), 500);
        assert_eq!(
            rest.extensions().get::<Panicked>().map(|p| p.0.as_str()),
            Some("boom")
        );
        let body = rest.into_body().collect().await.expect("body").to_bytes();
        assert!(
            !body.windows(4).any(|w| w == b"boom"),
            "the panic is not sent to the caller"
        );

        let grpc = panicking_routes()
            .oneshot(
                Request::post("/scdemo.status.v1.StatusService/GetStatus")
                    .header("content-type", "application/grpc")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(grpc.status(), 200);
        assert_eq!(grpc.headers()["grpc-status"], "13", "INTERNAL");
    }
}
