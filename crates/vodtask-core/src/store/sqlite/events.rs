//! Event SQL: the outbox write, and the queue operations (pull, settle,
//! dead letters, counts). Runs inside the caller's transaction.

use std::time::Duration;

use rusqlite::{Connection, params};

use super::rows::{one, to_json};
use crate::error::{Error, Result};
use crate::events::envelope::Draft;
use crate::events::{Delivery, Event, EventConfig, HandleResult, MsgHandle, QueueState, backoff};
use crate::ids::AppId;
use crate::store::{EventPage, Settle};
use crate::time::{Timestamp, from_micros, to_micros};

const PENDING: i64 = 1;
const IN_FLIGHT: i64 = 2;
const DEAD: i64 = 3;
const CONFIRMED: i64 = 4;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

pub(super) fn config(conn: &Connection, app: i64) -> Result<EventConfig> {
    let mut stmt = conn.prepare_cached("SELECT config_json FROM event_config WHERE app_id = ?1")?;
    let json = one(&mut stmt, [app], |r| Ok(r.get::<_, String>(0)?))?;
    match json {
        Some(j) => serde_json::from_str(&j)
            .map_err(|e| Error::Storage(format!("event config: {e}").into())),
        None => Ok(EventConfig::default()),
    }
}

pub(super) fn set_config(conn: &Connection, app: i64, config: &EventConfig) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO event_config (app_id, config_json) VALUES (?1, ?2)
         ON CONFLICT DO UPDATE SET config_json = excluded.config_json",
    )?
    .execute(params![app, to_json(config)?])?;
    Ok(())
}

/// Writes an event in the caller's transaction, unless the app switched its
/// type off. Tasks number their events 1, 2, 3…; other keys start at 1.
pub(super) fn emit(conn: &Connection, app: i64, draft: &Draft, now: Timestamp) -> Result<()> {
    if !config(conn, app)?.enabled(draft.event_type) {
        return Ok(());
    }
    let task_sequence: i64 = match &draft.task_id {
        Some(task_id) => conn
            .prepare_cached(
                "UPDATE tasks SET event_seq = event_seq + 1 WHERE task_id = ?1 RETURNING event_seq",
            )?
            .query_row([task_id], |r| r.get(0))?,
        None => 1,
    };
    let is_head: bool = conn
        .prepare_cached(
            "SELECT NOT EXISTS (SELECT 1 FROM events WHERE app_id = ?1 AND order_key = ?2 AND state IN (1, 2))",
        )?
        .query_row(params![app, draft.order_key], |r| r.get(0))?;
    let event_id = format!("ev-{}", uuid::Uuid::new_v4().simple());
    conn.prepare_cached(
        "INSERT INTO events (event_id, app_id, order_key, task_id, task_sequence, event_type, event_time,
                             content_json, state, is_head, visible_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?7)",
    )?
    .execute(params![
        event_id,
        app,
        draft.order_key,
        draft.task_id.as_deref().unwrap_or_default(),
        task_sequence,
        draft.event_type.as_str(),
        to_micros(now),
        draft.seal(&event_id, now, task_sequence),
        PENDING,
        is_head,
    ])?;
    Ok(())
}

/// After the head of a key settles, the next event of that key may go.
fn promote_next(conn: &Connection, app: i64, order_key: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE events SET is_head = 1 WHERE seq = (
             SELECT seq FROM events WHERE app_id = ?1 AND order_key = ?2 AND state IN (1, 2)
             ORDER BY task_sequence LIMIT 1)",
    )?
    .execute(params![app, order_key])?;
    Ok(())
}

fn settle_as(
    conn: &Connection,
    seq: i64,
    app: i64,
    order_key: &str,
    state: i64,
    now: Timestamp,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE events SET state = ?1, is_head = 0, lease_until = NULL, consumer = NULL, settled_time = ?2
         WHERE seq = ?3",
    )?
    .execute(params![state, to_micros(now), seq])?;
    promote_next(conn, app, order_key)
}

const EVENT_COLUMNS: &str =
    "event_id, event_type, task_id, event_time, task_sequence, content_json, deliveries";

fn event(r: &rusqlite::Row<'_>) -> Result<Event> {
    Ok(Event {
        event_id: r.get(0)?,
        event_type: r.get(1)?,
        task_id: r.get(2)?,
        event_time: from_micros(r.get(3)?),
        task_sequence: r.get(4)?,
        content_json: r.get(5)?,
        deliveries: r.get::<_, i64>(6)?.max(0) as u32,
    })
}

