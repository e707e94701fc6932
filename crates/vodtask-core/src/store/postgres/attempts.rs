//! The callback attempt log, and the apps in PUSH mode: the PostgreSQL twin
//! of `store/sqlite/attempts.rs`.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::Tx;
use super::events::{config, settle};
use super::rows::Sql;
use crate::callbacks::{AttemptOutcome, AttemptsOf, CallbackAttempt};
use crate::error::Result;
use crate::events::DeliveryMode;
use crate::ids::AppId;
use crate::store::Settled;
use crate::time::{Timestamp, from_micros, to_micros};

const COLUMNS: &str = "e.event_id, a.attempt, a.time, a.url, a.http_status, a.error, a.duration_us, \
     a.response, a.outcome, a.next_attempt";

fn attempt(r: &Row) -> Result<CallbackAttempt> {
    let outcome = AttemptOutcome::from_code(r.try_get(8)?);
    Ok(CallbackAttempt {
        event_id: r.try_get(0)?,
        attempt: r.try_get::<_, i64>(1)?.clamp(0, i64::from(u32::MAX)) as u32,
        time: from_micros(r.try_get(2)?),
        url: r.try_get(3)?,
        http_status: r
            .try_get::<_, Option<i64>>(4)?
            .map(|s| s.clamp(0, 999) as u16),
        error: r.try_get(5)?,
        duration: std::time::Duration::from_micros(r.try_get::<_, i64>(6)?.max(0) as u64),
        response: r.try_get(7)?,
        outcome,
        next_attempt: r.try_get::<_, Option<i64>>(9)?.map(from_micros),
    })
}

pub(super) async fn push_apps(c: &impl GenericClient) -> Result<Vec<AppId>> {
    let mut out = Vec::new();
    for r in c.rows("SELECT app_id FROM event_config", &[]).await? {
        let app = AppId(r.try_get(0)?);
        if config(c, app).await?.mode == DeliveryMode::Push {
            out.push(app);
        }
    }
    Ok(out)
}

pub(super) async fn record(
    tx: &Tx<'_>,
    app: AppId,
    seq: i64,
    a: &CallbackAttempt,
    settled: Option<Settled>,
) -> Result<()> {
    tx.exec(
        "INSERT INTO callback_attempts (event_seq, app_id, attempt, time, url, http_status, error,
                                        duration_us, response, outcome, next_attempt)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &seq,
            &app.0,
            &i64::from(a.attempt),
            &to_micros(a.time),
            &a.url,
            &a.http_status.map(i64::from),
            &a.error,
            &i64::try_from(a.duration.as_micros()).unwrap_or(i64::MAX),
            &a.response,
            &a.outcome.code(),
            &a.next_attempt.map(to_micros),
        ],
    )
    .await?;
    if let Some(outcome) = settled {
        settle(tx, app, &[(seq, a.attempt)], outcome).await?;
    }
    Ok(())
}

pub(super) async fn last(
    c: &impl GenericClient,
    app: AppId,
    seq: i64,
) -> Result<Option<CallbackAttempt>> {
    c.opt(
        &format!(
            "SELECT {COLUMNS} FROM callback_attempts a JOIN events e ON e.seq = a.event_seq
             WHERE a.event_seq = $1 AND a.app_id = $2 ORDER BY a.id DESC LIMIT 1"
        ),
        &[&seq, &app.0],
    )
    .await?
    .as_ref()
    .map(attempt)
    .transpose()
}

pub(super) async fn list(
    c: &impl GenericClient,
    app: AppId,
    of: &AttemptsOf,
) -> Result<Vec<CallbackAttempt>> {
    let (filter, value) = match of {
        AttemptsOf::Event(id) => ("e.event_id = $2", id),
        AttemptsOf::Task(id) => ("e.task_id = $2", id),
    };
    c.rows(
        &format!(
            "SELECT {COLUMNS} FROM callback_attempts a JOIN events e ON e.seq = a.event_seq
             WHERE a.app_id = $1 AND {filter} ORDER BY a.id LIMIT 1000"
        ),
        &[&app.0, value],
    )
    .await?
    .iter()
    .map(attempt)
    .collect()
}

/// When the app's endpoint started failing: its first attempt after the last
/// one it answered (a server error or 429 is no answer); None if it answered
/// last, or was never tried.
pub(super) async fn failing_since(c: &impl GenericClient, app: AppId) -> Result<Option<Timestamp>> {
    let since: Option<i64> = c
        .one(
            "SELECT min(time) FROM callback_attempts
             WHERE app_id = $1 AND id > coalesce(
                 (SELECT max(id) FROM callback_attempts
                  WHERE app_id = $1 AND http_status < 500 AND http_status <> 429), 0)",
            &[&app.0],
        )
        .await?
        .try_get(0)?;
    Ok(since.map(from_micros))
}
