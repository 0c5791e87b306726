//! Trace context: which trace a request belongs to, so the ALB's access
//! logs and both services' lines can be joined.
//!
//! Accepted from the caller: W3C `traceparent` (+ `tracestate`) and AWS's
//! `X-Amzn-Trace-Id` (which the ALB adds to every request). A valid
//! `traceparent` wins; otherwise the X-Ray root gives the trace id (X-Ray
//! root `1-5759e988-bd862e3fe1be46a994272793` is trace id
//! `5759e988bd862e3fe1be46a994272793`, as X-Ray maps them); otherwise a new
//! trace starts. Every request gets a span id of its own, the child of the
//! caller's, and that span id is the parent the peer call carries
//! onward: `traceparent` per the W3C spec, `X-Amzn-Trace-Id` with the same
//! root, our span as `Parent` and the caller's `Sampled` decision, as AWS
//! documents for downstream calls. Malformed or oversized values are
//! ignored (a new trace starts), never echoed, logged or passed on. Several
//! `tracestate` headers are one list (W3C: combined with commas, in order).

use std::fmt;

use http::{HeaderMap, HeaderName, HeaderValue};

use super::request_id::random_id;
use crate::telemetry::SpanSink;

pub(crate) const TRACEPARENT: &str = "traceparent";
pub(crate) const TRACESTATE: &str = "tracestate";
pub(crate) const AMZN_TRACE_ID: &str = "x-amzn-trace-id";
// The names parsed once, for the lookups on every request.
static TRACEPARENT_NAME: HeaderName = HeaderName::from_static(TRACEPARENT);
static TRACESTATE_NAME: HeaderName = HeaderName::from_static(TRACESTATE);
static AMZN_TRACE_ID_NAME: HeaderName = HeaderName::from_static(AMZN_TRACE_ID);
/// Longest `tracestate` or `X-Amzn-Trace-Id` passed on (the W3C spec allows
/// 32 tracestate members of up to 256 characters; 512 keeps the common ones).
const MAX_PASSED_ON_LENGTH: usize = 512;

/// The trace a request belongs to and its own span in it, in the request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    /// This request's span, a child of `parent_id`.
    span_id: [u8; 8],
    /// The caller's span, when the caller sent one.
    parent_id: Option<[u8; 8]>,
    /// W3C trace-flags (bit 0: sampled), passed on as received.
    flags: u8,
    tracestate: Option<HeaderValue>,
    /// `Sampled=` of the caller's `X-Amzn-Trace-Id`, when it sent one.
    amzn_sampled: Option<Option<char>>,
    /// The X-Ray root of the caller's `X-Amzn-Trace-Id` (what the ALB's
    /// access log shows), kept even when a `traceparent` chose the trace.
    amzn_root: Option<[u8; 16]>,
    /// Where this request's spans go, when trace export is on and sampled
    /// it ([`crate::telemetry`]).
    sink: Option<SpanSink>,
    /// See [`Self::caller_sampled`].
    caller_sampled: Option<bool>,
}

