//! Event SQL: the PostgreSQL twin of `store/sqlite/events.rs`.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::Tx;
use super::rows::{Sql, to_json};
use crate::error::{Error, Result};
use crate::events::envelope::Draft;
use crate::events::{Event, EventConfig};
use crate::ids::AppId;
use crate::store::{EventPage, PendingEvent, Revive, Settled, Stored, Tail};
use crate::time::{Timestamp, from_micros, to_micros};

// Event row states, as in the SQLite store.
const PENDING: i64 = 1;
const CONFIRMED: i64 = 0;
const DEAD: i64 = 3;

pub(super) async fn config(c: &impl GenericClient, app: AppId) -> Result<EventConfig> {
    let row = c
        .opt(
            "SELECT config_json FROM event_config WHERE app_id = $1",
            &[&app.0],
        )
        .await?;
    match row {
        Some(r) => serde_json::from_str(r.try_get::<_, &str>(0)?)
            .map_err(|e| Error::Storage(format!("event config: {e}").into())),
        None => Ok(EventConfig::default()),
    }
}

pub(super) async fn set_config(tx: &Tx<'_>, app: AppId, config: &EventConfig) -> Result<()> {
    tx.exec(
        "INSERT INTO event_config (app_id, config_json) VALUES ($1, $2)
         ON CONFLICT (app_id) DO UPDATE SET config_json = excluded.config_json",
        &[&app.0, &to_json(config)?],
    )
    .await?;
    Ok(())
}

/// Writes an event in the caller's transaction, unless the app switched its
/// type off. Tasks number their events 1, 2, 3…; other keys start at 1.
///
/// The app's row stays locked until the commit, so that events of one app
/// commit in the order of their seqs: `load_events` may then return any
/// committed event without a later commit landing below it.
pub(super) async fn emit(tx: &Tx<'_>, app: AppId, draft: &Draft, now: Timestamp) -> Result<()> {
    if !config(&**tx, app).await?.enabled(draft.event_type) {
        return Ok(());
    }
    let task_sequence: i64 = match &draft.task_id {
        Some(task_id) => tx
            .one(
                "UPDATE tasks SET event_seq = event_seq + 1 WHERE task_id = $1 RETURNING event_seq",
                &[task_id],
            )
            .await?
            .try_get(0)?,
        None => 1,
    };
    tx.exec(
        "SELECT 1 FROM apps WHERE app_id = $1 FOR NO KEY UPDATE",
        &[&app.0],
    )
    .await?;
    let event_id = format!("ev-{}", uuid::Uuid::new_v4().simple());
    tx.exec(
        "WITH e AS (
             INSERT INTO events (event_id, app_id, order_key, task_id, task_sequence, event_type,
                                 event_time, state, visible_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7) RETURNING seq)
         INSERT INTO event_bodies (seq, content_json) SELECT seq, $9 FROM e",
        &[
            &event_id,
            &app.0,
            &draft.order_key,
            &draft.task_id.as_deref().unwrap_or_default(),
            &task_sequence,
            &draft.event_type.as_str(),
            &to_micros(now),
            &PENDING,
            &draft.seal(&event_id, now, task_sequence),
        ],
    )
    .await?;
    tx.emitted(app);
    Ok(())
}

/// Selected from `events e JOIN event_bodies b USING (seq)`.
const EVENT_COLUMNS: &str = "e.event_id, e.event_type, e.task_id, e.event_time, e.task_sequence, b.content_json, e.deliveries";
const EVENT_TABLES: &str = "events e JOIN event_bodies b USING (seq)";

fn event(r: &Row) -> Result<Event> {
    Ok(Event {
        event_id: r.try_get(0)?,
        event_type: r.try_get(1)?,
        task_id: r.try_get(2)?,
        event_time: from_micros(r.try_get(3)?),
        task_sequence: r.try_get(4)?,
        content_json: r.try_get(5)?,
        deliveries: r.try_get::<_, i64>(6)?.clamp(0, i64::from(u32::MAX)) as u32,
    })
}

fn loaded(r: &Row) -> Result<PendingEvent> {
    Ok(PendingEvent {
        event: event(r)?,
        seq: r.try_get(7)?,
        order_key: r.try_get(8)?,
    })
}

/// The app's pending events after `after`, in seq order (the queue's window).
pub(super) async fn load(
    c: &impl GenericClient,
    app: AppId,
    after: i64,
    limit: u32,
) -> Result<Vec<PendingEvent>> {
    c.rows(
        &format!(
            "SELECT {EVENT_COLUMNS}, e.seq, e.order_key FROM {EVENT_TABLES}
             WHERE e.app_id = $1 AND e.state = {PENDING} AND e.seq > $2 ORDER BY e.seq LIMIT $3"
        ),
        &[&app.0, &after, &i64::from(limit)],
    )
    .await?
    .iter()
    .map(loaded)
    .collect()
}

/// Marks pending events settled, in one statement: confirmed, or
/// dead-lettered with their delivery count. Events already settled or
/// deleted are left alone.
pub(super) async fn settle(
    tx: &Tx<'_>,
    app: AppId,
    seqs: &[(i64, u32)],
    outcome: Settled,
) -> Result<()> {
    let state = match outcome {
        Settled::Confirmed => CONFIRMED,
        Settled::DeadLettered => DEAD,
    };
    let (seqs, deliveries): (Vec<i64>, Vec<i64>) =
        seqs.iter().map(|&(s, d)| (s, i64::from(d))).unzip();
    tx.exec(
        "UPDATE events e SET state = $1, deliveries = greatest(e.deliveries, d.n),
                             lease_until = NULL, consumer = NULL
         FROM unnest($2::bigint[], $3::bigint[]) AS d(seq, n)
         WHERE e.seq = d.seq AND e.app_id = $4 AND e.state = 1",
        &[&state, &seqs, &deliveries, &app.0],
    )
    .await?;
    Ok(())
}

