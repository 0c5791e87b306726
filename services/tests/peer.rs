//! Peer failures: down, too slow, restarted. Errors carry the right gRPC
//! code and HTTP status, name the peer, and come within the deadline.

mod common;

use std::time::Duration;

use common::{PEER_TIMEOUT, bind, config, frozen_metrics, get_http1, start_on};
use http::StatusCode;
use status_api::v1::{
    GetPeerStatusRequest, GetPeerStatusResponse, GetStatusRequest, GetStatusResponse,
    WatchStatusRequest, WatchStatusResponse,
    status_service_server::{StatusService, StatusServiceServer},
};
use tokio::time::Instant;
use tonic::{Code, Request, Response, Status};

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
    assert_eq!(body["error"]["status"], "UNAVAILABLE", "{body}");
    let message = body["error"]["message"].as_str().expect("message");
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

/// A peer that answers GetStatus only after `delay`.
struct SlowPeer {
    delay: Duration,
}

#[tonic::async_trait]
impl StatusService for SlowPeer {
    async fn get_status(
        &self,
        _: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        tokio::time::sleep(self.delay).await;
        Ok(Response::new(GetStatusResponse::default()))
    }

    async fn get_peer_status(
        &self,
        _: Request<GetPeerStatusRequest>,
    ) -> Result<Response<GetPeerStatusResponse>, Status> {
        Err(Status::unimplemented("not needed"))
    }

    type WatchStatusStream = tokio_stream::Empty<Result<WatchStatusResponse, Status>>;

    async fn watch_status(
        &self,
        _: Request<WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        Err(Status::unimplemented("not needed"))
    }
}

async fn start_slow_peer(delay: Duration) -> std::net::SocketAddr {
    let listener = bind().await;
    let address = listener.local_addr().expect("bound");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(StatusServiceServer::new(SlowPeer { delay }))
            .serve_with_incoming(incoming),
    );
    address
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
    assert_eq!(reply.json()["error"]["status"], "DEADLINE_EXCEEDED");
}

#[tokio::test]
async fn the_callers_shorter_deadline_is_passed_on() {
    let peer = start_slow_peer(Duration::from_secs(30)).await;
    let a = start_on(bind().await, config("service-a", peer), frozen_metrics()).await;

    let mut request = Request::new(GetPeerStatusRequest {});
    request.set_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let error = a
        .grpc()
        .await
        .get_peer_status(request)
        .await
        .expect_err("too slow");
    let waited = started.elapsed();
    // Whichever side's timer fires first, the caller learns in ~300 ms, not
    // after our own 1.5 s peer timeout.
    assert!(
        matches!(error.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{error:?}"
    );
    assert!(
        waited < PEER_TIMEOUT,
        "caller's deadline honoured: {waited:?}"
    );
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
