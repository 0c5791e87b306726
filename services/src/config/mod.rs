//! Command line and environment.
//!
//! ECS configures a container through environment variables, so every setting
//! is an environment variable first; each has a flag of the same meaning for
//! local use. Values are parsed into types here, once: a bad value stops the
//! process at start with exit code 64 and one line naming the variable and
//! the value, never later at request time.

pub mod limits;
mod values;

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use clap::{Args, Parser, Subcommand};

use self::values::{
    duration_in, parse_duration, parse_emf_interval, parse_metrics_interval, parse_namespace,
    parse_port, parse_positive_duration,
};
pub use self::{
    limits::{LimitArgs, ServerLimits},
    values::{
        ConfigError, MAX_DURATION, MAX_TCP_KEEPALIVE, MIN_EMF_INTERVAL, MIN_KEEPALIVE_INTERVAL,
        PeerUrl, ServiceName,
    },
};
pub use crate::logging::LogFormat;
use crate::{emf::EmfSettings, topology::KnownService};

pub const ENV_SERVICE_NAME: &str = "SERVICE_NAME";
pub const ENV_SERVER_PORT: &str = "SERVER_PORT";
pub const ENV_PEER_URL: &str = "PEER_URL";
pub const ENV_BIND_ADDRESS: &str = "BIND_ADDRESS";
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";
pub const ENV_DRAIN_DELAY: &str = "DRAIN_DELAY";
pub const ENV_SHUTDOWN_TIMEOUT: &str = "SHUTDOWN_TIMEOUT";
pub const ENV_PEER_CONNECT_TIMEOUT: &str = "PEER_CONNECT_TIMEOUT";
pub const ENV_PEER_REQUEST_TIMEOUT: &str = "PEER_REQUEST_TIMEOUT";
pub const ENV_PEER_KEEPALIVE_INTERVAL: &str = "PEER_KEEPALIVE_INTERVAL";
pub const ENV_METRICS_INTERVAL: &str = "METRICS_INTERVAL";
pub const ENV_MAX_PEER_CALLS: &str = "MAX_PEER_CALLS";
pub const ENV_EMF_INTERVAL: &str = "EMF_INTERVAL";
pub const ENV_METRICS_NAMESPACE: &str = "METRICS_NAMESPACE";
pub const ENV_PEER_DEADLINE_MARGIN: &str = "PEER_DEADLINE_MARGIN";
/// Set by the ECS agent in every container of a task.
pub const ENV_ECS_METADATA_URI: &str = "ECS_CONTAINER_METADATA_URI_V4";

/// Exit code for bad configuration: `EX_USAGE` of sysexits.h.
pub const EXIT_BAD_CONFIG: u8 = 64;

/// sysinfo ignores CPU refreshes closer together than this, so a shorter
/// sampling interval would report stale CPU figures.
pub const MIN_METRICS_INTERVAL: Duration = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;

/// service-a and service-b, one binary. With no subcommand it runs `local`.
#[derive(Debug, Parser)]
#[command(
    name = "status-service",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of `local`, the default command.
    #[command(flatten)]
    pub local: LocalArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve one service, configured by environment: the container entrypoint.
    Serve(ServeArgs),
    /// Run service-a (8201) and service-b (8202) in one process, each calling
    /// the other over loopback. What `cargo run` does.
    Local(LocalArgs),
    /// Probe this host's service over gRPC health: exit 0 when SERVING, 1
    /// otherwise. The container health check (the image has no shell or curl).
    Healthcheck(HealthcheckArgs),
    /// Call a service's GetStatus and print the answer as JSON (no grpcurl needed).
    Status(StatusArgs),
}

