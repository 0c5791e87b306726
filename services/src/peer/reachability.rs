//! Whether the peer can be reached, tracked the way gRPC clients track a
//! channel: after a transport failure (connection refused, reset, keepalive
//! timeout) the peer is in transient failure, and calls fail at once with
//! UNAVAILABLE instead of each waiting for the reconnect until its own
//! deadline. One call at a time goes through as a probe, which makes tonic
//! reconnect; the first call that gets an answer ends the failure. An answer
//! that is an error (the peer starting or overloaded) proves the peer is
//! reachable, so only transport failures start one; a call that ran out of
//! time proves nothing either way and changes nothing.
//!
//! The failure and the lock-free `failing` flag change together, only while
//! the lock is held: the flag can never say "reachable" while a failure is
//! recorded (a failure nothing would clear, and fail-fast off for good).

use std::{
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

#[derive(Debug, Default)]
pub(crate) struct Reachability {
    /// Fast path: false while the peer is reachable. Written only through
    /// [`Reachability::set`], under `state`'s lock; read without it.
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

    fn lock(&self) -> MutexGuard<'_, Option<Failure>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces the failure and the flag together, under the lock.
    fn set(&self, state: &mut MutexGuard<'_, Option<Failure>>, failure: Option<Failure>) {
        self.failing.store(failure.is_some(), Ordering::Release);
        **state = failure;
    }
}

impl Admission<'_> {
    /// The peer answered (with anything): it is reachable.
    pub(crate) fn answered(self) {
        if self.reachability.failing.load(Ordering::Acquire) {
            let mut state = self.reachability.lock();
            self.reachability.set(&mut state, None);
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
                let failure = Failure {
                    since: Instant::now(),
                    error,
                    probing: false,
                };
                self.reachability.set(&mut state, Some(failure));
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

    /// The flag and the failure agree (no thread in a critical section).
    fn consistent(peer: &Reachability) -> bool {
        peer.failing.load(Ordering::Acquire) == peer.lock().is_some()
    }

    #[test]
    fn answers_and_transport_failures_from_many_threads_leave_flag_and_failure_agreeing() {
        // Before the flag was written under the lock, a transport failure
        // between an answer's two writes left a failure with the flag off:
        // fail-fast off for good. Every round ends with a known last event.
        let peer = std::sync::Arc::new(Reachability::default());
        for round in 0..200 {
            std::thread::scope(|scope| {
                for thread in 0..4 {
                    let peer = &peer;
                    scope.spawn(move || {
                        for i in 0..500 {
                            let Ok(admission) = peer.admit() else {
                                continue;
                            };
                            if (i + thread) % 2 == 0 {
                                admission.answered();
                            } else {
                                admission.transport_failed(format!("reset {i}"));
                            }
                        }
                    });
                }
            });
            assert!(consistent(&peer), "round {round}: {:?}", peer);
            // Whatever happened, one more failure must turn fail-fast on.
            if let Ok(admission) = peer.admit() {
                admission.transport_failed("refused".into());
            }
            assert!(consistent(&peer), "round {round}: {:?}", peer);
            let probe = peer.admit();
            assert!(peer.admit().is_err(), "round {round}: fail-fast is on");
            if let Ok(probe) = probe {
                probe.answered();
            }
            assert!(consistent(&peer), "round {round}: {:?}", peer);
        }
    }

    #[test]
    fn a_transport_failure_during_an_answer_waits_and_is_kept() {
        // The interleaving that used to break fail-fast, made deterministic:
        // an answer is clearing the failure (holding the lock) when a
        // transport failure comes in. The failure waits for the lock and is
        // recorded after the answer, flag included.
        let peer = Reachability::default();
        peer.admit()
            .expect("reachable")
            .transport_failed("refused".into());
        let answering = peer.admit().expect("a probe");
        std::thread::scope(|scope| {
            let mut state = peer.lock();
            let failing = scope.spawn(|| {
                peer.admit()
                    .map(|admission| admission.transport_failed("reset".into()))
                    .is_ok()
            });
            // The other thread is blocked on the lock (or has not started):
            // the answer's writes happen together before it.
            std::thread::sleep(std::time::Duration::from_millis(20));
            peer.set(&mut state, None);
            drop(state);
            std::mem::forget(answering);
            assert!(failing.join().expect("thread"), "admitted after the answer");
        });
        assert!(consistent(&peer), "{peer:?}");
        assert!(
            peer.failing.load(Ordering::Acquire),
            "fail-fast is on again"
        );
        let _probe = peer.admit().expect("one probe");
        assert!(peer.admit().is_err(), "the others fail at once");
    }
}
