//! Every rpc, called with generated clients, on both services.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::time::Duration;

use common::TestPair;
use status_api::v1::{
    GetPeerStatusRequest, GetStatusRequest, WatchStatusRequest, service_status::State,
};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn get_status_and_get_peer_status_in_both_directions() {
    let pair = TestPair::start().await;
    for (service, peer) in [(&pair.a, &pair.b), (&pair.b, &pair.a)] {
        let mut client = service.grpc().await;
        let own = client
            .get_status(GetStatusRequest {})
            .await
            .expect("GetStatus")
            .into_inner();
        let own = own.status.expect("status");
        assert_eq!(own.service, service.name);
        assert_eq!(own.state(), State::Running);
        assert_eq!(own.version, env!("CARGO_PKG_VERSION"));
        assert!(own.memory_total_bytes > 0 && own.process_memory_bytes > 0);
        assert!(own.start_time.is_some() && own.sample_time.is_some() && own.uptime.is_some());
        assert!(own.ecs_task.is_none(), "not on ECS: absent, not faked");

        let via_peer = client
            .get_peer_status(GetPeerStatusRequest {})
            .await
            .expect("GetPeerStatus")
            .into_inner();
        assert_eq!(via_peer.status.expect("peer status").service, peer.name);
        assert_eq!(via_peer.peer_address, peer.url());
        assert!(via_peer.latency.is_some());
    }
}

#[tokio::test]
async fn watch_status_streams_at_the_requested_interval() {
    let pair = TestPair::start().await;
    let started = tokio::time::Instant::now();
    let mut stream = pair.b.watch(Duration::from_millis(100)).await;
    for _ in 0..3 {
        let message = stream
            .next()
            .await
            .expect("a message")
            .expect("not an error");
        assert_eq!(message.status.expect("status").service, "service-b");
    }
    // The first message comes at once, the next two 100 ms apart.
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn watch_status_rejects_an_out_of_range_interval() {
    let pair = TestPair::start().await;
    let request = WatchStatusRequest {
        interval: Some(Duration::from_millis(1).into()),
    };
    let error = pair
        .a
        .grpc()
        .await
        .watch_status(request)
        .await
        .expect_err("1ms is too fast");
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn health_check_for_the_server_and_the_status_service() {
    let pair = TestPair::start().await;
    let mut health = HealthClient::new(common::channel(pair.a.address).await);
    for service in ["", "scdemo.status.v1.StatusService"] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        let status = health
            .check(request)
            .await
            .expect("Check")
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn unknown_rpc_is_unimplemented() {
    let pair = TestPair::start().await;
    let mut client = tonic::client::Grpc::new(common::channel(pair.a.address).await);
    client.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/scdemo.status.v1.StatusService/NoSuchRpc");
    let codec = tonic_prost::ProstCodec::<GetStatusRequest, GetStatusRequest>::default();
    let error = client
        .unary(tonic::Request::new(GetStatusRequest {}), path, codec)
        .await
        .expect_err("no such rpc");
    assert_eq!(error.code(), Code::Unimplemented);
}

mod reflection {
    use super::*;
    use tonic_reflection::pb::{v1, v1alpha};

    const EXPECTED: [&str; 4] = [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "scdemo.status.v1.StatusService",
    ];

    #[tokio::test]
    async fn v1_lists_every_service_and_describes_health() {
        let pair = TestPair::start().await;
        let mut client = v1::server_reflection_client::ServerReflectionClient::new(
            common::channel(pair.a.address).await,
        );
        let ask = |request| v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        };
        let requests = [
            ask(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
            ask(
                v1::server_reflection_request::MessageRequest::FileContainingSymbol(
                    "grpc.health.v1.Health".into(),
                ),
            ),
        ];
        let mut answers = client
            .server_reflection_info(tokio_stream::iter(requests))
            .await
            .expect("stream")
            .into_inner();

        let listed = answers
            .next()
            .await
            .expect("answer")
            .expect("ok")
            .message_response;
        let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            listed
        else {
            panic!("not a service list: {listed:?}");
        };
        let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        assert_eq!(names, EXPECTED);

        let described = answers
            .next()
            .await
            .expect("answer")
            .expect("ok")
            .message_response;
        let Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) =
            described
        else {
            panic!("health is not described: {described:?}");
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }

    #[tokio::test]
    async fn v1alpha_lists_every_service() {
        let pair = TestPair::start().await;
        let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(
            common::channel(pair.b.address).await,
        );
        let request = v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
            ),
        };
        let mut answers = client
            .server_reflection_info(tokio_stream::once(request))
            .await
            .expect("stream")
            .into_inner();
        let listed = answers
            .next()
            .await
            .expect("answer")
            .expect("ok")
            .message_response;
        let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
            listed
        else {
            panic!("not a service list: {listed:?}");
        };
        let mut names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        assert_eq!(names, EXPECTED);
    }
}
