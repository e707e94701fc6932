//! The log of HTTP callback attempts: what each attempt did, and when the
//! next one is due (so a restart keeps the retry schedule).

use crate::time::Timestamp;

/// One HTTP callback attempt, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct CallbackAttempt {
    /// Filled in when read back.
    pub event_id: String,
    /// 1, 2, 3… within a round of the retry schedule (a redrive starts a
    /// new round).
    pub attempt: u32,
    pub time: Timestamp,
    pub url: String,
    pub http_status: Option<u16>,
    pub error: String,
    pub duration: std::time::Duration,
    pub response: String,
    pub outcome: AttemptOutcome,
    /// When the next attempt is due; None when this one was the last.
    pub next_attempt: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Failed,
    /// 410 Gone: no more attempts for this event.
    Gone,
}

impl AttemptOutcome {
    /// How stores keep it.
    pub fn code(self) -> i64 {
        match self {
            AttemptOutcome::Delivered => 1,
            AttemptOutcome::Failed => 2,
            AttemptOutcome::Gone => 3,
        }
    }

    pub fn from_code(code: i64) -> AttemptOutcome {
        match code {
            1 => AttemptOutcome::Delivered,
            3 => AttemptOutcome::Gone,
            _ => AttemptOutcome::Failed,
        }
    }
}

impl CallbackAttempt {
    /// Whether this attempt ended its round (delivered, gone, or given up).
    pub fn is_final(&self) -> bool {
        self.outcome != AttemptOutcome::Failed || self.next_attempt.is_none()
    }
}

/// Which attempts to list.
#[derive(Debug, Clone)]
pub enum AttemptsOf {
    Event(String),
    Task(String),
}
