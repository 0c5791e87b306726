//! Start and stop: SERVING only when ready, NOT_SERVING through the drain,
//! and a hard bound on stopping even with streams held open.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;

use std::time::Duration;

use common::{TestPair, bind, config, frozen_metrics, get_http1, start_on};
use http::StatusCode;
use status_api::v1::{GetStatusRequest, service_status::State};
use tokio::time::Instant;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn health_flips_at_once_and_requests_are_served_through_the_drain() {
    let drain = Duration::from_millis(1500);
    let pair = TestPair::start_with(|config| config.drain_delay = drain).await;
    let a = pair.a;
    let mut health = HealthClient::new(common::channel(a.address).await);
    let mut status = a.grpc().await;

    let stopping = tokio::spawn({
        let shutdown = a.shutdown.clone();
        async move {
            shutdown.cancel();
            let started = Instant::now();
            a.handle.await.expect("task").expect("serve Ok");
            started.elapsed()
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let rest = get_http1(a.address, "/service-a/healthcheck").await;
    assert_eq!(rest.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(rest.json(), serde_json::json!({ "status": "NOT_SERVING" }));
    for service in ["", "scdemo.status.v1.StatusService"] {
        let check = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .expect("still answering");
        assert_eq!(
            check.into_inner().status(),
            ServingStatus::NotServing,
            "{service:?}"
        );
    }
    // Still serving real requests, and saying it is draining.
    let answer = status
        .get_status(GetStatusRequest {})
        .await
        .expect("served while draining");
    assert_eq!(
        answer.into_inner().status.expect("status").state(),
        State::Draining
    );
    assert_eq!(
        get_http1(a.address, "/service-a/status").await.status,
        StatusCode::OK
    );

    let took = stopping.await.expect("stopped");
    assert!(took >= drain, "stopped before the drain delay: {took:?}");
    assert!(
        tokio::net::TcpStream::connect(a.address).await.is_err(),
        "still accepting after stop"
    );
}

#[tokio::test]
async fn open_streams_do_not_hold_shutdown_past_its_bound() {
    let bound = Duration::from_millis(800);
    let mut settings = config("service-a", "127.0.0.1:9".parse().expect("address"));
    settings.shutdown_timeout = bound;
    let a = start_on(bind().await, settings, frozen_metrics()).await;

    // Two streams that never end by themselves: ours and tonic-health's Watch.
    let mut watch = a.watch(Duration::from_millis(100)).await;
    let mut health = HealthClient::new(common::channel(a.address).await);
    let mut health_watch = health
        .watch(HealthCheckRequest::default())
        .await
        .expect("Watch")
        .into_inner();
    assert!(watch.next().await.expect("first status").is_ok());
    assert!(health_watch.next().await.expect("first health").is_ok());

    let started = Instant::now();
    a.shutdown.cancel();
    let served = tokio::time::timeout(bound * 4, a.handle)
        .await
        .expect("serve returned within the bound");
    served.expect("task").expect("serve Ok");
    assert!(
        started.elapsed() < bound * 2,
        "took {:?}",
        started.elapsed()
    );

    // Our own stream was ended, with a status that tells clients to go elsewhere.
    let ended = loop {
        match watch.next().await {
            Some(Ok(_)) => continue,
            Some(Err(status)) => break status,
            None => panic!("stream ended without a status"),
        }
    };
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");

    // tonic-health's Watch never ends by itself: the server ends it at the
    // stop, with the same status.
    let end = async {
        loop {
            match health_watch.next().await {
                // The NOT_SERVING update sent when the drain began.
                Some(Ok(update)) => assert_eq!(update.status(), ServingStatus::NotServing),
                Some(Err(status)) => return status,
                None => panic!("health Watch ended without a status"),
            }
        }
    };
    let ended = tokio::time::timeout(Duration::from_secs(1), end)
        .await
        .expect("ended with the stop");
    assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
}