/// Leases up to `max` deliverable events, longest-visible first (the order
/// of the `events_ready` index, so a long queue is not sorted per pull). An
/// event past its last allowed delivery goes to the dead-letter list instead.
pub(super) fn pull(
    conn: &Connection,
    app: AppId,
    max: u32,
    consumer: Option<&str>,
    now: Timestamp,
) -> Result<Vec<Delivery>> {
    let cfg = config(conn, app.0)?;
    let candidates: Vec<(i64, String, i64, i64)> = conn
        .prepare_cached(
            "SELECT seq, order_key, deliveries, token FROM events
             WHERE app_id = ?1 AND is_head = 1 AND state IN (1, 2) AND visible_at <= ?2
             ORDER BY visible_at, seq LIMIT ?3",
        )?
        .query_map(params![app.0, to_micros(now), max], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(candidates.len());
    for (seq, order_key, deliveries, token) in candidates {
        if deliveries >= i64::from(cfg.max_deliveries) {
            settle_as(conn, seq, app.0, &order_key, DEAD, now)?;
            continue;
        }
        let deliveries = deliveries + 1;
        let lease_until = now + cfg.visibility_timeout;
        let redeliver_at = lease_until + backoff(deliveries as u32);
        let mut stmt = conn.prepare_cached(&format!(
            "UPDATE events SET state = ?1, deliveries = ?2, token = ?3, lease_until = ?4, visible_at = ?5, consumer = ?6
             WHERE seq = ?7 RETURNING {EVENT_COLUMNS}"
        ))?;
        let ev = one(
            &mut stmt,
            params![
                IN_FLIGHT,
                deliveries,
                token + 1,
                to_micros(lease_until),
                to_micros(redeliver_at),
                consumer,
                seq
            ],
            event,
        )?
        .ok_or_else(|| Error::Internal("event vanished during pull".into()))?;
        out.push(Delivery {
            handle: MsgHandle {
                seq,
                token: token + 1,
            },
            event: ev,
        });
    }
    Ok(out)
}

/// Confirms, extends or nacks each handle; one result per handle.
pub(super) fn settle(
    conn: &Connection,
    app: AppId,
    handles: &[String],
    op: Settle,
    now: Timestamp,
) -> Result<Vec<HandleResult>> {
    let mut results = Vec::with_capacity(handles.len());
    for raw in handles {
        let Some(h) = MsgHandle::decode(raw) else {
            results.push(HandleResult::Unknown);
            continue;
        };
        let mut stmt = conn.prepare_cached(
            "SELECT app_id, state, token, lease_until, order_key, deliveries FROM events WHERE seq = ?1",
        )?;
        let row = one(&mut stmt, [h.seq], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?;
        let result = match row {
            None => HandleResult::Unknown,
            Some((owner, ..)) if owner != app.0 => HandleResult::Unknown,
            Some((_, CONFIRMED, ..)) => HandleResult::AlreadyConfirmed,
            Some((_, state, token, lease_until, order_key, deliveries)) => {
                let held = state == IN_FLIGHT
                    && token == h.token
                    && lease_until.is_some_and(|l| l >= to_micros(now));
                if !held {
                    HandleResult::Expired
                } else {
                    match op {
                        Settle::Confirm => {
                            settle_as(conn, h.seq, app.0, &order_key, CONFIRMED, now)?
                        }
                        Settle::Extend(by) => {
                            let until = now + by.min(crate::events::MAX_VISIBILITY_TIMEOUT);
                            let again = until + backoff(deliveries as u32);
                            conn.prepare_cached("UPDATE events SET lease_until = ?1, visible_at = ?2 WHERE seq = ?3")?
                                .execute(params![to_micros(until), to_micros(again), h.seq])?;
                        }
                        Settle::Nack(delay) => {
                            let delay = delay.unwrap_or_else(|| backoff(deliveries as u32));
                            conn.prepare_cached(
                                "UPDATE events SET state = ?1, lease_until = NULL, consumer = NULL, visible_at = ?2
                                 WHERE seq = ?3",
                            )?
                            .execute(params![PENDING, to_micros(now) + micros(delay), h.seq])?;
                        }
                    }
                    HandleResult::Done
                }
            }
        };
        results.push(result);
    }
    Ok(results)
}

/// A broken stream's unconfirmed events become deliverable at once.
pub(super) fn release_consumer(conn: &Connection, consumer: &str, now: Timestamp) -> Result<u64> {
    let n = conn
        .prepare_cached(
            "UPDATE events SET state = ?1, lease_until = NULL, consumer = NULL, visible_at = ?2
             WHERE consumer = ?3 AND state = ?4",
        )?
        .execute(params![PENDING, to_micros(now), consumer, IN_FLIGHT])?;
    Ok(n as u64)
}

pub(super) fn in_flight_for(conn: &Connection, consumer: &str, now: Timestamp) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM events WHERE consumer = ?1 AND state = 2 AND lease_until >= ?2",
        )?
        .query_row(params![consumer, to_micros(now)], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

pub(super) fn dead_letters(
    conn: &Connection,
    app: AppId,
    limit: u32,
    after: Option<i64>,
) -> Result<EventPage> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS}, seq FROM events WHERE app_id = ?1 AND state = 3 AND seq > ?2 ORDER BY seq LIMIT ?3"
    ))?;
    let mut rows = stmt.query(params![app.0, after.unwrap_or(0), limit + 1])?;
    let mut events = Vec::new();
    let mut last = None;
    while let Some(r) = rows.next()? {
        if events.len() == limit as usize {
            return Ok(EventPage {
                events,
                next_after: last,
            });
        }
        last = Some(r.get::<_, i64>(7)?);
        events.push(event(r)?);
    }
    Ok(EventPage {
        events,
        next_after: None,
    })
}

