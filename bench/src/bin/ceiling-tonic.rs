//! The gRPC ceiling: a bare tonic server implementing
//! `scdemo.status.v1.StatusService` whose `GetStatus` answers a clone of one
//! fixed message, decoded from a real answer of the service (run.sh captures
//! the gRPC-framed body with curl). The other rpcs are UNIMPLEMENTED. No
//! reflection, no health, no layers; the same tokio runtime defaults as the
//! service.
//!
//!     ceiling-tonic PORT GETSTATUS_GRPC_BODY_FILE

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool stops on the first error

use prost::Message;
use status_api::v1::{
    GetPeerStatusRequest, GetPeerStatusResponse, GetStatusRequest, GetStatusResponse,
    WatchStatusRequest, WatchStatusResponse,
    status_service_server::{StatusService, StatusServiceServer},
};
use tonic::{
    Request, Response, Status,
    codegen::BoxStream,
    transport::{Server, server::TcpIncoming},
};

struct Ceiling {
    answer: GetStatusResponse,
}

#[tonic::async_trait]
impl StatusService for Ceiling {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(self.answer.clone()))
    }

    async fn get_peer_status(
        &self,
        _request: Request<GetPeerStatusRequest>,
    ) -> Result<Response<GetPeerStatusResponse>, Status> {
        Err(Status::unimplemented("not in the ceiling"))
    }

    type WatchStatusStream = BoxStream<WatchStatusResponse>;

    async fn watch_status(
        &self,
        _request: Request<WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        Err(Status::unimplemented("not in the ceiling"))
    }
}

/// The message of a gRPC-framed body: a 5-byte header (compressed flag,
/// big-endian length), then the protobuf message.
fn decode_frame(body: &[u8]) -> Result<GetStatusResponse, String> {
    let (header, message) = body
        .split_at_checked(5)
        .ok_or("shorter than a gRPC frame header")?;
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if header[0] != 0 || message.len() != length {
        return Err(format!("not one uncompressed frame of {length} bytes"));
    }
    GetStatusResponse::decode(message).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, body_file] = args.as_slice() else {
        eprintln!("usage: ceiling-tonic PORT GETSTATUS_GRPC_BODY_FILE");
        std::process::exit(2);
    };
    let body = std::fs::read(body_file).expect("cannot read GETSTATUS_GRPC_BODY_FILE");
    let answer = decode_frame(&body).unwrap_or_else(|e| {
        eprintln!("ceiling-tonic: {body_file}: {e}");
        std::process::exit(2);
    });

    let address = ("127.0.0.1", port.parse::<u16>().expect("PORT"));
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .expect("cannot listen");
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .add_service(StatusServiceServer::new(Ceiling { answer }))
        .serve_with_incoming(incoming)
        .await
        .expect("server failed");
}
