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
    status::{Lifecycle, ServerHealth, StatusApi},
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
    // REST reads the whole server's status from a copy kept beside the
    // reporter; gRPC's Check and Watch ask the reporter.
    let rest_health = Arc::new(ServerHealth::new(health, Arc::clone(lifecycle)));
    let health = Arc::new(HealthService::from_health_reporter(health.clone()));
    let api = Arc::new(api);
    let rest = RestRoutes::new(&service, Arc::clone(&api), rest_health);

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
    rest: RestRoutes<StatusApi, ServerHealth>,
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
mod tests;
