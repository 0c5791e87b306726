//! The envelope's behaviour around the app's routes: a panic, a hang and
//! a deadline answered in the caller's protocol, CORS for browsers and
//! `Vary` for everyone else. Its own file: [`super`] builds the app.

use std::time::Duration;

use axum::body::Body;
use http_body_util::BodyExt;
use tokio::time::Instant;
use tower::ServiceExt;

use super::*;
use crate::http::{RequestContext, RequestDeadline};

/// Routes that panic, or never answer, or answer with what they saw.
#[derive(Clone, Copy)]
enum Handler {
    Panics,
    Hangs,
    ShowsDeadline,
}

impl Dispatch<Body> for Handler {
    type Future = Pin<Box<dyn Future<Output = Response<AppBody>> + Send>>;

    fn dispatch(&self, _: Protocol, request: Request<Body>) -> Self::Future {
        let handler = *self;
        Box::pin(async move {
            match handler {
                Handler::Panics => panic!("boom"),
                Handler::Hangs => std::future::pending().await,
                Handler::ShowsDeadline => {
                    let deadline = request
                        .extensions()
                        .get::<RequestContext>()
                        .and_then(RequestContext::deadline);
                    let left = deadline.map(RequestDeadline::remaining).unwrap_or_default();
                    Response::new(AppBody::http(Body::from(format!("{}", left.as_millis()))))
                }
            }
        })
    }
}

fn envelope(handler: Handler) -> Envelope<Handler> {
    let recorder = Arc::new(Recorder::new("service-a", Vec::new()));
    Envelope::new(
        AccessLog::new("service-a", recorder, Spans::default()),
        LoadShed::new(16, "service-a", "/service-a/healthcheck".into()),
        Duration::from_secs(30),
        status_gateway::cors(),
        handler,
    )
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::empty()).expect("request")
}

const GRPC: (&str, &str) = ("content-type", "application/grpc");

#[tokio::test]
async fn a_panic_answers_internal_in_the_callers_protocol() {
    let rest = envelope(Handler::Panics)
        .oneshot(request("GET", "/service-a/status", &[]))
        .await
        .expect("infallible");
    assert_eq!(rest.status(), 500);
    let body = rest.into_body().collect().await.expect("body").to_bytes();
    assert!(
        !body.windows(4).any(|w| w == b"boom"),
        "the panic is not sent to the caller"
    );
    let grpc = envelope(Handler::Panics)
        .oneshot(request(
            "POST",
            "/scdemo.status.v1.StatusService/GetStatus",
            &[GRPC],
        ))
        .await
        .expect("infallible");
    assert_eq!(grpc.status(), 200);
    assert_eq!(grpc.headers()["grpc-status"], "13", "INTERNAL");
}

/// Log lines written to a buffer, as JSON objects.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_panic_is_one_error_line_with_the_requests_ids() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    // Other tests, on other threads, meet the access log's `enabled!`
    // callsite with no subscriber at the same time: one that registered
    // it while this one was being set keeps its interest at "never" (and
    // no line is written) until the cache is rebuilt with this one in it.
    tracing::callsite::rebuild_interest_cache();
    for (method, path, headers) in [
        ("GET", "/service-a/status", vec![]),
        (
            "POST",
            "/scdemo.status.v1.StatusService/GetStatus",
            vec![GRPC],
        ),
    ] {
        let mut headers = headers;
        headers.push(("x-request-id", "panic-1"));
        let response = envelope(Handler::Panics)
            .oneshot(request(method, path, &headers))
            .await
            .expect("infallible");
        let _ = response.into_body().collect().await;
    }
    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("UTF-8");
    let errors: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .filter(|line: &serde_json::Value| line["level"] == "ERROR")
        .collect();
    // One per request (REST, gRPC), each with the request's ids.
    assert_eq!(errors.len(), 2, "{text}");
    for line in &errors {
        assert_eq!(line["message"], "handler panicked", "{line}");
        assert_eq!(line["service"], "service-a", "{line}");
        assert_eq!(line["request_id"], "panic-1", "{line}");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
        assert_eq!(line["error"], "boom", "{line}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_deadline_answers_for_a_handler_that_does_not() {
    for (headers, expected) in [
        (
            vec![GRPC, ("grpc-timeout", "300m")],
            Duration::from_millis(300),
        ),
        (vec![GRPC, ("grpc-timeout", "1H")], Duration::from_secs(30)),
        (
            vec![
                ("content-type", "application/grpc-web+proto"),
                ("grpc-timeout", "200m"),
            ],
            Duration::from_millis(200),
        ),
        (vec![("grpc-timeout", "300m")], Duration::from_secs(30)),
    ] {
        let started = Instant::now();
        let response = envelope(Handler::Hangs)
            .oneshot(request("POST", "/x", &headers))
            .await
            .expect("infallible");
        assert_eq!(started.elapsed(), expected, "{headers:?}");
        if headers.len() == 2 {
            assert_eq!(response.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
        } else {
            assert_eq!(response.status(), 504);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_handler_sees_its_deadline() {
    let response = envelope(Handler::ShowsDeadline)
        .oneshot(request("POST", "/x", &[GRPC, ("grpc-timeout", "300m")]))
        .await
        .expect("infallible");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(body, "300");
}

#[tokio::test]
async fn browsers_get_cors_and_everyone_else_vary_origin() {
    let page = envelope(Handler::ShowsDeadline)
        .oneshot(request(
            "GET",
            "/service-a/status",
            &[("origin", "https://app.example")],
        ))
        .await
        .expect("infallible");
    assert_eq!(page.headers()["access-control-allow-origin"], "*");
    let curl = envelope(Handler::ShowsDeadline)
        .oneshot(request("GET", "/service-a/status", &[]))
        .await
        .expect("infallible");
    assert!(!curl.headers().contains_key("access-control-allow-origin"));
    assert_eq!(curl.headers()["vary"], "origin");
    assert!(curl.headers().contains_key("x-request-id"));
}
