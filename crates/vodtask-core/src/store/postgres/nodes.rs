//! Which processes live: each engine on the database writes its row every
//! `BEAT`, and one whose row is older than `ALIVE` is taken for dead (its
//! media writes are then swept by the others). Rows of processes dead for
//! a day are deleted.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use super::pool_error;
use super::rows::Sql;
use crate::error::Result;
use crate::time::{now, to_micros};

const BEAT: Duration = Duration::from_secs(5);
/// Six beats missed: a process stalled or cut off this long is dead.
pub(super) const ALIVE: Duration = Duration::from_secs(30);
const FORGET: Duration = Duration::from_secs(24 * 3600);

pub(super) async fn beat(pool: &Pool, node: &str) -> Result<()> {
    let c = pool.get().await.map_err(pool_error)?;
    let now = to_micros(now());
    c.exec(
        "INSERT INTO nodes (node, seen) VALUES ($1, $2)
         ON CONFLICT (node) DO UPDATE SET seen = excluded.seen",
        &[&node, &now],
    )
    .await?;
    c.exec(
        "DELETE FROM nodes WHERE seen < $1",
        &[&(now - FORGET.as_micros() as i64)],
    )
    .await?;
    Ok(())
}

pub(super) async fn keep_beating(pool: Pool, node: String, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(BEAT) => {}
            () = stop.cancelled() => return,
        }
        if let Err(e) = beat(&pool, &node).await {
            tracing::warn!("telling the database this process lives: {e}");
        }
    }
}
