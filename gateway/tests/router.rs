//! The gateway alone, with stand-in implementations, called with `oneshot`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::sync::{Arc, Mutex};

use common::{RecordingHealth, StandIn, call, health};
use http::StatusCode;
use status_gateway::RestRoutes;
use tonic::Code;
use tonic_health::{
    ServingStatus, pb::health_check_response::ServingStatus as HealthStatus, server::HealthService,
};

fn router(
    status: StandIn,
    health: Arc<HealthService>,
) -> (RestRoutes<StandIn, HealthService>, Arc<StandIn>) {
    let status = Arc::new(status);
    (
        status_gateway::RestRoutes::new("service-x", Arc::clone(&status), health),
        status,
    )
}

#[tokio::test]
async fn status_is_the_proto3_json_of_the_message_and_gets_the_headers() {
    let stand_in = StandIn {
        cpu_percent: Mutex::new(12.5),
        ..Default::default()
    };
    let (router, stand_in) = router(stand_in, health(ServingStatus::Serving).await);
    let (code, body) = call(router.clone(), "GET", "/service-x/status").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(body["service"], "service-x");
    assert_eq!(body["cpu_percent"], 12.5);
    // Each request reads the current status's JSON.
    *stand_in.cpu_percent.lock().unwrap() = 50.0;
    let (_, body) = call(router.clone(), "GET", "/service-x/status").await;
    assert_eq!(body["cpu_percent"], 50.0);
    // Default values are written out, not dropped, so the shape is stable.
    assert_eq!(body["memory_percent"], 0.0);
    assert_eq!(body["state"], "STATE_UNSPECIFIED");
    // The peer call carries the caller's request id.
    let (code, _) = call(router, "GET", "/service-x/other-status").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(*stand_in.record.request_ids.lock().unwrap(), ["id-1"]);
}

#[tokio::test]
async fn healthcheck_follows_the_health_service() {
    for (serving, code, text) in [
        (ServingStatus::Serving, StatusCode::OK, "SERVING"),
        (
            ServingStatus::NotServing,
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_SERVING",
        ),
    ] {
        let (router, _) = router(StandIn::default(), health(serving).await);
        let (status, body) = call(router, "GET", "/service-x/healthcheck").await;
        assert_eq!(
            (status, body),
            (code, serde_json::json!({ "status": text }))
        );

        // A health that knows its status now is not asked to check.
        let health = RecordingHealth {
            now: HealthStatus::from_str_name(text),
            ..Default::default()
        };
        let record = Arc::clone(&health.record);
        let routes = RestRoutes::new("service-x", Arc::new(StandIn::default()), Arc::new(health));
        let (status, body) = call(routes, "GET", "/service-x/healthcheck").await;
        assert_eq!(
            (status, body),
            (code, serde_json::json!({ "status": text }))
        );
        assert!(record.calls.lock().unwrap().is_empty(), "{text}: no Check");
    }
}

#[tokio::test]
async fn a_health_check_that_waits_is_answered_when_it_is_ready() {
    // The check is answered at the match when ready at once; one that is
    // not (the reporter being written) is awaited, with the caller's ids.
    for waits in [false, true] {
        let health = RecordingHealth {
            waits,
            ..Default::default()
        };
        let record = Arc::clone(&health.record);
        let routes = RestRoutes::new("service-x", Arc::new(StandIn::default()), Arc::new(health));
        let (status, body) = call(routes, "GET", "/service-x/healthcheck").await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, serde_json::json!({ "status": "SERVING" })),
            "waits: {waits}"
        );
        assert_eq!(record.calls.lock().unwrap().len(), 1, "waits: {waits}");
        let ids = record.request_ids.lock().unwrap().clone();
        assert_eq!(
            ids,
            if waits { vec!["id-1"] } else { vec![] },
            "waits: {waits}"
        );
    }
}

#[tokio::test]
async fn grpc_errors_become_matching_http_statuses() {
    for (code, http, shown) in [
        (
            Code::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "peer http://peer:1 is unavailable",
        ),
        (
            Code::DeadlineExceeded,
            StatusCode::GATEWAY_TIMEOUT,
            "peer http://peer:1 did not answer",
        ),
        (Code::InvalidArgument, StatusCode::BAD_REQUEST, "bad"),
        // Internals are logged, not sent.
        (
            Code::Internal,
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        ),
    ] {
        let message = if code == Code::Internal {
            "secret stack trace"
        } else {
            shown
        };
        let stand_in = StandIn {
            peer_error: Some((code, message)),
            ..Default::default()
        };
        let (router, _) = router(stand_in, health(ServingStatus::Serving).await);
        let (status, body) = call(router, "GET", "/service-x/other-status").await;
        assert_eq!(status, http, "{code:?}");
        // google.rpc.Status as grpc-gateway writes it, plus the code's name.
        assert_eq!(
            body,
            serde_json::json!({
                "code": code as i32,
                "status": status_gateway::grpc_code_name(code),
                "message": shown,
                "details": [],
            })
        );
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let (router, _) = router(StandIn::default(), health(ServingStatus::Serving).await);
    let (status, body) = call(router.clone(), "GET", "/service-y/status").await;
    assert_eq!(
        (status, &body["code"], &body["status"]),
        (
            StatusCode::NOT_FOUND,
            &serde_json::json!(5),
            &serde_json::json!("NOT_FOUND")
        )
    );
    // As grpc-gateway maps it: UNIMPLEMENTED, with HTTP 405 kept.
    let (status, body) = call(router, "DELETE", "/service-x/status").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        (&body["code"], &body["status"]),
        (&serde_json::json!(12), &serde_json::json!("UNIMPLEMENTED"))
    );
}
