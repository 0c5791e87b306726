//! What a failed peer call tells the caller: DEADLINE_EXCEEDED when the
//! peer ran out of time (tonic's own timer says CANCELLED "Timeout
//! expired" for that), UNAVAILABLE for every other failure (a refused or
//! broken connection, or a peer that is starting, draining or overloaded),
//! each naming the peer and the cause. Either way the caller may retry.
//! And what a failure says about the peer's reachability ([`Evidence`]).

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

/// What a failed call says about whether the peer can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evidence {
    /// The peer sent this status: it is reachable.
    Answered,
    /// The connection failed: tonic sets the error behind the status only
    /// when it made the status from a transport error.
    TransportFailed,
    /// Time ran out (tonic's own timer, ours, or the peer's): a peer that is
    /// stopped, hung or behind dropped packets looks just like this, so it
    /// proves nothing either way.
    TimedOut,
}

pub(crate) fn evidence(status: &Status) -> Evidence {
    if is_timeout(status) {
        Evidence::TimedOut
    } else if std::error::Error::source(status).is_some() {
        Evidence::TransportFailed
    } else {
        Evidence::Answered
    }
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
    fn only_transport_errors_are_failures_and_timeouts_prove_nothing() {
        for (status, expected) in [
            (
                Status::unavailable("starting: no metrics sample yet"),
                Evidence::Answered,
            ),
            (Status::internal("boom"), Evidence::Answered),
            (
                Status::from_error(Box::new(std::io::Error::other("connection reset"))),
                Evidence::TransportFailed,
            ),
            (Status::deadline_exceeded("late"), Evidence::TimedOut),
            // tonic's channel timer: CANCELLED "Timeout expired".
            (
                Status::from_error(Box::new(tonic::TimeoutExpired(()))),
                Evidence::TimedOut,
            ),
            (
                timed_out("http://b:8202", Duration::from_secs(1)),
                Evidence::TimedOut,
            ),
        ] {
            assert_eq!(evidence(&status), expected, "{status:?}");
        }
    }
}
