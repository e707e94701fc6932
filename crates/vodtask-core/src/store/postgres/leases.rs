//! Event leases in the rows (`store/leases.rs` says what each method must
//! do): each method is one statement, and whatever it makes deliverable,
//! or whose credit it gives back, is announced to every node
//! (`notify.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::notify::Notifier;
use super::pool_error;
use super::rows::Sql;
use crate::error::Result;
use crate::events::{Delivery, Event, HandleResult, MAX_VISIBILITY_TIMEOUT, MsgHandle, QueueState};
use crate::ids::AppId;
use crate::store::leases::{
    Changed, LeaseChange, LeaseRequest, Leased, SharedLeases, Wake, WakeListener,
};
use crate::time::{Timestamp, from_micros, to_micros};

/// The epoch of handles issued from the database: every node accepts them,
/// and no handle of an in-memory queue (a random nonzero epoch) is one.
const EPOCH: u32 = 0;

pub(super) struct PgLeases {
    pub(super) pool: Pool,
    pub(super) notifier: Arc<Notifier>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

/// Deliverable at `$2` for the candidate `e` of app `$1`: no earlier event
/// of its key is unsettled, and no other one is out.
const HEAD_OF_LINE: &str = "NOT EXISTS (
        SELECT 1 FROM events o
        WHERE o.app_id = $1 AND o.order_key = e.order_key AND o.state = 1 AND o.seq <> e.seq
          AND (o.seq < e.seq OR o.lease_until >= $2))";

/// A row of `lease`'s final select, None for its filler row.
fn delivery(r: &Row) -> Result<Option<(Delivery, bool)>> {
    let Some(seq) = r.try_get::<_, Option<i64>>(1)? else {
        return Ok(None);
    };
    let token: i64 = r.try_get(2)?;
    Ok(Some((
        Delivery {
            handle: MsgHandle {
                epoch: EPOCH,
                seq,
                token: token.max(0) as u64,
            },
            event: Event {
                event_id: r.try_get(3)?,
                event_type: r.try_get(4)?,
                task_id: r.try_get(5)?,
                event_time: from_micros(r.try_get(6)?),
                task_sequence: r.try_get(7)?,
                content_json: r.try_get(8)?,
                deliveries: r.try_get::<_, i64>(9)?.clamp(0, i64::from(u32::MAX)) as u32,
            },
        },
        r.try_get(10)?,
    )))
}

impl PgLeases {
    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(pool_error)
    }
}

#[async_trait]
impl SharedLeases for PgLeases {
    fn epoch(&self) -> u32 {
        EPOCH
    }

    fn node(&self) -> String {
        self.notifier.node.clone()
    }

    fn listen(&self, listener: WakeListener) {
        self.notifier.listen(listener);
    }

    fn announce(&self, wake: Wake) {
        self.notifier.announce(wake);
    }

