//! Event SQL: the outbox write, and what the queue needs durable: loading
//! pending events, settling (confirm, dead-letter), dead letters, redrive,
//! counts beyond the queue's window, retention. Leases are not stored.

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::rows::{one, to_json};
use crate::error::{Error, Result};
use crate::events::envelope::Draft;
use crate::events::{Event, EventConfig};
use crate::ids::AppId;
use crate::store::{EventPage, PendingEvent, Revive, Settled, Stored, Tail};
use crate::time::{Timestamp, from_micros, to_micros};

// Event row states (2, "in flight", was stored before leases moved to memory).
// SQLite stores the integers 0 and 1 in no bytes of the record, so a confirm
// rewrites its row at the same size, in place. A row that grew made its full
// leaf page split; each split can renumber pages through a temporary page
// number far past the file's end, and the commit after that scans the whole
// page cache (`pcache1TruncateUnsafe`): a sixth of the server's CPU while
// small batches were being confirmed.
const PENDING: i64 = 1;
const CONFIRMED: i64 = 0;
const DEAD: i64 = 3;

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
    let event_id = format!("ev-{}", uuid::Uuid::new_v4().simple());
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO events (event_id, app_id, order_key, task_id, task_sequence, event_type, event_time, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING seq",
        )?
        .query_row(
            params![
                event_id,
                app,
                draft.order_key,
                draft.task_id.as_deref().unwrap_or_default(),
                task_sequence,
                draft.event_type.as_str(),
                to_micros(now),
                PENDING,
            ],
            |r| r.get(0),
        )?;
    conn.prepare_cached("INSERT INTO event_bodies (seq, content_json) VALUES (?1, ?2)")?
        .execute(params![seq, draft.seal(&event_id, now, task_sequence)])?;
    super::outbox::emitted(AppId(app));
    Ok(())
}

/// Selected from `events e JOIN event_bodies b USING (seq)`.
const EVENT_COLUMNS: &str = "e.event_id, e.event_type, e.task_id, e.event_time, e.task_sequence, b.content_json, e.deliveries";
const EVENT_TABLES: &str = "events e JOIN event_bodies b USING (seq)";

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

fn loaded(r: &rusqlite::Row<'_>) -> Result<PendingEvent> {
    Ok(PendingEvent {
        event: event(r)?,
        seq: r.get(7)?,
        order_key: r.get(8)?,
    })
}

/// The app's pending events after `after`, in seq order (the queue's window).
pub(super) fn load(
    conn: &Connection,
    app: AppId,
    after: i64,
    limit: u32,
) -> Result<Vec<PendingEvent>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS}, e.seq, e.order_key FROM {EVENT_TABLES}
         WHERE e.app_id = ?1 AND e.state = {PENDING} AND e.seq > ?2 ORDER BY e.seq LIMIT ?3"
    ))?;
    let mut rows = stmt.query(params![app.0, after, limit])?;
    let mut out = Vec::with_capacity(limit as usize);
    while let Some(r) = rows.next()? {
        out.push(loaded(r)?);
    }
    Ok(out)
}

/// Marks pending events settled: confirmed, or dead-lettered with their
/// delivery count. Events already settled or deleted are left alone.
pub(super) fn settle(
    conn: &Connection,
    app: AppId,
    seqs: &[(i64, u32)],
    outcome: Settled,
) -> Result<()> {
    let state = match outcome {
        Settled::Confirmed => CONFIRMED,
        Settled::DeadLettered => DEAD,
    };
    let mut stmt = conn.prepare_cached(
        "UPDATE events SET state = ?1, deliveries = max(deliveries, ?2)
         WHERE seq = ?3 AND app_id = ?4 AND state = 1",
    )?;
    for &(seq, deliveries) in seqs {
        stmt.execute(params![state, deliveries, seq, app.0])?;
    }
    Ok(())
}

/// What the store knows of events named by handles the queue no longer
/// tracks (settled, or issued before a restart).
pub(super) fn states(conn: &Connection, app: AppId, seqs: &[i64]) -> Result<HashMap<i64, Stored>> {
    let mut stmt =
        conn.prepare_cached("SELECT state FROM events WHERE seq = ?1 AND app_id = ?2")?;
    let mut out = HashMap::new();
    for &seq in seqs {
        let state = one(&mut stmt, params![seq, app.0], |r| Ok(r.get::<_, i64>(0)?))?;
        let stored = match state {
            Some(CONFIRMED) => Stored::Confirmed,
            Some(DEAD) => Stored::DeadLettered,
            Some(_) => Stored::Pending,
            None => continue,
        };
        out.insert(seq, stored);
    }
    Ok(out)
}

