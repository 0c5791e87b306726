//! Limits and timeouts of the server side: what one service accepts before it
//! refuses, sheds or closes. Each is a setting (environment variable first,
//! flag second), with a default sized for the smallest Fargate task this
//! project deploys (0.25 vCPU, 512 MiB) and documented in README's
//! configuration table.
//!
//! The defaults live here once, as typed constants, and feed both clap's
//! defaults and [`ServerLimits::default`].

use std::time::Duration;

use clap::Args;

use super::values::{
    MAX_DURATION, MAX_TCP_KEEPALIVE, MIN_KEEPALIVE_INTERVAL, humantime_in, parse_humantime,
};

/// Open connections. At the cap the server stops accepting until one closes
/// (the kernel's backlog, `server::LISTEN_BACKLOG`, holds the rest); before
/// it, idle connections are reclaimed (`server/pressure.rs`) so the cap is
/// not reached by idle ones. An idle HTTP/2 connection costs tens of KB, so
/// 4,096 stay well inside 512 MiB.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;
/// Requests in flight, health checks excepted (requests waiting for a peer
/// call slot count). Beyond it, requests are shed at once (503 +
/// Retry-After, or RESOURCE_EXHAUSTED). Sized by memory, not CPU: a waiting
/// request costs about 10 KB (16,384 of them about 160 MB), while refusing
/// costs CPU (a refusal costs most of what an answer does), and clients
/// that send again at once turn refusals into a loop that starves the work
/// admitted. Waiting is bounded in time by the request's deadline.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u32 = 16384;
/// Requests being handled (from the app's call to its response; a stream
/// until its first answer; those waiting for a peer call count) at which
/// connections stop reading more requests until some finish
/// (`server/read_gate/`): new requests wait in the kernel and in the
/// clients' queues at no CPU cost. Sized so that the calls it admits wait
/// for a peer slot far less than their patience (512 calls at the ~3,600
/// calls/s of a 0.25 vCPU task: ~0.15 s) while keeping the service busy
/// (its capacity is reached at ~128).
pub const DEFAULT_READ_GATE_REQUESTS: u32 = 512;
/// Open WatchStatus streams in the whole process; beyond: RESOURCE_EXHAUSTED.
pub const DEFAULT_MAX_WATCH_STREAMS: u32 = 1000;
/// SETTINGS_MAX_CONCURRENT_STREAMS of each HTTP/2 connection: HTTP/2's own
/// backpressure. Clients queue (or open another connection) beyond it, at
/// no cost to the server, instead of sending requests it would refuse.
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Largest request head accepted, in bytes (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE;
/// the HTTP/1.1 read buffer). Larger heads get 431, or a stream reset.
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// Bound on a unary request (REST, or gRPC without a shorter `grpc-timeout`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for a client to send a whole request head, from its first byte
/// (HTTP/2: the preface and SETTINGS, then each header block).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A new connection that sends nothing for this long is closed.
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with no request in flight for this long is closed
/// gracefully. Longer than Service Connect's default idle timeout (5 min),
/// so the proxy in front closes its idle connections first.
pub const DEFAULT_CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// HTTP/2 PING interval on each connection; a peer that does not answer
/// within the same time is dropped.
pub const DEFAULT_HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// TCP keepalive idle time on accepted connections.
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);

pub const ENV_MAX_CONNECTIONS: &str = "MAX_CONNECTIONS";
pub const ENV_MAX_CONCURRENT_REQUESTS: &str = "MAX_CONCURRENT_REQUESTS";
pub const ENV_READ_GATE_REQUESTS: &str = "READ_GATE_REQUESTS";
pub const ENV_MAX_WATCH_STREAMS: &str = "MAX_WATCH_STREAMS";
pub const ENV_HTTP2_MAX_CONCURRENT_STREAMS: &str = "HTTP2_MAX_CONCURRENT_STREAMS";
pub const ENV_MAX_HEADER_LIST_SIZE: &str = "MAX_HEADER_LIST_SIZE";
pub const ENV_REQUEST_TIMEOUT: &str = "REQUEST_TIMEOUT";
pub const ENV_HEADER_READ_TIMEOUT: &str = "HEADER_READ_TIMEOUT";
pub const ENV_FIRST_BYTE_TIMEOUT: &str = "FIRST_BYTE_TIMEOUT";
pub const ENV_CONNECTION_IDLE_TIMEOUT: &str = "CONNECTION_IDLE_TIMEOUT";
pub const ENV_HTTP2_KEEPALIVE_INTERVAL: &str = "HTTP2_KEEPALIVE_INTERVAL";
pub const ENV_TCP_KEEPALIVE: &str = "TCP_KEEPALIVE";

