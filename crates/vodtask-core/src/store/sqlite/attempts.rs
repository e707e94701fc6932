//! The callback attempt log, and the apps in PUSH mode.

use rusqlite::{Connection, params};

use super::events::{config, settle};
use super::rows::one;
use crate::callbacks::{AttemptOutcome, AttemptsOf, CallbackAttempt};
use crate::error::Result;
use crate::events::DeliveryMode;
use crate::ids::AppId;
use crate::store::Settled;
use crate::time::{from_micros, to_micros};

const COLUMNS: &str = "e.event_id, a.attempt, a.time, a.url, a.http_status, a.error, a.duration_us, \
     a.response, a.outcome, a.next_attempt";

fn attempt(r: &rusqlite::Row<'_>) -> Result<CallbackAttempt> {
    let outcome = AttemptOutcome::from_code(r.get(8)?);
    Ok(CallbackAttempt {
        event_id: r.get(0)?,
        attempt: r.get::<_, i64>(1)?.max(0) as u32,
        time: from_micros(r.get(2)?),
        url: r.get(3)?,
        http_status: r.get::<_, Option<i64>>(4)?.map(|s| s.clamp(0, 999) as u16),
        error: r.get(5)?,
        duration: std::time::Duration::from_micros(r.get::<_, i64>(6)?.max(0) as u64),
        response: r.get(7)?,
        outcome,
        next_attempt: r.get::<_, Option<i64>>(9)?.map(from_micros),
    })
}

pub(super) fn push_apps(conn: &Connection) -> Result<Vec<AppId>> {
    let apps: Vec<i64> = conn
        .prepare_cached("SELECT app_id FROM event_config")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for app in apps {
        if config(conn, app)?.mode == DeliveryMode::Push {
            out.push(AppId(app));
        }
    }
    Ok(out)
}

pub(super) fn record(
    conn: &Connection,
    app: AppId,
    seq: i64,
    a: &CallbackAttempt,
    settled: Option<Settled>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO callback_attempts (event_seq, app_id, attempt, time, url, http_status, error,
                                        duration_us, response, outcome, next_attempt)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        seq,
        app.0,
        a.attempt,
        to_micros(a.time),
        a.url,
        a.http_status,
        a.error,
        i64::try_from(a.duration.as_micros()).unwrap_or(i64::MAX),
        a.response,
        a.outcome.code(),
        a.next_attempt.map(to_micros),
    ])?;
    if let Some(outcome) = settled {
        settle(conn, app, &[(seq, a.attempt)], outcome)?;
    }
    Ok(())
}

/// (`+a.app_id` keeps the planner on the event's index: the app's index
/// would walk all of the app's attempts.)
pub(super) fn last(conn: &Connection, app: AppId, seq: i64) -> Result<Option<CallbackAttempt>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM callback_attempts a JOIN events e ON e.seq = a.event_seq
         WHERE a.event_seq = ?1 AND +a.app_id = ?2 ORDER BY a.id DESC LIMIT 1"
    ))?;
    one(&mut stmt, params![seq, app.0], attempt)
}

pub(super) fn list(conn: &Connection, app: AppId, of: &AttemptsOf) -> Result<Vec<CallbackAttempt>> {
    let (filter, value) = match of {
        AttemptsOf::Event(id) => ("e.event_id = ?2", id),
        AttemptsOf::Task(id) => ("e.task_id = ?2", id),
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM callback_attempts a JOIN events e ON e.seq = a.event_seq
         WHERE +a.app_id = ?1 AND {filter} ORDER BY a.id LIMIT 1000"
    ))?;
    let mut rows = stmt.query(params![app.0, value])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(attempt(r)?);
    }
    Ok(out)
}

/// When the app's endpoint started failing: its first attempt after the last
/// one it answered (a server error or 429 is no answer); None if it answered
/// last, or was never tried.
pub(super) fn failing_since(
    conn: &Connection,
    app: AppId,
) -> Result<Option<crate::time::Timestamp>> {
    Ok(conn
        .prepare_cached(
            "SELECT min(time) FROM callback_attempts
             WHERE app_id = ?1 AND id > coalesce(
                 (SELECT max(id) FROM callback_attempts
                  WHERE app_id = ?1 AND http_status < 500 AND http_status <> 429), 0)",
        )?
        .query_row([app.0], |r| r.get::<_, Option<i64>>(0))?
        .map(from_micros))
}
