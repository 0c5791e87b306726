//! gRPC-Web on the shared port, as a browser sends it: HTTP/1.1, a
//! `application/grpc-web+proto` POST with an Origin. The answer must be
//! gRPC-Web (the status in a trailer frame of the body, not in HTTP
//! trailers), readable across origins (CORS), and the preflight answered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use common::TestPair;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prost::Message;
use status_api::v1::GetStatusResponse;

const ORIGIN: &str = "https://status-page.example";
const GET_STATUS: &str = "/scdemo.status.v1.StatusService/GetStatus";

async fn http1(
    address: std::net::SocketAddr,
    request: Request<Full<Bytes>>,
) -> (http::response::Parts, Bytes) {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let (parts, body) = sender.send_request(request).await.unwrap().into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

#[tokio::test]
async fn a_browser_calls_get_status_over_grpc_web() {
    let pair = TestPair::start().await;
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{}{GET_STATUS}", pair.a.address))
        .header(header::CONTENT_TYPE, "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header(header::ORIGIN, ORIGIN)
        // One frame: not compressed, an empty GetStatusRequest.
        .body(Full::new(Bytes::from_static(&[0, 0, 0, 0, 0])))
        .unwrap();
    let (parts, body) = http1(pair.a.address, request).await;

    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(
        parts.headers[header::CONTENT_TYPE],
        "application/grpc-web+proto"
    );
    assert_eq!(parts.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    // A data frame with the message, then a trailer frame (flag 0x80).
    assert_eq!(body[0], 0, "a data frame first");
    let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
    let message = GetStatusResponse::decode(&body[5..5 + length]).unwrap();
    assert_eq!(message.status.unwrap().service, "service-a");
    let trailers = &body[5 + length..];
    assert_eq!(trailers[0], 0x80, "then the trailer frame");
    let trailers = String::from_utf8_lossy(&trailers[5..]).to_ascii_lowercase();
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
}

#[tokio::test]
async fn the_grpc_web_preflight_is_answered() {
    let pair = TestPair::start().await;
    let request = Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("http://{}{GET_STATUS}", pair.a.address))
        .header(header::ORIGIN, ORIGIN)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,x-grpc-web,x-user-agent",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (parts, _) = http1(pair.a.address, request).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let methods = parts.headers[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
}
