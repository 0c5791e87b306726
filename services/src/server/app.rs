//! The HTTP service of one instance: the request envelope
//! ([`crate::http::envelope`]: request id and trace context, one access line
//! per request, CORS for browsers, load shedding, the deadline, a handler's
//! panic answered in its protocol) around the routes, chosen by content
//! type:
//!
//! - gRPC: Status, Health and reflection v1 and v1alpha, by the service
//!   name in the path, straight to tonic's generated servers (no router, no
//!   per-route layers); request messages held to 4 KiB and long-lived
//!   streams to `MAX_WATCH_STREAMS` ([`crate::http::grpc_limits`]);
//! - gRPC-Web: the same, behind tonic-web (browsers only, so native gRPC
//!   calls do not pay for it);
//! - everything else: the REST gateway's routes (one match on the path).

use std::{
    convert::Infallible,
    fmt::Display,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{HeaderName, Request, Response};
use pin_project_lite::pin_project;
use status_api::v1::status_service_server::StatusServiceServer;
use status_gateway::{RestFuture, RestRoutes};
use tonic::{codec::CompressionEncoding, codegen::BoxFuture, server::NamedService};
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tonic_web::{GrpcWebLayer, GrpcWebService};
use tower::{Layer, Service, util::BoxCloneSyncService};

use super::ServeError;
use crate::{
    config::ServerLimits,
    emf::Recorder,
    http::{
        access_log::{AccessLog, InFlightRequests},
        envelope::{AppBody, Dispatch, Envelope},
        grpc_limits::{MAX_REQUEST_MESSAGE_BYTES, MessageLimit, StreamLimit, StreamLimitFuture},
        load_shed::LoadShed,
        protocol::Protocol,
    },
    status::{Lifecycle, StatusApi},
    telemetry::Spans,
};

/// The HTTP service of one instance.
pub(crate) type App = Envelope<GrpcOrRest>;

type GrpcBody = tonic::body::Body;
/// A gRPC server behind a box: reflection's type cannot be named.
type BoxedGrpc = BoxCloneSyncService<Request<GrpcBody>, Response<GrpcBody>, Infallible>;

// contract: a generated gRPC server that accepts gzip and zstd requests and
// compresses its answers when the client asks (`grpc-accept-encoding`).
macro_rules! compressed {
    ($server:expr) => {
        accepts_compressed!($server)
            .send_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Zstd)
    };
}

// The same without compressed answers: for callers that accept none.
macro_rules! accepts_compressed {
    ($server:expr) => {
        $server
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES)
    };
}

/// The header a gRPC caller names the compressions it accepts in.
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");

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
    let rest = RestRoutes::new(&service, Arc::clone(&api), Arc::clone(&health));

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
    // Health/Watch and reflection streams: bounded and ended at stop, as
    // WatchStatus is by itself.
    let streams =
        |server, is_stream| StreamLimit::new(server, Arc::clone(lifecycle), &service, is_stream);
    let grpc = GrpcRoutes {
        // contract: gzip/zstd requests accepted and answers compressed when
        // the client asks, on Status and Health.
        status: compressed!(StatusServiceServer::from_arc(Arc::clone(&api))),
        status_uncompressed: accepts_compressed!(StatusServiceServer::from_arc(api)),
        health: streams(
            BoxCloneSyncService::new(compressed!(HealthServer::from_arc(health))),
            |path| path.ends_with("/Watch"),
        ),
        reflection_v1: streams(
            BoxCloneSyncService::new(
                reflection()
                    .build_v1()?
                    .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES),
            ),
            |_| true,
        ),
        reflection_v1alpha: streams(
            BoxCloneSyncService::new(
                reflection()
                    .build_v1alpha()?
                    .max_decoding_message_size(MAX_REQUEST_MESSAGE_BYTES),
            ),
            |_| true,
        ),
    };
    // contract: gRPC-Web (tonic-web), for browsers only.
    let grpc_web = GrpcWebLayer::new().layer(grpc.clone());
    // contract: end

    let rest_health_path = status_gateway::healthcheck_path(&service);
    let shed = LoadShed::new(limits.max_concurrent_requests, &service, rest_health_path);
    let log = AccessLog::new(&service, recorder, spans);
    let in_flight = log.in_flight();
    let routes = GrpcOrRest {
        grpc,
        grpc_web,
        rest,
    };
    let app = Envelope::new(
        log,
        shed,
        limits.request_timeout,
        status_gateway::cors(),
        routes,
    );
    Ok((app, in_flight))
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

/// The gRPC servers of the port, found by the service name in the path.
#[derive(Clone)]
pub(crate) struct GrpcRoutes {
    status: StatusServiceServer<StatusApi>,
    /// `status` for callers without `grpc-accept-encoding` (whose answers
    /// are never compressed): it does not negotiate an answer's
    /// compression, which tonic does by looking the header up by its name
    /// as a string (parsed per request, about 0.4k instructions).
    status_uncompressed: StatusServiceServer<StatusApi>,
    health: StreamLimit<BoxedGrpc>,
    reflection_v1: StreamLimit<BoxedGrpc>,
    reflection_v1alpha: StreamLimit<BoxedGrpc>,
}

