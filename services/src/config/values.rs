//! Typed configuration values and their parsers: each turns an environment
//! variable's text into a value the service can use, or into a
//! [`ConfigError`] that says what a valid value looks like.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use super::{
    ENV_MAX_PEER_CALLS, ENV_PEER_DEADLINE_MARGIN, ENV_PEER_URL, ENV_SERVER_PORT, ENV_SERVICE_NAME,
    MIN_METRICS_INTERVAL,
    limits::{ENV_HTTP2_MAX_CONCURRENT_STREAMS, ENV_REQUEST_TIMEOUT},
};

/// Longest duration any setting takes: beyond every sane timeout or
/// interval, and small enough that adding it to the clock never overflows
/// (a duration of centuries parsed fine and then panicked on every request).
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);
/// Shortest HTTP/2 keepalive interval, which is also the time a PING has to
/// be answered: below it a busy but healthy connection would be dropped.
pub const MIN_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Linux takes TCP keepalive idle times in whole seconds up to 32,767
/// (`TCP_KEEPIDLE`); beyond it the option fails and the default stays.
pub const MAX_TCP_KEEPALIVE: Duration = Duration::from_secs(32_767);
/// Shortest EMF interval: CloudWatch's finest (high-resolution) period.
pub const MIN_EMF_INTERVAL: Duration = Duration::from_secs(1);

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("must be a port number from 1 to 65535")]
    Port,
    #[error(
        "must be 1 to 63 lowercase letters, digits or '-', starting with a letter (it is a URL path segment)"
    )]
    ServiceName,
    #[error("must be an http:// URL with a host and no path, like http://service-b-sc:8202")]
    PeerUrl,
    #[error(
        "must be an http:// URL: this service speaks plaintext h2c to its peer (Service Connect's proxy adds TLS between tasks), so https:// would not be encrypted"
    )]
    PeerUrlTls,
    #[error(
        "must be 1 to 255 letters, digits or . - _ / # : (a CloudWatch namespace, not starting with AWS/)"
    )]
    Namespace,
    #[error("must be a duration like 500ms, 2s or 1m")]
    Duration,
    #[error("must be more than 0")]
    ZeroDuration,
    #[error("must be at least {}", humantime::format_duration(*.0))]
    DurationTooShort(Duration),
    #[error("must be at most {}", show_bound(*.0))]
    DurationTooLong(Duration),
    #[error("must be 0s (off) or at least {}", humantime::format_duration(*.0))]
    DurationOffOrAtLeast(Duration),
    #[error(
        "{ENV_PEER_DEADLINE_MARGIN}={} must be less than half of {ENV_REQUEST_TIMEOUT}={}: it is taken off each request's deadline before the peer call",
        humantime::format_duration(*.margin),
        humantime::format_duration(*.request_timeout)
    )]
    MarginTooLong {
        margin: Duration,
        request_timeout: Duration,
    },
    #[error(
        "{ENV_MAX_PEER_CALLS}={max_peer_calls} must be at most {ENV_HTTP2_MAX_CONCURRENT_STREAMS}={streams}: a peer running this service with the same settings takes no more streams on the one connection, and calls beyond would wait inside the HTTP/2 client until DEADLINE_EXCEEDED"
    )]
    TooManyPeerCalls { max_peer_calls: u32, streams: u32 },
    #[error("{ENV_SERVER_PORT} is required: {ENV_SERVICE_NAME}={0} has no default port")]
    NoDefaultPort(ServiceName),
    #[error("{ENV_PEER_URL} is required: {ENV_SERVICE_NAME}={0} has no default peer")]
    NoDefaultPeer(ServiceName),
}

/// A bound as people write it: "1day", or "32767s" where humantime would
/// say "9h 6m 7s".
fn show_bound(bound: Duration) -> String {
    if bound.subsec_nanos() == 0 && !bound.as_secs().is_multiple_of(60) {
        format!("{}s", bound.as_secs())
    } else {
        humantime::format_duration(bound).to_string()
    }
}

