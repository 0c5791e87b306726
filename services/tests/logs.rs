//! The access log as operators read it: `x-request-id` travels from the
//! first request into the peer call and into both services' lines; a
//! caller's id that is not sane is replaced, never logged or forwarded raw;
//! and every request gets exactly one line, however it ends.
//!
//! This test binary installs the real JSON log subscriber globally, writing
//! to a buffer; each test finds its own lines by request id.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::{
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use common::{TestPair, bind, config, frozen_metrics, get, send_body, start_on, start_slow_peer};
use http::{Method, StatusCode, Version};
use hyper::body::Bytes;
use serde_json::Value;
use status_api::v1::GetPeerStatusRequest;
use status_services::{config::LogFormat, logging};
use tokio::io::AsyncWriteExt;
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
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("not poisoned").clone()).expect("UTF-8")
    }

    fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
            })
            .collect()
    }

    /// The access lines of requests with this id.
    fn requests_with_id(&self, id: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|line| line["request_id"] == id && line["message"] == "request")
            .collect()
    }

    /// (service, path or rpc) of the access lines with this id, sorted.
    fn targets_with_id(&self, id: &str) -> Vec<(String, String)> {
        let mut targets: Vec<_> = self
            .requests_with_id(id)
            .into_iter()
            .map(|line| {
                let target = line["path"].as_str().or(line["rpc"].as_str());
                (
                    line["service"].as_str().unwrap_or_default().to_owned(),
                    target.unwrap_or_default().to_owned(),
                )
            })
            .collect();
        targets.sort();
        targets
    }
}

/// The log lines of this test binary.
fn logs() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = logging::subscriber(
            LogFormat::Json,
            EnvFilter::new("info"),
            move || writer.clone(),
            false,
        );
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        logs
    })
}

/// Waits until `ready` holds for the captured lines (lines of streams and
/// cancelled calls are written a moment after the client sees the end).
async fn eventually(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..200 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}, in:\n{}", logs().text());
}

