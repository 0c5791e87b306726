//! The binary itself: configuration errors, signals, client subcommands.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;
use common::free_port;

use std::{
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_status-service");

/// Runs the binary to its end, or for at most 20 s: a command expected to
/// exit that serves instead is killed, and its test fails on the exit code.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the binary runs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    child.wait_with_output().expect("the binary ends")
}

/// A configuration error: exit 64 and one line on stderr that contains
/// every one of `needles`.
fn assert_refused_at_start(output: &Output, case: &str, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{case}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{case}: one line: {stderr}"
    );
    for needle in needles {
        assert!(stderr.contains(needle), "{case}: no {needle:?} in {stderr}");
    }
}

#[test]
fn bad_configuration_exits_64_with_one_line_naming_variable_and_value() {
    for (name, value) in [
        ("SERVER_PORT", "0"),
        ("SERVER_PORT", "70000"),
        ("SERVER_PORT", "http"),
        ("PEER_URL", "ftp://service-b-sc:8202"),
        ("PEER_URL", "service-b-sc:8202"),
        ("SERVICE_NAME", ""),
        ("SERVICE_NAME", "Service A"),
        ("DRAIN_DELAY", "soon"),
        ("LOG_FORMAT", "xml"),
        // tonic has no TLS here: https would go out as plaintext h2c.
        ("PEER_URL", "https://service-b-sc:8202"),
        ("PEER_URL", "HTTPS://service-b-sc:8202"),
        ("MAX_PEER_CALLS", "0"),
    ] {
        let output = run(&["serve"], &[(name, value)]);
        assert_refused_at_start(
            &output,
            &format!("{name}={value}"),
            &[name, &format!("'{value}'")],
        );
    }
}

/// Every duration setting, with a value of each kind it must refuse: too
/// large to add to the clock (it used to pass and then panic on every
/// request), or outside the setting's own bounds.
const BAD_DURATIONS: &[(&str, &str)] = &[
    ("DRAIN_DELAY", "300000000000y"),
    ("SHUTDOWN_TIMEOUT", "300000000000y"),
    ("PEER_CONNECT_TIMEOUT", "300000000000y"),
    ("PEER_REQUEST_TIMEOUT", "300000000000y"),
    ("PEER_KEEPALIVE_INTERVAL", "300000000000y"),
    ("PEER_KEEPALIVE_INTERVAL", "1ms"),
    ("PEER_DEADLINE_MARGIN", "300000000000y"),
    ("EMF_INTERVAL", "300000000000y"),
    ("EMF_INTERVAL", "1ns"),
    ("METRICS_INTERVAL", "300000000000y"),
    ("REQUEST_TIMEOUT", "300000000000y"),
    ("REQUEST_TIMEOUT", "25h"),
    ("HEADER_READ_TIMEOUT", "300000000000y"),
    ("FIRST_BYTE_TIMEOUT", "300000000000y"),
    ("CONNECTION_IDLE_TIMEOUT", "300000000000y"),
    ("HTTP2_KEEPALIVE_INTERVAL", "300000000000y"),
    ("HTTP2_KEEPALIVE_INTERVAL", "1ms"),
    ("TCP_KEEPALIVE", "300000000000y"),
    ("TCP_KEEPALIVE", "32768s"),
    ("TCP_KEEPALIVE", "500ms"),
];

#[test]
fn durations_out_of_bounds_exit_64_naming_variable_and_value() {
    for command in ["serve", "local"] {
        for (name, value) in BAD_DURATIONS {
            let output = run(&[command], &[(name, value)]);
            assert_refused_at_start(
                &output,
                &format!("{command} {name}={value}"),
                &[name, &format!("'{value}'"), "must be"],
            );
        }
    }
}

