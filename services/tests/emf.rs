//! The EMF metric lines: every line a service writes passes a structural
//! check of CloudWatch's Embedded Metric Format specification, and the
//! counts add up to the requests that were sent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;
use common::free_port;

use std::{
    collections::HashMap,
    io::Read,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use status_services::emf::catalog;

const BINARY: &str = env!("CARGO_BIN_EXE_status-service");

/// CloudWatch's units (MetricDatum.Unit).
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks `line` against the EMF specification's document structure: the
/// `_aws` metadata (Timestamp, CloudWatchMetrics directives with Namespace,
/// Dimensions and Metrics), every dimension a string member of the root,
/// every declared metric present, as a member holding a number, up to 100
/// numbers, or a Values/Counts pair of equal length.
fn check_emf(line: &Value) -> Result<(), String> {
    let root = line.as_object().ok_or("not an object")?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no _aws object")?;
    aws.get("Timestamp")
        .and_then(Value::as_u64)
        .ok_or("no Timestamp in ms")?;
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or("no CloudWatchMetrics")?;
    for directive in directives {
        let namespace = directive["Namespace"].as_str().ok_or("no Namespace")?;
        if namespace.is_empty() || namespace.len() > 255 {
            return Err(format!("bad Namespace {namespace:?}"));
        }
        let sets = directive["Dimensions"].as_array().ok_or("no Dimensions")?;
        for set in sets {
            let names = set.as_array().ok_or("a DimensionSet is not an array")?;
            if names.len() > 30 {
                return Err("more than 30 dimensions".into());
            }
            for name in names {
                let name = name.as_str().ok_or("a dimension name is not a string")?;
                if !root.get(name).is_some_and(Value::is_string) {
                    return Err(format!("dimension {name} is not a string member"));
                }
            }
        }
        let metrics = directive["Metrics"].as_array().ok_or("no Metrics")?;
        if metrics.is_empty() || metrics.len() > 100 {
            return Err("Metrics must hold 1 to 100 definitions".into());
        }
        for metric in metrics {
            let name = metric["Name"].as_str().ok_or("a metric has no Name")?;
            if let Some(unit) = metric.get("Unit") {
                let unit = unit.as_str().ok_or("Unit is not a string")?;
                if !UNITS.contains(&unit) {
                    return Err(format!("{name}: unknown unit {unit}"));
                }
            }
            match root.get(name) {
                // The specification: every metric a directive declares
                // must be a member of the root.
                None => return Err(format!("{name} is declared but absent")),
                Some(Value::Number(_)) => {}
                Some(Value::Array(values))
                    if values.len() <= 100 && values.iter().all(Value::is_number) => {}
                Some(Value::Object(histogram)) => {
                    let values = histogram["Values"].as_array().ok_or("no Values")?;
                    let counts = histogram["Counts"].as_array().ok_or("no Counts")?;
                    if values.len() != counts.len() || values.is_empty() || values.len() > 100 {
                        return Err(format!("{name}: bad Values/Counts"));
                    }
                    if !values.iter().chain(counts).all(Value::is_number) {
                        return Err(format!("{name}: non-numbers"));
                    }
                }
                Some(other) => return Err(format!("{name}: not a metric value: {other}")),
            }
        }
    }
    Ok(())
}

#[test]
fn the_checker_rejects_what_the_specification_rejects() {
    let good = serde_json::json!({
        "_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "n", "Dimensions": [["Service"]],
            "Metrics": [{"Name": "Requests", "Unit": "Count"}]}]},
        "Service": "a", "Requests": 3
    });
    assert_eq!(check_emf(&good), Ok(()));
    for (path, value) in [
        ("/_aws/Timestamp", Value::Null),
        ("/_aws/CloudWatchMetrics/0/Namespace", Value::from("")),
        ("/Service", Value::from(7)),
        (
            "/_aws/CloudWatchMetrics/0/Metrics/0/Unit",
            Value::from("Requests"),
        ),
        ("/Requests", Value::from("3")),
    ] {
        let mut bad = good.clone();
        *bad.pointer_mut(path).expect(path) = value;
        assert!(check_emf(&bad).is_err(), "{path} accepted: {bad}");
    }
    // A declared metric the line does not have.
    let mut absent = good.clone();
    absent.as_object_mut().expect("object").remove("Requests");
    assert!(
        check_emf(&absent).is_err(),
        "absent metric accepted: {absent}"
    );
}

