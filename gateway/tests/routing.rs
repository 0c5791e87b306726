//! What the REST routing answers for every method and path shape, pinned
//! to what axum's router answered before it was replaced by one match on
//! the path (the table was read from main 2026-12-06, f1b3daf): exact paths
//! only (no trailing slash, case or percent-decoding), JSON 404 inside and
//! outside the service's prefix, 405 with `Allow: GET,HEAD` for the four
//! paths, HEAD as GET without the body, gzip negotiated by tower-http, and
//! `Cache-Control: no-store` on rpc answers alone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::sync::Arc;

use axum::body::Body;
use common::{StandIn, health};
use http::{HeaderMap, Request, header};
use http_body_util::BodyExt;
use status_gateway::RestRoutes;
use tonic_health::ServingStatus;
use tower::ServiceExt;

/// What a test reads of an answer.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    status: u16,
    /// The JSON `status` (errors) or `service`/`status` of a 200, `""` for
    /// an empty body.
    what: String,
    gzip: bool,
    vary: Option<String>,
    no_store: bool,
    allow: Option<String>,
    content_length: Option<String>,
}

async fn answer(method: &str, path: &str, accept: Option<&str>) -> Answer {
    let health = health(ServingStatus::Serving).await;
    let routes = RestRoutes::new("service-x", Arc::new(StandIn::default()), health);
    let mut request = Request::builder().method(method).uri(path);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT_ENCODING, accept);
    }
    let response = routes
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers: HeaderMap = response.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let text = |name| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    let gzip = text(header::CONTENT_ENCODING).as_deref() == Some("gzip");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let what = if body.is_empty() {
        String::new()
    } else {
        let json: serde_json::Value = if gzip {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
                .unwrap();
            serde_json::from_str(&text).unwrap()
        } else {
            serde_json::from_slice(&body).unwrap()
        };
        let field = ["status", "service", "peer_address", "openapi"]
            .into_iter()
            .find(|field| json.get(field).is_some())
            .unwrap();
        match field {
            // The OpenAPI document: its version is not what is pinned here.
            "openapi" => "openapi".to_owned(),
            _ => format!("{field}={}", json[field].as_str().unwrap()),
        }
    };
    Answer {
        status,
        what,
        gzip,
        vary: text(header::VARY),
        no_store: text(header::CACHE_CONTROL).as_deref() == Some("no-store"),
        allow: text(header::ALLOW),
        // Only HEAD answers set it here; hyper writes it for the others.
        content_length: (method == "HEAD")
            .then(|| text(header::CONTENT_LENGTH))
            .flatten(),
    }
}

const NOT_FOUND: &str = "status=NOT_FOUND";
const VARY: Option<&str> = Some("accept-encoding");

/// (method, path, Accept-Encoding) and what main answered: status, body,
/// gzip, Vary, no-store, Allow, HEAD's Content-Length.
type Case<'a> = (
    &'a str,
    &'a str,
    Option<&'a str>,
    (
        u16,
        &'a str,
        bool,
        Option<&'a str>,
        bool,
        Option<&'a str>,
        Option<&'a str>,
    ),
);

#[tokio::test]
async fn routing_answers_as_axums_router_did() {
    #[rustfmt::skip]
    let table: &[Case<'_>] = &[
        // The routes; the 20-byte health body is too small to compress.
        ("GET", "/service-x/healthcheck", None, (200, "status=SERVING", false, None, true, None, None)),
        ("GET", "/service-x/healthcheck", Some("gzip"), (200, "status=SERVING", false, None, true, None, None)),
        ("GET", "/service-x/status", None, (200, "service=service-x", false, VARY, true, None, None)),
        ("GET", "/service-x/status", Some("gzip"), (200, "service=service-x", true, VARY, true, None, None)),
        ("GET", "/service-x/status", Some("br"), (200, "service=service-x", false, VARY, true, None, None)),
        ("GET", "/service-x/status", Some("gzip;q=0"), (200, "service=service-x", false, VARY, true, None, None)),
        ("GET", "/service-x/status", Some("deflate, gzip;q=0.5"), (200, "service=service-x", true, VARY, true, None, None)),
        ("GET", "/service-x/status?x=1", None, (200, "service=service-x", false, VARY, true, None, None)),
        ("GET", "http://h/service-x/status", None, (200, "service=service-x", false, VARY, true, None, None)),
        ("GET", "/service-x/other-status", Some("gzip"), (200, "peer_address=http://peer:1", true, VARY, true, None, None)),
        // The document is no rpc: cacheable.
        ("GET", "/service-x/openapi.json", None, (200, "openapi", false, VARY, false, None, None)),
        ("GET", "/service-x/openapi.json", Some("gzip"), (200, "openapi", true, VARY, false, None, None)),
        // HEAD: GET's head, its length, no body (so nothing to compress).
        ("HEAD", "/service-x/healthcheck", None, (200, "", false, None, true, None, Some("20"))),
        ("HEAD", "/service-x/status", Some("gzip"), (200, "", false, None, true, None, Some("219"))),
        ("HEAD", "/service-x/nope", Some("gzip"), (404, "", false, None, false, None, Some("70"))),
        // 404 inside and outside the prefix: exact paths only.
        ("GET", "/service-x/status/", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "/service-x/status/", Some("gzip"), (404, NOT_FOUND, true, VARY, false, None, None)),
        ("GET", "/service-x/healthcheck/", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "/service-x/status/extra", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "/service-x/", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "/service-x", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "/service-xy/status", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "/service-x//status", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "//service-x/status", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "/service-x/STATUS", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "/service-x/%73tatus", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "/service-y/status", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "/", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("GET", "*", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("POST", "/service-x/nope", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        ("DELETE", "/service-x/status/", None, (404, NOT_FOUND, false, VARY, false, None, None)),
        // 405 on the four paths, whatever the method, with Allow.
        ("POST", "/service-x/status", None, (405, "status=UNIMPLEMENTED", false, VARY, false, Some("GET,HEAD"), None)),
        ("POST", "/service-x/status", Some("gzip"), (405, "status=UNIMPLEMENTED", true, VARY, false, Some("GET,HEAD"), None)),
        ("DELETE", "/service-x/healthcheck", None, (405, "status=UNIMPLEMENTED", false, VARY, false, Some("GET,HEAD"), None)),
        ("PUT", "/service-x/other-status", None, (405, "status=UNIMPLEMENTED", false, VARY, false, Some("GET,HEAD"), None)),
        ("OPTIONS", "/service-x/openapi.json", None, (405, "status=UNIMPLEMENTED", false, VARY, false, Some("GET,HEAD"), None)),
        ("PATCH", "/service-x/status", None, (405, "status=UNIMPLEMENTED", false, VARY, false, Some("GET,HEAD"), None)),
        ("TRACE", "/service-x/status", None, (405, "status=UNIMPLEMENTED", false, VARY, false, Some("GET,HEAD"), None)),
        ("CONNECT", "/service-x/status", None, (405, "status=UNIMPLEMENTED", false, VARY, false, Some("GET,HEAD"), None)),
    ];
    for (method, path, accept, (status, what, gzip, vary, no_store, allow, content_length)) in table
    {
        let expected = Answer {
            status: *status,
            what: (*what).to_owned(),
            gzip: *gzip,
            vary: vary.map(str::to_owned),
            no_store: *no_store,
            allow: allow.map(str::to_owned),
            content_length: content_length.map(str::to_owned),
        };
        assert_eq!(
            answer(method, path, *accept).await,
            expected,
            "{method} {path} Accept-Encoding {accept:?}"
        );
    }
}
