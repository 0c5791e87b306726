//! Whether the peer can be reached, tracked the way gRPC clients track a
//! channel: after a transport failure (connection refused, reset, keepalive
//! timeout) the peer is in transient failure, and calls fail at once with
//! UNAVAILABLE instead of each waiting for the reconnect until its own
//! deadline. One call at a time goes through as a probe, which makes tonic
//! reconnect; the first call that gets an answer ends the failure. An answer
//! that is an error (the peer starting or overloaded) proves the peer is
//! reachable, so only transport failures start one.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

#[derive(Debug, Default)]
pub(crate) struct Reachability {
    /// Fast path: false while the peer is reachable.
    failing: AtomicBool,
    state: Mutex<Option<Failure>>,
}

#[derive(Debug)]
struct Failure {
    since: Instant,
    error: String,
    probing: bool,
}

/// Why a call was not let through: the failure that is going on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unreachable {
    pub(crate) for_ms: u128,
    pub(crate) error: String,
}

/// Permission to call. A probe that ends without an answer frees the
/// probe's place for the next call.
#[must_use]
pub(crate) struct Admission<'a> {
    reachability: &'a Reachability,
    probe: bool,
}

impl Reachability {
    pub(crate) fn admit(&self) -> Result<Admission<'_>, Unreachable> {
        let normal = Admission {
            reachability: self,
            probe: false,
        };
        if !self.failing.load(Ordering::Acquire) {
            return Ok(normal);
        }
        let mut state = self.lock();
        match state.as_mut() {
            None => Ok(normal),
            Some(failure) if !failure.probing => {
                failure.probing = true;
                Ok(Admission {
                    reachability: self,
                    probe: true,
                })
            }
            Some(failure) => Err(Unreachable {
                for_ms: failure.since.elapsed().as_millis(),
                error: failure.error.clone(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failure>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Admission<'_> {
    /// The peer answered (with anything): it is reachable.
    pub(crate) fn answered(self) {
        if self.reachability.failing.load(Ordering::Acquire) {
            *self.reachability.lock() = None;
            self.reachability.failing.store(false, Ordering::Release);
        }
    }

    /// The connection failed: the peer is unreachable until a call is answered.
    pub(crate) fn transport_failed(self, error: String) {
        let mut state = self.reachability.lock();
        match state.as_mut() {
            Some(failure) => {
                failure.error = error;
                if self.probe {
                    failure.probing = false;
                }
            }
            None => {
                *state = Some(Failure {
                    since: Instant::now(),
                    error,
                    probing: false,
                });
                self.reachability.failing.store(true, Ordering::Release);
            }
        }
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        // A probe that timed out (or was dropped with its caller) lets the next call probe.
        if self.probe
            && let Some(failure) = self.reachability.lock().as_mut()
        {
            failure.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_transport_failure_one_probe_at_a_time_until_an_answer() {
        let peer = Reachability::default();
        peer.admit()
            .expect("reachable at first")
            .transport_failed("refused".into());
        let probe = peer.admit().expect("the first call probes");
        let refused = peer.admit().err().expect("others fail at once");
        assert_eq!(refused.error, "refused");
        // The probe times out: the next call probes.
        drop(probe);
        let probe = peer.admit().expect("a new probe");
        assert!(peer.admit().is_err());
        probe.answered();
        for _ in 0..3 {
            peer.admit().expect("reachable again").answered();
        }
    }

    #[test]
    fn a_failed_probe_keeps_the_failure_and_frees_the_probe() {
        let peer = Reachability::default();
        peer.admit()
            .expect("reachable")
            .transport_failed("refused".into());
        peer.admit()
            .expect("probe")
            .transport_failed("reset".into());
        let next = peer.admit().expect("the next call probes");
        assert_eq!(
            peer.admit().err().map(|u| u.error),
            Some("reset".to_owned())
        );
        next.answered();
    }
}
