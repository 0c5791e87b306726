//! What the tower-http layers add to REST answers: gzip on request, no
//! caching of statuses, CORS for browsers; and the 405 `Allow` header.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::sync::Arc;

use axum::body::Body;
use common::{StandIn, health};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use status_gateway::{RestBody, RestRoutes};
use tonic_health::{ServingStatus, server::HealthService};
use tower::{Layer, ServiceExt};

async fn router() -> RestRoutes<StandIn, HealthService> {
    let health = health(ServingStatus::Serving).await;
    status_gateway::RestRoutes::new("service-x", Arc::new(StandIn::default()), health)
}

async fn send(
    router: RestRoutes<StandIn, HealthService>,
    request: Request<Body>,
) -> http::Response<RestBody> {
    router.oneshot(request).await.unwrap()
}

fn get(path: &str) -> http::request::Builder {
    Request::builder().method("GET").uri(path)
}

#[tokio::test]
async fn answers_are_gzipped_only_when_asked() {
    for (accept, expected) in [
        (Some("gzip"), Some("gzip")),
        (Some("br"), None),
        (None, None),
    ] {
        let mut request = get("/service-x/status");
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT_ENCODING, accept);
        }
        let response = send(router().await, request.body(Body::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::OK);
        let encoding = response.headers().get(header::CONTENT_ENCODING);
        assert_eq!(
            encoding.map(|v| v.to_str().unwrap()),
            expected,
            "{accept:?}"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = if expected.is_some() {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
                .unwrap();
            serde_json::from_str(&text).unwrap()
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        assert_eq!(json["service"], "service-x");
    }
}

#[tokio::test]
async fn rpc_answers_are_never_cached() {
    for path in [
        "/service-x/status",
        "/service-x/healthcheck",
        "/service-x/other-status",
    ] {
        let response = send(router().await, get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(
            response.headers()[header::CACHE_CONTROL],
            "no-store",
            "{path}"
        );
    }
}

#[tokio::test]
async fn wrong_methods_name_the_allowed_ones() {
    let request = Request::builder()
        .method("POST")
        .uri("/service-x/status")
        .body(Body::empty())
        .unwrap();
    let response = send(router().await, request).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let allow = response
        .headers()
        .get(header::ALLOW)
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(allow.as_deref(), Some("GET,HEAD"));
}

#[tokio::test]
async fn browsers_get_cors_answers_for_rest_and_grpc_web_preflights() {
    let app = status_gateway::cors().layer(router().await);
    // A gRPC-Web preflight, as a browser sends it before the POST.
    let preflight = Request::builder()
        .method("OPTIONS")
        .uri("/scdemo.status.v1.StatusService/GetStatus")
        .header(header::ORIGIN, "https://app.example")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,x-grpc-web,x-user-agent",
        )
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(preflight).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers();
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap();
    assert!(
        allowed.contains("x-grpc-web") && allowed.contains("x-user-agent"),
        "{allowed}"
    );

    let request = get("/service-x/status")
        .header(header::ORIGIN, "https://app.example")
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let exposed = response.headers()[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap();
    assert!(
        exposed.contains("grpc-status") && exposed.contains("x-request-id"),
        "{exposed}"
    );
    // Requests without an Origin never reach this policy: the server's
    // envelope sends only browsers' requests through it
    // (services/src/server/app/tests.rs, browsers_get_cors_and_everyone_else_vary_origin).
}
