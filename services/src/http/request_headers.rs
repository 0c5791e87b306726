//! The request headers a request's access entry reads (its id, its trace
//! context, the client's hops and user agent), found in one pass over the
//! header map. Looked up one by one, each custom name cost a hash of its
//! bytes and a probe, found or not: about 150 instructions a lookup, 650 a
//! request for headers most requests do not send (bench/findings.md).
//!
//! The first value of each name is the one kept, as `HeaderMap::get` gives
//! it: the map yields a name's values together, in the order they came.

use http::{HeaderMap, HeaderName, HeaderValue, header::USER_AGENT};

use super::{
    request_id::REQUEST_ID,
    trace_context::{AMZN_TRACE_ID_NAME, TRACEPARENT_NAME},
};

/// `x-forwarded-for`, parsed once.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The first value of each header the access entry reads, if sent.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RequestHeaders<'a> {
    pub(crate) request_id: Option<&'a HeaderValue>,
    pub(crate) traceparent: Option<&'a HeaderValue>,
    pub(crate) amzn_trace_id: Option<&'a HeaderValue>,
    pub(crate) forwarded_for: Option<&'a HeaderValue>,
    pub(crate) user_agent: Option<&'a HeaderValue>,
}

impl<'a> RequestHeaders<'a> {
    /// One pass over `headers`.
    pub(crate) fn scan(headers: &'a HeaderMap) -> Self {
        let mut seen = Self::default();
        for (name, value) in headers {
            if let Some(slot) = seen.slot(name) {
                slot.get_or_insert(value);
            }
        }
        seen
    }

    fn slot(&mut self, name: &HeaderName) -> Option<&mut Option<&'a HeaderValue>> {
        Some(if name == USER_AGENT {
            &mut self.user_agent
        } else if name == REQUEST_ID {
            &mut self.request_id
        } else if name == TRACEPARENT_NAME {
            &mut self.traceparent
        } else if name == AMZN_TRACE_ID_NAME {
            &mut self.amzn_trace_id
        } else if name == X_FORWARDED_FOR {
            &mut self.forwarded_for
        } else {
            return None;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_header_is_its_first_value_as_get_gives_it() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("accept", "*/*"),
            ("x-request-id", "first"),
            ("user-agent", "curl/8.0"),
            ("traceparent", "00-a-b-01"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-request-id", "second"),
            ("x-amzn-trace-id", "Root=1-2-3"),
            ("x-forwarded-for", "203.0.113.7"),
            ("tracestate", "a=1"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let seen = RequestHeaders::scan(&headers);
        for (found, name) in [
            (seen.request_id, "x-request-id"),
            (seen.user_agent, "user-agent"),
            (seen.traceparent, "traceparent"),
            (seen.amzn_trace_id, "x-amzn-trace-id"),
            (seen.forwarded_for, "x-forwarded-for"),
        ] {
            assert_eq!(found, headers.get(name), "{name}");
            assert!(found.is_some(), "{name}");
        }
        let empty = HeaderMap::new();
        let none = RequestHeaders::scan(&empty);
        assert!(none.request_id.is_none() && none.forwarded_for.is_none());
    }
}
