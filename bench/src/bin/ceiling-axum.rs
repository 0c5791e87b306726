//! The REST ceiling: a bare axum server answering `GET /service-a/status`
//! with fixed bytes (a real answer of the service, captured by run.sh) and
//! `GET /service-a/healthcheck` with `{"status":"SERVING"}`. Nothing else: no
//! logging, no middleware; the same tokio runtime defaults as the service.
//!
//!     ceiling-axum PORT STATUS_BODY_FILE

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark tool stops on the first error

use axum::{Router, body::Bytes, http::header::CONTENT_TYPE, routing::get, serve::ListenerExt};

const JSON: [(axum::http::HeaderName, &str); 1] = [(CONTENT_TYPE, "application/json")];

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, port, body_file] = args.as_slice() else {
        eprintln!("usage: ceiling-axum PORT STATUS_BODY_FILE");
        std::process::exit(2);
    };
    let status = Bytes::from(std::fs::read(body_file).expect("cannot read STATUS_BODY_FILE"));

    let app = Router::new()
        .route(
            "/service-a/status",
            get(move || {
                let status = status.clone();
                async move { (JSON, status) }
            }),
        )
        .route(
            "/service-a/healthcheck",
            get(|| async { (JSON, r#"{"status":"SERVING"}"#) }),
        );
    // The service sets TCP_NODELAY on its connections; so does the ceiling.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port.parse::<u16>().expect("PORT")))
        .await
        .expect("cannot listen")
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    axum::serve(listener, app).await.expect("server failed");
}