#[tokio::test]
async fn request_id_reaches_the_peer_and_every_log_line() {
    let logs = logs();
    let pair = TestPair::start().await;

    // REST with an id: A's gateway line and B's gRPC line both carry it.
    let reply = get(
        pair.a.address,
        "/service-a/other-status",
        Version::HTTP_11,
        &[("x-request-id", "rest-42"), ("user-agent", "curl/8.0")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["x-request-id"], "rest-42");
    assert_eq!(
        logs.targets_with_id("rest-42"),
        [
            ("service-a".to_owned(), "/service-a/other-status".to_owned()),
            (
                "service-b".to_owned(),
                "scdemo.status.v1.StatusService/GetStatus".to_owned()
            ),
        ]
    );
    let lines = logs.requests_with_id("rest-42");
    let rest = lines
        .iter()
        .find(|l| l["service"] == "service-a")
        .expect("A's line");
    assert_eq!(rest["protocol"], "HTTP/1.1");
    assert_eq!(rest["status"], 200);
    assert_eq!(rest["user_agent"], "curl/8.0");
    assert_eq!(rest["client"], "127.0.0.1");
    assert_eq!(rest["outcome"], "completed");
    let grpc = lines
        .iter()
        .find(|l| l["service"] == "service-b")
        .expect("B's line");
    assert_eq!(
        (&grpc["protocol"], &grpc["grpc_code"]),
        (&"gRPC".into(), &"OK".into())
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
    eventually("both lines of the gRPC call", || {
        logs.requests_with_id(&id).len() == 2
    })
    .await;
    assert_eq!(
        logs.targets_with_id(&id),
        [
            (
                "service-a".to_owned(),
                "scdemo.status.v1.StatusService/GetStatus".to_owned()
            ),
            (
                "service-b".to_owned(),
                "scdemo.status.v1.StatusService/GetPeerStatus".to_owned()
            ),
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
    let access: Vec<_> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(access.len(), 1, "{lines:#?}");
    assert_eq!(
        (&access[0]["status"], &access[0]["protocol"]),
        (&503.into(), &"h2c".into())
    );
}

#[tokio::test]
async fn an_id_that_is_not_sane_is_replaced_and_never_logged_or_forwarded() {
    let logs = logs();
    let pair = TestPair::start().await;
    let long = format!("long-{}", "x".repeat(300));
    for bad in [long.as_str(), "has space", "tab\there"] {
        let reply = get(
            pair.a.address,
            "/service-a/other-status",
            Version::HTTP_2,
            &[("x-request-id", bad)],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let assigned = reply.headers["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert_eq!(assigned.len(), 36, "a fresh UUID replaces {bad:?}");
        // The replacement is the id from then on: A's line and the peer's.
        assert_eq!(logs.requests_with_id(&assigned).len(), 2, "{bad:?}");
        assert!(!logs.text().contains(bad), "{bad:?} was logged raw");
    }
}

#[tokio::test]
async fn every_request_gets_exactly_one_line_however_it_ends() {
    let logs = logs();
    let peer = start_slow_peer(Duration::from_secs(30)).await;
    let a = start_on(bind().await, config("service-a", peer), frozen_metrics()).await;

    // A REST caller that gives up while the peer is slow.
    let mut stream = tokio::net::TcpStream::connect(a.address)
        .await
        .expect("connect");
    stream
        .write_all(
            b"GET /service-a/other-status HTTP/1.1\r\nhost: a\r\nx-request-id: gave-up-1\r\n\r\n",
        )
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream);
    eventually("a line for the abandoned call", || {
        !logs.requests_with_id("gave-up-1").is_empty()
    })
    .await;

    // A gRPC caller whose deadline passes while the peer is slow. Sent
    // with a plain HTTP/2 client: tonic's client enforces a grpc-timeout
    // header with a timer of its own and, on a busy machine, reports its
    // expiry as CANCELLED (and goes away) before the server's
    // DEADLINE_EXCEEDED arrives.
    let reply = send_body(
        a.address,
        Method::POST,
        "/scdemo.status.v1.StatusService/GetPeerStatus",
        Version::HTTP_2,
        &[
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", "300m"),
            ("x-request-id", "late-1"),
        ],
        Bytes::from_static(&[0, 0, 0, 0, 0]),
    )
    .await;
    assert_eq!(
        reply.headers.get("grpc-status").map(|v| v.as_bytes()),
        Some(b"4".as_slice()),
        "DEADLINE_EXCEEDED: {:?}",
        reply.headers
    );

    // A stream the client cancels.
    let mut client = a.grpc().await;
    let mut request = tonic::Request::new(status_api::v1::WatchStatusRequest {
        interval: Some(Duration::from_millis(100).into()),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "watch-1".parse().expect("ascii"));
    let mut stream = client
        .watch_status(request)
        .await
        .expect("watch")
        .into_inner();
    stream
        .message()
        .await
        .expect("a message")
        .expect("not ended");
    drop(stream);

    eventually("a line for every call", || {
        ["gave-up-1", "late-1", "watch-1"]
            .iter()
            .all(|id| !logs.requests_with_id(id).is_empty())
    })
    .await;
    // Give a second line, if one were coming, the time to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (id, status, grpc_code, outcome) in [
        ("gave-up-1", 499, None, "cancelled"),
        ("late-1", 200, Some("DEADLINE_EXCEEDED"), "completed"),
        ("watch-1", 200, Some("CANCELLED"), "cancelled"),
    ] {
        let lines = logs.requests_with_id(id);
        assert_eq!(lines.len(), 1, "{id}: {lines:#?}");
        let line = &lines[0];
        assert_eq!(line["status"], status, "{id}: {line}");
        assert_eq!(line["grpc_code"].as_str(), grpc_code, "{id}: {line}");
        assert_eq!(line["outcome"], outcome, "{id}: {line}");
    }
}

#[tokio::test]
async fn one_trace_id_in_both_services_with_a_span_each() {
    let logs = logs();
    let pair = TestPair::start().await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let malformed = format!("00-{}-{caller_span}-01", trace.to_uppercase());
    for (id, traceparent, amzn, expected_trace) in [
        (
            "trace-1",
            Some(format!("00-{trace}-{caller_span}-01")),
            None,
            Some(trace),
        ),
        ("trace-2", Some(malformed.clone()), None, None),
        (
            "trace-3",
            None,
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"),
            Some("5759e988bd862e3fe1be46a994272793"),
        ),
    ] {
        let mut headers = vec![("x-request-id", id)];
        if let Some(value) = &traceparent {
            headers.push(("traceparent", value));
        }
        if let Some(value) = amzn {
            headers.push(("x-amzn-trace-id", value));
        }
        let reply = get(
            pair.a.address,
            "/service-a/other-status",
            Version::HTTP_11,
            &headers,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        let lines = logs.requests_with_id(id);
        let line = |service: &str| {
            lines
                .iter()
                .find(|l| l["service"] == service)
                .unwrap_or_else(|| panic!("{id}: no line of {service}: {lines:#?}"))
        };
        let (a, b) = (line("service-a"), line("service-b"));
        let trace_id = a["trace_id"].as_str().expect("trace_id");
        assert_eq!(trace_id.len(), 32, "{a}");
        if let Some(expected) = expected_trace {
            assert_eq!(trace_id, expected, "{id}");
        } else {
            assert_ne!(
                trace_id,
                trace.to_uppercase(),
                "{id}: a malformed traceparent was used"
            );
        }
        // The same trace in both services, with a span each: B's parent is
        // A's span, which B could only learn from a valid traceparent.
        assert_eq!(b["trace_id"], a["trace_id"], "{id}");
        assert_ne!(b["span_id"], a["span_id"], "{id}");
        assert_eq!(b["parent_span_id"], a["span_id"], "{id}");
        if id == "trace-1" {
            assert_eq!(a["parent_span_id"], caller_span);
        }
    }
    assert!(
        !logs.text().contains(&malformed),
        "a malformed traceparent was logged"
    );
}

#[tokio::test]
async fn grpc_web_calls_are_logged_with_their_real_status() {
    let logs = logs();
    let pair = TestPair::start().await;
    // An empty GetStatusRequest in one frame; base64 for grpc-web-text.
    let frame: &[u8] = &[0, 0, 0, 0, 0];
    let (binary, text) = ("application/grpc-web+proto", "application/grpc-web-text");
    for (id, version, content_type, body) in [
        ("web-1", Version::HTTP_11, binary, frame),
        ("web-2", Version::HTTP_2, binary, frame),
        ("web-3", Version::HTTP_11, text, b"AAAAAAA=".as_slice()),
    ] {
        let reply = send_body(
            pair.a.address,
            Method::POST,
            "/scdemo.status.v1.StatusService/GetStatus",
            version,
            &[
                ("content-type", content_type),
                ("accept", content_type),
                ("x-request-id", id),
            ],
            Bytes::from_static(body),
        )
        .await;
        assert_eq!(
            reply.content_type().starts_with(text),
            content_type == text,
            "{id}"
        );
        assert_eq!(reply.status, StatusCode::OK, "{id}");
        eventually("the gRPC-Web call's line", || {
            !logs.requests_with_id(id).is_empty()
        })
        .await;
        let lines = logs.requests_with_id(id);
        assert_eq!(lines.len(), 1, "{id}: {lines:#?}");
        let line = &lines[0];
        assert_eq!(line["protocol"], "gRPC-Web", "{id}: {line}");
        assert_eq!(line["grpc_code"], "OK", "{id}: {line}");
        assert_eq!(line["outcome"], "completed", "{id}: {line}");
    }

    // A gRPC-Web caller's deadline is kept, and its status logged.
    let peer = start_slow_peer(Duration::from_secs(30)).await;
    let a = start_on(bind().await, config("service-a", peer), frozen_metrics()).await;
    let reply = send_body(
        a.address,
        Method::POST,
        "/scdemo.status.v1.StatusService/GetPeerStatus",
        Version::HTTP_11,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("grpc-timeout", "200m"),
            ("x-request-id", "web-late"),
        ],
        Bytes::from_static(frame),
    )
    .await;
    assert_eq!(
        reply.headers["grpc-status"], "4",
        "DEADLINE_EXCEEDED: {reply:?}"
    );
    let line = &logs.requests_with_id("web-late")[0];
    assert_eq!(line["grpc_code"], "DEADLINE_EXCEEDED", "{line}");
    assert!(
        line["latency_ms"].as_f64().expect("latency") < 1400.0,
        "{line}"
    );
}

#[tokio::test]
async fn the_client_is_the_hop_the_load_balancer_appended() {
    let logs = logs();
    let pair = TestPair::start().await;
    let reply = get(
        pair.a.address,
        "/service-a/status",
        Version::HTTP_11,
        &[
            ("x-request-id", "xff-1"),
            // The caller wrote the first hop; the ALB appended the second.
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let line = &logs.requests_with_id("xff-1")[0];
    assert_eq!(line["client"], "203.0.113.9", "{line}");
}

#[tokio::test]
async fn requests_cut_off_at_stop_are_logged_as_aborted_before_stopped() {
    let logs = logs();
    let peer = start_slow_peer(Duration::from_secs(30)).await;
    let mut settings = config("service-stopping", peer);
    settings.shutdown_timeout = Duration::from_millis(200);
    settings.peer.request_timeout = Duration::from_secs(20);
    let a = start_on(bind().await, settings, frozen_metrics()).await;
    let mut client = a.grpc().await;
    let mut request = tonic::Request::new(GetPeerStatusRequest {});
    request
        .metadata_mut()
        .insert("x-request-id", "cut-off-1".parse().expect("ascii"));
    let call = tokio::spawn(async move { client.get_peer_status(request).await });
    eventually("the call reached the peer", || {
        logs.text().contains("service-stopping") && !call.is_finished()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.stop().await;
    let _ = call.await;

    // Its line, and its count, came before the service said it stopped.
    let lines = logs.lines();
    let position = |matches: &dyn Fn(&Value) -> bool| lines.iter().position(matches);
    let request =
        position(&|line| line["request_id"] == "cut-off-1" && line["message"] == "request")
            .expect("a line for the call");
    let stopped =
        position(&|line| line["service"] == "service-stopping" && line["message"] == "stopped")
            .expect("the stop line");
    assert!(request < stopped, "the call's line came after \"stopped\"");
    let line = &lines[request];
    assert_eq!(line["outcome"], "aborted", "{line}");
    assert_eq!(line["grpc_code"], "UNAVAILABLE", "{line}");
}

#[tokio::test]
async fn requests_hyper_refuses_get_a_line_too() {
    use tokio::io::AsyncReadExt;
    let logs = logs();
    let pair = TestPair::start().await;
    let huge = "x".repeat(40_000);
    for (head, status) in [
        (
            format!("GET /service-a/status HTTP/1.1\r\nhost: a\r\nx-big: {huge}\r\n\r\n"),
            431,
        ),
        (
            "GET /service-a/status HTTP/1.1\r\nhost a\r\n\r\n".to_owned(),
            400,
        ),
    ] {
        // The capture is shared by the tests of this binary, and another
        // test's closed connection may have had this local port: only
        // lines written from now on are this connection's.
        let before = logs.lines().len();
        let mut stream = tokio::net::TcpStream::connect(pair.a.address)
            .await
            .expect("connect");
        let local = stream.local_addr().expect("address").to_string();
        stream.write_all(head.as_bytes()).await.expect("send");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{answer}"
        );
        let mine = || -> Vec<Value> {
            logs.lines()
                .into_iter()
                .skip(before)
                .filter(|line| line["peer"] == local.as_str())
                .collect()
        };
        eventually("a line for the refused request", || !mine().is_empty()).await;
        let lines = mine();
        assert_eq!(lines.len(), 1, "{lines:#?}");
        let line = &lines[0];
        assert_eq!(line["message"], "request", "{line}");
        assert_eq!(line["service"], "service-a", "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["outcome"], "refused", "{line}");
        assert_eq!(line["client"], "127.0.0.1", "{line}");
    }
}