/// The server's limits, resolved and validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_connections: u32,
    pub max_concurrent_requests: u32,
    pub read_gate_requests: u32,
    pub max_watch_streams: u32,
    pub http2_max_concurrent_streams: u32,
    pub max_header_list_size: u32,
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub connection_idle_timeout: Duration,
    pub http2_keepalive_interval: Duration,
    pub tcp_keepalive: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            read_gate_requests: DEFAULT_READ_GATE_REQUESTS,
            max_watch_streams: DEFAULT_MAX_WATCH_STREAMS,
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            max_header_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            first_byte_timeout: DEFAULT_FIRST_BYTE_TIMEOUT,
            connection_idle_timeout: DEFAULT_CONNECTION_IDLE_TIMEOUT,
            http2_keepalive_interval: DEFAULT_HTTP2_KEEPALIVE_INTERVAL,
            tcp_keepalive: DEFAULT_TCP_KEEPALIVE,
        }
    }
}

/// The flags and variables of [`ServerLimits`].
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Open connections; at the cap the server stops accepting until one
    /// closes. From 3/4 of it, idle connections are reclaimed, longest idle first.
    #[arg(long, env = ENV_MAX_CONNECTIONS, value_name = ENV_MAX_CONNECTIONS,
          default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Requests in flight (health checks excepted); beyond it requests are
    /// shed at once: 503 with Retry-After, or RESOURCE_EXHAUSTED.
    #[arg(long, env = ENV_MAX_CONCURRENT_REQUESTS, value_name = ENV_MAX_CONCURRENT_REQUESTS,
          default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_requests: u32,
    /// Requests being handled at which connections stop reading more (after
    /// their first request) until some finish: backpressure at no CPU cost.
    #[arg(long, env = ENV_READ_GATE_REQUESTS, value_name = ENV_READ_GATE_REQUESTS,
          default_value_t = DEFAULT_READ_GATE_REQUESTS, value_parser = clap::value_parser!(u32).range(1..))]
    pub read_gate_requests: u32,
    /// Open WatchStatus streams in the process; beyond: RESOURCE_EXHAUSTED.
    #[arg(long, env = ENV_MAX_WATCH_STREAMS, value_name = ENV_MAX_WATCH_STREAMS,
          default_value_t = DEFAULT_MAX_WATCH_STREAMS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_watch_streams: u32,
    /// Concurrent streams per HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    #[arg(long, env = ENV_HTTP2_MAX_CONCURRENT_STREAMS, value_name = ENV_HTTP2_MAX_CONCURRENT_STREAMS,
          default_value_t = DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS, value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_concurrent_streams: u32,
    /// Largest request head in bytes, HTTP/1.1 and HTTP/2 (1024 to 1048576).
    #[arg(long, env = ENV_MAX_HEADER_LIST_SIZE, value_name = ENV_MAX_HEADER_LIST_SIZE,
          default_value_t = DEFAULT_MAX_HEADER_LIST_SIZE, value_parser = clap::value_parser!(u32).range(1024..=1024 * 1024))]
    pub max_header_list_size: u32,
    /// Bound on a unary request (REST, or gRPC without a shorter grpc-timeout):
    /// DEADLINE_EXCEEDED / 504 when it expires.
    #[arg(long, env = ENV_REQUEST_TIMEOUT, value_name = ENV_REQUEST_TIMEOUT,
          default_value_t = DEFAULT_REQUEST_TIMEOUT.into(), value_parser = parse_humantime)]
    pub request_timeout: humantime::Duration,
    /// Time to send a whole request head from its first byte (HTTP/2: the
    /// preface and SETTINGS, then each header block); then the connection closes.
    #[arg(long, env = ENV_HEADER_READ_TIMEOUT, value_name = ENV_HEADER_READ_TIMEOUT,
          default_value_t = DEFAULT_HEADER_READ_TIMEOUT.into(), value_parser = parse_humantime)]
    pub header_read_timeout: humantime::Duration,
    /// A new connection that sends nothing for this long is closed.
    #[arg(long, env = ENV_FIRST_BYTE_TIMEOUT, value_name = ENV_FIRST_BYTE_TIMEOUT,
          default_value_t = DEFAULT_FIRST_BYTE_TIMEOUT.into(), value_parser = parse_humantime)]
    pub first_byte_timeout: humantime::Duration,
    /// A connection with no request in flight for this long is closed
    /// gracefully; keep it above the proxy's idle timeout (Service Connect: 5m).
    #[arg(long, env = ENV_CONNECTION_IDLE_TIMEOUT, value_name = ENV_CONNECTION_IDLE_TIMEOUT,
          default_value_t = DEFAULT_CONNECTION_IDLE_TIMEOUT.into(), value_parser = parse_humantime)]
    pub connection_idle_timeout: humantime::Duration,
    /// HTTP/2 PING interval on each connection; no answer within as long closes it (at least 1s).
    #[arg(long, env = ENV_HTTP2_KEEPALIVE_INTERVAL, value_name = ENV_HTTP2_KEEPALIVE_INTERVAL,
          default_value_t = DEFAULT_HTTP2_KEEPALIVE_INTERVAL.into(),
          value_parser = humantime_in(MIN_KEEPALIVE_INTERVAL, MAX_DURATION))]
    pub http2_keepalive_interval: humantime::Duration,
    /// TCP keepalive idle time on accepted connections (1s to 32767s, Linux's bound).
    #[arg(long, env = ENV_TCP_KEEPALIVE, value_name = ENV_TCP_KEEPALIVE,
          default_value_t = DEFAULT_TCP_KEEPALIVE.into(),
          value_parser = humantime_in(Duration::from_secs(1), MAX_TCP_KEEPALIVE))]
    pub tcp_keepalive: humantime::Duration,
}

