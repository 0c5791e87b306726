//! The access line's tests: the line is what tracing-subscriber's
//! formatters wrote for the same fields, JSON parses and holds every value,
//! each field is escaped for its format, long text is cut on a boundary.

use std::{
    io,
    sync::{Arc, Mutex},
};

use tracing_subscriber::EnvFilter;

use super::*;
use crate::logging::subscriber;

const TARGET: &str = "status_services::http::access_log";

/// An output that keeps what reached it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn full_record() -> AccessRecord<'static> {
    AccessRecord {
        target: TARGET,
        service: "service-a",
        request_id: Some("rest-42"),
        trace_id: *b"\x4b\xf9\x2f\x35\x77\xb3\x4d\xa6\xa3\xce\x92\x9d\x0e\x0e\x47\x36",
        span_id: *b"\x00\xf0\x67\xaa\x0b\xa9\x02\xb7",
        parent_span_id: Some(*b"\x53\x99\x5c\x3f\x42\xcd\x8a\xd8"),
        amzn_trace_root: Some(*b"1-5759e988-bd862e3fe1be46a994272793"),
        method: "GET",
        resource: Resource::Path("/service-a/status"),
        protocol: "HTTP/1.1",
        status: 200,
        grpc_code: None,
        latency: Duration::from_micros(160),
        client: Some("203.0.113.7".parse().unwrap()),
        peer: Some("10.0.0.9:52114".parse().unwrap()),
        user_agent: Some("curl/8.0"),
        outcome: "completed",
    }
}

/// Every kind of value each field can hold, present and absent.
fn records() -> Vec<AccessRecord<'static>> {
    let long_path: &'static str = Box::leak(format!("/{}", "a".repeat(300)).into_boxed_str());
    // 'é' is two bytes: the cut at 256 falls inside one.
    let long_agent: &'static str = Box::leak(format!("x{}", "é".repeat(400)).into_boxed_str());
    let long_rpc: &'static str =
        Box::leak(format!("scdemo.{}/GetStatus", "S".repeat(260)).into_boxed_str());
    let full = full_record();
    let grpc = AccessRecord {
        request_id: Some("0b6e7c1e-3f5b-4c43-9a43-6e1f2d0c9a11"),
        parent_span_id: None,
        amzn_trace_root: None,
        method: "POST",
        resource: Resource::Rpc("scdemo.status.v1.StatusService/GetStatus"),
        protocol: "gRPC",
        grpc_code: Some("DEADLINE_EXCEEDED"),
        latency: Duration::from_micros(1_500_000),
        client: Some("::1".parse().unwrap()),
        peer: Some("[::1]:5555".parse().unwrap()),
        user_agent: None,
        outcome: "cancelled",
        ..full.clone()
    };
    let awkward = AccessRecord {
        service: "quote \" backslash \\",
        request_id: Some(r#"id"with\quotes"#),
        resource: Resource::Path("/caf\u{e9}/\"x\"/\\/{}/漢"),
        user_agent: Some(
            "tab\there \"quoted\" back\\slash \u{7} \u{1b}[31m del\u{7f} é \u{200b} \u{85}",
        ),
        latency: Duration::ZERO,
        status: 499,
        ..full.clone()
    };
    let absent = AccessRecord {
        request_id: None,
        parent_span_id: None,
        amzn_trace_root: None,
        client: None,
        peer: None,
        user_agent: None,
        ..grpc.clone()
    };
    let long = AccessRecord {
        resource: Resource::Path(long_path),
        user_agent: Some(long_agent),
        latency: Duration::from_micros(12_340),
        ..full.clone()
    };
    let long_rpc = AccessRecord {
        resource: Resource::Rpc(long_rpc),
        latency: Duration::from_secs(3600),
        ..grpc.clone()
    };
    vec![full, grpc, awkward, absent, long, long_rpc]
}

