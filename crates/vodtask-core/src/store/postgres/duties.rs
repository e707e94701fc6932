//! Periodic work that must run once across all processes, not once per
//! process (event and task retention, the media sweep): each run is a
//! claim on the duty's row until the period is over. The first process to
//! ask after that claims it; the others are told no. A process that dies
//! holding a claim holds up the duty for at most one period.
//!
//! Times are the database's clock, so that processes whose clocks disagree
//! still take turns.

use std::time::Duration;

use super::rows::Sql;
use crate::error::Result;
use crate::store::Duty;

pub(super) async fn claim(c: &impl Sql, duty: Duty, node: &str, every: Duration) -> Result<bool> {
    let every = i64::try_from(every.as_micros()).unwrap_or(i64::MAX);
    let claimed = c
        .opt(
            "WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint AS now)
             INSERT INTO duties (duty, node, due)
             SELECT $1, $2, now + $3 FROM clock
             ON CONFLICT (duty) DO UPDATE SET node = excluded.node, due = excluded.due
             WHERE duties.due <= (SELECT now FROM clock)
             RETURNING node",
            &[&duty.name(), &node, &every],
        )
        .await?;
    Ok(claimed.is_some())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::testing::Schema;
    use crate::store::{Duty, Store};

    #[tokio::test]
    async fn one_process_per_period_runs_a_duty() {
        let schema = Schema::create().await;
        let (a, b) = (schema.open().await, schema.open().await);
        let every = Duration::from_millis(300);

        assert!(a.claim_duty(Duty::Retention, every).await.unwrap());
        assert!(!b.claim_duty(Duty::Retention, every).await.unwrap());
        assert!(
            !a.claim_duty(Duty::Retention, every).await.unwrap(),
            "a run is claimed for its whole period, by its claimer too"
        );
        assert!(
            b.claim_duty(Duty::MediaSweep, every).await.unwrap(),
            "each duty is claimed on its own"
        );

        // Once the period is over, whoever asks first runs the next one.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !b.claim_duty(Duty::Retention, every).await.unwrap() {
            assert!(Instant::now() < deadline, "the period never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!a.claim_duty(Duty::Retention, every).await.unwrap());
    }
}
