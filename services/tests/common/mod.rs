//! Test helpers: both services in-process on loopback port 0, and small
//! HTTP/1.1, h2c and gRPC clients.

#![allow(dead_code)] // each test binary uses a different part

use std::{net::SocketAddr, time::Duration};

use http::{HeaderMap, Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use status_api::v1::{
    GetPeerStatusRequest, GetPeerStatusResponse, GetStatusRequest, GetStatusResponse,
    WatchStatusRequest, WatchStatusResponse,
    status_service_client::StatusServiceClient,
    status_service_server::{StatusService, StatusServiceServer},
};
use status_services::{
    config::{PeerSettings, PeerUrl, ServerLimits, ServiceConfig},
    emf::EmfSettings,
    metrics::Metrics,
    server,
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status, transport::Channel};

/// Peer deadline in tests: long enough for a loaded CI machine, short enough
/// that timeout tests stay quick.
pub(crate) const PEER_TIMEOUT: Duration = Duration::from_millis(1500);

/// One running service.
pub(crate) struct TestService {
    pub(crate) name: &'static str,
    pub(crate) address: SocketAddr,
    pub(crate) shutdown: CancellationToken,
    pub(crate) handle: JoinHandle<Result<(), server::ServeError>>,
}

impl TestService {
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub(crate) async fn grpc(&self) -> StatusServiceClient<Channel> {
        StatusServiceClient::new(channel(self.address).await)
    }

    /// A WatchStatus stream with this interval.
    pub(crate) async fn watch(&self, interval: Duration) -> tonic::Streaming<WatchStatusResponse> {
        let request = WatchStatusRequest {
            interval: Some(interval.into()),
        };
        self.grpc()
            .await
            .watch_status(request)
            .await
            .expect("WatchStatus")
            .into_inner()
    }

    /// Stops it (drain delay as configured) and waits until it has.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        let served = tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("service stops in time")
            .expect("server task");
        served.expect("serve returns Ok");
    }
}

pub(crate) fn config(name: &str, peer: SocketAddr) -> ServiceConfig {
    ServiceConfig {
        service_name: name.parse().expect("valid name"),
        listen_address: "127.0.0.1:0".parse().expect("address"),
        peer: PeerSettings {
            url: PeerUrl::loopback(peer),
            connect_timeout: Duration::from_millis(500),
            request_timeout: PEER_TIMEOUT,
            keepalive_interval: Duration::from_secs(20),
            max_calls: 256,
            deadline_margin: Duration::from_millis(20),
        },
        drain_delay: Duration::ZERO,
        shutdown_timeout: Duration::from_secs(2),
        limits: ServerLimits::default(),
        emf: EmfSettings::default(),
        ecs_metadata_uri: None,
    }
}

/// Metrics that stay at their first sample for the test's life, so two
/// answers of one service are equal.
pub(crate) fn frozen_metrics() -> Metrics {
    Metrics::start(Duration::from_secs(3600)).expect("sysinfo works here")
}

/// Starts a service on `listener` and waits until it reports SERVING.
pub(crate) async fn start_on(
    listener: TcpListener,
    config: ServiceConfig,
    metrics: Metrics,
) -> TestService {
    let address = listener.local_addr().expect("bound");
    let shutdown = CancellationToken::new();
    let name: &'static str = Box::leak(config.service_name.to_string().into_boxed_str());
    let handle = tokio::spawn(server::serve(config, listener, metrics, shutdown.clone()));
    wait_until_serving(address).await;
    TestService {
        name,
        address,
        shutdown,
        handle,
    }
}

pub(crate) async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback")
}

/// service-a and service-b, each calling the other.
pub(crate) struct TestPair {
    pub(crate) a: TestService,
    pub(crate) b: TestService,
}