/// A service name: a DNS-label-like string, since it is a URL path segment
/// and, on ECS, part of Service Connect names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceName(pub(super) String);

impl ServiceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceName {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let valid = (1..=63).contains(&value.len())
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Self(value.to_owned()))
        } else {
            Err(ConfigError::ServiceName)
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The peer's gRPC base URL: http, a host, an optional port, no path.
/// Not https: tonic is built without TLS here, and would send plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUrl(http::Uri);

impl PeerUrl {
    pub fn uri(&self) -> &http::Uri {
        &self.0
    }
}

impl FromStr for PeerUrl {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let uri: http::Uri = value.parse().map_err(|_| ConfigError::PeerUrl)?;
        if uri.scheme_str() == Some("https") {
            return Err(ConfigError::PeerUrlTls);
        }
        let scheme_ok = uri.scheme_str() == Some("http");
        let host_ok = uri.host().is_some_and(|h| !h.is_empty());
        let no_path = matches!(uri.path(), "" | "/") && uri.query().is_none();
        if scheme_ok && host_ok && no_path {
            Ok(Self(uri))
        } else {
            Err(ConfigError::PeerUrl)
        }
    }
}

impl fmt::Display for PeerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // http::Uri prints a bare authority URL with a trailing '/'; peers are
        // named without it ("http://service-b-sc:8202").
        let text = self.0.to_string();
        f.write_str(text.strip_suffix('/').unwrap_or(&text))
    }
}

impl PeerUrl {
    /// `http://{address}`, for peers on this machine.
    pub fn loopback(address: SocketAddr) -> Self {
        // A SocketAddr always forms a valid authority (IPv6 in brackets).
        Self(
            http::Uri::builder()
                .scheme("http")
                .authority(address.to_string())
                .path_and_query("/")
                .build()
                .unwrap_or_default(),
        )
    }
}

pub(crate) fn parse_port(value: &str) -> Result<u16, ConfigError> {
    match value.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(ConfigError::Port),
    }
}

/// A duration from 0 to [`MAX_DURATION`].
pub(crate) fn parse_duration(value: &str) -> Result<Duration, ConfigError> {
    match humantime::parse_duration(value).map_err(|_| ConfigError::Duration)? {
        long if long > MAX_DURATION => Err(ConfigError::DurationTooLong(MAX_DURATION)),
        duration => Ok(duration),
    }
}

/// A duration above 0, up to [`MAX_DURATION`].
pub(crate) fn parse_positive_duration(value: &str) -> Result<Duration, ConfigError> {
    match parse_duration(value)? {
        Duration::ZERO => Err(ConfigError::ZeroDuration),
        duration => Ok(duration),
    }
}

/// A clap parser for durations from `min` to `max` (both at most
/// [`MAX_DURATION`]).
pub(crate) fn duration_in(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<Duration, ConfigError> + Clone + Send + Sync + 'static {
    move |value| match parse_positive_duration(value)? {
        short if short < min => Err(ConfigError::DurationTooShort(min)),
        long if long > max => Err(ConfigError::DurationTooLong(max)),
        duration => Ok(duration),
    }
}

/// [`duration_in`], kept as `humantime::Duration` for clap's typed defaults.
pub(crate) fn humantime_in(
    min: Duration,
    max: Duration,
) -> impl Fn(&str) -> Result<humantime::Duration, ConfigError> + Clone + Send + Sync + 'static {
    let parse = duration_in(min, max);
    move |value| parse(value).map(Into::into)
}

/// The EMF interval: 0s (no EMF lines) or [`MIN_EMF_INTERVAL`] to [`MAX_DURATION`].
pub(crate) fn parse_emf_interval(value: &str) -> Result<Duration, ConfigError> {
    match parse_duration(value)? {
        Duration::ZERO => Ok(Duration::ZERO),
        short if short < MIN_EMF_INTERVAL => {
            Err(ConfigError::DurationOffOrAtLeast(MIN_EMF_INTERVAL))
        }
        duration => Ok(duration),
    }
}