/// Puts dead-lettered events back in the queue (all, or those named) with
/// their delivery count reset.
pub(super) fn redrive(
    conn: &Connection,
    app: AppId,
    ids: Option<&[String]>,
    now: Timestamp,
) -> Result<u64> {
    let victims: Vec<(i64, String, String)> = conn
        .prepare_cached("SELECT seq, order_key, event_id FROM events WHERE app_id = ?1 AND state = 3 ORDER BY seq")?
        .query_map([app.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    for (seq, order_key, event_id) in victims {
        if ids.is_some_and(|ids| !ids.contains(&event_id)) {
            continue;
        }
        let has_head: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM events WHERE app_id = ?1 AND order_key = ?2 AND state IN (1, 2) AND is_head = 1)",
            )?
            .query_row(params![app.0, order_key], |r| r.get(0))?;
        conn.prepare_cached(
            "UPDATE events SET state = ?1, is_head = ?2, deliveries = 0, visible_at = ?3, settled_time = NULL
             WHERE seq = ?4",
        )?
        .execute(params![PENDING, !has_head, to_micros(now), seq])?;
        n += 1;
    }
    Ok(n)
}

pub(super) fn queue_state(conn: &Connection, app: AppId, now: Timestamp) -> Result<QueueState> {
    let mut state = QueueState::default();
    let mut stmt = conn.prepare_cached(
        "SELECT state, is_head, visible_at, lease_until FROM events WHERE app_id = ?1 AND state IN (1, 2)",
    )?;
    let mut rows = stmt.query([app.0])?;
    let now = to_micros(now);
    while let Some(r) = rows.next()? {
        let (st, head, visible_at, lease_until): (i64, bool, i64, Option<i64>) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        let leased = st == IN_FLIGHT && lease_until.is_some_and(|l| l >= now);
        if leased {
            state.in_flight += 1;
        } else if head && visible_at <= now {
            state.ready += 1;
        } else {
            state.delayed += 1;
        }
    }
    state.dead_lettered = conn
        .prepare_cached("SELECT count(*) FROM events WHERE app_id = ?1 AND state = 3")?
        .query_row([app.0], |r| r.get(0))?;
    state.oldest_unconfirmed = conn
        .prepare_cached("SELECT min(event_time) FROM events WHERE app_id = ?1 AND state IN (1, 2)")?
        .query_row([app.0], |r| r.get::<_, Option<i64>>(0))?
        .map(from_micros);
    Ok(state)
}

/// When the next event of the app becomes deliverable, if any is waiting.
pub(super) fn next_visible(conn: &Connection, app: AppId) -> Result<Option<Timestamp>> {
    Ok(conn
        .prepare_cached("SELECT min(visible_at) FROM events WHERE app_id = ?1 AND is_head = 1 AND state IN (1, 2)")?
        .query_row([app.0], |r| r.get::<_, Option<i64>>(0))?
        .map(from_micros))
}

/// Deletes events older than their app's retention.
pub(super) fn purge(conn: &Connection, now: Timestamp) -> Result<u64> {
    let apps: Vec<i64> = conn
        .prepare_cached("SELECT DISTINCT app_id FROM events")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    for app in apps {
        let cutoff = now - config(conn, app)?.retention;
        let keys: Vec<String> = conn
            .prepare_cached("SELECT DISTINCT order_key FROM events WHERE app_id = ?1 AND event_time < ?2 AND is_head = 1")?
            .query_map(params![app, to_micros(cutoff)], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        n += conn
            .prepare_cached("DELETE FROM events WHERE app_id = ?1 AND event_time < ?2")?
            .execute(params![app, to_micros(cutoff)])? as u64;
        for key in keys {
            promote_next(conn, app, &key)?;
        }
    }
    Ok(n)
}
