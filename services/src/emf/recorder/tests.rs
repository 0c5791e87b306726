//! The EMF recorder's tests: route lookup, counts reported once per route
//! and class, and each line declaring exactly the metrics it holds.

use super::*;

#[test]
fn unknown_routes_count_as_other() {
    let recorder = Recorder::new("service-a", ["/service-a/status".to_owned()]);
    assert_eq!(recorder.route("/service-a/status"), RouteId(0));
    assert_eq!(
        recorder.route("/wp-admin"),
        recorder.route("/anything/else")
    );
    recorder.record_request(
        recorder.route("/wp-admin"),
        CodeClass::ClientError,
        Duration::from_millis(1),
    );
    let lines = recorder.take_lines("ns", 0, Gauges::default());
    assert_eq!(lines[0][catalog::ROUTE], OTHER_ROUTE);
    assert_eq!(lines[0][catalog::CODE_CLASS], "4xx");
}

#[test]
fn every_known_route_is_found_and_nothing_else() {
    let known: Vec<String> = [
        "/service-a/healthcheck",
        "/service-a/status",
        "/service-a/other-status",
        "/service-a/openapi.json",
        "scdemo.status.v1.StatusService/GetStatus",
        "scdemo.status.v1.StatusService/GetPeerStatus",
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
    ]
    .map(str::to_owned)
    .into();
    let recorder = Recorder::new("service-a", known.clone());
    for (index, route) in known.iter().enumerate() {
        assert_eq!(recorder.route(route), RouteId(index), "{route}");
        assert!(recorder.is_known(recorder.route(route)));
    }
    let other = recorder.route(OTHER_ROUTE);
    assert!(!recorder.is_known(other));
    for unknown in [
        "",
        "/",
        "/service-a/statuS",
        "/service-a/status/",
        "/service-b/status",
        "grpc.health.v1.Health/Chec",
        "other",
    ] {
        assert_eq!(recorder.route(unknown), other, "{unknown:?}");
    }
}

#[test]
fn counts_are_reported_once_per_route_and_class() {
    let recorder = Recorder::new("service-a", ["/service-a/status".to_owned()]);
    let route = recorder.route("/service-a/status");
    for _ in 0..5 {
        recorder.record_request(route, CodeClass::Success, Duration::from_millis(2));
    }
    recorder.record_request(route, CodeClass::ServerError, Duration::from_millis(900));
    recorder.record_peer_call(false, Duration::from_millis(3));
    let lines = recorder.take_lines("ns", 1_700_000_000_000, Gauges::default());
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let ok = &lines[0];
    assert_eq!(
        (ok["Requests"].as_u64(), ok["Errors"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(ok["Latency"]["Counts"], json!([5]));
    let failed = &lines[1];
    assert_eq!(
        (failed["Requests"].as_u64(), failed["Errors"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (
            lines[2]["PeerCalls"].as_u64(),
            lines[2]["PeerErrors"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // Reset: the next window starts from zero.
    let next = recorder.take_lines("ns", 1_700_000_060_000, Gauges::default());
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["PeerCalls"], 0);
}

/// The metric names a line declares in its directive.
fn declared(line: &Value) -> Vec<&str> {
    line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|metric| metric["Name"].as_str().unwrap())
        .collect()
}

#[test]
fn a_line_declares_exactly_the_metrics_it_has() {
    let recorder = Recorder::new("service-a", ["/service-a/status".to_owned()]);
    // A window without peer calls: no peer latency to declare.
    let quiet = recorder.take_lines("ns", 0, Gauges::default());
    let service = &quiet[0];
    assert!(service.get(catalog::PEER_LATENCY.name).is_none());
    assert!(!declared(service).contains(&catalog::PEER_LATENCY.name));
    recorder.record_peer_call(true, Duration::from_millis(3));
    recorder.record_request(
        recorder.route("/service-a/status"),
        CodeClass::Success,
        Duration::from_millis(1),
    );
    let busy = recorder.take_lines("ns", 0, Gauges::default());
    for line in quiet.iter().chain(&busy) {
        for name in declared(line) {
            assert!(
                line.get(name).is_some_and(|v| !v.is_null()),
                "{name} declared, absent: {line}"
            );
        }
    }
    assert!(declared(&busy[1]).contains(&catalog::PEER_LATENCY.name));
}

#[test]
fn dropped_trace_spans_are_written_per_line_only_while_exporting() {
    let recorder = Recorder::new("service-a", []);
    let dropped = |total: Option<u64>| {
        let gauges = Gauges {
            trace_spans_dropped_total: total,
            ..Gauges::default()
        };
        let lines = recorder.take_lines("ns", 0, gauges);
        let line = &lines[lines.len() - 1];
        let declared = declared(line).contains(&catalog::TRACE_SPANS_DROPPED.name);
        let value = line.get(catalog::TRACE_SPANS_DROPPED.name).cloned();
        assert_eq!(declared, value.is_some(), "{line}");
        value.and_then(|v| v.as_u64())
    };
    // Export off: neither written nor declared.
    assert_eq!(dropped(None), None);
    // Export on: what was dropped since the last line, zero included.
    assert_eq!(dropped(Some(0)), Some(0));
    assert_eq!(dropped(Some(5)), Some(5));
    assert_eq!(dropped(Some(8)), Some(3));
    assert_eq!(dropped(Some(8)), Some(0));
}