/// What the store knows of events named by handles the queue no longer
/// tracks (settled, or issued before a restart).
pub(super) async fn states(
    c: &impl GenericClient,
    app: AppId,
    seqs: &[i64],
) -> Result<HashMap<i64, Stored>> {
    let mut out = HashMap::new();
    for r in c
        .rows(
            "SELECT seq, state FROM events WHERE app_id = $1 AND seq = ANY($2)",
            &[&app.0, &seqs],
        )
        .await?
    {
        let stored = match r.try_get::<_, i64>(1)? {
            CONFIRMED => Stored::Confirmed,
            DEAD => Stored::DeadLettered,
            _ => Stored::Pending,
        };
        out.insert(r.try_get(0)?, stored);
    }
    Ok(out)
}

pub(super) async fn dead_letters(
    c: &impl GenericClient,
    app: AppId,
    limit: u32,
    after: Option<i64>,
) -> Result<EventPage> {
    let found = c
        .rows(
            &format!(
                "SELECT {EVENT_COLUMNS}, e.seq FROM {EVENT_TABLES}
                 WHERE e.app_id = $1 AND e.state = {DEAD} AND e.seq > $2 ORDER BY e.seq LIMIT $3"
            ),
            &[&app.0, &after.unwrap_or(0), &(i64::from(limit) + 1)],
        )
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<_, i64>(7)?, event(r)?)))
        .collect::<Result<_>>()?;
    Ok(crate::store::codec::event_page(found, limit))
}

/// Puts settled events back in the queue (all, or those named) with their
/// delivery count reset; returns them for the queue. Redrive takes
/// dead-lettered events; a resend also confirmed ones.
pub(super) async fn revive(
    tx: &Tx<'_>,
    app: AppId,
    ids: Option<&[String]>,
    which: Revive,
) -> Result<Vec<PendingEvent>> {
    let states: Vec<i64> = match which {
        Revive::DeadLettered => vec![DEAD],
        Revive::Settled => vec![DEAD, CONFIRMED],
    };
    let mut out = tx
        .rows(
            &format!(
                "WITH r AS (
                     UPDATE events SET state = {PENDING}, deliveries = 0, visible_at = event_time,
                                       lease_until = NULL, consumer = NULL
                     WHERE app_id = $1 AND state = ANY($2)
                       AND ($3::text[] IS NULL OR event_id = ANY($3))
                     RETURNING *)
                 SELECT {cols}, e.seq, e.order_key FROM r e JOIN event_bodies b USING (seq)",
                cols = EVENT_COLUMNS
            ),
            &[&app.0, &states, &ids],
        )
        .await?
        .iter()
        .map(loaded)
        .collect::<Result<Vec<_>>>()?;
    out.sort_by_key(|l| l.seq);
    Ok(out)
}

/// Counts of the pending events after `after` (beyond the queue's window):
/// each is ready unless an earlier pending event of its key holds it back.
/// Also the dead-lettered count and the oldest pending event's time.
pub(super) async fn tail(c: &impl GenericClient, app: AppId, after: i64) -> Result<Tail> {
    let row = c
        .one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE rank > 1) FROM (
                     SELECT seq, row_number() OVER (PARTITION BY order_key ORDER BY seq) AS rank
                     FROM events WHERE app_id = $1 AND state = {PENDING}) pending
                 WHERE seq > $2"
            ),
            &[&app.0, &after],
        )
        .await?;
    let (ready, held): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    let dead_lettered: i64 = c
        .one(
            &format!("SELECT count(*) FROM events WHERE app_id = $1 AND state = {DEAD}"),
            &[&app.0],
        )
        .await?
        .try_get(0)?;
    let oldest: Option<i64> = c
        .one(
            &format!("SELECT min(event_time) FROM events WHERE app_id = $1 AND state = {PENDING}"),
            &[&app.0],
        )
        .await?
        .try_get(0)?;
    Ok(Tail {
        ready: ready - held,
        held,
        dead_lettered,
        oldest_pending: oldest.map(from_micros),
    })
}

/// Deletes events older than their app's retention.
pub(super) async fn purge(tx: &Tx<'_>, now: Timestamp) -> Result<u64> {
    let apps = tx
        .rows("SELECT DISTINCT app_id FROM events", &[])
        .await?
        .iter()
        .map(|r| Ok(AppId(r.try_get(0)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut n = 0;
    for app in apps {
        let cutoff = to_micros(crate::time::before(
            now,
            config(&**tx, app).await?.retention,
        ));
        let seqs: Vec<i64> = tx
            .rows(
                "DELETE FROM events WHERE app_id = $1 AND event_time < $2 RETURNING seq",
                &[&app.0, &cutoff],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        for table in [
            "callback_attempts WHERE event_seq",
            "event_bodies WHERE seq",
        ] {
            tx.exec(&format!("DELETE FROM {table} = ANY($1)"), &[&seqs])
                .await?;
        }
        n += seqs.len() as u64;
    }
    Ok(n)
}

/// The seqs of the app's pending events among `ids`.
pub(super) async fn pending_seqs(
    c: &impl GenericClient,
    app: AppId,
    ids: &[String],
) -> Result<Vec<i64>> {
    c.rows(
        &format!(
            "SELECT seq FROM events WHERE app_id = $1 AND state = {PENDING} AND event_id = ANY($2)
             ORDER BY seq"
        ),
        &[&app.0, &ids],
    )
    .await?
    .iter()
    .map(|r| Ok(r.try_get(0)?))
    .collect()
}
