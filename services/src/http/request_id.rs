//! `x-request-id`: the caller's id when it is a sane one, else a new UUID v4.
//!
//! The id is echoed on the response, passed on to the peer and written in
//! every log line about the request, so a caller's value must never reach
//! any of those raw: a 64 KB id forwarded to the peer made it close the
//! shared connection (`header_list_way_too_large`) under every other
//! caller's requests. An id is kept only if it is 1 to
//! [`MAX_REQUEST_ID_LENGTH`] visible ASCII characters; anything else is
//! replaced, and the replacement is what the service uses from then on.

use http::{HeaderMap, HeaderValue};

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest caller-supplied id kept (a UUID is 36, an AWS trace id 40).
pub const MAX_REQUEST_ID_LENGTH: usize = 128;

/// The request's id, set on `headers`: the caller's if valid, else a new one.
pub(crate) fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(REQUEST_ID_HEADER)
        && is_valid(id)
    {
        return id.clone();
    }
    let id = new_request_id();
    headers.insert(REQUEST_ID_HEADER, id.clone());
    id
}

fn is_valid(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    (1..=MAX_REQUEST_ID_LENGTH).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
}

fn new_request_id() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            REQUEST_ID_HEADER,
            HeaderValue::from_bytes(id).expect("a header value"),
        );
        headers
    }

    #[test]
    fn a_sane_id_is_kept() {
        for id in [
            "abc",
            "python-1",
            "1-5759e988-bd862e3fe1be46a994272793",
            &"x".repeat(128),
        ] {
            let mut headers = with_id(id.as_bytes());
            assert_eq!(ensure_request_id(&mut headers), id);
            assert_eq!(headers[REQUEST_ID_HEADER], id);
        }
    }

    #[test]
    fn anything_else_is_replaced_everywhere() {
        for id in [
            "x".repeat(129).into_bytes(),
            b"has space".to_vec(),
            b"tab\there".to_vec(),
            "caf\u{e9}".as_bytes().to_vec(),
            vec![0xff, 0xfe],
            Vec::new(),
        ] {
            let mut headers = with_id(&id);
            let assigned = ensure_request_id(&mut headers);
            assert_ne!(assigned.as_bytes(), &id[..]);
            assert_eq!(assigned.len(), 36, "a UUID replaces {id:?}");
            assert_eq!(headers[REQUEST_ID_HEADER], assigned, "the header too");
        }
        let mut none = HeaderMap::new();
        assert_eq!(ensure_request_id(&mut none).len(), 36);
    }
}
