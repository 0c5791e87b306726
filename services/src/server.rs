//! One service on one port, and its life from start to exit.
//!
//! The port serves HTTP/1.1 and h2c (prior knowledge) side by side: requests
//! with a gRPC content type go to the gRPC services (Status, Health,
//! reflection v1 and v1alpha), all others to the REST gateway. tonic's server
//! runs the port, so `grpc-timeout` is enforced on every call.
//!
//! Life: NOT_SERVING until the first metrics sample (and the ECS metadata)
//! are in, then SERVING. On shutdown: NOT_SERVING at once while still
//! answering for the drain delay, then stop accepting, end our own streams,
//! and wait for open connections for at most the shutdown timeout.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::Router;
use http::Request;
use status_api::v1::status_service_server::StatusServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::{
    pb::health_server::HealthServer,
    server::{HealthReporter, HealthService},
};
use tower::{Layer, Service};

use crate::{
    access_log::{AccessLog, AccessLogLayer, is_grpc},
    config::ServiceConfig,
    ecs,
    metrics::Metrics,
    peer::PeerClient,
    status::{Identity, Lifecycle, StatusApi},
};

/// How long to wait for the ECS task metadata endpoint at start.
const ECS_METADATA_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot read the listening address: {0}")]
    Listener(#[from] std::io::Error),
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The HTTP service of one instance, with request ids and access logs.
pub type App = AccessLog<GrpcOrRest>;

/// Builds the HTTP service of the instance that `api` describes.
pub fn app(api: StatusApi, health: &HealthReporter) -> Result<App, ServeError> {
    let health = Arc::new(HealthService::from_health_reporter(health.clone()));
    let api = Arc::new(api);
    let rest = status_gateway::router(
        &api.identity().service,
        Arc::clone(&api),
        Arc::clone(&health),
    );

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
    let grpc = Routes::new(StatusServiceServer::from_arc(api))
        .add_service(HealthServer::from_arc(health))
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .into_axum_router();

    Ok(AccessLogLayer.layer(GrpcOrRest { grpc, rest }))
}

/// Sends gRPC requests (by content type) to the gRPC routes and everything
/// else to the REST gateway. Each side keeps its own fallback: unknown rpcs
/// get gRPC UNIMPLEMENTED, unknown REST paths a JSON 404.
#[derive(Debug, Clone)]
pub struct GrpcOrRest {
    grpc: Router,
    rest: Router,
}

impl<B> Service<Request<B>> for GrpcOrRest
where
    Router: Service<Request<B>, Error = Infallible>,
{
    type Response = <Router as Service<Request<B>>>::Response;
    type Error = Infallible;
    type Future = <Router as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // axum routers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if is_grpc(request.headers()) {
            self.grpc.call(request)
        } else {
            self.rest.call(request)
        }
    }
}

/// Runs one service on `listener` until `shutdown` is cancelled, then drains
/// and returns. `metrics` may be shared by several services of one process.
pub async fn serve(
    config: ServiceConfig,
    listener: TcpListener,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> Result<(), ServeError> {
    let address = listener.local_addr()?;
    let service = config.service_name.as_str();
    let lifecycle = Arc::new(Lifecycle::default());
    let api = StatusApi::new(
        Identity::new(service),
        metrics.clone(),
        PeerClient::new(&config.peer),
        Arc::clone(&lifecycle),
    );
    let health = HealthReporter::new();
    set_health(&health, false).await;
    let app = app(api.clone(), &health)?;

    let stopping = lifecycle.stopping().clone();
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut server = tokio::spawn(
        Server::builder()
            .accept_http1(true)
            .serve_with_incoming_shutdown(app, incoming, stopping.clone().cancelled_owned()),
    );
    tracing::info!(
        service,
        version = env!("CARGO_PKG_VERSION"),
        %address,
        peer = %config.peer.url,
        peer_request_timeout = ?config.peer.request_timeout,
        drain_delay = ?config.drain_delay,
        shutdown_timeout = ?config.shutdown_timeout,
        "listening"
    );

    let warm_up = async {
        tokio::join!(
            metrics.ready(),
            load_ecs_task(&api, config.ecs_metadata_uri.as_deref())
        );
        set_health(&health, true).await;
        tracing::info!(service, "serving");
    };
    // Serve until shutdown, which may come before the warm-up is over.
    let until_shutdown = async {
        tokio::select! {
            () = warm_up => shutdown.cancelled().await,
            () = shutdown.cancelled() => {}
        }
    };
    tokio::select! {
        // The server only ends by itself on an error.
        ended = &mut server => return ended?.map_err(ServeError::from),
        () = until_shutdown => {}
    }

    tracing::info!(service, drain_delay = ?config.drain_delay, "draining: health is NOT_SERVING");
    lifecycle.start_draining();
    set_health(&health, false).await;
    tokio::time::sleep(config.drain_delay).await;

    tracing::info!(service, "stopping: no new connections, ending streams");
    stopping.cancel();
    match tokio::time::timeout(config.shutdown_timeout, &mut server).await {
        Ok(ended) => ended??,
        Err(_) => {
            tracing::warn!(service, shutdown_timeout = ?config.shutdown_timeout, "connections still open: closing them");
            server.abort();
        }
    }
    tracing::info!(service, "stopped");
    Ok(())
}

/// Health of the whole server ("") and of the Status service, together.
async fn set_health(health: &HealthReporter, serving: bool) {
    type Status = StatusServiceServer<StatusApi>;
    if serving {
        health
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        health.set_serving::<Status>().await;
    } else {
        health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        health.set_not_serving::<Status>().await;
    }
}

async fn load_ecs_task(api: &StatusApi, metadata_uri: Option<&str>) {
    let Some(uri) = metadata_uri else { return };
    match ecs::fetch_task(uri, ECS_METADATA_TIMEOUT).await {
        Ok(task) => {
            tracing::info!(task_arn = task.task_arn, "ECS task metadata loaded");
            let _ = api.identity().ecs_task.set(task);
        }
        // Not fatal: the status then has no ecs_task, which is the truth.
        Err(error) => tracing::warn!(%error, "ECS task metadata unavailable"),
    }
}
