//! The schema, applied in order and tracked in `vodtask_schema`. Nodes that
//! start at once take turns on an advisory lock: one migrates, the others
//! wait and then find nothing to do. A database migrated by a newer vodtask
//! is refused rather than written with rules it does not know.
//!
//! Every integer is BIGINT (an i64 on the Rust side), and times are micros
//! since the epoch, as in the SQLite store.

use tokio_postgres::Client;

use crate::error::{Error, Result};

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE apps (
    app_id      BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    key_hash    TEXT NOT NULL UNIQUE,
    create_time BIGINT NOT NULL,
    revoke_time BIGINT
);

CREATE TABLE media (
    file_id        TEXT PRIMARY KEY,
    app_id         BIGINT NOT NULL,
    file_name      TEXT NOT NULL,
    stored_name    TEXT NOT NULL,
    size           BIGINT NOT NULL,
    md5            TEXT NOT NULL,
    create_time    BIGINT NOT NULL,
    source_type    BIGINT NOT NULL,
    source_context TEXT NOT NULL,
    source_task_id TEXT,
    metadata_json  TEXT,
    probe_error    TEXT
);
CREATE INDEX media_by_source_task ON media (source_task_id) WHERE source_task_id IS NOT NULL;

-- seq orders tasks by insertion and breaks ties in keyset cursors. A task
-- row is updated at every heartbeat (progress, lease_expires: neither is
-- indexed), and room in its page (fillfactor) lets the new version stay
-- there: a HOT update, with no index writes.
CREATE TABLE tasks (
    seq                BIGSERIAL PRIMARY KEY,
    task_id            TEXT NOT NULL UNIQUE,
    app_id             BIGINT NOT NULL,
    task_type          BIGINT NOT NULL,
    status             BIGINT NOT NULL,
    err_code           BIGINT NOT NULL DEFAULT 0,
    message            TEXT NOT NULL DEFAULT '',
    progress           BIGINT NOT NULL DEFAULT 0,
    attempt            BIGINT NOT NULL DEFAULT 1,
    recoveries         BIGINT NOT NULL DEFAULT 0,
    priority           BIGINT NOT NULL,
    create_time        BIGINT NOT NULL,
    begin_process_time BIGINT,
    finish_time        BIGINT,
    session_id         TEXT,
    session_context    TEXT NOT NULL,
    request_hash       TEXT NOT NULL,
    file_id            TEXT NOT NULL,
    input_json         TEXT NOT NULL,
    output_json        TEXT,
    cancel_requested   BOOLEAN NOT NULL DEFAULT false,
    lease_token        BIGINT NOT NULL DEFAULT 0,
    lease_expires      BIGINT,
    event_seq          BIGINT NOT NULL DEFAULT 0
) WITH (fillfactor = 80);
CREATE INDEX tasks_by_create ON tasks (app_id, create_time, seq);
CREATE INDEX tasks_by_status ON tasks (app_id, status, create_time, seq);
CREATE INDEX tasks_by_type ON tasks (app_id, task_type, create_time, seq);
CREATE INDEX tasks_by_finish ON tasks (app_id, finish_time, seq) WHERE finish_time IS NOT NULL;
CREATE INDEX tasks_finished ON tasks (finish_time) WHERE finish_time IS NOT NULL;
-- The claim's order, so that SKIP LOCKED walks the index instead of sorting.
CREATE INDEX tasks_queue ON tasks (priority DESC, seq) WHERE status = 1;
CREATE INDEX tasks_running ON tasks (seq) WHERE status = 2;
CREATE UNIQUE INDEX tasks_session ON tasks (app_id, session_id) WHERE session_id IS NOT NULL;

CREATE TABLE task_attempts (
    task_seq           BIGINT NOT NULL,
    attempt            BIGINT NOT NULL,
    status             BIGINT NOT NULL,
    err_code           BIGINT NOT NULL,
    message            TEXT NOT NULL,
    begin_process_time BIGINT,
    finish_time        BIGINT,
    output_json        TEXT,
    PRIMARY KEY (task_seq, attempt)
);

-- Counters kept in the transaction of every status change, so that the
-- overview never counts rows. Each connection adds to its own shard (a row
-- per shard), so that concurrent transactions of one app do not queue on
-- one counter row's lock until they commit; readers sum the shards.
CREATE TABLE task_counts (
    app_id    BIGINT NOT NULL,
    status    BIGINT NOT NULL,
    task_type BIGINT NOT NULL,
    shard     BIGINT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (app_id, status, task_type, shard)
) WITH (fillfactor = 50);
CREATE TABLE task_counts_hourly (
    app_id    BIGINT NOT NULL,
    hour      BIGINT NOT NULL,
    status    BIGINT NOT NULL,
    task_type BIGINT NOT NULL,
    shard     BIGINT NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (app_id, hour, status, task_type, shard)
) WITH (fillfactor = 50);

-- Which files a task read (1), wrote (2) or deleted (3).
CREATE TABLE task_files (
    file_id  TEXT NOT NULL,
    task_seq BIGINT NOT NULL,
    role     BIGINT NOT NULL,
    PRIMARY KEY (file_id, task_seq, role)
);
CREATE INDEX task_files_by_task ON task_files (task_seq);

CREATE TABLE event_config (
    app_id      BIGINT PRIMARY KEY,
    config_json TEXT NOT NULL
);

