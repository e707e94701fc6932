//! The bounds of every number and text the API takes, each defined once
//! with the message that states it, so that the rule a caller is told is
//! the rule that is checked. Upper bounds also keep the arithmetic done
//! with a value (timestamps plus or minus durations) in range.

use std::time::Duration;

use crate::error::{Error, Result};

/// An inclusive range of an integer field. `zero_means` is the value an
/// unset (zero) field stands for, where the contract has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub field: &'static str,
    pub min: i64,
    pub max: i64,
    pub zero_means: Option<i64>,
}

impl Bound {
    const fn new(field: &'static str, min: i64, max: i64) -> Bound {
        Bound {
            field,
            min,
            max,
            zero_means: None,
        }
    }

    const fn or_zero_for(self, default: i64) -> Bound {
        Bound {
            zero_means: Some(default),
            ..self
        }
    }

    /// The rule as callers read it: `must be within 1..1000 (0 means 16)`.
    pub fn rule(&self) -> String {
        match self.zero_means {
            Some(d) => format!("must be within {}..{} (0 means {d})", self.min, self.max),
            None => format!("must be within {}..{}", self.min, self.max),
        }
    }

    /// The value to use: `value` itself, or the default for an unset zero.
    pub fn check(&self, value: i64) -> Result<i64> {
        if value == 0
            && let Some(d) = self.zero_means
        {
            return Ok(d);
        }
        if (self.min..=self.max).contains(&value) {
            Ok(value)
        } else {
            Err(Error::invalid(
                self.field,
                format!("{}, got {value}", self.rule()),
            ))
        }
    }

    /// [`check`](Self::check) for a field the core keeps as `u32`; every
    /// bound of such a field lies within `u32`.
    pub fn check_u32(&self, value: i64) -> Result<u32> {
        let v = self.check(value)?;
        u32::try_from(v).map_err(|_| Error::invalid(self.field, self.rule()))
    }

    /// A field in seconds, as a duration.
    pub fn seconds(&self, value: i64) -> Result<Duration> {
        let v = self.check(value)?;
        u64::try_from(v)
            .map(Duration::from_secs)
            .map_err(|_| Error::invalid(self.field, self.rule()))
    }

    /// Checks a duration kept in whole seconds (settings read back from the
    /// store go through the same rule as those from the API).
    pub fn check_duration(&self, d: Duration) -> Result<Duration> {
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        self.seconds(secs)
    }
}

const DAY: i64 = 24 * 3600;

// Event settings (ModifyEventConfig).
pub const VISIBILITY_TIMEOUT: Bound = Bound::new("visibility_timeout_seconds", 1, 12 * 3600);
pub const MAX_DELIVERIES: Bound = Bound::new("max_deliveries", 1, 1000);
/// At least an hour; at most ten years, which keeps `now - retention` far
/// inside the range of timestamps.
pub const RETENTION: Bound = Bound::new("retention_seconds", 3600, 3650 * DAY);
pub const CALLBACK_TIMEOUT: Bound = Bound::new("callback_timeout_seconds", 1, 60);
pub const DISABLE_AFTER: Bound = Bound::new("disable_after_seconds", 1, 365 * DAY);
pub const RETRY_DELAY: Bound = Bound::new("retry_schedule_seconds", 0, 7 * DAY);
pub const SECRET_OVERLAP: Bound = Bound::new("overlap_seconds", 0, 7 * DAY);

// Consuming events.
pub const PULL_MAX_EVENTS: Bound = Bound::new("max_events", 1, 1000).or_zero_for(16);
pub const PULL_WAIT: Bound = Bound::new("wait_seconds", 0, 20);
pub const MAX_IN_FLIGHT: Bound = Bound::new("max_in_flight", 1, 1000).or_zero_for(16);
pub const EXTEND: Bound = Bound::new("seconds", 1, 12 * 3600);
pub const NACK_DELAY: Bound = Bound::new("delay_seconds", 0, 12 * 3600);
pub const DEAD_LETTER_LIMIT: Bound = Bound::new("limit", 1, 1000).or_zero_for(100);

/// Longest `notification_url`: it is copied into every callback attempt's
/// log row, so a megabyte of URL would be stored thousands of times.
pub const MAX_URL_BYTES: usize = 2048;

/// Checks a caller-supplied identifier (a task id to look up): printable
/// ASCII without spaces, at most `max` bytes. Ids are echoed in messages
/// and logs, so control characters never pass.
pub fn check_token(field: &str, raw: &str, max: usize) -> Result<()> {
    if raw.len() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters, got {}", raw.len()),
        ));
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            "must hold only printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// Checks a caller-supplied short text that is echoed back and logged (a
/// session id): at most `max` characters, none of them control characters.
pub fn check_text(field: &str, raw: &str, max: usize) -> Result<()> {
    let chars = raw.chars().count();
    if chars > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters, got {chars}"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not hold control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_states_the_rule_that_is_checked() {
        let e = VISIBILITY_TIMEOUT.check(-1).expect_err("below");
        assert_eq!(
            e.to_string(),
            "visibility_timeout_seconds: must be within 1..43200, got -1"
        );
        assert!(
            VISIBILITY_TIMEOUT.check(0).is_err(),
            "0 is refused, as stated"
        );
        assert_eq!(VISIBILITY_TIMEOUT.check(1).expect("min"), 1);
        assert_eq!(VISIBILITY_TIMEOUT.check(43200).expect("max"), 43200);
        assert!(VISIBILITY_TIMEOUT.check(43201).is_err());
    }

    #[test]
    fn zero_stands_for_the_default_where_the_contract_says_so() {
        assert_eq!(PULL_MAX_EVENTS.check(0).expect("zero"), 16);
        let e = PULL_MAX_EVENTS.check(1001).expect_err("above");
        assert_eq!(
            e.to_string(),
            "max_events: must be within 1..1000 (0 means 16), got 1001"
        );
    }

    #[test]
    fn retention_is_bounded_so_that_time_arithmetic_cannot_overflow() {
        let e = RETENTION.check(10_000_000_000_000).expect_err("huge");
        assert!(e.to_string().contains("3600..315360000"), "{e}");
        let max = RETENTION.seconds(RETENTION.max).expect("max");
        assert!(
            crate::time::now()
                .checked_sub_signed(chrono::TimeDelta::from_std(max).expect("fits"))
                .is_some()
        );
        assert!(
            RETENTION
                .check_duration(Duration::from_secs(u64::MAX))
                .is_err()
        );
    }

    #[test]
    fn tokens_refuse_control_characters_and_length() {
        assert!(check_token("task_id", "transcode-0a1b", 128).is_ok());
        let e = check_token("task_id", "a\0b", 128).expect_err("nul");
        assert!(
            e.to_string()
                .starts_with("task_id: must hold only printable"),
            "{e}"
        );
        assert!(check_token("task_id", "a\nb", 128).is_err());
        assert!(check_token("task_id", "a b", 128).is_err());
        assert!(check_token("task_id", &"x".repeat(129), 128).is_err());
        assert!(check_text("session_id", "订单 42", 50).is_ok());
        assert!(check_text("session_id", "a\u{1b}[31m", 50).is_err());
        assert!(check_text("session_id", &"x".repeat(51), 50).is_err());
    }
}
