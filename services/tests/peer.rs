//! Peer failures: down, too slow, restarted. Errors carry the right gRPC
//! code and HTTP status, name the peer, and come within the deadline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::time::Duration;

use common::{PEER_TIMEOUT, bind, config, frozen_metrics, get_http1, start_on, start_slow_peer};
use http::StatusCode;
use status_api::v1::GetPeerStatusRequest;
use tokio::time::Instant;
use tonic::{Code, Status};

/// GetPeerStatus on `service`, which must fail: the error and how long it took.
async fn failed_peer_call(service: &common::TestService) -> (Status, std::time::Duration) {
    let started = Instant::now();
    let error = service
        .grpc()
        .await
        .get_peer_status(GetPeerStatusRequest {})
        .await
        .expect_err("the peer call must fail");
    (error, started.elapsed())
}

/// A port nothing listens on: bound, then released.
async fn closed_port() -> std::net::SocketAddr {
    bind().await.local_addr().expect("bound")
}

#[tokio::test]
async fn peer_down_is_unavailable_and_503_naming_the_peer() {
    let peer = closed_port().await;
    let a = start_on(bind().await, config("service-a", peer), frozen_metrics()).await;

    let (error, waited) = failed_peer_call(&a).await;
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(
        error.message().contains(&format!("http://{peer}")),
        "names the peer: {}",
        error.message()
    );
    assert!(waited < PEER_TIMEOUT, "within the deadline: {waited:?}");

    let reply = get_http1(a.address, "/service-a/other-status").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let body = reply.json();
    assert_eq!(
        (&body["code"], &body["status"]),
        (&serde_json::json!(14), &serde_json::json!("UNAVAILABLE")),
        "{body}"
    );
    let message = body["message"].as_str().expect("message");
    assert!(
        message.contains(&format!("http://{peer}")) && message.contains("refused"),
        "{message}"
    );

    // The service itself stays healthy: its peer being down is not its fault.
    assert_eq!(
        get_http1(a.address, "/service-a/healthcheck").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn slow_peer_is_deadline_exceeded_and_504() {
    let peer = start_slow_peer(Duration::from_secs(30)).await;
    let a = start_on(bind().await, config("service-a", peer), frozen_metrics()).await;

    let (error, waited) = failed_peer_call(&a).await;
    assert_eq!(error.code(), Code::DeadlineExceeded, "{error:?}");
    assert!(
        error.message().contains(&format!("http://{peer}")),
        "{}",
        error.message()
    );
    assert!(
        waited >= PEER_TIMEOUT && waited < PEER_TIMEOUT * 3,
        "deadline respected: {waited:?}"
    );

    let reply = get_http1(a.address, "/service-a/other-status").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(reply.json()["status"], "DEADLINE_EXCEEDED");
}

#[tokio::test]
async fn the_callers_shorter_deadline_is_passed_on_and_always_deadline_exceeded() {
    let peer = start_slow_peer(Duration::from_secs(30)).await;
    let a = start_on(bind().await, config("service-a", peer), frozen_metrics()).await;

    // tonic's own server timer used to race the peer call's deadline and
    // answer CANCELLED in some runs: every run must say DEADLINE_EXCEEDED.
    // Sent with a plain HTTP/2 client: tonic's client would enforce the
    // same grpc-timeout with a timer of its own and, on a busy machine,
    // report its expiry as CANCELLED before the server's answer arrives.
    let calls = (0..20).map(|_| {
        let address = a.address;
        async move {
            let started = Instant::now();
            let reply = common::send_body(
                address,
                http::Method::POST,
                "/scdemo.status.v1.StatusService/GetPeerStatus",
                http::Version::HTTP_2,
                &[
                    ("content-type", "application/grpc"),
                    ("te", "trailers"),
                    ("grpc-timeout", "300m"),
                ],
                hyper::body::Bytes::from_static(&[0, 0, 0, 0, 0]),
            )
            .await;
            (reply, started.elapsed())
        }
    });
    for (reply, waited) in futures_join_all(calls).await {
        // An error status comes alone, in the response head.
        let code = reply
            .headers
            .get("grpc-status")
            .and_then(|code| code.to_str().ok())
            .and_then(|code| code.parse::<i32>().ok())
            .map(Code::from_i32);
        assert_eq!(code, Some(Code::DeadlineExceeded), "{:?}", reply.headers);
        // In ~300 ms, not after our own 1.5 s peer timeout.
        assert!(
            waited < PEER_TIMEOUT,
            "caller's deadline honoured: {waited:?}"
        );
    }
}

/// Runs the futures at once and collects their outputs in order.
async fn futures_join_all<F: Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("task"));
    }
    outputs
}