impl TraceContext {
    /// The context of an incoming request, from its headers.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let span_id = random_id::<8>();
        let amzn = headers.get(&AMZN_TRACE_ID_NAME).and_then(parse_amzn);
        let amzn_sampled = amzn.as_ref().map(|amzn| amzn.sampled);
        let amzn_root = amzn.as_ref().map(|amzn| amzn.trace_id);
        if let Some((trace_id, parent_id, flags)) =
            headers.get(&TRACEPARENT_NAME).and_then(parse_traceparent)
        {
            return Self {
                trace_id,
                span_id,
                parent_id: Some(parent_id),
                flags,
                tracestate: tracestate(headers),
                amzn_sampled,
                amzn_root,
                sink: None,
                caller_sampled: Some(flags & 1 == 1),
            };
        }
        if let Some(amzn) = amzn {
            return Self {
                trace_id: amzn.trace_id,
                span_id,
                parent_id: amzn.parent_id,
                flags: u8::from(amzn.sampled == Some('1')),
                tracestate: None,
                amzn_sampled,
                amzn_root,
                sink: None,
                caller_sampled: amzn
                    .parent_id
                    .and(amzn.sampled)
                    .filter(|c| *c != '?')
                    .map(|c| c == '1'),
            };
        }
        Self {
            trace_id: random_id::<16>(),
            span_id,
            parent_id: None,
            // We record no spans ourselves: not sampled.
            flags: 0,
            tracestate: None,
            amzn_sampled: None,
            amzn_root: None,
            sink: None,
            caller_sampled: None,
        }
    }

    pub(crate) fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    pub(crate) fn span_id_bytes(&self) -> [u8; 8] {
        self.span_id
    }

    pub(crate) fn parent_id_bytes(&self) -> Option<[u8; 8]> {
        self.parent_id
    }

    /// The caller's sampling decision, when it made one: its `traceparent`
    /// flag, or its `X-Amzn-Trace-Id` `Parent` with `Sampled=0|1` (`?` or
    /// none: undecided, as the ALB sends it).
    pub(crate) fn caller_sampled(&self) -> Option<bool> {
        self.caller_sampled
    }

    /// This service's sampling decision (trace export on): passed on in
    /// both headers, and where the request's spans go when sampled.
    pub(crate) fn set_sampled(&mut self, sampled: bool, sink: Option<SpanSink>) {
        self.flags = (self.flags & !1) | u8::from(sampled);
        if let Some(amzn) = &mut self.amzn_sampled {
            *amzn = Some(if sampled { '1' } else { '0' });
        }
        self.sink = sink;
    }

    /// Where this request's spans go, when they are recorded.
    pub(crate) fn sink(&self) -> Option<&SpanSink> {
        self.sink.as_ref()
    }

    /// The context of a call made on behalf of this request: a new span,
    /// the child of this one, in the same trace with the same decision.
    pub(crate) fn child(&self) -> Self {
        Self {
            span_id: random_id::<8>(),
            parent_id: Some(self.span_id),
            ..self.clone()
        }
    }

    /// The caller's X-Ray root (`1-5759e988-bd862e3fe1be46a994272793`, as
    /// the ALB logs it), when it sent an `X-Amzn-Trace-Id`.
    pub(crate) fn amzn_root(&self) -> Option<[u8; 35]> {
        self.amzn_root.as_ref().map(amzn_root_text)
    }

    pub fn trace_id(&self) -> Hex<'_> {
        Hex(&self.trace_id)
    }

    pub fn span_id(&self) -> Hex<'_> {
        Hex(&self.span_id)
    }

    pub fn parent_id(&self) -> Option<Hex<'_>> {
        self.parent_id.as_ref().map(|id| Hex(id))
    }

    /// The headers a call made on behalf of this request carries: this
    /// request's span is the parent of the callee's. Written into stack
    /// buffers, without `fmt`: one allocation per header value.
    pub fn outgoing_headers(&self) -> Vec<(&'static str, HeaderValue)> {
        let mut headers = Vec::with_capacity(3);
        let mut traceparent = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&mut traceparent[3..35], &self.trace_id);
        hex_into(&mut traceparent[36..52], &self.span_id);
        hex_into(&mut traceparent[53..55], &[self.flags]);
        if let Ok(value) = HeaderValue::from_bytes(&traceparent) {
            headers.push((TRACEPARENT, value));
        }
        if let Some(state) = &self.tracestate {
            headers.push((TRACESTATE, state.clone()));
        }
        if let (Some(sampled), Some(root)) = (self.amzn_sampled, &self.amzn_root) {
            // The root that came in, so the call keeps its X-Ray trace:
            // `Root=<35>;Parent=<16>[;Sampled=<1>]`.
            let mut amzn =
                *b"Root=12345678901234567890123456789012345;Parent=1234567890123456;Sampled=?";
            amzn[5..40].copy_from_slice(&amzn_root_text(root));
            hex_into(&mut amzn[48..64], &self.span_id);
            let length = match sampled {
                Some(sampled) if sampled.is_ascii() => {
                    amzn[73] = sampled as u8;
                    amzn.len()
                }
                _ => 64,
            };
            if let Ok(value) = HeaderValue::from_bytes(&amzn[..length]) {
                headers.push((AMZN_TRACE_ID, value));
            }
        }
        headers
    }
}