/// The text cut as the access log always cut it.
fn truncated(text: &str) -> String {
    if text.len() <= MAX_LOGGED_TEXT {
        return text.to_owned();
    }
    let mut end = MAX_LOGGED_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What the access line was before it was a record: these fields as a
/// `tracing` event through the formatters (the old code's event).
fn emit_as_event(record: &AccessRecord<'_>) {
    let (path, rpc) = match record.resource {
        Resource::Path(path) => (Some(truncated(path)), None),
        Resource::Rpc(rpc) => (None, Some(truncated(rpc))),
    };
    let amzn_root = record
        .amzn_trace_root
        .map(|root| String::from_utf8_lossy(&root).into_owned());
    tracing::info!(
        target: "status_services::http::access_log",
        service = record.service,
        request_id = record.request_id,
        trace_id = %hex(&record.trace_id),
        span_id = %hex(&record.span_id),
        parent_span_id = record.parent_span_id.map(|id| tracing::field::display(hex(&id))),
        amzn_trace_root = amzn_root,
        method = record.method,
        path,
        rpc,
        protocol = record.protocol,
        status = record.status,
        grpc_code = record.grpc_code,
        latency_ms = record.latency.as_micros() as f64 / 1000.0,
        client = record.client.map(tracing::field::display),
        peer = record.peer.map(tracing::field::display),
        user_agent = record.user_agent.map(truncated),
        outcome = record.outcome,
        "request"
    );
}

/// The lines written under `format` by `write`, their timestamps
/// replaced (after checking they are RFC 3339).
fn lines(format: LogFormat, ansi: bool, write: impl FnOnce()) -> Vec<String> {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = subscriber(format, EnvFilter::new("info"), move || writer.clone(), ansi);
    tracing::subscriber::with_default(subscriber, write);
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    text.lines()
        .map(|line| {
            let at = line.find("20").expect("a timestamp");
            let stamp = &line[at..at + 27];
            assert!(humantime::parse_rfc3339(stamp).is_ok(), "{stamp} in {line}");
            format!("{}TIMESTAMP{}", &line[..at], &line[at + 27..])
        })
        .collect()
}

#[test]
fn the_line_is_what_the_formatters_wrote_for_the_same_fields() {
    for format in [LogFormat::Json, LogFormat::Text] {
        for ansi in [false, true] {
            for record in records() {
                let written = lines(format, ansi, || {
                    emit_as_event(&record);
                    write_access_line(&record);
                });
                assert_eq!(written.len(), 2, "{format:?} {ansi}: {written:#?}");
                assert_eq!(written[1], written[0], "{format:?} ansi {ansi}");
            }
        }
    }
}

#[test]
fn json_lines_parse_and_hold_every_value() {
    for record in records() {
        let mut line = Vec::new();
        render(
            &mut line,
            LogFormat::Json,
            false,
            SystemTime::now(),
            &record,
        );
        assert_eq!(line.last(), Some(&b'\n'));
        let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let text = |name: &str| json.get(name).map(|v| v.as_str().unwrap().to_owned());
        assert_eq!(json["level"], "INFO");
        assert_eq!(json["target"], TARGET);
        assert_eq!(json["message"], "request");
        assert_eq!(text("service").as_deref(), Some(record.service));
        assert_eq!(text("request_id").as_deref(), record.request_id);
        assert_eq!(text("trace_id"), Some(hex(&record.trace_id)));
        assert_eq!(text("span_id"), Some(hex(&record.span_id)));
        assert_eq!(
            text("parent_span_id"),
            record.parent_span_id.map(|id| hex(&id))
        );
        assert_eq!(
            text("amzn_trace_root"),
            record
                .amzn_trace_root
                .map(|root| String::from_utf8(root.to_vec()).unwrap())
        );
        let (path, rpc) = match record.resource {
            Resource::Path(path) => (Some(truncated(path)), None),
            Resource::Rpc(rpc) => (None, Some(truncated(rpc))),
        };
        assert_eq!((text("path"), text("rpc")), (path, rpc));
        assert_eq!(json["status"], record.status);
        assert_eq!(text("grpc_code").as_deref(), record.grpc_code);
        assert_eq!(
            json["latency_ms"].as_f64(),
            Some(record.latency.as_micros() as f64 / 1000.0)
        );
        assert_eq!(text("client"), record.client.map(|ip| ip.to_string()));
        assert_eq!(text("peer"), record.peer.map(|peer| peer.to_string()));
        assert_eq!(text("user_agent"), record.user_agent.map(truncated));
        assert_eq!(text("outcome").as_deref(), Some(record.outcome));
    }
}

#[test]
fn each_field_is_escaped_for_its_format() {
    // (value of user_agent, in JSON, in text)
    for (value, json, text) in [
        ("plain", r#""plain""#, r#""plain""#),
        ("q\"b\\", r#""q\"b\\""#, r#""q\"b\\""#),
        ("a\tb\nc\rd", r#""a\tb\nc\rd""#, r#""a\tb\nc\rd""#),
        (
            "bell\u{7}esc\u{1b}",
            r#""bell\u0007esc\u001b""#,
            r#""bell\u{7}esc\u{1b}""#,
        ),
        ("del\u{7f}", "\"del\u{7f}\"", r#""del\u{7f}""#),
        ("é漢", "\"é漢\"", "\"é漢\""),
        ("zw\u{200b}", "\"zw\u{200b}\"", r#""zw\u{200b}""#),
    ] {
        let record = AccessRecord {
            user_agent: Some(value),
            ..full_record()
        };
        for (format, expected) in [(LogFormat::Json, json), (LogFormat::Text, text)] {
            let mut line = Vec::new();
            render(&mut line, format, false, SystemTime::now(), &record);
            let line = String::from_utf8(line).unwrap();
            let field = if format == LogFormat::Json {
                format!(r#","user_agent":{expected},"#)
            } else {
                format!(" user_agent={expected} ")
            };
            assert!(line.contains(&field), "{format:?} {value:?}: {line}");
        }
    }
}

#[test]
fn long_text_is_cut_on_a_character_boundary() {
    let long = "é".repeat(200);
    let record = AccessRecord {
        user_agent: Some(&long),
        resource: Resource::Path(&long),
        ..full_record()
    };
    let mut line = Vec::new();
    render(
        &mut line,
        LogFormat::Json,
        false,
        SystemTime::now(),
        &record,
    );
    let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
    for field in ["user_agent", "path"] {
        let cut = json[field].as_str().unwrap();
        assert_eq!(cut, format!("{}...", "é".repeat(MAX_LOGGED_TEXT / 2)));
    }
    let short = AccessRecord {
        user_agent: Some("é"),
        ..full_record()
    };
    line.clear();
    render(&mut line, LogFormat::Json, false, SystemTime::now(), &short);
    let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(json["user_agent"], "é");
}

#[test]
fn a_subscriber_without_the_layer_gets_no_access_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    let plain = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(plain, || write_access_line(&full_record()));
    assert!(captured.0.lock().unwrap().is_empty());
}
