//! `local`: both services in one process, each calling the other over
//! loopback. What `cargo run` starts.

use tokio::net::TcpListener;
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
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| LocalError::Bind { address, source })?;
        listeners.push(listener);
    }
    print_banner(&configs);
    let services = configs
        .into_iter()
        .zip(listeners)
        .map(|(config, listener)| {
            tokio::spawn(server::serve(
                config,
                listener,
                metrics.clone(),
                shutdown.clone(),
            ))
        });
    let mut first_error = None;
    for service in services.collect::<Vec<_>>() {
        let result = service
            .await
            .map_err(server::ServeError::from)
            .and_then(|served| served);
        if let Err(error) = result {
            // One service failing takes the others down with it.
            shutdown.cancel();
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), |error| Err(error.into()))
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
