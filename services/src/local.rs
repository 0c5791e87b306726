//! `local`: both services in one process, each calling the other over
//! loopback. What `cargo run` starts.

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{config::ServiceConfig, metrics::Metrics, server};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot listen on {address}: {source} (is another instance running?)")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] server::ServeError),
}

/// Binds every service's port first (so a busy port fails before anything
/// starts), then serves them all until `shutdown`.
pub async fn run(
    configs: Vec<ServiceConfig>,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> Result<(), LocalError> {
    let mut listeners = Vec::with_capacity(configs.len());
    for config in &configs {
        let address = config.listen_address;
        let listener =
            server::bind(address).map_err(|source| LocalError::Bind { address, source })?;
        listeners.push(listener);
    }
    print_banner(&configs);
    let mut services = JoinSet::new();
    for (config, listener) in configs.into_iter().zip(listeners) {
        services.spawn(server::serve(
            config,
            listener,
            metrics.clone(),
            shutdown.clone(),
        ));
    }
    supervise(services, &shutdown)
        .await
        .map_err(LocalError::from)
}

/// Waits for every service; the first to fail (in whatever order they end)
/// stops the others, and its error is the result.
async fn supervise(
    mut services: JoinSet<Result<(), server::ServeError>>,
    shutdown: &CancellationToken,
) -> Result<(), server::ServeError> {
    let mut first_error = None;
    while let Some(ended) = services.join_next().await {
        if let Err(error) = ended
            .map_err(server::ServeError::from)
            .and_then(|served| served)
        {
            tracing::error!(%error, "a service failed: stopping the others");
            shutdown.cancel();
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Ready-to-paste commands for trying the services.
fn print_banner(configs: &[ServiceConfig]) {
    let mut banner = String::from("\nBoth services are starting. Try:\n");
    for config in configs {
        let name = config.service_name.as_str();
        let address = config.listen_address;
        banner.push_str(&format!(
            "\n  # {name} on {address}\n  curl -i http://{address}/{name}/healthcheck\n  curl http://{address}/{name}/status\n  curl http://{address}/{name}/other-status\n  grpcurl -plaintext {address} list\n  grpcurl -plaintext {address} scdemo.status.v1.StatusService/GetPeerStatus\n"
        ));
    }
    banner.push_str("\nCtrl-C stops both.\n");
    println!("{banner}");
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failure_of_any_service_stops_the_others_at_once() {
        let shutdown = CancellationToken::new();
        let mut services = JoinSet::new();
        // The first service runs until shutdown; the second fails soon.
        services.spawn({
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancelled().await;
                Ok(())
            }
        });
        services.spawn(async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err(server::ServeError::Listener(std::io::Error::other(
                "broken",
            )))
        });
        let started = tokio::time::Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(60), supervise(services, &shutdown))
            .await
            .expect("returns without waiting for a shutdown nobody asked for");
        assert!(
            matches!(result, Err(server::ServeError::Listener(_))),
            "{result:?}"
        );
        assert!(shutdown.is_cancelled());
        assert_eq!(started.elapsed(), Duration::from_millis(10));
    }
}