/// Which service this is and where it listens.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// Name of this service: the prefix of its REST paths and the `service`
    /// field of its status.
    #[arg(long, env = ENV_SERVICE_NAME, value_name = ENV_SERVICE_NAME, default_value = "service-a")]
    pub service_name: ServiceName,
    /// Port for gRPC and REST [default: 8201 for service-a, 8202 for service-b].
    #[arg(long, env = ENV_SERVER_PORT, value_name = ENV_SERVER_PORT, value_parser = parse_port)]
    pub server_port: Option<u16>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// gRPC URL of the peer service [default: the other service's Service
    /// Connect URL, e.g. http://service-b-sc:8202 for service-a].
    #[arg(long, env = ENV_PEER_URL, value_name = ENV_PEER_URL)]
    pub peer_url: Option<PeerUrl>,
    /// Address to listen on.
    #[arg(long, env = ENV_BIND_ADDRESS, value_name = ENV_BIND_ADDRESS, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_address: IpAddr,
    /// After SIGTERM, how long to keep answering with health NOT_SERVING, so
    /// the ALB and Service Connect stop routing here before the server stops.
    #[arg(long, env = ENV_DRAIN_DELAY, value_name = ENV_DRAIN_DELAY, default_value = "5s", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// Log format: JSON lines for CloudWatch, or text for people.
    #[arg(long, env = ENV_LOG_FORMAT, value_name = ENV_LOG_FORMAT, default_value = "json")]
    pub log_format: LogFormat,
    /// ECS task metadata endpoint (set by ECS; absent elsewhere).
    #[arg(long, env = ENV_ECS_METADATA_URI, value_name = ENV_ECS_METADATA_URI)]
    pub ecs_metadata_uri: Option<String>,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// Address both services listen on.
    #[arg(long, env = ENV_BIND_ADDRESS, value_name = ENV_BIND_ADDRESS, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind_address: IpAddr,
    /// After Ctrl-C, how long to keep answering with health NOT_SERVING.
    #[arg(long, env = ENV_DRAIN_DELAY, value_name = ENV_DRAIN_DELAY, default_value = "0s", value_parser = parse_duration)]
    pub drain_delay: Duration,
    /// Log format.
    #[arg(long, env = ENV_LOG_FORMAT, value_name = ENV_LOG_FORMAT, default_value = "text")]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Settings shared by `serve` and `local`.
#[derive(Debug, Clone, Args)]
pub struct RuntimeArgs {
    /// Hard bound on stopping after the drain delay: connections still open
    /// (a client holding a stream) are closed when it expires.
    #[arg(long, env = ENV_SHUTDOWN_TIMEOUT, value_name = ENV_SHUTDOWN_TIMEOUT, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Time allowed to open the TCP connection to the peer.
    #[arg(long, env = ENV_PEER_CONNECT_TIMEOUT, value_name = ENV_PEER_CONNECT_TIMEOUT, default_value = "1s", value_parser = parse_positive_duration)]
    pub peer_connect_timeout: Duration,
    /// Deadline of each call to the peer (a shorter deadline from the caller wins).
    #[arg(long, env = ENV_PEER_REQUEST_TIMEOUT, value_name = ENV_PEER_REQUEST_TIMEOUT, default_value = "2s", value_parser = parse_positive_duration)]
    pub peer_request_timeout: Duration,
    /// HTTP/2 keepalive ping interval on the peer connection, and the time a
    /// ping has to be answered (at least 1s); finds dead connections before
    /// a request does.
    #[arg(long, env = ENV_PEER_KEEPALIVE_INTERVAL, value_name = ENV_PEER_KEEPALIVE_INTERVAL, default_value = "20s", value_parser = duration_in(MIN_KEEPALIVE_INTERVAL, MAX_DURATION))]
    pub peer_keepalive_interval: Duration,
    /// Calls to the peer in flight at once, at most
    /// HTTP2_MAX_CONCURRENT_STREAMS (what a peer running this service
    /// allows on the one connection) [default: HTTP2_MAX_CONCURRENT_STREAMS];
    /// beyond it a call waits for a free one for at most 40% of its
    /// remaining deadline, then fails with UNAVAILABLE.
    #[arg(long, env = ENV_MAX_PEER_CALLS, value_name = ENV_MAX_PEER_CALLS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_peer_calls: Option<u32>,
    /// Taken off the caller's remaining deadline when it is passed on to the
    /// peer, so this service answers DEADLINE_EXCEEDED before the caller
    /// gives up (the caller then never sees CANCELLED). Less than half of
    /// REQUEST_TIMEOUT.
    #[arg(long, env = ENV_PEER_DEADLINE_MARGIN, value_name = ENV_PEER_DEADLINE_MARGIN, default_value = "20ms", value_parser = parse_duration)]
    pub peer_deadline_margin: Duration,
    /// How often the EMF metric lines are written (JSON logs only): 0s
    /// writes none, otherwise at least 1s.
    #[arg(long, env = ENV_EMF_INTERVAL, value_name = ENV_EMF_INTERVAL, default_value = "60s", value_parser = parse_emf_interval)]
    pub emf_interval: Duration,
    /// CloudWatch namespace of the EMF metrics.
    #[arg(long, env = ENV_METRICS_NAMESPACE, value_name = ENV_METRICS_NAMESPACE, default_value = crate::emf::catalog::DEFAULT_NAMESPACE, value_parser = parse_namespace)]
    pub metrics_namespace: String,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// How often CPU and memory are sampled in the background (at least 200ms).
    #[arg(long, env = ENV_METRICS_INTERVAL, value_name = ENV_METRICS_INTERVAL, default_value = "1s", value_parser = parse_metrics_interval)]
    pub metrics_interval: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct HealthcheckArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// Give up (and exit 1) after this long.
    #[arg(long, default_value = "2s", value_parser = parse_positive_duration)]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Address of the service, e.g. http://service-b-sc:8202 or 127.0.0.1:8201.
    pub address: String,
    /// Give up after this long.
    #[arg(long, default_value = "2s", value_parser = parse_positive_duration)]
    pub timeout: Duration,
}

