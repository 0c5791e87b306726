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
//!    callers' streams. gRPC requests are held to small messages and
//!    long-lived streams to `MAX_WATCH_STREAMS` ([`crate::http::grpc_limits`]).

use std::{
    any::Any,
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{Router, body::Body, routing::future::RouteFuture};
use bytes::Bytes;
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
        access_log::{AccessLog, AccessLogLayer, InFlightRequests, Panicked},
        deadline::{Deadline, DeadlineLayer},
        grpc_limits::{MAX_REQUEST_MESSAGE_BYTES, MessageLimit, StreamLimit},
        load_shed::{LoadShed, LoadShedLayer},
        protocol::{Protocol, error_response},
    },
    status::{Lifecycle, StatusApi},
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
            .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES)
    };
}

/// Builds the HTTP service of the instance that `api` describes, and the
/// count of its requests in flight.
pub(crate) fn app(
    api: StatusApi,
    health: &HealthReporter,
    limits: &ServerLimits,
    recorder: Arc<Recorder>,
    lifecycle: &Arc<Lifecycle>,
    spans: Spans,
) -> Result<(App, InFlightRequests), ServeError> {
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
    // Health/Watch and reflection streams: bounded and ended at stop, as
    // WatchStatus is by itself.
    let streams = |is_stream| StreamLimits {
        lifecycle,
        service: &service,
        is_stream,
    };
    let grpc = Routes::new(compressed!(StatusServiceServer::from_arc(api)))
        .add_service(
            streams(|path| path.ends_with("/Watch"))
                .around(compressed!(HealthServer::from_arc(health))),
        )
        .add_service(
            streams(|_| true).around(
                reflection()
                    .build_v1()?
                    .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES),
            ),
        )
        .add_service(
            streams(|_| true).around(
                reflection()
                    .build_v1alpha()?
                    .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES),
            ),
        )
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
    let access_log = AccessLogLayer::new(&service, recorder, spans);
    let in_flight = access_log.in_flight();
    let app = access_log.layer(status_gateway::cors().layer(shed.layer(deadline.layer(routes))));
    Ok((app, in_flight))
}

/// How one gRPC server's streaming calls are held to `MAX_WATCH_STREAMS`.
struct StreamLimits<'a> {
    lifecycle: &'a Arc<Lifecycle>,
    service: &'a str,
    is_stream: fn(&str) -> bool,
}

impl StreamLimits<'_> {
    fn around<S>(&self, server: S) -> StreamLimit<S> {
        StreamLimit::new(
            server,
            Arc::clone(self.lifecycle),
            self.service,
            self.is_stream,
        )
    }
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
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // axum routers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match Protocol::of(&request) {
            // base64 text is framed only once tonic-web decoded it: tonic's
            // own limit (OUT_OF_RANGE) holds it.
            Protocol::GrpcWebText => self.grpc_web.call(request),
            Protocol::GrpcWeb => self.grpc_web.call(request.map(MessageLimit::new)),
            Protocol::Grpc => self.grpc.call(request.map(MessageLimit::new)),
            Protocol::Http1 | Protocol::H2c => self.rest.call(request),
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

    /// Log lines written to a buffer, as JSON objects.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_panic_is_one_error_line_with_the_requests_ids() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let recorder = Arc::new(Recorder::new("service-a", Vec::new()));
        for (method, path, content_type) in [
            ("GET", "/service-a/status", None),
            (
                "POST",
                "/scdemo.status.v1.StatusService/GetStatus",
                Some("application/grpc"),
            ),
        ] {
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .header("x-request-id", "panic-1");
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response =
                AccessLogLayer::new("service-a", Arc::clone(&recorder), Spans::default())
                    .layer(panicking_routes())
                    .oneshot(request.body(Body::empty()).expect("request"))
                    .await
                    .expect("infallible");
            let _ = response.into_body().collect().await;
        }
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("UTF-8");
        let errors: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("JSON"))
            .filter(|line: &serde_json::Value| line["level"] == "ERROR")
            .collect();
        // One per request (REST, gRPC), each with the request's ids.
        assert_eq!(errors.len(), 2, "{text}");
        for line in &errors {
            assert_eq!(line["message"], "handler panicked", "{line}");
            assert_eq!(line["service"], "service-a", "{line}");
            assert_eq!(line["request_id"], "panic-1", "{line}");
            assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
            assert_eq!(line["error"], "boom", "{line}");
        }
    }
}