/// An X-Ray root as text: `1-5759e988-bd862e3fe1be46a994272793`.
fn amzn_root_text(root: &[u8; 16]) -> [u8; 35] {
    let mut text = *b"1-00000000-000000000000000000000000";
    hex_into(&mut text[2..10], &root[..4]);
    hex_into(&mut text[11..35], &root[4..]);
    text
}

/// Writes `bytes` as lowercase hex into `out` (two digits a byte; `out`
/// is exactly twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// Lowercase hex of an id, for logs and headers.
#[derive(Debug, Clone, Copy)]
pub struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write per 32 bytes, not a formatted write per byte: ids are
        // written in every request line.
        let mut text = [0u8; 64];
        for chunk in self.0.chunks(32) {
            hex_into(&mut text[..chunk.len() * 2], chunk);
            let hex = std::str::from_utf8(&text[..chunk.len() * 2]).map_err(|_| fmt::Error)?;
            f.write_str(hex)?;
        }
        Ok(())
    }
}

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase,
/// neither id all zeros. A later version may append fields after a '-'.
fn parse_traceparent(value: &HeaderValue) -> Option<([u8; 16], [u8; 8], u8)> {
    let text = value.to_str().ok()?;
    let bytes = text.as_bytes();
    if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
        return None;
    }
    let version = decode_hex::<1>(&text[0..2])?[0];
    if version == 0xff || (version == 0 && bytes.len() != 55) {
        return None;
    }
    if [bytes[2], bytes[35], bytes[52]] != [b'-'; 3] {
        return None;
    }
    let trace_id = decode_hex::<16>(&text[3..35])?;
    let parent_id = decode_hex::<8>(&text[36..52])?;
    let flags = decode_hex::<1>(&text[53..55])?[0];
    let nonzero = |id: &[u8]| id.iter().any(|b| *b != 0);
    (nonzero(&trace_id) && nonzero(&parent_id)).then_some((trace_id, parent_id, flags))
}

/// What is used of an `X-Amzn-Trace-Id`.
struct AmznTrace {
    trace_id: [u8; 16],
    parent_id: Option<[u8; 8]>,
    sampled: Option<char>,
}

/// `Root=1-<8 hex>-<24 hex>[;Parent=<16 hex>][;Sampled=0|1|?][;...]`.
fn parse_amzn(value: &HeaderValue) -> Option<AmznTrace> {
    if !is_passable(value) {
        return None;
    }
    let text = value.to_str().ok()?;
    let (mut root, mut parent_id, mut sampled) = (None, None, None);
    for field in text.split(';') {
        match field.trim().split_once('=')? {
            ("Root", value) => root = Some(value),
            ("Parent", value) => parent_id = Some(decode_hex::<8>(value)?),
            ("Sampled", value) => sampled = value.chars().next().filter(|c| "01?".contains(*c)),
            _ => {}
        }
    }
    let root = root?;
    let (epoch, random) = root.strip_prefix("1-")?.split_once('-')?;
    let mut trace_id = [0u8; 16];
    trace_id[..4].copy_from_slice(&decode_hex::<4>(epoch)?);
    trace_id[4..].copy_from_slice(&decode_hex::<12>(random)?);
    Some(AmznTrace {
        trace_id,
        parent_id,
        sampled,
    })
}

fn is_passable(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    bytes.len() <= MAX_PASSED_ON_LENGTH && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
}

/// Exactly `2 * N` lowercase hex digits.
fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The caller's `tracestate`: one header as it came (no copy), several
/// joined with commas into one list, in order. Empty headers add nothing;
/// a list that is not passable as a whole (too long, not visible ASCII) is
/// dropped, as one such header is.
fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers
        .get_all(&TRACESTATE_NAME)
        .iter()
        .filter(|value| !value.as_bytes().trim_ascii().is_empty());
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone()).filter(is_passable);
    };
    let mut list = first.as_bytes().trim_ascii().to_vec();
    for value in std::iter::once(second).chain(values) {
        if list.len() > MAX_PASSED_ON_LENGTH {
            return None;
        }
        list.push(b',');
        list.extend_from_slice(value.as_bytes().trim_ascii());
    }
    HeaderValue::from_bytes(&list).ok().filter(is_passable)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