/// Settings valid alone that break the service together: refused at start.
#[test]
fn settings_that_contradict_each_other_exit_64_naming_both() {
    for (env, names) in [
        // Every request without grpc-timeout would have no time left for the peer.
        (
            &[("PEER_DEADLINE_MARGIN", "30s")][..],
            ["PEER_DEADLINE_MARGIN", "REQUEST_TIMEOUT"],
        ),
        (
            &[("REQUEST_TIMEOUT", "1s"), ("PEER_DEADLINE_MARGIN", "500ms")],
            ["PEER_DEADLINE_MARGIN", "REQUEST_TIMEOUT"],
        ),
        // Calls beyond the peer's stream limit would queue in the HTTP/2
        // client and end DEADLINE_EXCEEDED instead of UNAVAILABLE.
        (
            &[("MAX_PEER_CALLS", "101")],
            ["MAX_PEER_CALLS", "HTTP2_MAX_CONCURRENT_STREAMS"],
        ),
        (
            &[
                ("HTTP2_MAX_CONCURRENT_STREAMS", "10"),
                ("MAX_PEER_CALLS", "11"),
            ],
            ["MAX_PEER_CALLS", "HTTP2_MAX_CONCURRENT_STREAMS"],
        ),
    ] {
        for command in ["serve", "local"] {
            let output = run(&[command], env);
            assert_refused_at_start(&output, &format!("{command} {env:?}"), &names);
        }
    }
}

#[test]
fn status_refuses_https_rather_than_send_it_in_plaintext() {
    let output = run(
        &["status", "https://127.0.0.1:9", "--timeout", "500ms"],
        &[],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("https is not supported"), "{stderr}");
}

#[test]
fn an_unknown_service_without_port_is_a_configuration_error() {
    let output = run(&["serve"], &[("SERVICE_NAME", "service-c")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("SERVICE_NAME=service-c"), "{stderr}");
}

#[test]
fn help_lists_every_environment_variable() {
    let output = run(&["serve", "--help"], &[]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "SERVICE_NAME",
        "SERVER_PORT",
        "PEER_URL",
        "BIND_ADDRESS",
        "DRAIN_DELAY",
        "LOG_FORMAT",
        "SHUTDOWN_TIMEOUT",
        "PEER_CONNECT_TIMEOUT",
        "PEER_REQUEST_TIMEOUT",
        "PEER_KEEPALIVE_INTERVAL",
        "METRICS_INTERVAL",
        "ECS_CONTAINER_METADATA_URI_V4",
    ] {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "{variable} missing from:\n{help}"
        );
    }
}

