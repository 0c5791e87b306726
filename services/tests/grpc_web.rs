//! gRPC-Web on the shared port, as a browser sends it: HTTP/1.1, a
//! `application/grpc-web+proto` POST with an Origin. The answer must be
//! gRPC-Web (the status in a trailer frame of the body, not in HTTP
//! trailers), readable across origins (CORS), and the preflight answered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use common::{TestPair, send, send_body};
use http::{Method, StatusCode, Version, header};
use hyper::body::Bytes;
use prost::Message;
use status_api::v1::GetStatusResponse;

const ORIGIN: &str = "https://status-page.example";
const GET_STATUS: &str = "/scdemo.status.v1.StatusService/GetStatus";

#[tokio::test]
async fn a_browser_calls_get_status_over_grpc_web() {
    let pair = TestPair::start().await;
    let reply = send_body(
        pair.a.address,
        Method::POST,
        GET_STATUS,
        Version::HTTP_11,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
            ("origin", ORIGIN),
        ],
        // One frame: not compressed, an empty GetStatusRequest.
        Bytes::from_static(&[0, 0, 0, 0, 0]),
    )
    .await;
    let (headers, body) = (reply.headers, reply.body);

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/grpc-web+proto");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
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
    let reply = send(
        pair.a.address,
        Method::OPTIONS,
        GET_STATUS,
        Version::HTTP_11,
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,x-grpc-web,x-user-agent",
            ),
        ],
    )
    .await;
    let headers = reply.headers;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let methods = headers[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap();
    assert!(methods.contains("POST"), "{methods}");
}
