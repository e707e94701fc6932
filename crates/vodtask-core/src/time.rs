//! Timestamps: UTC, stored as microseconds since the Unix epoch.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

pub type Timestamp = DateTime<Utc>;

pub fn now() -> Timestamp {
    Utc::now()
}

pub fn to_micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> Timestamp {
    Utc.timestamp_micros(us)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `t + d`, held at the last representable time instead of overflowing:
/// durations come from settings and flags, and a huge one must mean
/// "never", not a panic.
pub fn after(t: Timestamp, d: Duration) -> Timestamp {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, held at the first representable time instead of overflowing.
pub fn before(t: Timestamp, d: Duration) -> Timestamp {
    TimeDelta::from_std(d)
        .ok()
        .and_then(|d| t.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The UTC hour a timestamp falls in, as hours since the epoch: the bucket of
/// the task counters.
pub fn hour_of(t: Timestamp) -> i64 {
    t.timestamp().div_euclid(3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_with_huge_durations_saturates() {
        let t = now();
        assert_eq!(
            before(t, Duration::from_secs(u64::MAX)),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(
            after(t, Duration::from_secs(u64::MAX)),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            before(t, Duration::from_secs(60)),
            t - TimeDelta::seconds(60)
        );
        assert_eq!(
            after(t, Duration::from_secs(60)),
            t + TimeDelta::seconds(60)
        );
        // Stored as microseconds: the extremes still convert both ways.
        let us = to_micros(before(t, Duration::from_secs(10_000_000_000_000)));
        assert!(from_micros(us) <= t);
    }
}