fn serve(name: &str, port: u16, peer_port: u16) -> Child {
    Command::new(BINARY)
        .arg("serve")
        .env("SERVICE_NAME", name)
        .env("SERVER_PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("PEER_URL", format!("http://127.0.0.1:{peer_port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .env("EMF_INTERVAL", "1s")
        .env("METRICS_NAMESPACE", "scdemo-test")
        .env("DRAIN_DELAY", "0s")
        .stdout(Stdio::piped())
        .spawn()
        .expect("starts")
}

/// One HTTP/1.1 GET on a new connection; the status code.
fn get(port: u16, path: &str) -> u16 {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer[9..12].parse().expect("a status line")
}

#[test]
fn a_service_under_load_publishes_emf_lines_that_add_up() {
    let (a_port, b_port) = (free_port(), free_port());
    let mut a = serve("service-a", a_port, b_port);
    let mut b = serve("service-b", b_port, a_port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get_or_zero(a_port, "/service-a/healthcheck") != 200
        || get_or_zero(b_port, "/service-b/healthcheck") != 200
    {
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = [
        ("/service-a/status", 200, 40),
        ("/service-a/other-status", 200, 15),
        ("/service-a/nope", 404, 5),
    ];
    // Across at least one write, so lines from more than one window add up.
    for (i, (path, status, count)) in sent.iter().enumerate() {
        for _ in 0..*count {
            assert_eq!(get(a_port, path), *status, "{path}");
        }
        if i == 0 {
            std::thread::sleep(Duration::from_millis(1200));
        }
    }
    // SIGTERM: the last lines are written at the stop.
    for child in [&mut a, &mut b] {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill");
    }
    let mut stdout = String::new();
    a.stdout
        .take()
        .expect("piped")
        .read_to_string(&mut stdout)
        .expect("read");
    assert!(a.wait().expect("exits").success());
    b.wait().expect("b exits");

    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .filter(|l: &Value| l.get("_aws").is_some())
        .collect();
    assert!(lines.len() >= 4, "{stdout}");
    let mut requests: HashMap<(String, String), u64> = HashMap::new();
    let (mut peer_calls, mut latency_counts) = (0, 0);
    for line in &lines {
        check_emf(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "scdemo-test");
        assert_eq!(line[catalog::SERVICE], "service-a");
        // Only metrics of the catalogue, with its units.
        for metric in directive["Metrics"].as_array().expect("metrics") {
            let spec = catalog::ALL
                .iter()
                .find(|spec| spec.name == metric["Name"])
                .unwrap_or_else(|| panic!("{metric} is not in the catalogue"));
            assert_eq!(metric["Unit"], spec.unit);
        }
        if let Some(route) = line[catalog::ROUTE].as_str() {
            let class = line[catalog::CODE_CLASS]
                .as_str()
                .expect("class")
                .to_owned();
            *requests.entry((route.to_owned(), class)).or_default() +=
                line["Requests"].as_u64().expect("count");
            latency_counts += line["Latency"]["Counts"]
                .as_array()
                .expect("histogram")
                .iter()
                .map(|c| c.as_u64().expect("count"))
                .sum::<u64>();
        } else {
            peer_calls += line["PeerCalls"].as_u64().expect("PeerCalls");
            assert!(line["ProcessMemory"].as_u64().expect("ProcessMemory") > 0);
        }
    }
    for (route, class, count) in [
        ("/service-a/status", "2xx", 40),
        ("/service-a/other-status", "2xx", 15),
        ("other", "4xx", 5),
    ] {
        assert_eq!(
            requests.get(&(route.into(), class.into())),
            Some(&count),
            "{route} {class}: {requests:?}"
        );
    }
    // Health checks of the start-up wait are requests too: 503 (5xx) while
    // warming up, 200 once SERVING.
    let health: u64 = requests
        .iter()
        .filter(|((route, _), _)| route == "/service-a/healthcheck")
        .map(|(_, count)| count)
        .sum();
    assert!(health >= 1, "{requests:?}");
    assert_eq!(
        latency_counts,
        40 + 15 + 5 + health,
        "one latency per request"
    );
    assert_eq!(peer_calls, 15);
}

fn get_or_zero(port: u16, path: &str) -> u16 {
    std::panic::catch_unwind(|| get(port, path)).unwrap_or(0)
}
