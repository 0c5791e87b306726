//! `x-request-id` travels from the first request into the peer call, and
//! into the log lines of both services.
//!
//! This test binary installs the real JSON log subscriber globally, writing
//! to a buffer, so it holds this one test.

mod common;

use std::sync::{Arc, Mutex};

use common::{TestPair, get};
use http::{StatusCode, Version};
use status_api::v1::GetPeerStatusRequest;
use status_services::{config::LogFormat, logging};
use tracing_subscriber::EnvFilter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("not poisoned")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes)
            .expect("UTF-8")
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
            })
            .collect()
    }

    /// The access log lines of requests with this id: (method, path).
    fn requests_with_id(&self, id: &str) -> Vec<(String, String)> {
        self.lines()
            .into_iter()
            .filter(|line| line["request_id"] == id && line["message"] == "request")
            .map(|line| {
                (
                    line["method"].as_str().unwrap_or_default().into(),
                    line["path"].as_str().unwrap_or_default().into(),
                )
            })
            .collect()
    }
}

#[tokio::test]
async fn request_id_reaches_the_peer_and_every_log_line() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = logging::subscriber(
        LogFormat::Json,
        EnvFilter::new("info"),
        move || writer.clone(),
        false,
    );
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber of this binary");
    let pair = TestPair::start().await;

    // REST with an id: A's gateway line and B's gRPC line both carry it.
    let reply = get(
        pair.a.address,
        "/service-a/other-status",
        Version::HTTP_11,
        &[("x-request-id", "rest-42")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-request-id"], "rest-42");
    let mut seen = logs.requests_with_id("rest-42");
    seen.sort();
    assert_eq!(
        seen,
        [
            ("GET".to_owned(), "/service-a/other-status".to_owned()),
            (
                "POST".to_owned(),
                "/scdemo.status.v1.StatusService/GetStatus".to_owned()
            ),
        ]
    );

    // gRPC without an id: B generates one and A's side of the call uses it.
    let answer = pair
        .b
        .grpc()
        .await
        .get_peer_status(GetPeerStatusRequest {})
        .await
        .expect("GetPeerStatus");
    let id = answer
        .metadata()
        .get("x-request-id")
        .expect("echoed")
        .to_str()
        .expect("ascii")
        .to_owned();
    let mut paths: Vec<_> = logs
        .requests_with_id(&id)
        .into_iter()
        .map(|(_, path)| path)
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/scdemo.status.v1.StatusService/GetPeerStatus",
            "/scdemo.status.v1.StatusService/GetStatus"
        ]
    );

    // A failing peer call logs a warning with the request id too.
    pair.b.stop().await;
    let reply = get(
        pair.a.address,
        "/service-a/other-status",
        Version::HTTP_2,
        &[("x-request-id", "down-7")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    let lines: Vec<_> = logs
        .lines()
        .into_iter()
        .filter(|line| line["request_id"] == "down-7")
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "peer call failed" && line["level"] == "WARN"),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "request" && line["status"] == 503),
        "{lines:#?}"
    );
}