const STATUS: &str = <StatusServiceServer<StatusApi> as NamedService>::NAME;
const HEALTH: &str = <HealthServer<HealthService> as NamedService>::NAME;
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

impl GrpcRoutes {
    fn route<B>(&self, request: Request<B>) -> GrpcFuture
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError> + Send + 'static,
    {
        // `/package.Service/Method`
        let service = request
            .uri()
            .path()
            .get(1..)
            .and_then(|path| path.split_once('/'));
        let limited =
            |mut server: StreamLimit<BoxedGrpc>, request: Request<B>| GrpcFuture::Limited {
                future: server.call(request.map(GrpcBody::new)),
            };
        match service.map(|(service, _)| service) {
            Some(STATUS) => GrpcFuture::Boxed {
                // A scan of the few names beats hashing this one.
                future: if request
                    .headers()
                    .keys()
                    .any(|name| name == GRPC_ACCEPT_ENCODING)
                {
                    self.status.clone().call(request)
                } else {
                    self.status_uncompressed.clone().call(request)
                },
            },
            Some(HEALTH) => limited(self.health.clone(), request),
            Some(REFLECTION_V1) => limited(self.reflection_v1.clone(), request),
            Some(REFLECTION_V1ALPHA) => limited(self.reflection_v1alpha.clone(), request),
            _ => GrpcFuture::Unimplemented {
                response: Some(
                    tonic::Status::unimplemented("no such service or method").into_http(),
                ),
            },
        }
    }
}

impl Service<Request<GrpcBody>> for GrpcRoutes {
    type Response = Response<GrpcBody>;
    type Error = Infallible;
    type Future = GrpcFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<GrpcBody>) -> Self::Future {
        self.route(request)
    }
}

pin_project! {
    #[project = GrpcProjection]
    pub(crate) enum GrpcFuture {
        Boxed { #[pin] future: BoxFuture<Response<GrpcBody>, Infallible> },
        Limited { #[pin] future: StreamLimitFuture<BoxFuture<Response<GrpcBody>, Infallible>> },
        Unimplemented { response: Option<Response<GrpcBody>> },
    }
}

impl Future for GrpcFuture {
    type Output = Result<Response<GrpcBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GrpcProjection::Boxed { future } => future.poll(cx),
            GrpcProjection::Limited { future } => future.poll(cx),
            GrpcProjection::Unimplemented { response } => {
                Poll::Ready(Ok(response.take().unwrap_or_else(|| {
                    tonic::Status::internal("polled after completion").into_http()
                })))
            }
        }
    }
}

/// Sends gRPC requests (by content type) to the gRPC servers and
/// everything else to the REST gateway. Each side answers unknown paths in
/// its protocol: gRPC UNIMPLEMENTED, a JSON 404.
pub(crate) struct GrpcOrRest {
    grpc: GrpcRoutes,
    /// contract: the gRPC servers behind tonic-web.
    grpc_web: GrpcWebService<GrpcRoutes>,
    /// REST: one match on the path, no router.
    rest: RestRoutes<StatusApi, HealthService>,
}

impl<B> Dispatch<B> for GrpcOrRest
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError> + Display + Send + 'static,
{
    type Future = RoutesFuture;

    fn dispatch(&self, protocol: Protocol, request: Request<B>) -> RoutesFuture {
        match protocol {
            Protocol::Grpc => RoutesFuture::Grpc {
                future: self.grpc.route(request.map(MessageLimit::new)),
            },
            Protocol::GrpcWeb => RoutesFuture::GrpcWeb {
                future: self.grpc_web.clone().call(request.map(MessageLimit::new)),
            },
            // base64 text is framed only once tonic-web decoded it: tonic's
            // own limit (OUT_OF_RANGE) holds it.
            Protocol::GrpcWebText => RoutesFuture::GrpcWeb {
                future: self.grpc_web.clone().call(request),
            },
            Protocol::Http1 | Protocol::H2c => RoutesFuture::Rest {
                future: self.rest.call(request),
            },
        }
    }
}

