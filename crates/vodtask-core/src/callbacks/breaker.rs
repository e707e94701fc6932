//! A circuit breaker per endpoint: after `THRESHOLD` failures in a row no
//! callbacks go out for a cooldown (5 s, doubling up to 5 min); then one
//! probe decides. A dead endpoint is not hammered, and its events keep
//! their attempts for when it is back. It also tracks since when the
//! endpoint has been failing, for auto-disabling.

use std::time::Duration;

use tokio::time::Instant;

use crate::time::Timestamp;

pub const THRESHOLD: u32 = 5;
const MIN_COOLDOWN: Duration = Duration::from_secs(5);
const MAX_COOLDOWN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    Open {
        until: Instant,
    },
    /// The cooldown is over; `probing` while the one probe is out.
    HalfOpen {
        probing: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Breaker {
    circuit: Circuit,
    failures: u32,
    cooldown: Duration,
    failing_since: Option<Timestamp>,
}

/// How many callbacks may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Only this many (a probe).
    Probe,
    ClosedUntil(Instant),
    /// The probe is out; wait for its answer.
    Waiting,
}

impl Breaker {
    pub fn new(failing_since: Option<Timestamp>) -> Breaker {
        Breaker {
            circuit: Circuit::Closed,
            failures: 0,
            cooldown: MIN_COOLDOWN,
            failing_since,
        }
    }

    pub fn circuit(&self) -> Circuit {
        self.circuit
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn failing_since(&self) -> Option<Timestamp> {
        self.failing_since
    }

    /// Whether callbacks may go out now (a probe is taken when allowed).
    pub fn gate(&mut self, now: Instant) -> Gate {
        match self.circuit {
            Circuit::Closed => Gate::Open,
            Circuit::Open { until } if now < until => Gate::ClosedUntil(until),
            Circuit::Open { .. } | Circuit::HalfOpen { probing: false } => {
                self.circuit = Circuit::HalfOpen { probing: true };
                Gate::Probe
            }
            Circuit::HalfOpen { probing: true } => Gate::Waiting,
        }
    }

    /// The probe was not sent after all (nothing was due).
    pub fn unprobe(&mut self) {
        if self.circuit == (Circuit::HalfOpen { probing: true }) {
            self.circuit = Circuit::HalfOpen { probing: false };
        }
    }

    /// The endpoint answered (any HTTP answer that is not a server error).
    pub fn succeeded(&mut self) {
        *self = Breaker::new(None);
    }

    /// No answer, or a 5xx or 429.
    pub fn failed(&mut self, now: Instant, at: Timestamp) {
        self.failures += 1;
        self.failing_since.get_or_insert(at);
        let probe_failed = matches!(self.circuit, Circuit::HalfOpen { .. });
        if probe_failed || (self.circuit == Circuit::Closed && self.failures >= THRESHOLD) {
            self.circuit = Circuit::Open {
                until: now + self.cooldown,
            };
            self.cooldown = (self.cooldown * 2).min(MAX_COOLDOWN);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_a_probe_decides() {
        let t0 = Instant::now();
        let at = crate::time::now();
        let mut b = Breaker::new(None);
        for _ in 0..THRESHOLD - 1 {
            b.failed(t0, at);
            assert_eq!(b.gate(t0), Gate::Open);
        }
        b.failed(t0, at);
        assert_eq!(b.gate(t0), Gate::ClosedUntil(t0 + MIN_COOLDOWN));
        let later = t0 + MIN_COOLDOWN;
        assert_eq!(b.gate(later), Gate::Probe);
        assert_eq!(b.gate(later), Gate::Waiting);
        b.failed(later, at);
        assert_eq!(b.gate(later), Gate::ClosedUntil(later + MIN_COOLDOWN * 2));
        assert_eq!(b.failing_since(), Some(at));
        let after = later + MIN_COOLDOWN * 2;
        assert_eq!(b.gate(after), Gate::Probe);
        b.succeeded();
        assert_eq!(
            (b.gate(after), b.failures(), b.failing_since()),
            (Gate::Open, 0, None)
        );
    }
}
