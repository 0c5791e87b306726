//! The REST gateway over HTTP/1.1 and h2c, on both services.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use common::{REST_VERSIONS, TestPair, get, get_http1, send};
use http::{Method, StatusCode, Version};
use status_api::v1::{GetStatusRequest, ServiceStatus};

#[tokio::test]
async fn every_rest_path_answers_json_over_http1_and_h2c() {
    let pair = TestPair::start().await;
    for (service, peer) in [(&pair.a, &pair.b), (&pair.b, &pair.a)] {
        for version in REST_VERSIONS {
            let name = service.name;
            let health = get(
                service.address,
                &format!("/{name}/healthcheck"),
                version,
                &[],
            )
            .await;
            assert_eq!(health.status, StatusCode::OK, "{name} {version:?}");
            assert_eq!(health.content_type(), "application/json");
            assert_eq!(health.json(), serde_json::json!({ "status": "SERVING" }));

            let status = get(service.address, &format!("/{name}/status"), version, &[]).await;
            assert_eq!(status.status, StatusCode::OK, "{name} {version:?}");
            let body = status.json();
            assert_eq!(body["service"], name);
            assert_eq!(body["state"], "STATE_RUNNING");
            // proto3 JSON: timestamps Z-normalised.
            for field in ["start_time", "sample_time"] {
                let time = body[field].as_str().unwrap_or_default();
                assert!(
                    time.ends_with('Z') && !time.contains("+00:00"),
                    "{field}: {body}"
                );
            }
            // The original API's fields, with their meanings.
            assert!(
                body["cpu_percent"].is_number() && body["memory_percent"].is_number(),
                "{body}"
            );

            let other = get(
                service.address,
                &format!("/{name}/other-status"),
                version,
                &[],
            )
            .await;
            assert_eq!(
                other.status,
                StatusCode::OK,
                "{name} {version:?}: {:?}",
                other.body
            );
            let body = other.json();
            assert_eq!(body["status"]["service"], peer.name, "{body}");
            assert_eq!(body["peer_address"], peer.url());
            assert!(
                body["latency"].as_str().is_some_and(|l| l.ends_with('s')),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn rest_json_is_the_proto3_json_of_the_grpc_answer() {
    let pair = TestPair::start().await;
    let grpc_answer = pair
        .a
        .grpc()
        .await
        .get_status(GetStatusRequest {})
        .await
        .expect("GetStatus");
    let grpc_status = grpc_answer.into_inner().status.expect("status set");

    let rest = get_http1(pair.a.address, "/service-a/status").await;
    // The very bytes the proto3 JSON mapping gives for the gRPC message...
    let expected = serde_json::to_string(&grpc_status).expect("serialize");
    assert_eq!(std::str::from_utf8(&rest.body).expect("UTF-8"), expected);
    // ...and they parse back into the same message (exact floats: the
    // float_roundtrip feature of serde_json, enabled for tests).
    let parsed: ServiceStatus =
        serde_json::from_slice(&rest.body).expect("REST JSON is proto3 JSON");
    assert_eq!(parsed, grpc_status);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_json_errors_not_200() {
    let pair = TestPair::start().await;
    for version in REST_VERSIONS {
        for path in [
            "/",
            "/service-a",
            "/service-a/nope",
            "/service-b/status",
            "/scdemo.status.v1.StatusService/GetStatus",
        ] {
            let reply = get(pair.a.address, path, version, &[]).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path} {version:?}");
            assert_eq!(reply.json()["status"], "NOT_FOUND");
        }
    }
    let post = send(
        pair.a.address,
        Method::POST,
        "/service-a/status",
        Version::HTTP_11,
        &[],
    )
    .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.json()["status"], "UNIMPLEMENTED");
}

#[tokio::test]
async fn every_response_echoes_or_assigns_a_request_id() {
    let pair = TestPair::start().await;
    let given = get(
        pair.a.address,
        "/service-a/status",
        Version::HTTP_11,
        &[("x-request-id", "given-42")],
    )
    .await;
    assert_eq!(given.headers["x-request-id"], "given-42");
    let assigned = get_http1(pair.a.address, "/service-a/nope").await;
    let id = assigned.headers["x-request-id"].to_str().expect("ascii");
    assert_eq!(id.len(), 36, "a UUID: {id}");
}

#[tokio::test]
async fn head_is_gets_head_and_paths_match_exactly_on_the_wire() {
    let pair = TestPair::start().await;
    for version in REST_VERSIONS {
        for path in ["/service-a/status", "/service-a/healthcheck"] {
            let got = get(pair.a.address, path, version, &[]).await;
            let head = send(pair.a.address, Method::HEAD, path, version, &[]).await;
            assert_eq!(head.status, got.status, "{path} {version:?}");
            assert!(head.body.is_empty(), "{path} {version:?}");
            assert_eq!(head.headers["content-type"], "application/json");
            assert_eq!(head.headers["cache-control"], "no-store");
            // The status is rebuilt every second; its length may differ by
            // a few digits between the two requests.
            let length: usize = head.headers["content-length"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(length.abs_diff(got.body.len()) < 8, "{path} {version:?}");
        }
        for path in [
            "/service-a/status/",
            "/service-a/Status",
            "/service-a//status",
        ] {
            let reply = get(pair.a.address, path, version, &[]).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path} {version:?}");
            assert_eq!(reply.json()["status"], "NOT_FOUND");
        }
        let delete = send(
            pair.a.address,
            Method::DELETE,
            "/service-a/healthcheck",
            version,
            &[],
        )
        .await;
        assert_eq!(delete.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(delete.headers["allow"], "GET,HEAD");
    }
}

/// The `Vary` tokens of an answer, from all its `Vary` lines.
fn vary(reply: &common::Reply) -> Vec<String> {
    let mut tokens: Vec<String> = reply
        .headers
        .get_all(http::header::VARY)
        .iter()
        .flat_map(|value| value.to_str().expect("ascii").split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .collect();
    tokens.sort();
    tokens
}

#[tokio::test]
async fn answers_vary_on_accept_encoding_and_origin_or_carry_cors() {
    let pair = TestPair::start().await;
    let a = pair.a.address;
    for version in REST_VERSIONS {
        // The health answer is too small to gzip: it varies on Origin alone.
        for (path, varies_on) in [
            ("/service-a/status", &["accept-encoding", "origin"][..]),
            ("/service-a/healthcheck", &["origin"][..]),
        ] {
            // Without Origin: no CORS headers, but the answer depends on
            // Origin (and on Accept-Encoding when big enough to gzip).
            for encoding in [&[][..], &[("accept-encoding", "gzip")][..]] {
                let reply = get(a, path, version, encoding).await;
                assert!(
                    !reply.headers.contains_key("access-control-allow-origin"),
                    "{path} {version:?}"
                );
                assert_eq!(vary(&reply), varies_on, "{path} {version:?} {encoding:?}");
            }
            // A page's request: CORS's own answer, Origin in its Vary.
            let page = get(a, path, version, &[("origin", "https://app.example")]).await;
            assert_eq!(page.headers["access-control-allow-origin"], "*");
            let tokens = vary(&page);
            assert!(
                varies_on
                    .iter()
                    .all(|token| tokens.iter().any(|t| t == token)),
                "{path} {version:?}: {tokens:?}"
            );
        }
    }
}
