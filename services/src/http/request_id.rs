//! `x-request-id`: the caller's id when it is a sane one, else a new UUID v4.
//!
//! The id is echoed on the response, passed on to the peer and written in
//! every log line about the request, so a caller's value must never reach
//! any of those raw: a 64 KB id forwarded to the peer made it close the
//! shared connection (`header_list_way_too_large`) under every other
//! caller's requests. An id is kept only if it is 1 to
//! [`MAX_REQUEST_ID_LENGTH`] visible ASCII characters; anything else is
//! replaced, and the replacement is what the service uses from then on.
//!
//! The id goes out marked sensitive (HPACK "never indexed"): a value new on
//! every request only evicts what repeats from the connection's header
//! compression table, and h2 compared each new id with every id already in
//! it (about 50 comparisons, 2,000 instructions a response).
//!
//! New ids (request ids here, trace and span ids in `trace_context`) come
//! from [`random_id`]: a thread-local non-cryptographic generator
//! (fastrand's wyrand) seeded from the OS's random source, as OpenTelemetry's
//! SDKs draw theirs. Ids must be unique, not secret, and three are drawn on
//! nearly every request: a generator shared between threads, or a
//! cryptographic one, costs more than the id is worth.

use std::cell::RefCell;

use http::{HeaderName, HeaderValue};
use hyper::body::Bytes;

pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest caller-supplied id kept (a UUID is 36, an AWS trace id 40).
pub const MAX_REQUEST_ID_LENGTH: usize = 128;
/// The header's name, parsed once (a `&str` name is parsed at every use).
pub(crate) static REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// A request's id: the caller's (its first `x-request-id`, `given`) if
/// valid, else a new one; marked sensitive, for the answer. The envelope
/// carries it in the request's context, where the handlers and the peer
/// call read it: the caller's raw value may stay in the request's headers.
pub(crate) fn request_id_of(given: Option<&HeaderValue>) -> HeaderValue {
    match given.filter(|id| is_valid(id)) {
        Some(id) => {
            let mut value = id.clone();
            value.set_sensitive(true);
            value
        }
        None => new_request_id(),
    }
}

fn is_valid(id: &HeaderValue) -> bool {
    let bytes = id.as_bytes();
    (1..=MAX_REQUEST_ID_LENGTH).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_graphic)
}

/// A new UUID v4, hyphenated, as a header value that is cheap to clone.
fn new_request_id() -> HeaderValue {
    let uuid = uuid::Builder::from_random_bytes(random_id()).into_uuid();
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid.hyphenated().encode_lower(&mut text);
    // `from_owner`: one allocation holding the text and its reference
    // count, so the clones that follow (the header, the access line, the
    // answer) are counter increments. `HeaderValue::from_str` would copy
    // into a vector-backed `Bytes` that allocates again on its first clone.
    // A hyphenated UUID is always a valid header value.
    let mut id = HeaderValue::from_maybe_shared(Bytes::from_owner(text))
        .unwrap_or(HeaderValue::from_static("-"));
    id.set_sensitive(true);
    id
}

thread_local! {
    /// fastrand's own thread-local generator is seeded from the clock and
    /// the thread id only; this one from `RandomState`, whose keys come
    /// from the OS's random source, so two tasks started at the same
    /// moment do not draw the same ids.
    static IDS: RefCell<fastrand::Rng> = RefCell::new(fastrand::Rng::with_seed({
        use std::hash::BuildHasher;
        std::hash::RandomState::new()
            .hash_one((std::time::Instant::now(), std::thread::current().id()))
    }));
}

/// `N` random bytes from the thread's generator, for new ids.
pub(crate) fn random_id<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    IDS.with(|rng| rng.borrow_mut().fill(&mut bytes));
    bytes
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    /// The id `headers` give, as the access entry reads it.
    fn ensure_request_id(headers: &HeaderMap) -> HeaderValue {
        request_id_of(headers.get(&REQUEST_ID))
    }

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
            let kept = ensure_request_id(&with_id(id.as_bytes()));
            assert_eq!(kept, id);
            assert!(kept.is_sensitive(), "{id}: not indexed by HPACK");
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
            let assigned = ensure_request_id(&with_id(&id));
            assert_ne!(assigned.as_bytes(), &id[..]);
            assert_eq!(assigned.len(), 36, "a UUID replaces {id:?}");
            assert!(assigned.is_sensitive(), "not indexed by HPACK");
        }
        assert_eq!(ensure_request_id(&HeaderMap::new()).len(), 36);
    }

    #[test]
    fn new_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|_| {
                let id = new_request_id().to_str().expect("ascii").to_owned();
                let parsed = uuid::Uuid::parse_str(&id).expect("a UUID");
                assert_eq!(parsed.get_version_num(), 4, "{id}");
                assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
                assert_eq!(id, parsed.hyphenated().to_string(), "lowercase, hyphenated");
                id
            })
            .collect();
        assert_eq!(ids.len(), 1000);
    }
}
