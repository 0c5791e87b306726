//! gRPC compression: clients that send gzip or zstd requests and ask for
//! compressed answers get them (grpc-go, grpc-java and grpcio clients turn
//! this on with one setting; without it they got UNIMPLEMENTED).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::time::Duration;

use common::{TestPair, channel};
use status_api::v1::{
    GetStatusRequest, WatchStatusRequest, status_service_client::StatusServiceClient,
};
use tokio_stream::StreamExt;
use tonic::codec::CompressionEncoding;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const ENCODINGS: [(CompressionEncoding, &str); 2] = [
    (CompressionEncoding::Gzip, "gzip"),
    (CompressionEncoding::Zstd, "zstd"),
];

#[tokio::test]
async fn compressed_calls_get_compressed_answers() {
    let pair = TestPair::start().await;
    for (encoding, name) in ENCODINGS {
        let mut client = StatusServiceClient::new(channel(pair.a.address).await)
            .send_compressed(encoding)
            .accept_compressed(encoding);

        let answer = client
            .get_status(GetStatusRequest {})
            .await
            .expect("GetStatus");
        assert_eq!(
            answer
                .metadata()
                .get("grpc-encoding")
                .map(|v| v.to_str().unwrap()),
            Some(name)
        );
        assert_eq!(
            answer.into_inner().status.expect("status").service,
            "service-a"
        );

        let request = WatchStatusRequest {
            interval: Some(Duration::from_millis(100).into()),
        };
        let stream = client.watch_status(request).await.expect("WatchStatus");
        assert_eq!(
            stream
                .metadata()
                .get("grpc-encoding")
                .map(|v| v.to_str().unwrap()),
            Some(name)
        );
        let messages: Vec<_> = stream.into_inner().take(2).collect().await;
        assert!(messages.iter().all(Result::is_ok), "{name}: {messages:?}");
        assert_eq!(messages.len(), 2);

        let mut health = HealthClient::new(channel(pair.a.address).await)
            .send_compressed(encoding)
            .accept_compressed(encoding);
        let check = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("Health/Check");
        assert_eq!(
            check
                .metadata()
                .get("grpc-encoding")
                .map(|v| v.to_str().unwrap()),
            Some(name)
        );
    }
}

/// A client that compresses its requests but accepts no compressed answer
/// (no `grpc-accept-encoding`) is served by the server that does not
/// negotiate answers: its requests are still decompressed, its answers
/// come plain.
#[tokio::test]
async fn compressed_calls_that_accept_none_get_plain_answers() {
    let pair = TestPair::start().await;
    for (encoding, name) in ENCODINGS {
        let mut client =
            StatusServiceClient::new(channel(pair.a.address).await).send_compressed(encoding);
        let answer = client
            .get_status(GetStatusRequest {})
            .await
            .unwrap_or_else(|status| panic!("{name}: GetStatus: {status:?}"));
        assert_eq!(answer.metadata().get("grpc-encoding"), None, "{name}");
        assert_eq!(
            answer.into_inner().status.expect("status").service,
            "service-a"
        );
    }
}