/// `serve` as service-b on loopback `port` (its peer: nothing) with `env`
/// added, once its health check passes.
fn serve_service_b(port: &str, env: &[(&str, &str)]) -> std::process::Child {
    let mut server = Command::new(BINARY)
        .arg("serve")
        .env_clear()
        .envs([
            ("SERVICE_NAME", "service-b"),
            ("SERVER_PORT", port),
            ("BIND_ADDRESS", "127.0.0.1"),
            ("PEER_URL", "http://127.0.0.1:9"),
        ])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    let health = [("SERVICE_NAME", "service-b"), ("SERVER_PORT", port)];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !run(&["healthcheck"], &health).status.success() {
        if Instant::now() >= deadline {
            let _ = server.kill();
            panic!("never healthy: {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

#[test]
fn serve_answers_healthcheck_and_status_then_exits_0_on_sigterm() {
    let port = free_port().to_string();
    let mut server = serve_service_b(
        &port,
        &[("DRAIN_DELAY", "200ms"), ("SHUTDOWN_TIMEOUT", "1s")],
    );
    let env = [
        ("SERVICE_NAME", "service-b"),
        ("SERVER_PORT", port.as_str()),
    ];
    let status = run(&["status", &format!("127.0.0.1:{port}")], &[]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("status prints JSON");
    assert_eq!(json["status"]["service"], "service-b");

    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = server.wait().expect("server exits");
    assert_eq!(exit.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    // JSON log lines by default, with the bound address and version at start.
    let mut stdout = String::new();
    std::io::Read::read_to_string(server.stdout.as_mut().expect("piped"), &mut stdout)
        .expect("read");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is JSON"))
        .collect();
    let line = |message: &str| {
        lines
            .iter()
            .find(|line| line["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in:\n{stdout}"))
    };
    let listening = line("listening");
    assert_eq!(listening["address"], format!("127.0.0.1:{port}"));
    assert_eq!(listening["version"], env!("CARGO_PKG_VERSION"));
    // The soft open-file limit was raised to the hard one, and said so.
    let files = line("open-file limit");
    assert_eq!(files["soft"], files["hard"], "{files}");
    assert_eq!(lines.last().expect("lines")["message"], "stopped");

    // Unhealthy once it is gone.
    assert_eq!(run(&["healthcheck"], &env).status.code(), Some(1));
}

#[test]
fn status_of_an_unreachable_address_fails_cleanly() {
    let output = run(&["status", "127.0.0.1:9", "--timeout", "500ms"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).starts_with("error: cannot connect to 127.0.0.1:9")
    );
}

#[test]
fn a_second_signal_exits_at_once_during_the_drain() {
    let port = free_port().to_string();
    let mut server = Command::new(BINARY)
        .args([
            "serve",
            "--service-name",
            "service-a",
            "--server-port",
            &port,
        ])
        .args([
            "--bind-address",
            "127.0.0.1",
            "--peer-url",
            "http://127.0.0.1:9",
        ])
        .args(["--drain-delay", "30s"])
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .spawn()
        .expect("server starts");
    let env = [("SERVER_PORT", port.as_str())];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !run(&["healthcheck"], &env).status.success() {
        assert!(Instant::now() < deadline, "never healthy");
        std::thread::sleep(Duration::from_millis(20));
    }
    let signal = |name: &str| {
        let sent = Command::new("kill")
            .args([name, &server.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
    };
    signal("-TERM");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    signal("-INT");
    let exit = server.wait().expect("server exits");
    assert_eq!(
        exit.code(),
        Some(130),
        "the second signal ends the 30 s drain"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The lines logged up to the exit were written, the last one included.
    let mut stdout = String::new();
    std::io::Read::read_to_string(server.stdout.as_mut().expect("piped"), &mut stdout)
        .expect("read");
    let messages: Vec<String> = stdout
        .lines()
        .map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            line["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(
        messages.last().map(String::as_str),
        Some("second signal: exiting now"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("draining")),
        "{messages:?}"
    );
}

/// A stream held open past SHUTDOWN_TIMEOUT is closed at the bound, and the
/// lines written then (the warning, the stream's access line, "stopped")
/// still reach stdout: the log writer outlives every connection task.
#[tokio::test]
async fn lines_logged_at_a_forced_shutdown_are_written() {
    let port = free_port();
    // A peer that takes connections (the kernel completes the handshake)
    // and never answers: a peer call held past the shutdown bound.
    let hung_peer = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let peer_url = format!("http://{}", hung_peer.local_addr().expect("bound"));
    let mut server = Command::new(BINARY)
        .args(["serve"])
        .env("SERVICE_NAME", "service-a")
        .env("SERVER_PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("PEER_URL", &peer_url)
        .env("PEER_REQUEST_TIMEOUT", "30s")
        .env("DRAIN_DELAY", "0s")
        .env("SHUTDOWN_TIMEOUT", "500ms")
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .spawn()
        .expect("server starts");
    let address: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    let deadline = Instant::now() + Duration::from_secs(10);
    let channel = loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .expect("url")
            .connect()
            .await
        {
            break channel;
        }
        assert!(Instant::now() < deadline, "never listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // A call to the hung peer: only the bound ends it.
    let mut client = status_api::v1::status_service_client::StatusServiceClient::new(channel);
    let mut request = tonic::Request::new(status_api::v1::GetPeerStatusRequest {});
    request
        .metadata_mut()
        .insert("x-request-id", "held-1".parse().expect("ascii"));
    let call = tokio::spawn(async move { client.get_peer_status(request).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "the call is held");

    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let exit = tokio::task::spawn_blocking(move || {
        let exit = server.wait().expect("exits");
        let mut stdout = String::new();
        std::io::Read::read_to_string(server.stdout.as_mut().expect("piped"), &mut stdout)
            .expect("read");
        (exit, stdout)
    });
    let (exit, stdout) = exit.await.expect("task");
    assert_eq!(exit.code(), Some(0));
    let messages: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    let held = messages
        .iter()
        .position(|line| line["request_id"] == "held-1" && line["message"] == "request")
        .unwrap_or_else(|| panic!("no line for the held call in:\n{stdout}"));
    // Cut off by the server, not cancelled by its client; before "stopped".
    assert_eq!(messages[held]["outcome"], "aborted", "{}", messages[held]);
    let stopped = messages
        .iter()
        .position(|line| line["message"] == "stopped")
        .unwrap_or_else(|| panic!("no stopped line in:\n{stdout}"));
    assert!(held < stopped, "{stdout}");
    let _ = call.await;
    assert!(
        messages
            .iter()
            .any(|line| line["message"] == "connections still open: closing them"),
        "{stdout}"
    );
    assert!(
        messages.iter().any(|line| line["message"] == "stopped"),
        "{stdout}"
    );
}

/// A task metadata endpoint on loopback that answers every request with `body`.
fn fake_metadata_endpoint(body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut head = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut head);
            let _ = std::io::Write::write_all(
                &mut stream,
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    format!("http://{address}/v4/container")
}

/// Metadata that is JSON but no task (`[]`) leaves `ecs_task` out of the
/// status with a warning; it used to be an empty task, logged as loaded.
#[test]
fn ecs_metadata_that_is_not_a_task_is_absent_with_a_warning() {
    for (body, task_arn) in [
        ("[]", None),
        ("{}", None),
        (
            r#"{"TaskARN":"arn:aws:ecs:us-east-2:111122223333:task/demo/0123","Cluster":"demo","LaunchType":"FARGATE"}"#,
            Some("arn:aws:ecs:us-east-2:111122223333:task/demo/0123"),
        ),
    ] {
        let metadata_uri = fake_metadata_endpoint(body);
        let port = free_port().to_string();
        let mut server = serve_service_b(
            &port,
            &[
                ("DRAIN_DELAY", "0s"),
                ("ECS_CONTAINER_METADATA_URI_V4", &metadata_uri),
            ],
        );
        let status = run(&["status", &format!("127.0.0.1:{port}")], &[]);
        let _ = Command::new("kill")
            .args(["-TERM", &server.id().to_string()])
            .status();
        let exit = server.wait().expect("server exits");
        assert_eq!(exit.code(), Some(0), "{body}");
        let json: serde_json::Value =
            serde_json::from_slice(&status.stdout).expect("status prints JSON");
        let ecs_task = &json["status"]["ecs_task"];
        assert_eq!(
            ecs_task["task_arn"].as_str(),
            task_arn,
            "{body}: {}",
            json["status"]
        );
        let mut stdout = String::new();
        std::io::Read::read_to_string(server.stdout.as_mut().expect("piped"), &mut stdout)
            .expect("read");
        let logged = |message: &str| {
            stdout.lines().any(|line| {
                serde_json::from_str::<serde_json::Value>(line)
                    .is_ok_and(|line| line["message"] == message)
            })
        };
        match task_arn {
            None => {
                assert!(
                    ecs_task.is_null(),
                    "{body}: absent, not made up: {ecs_task}"
                );
                assert!(
                    logged("ECS task metadata unavailable") && stdout.contains("TaskARN"),
                    "{body}: a warning saying why:\n{stdout}"
                );
                assert!(!logged("ECS task metadata loaded"), "{body}:\n{stdout}");
            }
            Some(_) => assert!(logged("ECS task metadata loaded"), "{body}:\n{stdout}"),
        }
    }
}