-- The outbox and the per-app queue, leases included (store/leases.rs):
-- state 1 pending, 3 dead-lettered, 0 confirmed. A pending event is
-- deliverable from visible_at, unless an earlier event of its order key is
-- pending or another is leased (lease_until not yet past). Each delivery
-- takes the next token. The envelope lives in event_bodies, so that a
-- lease or a settle writes a new version of a narrow row only.
CREATE TABLE events (
    seq           BIGSERIAL PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,
    app_id        BIGINT NOT NULL,
    order_key     TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    task_sequence BIGINT NOT NULL,
    event_type    TEXT NOT NULL,
    event_time    BIGINT NOT NULL,
    state         BIGINT NOT NULL,
    deliveries    BIGINT NOT NULL DEFAULT 0,
    visible_at    BIGINT NOT NULL,
    lease_until   BIGINT,
    token         BIGINT NOT NULL DEFAULT 0,
    consumer      TEXT,
    resend        BOOLEAN NOT NULL DEFAULT false
) WITH (fillfactor = 80);
CREATE INDEX events_pending ON events (app_id, seq) WHERE state = 1;
-- The lease's order: due first, then oldest.
CREATE INDEX events_due ON events (app_id, visible_at, seq) WHERE state = 1;
-- Head of line: the pending events of one key.
CREATE INDEX events_key ON events (app_id, order_key, seq) WHERE state = 1;
CREATE INDEX events_consumer ON events (consumer) WHERE state = 1 AND consumer IS NOT NULL;
CREATE INDEX events_dead ON events (app_id, seq) WHERE state = 3;
CREATE INDEX events_time ON events (event_time);
CREATE INDEX events_by_task ON events (task_id);
CREATE TABLE event_bodies (
    seq          BIGINT PRIMARY KEY,
    content_json TEXT NOT NULL
);

-- HTTP callback attempts. outcome: 1 delivered, 2 failed, 3 gone (410).
CREATE TABLE callback_attempts (
    id            BIGSERIAL PRIMARY KEY,
    event_seq     BIGINT NOT NULL,
    app_id        BIGINT NOT NULL,
    attempt       BIGINT NOT NULL,
    time          BIGINT NOT NULL,
    url           TEXT NOT NULL,
    http_status   BIGINT,
    error         TEXT NOT NULL,
    duration_us   BIGINT NOT NULL,
    response      TEXT NOT NULL,
    outcome       BIGINT NOT NULL,
    next_attempt  BIGINT
);
CREATE INDEX callback_attempts_event ON callback_attempts (event_seq, id);
CREATE INDEX callback_attempts_app ON callback_attempts (app_id, id);

-- Media objects that may exist in storage without a row (see the SQLite
-- schema's v9 and media/library.rs).
CREATE TABLE media_leftovers (
    file_id  TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    since    BIGINT NOT NULL,
    deleting BOOLEAN NOT NULL
);
CREATE TABLE media_multipart (
    file_id   TEXT NOT NULL,
    name      TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    PRIMARY KEY (file_id, name, upload_id)
);

-- Processes on this database and when each last said it lives
-- (store/postgres/nodes.rs).
CREATE TABLE nodes (
    node TEXT PRIMARY KEY,
    seen BIGINT NOT NULL
) WITH (fillfactor = 50);

-- The tables that churn (rows updated or deleted as fast as work flows) are
-- vacuumed after 2% of their rows changed rather than PostgreSQL's 20%, so
-- that dead versions do not pile up between runs. This takes autovacuum
-- being on (PostgreSQL's default); docs/postgres.md says why it matters.
ALTER TABLE tasks SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE task_counts SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);
ALTER TABLE task_counts_hourly SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);
ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE event_bodies SET (autovacuum_vacuum_scale_factor = 0.02);
ALTER TABLE media_leftovers SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);
ALTER TABLE nodes SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000);
"#,
    r#"
-- Periodic work that runs once across all processes (duties.rs): the
-- process that claimed the latest run, and when the next one is due.
CREATE TABLE duties (
    duty TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    due  BIGINT NOT NULL
);
"#,
];

/// The schema version this vodtask writes.
pub(super) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema of the connection's `search_path` up to `VERSION`.
pub(super) async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client.transaction().await?;
    // Held until the commit. Keyed by the schema, so that deployments in
    // separate schemas of one database do not wait for each other.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('vodtask migrate ' || current_schema(), 0))",
        &[],
    )
    .await?;
    let exists: bool = tx
        .query_one("SELECT to_regclass('vodtask_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        tx.batch_execute("CREATE TABLE vodtask_schema (version BIGINT NOT NULL)")
            .await?;
    }
    let version: i64 = match tx
        .query_opt("SELECT version FROM vodtask_schema", &[])
        .await?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO vodtask_schema (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    if version > VERSION {
        return Err(Error::FailedPrecondition(format!(
            "database: its schema is version {version}, written by a newer vodtask; \
             this one knows versions up to {VERSION}: run the newer vodtask"
        )));
    }
    for sql in MIGRATIONS
        .iter()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        tx.batch_execute(sql).await?;
    }
    tx.execute("UPDATE vodtask_schema SET version = $1", &[&VERSION])
        .await?;
    tx.commit().await?;
    Ok(())
}
