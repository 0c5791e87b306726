//! One service on one port, and its life from start to exit.
//!
//! The port serves HTTP/1.1 and h2c (prior knowledge) side by side; the
//! accept loop and the connections are our own, on hyper-util, because
//! tonic's server has no first-byte or idle timeout, retries a failing
//! accept at once (a CPU spin when file descriptors run out) and cannot
//! abort the connections a stop gave up waiting for.
//!
//! Life: NOT_SERVING until the first metrics sample (and the ECS metadata)
//! are in, then SERVING. On shutdown: NOT_SERVING at once while still
//! answering for the drain delay, then stop accepting, close every
//! connection gracefully (our own streams end with UNAVAILABLE), and abort
//! the connections still open after the shutdown timeout. `serve` returns
//! only once every connection task has ended, so nothing logs after it.

mod activity;
mod app;
mod connection;
mod head_watch;
mod listener;
mod pressure;
mod read_gate;

use std::{sync::Arc, time::Duration};

use status_api::v1::status_service_server::StatusServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic_health::server::HealthReporter;

pub use self::listener::{LISTEN_BACKLOG, bind};

use self::app::app;
use self::{
    connection::ConnectionContext,
    listener::{AcceptSettings, accept_until_stopped},
    pressure::Pressure,
    read_gate::ReadGate,
};
use crate::{
    config::ServiceConfig,
    ecs,
    emf::{self, Gauges, Recorder},
    http::refused::Refusals,
    metrics::Metrics,
    peer::PeerClient,
    status::{Identity, Lifecycle, StatusApi},
    telemetry::Spans,
};

/// After the connections are closed, how long their requests (HTTP/2
/// streams run as tasks of their own) have to write their lines.
const REQUESTS_END_GRACE: Duration = Duration::from_secs(1);

/// How long to wait for the ECS task metadata endpoint at start.
const ECS_METADATA_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("cannot read the listening address: {0}")]
    Listener(#[from] std::io::Error),
    #[error("server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
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
    let limits = &config.limits;
    let lifecycle = Arc::new(Lifecycle::new(limits.max_watch_streams));
    let recorder = Arc::new(Recorder::new(service, app::known_routes(service)));
    let api = StatusApi::new(
        Identity::new(service),
        metrics.clone(),
        PeerClient::new(&config.peer, Arc::clone(&recorder)),
        Arc::clone(&lifecycle),
    );
    let health = HealthReporter::new();
    set_health(&health, false).await;
    let spans = Spans::from_env(service, &config.peer.url);

    let stopping = lifecycle.stopping().clone();
    let (app, in_flight) = app(
        api.clone(),
        &health,
        limits,
        Arc::clone(&recorder),
        &lifecycle,
        spans.clone(),
    )?;
    let read_gate = ReadGate::new(service, limits.read_gate_requests);
    // Until every connection has ended (parked readers wait through the drain).
    let gate_ticks = tokio::spawn(read_gate::run_ticks(Arc::clone(&read_gate)));
    let context = ConnectionContext {
        app,
        builder: Arc::new(connection::builder(limits)),
        first_byte_timeout: limits.first_byte_timeout,
        header_read_timeout: limits.header_read_timeout,
        idle_timeout: limits.connection_idle_timeout,
        lifecycle: Arc::clone(&lifecycle),
        closing: stopping.clone(),
        refusals: Refusals::new(service, Arc::clone(&recorder)),
        read_gate,
    };
    let settings = AcceptSettings {
        service: service.to_owned(),
        max_connections: limits.max_connections,
        tcp_keepalive: limits.tcp_keepalive,
        pressure: Pressure::new(
            service,
            limits.max_connections,
            limits.connection_idle_timeout,
            Arc::clone(&recorder),
        ),
        stop: stopping.clone(),
    };
    let published = CancellationToken::new();
    let publishing = tokio::spawn(emf::publish(
        recorder,
        config.emf.clone(),
        {
            let (lifecycle, metrics, spans) =
                (Arc::clone(&lifecycle), metrics.clone(), spans.clone());
            move || Gauges {
                trace_spans_dropped_total: spans.dropped_total(),
                watch_streams: u64::from(lifecycle.open_watch_streams()),
                process_cpu_percent: metrics.latest().map_or(0.0, |s| s.process_cpu_percent),
                process_memory_bytes: metrics.latest().map_or(0, |s| s.process_memory_bytes),
            }
        },
        published.clone(),
    ));
    let mut accepting = tokio::spawn(accept_until_stopped(
        listener,
        settings,
        move |stream, client, tracked| connection::serve(stream, client, tracked, context.clone()),
    ));
    tracing::info!(
        service,
        version = env!("CARGO_PKG_VERSION"),
        %address,
        peer = %config.peer.url,
        peer_request_timeout = ?config.peer.request_timeout,
        drain_delay = ?config.drain_delay,
        shutdown_timeout = ?config.shutdown_timeout,
        max_connections = limits.max_connections,
        max_concurrent_requests = limits.max_concurrent_requests,
        read_gate_requests = limits.read_gate_requests,
        max_watch_streams = limits.max_watch_streams,
        request_timeout = ?limits.request_timeout,
        connection_idle_timeout = ?limits.connection_idle_timeout,
        "listening"
    );

    let warm_up = async {
        tokio::join!(
            metrics.ready(),
            load_ecs_task(&api, config.ecs_metadata_uri.as_deref())
        );
        spans.start(api.identity().ecs_task.get());
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
        // The accept loop only ends by itself if its task fails.
        ended = &mut accepting => { ended?; }
        () = until_shutdown => {}
    }

    tracing::info!(service, drain_delay = ?config.drain_delay, "draining: health is NOT_SERVING");
    lifecycle.start_draining();
    set_health(&health, false).await;
    tokio::time::sleep(config.drain_delay).await;

    tracing::info!(service, "stopping: no new connections, ending streams");
    stopping.cancel();
    let stop_started = tokio::time::Instant::now();
    let mut connections = accepting.await?;
    let all_closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(config.shutdown_timeout, all_closed)
        .await
        .is_err()
    {
        tracing::warn!(
            service,
            shutdown_timeout = ?config.shutdown_timeout,
            open_connections = connections.len(),
            "connections still open: closing them"
        );
        // What ends from now on was cut off by us, not by its client.
        in_flight.aborting();
        connections.shutdown().await;
    }
    gate_ticks.abort();
    // HTTP/2 streams are tasks of their own, outside the connection set:
    // wait (briefly: their connections are gone) for their lines and counts.
    let still_open = in_flight.ended(REQUESTS_END_GRACE).await;
    if still_open > 0 {
        tracing::warn!(
            service,
            still_open,
            "requests still open at exit: not logged"
        );
    }
    // The last spans, in what is left of the shutdown timeout.
    spans
        .shutdown(
            config
                .shutdown_timeout
                .saturating_sub(stop_started.elapsed()),
        )
        .await;
    // The last metrics, counted up to the last request.
    published.cancel();
    publishing.await?;
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
