//! `Vary: origin` on the answers sent without CORS headers: what the
//! envelope adds to every non-browser answer, in its own module because it
//! is a header rule, not the envelope's flow.

use http::{HeaderMap, HeaderValue, header};

/// Marks an answer sent without CORS headers as depending on `Origin`, so
/// no cache hands this copy to a page. Where the routes already vary on
/// `accept-encoding` alone (REST answers big enough to gzip), the two go in
/// one value, `accept-encoding, origin` (the same list as two `Vary` lines,
/// RFC 9110 5.3), replacing that one instead of appending a second line
/// (which costs the header map an allocation).
pub(crate) fn vary_on_origin(headers: &mut HeaderMap) {
    const ORIGIN: HeaderValue = HeaderValue::from_static("origin");
    const ACCEPT_ENCODING_AND_ORIGIN: HeaderValue =
        HeaderValue::from_static("accept-encoding, origin");
    match headers.entry(header::VARY) {
        header::Entry::Vacant(vacant) => {
            vacant.insert(ORIGIN);
        }
        header::Entry::Occupied(mut occupied) => {
            let mut values = occupied.iter();
            let accept_encoding_alone = values
                .next()
                .is_some_and(|value| value == "accept-encoding")
                && values.next().is_none();
            if accept_encoding_alone {
                occupied.insert(ACCEPT_ENCODING_AND_ORIGIN);
            } else {
                occupied.append(ORIGIN);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_gets_origin_in_one_value_where_it_can() {
        for (before, after) in [
            (&[][..], &["origin"][..]),
            (&["accept-encoding"], &["accept-encoding, origin"]),
            (&["cookie"], &["cookie", "origin"]),
            (
                &["accept-encoding", "cookie"],
                &["accept-encoding", "cookie", "origin"],
            ),
        ] {
            let mut headers = HeaderMap::new();
            for value in before {
                headers.append(header::VARY, HeaderValue::from_static(value));
            }
            vary_on_origin(&mut headers);
            let values: Vec<_> = headers.get_all(header::VARY).iter().collect();
            assert_eq!(values, after, "{before:?}");
        }
    }
}
