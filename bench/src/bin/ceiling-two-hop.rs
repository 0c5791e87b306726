//! The two-hop ceiling: what naive bare code built from the same libraries
//! does for `/other-status` and `GetPeerStatus`. A front answers both by
//! calling a back's `GetStatus` over gRPC (the back is `ceiling-tonic`,
//! answering the service's captured message) and answering the result,
//! as the service does; no logs, request ids, deadlines or limits.
//!
//!     ceiling-two-hop REST_PORT GRPC_PORT BACK_URL tonic|hyper
//!
//! - REST_PORT: bare axum, `GET /service-a/other-status` answers the proto3
//!   JSON of `GetPeerStatusResponse`;
//! - GRPC_PORT: bare tonic, `GetPeerStatus` answers the message itself;
//! - `tonic`: the client is one lazy tonic `Channel` (tonic's buffer task
//!   in front of one HTTP/2 connection), as the service has;
//! - `hyper`: the same generated client over hyper's HTTP/2 client
//!   (`SendRequest`, cloned per call, no buffer task), to show what the
//!   Channel's buffer costs. Like the Channel, it connects again when the
//!   back has closed the connection (a GOAWAY after a load's abrupt end
//!   left it failing every later call), and says why on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool stops on the first error

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    Router,
    body::Bytes,
    http::{StatusCode, header::CONTENT_TYPE},
    response::IntoResponse,
    routing::get,
    serve::ListenerExt,
};
use hyper::{body::Incoming, client::conn::http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use status_api::v1::{
    GetPeerStatusRequest, GetPeerStatusResponse, GetStatusRequest, GetStatusResponse,
    WatchStatusRequest, WatchStatusResponse,
    status_service_client::StatusServiceClient,
    status_service_server::{StatusService, StatusServiceServer},
};
use tonic::{
    Request, Response, Status,
    codegen::{BoxStream, http::Uri},
    transport::{Channel, Endpoint, Server, server::TcpIncoming},
};

/// hyper's HTTP/2 client as a tower service, so tonic's generated client
/// runs on it directly.
#[derive(Clone)]
struct HyperH2(http2::SendRequest<tonic::body::Body>);

type HyperFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, hyper::Error>> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for HyperH2 {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future = HyperFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

/// The hyper client's one connection, replaced when it has closed.
#[derive(Clone)]
struct HyperBack {
    origin: Uri,
    send: Arc<Mutex<http2::SendRequest<tonic::body::Body>>>,
}

impl HyperBack {
    async fn connect(origin: Uri) -> Self {
        let send = hyper_connect(&origin).await;
        Self {
            origin,
            send: Arc::new(Mutex::new(send)),
        }
    }

    /// A client on the current connection, or on a new one if it closed.
    async fn client(&self) -> StatusServiceClient<HyperH2> {
        let send = self.send.lock().unwrap().clone();
        let send = if send.is_closed() {
            let fresh = hyper_connect(&self.origin).await;
            *self.send.lock().unwrap() = fresh.clone();
            fresh
        } else {
            send
        };
        StatusServiceClient::with_origin(HyperH2(send), self.origin.clone())
    }
}

async fn hyper_connect(origin: &Uri) -> http2::SendRequest<tonic::body::Body> {
    let authority = origin.authority().expect("BACK_URL has host:port").as_str();
    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .expect("cannot connect to BACK_URL");
    tcp.set_nodelay(true).expect("nodelay");
    let (send, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(async move {
        match connection.await {
            Ok(()) => eprintln!("ceiling-two-hop: the back closed the connection"),
            Err(error) => eprintln!("ceiling-two-hop: connection to the back failed: {error}"),
        }
    });
    send
}

#[derive(Clone)]
enum Back {
    Tonic(StatusServiceClient<Channel>),
    Hyper(HyperBack),
}

impl Back {
    async fn get_status(&self) -> Result<GetStatusResponse, Status> {
        let request = GetStatusRequest {};
        let response = match self {
            Self::Tonic(client) => client.clone().get_status(request).await?,
            Self::Hyper(back) => back.client().await.get_status(request).await?,
        };
        Ok(response.into_inner())
    }
}

#[derive(Clone)]
struct Front {
    back: Back,
    address: String,
}

impl Front {
    async fn peer_status(&self) -> Result<GetPeerStatusResponse, Status> {
        let started = Instant::now();
        let answer = self.back.get_status().await?;
        Ok(GetPeerStatusResponse {
            status: answer.status,
            peer_address: self.address.clone(),
            latency: Some(started.elapsed().into()),
        })
    }
}

#[tonic::async_trait]
impl StatusService for Front {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Err(Status::unimplemented("not in the ceiling"))
    }

    async fn get_peer_status(
        &self,
        _request: Request<GetPeerStatusRequest>,
    ) -> Result<Response<GetPeerStatusResponse>, Status> {
        Ok(Response::new(self.peer_status().await?))
    }

    type WatchStatusStream = BoxStream<WatchStatusResponse>;

    async fn watch_status(
        &self,
        _request: Request<WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        Err(Status::unimplemented("not in the ceiling"))
    }
}

async fn connect(url: &str, mode: &str) -> Back {
    match mode {
        "tonic" => Back::Tonic(StatusServiceClient::new(
            Endpoint::from_shared(url.to_owned())
                .expect("BACK_URL")
                .connect_lazy(),
        )),
        "hyper" => Back::Hyper(HyperBack::connect(url.parse().expect("BACK_URL")).await),
        other => {
            eprintln!("ceiling-two-hop: unknown client '{other}' (tonic or hyper)");
            std::process::exit(2);
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, rest_port, grpc_port, back_url, mode] = args.as_slice() else {
        eprintln!("usage: ceiling-two-hop REST_PORT GRPC_PORT BACK_URL tonic|hyper");
        std::process::exit(2);
    };
    let front = Front {
        back: connect(back_url, mode).await,
        address: back_url.clone(),
    };

    let rest_front = front.clone();
    let app = Router::new().route(
        "/service-a/other-status",
        get(move || {
            let front = rest_front.clone();
            async move {
                match front.peer_status().await {
                    Ok(answer) => (
                        [(CONTENT_TYPE, "application/json")],
                        Bytes::from(serde_json::to_vec(&answer).expect("JSON")),
                    )
                        .into_response(),
                    Err(status) => {
                        (StatusCode::SERVICE_UNAVAILABLE, status.to_string()).into_response()
                    }
                }
            }
        }),
    );
    let port = |text: &str| text.parse::<u16>().expect("port");
    let rest_listener = tokio::net::TcpListener::bind(("127.0.0.1", port(rest_port)))
        .await
        .expect("cannot listen")
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    let grpc_listener = tokio::net::TcpListener::bind(("127.0.0.1", port(grpc_port)))
        .await
        .expect("cannot listen");
    let grpc = Server::builder()
        .add_service(StatusServiceServer::new(front))
        .serve_with_incoming(TcpIncoming::from(grpc_listener).with_nodelay(Some(true)));
    let rest = axum::serve(rest_listener, app);
    tokio::select! {
        ended = grpc => ended.expect("gRPC server failed"),
        ended = rest => ended.expect("REST server failed"),
    }
}
