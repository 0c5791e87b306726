//! Stand-in implementations of the Status and Health services for the
//! gateway's tests: fixed answers, chosen errors, and a record of which rpc
//! each request reached and the JSON of what it answered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking
#![allow(dead_code)] // each test file uses a part

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use status_api::v1::{
    GetPeerStatusRequest, GetPeerStatusResponse, GetStatusRequest, GetStatusResponse,
    ServiceStatus, WatchStatusRequest, WatchStatusResponse, status_service_server::StatusService,
};
use status_gateway::{RestRoutes, ServingStatusNow, StatusJson};
use tonic::{Code, Response, Status};
use tonic_health::{
    ServingStatus,
    pb::{
        HealthCheckRequest, HealthCheckResponse,
        health_check_response::ServingStatus as HealthStatus, health_server::Health,
    },
    server::{HealthReporter, HealthService},
};
use tower::ServiceExt;

/// What the stand-ins saw: the rpcs called (`package.Service.Method`) and
/// the proto3 JSON of each answer.
#[derive(Default)]
pub(crate) struct Record {
    pub(crate) calls: Mutex<Vec<(&'static str, serde_json::Value)>>,
    pub(crate) request_ids: Mutex<Vec<String>>,
}

impl Record {
    fn called<T>(&self, rpc: &'static str, request: &tonic::Request<T>, answer: serde_json::Value) {
        if let Some(id) = request.metadata().get("x-request-id") {
            let id = id.to_str().unwrap().to_owned();
            self.request_ids.lock().unwrap().push(id);
        }
        self.calls.lock().unwrap().push((rpc, answer));
    }
}

impl StandIn {
    fn status(&self) -> ServiceStatus {
        ServiceStatus {
            service: "service-x".into(),
            cpu_percent: *self.cpu_percent.lock().unwrap(),
            ..Default::default()
        }
    }
}

/// `/status` is GetStatus's answer, read as JSON without a request.
impl StatusJson for StandIn {
    fn status_json(&self) -> Result<Bytes, Status> {
        let answer = GetStatusResponse {
            status: Some(self.status()),
        };
        let json = serde_json::to_value(&answer).unwrap();
        self.record
            .calls
            .lock()
            .unwrap()
            .push(("scdemo.status.v1.StatusService.GetStatus", json));
        Ok(Bytes::from(serde_json::to_vec(&answer.status).unwrap()))
    }
}

/// Answers GetStatus with a fixed status, GetPeerStatus with a chosen
/// error (or a fixed answer).
#[derive(Default)]
pub(crate) struct StandIn {
    pub(crate) peer_error: Option<(Code, &'static str)>,
    /// Reported as cpu_percent; a test changes it between calls.
    pub(crate) cpu_percent: Mutex<f64>,
    pub(crate) record: Arc<Record>,
}

#[tonic::async_trait]
impl StatusService for StandIn {
    async fn get_status(
        &self,
        request: tonic::Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let answer = GetStatusResponse {
            status: Some(self.status()),
        };
        let json = serde_json::to_value(&answer).unwrap();
        self.record
            .called("scdemo.status.v1.StatusService.GetStatus", &request, json);
        Ok(Response::new(answer))
    }

    async fn get_peer_status(
        &self,
        request: tonic::Request<GetPeerStatusRequest>,
    ) -> Result<Response<GetPeerStatusResponse>, Status> {
        let answer = match self.peer_error {
            Some((code, message)) => Err(Status::new(code, message)),
            None => Ok(GetPeerStatusResponse {
                peer_address: "http://peer:1".into(),
                ..Default::default()
            }),
        };
        let json = answer.as_ref().map_or(serde_json::Value::Null, |a| {
            serde_json::to_value(a).unwrap()
        });
        self.record.called(
            "scdemo.status.v1.StatusService.GetPeerStatus",
            &request,
            json,
        );
        answer.map(Response::new)
    }

    type WatchStatusStream = tokio_stream::Empty<Result<WatchStatusResponse, Status>>;

    async fn watch_status(
        &self,
        _: tonic::Request<WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        Err(Status::unimplemented("not served over REST"))
    }
}

/// The real health service, reporting `serving` for the whole server.
pub(crate) async fn health(serving: ServingStatus) -> Arc<HealthService> {
    let reporter = HealthReporter::new();
    reporter.set_service_status("", serving).await;
    Arc::new(HealthService::from_health_reporter(reporter))
}

/// A Health service that answers SERVING and records the call.
#[derive(Default)]
pub(crate) struct RecordingHealth {
    pub(crate) record: Arc<Record>,
    /// Not ready at the first poll (as when the reporter is being written).
    pub(crate) waits: bool,
    /// What it says without a `Check` (None: `/healthcheck` must call it).
    pub(crate) now: Option<HealthStatus>,
}

impl ServingStatusNow for RecordingHealth {
    fn serving_status_now(&self) -> Option<HealthStatus> {
        self.now
    }
}

#[tonic::async_trait]
impl Health for RecordingHealth {
    async fn check(
        &self,
        request: tonic::Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        if self.waits {
            tokio::task::yield_now().await;
        }
        let answer = HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        };
        // The proto3 JSON of the answer (tonic-health's types have no serde).
        let json = serde_json::json!({ "status": "SERVING" });
        self.record
            .called("grpc.health.v1.Health.Check", &request, json);
        Ok(Response::new(answer))
    }

    type WatchStream = tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: tonic::Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not served over REST"))
    }
}

/// Sends one request through `routes`; answers the status and the JSON body.
pub(crate) async fn call<S, H>(
    routes: RestRoutes<S, H>,
    method: &str,
    path: &str,
) -> (StatusCode, serde_json::Value)
where
    S: StatusService + StatusJson,
    H: Health + ServingStatusNow,
{
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("x-request-id", "id-1")
        .body(Body::empty())
        .unwrap();
    let response = routes.oneshot(request).await.unwrap();
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}