#[tokio::test]
async fn peer_restart_needs_no_restart_here() {
    let b_listener = bind().await;
    let b_address = b_listener.local_addr().expect("bound");
    let metrics = frozen_metrics();
    let a = start_on(
        bind().await,
        config("service-a", b_address),
        metrics.clone(),
    )
    .await;
    let b = start_on(b_listener, config("service-b", a.address), metrics.clone()).await;
    let mut client = a.grpc().await;

    client
        .get_peer_status(GetPeerStatusRequest {})
        .await
        .expect("peer up");
    b.stop().await;
    let error = client
        .get_peer_status(GetPeerStatusRequest {})
        .await
        .expect_err("peer stopped");
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");

    // Same address again, as a restarted task behind the same name would be.
    let listener = tokio::net::TcpListener::bind(b_address)
        .await
        .expect("rebind the peer's port");
    let _b = start_on(listener, config("service-b", a.address), metrics).await;
    let answer = client
        .get_peer_status(GetPeerStatusRequest {})
        .await
        .expect("peer back");
    assert_eq!(
        answer.into_inner().status.expect("status").service,
        "service-b"
    );
}

/// A peer that went away and came back hung (stopped, stuck, behind dropped
/// packets): calls to it time out, and a timeout is no answer, so the peer
/// stays unreachable. While one call probes, the others fail at once
/// instead of each waiting its whole deadline again.
#[tokio::test]
async fn a_timed_out_probe_keeps_the_peer_unreachable() {
    let peer = closed_port().await;
    let a = std::sync::Arc::new(
        start_on(bind().await, config("service-a", peer), frozen_metrics()).await,
    );
    let (refused, _) = failed_peer_call(&a).await;
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    // Back at the same address, hung.
    let listener = tokio::net::TcpListener::bind(peer)
        .await
        .expect("rebind the peer's port");
    common::start_slow_peer_on(listener, Duration::from_secs(30));
    for round in 0..3 {
        // One caller probes and runs out of time...
        let probe = tokio::spawn({
            let a = std::sync::Arc::clone(&a);
            async move { failed_peer_call(&a).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        // ...while the others fail at once.
        let (error, waited) = failed_peer_call(&a).await;
        assert_eq!(error.code(), Code::Unavailable, "round {round}: {error:?}");
        assert!(
            error.message().contains("unreachable"),
            "round {round}: {error:?}"
        );
        assert!(
            waited < Duration::from_millis(500),
            "round {round}: at once: {waited:?}"
        );
        let (timed_out, _) = probe.await.expect("probe task");
        assert_eq!(
            timed_out.code(),
            Code::DeadlineExceeded,
            "round {round}: {timed_out:?}"
        );
    }
}

/// The peer as a process of this binary, killed when the test ends (also
/// when it fails).
struct PeerProcess(std::process::Child);

impl PeerProcess {
    fn signal(&self, name: &str) {
        let sent = std::process::Command::new("kill")
            .args([name, &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {name}");
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// MAX_PEER_CALLS at its default stays within the streams a peer running
/// this binary at its defaults allows on the one connection, so calls
/// beyond it wait for a slot and fail UNAVAILABLE (503), as documented,
/// instead of queueing inside the HTTP/2 client until DEADLINE_EXCEEDED
/// (504). The peer is this binary, stopped once the connection is up, so
/// every stream opened on it stays open.
#[tokio::test]
async fn calls_beyond_the_peers_stream_limit_are_unavailable_not_deadline_exceeded() {
    use clap::Parser;
    use status_services::config::{Cli, Command, limits::DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS};

    let port = closed_port().await.port();
    let b = PeerProcess(
        std::process::Command::new(env!("CARGO_BIN_EXE_status-service"))
            .arg("serve")
            .env_clear()
            .env("SERVICE_NAME", "service-b")
            .env("SERVER_PORT", port.to_string())
            .env("BIND_ADDRESS", "127.0.0.1")
            .env("PEER_URL", "http://127.0.0.1:9")
            .env("DRAIN_DELAY", "0s")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the peer starts"),
    );
    // service-a as `serve` configures it from its defaults.
    let peer_url = format!("http://127.0.0.1:{port}");
    let cli =
        Cli::try_parse_from(["status-service", "serve", "--peer-url", &peer_url]).expect("parses");
    let Some(Command::Serve(args)) = cli.command else {
        panic!("not serve")
    };
    let mut a_config = args.service_config().expect("the defaults are valid");
    a_config.peer.request_timeout = PEER_TIMEOUT;
    let a = start_on(bind().await, a_config, frozen_metrics()).await;
    let ready = Instant::now() + Duration::from_secs(15);
    while get_http1(a.address, "/service-a/other-status").await.status != StatusCode::OK {
        assert!(Instant::now() < ready, "the peer never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    b.signal("-STOP");
    let streams = DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS as usize;
    let beyond = 10;
    // One HTTP/1.1 connection per call, so nothing queues before service-a.
    let calls = (0..streams + beyond).map(|_| {
        let address = a.address;
        async move { get_http1(address, "/service-a/other-status").await.status }
    });
    let mut counts = std::collections::BTreeMap::new();
    for status in futures_join_all(calls).await {
        *counts.entry(status.as_u16()).or_insert(0usize) += 1;
    }
    let timed_out = counts.get(&504).copied().unwrap_or_default();
    let refused = counts.get(&503).copied().unwrap_or_default();
    assert_eq!(timed_out + refused, streams + beyond, "{counts:?}");
    assert!(
        timed_out <= streams && refused >= beyond,
        "at most one stream per peer slot times out, the rest are refused: {counts:?}"
    );
    drop(b);
}
