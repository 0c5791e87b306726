//! The client side of service-to-service calls.
//!
//! One tonic `Channel` per peer, created lazily: start-up never waits for the
//! peer, and the one HTTP/2 connection is shared by all requests (Service
//! Connect's proxy balances each request, since the port's appProtocol is
//! grpc). tonic reconnects by itself when the peer restarts.

use std::time::{Duration, Instant};

use status_api::v1::{
    GetPeerStatusResponse, GetStatusRequest, status_service_client::StatusServiceClient,
};
use tonic::{
    Code, Status,
    metadata::MetadataMap,
    transport::{Channel, Endpoint},
};

use crate::{access_log::REQUEST_ID_HEADER, config::PeerSettings};

#[derive(Debug, Clone)]
pub struct PeerClient {
    client: StatusServiceClient<Channel>,
    /// As configured, for messages and for `GetPeerStatusResponse.peer_address`.
    address: String,
    request_timeout: Duration,
}

impl PeerClient {
    pub fn new(settings: &PeerSettings) -> Self {
        let endpoint = Endpoint::from(settings.url.uri().clone())
            .connect_timeout(settings.connect_timeout)
            .http2_keep_alive_interval(settings.keepalive_interval)
            .keep_alive_timeout(settings.keepalive_interval)
            .tcp_nodelay(true);
        Self {
            client: StatusServiceClient::new(endpoint.connect_lazy()),
            address: settings.url.to_string(),
            request_timeout: settings.request_timeout,
        }
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Calls the peer's `GetStatus`, passing on the caller's request id and
    /// deadline (capped by our own per-call timeout).
    pub async fn get_status(&self, caller: &MetadataMap) -> Result<GetPeerStatusResponse, Status> {
        let deadline =
            caller_deadline(caller).map_or(self.request_timeout, |d| d.min(self.request_timeout));
        let mut request = tonic::Request::new(GetStatusRequest {});
        request.set_timeout(deadline);
        if let Some(id) = caller.get(REQUEST_ID_HEADER) {
            request.metadata_mut().insert(REQUEST_ID_HEADER, id.clone());
        }
        let started = Instant::now();
        let response = self
            .client
            .clone()
            .get_status(request)
            .await
            .map_err(|status| self.describe_failure(&status, deadline))?;
        Ok(GetPeerStatusResponse {
            status: response.into_inner().status,
            peer_address: self.address.clone(),
            latency: Some(started.elapsed().into()),
        })
    }

    /// A status that names the peer and the cause. tonic reports its own
    /// client-side timeout as CANCELLED ("Timeout expired"): that is the
    /// peer missing its deadline, so it becomes DEADLINE_EXCEEDED.
    fn describe_failure(&self, status: &Status, deadline: Duration) -> Status {
        let peer = &self.address;
        if is_timeout(status) {
            return Status::deadline_exceeded(format!(
                "peer {peer} did not answer within {}",
                humantime::format_duration(deadline)
            ));
        }
        let cause = error_chain(status);
        match status.code() {
            Code::Unavailable => {
                Status::unavailable(format!("peer {peer} is unavailable: {cause}"))
            }
            code => Status::new(code, format!("peer {peer} failed: {cause}")),
        }
    }
}

fn is_timeout(status: &Status) -> bool {
    status.code() == Code::DeadlineExceeded
        || (status.code() == Code::Cancelled
            && sources(status).any(|error| error.is::<tonic::TimeoutExpired>()))
}

/// The status message followed by its sources ("tcp connect error: Connection refused").
fn error_chain(status: &Status) -> String {
    let mut text = status.message().to_owned();
    for error in sources(status) {
        let part = error.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

/// The errors behind a status, outermost first.
fn sources(status: &Status) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(status), |error| error.source())
}

/// The deadline the caller gave us, from its `grpc-timeout` header
/// (`<digits><unit>`, unit one of H M S m u n).
pub fn caller_deadline(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", value.parse().expect("ascii"));
        metadata
    }

    #[test]
    fn reads_grpc_timeout_in_every_unit() {
        for (value, expected) in [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("4S", Duration::from_secs(4)),
            ("250m", Duration::from_millis(250)),
            ("99u", Duration::from_micros(99)),
            ("7n", Duration::from_nanos(7)),
        ] {
            assert_eq!(
                caller_deadline(&with_timeout(value)),
                Some(expected),
                "{value}"
            );
        }
        for bad in ["", "S", "10", "10x", "-1S", "99999999999999999999H"] {
            assert_eq!(caller_deadline(&with_timeout(bad)), None, "{bad}");
        }
        assert_eq!(caller_deadline(&MetadataMap::new()), None);
    }
}
