//! A stdout that blocks (awslogs in blocking mode while CloudWatch
//! throttles, a pipe nobody reads) must not stop the service: health keeps
//! answering, a stop still ends the process within `SHUTDOWN_TIMEOUT`, a
//! second signal still exits at once, and the lines it had to drop are
//! counted and reported once stdout moves again.
//!
//! Each test runs the real binary with stdout a pipe that nobody reads and
//! fills it with access lines of about 1 KB (a 256-character path and user
//! agent): more than the pipe, and more than the 8 MiB at which the old
//! batch writer made every request wait.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails by panicking

mod common;
use common::free_port;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

const BINARY: &str = env!("CARGO_BIN_EXE_status-service");
/// Generous room for a machine busy with other work.
const MARGIN: Duration = Duration::from_secs(3);
/// Requests sent on each connection in one write.
const PIPELINED: usize = 50;

/// The service process, killed when a test fails before it exits.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// service-a on `port`, logging JSON lines to a pipe nobody reads.
fn serve(port: u16, drain_delay: &str, shutdown_timeout: &str) -> Service {
    let child = Command::new(BINARY)
        .arg("serve")
        .env("SERVICE_NAME", "service-a")
        .env("SERVER_PORT", port.to_string())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("PEER_URL", "http://127.0.0.1:9")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("DRAIN_DELAY", drain_delay)
        .env("SHUTDOWN_TIMEOUT", shutdown_timeout)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    Service(child)
}

/// Reads one HTTP/1.1 response; its status code.
fn read_response(reader: &mut BufReader<TcpStream>) -> u16 {
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .expect("a response in time");
    let status = status_line
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).expect("headers");
        if header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    status
}

fn connect(port: u16) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // A service that stopped answering fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    BufReader::new(stream)
}

/// `GET path` on a new connection; the status code.
fn get(port: u16, path: &str) -> u16 {
    let mut reader = connect(port);
    write!(
        reader.get_mut(),
        "GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
    )
    .expect("send");
    read_response(&mut reader)
}

fn wait_until_serving(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answered = TcpStream::connect(("127.0.0.1", port))
            .is_ok()
            .then(|| get(port, "/service-a/healthcheck"));
        if answered == Some(200) {
            return;
        }
        assert!(Instant::now() < deadline, "never SERVING");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `requests` requests for an unknown 256-character path (each one
/// access line of about 1 KB) over 4 keep-alive connections; every one must
/// be answered.
fn fill_the_logs(port: u16, requests: usize) {
    let long = "x".repeat(256);
    let request = format!(
        "GET /{long} HTTP/1.1\r\nhost: t\r\nuser-agent: {long}\r\nx-request-id: {}\r\n\r\n",
        "r".repeat(128)
    );
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let request = request.clone();
            thread::spawn(move || {
                let mut reader = connect(port);
                let batch = request.repeat(PIPELINED);
                for _ in 0..requests / 4 / PIPELINED {
                    reader.get_mut().write_all(batch.as_bytes()).expect("send");
                    for _ in 0..PIPELINED {
                        assert_eq!(read_response(&mut reader), 404);
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().expect("every request answered");
    }
}

fn signal(service: &Service, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &service.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
}

/// Waits for the exit at most `bound` (failing after it).
fn exits_within(service: &mut Service, bound: Duration) -> (ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = service.0.try_wait().expect("wait") {
            return (status, started.elapsed());
        }
        assert!(
            started.elapsed() <= bound,
            "still running {bound:?} after the signal"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn with_stdout_blocked_health_answers_and_a_stop_ends_within_shutdown_timeout() {
    let port = free_port();
    let mut service = serve(port, "0s", "2s");
    let _unread: ChildStdout = service.0.stdout.take().expect("piped");
    wait_until_serving(port);
    fill_the_logs(port, 10_000);
    assert_eq!(
        get(port, "/service-a/healthcheck"),
        200,
        "health while stdout is blocked"
    );
    signal(&service, "TERM");
    let (status, took) = exits_within(&mut service, Duration::from_secs(2) + MARGIN);
    assert!(status.success(), "{status:?} after {took:?}");
}

#[test]
fn with_stdout_blocked_a_second_signal_exits_at_once() {
    let port = free_port();
    // A drain long enough that only the second signal can end the process.
    let mut service = serve(port, "60s", "60s");
    let _unread: ChildStdout = service.0.stdout.take().expect("piped");
    wait_until_serving(port);
    fill_the_logs(port, 10_000);
    signal(&service, "TERM");
    thread::sleep(Duration::from_millis(300));
    assert_eq!(get(port, "/service-a/healthcheck"), 503, "draining");
    signal(&service, "TERM");
    let (status, took) = exits_within(&mut service, MARGIN);
    assert_eq!(status.code(), Some(130), "after {took:?}");
}

#[test]
fn lines_dropped_while_stdout_is_blocked_are_reported_once_it_moves() {
    let port = free_port();
    let mut service = serve(port, "0s", "2s");
    let stdout = service.0.stdout.take().expect("piped");
    wait_until_serving(port);
    // More lines than the queue holds (16,384) and the pipe takes.
    fill_the_logs(port, 20_000);
    // Now someone reads: the report of what was dropped arrives.
    let (found, report) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("UTF-8 lines");
            if line.contains("log lines dropped")
                && let Some(found) = found.take()
            {
                let _ = found.send(line);
            }
        }
    });
    let report = report
        .recv_timeout(Duration::from_secs(10) + MARGIN)
        .expect("a report of dropped lines");
    let report: serde_json::Value = serde_json::from_str(&report).expect("a JSON line");
    assert_eq!(report["level"], "WARN");
    let dropped = report["dropped_total"].as_u64().expect("a count");
    assert!((1..20_000).contains(&dropped), "{report}");
    signal(&service, "TERM");
    let (status, _) = exits_within(&mut service, Duration::from_secs(2) + MARGIN);
    assert!(status.success());
    reader.join().expect("reader");
}
