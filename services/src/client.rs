//! The binary's client commands: `healthcheck` (the container health check)
//! and `status` (a GetStatus client that needs no grpcurl or .proto files).

use std::time::Duration;

use status_api::v1::{
    GetStatusRequest, GetStatusResponse, status_service_client::StatusServiceClient,
};
use tonic::transport::Endpoint;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid address {0:?}: use host:port or http://host:port")]
    Address(String),
    #[error(
        "{0:?}: https is not supported (this client speaks plaintext h2c and would send it unencrypted); use http://host:port"
    )]
    Tls(String),
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: tonic::transport::Error,
    },
    #[error("{address} answered {code:?}: {message}")]
    Call {
        address: String,
        code: tonic::Code,
        message: String,
    },
}

/// `http://` is implied: Service Connect and loopback are plaintext h2c.
/// tonic is built without TLS, so an https URL would go out in plaintext:
/// refused.
fn endpoint(address: &str, timeout: Duration) -> Result<Endpoint, ClientError> {
    if address
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    {
        return Err(ClientError::Tls(address.to_owned()));
    }
    let url = if address.contains("://") {
        address.to_owned()
    } else {
        format!("http://{address}")
    };
    Ok(Endpoint::from_shared(url)
        .map_err(|_| ClientError::Address(address.to_owned()))?
        .connect_timeout(timeout)
        .timeout(timeout))
}

async fn connect(
    address: &str,
    timeout: Duration,
) -> Result<tonic::transport::Channel, ClientError> {
    endpoint(address, timeout)?
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            address: address.to_owned(),
            source,
        })
}

fn call_error(address: &str, status: tonic::Status) -> ClientError {
    ClientError::Call {
        address: address.to_owned(),
        code: status.code(),
        message: status.message().to_owned(),
    }
}

/// The gRPC health of the whole server at `address` ("" service).
pub async fn check_health(address: &str, timeout: Duration) -> Result<ServingStatus, ClientError> {
    let mut client = HealthClient::new(connect(address, timeout).await?);
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|status| call_error(address, status))?;
    Ok(response.into_inner().status())
}

/// The status of the service at `address`.
pub async fn get_status(
    address: &str,
    timeout: Duration,
) -> Result<GetStatusResponse, ClientError> {
    let mut client = StatusServiceClient::new(connect(address, timeout).await?);
    let response = client
        .get_status(GetStatusRequest {})
        .await
        .map_err(|status| call_error(address, status))?;
    Ok(response.into_inner())
}