impl TestPair {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(adjust: impl Fn(&mut ServiceConfig)) -> Self {
        let (listener_a, listener_b) = (bind().await, bind().await);
        let (address_a, address_b) = (
            listener_a.local_addr().unwrap(),
            listener_b.local_addr().unwrap(),
        );
        let metrics = frozen_metrics();
        let mut config_a = config("service-a", address_b);
        let mut config_b = config("service-b", address_a);
        adjust(&mut config_a);
        adjust(&mut config_b);
        let (a, b) = tokio::join!(
            start_on(listener_a, config_a, metrics.clone()),
            start_on(listener_b, config_b, metrics)
        );
        Self { a, b }
    }
}

pub(crate) async fn channel(address: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .expect("url")
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect")
}

pub(crate) async fn wait_until_serving(address: SocketAddr) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let health =
            status_services::client::check_health(&address.to_string(), Duration::from_secs(1))
                .await;
        if health.is_ok_and(|status| {
            status == tonic_health::pb::health_check_response::ServingStatus::Serving
        }) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{address} never became SERVING"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub(crate) fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// GET over a fresh connection: HTTP/1.1, or h2c with prior knowledge.
pub(crate) async fn get(
    address: SocketAddr,
    path: &str,
    version: Version,
    headers: &[(&str, &str)],
) -> Reply {
    send(address, Method::GET, path, version, headers).await
}

/// A request with an empty body over a fresh connection.
pub(crate) async fn send(
    address: SocketAddr,
    method: Method,
    path: &str,
    version: Version,
    headers: &[(&str, &str)],
) -> Reply {
    send_body(address, method, path, version, headers, Bytes::new()).await
}

/// A request with `body` over a fresh connection.
pub(crate) async fn send_body(
    address: SocketAddr,
    method: Method,
    path: &str,
    version: Version,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Reply {
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .version(version);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).expect("request");
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let io = TokioIo::new(stream);
    let response = match version {
        Version::HTTP_2 => {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("h2c handshake");
            tokio::spawn(connection);
            sender.send_request(request).await.expect("h2c request")
        }
        _ => {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("http1 handshake");
            tokio::spawn(connection);
            sender.send_request(request).await.expect("http1 request")
        }
    };
    assert_eq!(
        response.version(),
        version,
        "answered in the protocol asked for"
    );
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub(crate) async fn get_http1(address: SocketAddr, path: &str) -> Reply {
    get(address, path, Version::HTTP_11, &[]).await
}

/// Both protocols a REST client may use.
pub(crate) const REST_VERSIONS: [Version; 2] = [Version::HTTP_11, Version::HTTP_2];

/// A peer that answers GetStatus only after `delay`.
struct SlowPeer {
    delay: Duration,
}

#[tonic::async_trait]
impl StatusService for SlowPeer {
    async fn get_status(
        &self,
        _: GrpcRequest<GetStatusRequest>,
    ) -> Result<GrpcResponse<GetStatusResponse>, Status> {
        tokio::time::sleep(self.delay).await;
        Ok(GrpcResponse::new(GetStatusResponse::default()))
    }

    async fn get_peer_status(
        &self,
        _: GrpcRequest<GetPeerStatusRequest>,
    ) -> Result<GrpcResponse<GetPeerStatusResponse>, Status> {
        Err(Status::unimplemented("not needed"))
    }

    type WatchStatusStream = tokio_stream::Empty<Result<WatchStatusResponse, Status>>;

    async fn watch_status(
        &self,
        _: GrpcRequest<WatchStatusRequest>,
    ) -> Result<GrpcResponse<Self::WatchStatusStream>, Status> {
        Err(Status::unimplemented("not needed"))
    }
}

pub(crate) async fn start_slow_peer(delay: Duration) -> std::net::SocketAddr {
    start_slow_peer_on(bind().await, delay)
}

/// A peer on `listener` that answers GetStatus only after `delay`.
pub(crate) fn start_slow_peer_on(listener: TcpListener, delay: Duration) -> std::net::SocketAddr {
    let address = listener.local_addr().expect("bound");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(StatusServiceServer::new(SlowPeer { delay }))
            .serve_with_incoming(incoming),
    );
    address
}

/// A free port: bound, then released (a tiny race, fine on loopback), for
/// tests that start the binary itself.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}