/// Peer connection settings.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    pub url: PeerUrl,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub keepalive_interval: Duration,
    pub max_calls: u32,
    pub deadline_margin: Duration,
}

/// Everything one service needs to run, resolved and validated.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub service_name: ServiceName,
    pub listen_address: SocketAddr,
    pub peer: PeerSettings,
    pub drain_delay: Duration,
    pub shutdown_timeout: Duration,
    pub limits: ServerLimits,
    pub emf: EmfSettings,
    pub ecs_metadata_uri: Option<String>,
}

impl ServiceArgs {
    /// The port: given, or the known service's default.
    pub fn port(&self) -> Result<u16, ConfigError> {
        self.server_port
            .or_else(|| KnownService::named(self.service_name.as_str()).map(|s| s.port))
            .ok_or_else(|| ConfigError::NoDefaultPort(self.service_name.clone()))
    }
}

impl ServeArgs {
    pub fn service_config(&self) -> Result<ServiceConfig, ConfigError> {
        let name = &self.service.service_name;
        let peer_url = match &self.peer_url {
            Some(url) => url.clone(),
            None => KnownService::named(name.as_str())
                .map(|s| s.peer_service().service_connect_url())
                .and_then(|url| url.parse().ok())
                .ok_or_else(|| ConfigError::NoDefaultPeer(name.clone()))?,
        };
        Ok(ServiceConfig {
            service_name: name.clone(),
            listen_address: SocketAddr::new(self.bind_address, self.service.port()?),
            peer: self.runtime.peer_settings(peer_url)?,
            drain_delay: self.drain_delay,
            shutdown_timeout: self.runtime.shutdown_timeout,
            limits: self.runtime.limits.limits(),
            emf: self.runtime.emf_settings(),
            ecs_metadata_uri: self.ecs_metadata_uri.clone().filter(|uri| !uri.is_empty()),
        })
    }
}

impl LocalArgs {
    /// service-a and service-b on `bind_address`, each calling the other there.
    pub fn service_configs(&self) -> Result<Vec<ServiceConfig>, ConfigError> {
        crate::topology::KNOWN_SERVICES
            .iter()
            .map(|service| {
                let peer = service.peer_service();
                let peer_address = SocketAddr::new(self.bind_address, peer.port);
                Ok(ServiceConfig {
                    service_name: ServiceName(service.name.to_owned()),
                    listen_address: SocketAddr::new(self.bind_address, service.port),
                    peer: self
                        .runtime
                        .peer_settings(PeerUrl::loopback(peer_address))?,
                    drain_delay: self.drain_delay,
                    shutdown_timeout: self.runtime.shutdown_timeout,
                    limits: self.runtime.limits.limits(),
                    emf: self.runtime.emf_settings(),
                    ecs_metadata_uri: None,
                })
            })
            .collect()
    }
}

impl RuntimeArgs {
    fn emf_settings(&self) -> EmfSettings {
        EmfSettings {
            namespace: self.metrics_namespace.clone(),
            interval: self.emf_interval,
        }
    }

    /// The peer settings, checked against the server's limits they depend on.
    fn peer_settings(&self, url: PeerUrl) -> Result<PeerSettings, ConfigError> {
        let streams = self.limits.http2_max_concurrent_streams;
        let max_calls = self.max_peer_calls.unwrap_or(streams);
        if max_calls > streams {
            return Err(ConfigError::TooManyPeerCalls {
                max_peer_calls: max_calls,
                streams,
            });
        }
        let request_timeout = Duration::from(self.limits.request_timeout);
        if self.peer_deadline_margin >= request_timeout / 2 {
            return Err(ConfigError::MarginTooLong {
                margin: self.peer_deadline_margin,
                request_timeout,
            });
        }
        Ok(PeerSettings {
            url,
            connect_timeout: self.peer_connect_timeout,
            request_timeout: self.peer_request_timeout,
            keepalive_interval: self.peer_keepalive_interval,
            max_calls,
            deadline_margin: self.peer_deadline_margin,
        })
    }
}

#[cfg(test)]
mod tests;
