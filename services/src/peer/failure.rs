//! What a failed peer call tells the caller: DEADLINE_EXCEEDED when the
//! peer ran out of time (tonic's own timer says CANCELLED "Timeout
//! expired" for that), UNAVAILABLE for every other failure (a refused or
//! broken connection, or a peer that is starting, draining or overloaded),
//! each naming the peer and the cause. Either way the caller may retry.

use std::time::Duration;

use tonic::{Code, Status};

pub(crate) fn describe(peer: &str, status: &Status, budget: Duration) -> Status {
    if is_timeout(status) {
        return timed_out(peer, budget);
    }
    Status::unavailable(format!(
        "peer {peer} is unavailable: {:?}: {}",
        status.code(),
        error_chain(status)
    ))
}

pub(crate) fn timed_out(peer: &str, budget: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "peer {peer} did not answer within {}",
        humantime::format_duration(budget)
    ))
}

/// A failure of the connection, not an answer: tonic sets the error behind
/// the status only when it made the status from a transport error.
pub(crate) fn is_transport_failure(status: &Status) -> bool {
    !is_timeout(status) && std::error::Error::source(status).is_some()
}

fn is_timeout(status: &Status) -> bool {
    status.code() == Code::DeadlineExceeded
        || (status.code() == Code::Cancelled
            && sources(status).any(|error| error.is::<tonic::TimeoutExpired>()))
}

/// The status message followed by its sources ("tcp connect error: Connection refused").
pub(crate) fn error_chain(status: &Status) -> String {
    let mut text = status.message().to_owned();
    for error in sources(status) {
        let part = error.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

/// The errors behind a status, outermost first.
fn sources(status: &Status) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(status), |error| error.source())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_but_a_timeout_is_unavailable() {
        for (status, expected) in [
            (
                Status::unknown("h2 protocol error: broken pipe"),
                Code::Unavailable,
            ),
            (Status::internal("boom"), Code::Unavailable),
            (Status::resource_exhausted("overloaded"), Code::Unavailable),
            (Status::unavailable("starting"), Code::Unavailable),
            (Status::deadline_exceeded("late"), Code::DeadlineExceeded),
        ] {
            let described = describe("http://b:8202", &status, Duration::from_secs(1));
            assert_eq!(described.code(), expected, "{status:?}");
            assert!(
                described.message().contains("http://b:8202"),
                "{described:?}"
            );
        }
    }

    #[test]
    fn only_statuses_made_from_transport_errors_are_transport_failures() {
        let answered = Status::unavailable("starting: no metrics sample yet");
        assert!(!is_transport_failure(&answered));
        let broken = Status::from_error(Box::new(std::io::Error::other("connection reset")));
        assert!(is_transport_failure(&broken), "{broken:?}");
    }
}
