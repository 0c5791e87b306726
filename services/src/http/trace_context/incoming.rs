//! Reading the caller's trace headers: `traceparent`, `tracestate` (one
//! list however many headers carry it) and `X-Amzn-Trace-Id`. Anything
//! malformed or oversized is `None`: a new trace starts.

use http::{HeaderMap, HeaderValue};

use super::{MAX_PASSED_ON_LENGTH, TRACESTATE_NAME};

/// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase,
/// neither id all zeros. A later version may append fields after a '-'.
pub(super) fn parse_traceparent(value: &HeaderValue) -> Option<([u8; 16], [u8; 8], u8)> {
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
pub(super) struct AmznTrace {
    pub(super) trace_id: [u8; 16],
    pub(super) parent_id: Option<[u8; 8]>,
    pub(super) sampled: Option<char>,
}

/// `Root=1-<8 hex>-<24 hex>[;Parent=<16 hex>][;Sampled=0|1|?][;...]`.
pub(super) fn parse_amzn(value: &HeaderValue) -> Option<AmznTrace> {
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
pub(super) fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
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
pub(super) fn tracestate(headers: &HeaderMap) -> Option<HeaderValue> {
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