pub(crate) fn parse_namespace(value: &str) -> Result<String, ConfigError> {
    let valid = (1..=255).contains(&value.len())
        && !value.starts_with("AWS/")
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_/#:".contains(c));
    if valid {
        Ok(value.to_owned())
    } else {
        Err(ConfigError::Namespace)
    }
}

/// A positive duration up to [`MAX_DURATION`], kept as `humantime::Duration`
/// so clap can print typed defaults ("30s") in `--help`.
pub(crate) fn parse_humantime(value: &str) -> Result<humantime::Duration, ConfigError> {
    parse_positive_duration(value).map(Into::into)
}

pub(crate) fn parse_metrics_interval(value: &str) -> Result<Duration, ConfigError> {
    match parse_duration(value)? {
        short if short < MIN_METRICS_INTERVAL => {
            Err(ConfigError::DurationTooShort(MIN_METRICS_INTERVAL))
        }
        duration => Ok(duration),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_url_needs_http_scheme_host_and_no_path() {
        for good in ["http://service-b-sc:8202", "http://[::1]:8202/"] {
            assert!(good.parse::<PeerUrl>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "service-b-sc:8202",
            "grpc://x:1",
            "http://x:1/status",
            "http://x?q=1",
            "http:///",
        ] {
            assert_eq!(bad.parse::<PeerUrl>(), Err(ConfigError::PeerUrl), "{bad}");
        }
        // tonic has no TLS here: https would be sent as plaintext.
        assert_eq!(
            "https://peer.example".parse::<PeerUrl>(),
            Err(ConfigError::PeerUrlTls)
        );
        assert_eq!(
            "http://b:8202".parse::<PeerUrl>().unwrap().to_string(),
            "http://b:8202"
        );
    }

    #[test]
    fn durations_are_bounded() {
        let keepalive = duration_in(MIN_KEEPALIVE_INTERVAL, MAX_DURATION);
        let tcp = duration_in(Duration::from_secs(1), MAX_TCP_KEEPALIVE);
        for (parsed, expected) in [
            (parse_duration("0s"), Ok(Duration::ZERO)),
            (parse_duration("24h"), Ok(MAX_DURATION)),
            (
                parse_duration("300000000000y"),
                Err(ConfigError::DurationTooLong(MAX_DURATION)),
            ),
            (
                parse_duration("25h"),
                Err(ConfigError::DurationTooLong(MAX_DURATION)),
            ),
            (
                parse_positive_duration("0s"),
                Err(ConfigError::ZeroDuration),
            ),
            (
                keepalive("1ms"),
                Err(ConfigError::DurationTooShort(MIN_KEEPALIVE_INTERVAL)),
            ),
            (keepalive("1s"), Ok(Duration::from_secs(1))),
            (
                keepalive("9999999999s"),
                Err(ConfigError::DurationTooLong(MAX_DURATION)),
            ),
            (tcp("32767s"), Ok(MAX_TCP_KEEPALIVE)),
            (
                tcp("32768s"),
                Err(ConfigError::DurationTooLong(MAX_TCP_KEEPALIVE)),
            ),
            (parse_emf_interval("0s"), Ok(Duration::ZERO)),
            (
                parse_emf_interval("1ns"),
                Err(ConfigError::DurationOffOrAtLeast(MIN_EMF_INTERVAL)),
            ),
            (parse_emf_interval("1s"), Ok(MIN_EMF_INTERVAL)),
        ] {
            assert_eq!(parsed, expected);
        }
    }

    #[test]
    fn service_names_are_path_safe() {
        for bad in ["", "Service-A", "a/b", "-a", "1a", &"a".repeat(64)] {
            assert!(bad.parse::<ServiceName>().is_err(), "{bad}");
        }
        assert!("service-a".parse::<ServiceName>().is_ok());
    }
}