impl LimitArgs {
    pub(crate) fn limits(&self) -> ServerLimits {
        ServerLimits {
            max_connections: self.max_connections,
            max_concurrent_requests: self.max_concurrent_requests,
            read_gate_requests: self.read_gate_requests,
            max_watch_streams: self.max_watch_streams,
            http2_max_concurrent_streams: self.http2_max_concurrent_streams,
            max_header_list_size: self.max_header_list_size,
            request_timeout: self.request_timeout.into(),
            header_read_timeout: self.header_read_timeout.into(),
            first_byte_timeout: self.first_byte_timeout.into(),
            connection_idle_timeout: self.connection_idle_timeout.into(),
            http2_keepalive_interval: self.http2_keepalive_interval.into(),
            tcp_keepalive: self.tcp_keepalive.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Only {
        #[command(flatten)]
        limits: LimitArgs,
    }

    fn parse(args: &[&str]) -> Result<ServerLimits, clap::Error> {
        Only::try_parse_from(std::iter::once("limits").chain(args.iter().copied()))
            .map(|only| only.limits.limits())
    }

    #[test]
    fn clap_defaults_are_the_typed_defaults() {
        // Unless the environment running the test sets one of them.
        if std::env::vars().any(|(name, _)| {
            [
                ENV_MAX_CONNECTIONS,
                ENV_REQUEST_TIMEOUT,
                ENV_CONNECTION_IDLE_TIMEOUT,
            ]
            .contains(&name.as_str())
        }) {
            return;
        }
        assert_eq!(parse(&[]).expect("defaults parse"), ServerLimits::default());
    }

    #[test]
    fn values_are_parsed_and_bounded() {
        let limits = parse(&[
            "--max-watch-streams",
            "7",
            "--request-timeout",
            "250ms",
            "--max-header-list-size",
            "4096",
            "--read-gate-requests",
            "64",
        ])
        .expect("valid");
        assert_eq!(limits.max_watch_streams, 7);
        assert_eq!(limits.request_timeout, Duration::from_millis(250));
        assert_eq!(limits.max_header_list_size, 4096);
        assert_eq!(limits.read_gate_requests, 64);
        for bad in [
            &["--max-connections", "0"][..],
            &["--read-gate-requests", "0"],
            &["--max-header-list-size", "100"],
            &["--max-header-list-size", "99999999"],
            &["--request-timeout", "0s"],
            &["--first-byte-timeout", "soon"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
