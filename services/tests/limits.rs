//! Each server limit, shown working on a real server: WatchStatus streams,
//! HTTP/2 streams per connection, requests in flight, request heads,
//! request deadlines, and connections that send nothing or sit idle.
//! The fault suite (`tests/faults/`) drives the same limits with floods.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::time::Duration;

use common::{
    TestService, bind, config, frozen_metrics, get, get_http1, send, start_on, start_slow_peer,
};
use http::{Method, StatusCode, Version};
use status_services::config::ServiceConfig;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::Instant,
};
use tonic::Code;

/// service-a with `adjust`ed settings, its peer answering after `peer_delay`.
async fn start(peer_delay: Duration, adjust: impl FnOnce(&mut ServiceConfig)) -> TestService {
    let peer = start_slow_peer(peer_delay).await;
    let mut settings = config("service-a", peer);
    adjust(&mut settings);
    start_on(bind().await, settings, frozen_metrics()).await
}

/// Reads until the server closes the connection; how long that took.
async fn time_until_closed(stream: &mut TcpStream, bound: Duration) -> Duration {
    let started = Instant::now();
    let mut buffer = [0u8; 1024];
    loop {
        match tokio::time::timeout(bound, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("still open after {bound:?}"),
        }
    }
}

#[tokio::test]
async fn watch_streams_beyond_max_watch_streams_are_resource_exhausted() {
    let a = start(Duration::ZERO, |c| c.limits.max_watch_streams = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(a.watch(Duration::from_millis(100)).await);
    }
    let mut client = a.grpc().await;
    let request = status_api::v1::WatchStatusRequest { interval: None };
    let refused = client
        .watch_status(request)
        .await
        .expect_err("over the cap");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // The streams within the cap go on.
    for stream in &mut open {
        assert!(stream.message().await.expect("message").is_some());
    }
    // A slot frees when a stream ends.
    drop(open.pop());
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(stream) = client.watch_status(request).await {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "the slot was not freed");
}

#[tokio::test]
async fn beyond_max_concurrent_requests_work_is_shed_but_health_answers() {
    let a = start(Duration::from_secs(2), |c| {
        c.limits.max_concurrent_requests = 2
    })
    .await;
    let busy: Vec<_> = (0..2)
        .map(|_| tokio::spawn(get_owned(a.address, "/service-a/other-status")))
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shed = get_http1(a.address, "/service-a/status").await;
    assert_eq!(shed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers["retry-after"], "1");
    let refused = a
        .grpc()
        .await
        .get_status(status_api::v1::GetStatusRequest {})
        .await
        .expect_err("shed");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert_eq!(
        get_http1(a.address, "/service-a/healthcheck").await.status,
        StatusCode::OK
    );
    for request in busy {
        // The peer is slower than our 1.5 s peer timeout.
        assert_eq!(request.await.expect("task"), StatusCode::GATEWAY_TIMEOUT);
    }
    assert_eq!(
        get_http1(a.address, "/service-a/status").await.status,
        StatusCode::OK
    );
}

/// A request refused by a limit, and what its answer must say.
struct Refused {
    case: &'static str,
    method: Method,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: StatusCode,
    grpc_status: Option<&'static str>,
}

const ORIGIN: (&str, &str) = ("origin", "https://status-page.example");

