//! The headers a call made on behalf of a request carries (`traceparent`,
//! `tracestate`, `X-Amzn-Trace-Id`), and ids as lowercase hex: written into
//! stack buffers, without `fmt`.

use std::fmt;

use http::{HeaderMap, HeaderValue};

use super::{AMZN_TRACE_ID_NAME, TRACEPARENT_NAME, TRACESTATE_NAME, TraceContext};

impl TraceContext {
    /// Adds the headers a call made on behalf of this request carries:
    /// this request's span is the parent of the callee's. Written into stack
    /// buffers, without `fmt`, under names parsed once: one allocation per
    /// header value.
    pub fn write_outgoing_headers(&self, headers: &mut HeaderMap) {
        let mut traceparent = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&mut traceparent[3..35], &self.trace_id);
        hex_into(&mut traceparent[36..52], &self.span_id);
        hex_into(&mut traceparent[53..55], &[self.flags]);
        if let Ok(value) = HeaderValue::from_bytes(&traceparent) {
            headers.insert(&TRACEPARENT_NAME, value);
        }
        if let Some(state) = &self.tracestate {
            headers.insert(&TRACESTATE_NAME, state.clone());
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
                headers.insert(&AMZN_TRACE_ID_NAME, value);
            }
        }
    }

    /// The outgoing headers in the order they are written, for tests.
    #[cfg(test)]
    pub(crate) fn outgoing_headers(&self) -> Vec<(&'static str, HeaderValue)> {
        let mut headers = HeaderMap::new();
        self.write_outgoing_headers(&mut headers);
        [&TRACEPARENT_NAME, &TRACESTATE_NAME, &AMZN_TRACE_ID_NAME]
            .into_iter()
            .filter_map(|name| Some((name.as_str(), headers.get(name)?.clone())))
            .collect()
    }
}

/// An X-Ray root as text: `1-5759e988-bd862e3fe1be46a994272793`.
pub(super) fn amzn_root_text(root: &[u8; 16]) -> [u8; 35] {
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
