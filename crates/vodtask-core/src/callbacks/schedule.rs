//! When the next callback attempt of an event goes out.

use std::time::Duration;

use rand::Rng;

/// The delay before each attempt, the first included: at once, 5 s, 5 min,
/// 30 min, 2 h, 5 h, 10 h, 10 h (some 28 hours in all).
pub fn default_schedule() -> Vec<Duration> {
    [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

pub const MAX_ATTEMPTS: usize = 30;
pub const MAX_DELAY: Duration = Duration::from_secs(crate::limits::RETRY_DELAY.max as u64);

/// The wait before attempt `next` (1-based) after a failure, or None when
/// the schedule is used up. A receiver's Retry-After lengthens the wait,
/// never shortens it. ±10 % jitter spreads retries of many events.
pub fn delay_before(
    schedule: &[Duration],
    next: usize,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let planned = *schedule.get(next.checked_sub(1)?)?;
    let jittered = planned.mul_f64(rand::rng().random_range(0.9..1.1));
    Some(jittered.max(retry_after.unwrap_or(Duration::ZERO)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_runs_out_and_retry_after_only_lengthens() {
        let s = default_schedule();
        let second = delay_before(&s, 2, None).unwrap();
        assert!(second >= Duration::from_secs_f64(4.5) && second <= Duration::from_secs_f64(5.5));
        assert_eq!(delay_before(&s, 9, None), None);
        assert!(
            delay_before(&s, 2, Some(Duration::from_secs(60))).unwrap() >= Duration::from_secs(60)
        );
        assert!(
            delay_before(&s, 3, Some(Duration::from_secs(1))).unwrap() > Duration::from_secs(200)
        );
    }
}
