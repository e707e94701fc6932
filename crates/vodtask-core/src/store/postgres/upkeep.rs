//! What autovacuum would do, for a database that runs without it: vodtask's
//! tables churn (heartbeats, settles, counters, retention), and without
//! statistics the planner picks bitmap scans and sorts over the index
//! walks the queries are written for (a keyset page took 13 ms instead of
//! 0.1 ms on 20,000 tasks never analysed). With autovacuum on (PostgreSQL's
//! default) this does nothing.
//!
//! Every `CHECK`, one process at a time (an advisory lock), vacuums and
//! analyses the tables of this schema whose changes pass autovacuum's own
//! default thresholds.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use super::pool_error;
use super::rows::Sql;
use crate::error::Result;

const CHECK: Duration = Duration::from_secs(10);

pub(super) async fn keep_tidy(pool: Pool, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(CHECK) => {}
            () = stop.cancelled() => return,
        }
        if let Err(e) = tidy(&pool).await {
            tracing::warn!("vacuuming and analysing (autovacuum is off): {e}");
        }
    }
}

async fn tidy(pool: &Pool) -> Result<()> {
    let c = pool.get().await.map_err(pool_error)?;
    let autovacuum: String = c
        .one("SELECT current_setting('autovacuum')", &[])
        .await?
        .try_get(0)?;
    if autovacuum == "on" {
        return Ok(());
    }
    let key = "SELECT hashtextextended('vodtask tidy ' || current_schema(), 0)";
    let taken: bool = c
        .one(&format!("SELECT pg_try_advisory_lock(({key}))"), &[])
        .await?
        .try_get(0)?;
    if !taken {
        return Ok(());
    }
    let done = async {
        // autovacuum's defaults: 50 rows + 20% (vacuum), + 10% (analyse).
        let due = c
            .rows(
                "SELECT relname, n_dead_tup > 50 + 0.2 * n_live_tup,
                        n_mod_since_analyze > 50 + 0.1 * n_live_tup
                 FROM pg_stat_user_tables WHERE schemaname = current_schema()",
                &[],
            )
            .await?;
        for r in due {
            let (table, vacuum, analyze): (String, bool, bool) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let table = format!("\"{}\"", table.replace('"', "\"\""));
            // VACUUM cannot run in a transaction: each is a statement of
            // its own on this connection.
            match (vacuum, analyze) {
                (true, _) => {
                    c.batch_execute(&format!("VACUUM (ANALYZE) {table}"))
                        .await?
                }
                (false, true) => c.batch_execute(&format!("ANALYZE {table}")).await?,
                (false, false) => {}
            }
        }
        Result::Ok(())
    }
    .await;
    c.exec(&format!("SELECT pg_advisory_unlock(({key}))"), &[])
        .await?;
    done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::KeyHash;
    use crate::store::Store;
    use crate::store::postgres::testing::Schema;

    /// On a server without autovacuum (as the tests' one is), a table that
    /// changed gets its statistics.
    #[tokio::test]
    async fn changed_tables_are_analysed_when_autovacuum_is_off() {
        let schema = Schema::create().await;
        let store = schema.open().await;
        for i in 0..200 {
            let name = format!("app{i}");
            store
                .create_app(&name, &KeyHash::of(&name), crate::time::now())
                .await
                .expect("create_app");
        }
        let c = store.pool.get().await.expect("a connection");
        let autovacuum: String = c
            .one("SELECT current_setting('autovacuum')", &[])
            .await
            .expect("setting")
            .get(0);
        if autovacuum == "on" {
            eprintln!("autovacuum is on here: nothing for vodtask to do");
            return;
        }
        // Backends report their changes within seconds of going idle.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            tidy(&store.pool).await.expect("tidy");
            let analysed: bool = c
                .one(
                    "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables
                     WHERE schemaname = current_schema() AND relname = 'apps'",
                    &[],
                )
                .await
                .expect("stats")
                .get(0);
            if analysed {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "apps was never analysed"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