pub(super) fn dead_letters(
    conn: &Connection,
    app: AppId,
    limit: u32,
    after: Option<i64>,
) -> Result<EventPage> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS}, e.seq FROM {EVENT_TABLES}
         WHERE e.app_id = ?1 AND e.state = {DEAD} AND e.seq > ?2 ORDER BY e.seq LIMIT ?3"
    ))?;
    let mut rows = stmt.query(params![app.0, after.unwrap_or(0), limit + 1])?;
    let mut found = Vec::new();
    while let Some(r) = rows.next()? {
        found.push((r.get::<_, i64>(7)?, event(r)?));
    }
    Ok(crate::store::codec::event_page(found, limit))
}

/// Puts settled events back in the queue (all, or those named) with their
/// delivery count reset; returns them for the queue. Redrive takes
/// dead-lettered events; a resend also confirmed ones.
pub(super) fn revive(
    conn: &Connection,
    app: AppId,
    ids: Option<&[String]>,
    which: Revive,
) -> Result<Vec<PendingEvent>> {
    let ids = ids.map(|ids| to_json(&ids)).transpose()?;
    let states = match which {
        Revive::DeadLettered => format!("({DEAD})"),
        Revive::Settled => format!("({DEAD}, {CONFIRMED})"),
    };
    let seqs: Vec<i64> = conn
        .prepare_cached(&format!(
            "UPDATE events SET state = {PENDING}, deliveries = 0
             WHERE app_id = ?1 AND state IN {states}
               AND (?2 IS NULL OR event_id IN (SELECT value FROM json_each(?2)))
             RETURNING seq"
        ))?
        .query_map(params![app.0, ids], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS}, e.seq, e.order_key FROM {EVENT_TABLES} WHERE e.seq = ?1"
    ))?;
    let mut out = Vec::with_capacity(seqs.len());
    for seq in seqs {
        if let Some(p) = one(&mut stmt, [seq], loaded)? {
            out.push(p);
        }
    }
    out.sort_by_key(|l| l.seq);
    Ok(out)
}

/// Counts of the pending events after `after` (beyond the queue's window):
/// each is ready unless an earlier pending event of its key holds it back.
/// Also the dead-lettered count and the oldest pending event's time.
pub(super) fn tail(conn: &Connection, app: AppId, after: i64) -> Result<Tail> {
    let (ready, held): (i64, i64) = conn
        .prepare_cached(&format!(
            "SELECT count(*), coalesce(sum(rank > 1), 0) FROM (
                 SELECT seq, row_number() OVER (PARTITION BY order_key ORDER BY seq) AS rank
                 FROM events WHERE app_id = ?1 AND state = {PENDING})
             WHERE seq > ?2"
        ))?
        .query_row(params![app.0, after], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let dead_lettered = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM events WHERE app_id = ?1 AND state = {DEAD}"
        ))?
        .query_row([app.0], |r| r.get(0))?;
    let oldest = conn
        .prepare_cached(&format!(
            "SELECT min(event_time) FROM events WHERE app_id = ?1 AND state = {PENDING}"
        ))?
        .query_row([app.0], |r| r.get::<_, Option<i64>>(0))?
        .map(from_micros);
    Ok(Tail {
        ready: ready - held,
        held,
        dead_lettered,
        oldest_pending: oldest,
    })
}

/// Deletes events older than their app's retention.
pub(super) fn purge(conn: &Connection, now: Timestamp) -> Result<u64> {
    let apps: Vec<i64> = conn
        .prepare_cached("SELECT DISTINCT app_id FROM events")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut n = 0;
    for app in apps {
        let cutoff = crate::time::before(now, config(conn, app)?.retention);
        conn.prepare_cached(
            "DELETE FROM callback_attempts WHERE event_seq IN
                 (SELECT seq FROM events WHERE app_id = ?1 AND event_time < ?2)",
        )?
        .execute(params![app, to_micros(cutoff)])?;
        conn.prepare_cached(
            "DELETE FROM event_bodies WHERE seq IN
                 (SELECT seq FROM events WHERE app_id = ?1 AND event_time < ?2)",
        )?
        .execute(params![app, to_micros(cutoff)])?;
        n += conn
            .prepare_cached("DELETE FROM events WHERE app_id = ?1 AND event_time < ?2")?
            .execute(params![app, to_micros(cutoff)])? as u64;
    }
    Ok(n)
}

/// The seqs of the app's pending events among `ids`.
pub(super) fn pending_seqs(conn: &Connection, app: AppId, ids: &[String]) -> Result<Vec<i64>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT seq FROM events WHERE app_id = ?1 AND state = {PENDING}
               AND event_id IN (SELECT value FROM json_each(?2))"
        ))?
        .query_map(params![app.0, to_json(&ids)?], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}