    async fn lease(&self, req: LeaseRequest<'_>) -> Result<Leased> {
        let now = to_micros(req.now);
        let until = now + micros(req.lease);
        let max_deliveries = req.max_deliveries.map_or(i64::MAX, i64::from);
        let mut backoffs: Vec<i64> = req.backoffs.iter().map(|d| micros(*d)).collect();
        if backoffs.is_empty() {
            backoffs.push(0);
        }
        // Rows other nodes are leasing now are skipped, not waited for;
        // those past their deliveries go dead in the same statement. The
        // outer join keeps one row when nothing was leased, for the count.
        let rows = self
            .client()
            .await?
            .rows(
                &format!(
                    "WITH candidates AS (
                         SELECT e.seq, e.deliveries, e.resend FROM events e
                         WHERE e.app_id = $1 AND e.state = 1 AND e.visible_at <= $2 AND {HEAD_OF_LINE}
                         ORDER BY e.visible_at, e.seq LIMIT $3
                         FOR UPDATE SKIP LOCKED),
                     dead AS (
                         UPDATE events e SET state = 3, lease_until = NULL, consumer = NULL
                         FROM candidates c WHERE e.seq = c.seq AND c.deliveries >= $4
                         RETURNING e.seq),
                     leased AS (
                         UPDATE events e SET deliveries = e.deliveries + 1, token = e.token + 1,
                             lease_until = $5, consumer = $6, resend = false,
                             visible_at = $5 + ($7::bigint[])
                                 [least(e.deliveries + 1, cardinality($7::bigint[]))]
                         FROM candidates c WHERE e.seq = c.seq AND c.deliveries < $4
                         RETURNING e.seq, e.token, e.event_id, e.event_type, e.task_id,
                                   e.event_time, e.task_sequence, e.deliveries, c.resend)
                     SELECT d.n, l.seq, l.token, l.event_id, l.event_type, l.task_id,
                            l.event_time, l.task_sequence, b.content_json, l.deliveries, l.resend
                     FROM (SELECT count(*) AS n FROM dead) d
                     LEFT JOIN (leased l JOIN event_bodies b USING (seq)) ON true
                     ORDER BY l.seq"
                ),
                &[
                    &req.app.0,
                    &now,
                    &i64::from(req.max),
                    &max_deliveries,
                    &until,
                    &req.consumer,
                    &backoffs,
                ],
            )
            .await?;
        let mut leased = Leased::default();
        for r in &rows {
            leased.dead = r.try_get::<_, i64>(0)?.max(0) as u64;
            if let Some(d) = delivery(r)? {
                leased.deliveries.push(d);
            }
        }
        if leased.dead > 0 {
            // The next event of each of their keys may be deliverable.
            self.announce(Wake::App(req.app));
        }
        Ok(leased)
    }

    async fn change(
        &self,
        app: AppId,
        handles: &[Option<MsgHandle>],
        change: LeaseChange,
        now: Timestamp,
    ) -> Result<Changed> {
        let now = to_micros(now);
        let ours: Vec<&MsgHandle> = handles
            .iter()
            .flatten()
            .filter(|h| h.epoch == EPOCH)
            .collect();
        let seqs: Vec<i64> = ours.iter().map(|h| h.seq).collect();
        let tokens: Vec<i64> = ours
            .iter()
            .map(|h| i64::try_from(h.token).unwrap_or(-1))
            .collect();
        // $5: the extension or the nack's delay (-1: the backoff); $6 the
        // backoff after the n-th delivery.
        let (set, extra) = match change {
            LeaseChange::Settle => ("state = 0, lease_until = NULL, consumer = NULL", None),
            LeaseChange::Extend(by) => (
                "lease_until = $4 + $5::bigint,
                 visible_at = $4 + $5::bigint
                     + ($6::bigint[])[least(e.deliveries, cardinality($6::bigint[]))]",
                Some(micros(by.min(MAX_VISIBILITY_TIMEOUT))),
            ),
            LeaseChange::Nack(delay) => (
                "lease_until = NULL, consumer = NULL,
                 visible_at = $4 + CASE WHEN $5::bigint >= 0 THEN $5::bigint
                     ELSE ($6::bigint[])[least(e.deliveries, cardinality($6::bigint[]))] END",
                Some(delay.map_or(-1, micros)),
            ),
        };
        let extra = extra.map(|value| {
            let backoffs: Vec<i64> = (1..=12)
                .map(|n| micros(crate::events::backoff(n)))
                .collect();
            (value, backoffs)
        });
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&app.0, &seqs, &tokens, &now];
        if let Some((value, backoffs)) = &extra {
            params.extend([value as &(dyn ToSql + Sync), backoffs]);
        }
        let c = self.client().await?;
        let held = c
            .rows(
                &format!(
                    "WITH held AS (
                         SELECT e.seq, e.token, e.consumer FROM events e
                         JOIN unnest($2::bigint[], $3::bigint[]) AS h(seq, token)
                           ON e.seq = h.seq AND e.token = h.token
                         WHERE e.app_id = $1 AND e.state = 1 AND e.lease_until >= $4
                         FOR UPDATE OF e),
                     changed AS (
                         UPDATE events e SET {set} FROM (SELECT DISTINCT seq FROM held) h
                         WHERE e.seq = h.seq
                         RETURNING e.seq)
                     SELECT DISTINCT held.seq, held.token, held.consumer FROM held"
                ),
                &params,
            )
            .await?;
        // The deliveries changed, by (seq, token).
        let mut done: HashSet<(i64, i64)> = HashSet::new();
        let mut credited: Vec<String> = Vec::new();
        for r in &held {
            done.insert((r.try_get(0)?, r.try_get(1)?));
            if !matches!(change, LeaseChange::Extend(_))
                && let Some(consumer) = r.try_get::<_, Option<String>>(2)?
            {
                credited.push(consumer);
            }
        }
        // Done for the first mention of a changed delivery; what the rows
        // say for every other handle (a second mention included).
        let mut answered = HashSet::new();
        let done_here: Vec<bool> = handles
            .iter()
            .map(|h| {
                h.filter(|h| h.epoch == EPOCH).is_some_and(|h| {
                    let delivery = (h.seq, i64::try_from(h.token).unwrap_or(-1));
                    done.contains(&delivery) && answered.insert(delivery)
                })
            })
            .collect();
        let others: Vec<i64> = handles
            .iter()
            .zip(&done_here)
            .filter_map(|(h, done)| h.filter(|_| !done).map(|h| h.seq))
            .collect();
        let states: HashMap<i64, i64> = if others.is_empty() {
            HashMap::new()
        } else {
            c.rows(
                "SELECT seq, state FROM events WHERE app_id = $1 AND seq = ANY($2)",
                &[&app.0, &others],
            )
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_>>()?
        };
        let results = handles
            .iter()
            .zip(&done_here)
            .map(|(h, &done)| match h {
                _ if done => HandleResult::Done,
                None => HandleResult::Unknown,
                Some(h) => match states.get(&h.seq) {
                    Some(0) => HandleResult::AlreadyConfirmed,
                    Some(_) => HandleResult::Expired,
                    None => HandleResult::Unknown,
                },
            })
            .collect();
        credited.sort_unstable();
        credited.dedup();
        let news = !done.is_empty() && !matches!(change, LeaseChange::Extend(_));
        if news {
            self.announce(Wake::App(app));
            for consumer in &credited {
                self.announce(Wake::Consumer(consumer.clone()));
            }
        }
        Ok(Changed {
            results,
            credited,
            news,
        })
    }

    async fn holds(&self, app: AppId, handle: MsgHandle, now: Timestamp) -> Result<bool> {
        if handle.epoch != EPOCH {
            return Ok(false);
        }
        let held = self
            .client()
            .await?
            .opt(
                "SELECT 1 FROM events WHERE seq = $1 AND app_id = $2 AND token = $3
                 AND state = 1 AND lease_until >= $4",
                &[
                    &handle.seq,
                    &app.0,
                    &i64::try_from(handle.token).unwrap_or(-1),
                    &to_micros(now),
                ],
            )
            .await?;
        Ok(held.is_some())
    }

    async fn release(&self, consumer: &str, now: Timestamp) -> Result<u64> {
        let now = to_micros(now);
        let apps: Vec<i64> = self
            .client()
            .await?
            .rows(
                "UPDATE events SET lease_until = NULL, consumer = NULL, visible_at = $2
                 WHERE consumer = $1 AND state = 1 AND lease_until >= $2
                 RETURNING app_id",
                &[&consumer, &now],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        let released = apps.len() as u64;
        let apps: HashSet<i64> = apps.into_iter().collect();
        for app in apps {
            self.announce(Wake::App(AppId(app)));
        }
        Ok(released)
    }

    async fn held_by(&self, consumer: &str, now: Timestamp) -> Result<u32> {
        let n: i64 = self
            .client()
            .await?
            .one(
                "SELECT count(*) FROM events WHERE consumer = $1 AND state = 1 AND lease_until >= $2",
                &[&consumer, &to_micros(now)],
            )
            .await?
            .try_get(0)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    async fn next_change(
        &self,
        app: AppId,
        consumer: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<Timestamp>> {
        let at: Option<i64> = self
            .client()
            .await?
            .one(
                "SELECT least(
                     (SELECT min(visible_at) FROM events
                      WHERE app_id = $1 AND state = 1 AND visible_at > $2),
                     (SELECT min(lease_until) + 1 FROM events
                      WHERE consumer = $3 AND state = 1 AND lease_until >= $2))",
                &[&app.0, &to_micros(now), &consumer],
            )
            .await?
            .try_get(0)?;
        Ok(at.map(from_micros))
    }

    async fn due_now(&self, app: AppId, seqs: &[i64], now: Timestamp) -> Result<()> {
        self.client()
            .await?
            .exec(
                "UPDATE events SET resend = true,
                     visible_at = CASE WHEN lease_until >= $3 THEN visible_at
                                       ELSE least(visible_at, $3) END
                 WHERE app_id = $1 AND seq = ANY($2) AND state = 1",
                &[&app.0, &seqs, &to_micros(now)],
            )
            .await?;
        self.announce(Wake::App(app));
        Ok(())
    }

    async fn state(&self, app: AppId, now: Timestamp) -> Result<QueueState> {
        let r = self
            .client()
            .await?
            .one(
                &format!(
                    "SELECT count(*) FILTER (WHERE out),
                            count(*) FILTER (WHERE NOT out AND visible_at <= $2 AND head),
                            count(*),
                            min(event_time),
                            (SELECT count(*) FROM events WHERE app_id = $1 AND state = 3)
                     FROM (SELECT coalesce(e.lease_until >= $2, false) AS out, e.visible_at,
                                  e.event_time, {HEAD_OF_LINE} AS head
                           FROM events e WHERE e.app_id = $1 AND e.state = 1) pending"
                ),
                &[&app.0, &to_micros(now)],
            )
            .await?;
        let (in_flight, ready, pending): (i64, i64, i64) =
            (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
        Ok(QueueState {
            ready,
            in_flight,
            delayed: pending - in_flight - ready,
            dead_lettered: r.try_get(4)?,
            oldest_unconfirmed: r.try_get::<_, Option<i64>>(3)?.map(from_micros),
        })
    }
}
