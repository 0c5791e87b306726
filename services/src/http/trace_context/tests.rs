//! What a request's trace context is made of its caller's headers, and
//! what its peer call carries on.

use http::{HeaderMap, HeaderValue};

use super::{
    AMZN_TRACE_ID, MAX_PASSED_ON_LENGTH, TRACEPARENT, TRACESTATE, TraceContext,
    incoming::parse_traceparent, outgoing::Hex,
};

#[test]
fn hex_is_two_lowercase_digits_a_byte() {
    for bytes in [&[][..], &[0x00], &[0x0f, 0xa0, 0xff], &[0xab; 40]] {
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(Hex(bytes).to_string(), expected, "{bytes:?}");
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.insert(*name, HeaderValue::from_str(value).expect("ascii"));
    }
    headers
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[test]
fn a_valid_traceparent_continues_its_trace_with_a_new_span() {
    let context = TraceContext::from_headers(&headers(&[
        (TRACEPARENT, &format!("00-{TRACE}-{PARENT}-01")),
        (TRACESTATE, "congo=t61rcWkgMzE"),
    ]));
    assert_eq!(context.trace_id().to_string(), TRACE);
    assert_eq!(
        context.parent_id().map(|p| p.to_string()).as_deref(),
        Some(PARENT)
    );
    assert_ne!(context.span_id().to_string(), PARENT);
    let outgoing = context.outgoing_headers();
    let traceparent = outgoing[0].1.to_str().expect("ascii");
    assert_eq!(traceparent, format!("00-{TRACE}-{}-01", context.span_id()));
    assert_eq!(
        outgoing[1],
        (TRACESTATE, HeaderValue::from_static("congo=t61rcWkgMzE"))
    );
}

fn outgoing_tracestate(context: &TraceContext) -> Option<HeaderValue> {
    context
        .outgoing_headers()
        .into_iter()
        .find(|(name, _)| *name == TRACESTATE)
        .map(|(_, value)| value)
}

#[test]
fn every_tracestate_header_is_passed_on_as_one_list() {
    // W3C trace-context: several tracestate headers are one list,
    // combined in order (issue 16 item 7: only the first was kept).
    let cases: [(&[&str], Option<&str>); 6] = [
        (&["congo=t61rcWkgMzE"], Some("congo=t61rcWkgMzE")),
        (
            &["congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"],
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ),
        (&["a=1,b=2", " ", "c=3 "], Some("a=1,b=2,c=3")),
        (&["", ""], None),
        (&["a=1", &"x".repeat(MAX_PASSED_ON_LENGTH)], None),
        (&[&"x".repeat(MAX_PASSED_ON_LENGTH + 1)], None),
    ];
    for (values, expected) in cases {
        let mut headers = headers(&[(TRACEPARENT, &format!("00-{TRACE}-{PARENT}-01"))]);
        for value in values {
            headers.append(TRACESTATE, HeaderValue::from_str(value).expect("ascii"));
        }
        let passed = outgoing_tracestate(&TraceContext::from_headers(&headers));
        assert_eq!(
            passed.as_ref().map(|v| v.to_str().expect("ascii")),
            expected,
            "{values:?}"
        );
    }
}

#[test]
fn tracestate_without_a_traceparent_is_not_passed_on() {
    let mut headers = HeaderMap::new();
    headers.append(TRACESTATE, HeaderValue::from_static("congo=1"));
    headers.append(TRACESTATE, HeaderValue::from_static("rojo=2"));
    assert_eq!(
        outgoing_tracestate(&TraceContext::from_headers(&headers)),
        None
    );
}

#[test]
fn outgoing_headers_are_written_exactly() {
    let context = TraceContext::from_headers(&headers(&[
        (TRACEPARENT, &format!("00-{TRACE}-{PARENT}-03")),
        (
            AMZN_TRACE_ID,
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
        ),
    ]));
    let span = context.span_id().to_string();
    let outgoing = context.outgoing_headers();
    assert_eq!(outgoing[0].1, format!("00-{TRACE}-{span}-03").as_str());
    assert_eq!(
        outgoing[1].1,
        format!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent={span};Sampled=?").as_str()
    );
    let without_sampled = TraceContext::from_headers(&headers(&[(
        AMZN_TRACE_ID,
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
    )]));
    let span = without_sampled.span_id().to_string();
    assert_eq!(
        without_sampled.outgoing_headers()[1].1,
        format!("Root=1-5759e988-bd862e3fe1be46a994272793;Parent={span}").as_str()
    );
    assert_eq!(
        without_sampled.amzn_root().as_ref().map(|root| &root[..]),
        Some(&b"1-5759e988-bd862e3fe1be46a994272793"[..])
    );
}

#[test]
fn malformed_traceparents_start_a_new_trace() {
    for bad in [
        format!("00-{TRACE}-{PARENT}-01-extra"),
        format!("ff-{TRACE}-{PARENT}-01"),
        format!("00-{}-{PARENT}-01", "0".repeat(32)),
        format!("00-{TRACE}-{}-01", "0".repeat(16)),
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
        format!("00_{TRACE}-{PARENT}-01"),
        format!("00-{TRACE}-{PARENT}"),
        "x".repeat(6000),
    ] {
        let context = TraceContext::from_headers(&headers(&[(TRACEPARENT, &bad)]));
        assert_ne!(context.trace_id().to_string(), TRACE, "{bad}");
        assert!(context.parent_id().is_none(), "{bad}");
        let sent = context.outgoing_headers()[0]
            .1
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(parse_traceparent(&HeaderValue::from_str(&sent).expect("ascii")).is_some());
        assert!(!sent.contains(&bad), "passed on raw: {bad}");
    }
}

#[test]
fn a_later_version_with_more_fields_is_read() {
    let context = TraceContext::from_headers(&headers(&[(
        TRACEPARENT,
        &format!("01-{TRACE}-{PARENT}-01-what-comes-next"),
    )]));
    assert_eq!(context.trace_id().to_string(), TRACE);
}

#[test]
fn the_albs_amazon_trace_id_gives_the_trace_and_is_passed_on() {
    let context = TraceContext::from_headers(&headers(&[(
        AMZN_TRACE_ID,
        "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
    )]));
    assert_eq!(
        context.trace_id().to_string(),
        "5759e988bd862e3fe1be46a994272793"
    );
    let outgoing = context.outgoing_headers();
    assert_eq!(outgoing.len(), 2, "{outgoing:?}");
    assert_eq!(
        outgoing[0].1.to_str().expect("ascii"),
        format!(
            "00-5759e988bd862e3fe1be46a994272793-{}-01",
            context.span_id()
        )
    );
    assert_eq!(
        outgoing[1].1.to_str().expect("ascii"),
        format!(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent={};Sampled=1",
            context.span_id()
        )
    );
}

#[test]
fn the_albs_root_is_kept_beside_a_callers_traceparent() {
    let context = TraceContext::from_headers(&headers(&[
        (TRACEPARENT, &format!("00-{TRACE}-{PARENT}-01")),
        (AMZN_TRACE_ID, "Root=1-5759e988-bd862e3fe1be46a994272793"),
    ]));
    assert_eq!(context.trace_id().to_string(), TRACE);
    assert_eq!(
        context.amzn_root().as_ref().map(|root| &root[..]),
        Some(&b"1-5759e988-bd862e3fe1be46a994272793"[..])
    );
    let outgoing = context.outgoing_headers();
    assert!(
        outgoing[1]
            .1
            .to_str()
            .expect("ascii")
            .starts_with("Root=1-5759e988-bd862e3fe1be46a994272793;Parent="),
        "{outgoing:?}"
    );
}

#[test]
fn no_context_starts_a_new_unsampled_trace() {
    let first = TraceContext::from_headers(&HeaderMap::new());
    let second = TraceContext::from_headers(&HeaderMap::new());
    assert_ne!(first.trace_id().to_string(), second.trace_id().to_string());
    let outgoing = first.outgoing_headers();
    assert_eq!(outgoing.len(), 1, "no X-Ray header made up: {outgoing:?}");
    assert!(outgoing[0].1.to_str().expect("ascii").ends_with("-00"));
}

#[test]
fn this_services_sampling_decision_is_passed_on_in_both_headers() {
    let mut context = TraceContext::from_headers(&headers(&[(
        AMZN_TRACE_ID,
        "Root=1-5759e988-bd862e3fe1be46a994272793",
    )]));
    assert_eq!(context.caller_sampled(), None, "the ALB decides nothing");
    context.set_sampled(true, None);
    let outgoing = context.outgoing_headers();
    assert!(outgoing[0].1.to_str().expect("ascii").ends_with("-01"));
    assert!(
        outgoing[1]
            .1
            .to_str()
            .expect("ascii")
            .ends_with(";Sampled=1"),
        "{outgoing:?}"
    );
    let child = context.child();
    assert_eq!(child.parent_id_bytes(), Some(context.span_id_bytes()));
    assert_ne!(child.span_id_bytes(), context.span_id_bytes());
    assert_eq!(child.trace_id_bytes(), context.trace_id_bytes());

    let mut context = TraceContext::from_headers(&headers(&[(
        TRACEPARENT,
        &format!("00-{TRACE}-{PARENT}-01"),
    )]));
    assert_eq!(context.caller_sampled(), Some(true));
    context.set_sampled(false, None);
    assert!(
        context.outgoing_headers()[0]
            .1
            .to_str()
            .expect("ascii")
            .ends_with("-00")
    );
}