#[tokio::test]
async fn a_browser_can_read_the_refusals_of_the_limits() {
    // Refusals are answered in front of the routes; a page must still read
    // them (CORS), or it sees a network error instead of the status.
    let a = start(Duration::from_secs(2), |c| {
        c.limits.max_concurrent_requests = 1
    })
    .await;
    let busy = tokio::spawn(get_owned(a.address, "/service-a/other-status"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cases = [
        Refused {
            case: "REST",
            method: Method::GET,
            path: "/service-a/status",
            headers: &[ORIGIN],
            status: StatusCode::SERVICE_UNAVAILABLE,
            grpc_status: None,
        },
        Refused {
            case: "gRPC-Web",
            method: Method::POST,
            path: "/scdemo.status.v1.StatusService/GetStatus",
            headers: &[
                ORIGIN,
                ("content-type", "application/grpc-web+proto"),
                ("x-grpc-web", "1"),
            ],
            status: StatusCode::OK,
            grpc_status: Some("8"), // RESOURCE_EXHAUSTED
        },
        Refused {
            case: "no Origin",
            method: Method::GET,
            path: "/service-a/status",
            headers: &[],
            status: StatusCode::SERVICE_UNAVAILABLE,
            grpc_status: None,
        },
    ];
    for refused in cases {
        let case = refused.case;
        let reply = send(
            a.address,
            refused.method,
            refused.path,
            Version::HTTP_11,
            refused.headers,
        )
        .await;
        assert_eq!(reply.status, refused.status, "{case}");
        let grpc = reply
            .headers
            .get("grpc-status")
            .map(|v| v.to_str().unwrap());
        assert_eq!(grpc, refused.grpc_status, "{case}");
        let allowed = reply.headers.get("access-control-allow-origin");
        if refused.headers.contains(&ORIGIN) {
            assert_eq!(allowed.map(|v| v.to_str().unwrap()), Some("*"), "{case}");
            if refused.grpc_status.is_some() {
                let exposed = reply.headers["access-control-expose-headers"]
                    .to_str()
                    .unwrap();
                assert!(exposed.contains("grpc-status"), "{case}: {exposed}");
            }
        } else {
            assert!(allowed.is_none(), "{case}: CORS only for browsers");
        }
    }
    assert_eq!(busy.await.expect("task"), StatusCode::GATEWAY_TIMEOUT);
}

async fn get_owned(address: std::net::SocketAddr, path: &'static str) -> StatusCode {
    get_http1(address, path).await.status
}

#[tokio::test]
async fn request_timeout_bounds_a_rest_request() {
    let timeout = Duration::from_millis(300);
    let a = start(Duration::from_secs(30), |c| {
        c.limits.request_timeout = timeout
    })
    .await;
    let started = Instant::now();
    let reply = get_http1(a.address, "/service-a/other-status").await;
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        took >= timeout - Duration::from_millis(50) && took < timeout * 3,
        "{took:?}"
    );
}

#[tokio::test]
async fn a_request_head_over_max_header_list_size_is_refused_alone() {
    let a = start(Duration::ZERO, |c| {
        c.limits.max_header_list_size = 16 * 1024
    })
    .await;
    let big = "x".repeat(20 * 1024);
    let reply = get(
        a.address,
        "/service-a/status",
        Version::HTTP_11,
        &[("x-big", &big)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert_eq!(
        get_http1(a.address, "/service-a/status").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_first_byte_timeout() {
    let bound = Duration::from_millis(300);
    let a = start(Duration::ZERO, |c| c.limits.first_byte_timeout = bound).await;
    let mut silent = TcpStream::connect(a.address).await.expect("connect");
    let took = time_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(took >= bound - Duration::from_millis(50), "{took:?}");
}

#[tokio::test]
async fn idle_connections_are_closed_but_busy_ones_are_not() {
    let idle = Duration::from_millis(500);
    let a = start(Duration::ZERO, |c| c.limits.connection_idle_timeout = idle).await;

    // HTTP/2: the preface and SETTINGS, then nothing.
    let mut preface_only = TcpStream::connect(a.address).await.expect("connect");
    preface_only
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("preface");
    // HTTP/1.1: one request, then a kept-alive connection with nothing on it.
    let mut kept_alive = TcpStream::connect(a.address).await.expect("connect");
    kept_alive
        .write_all(b"GET /service-a/healthcheck HTTP/1.1\r\nhost: a\r\n\r\n")
        .await
        .expect("request");
    // A connection with a stream in flight is busy, however long it lasts.
    let mut stream = a.watch(Duration::from_millis(100)).await;

    // HTTP/1.1 closes at once; HTTP/2 sends GOAWAY and, as this client
    // never acknowledges it, closes after a grace of 2 s.
    for (connection, bound) in [
        (&mut kept_alive, idle * 4),
        (&mut preface_only, idle * 4 + Duration::from_secs(2)),
    ] {
        let took = time_until_closed(connection, Duration::from_secs(10)).await;
        assert!(took < bound, "{took:?}");
    }
    let until = Instant::now() + idle * 2;
    while Instant::now() < until {
        assert!(stream.message().await.expect("stream alive").is_some());
    }
}

#[tokio::test]
async fn http1_answers_say_connection_close_while_draining() {
    let a = start(Duration::ZERO, |c| c.drain_delay = Duration::from_secs(2)).await;
    let before = get(a.address, "/service-a/status", Version::HTTP_11, &[]).await;
    assert!(before.headers.get("connection").is_none());
    a.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = get(a.address, "/service-a/status", Version::HTTP_11, &[]).await;
    assert_eq!(
        during.status,
        StatusCode::OK,
        "still answering while draining"
    );
    assert_eq!(during.headers["connection"], "close");
    // HTTP/2 needs no such header (the stop sends GOAWAY).
    let h2 = get(a.address, "/service-a/status", Version::HTTP_2, &[]).await;
    assert!(h2.headers.get("connection").is_none());
}

#[tokio::test]
async fn http2_streams_beyond_the_limit_wait_for_a_free_one() {
    let a = start(Duration::ZERO, |c| {
        c.limits.http2_max_concurrent_streams = 2
    })
    .await;
    // One connection (one tonic channel): the client queues the third
    // stream until the server allows it, rather than being refused.
    let channel = common::channel(a.address).await;
    let mut client = status_api::v1::status_service_client::StatusServiceClient::new(channel);
    let request = || status_api::v1::WatchStatusRequest {
        interval: Some(Duration::from_millis(100).into()),
    };
    let first = client
        .watch_status(request())
        .await
        .expect("first")
        .into_inner();
    let _second = client
        .watch_status(request())
        .await
        .expect("second")
        .into_inner();
    let third = tokio::spawn({
        let mut client = client.clone();
        async move { client.watch_status(request()).await.map(|_| Instant::now()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third stream was opened past the limit"
    );
    let freed_at = Instant::now();
    drop(first);
    let opened_at = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("opened once a stream ended")
        .expect("task")
        .expect("third stream");
    assert!(opened_at >= freed_at);
}

#[tokio::test]
async fn at_read_gate_requests_a_connection_stops_reading_until_one_finishes() {
    // One request allowed; a call to the slow peer holds it for the peer
    // timeout (1.5 s).
    let a = start(Duration::from_secs(5), |c| c.limits.read_gate_requests = 1).await;
    let client = a.grpc().await;
    let slow = tokio::spawn({
        let mut client = client.clone();
        async move {
            let answer = client
                .get_peer_status(status_api::v1::GetPeerStatusRequest {})
                .await;
            (answer.map(|_| ()), Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A second call on the same connection is not read while it waits.
    let quick = tokio::spawn({
        let mut client = client.clone();
        async move {
            let answer = client.get_status(status_api::v1::GetStatusRequest {}).await;
            (answer.map(|_| ()), Instant::now())
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!quick.is_finished(), "read past READ_GATE_REQUESTS");
    // A health probe on a new connection is read and answered meanwhile.
    let probed = Instant::now();
    let health = get_http1(a.address, "/service-a/healthcheck").await;
    assert_eq!(health.status, StatusCode::OK);
    assert!(
        probed.elapsed() < Duration::from_millis(500),
        "{:?}",
        probed.elapsed()
    );
    assert!(!quick.is_finished(), "read past READ_GATE_REQUESTS");
    // Once the slow call ends, the connection reads on and the call is answered.
    let (slow_answer, slow_ended) = slow.await.expect("task");
    let code = slow_answer.expect_err("the peer is too slow").code();
    assert!(
        matches!(code, Code::DeadlineExceeded | Code::Unavailable),
        "{code:?}"
    );
    let (quick_answer, quick_ended) = quick.await.expect("task");
    quick_answer.expect("answered once read");
    assert!(quick_ended >= slow_ended - Duration::from_millis(100));
}
