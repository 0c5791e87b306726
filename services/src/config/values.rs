//! Typed configuration values and their parsers: each turns an environment
//! variable's text into a value the service can use, or into a
//! [`ConfigError`] that says what a valid value looks like.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use super::{ENV_PEER_URL, ENV_SERVER_PORT, ENV_SERVICE_NAME, MIN_METRICS_INTERVAL};

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("must be a port number from 1 to 65535")]
    Port,
    #[error(
        "must be 1 to 63 lowercase letters, digits or '-', starting with a letter (it is a URL path segment)"
    )]
    ServiceName,
    #[error(
        "must be an http:// or https:// URL with a host and no path, like http://service-b-sc:8202"
    )]
    PeerUrl,
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
    #[error("{ENV_SERVER_PORT} is required: {ENV_SERVICE_NAME}={0} has no default port")]
    NoDefaultPort(ServiceName),
    #[error("{ENV_PEER_URL} is required: {ENV_SERVICE_NAME}={0} has no default peer")]
    NoDefaultPeer(ServiceName),
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

/// The peer's gRPC base URL: http(s), a host, an optional port, no path.
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
        let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
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

pub(crate) fn parse_duration(value: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(value).map_err(|_| ConfigError::Duration)
}

pub(crate) fn parse_positive_duration(value: &str) -> Result<Duration, ConfigError> {
    match parse_duration(value)? {
        Duration::ZERO => Err(ConfigError::ZeroDuration),
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

/// A positive duration, kept as `humantime::Duration` so clap can print
/// typed defaults ("30s") in `--help`.
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
        for good in [
            "http://service-b-sc:8202",
            "https://peer.example",
            "http://[::1]:8202/",
        ] {
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
        assert_eq!(
            "http://b:8202".parse::<PeerUrl>().unwrap().to_string(),
            "http://b:8202"
        );
    }

    #[test]
    fn service_names_are_path_safe() {
        for bad in ["", "Service-A", "a/b", "-a", "1a", &"a".repeat(64)] {
            assert!(bad.parse::<ServiceName>().is_err(), "{bad}");
        }
        assert!("service-a".parse::<ServiceName>().is_ok());
    }
}
