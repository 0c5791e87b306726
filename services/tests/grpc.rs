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

/// What one caller can make the server hold: small messages only, and
/// long-lived streams within `MAX_WATCH_STREAMS`, ended at stop.
mod limits {
    use std::{convert::Infallible, io::Write, net::SocketAddr};

    use http::{HeaderMap, Request};
    use http_body_util::{BodyExt, StreamBody};
    use hyper::body::{Bytes, Frame};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use status_services::http::MAX_REQUEST_MESSAGE_BYTES;
    use tonic_reflection::pb::v1;

    use super::*;

    const GET_STATUS: &str = "/scdemo.status.v1.StatusService/GetStatus";

    /// Sends `first` as the start of a gRPC request body that then stays
    /// open, and returns the call's status (head or trailers).
    async fn status_of_open_call(
        address: SocketAddr,
        first: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> HeaderMap {
        let stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let body = tokio_stream::iter([Ok::<_, Infallible>(Frame::data(Bytes::from(first)))])
            .chain(tokio_stream::pending());
        let mut request = Request::post(format!("http://{address}{GET_STATUS}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = sender
            .send_request(request.body(StreamBody::new(body)).unwrap())
            .await
            .unwrap();
        if response.headers().contains_key("grpc-status") {
            return response.headers().clone();
        }
        let collected = response.into_body().collect().await.unwrap();
        collected.trailers().cloned().unwrap_or_default()
    }

    fn frame(compressed: bool, declared: usize, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![u8::from(compressed)];
        frame.extend_from_slice(&u32::try_from(declared).unwrap().to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    #[tokio::test]
    async fn a_large_message_is_refused_at_once_and_not_buffered() {
        let pair = TestPair::start().await;
        // A 1 MiB message of which 1 KiB is sent: the server must answer
        // without waiting for (and holding) the rest.
        let first = frame(false, 1 << 20, &[0; 1024]);
        let trailers = tokio::time::timeout(
            Duration::from_secs(5),
            status_of_open_call(pair.a.address, first, &[]),
        )
        .await
        .expect("answered before the message was complete");
        assert_eq!(
            trailers["grpc-status"], "8",
            "RESOURCE_EXHAUSTED: {trailers:?}"
        );

        // Just over the limit is refused too; at the limit the message is
        // read (and, being garbage, fails to decode: not RESOURCE_EXHAUSTED).
        let over = frame(false, MAX_REQUEST_MESSAGE_BYTES + 1, &[]);
        let trailers = status_of_open_call(pair.a.address, over, &[]).await;
        assert_eq!(trailers["grpc-status"], "8", "{trailers:?}");

        // A gzip bomb: 14 KiB compressed, 8 MiB once inflated.
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = gzip.finish().unwrap();
        assert!(bomb.len() > MAX_REQUEST_MESSAGE_BYTES, "{}", bomb.len());
        let trailers = status_of_open_call(
            pair.a.address,
            frame(true, bomb.len(), &bomb),
            &[("grpc-encoding", "gzip")],
        )
        .await;
        assert_eq!(trailers["grpc-status"], "8", "{trailers:?}");
        // Small when compressed, large when inflated: tonic's own limit.
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(&vec![0u8; 1 << 20]).unwrap();
        let small_bomb = gzip.finish().unwrap();
        assert!(
            small_bomb.len() <= MAX_REQUEST_MESSAGE_BYTES,
            "{}",
            small_bomb.len()
        );
        let trailers = status_of_open_call(
            pair.a.address,
            frame(true, small_bomb.len(), &small_bomb),
            &[("grpc-encoding", "gzip")],
        )
        .await;
        assert_eq!(trailers["grpc-status"], "8", "{trailers:?}");

        // Real calls are unaffected.
        let mut client = pair.a.grpc().await;
        client
            .get_status(GetStatusRequest {})
            .await
            .expect("GetStatus");
    }

    /// A reflection stream whose client keeps its side open.
    async fn open_reflection(
        address: SocketAddr,
    ) -> Result<tonic::Streaming<v1::ServerReflectionResponse>, tonic::Status> {
        let mut client = v1::server_reflection_client::ServerReflectionClient::new(
            common::channel(address).await,
        );
        let list = v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        };
        let requests = tokio_stream::iter([list]).chain(tokio_stream::pending());
        Ok(client.server_reflection_info(requests).await?.into_inner())
    }

    async fn open_health_watch(
        address: SocketAddr,
    ) -> Result<tonic::Streaming<tonic_health::pb::HealthCheckResponse>, tonic::Status> {
        let mut health = HealthClient::new(common::channel(address).await);
        Ok(health
            .watch(HealthCheckRequest::default())
            .await?
            .into_inner())
    }

    /// The status a stream ended with, skipping its messages.
    async fn end_of<T>(stream: &mut tonic::Streaming<T>) -> Option<tonic::Status> {
        loop {
            match stream.next().await {
                Some(Ok(_)) => {}
                Some(Err(status)) => return Some(status),
                None => return None,
            }
        }
    }

    #[tokio::test]
    async fn health_watch_and_reflection_streams_end_with_unavailable_at_stop() {
        // A stop that waited for these streams would take 30 s; the test's
        // stop allows 10.
        let pair =
            TestPair::start_with(|config| config.shutdown_timeout = Duration::from_secs(30)).await;
        let mut health_watch = open_health_watch(pair.a.address).await.expect("Watch");
        assert!(health_watch.next().await.expect("first").is_ok());
        let mut reflection = open_reflection(pair.a.address).await.expect("reflection");
        assert!(reflection.next().await.expect("first").is_ok());

        pair.a.stop().await;

        for (rpc, ended) in [
            ("Health/Watch", end_of(&mut health_watch).await),
            ("reflection", end_of(&mut reflection).await),
        ] {
            let ended = ended.unwrap_or_else(|| panic!("{rpc} ended without a status"));
            assert_eq!(ended.code(), Code::Unavailable, "{rpc}: {ended:?}");
        }
    }

    #[tokio::test]
    async fn every_long_lived_stream_counts_against_max_watch_streams() {
        let pair = TestPair::start_with(|config| config.limits.max_watch_streams = 1).await;
        let address = pair.b.address;
        let mut held = open_health_watch(address).await.expect("the one slot");
        assert!(held.next().await.expect("first").is_ok());

        let refused = [
            (
                "WatchStatus",
                pair.b
                    .grpc()
                    .await
                    .watch_status(WatchStatusRequest::default())
                    .await
                    .err(),
            ),
            ("Health/Watch", open_health_watch(address).await.err()),
            ("reflection", open_reflection(address).await.err()),
        ];
        for (rpc, error) in refused {
            let error = error.unwrap_or_else(|| panic!("{rpc} was not refused"));
            assert_eq!(error.code(), Code::ResourceExhausted, "{rpc}: {error:?}");
        }
        // Unary calls are not streams.
        let mut health = HealthClient::new(common::channel(address).await);
        health
            .check(HealthCheckRequest::default())
            .await
            .expect("Check");

        // The slot is free again once the stream ends.
        drop(held);
        let mut again = None;
        for _ in 0..100 {
            if let Ok(stream) = open_reflection(address).await {
                again = Some(stream);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(again.is_some(), "the slot was never released");
    }
}