pin_project! {
    #[project = RoutesProjection]
    pub(crate) enum RoutesFuture {
        Grpc { #[pin] future: GrpcFuture },
        GrpcWeb { #[pin] future: tonic_web::ResponseFuture<GrpcFuture> },
        Rest { #[pin] future: RestFuture },
    }
}

impl Future for RoutesFuture {
    type Output = Response<AppBody>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match self.project() {
            RoutesProjection::Grpc { future } => {
                let Ok(response) = ready!(future.poll(cx));
                response.map(AppBody::grpc)
            }
            RoutesProjection::GrpcWeb { future } => match ready!(future.poll(cx)) {
                Ok(response) => response.map(AppBody::grpc),
                Err(never) => match never {},
            },
            RoutesProjection::Rest { future } => {
                let Ok(response) = ready!(future.poll(cx));
                response.map(AppBody::rest)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::Body;
    use http_body_util::BodyExt;
    use tokio::time::Instant;
    use tower::ServiceExt;

    use super::*;
    use crate::http::{RequestContext, RequestDeadline};

    /// Routes that panic, or never answer, or answer with what they saw.
    #[derive(Clone, Copy)]
    enum Handler {
        Panics,
        Hangs,
        ShowsDeadline,
    }

    impl Dispatch<Body> for Handler {
        type Future = Pin<Box<dyn Future<Output = Response<AppBody>> + Send>>;

        fn dispatch(&self, _: Protocol, request: Request<Body>) -> Self::Future {
            let handler = *self;
            Box::pin(async move {
                match handler {
                    Handler::Panics => panic!("boom"),
                    Handler::Hangs => std::future::pending().await,
                    Handler::ShowsDeadline => {
                        let deadline = request
                            .extensions()
                            .get::<RequestContext>()
                            .and_then(RequestContext::deadline);
                        let left = deadline.map(RequestDeadline::remaining).unwrap_or_default();
                        Response::new(AppBody::http(Body::from(format!("{}", left.as_millis()))))
                    }
                }
            })
        }
    }

    fn envelope(handler: Handler) -> Envelope<Handler> {
        let recorder = Arc::new(Recorder::new("service-a", Vec::new()));
        Envelope::new(
            AccessLog::new("service-a", recorder, Spans::default()),
            LoadShed::new(16, "service-a", "/service-a/healthcheck".into()),
            Duration::from_secs(30),
            status_gateway::cors(),
            handler,
        )
    }

    fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Body::empty()).expect("request")
    }

    const GRPC: (&str, &str) = ("content-type", "application/grpc");

    #[tokio::test]
    async fn a_panic_answers_internal_in_the_callers_protocol() {
        let rest = envelope(Handler::Panics)
            .oneshot(request("GET", "/service-a/status", &[]))
            .await
            .expect("infallible");
        assert_eq!(rest.status(), 500);
        let body = rest.into_body().collect().await.expect("body").to_bytes();
        assert!(
            !body.windows(4).any(|w| w == b"boom"),
            "the panic is not sent to the caller"
        );
        let grpc = envelope(Handler::Panics)
            .oneshot(request(
                "POST",
                "/scdemo.status.v1.StatusService/GetStatus",
                &[GRPC],
            ))
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
        // Other tests, on other threads, meet the access log's `enabled!`
        // callsite with no subscriber at the same time: one that registered
        // it while this one was being set keeps its interest at "never" (and
        // no line is written) until the cache is rebuilt with this one in it.
        tracing::callsite::rebuild_interest_cache();
        for (method, path, headers) in [
            ("GET", "/service-a/status", vec![]),
            (
                "POST",
                "/scdemo.status.v1.StatusService/GetStatus",
                vec![GRPC],
            ),
        ] {
            let mut headers = headers;
            headers.push(("x-request-id", "panic-1"));
            let response = envelope(Handler::Panics)
                .oneshot(request(method, path, &headers))
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

    #[tokio::test(start_paused = true)]
    async fn the_deadline_answers_for_a_handler_that_does_not() {
        for (headers, expected) in [
            (
                vec![GRPC, ("grpc-timeout", "300m")],
                Duration::from_millis(300),
            ),
            (vec![GRPC, ("grpc-timeout", "1H")], Duration::from_secs(30)),
            (
                vec![
                    ("content-type", "application/grpc-web+proto"),
                    ("grpc-timeout", "200m"),
                ],
                Duration::from_millis(200),
            ),
            (vec![("grpc-timeout", "300m")], Duration::from_secs(30)),
        ] {
            let started = Instant::now();
            let response = envelope(Handler::Hangs)
                .oneshot(request("POST", "/x", &headers))
                .await
                .expect("infallible");
            assert_eq!(started.elapsed(), expected, "{headers:?}");
            if headers.len() == 2 {
                assert_eq!(response.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
            } else {
                assert_eq!(response.status(), 504);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_handler_sees_its_deadline() {
        let response = envelope(Handler::ShowsDeadline)
            .oneshot(request("POST", "/x", &[GRPC, ("grpc-timeout", "300m")]))
            .await
            .expect("infallible");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, "300");
    }

    #[tokio::test]
    async fn browsers_get_cors_and_everyone_else_vary_origin() {
        let page = envelope(Handler::ShowsDeadline)
            .oneshot(request(
                "GET",
                "/service-a/status",
                &[("origin", "https://app.example")],
            ))
            .await
            .expect("infallible");
        assert_eq!(page.headers()["access-control-allow-origin"], "*");
        let curl = envelope(Handler::ShowsDeadline)
            .oneshot(request("GET", "/service-a/status", &[]))
            .await
            .expect("infallible");
        assert!(!curl.headers().contains_key("access-control-allow-origin"));
        assert_eq!(curl.headers()["vary"], "origin");
        assert!(curl.headers().contains_key("x-request-id"));
    }
}
