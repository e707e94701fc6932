//! The schema, applied in order and tracked by `PRAGMA user_version`.

use rusqlite::Connection;

use crate::error::Result;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE apps (
    app_id      INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    key_hash    TEXT NOT NULL UNIQUE,
    create_time INTEGER NOT NULL
);

CREATE TABLE media (
    file_id        TEXT PRIMARY KEY,
    app_id         INTEGER NOT NULL,
    file_name      TEXT NOT NULL,
    stored_name    TEXT NOT NULL,
    size           INTEGER NOT NULL,
    md5            TEXT NOT NULL,
    create_time    INTEGER NOT NULL,
    source_type    INTEGER NOT NULL,
    source_context TEXT NOT NULL,
    source_task_id TEXT,
    metadata_json  TEXT,
    probe_error    TEXT
);

-- seq orders tasks by insertion and breaks ties in keyset cursors.
CREATE TABLE tasks (
    seq                INTEGER PRIMARY KEY,
    task_id            TEXT NOT NULL UNIQUE,
    app_id             INTEGER NOT NULL,
    task_type          INTEGER NOT NULL,
    status             INTEGER NOT NULL,
    err_code           INTEGER NOT NULL DEFAULT 0,
    message            TEXT NOT NULL DEFAULT '',
    progress           INTEGER NOT NULL DEFAULT 0,
    attempt            INTEGER NOT NULL DEFAULT 1,
    recoveries         INTEGER NOT NULL DEFAULT 0,
    priority           INTEGER NOT NULL,
    create_time        INTEGER NOT NULL,
    begin_process_time INTEGER,
    finish_time        INTEGER,
    session_id         TEXT,
    session_context    TEXT NOT NULL,
    request_hash       TEXT NOT NULL,
    file_id            TEXT NOT NULL,
    input_json         TEXT NOT NULL,
    output_json        TEXT,
    cancel_requested   INTEGER NOT NULL DEFAULT 0,
    lease_token        INTEGER NOT NULL DEFAULT 0,
    lease_expires      INTEGER
);
CREATE INDEX tasks_by_create ON tasks (app_id, create_time, seq);
CREATE INDEX tasks_by_status ON tasks (app_id, status, create_time, seq);
CREATE INDEX tasks_by_type ON tasks (app_id, task_type, create_time, seq);
CREATE INDEX tasks_by_file ON tasks (app_id, file_id, create_time, seq);
CREATE INDEX tasks_by_finish ON tasks (app_id, finish_time, seq) WHERE finish_time IS NOT NULL;
CREATE INDEX tasks_finished ON tasks (finish_time) WHERE finish_time IS NOT NULL;
CREATE INDEX tasks_queue ON tasks (priority DESC, seq) WHERE status = 1;
CREATE INDEX tasks_leases ON tasks (lease_expires) WHERE status = 2;
CREATE UNIQUE INDEX tasks_session ON tasks (app_id, session_id) WHERE session_id IS NOT NULL;

CREATE TABLE task_attempts (
    task_seq           INTEGER NOT NULL,
    attempt            INTEGER NOT NULL,
    status             INTEGER NOT NULL,
    err_code           INTEGER NOT NULL,
    message            TEXT NOT NULL,
    begin_process_time INTEGER,
    finish_time        INTEGER,
    output_json        TEXT,
    PRIMARY KEY (task_seq, attempt)
) WITHOUT ROWID;

-- Counters kept in the transaction of every status change, so that the
-- overview never counts rows: all-time per app, and per hour of create time.
CREATE TABLE task_counts (
    app_id    INTEGER NOT NULL,
    status    INTEGER NOT NULL,
    task_type INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (app_id, status, task_type)
) WITHOUT ROWID;
CREATE TABLE task_counts_hourly (
    app_id    INTEGER NOT NULL,
    hour      INTEGER NOT NULL,
    status    INTEGER NOT NULL,
    task_type INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (app_id, hour, status, task_type)
) WITHOUT ROWID;
"#,
    r#"
ALTER TABLE tasks ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE event_config (
    app_id      INTEGER PRIMARY KEY,
    config_json TEXT NOT NULL
);

-- The outbox and the per-app queue in one table. state: 1 pending, 2 in
-- flight, 3 dead-lettered, 4 confirmed. Only the earliest unsettled event of
-- an order key (a task) is the head and may be delivered.
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,
    app_id        INTEGER NOT NULL,
    order_key     TEXT NOT NULL,
    task_id       TEXT NOT NULL,
    task_sequence INTEGER NOT NULL,
    event_type    TEXT NOT NULL,
    event_time    INTEGER NOT NULL,
    content_json  TEXT NOT NULL,
    state         INTEGER NOT NULL,
    is_head       INTEGER NOT NULL,
    -- pending: deliverable from; in flight: redeliverable from (lease end + backoff)
    visible_at    INTEGER NOT NULL,
    lease_until   INTEGER,
    deliveries    INTEGER NOT NULL DEFAULT 0,
    token         INTEGER NOT NULL DEFAULT 0,
    consumer      TEXT,
    settled_time  INTEGER
);
CREATE INDEX events_ready ON events (app_id, visible_at, seq) WHERE is_head = 1 AND state IN (1, 2);
CREATE INDEX events_key ON events (app_id, order_key, task_sequence) WHERE state IN (1, 2);
CREATE INDEX events_dead ON events (app_id, seq) WHERE state = 3;
CREATE INDEX events_consumer ON events (consumer) WHERE state = 2;
CREATE INDEX events_time ON events (event_time);
"#,
    // v3: leases live in memory (src/queue); rows keep only whether an event
    // is pending, dead-lettered or confirmed.
    r#"
UPDATE events SET state = 1 WHERE state = 2;
DROP INDEX events_ready;
DROP INDEX events_key;
DROP INDEX events_consumer;
ALTER TABLE events DROP COLUMN is_head;
ALTER TABLE events DROP COLUMN visible_at;
ALTER TABLE events DROP COLUMN lease_until;
ALTER TABLE events DROP COLUMN token;
ALTER TABLE events DROP COLUMN consumer;
CREATE INDEX events_pending ON events (app_id, seq) WHERE state = 1;
"#,
    // v4: envelopes in their own table. A confirm rewrites the page of the
    // event's row; with the ~1 KiB envelope inline that page held three
    // events, now it holds some twenty, so a confirm batch writes a fraction
    // of the WAL it did.
    r#"
CREATE TABLE event_bodies (
    seq          INTEGER PRIMARY KEY,
    content_json TEXT NOT NULL
);
INSERT INTO event_bodies (seq, content_json) SELECT seq, content_json FROM events;
ALTER TABLE events DROP COLUMN content_json;
"#,
    // v5: the log of HTTP callback attempts (PUSH mode). outcome: 1
    // delivered, 2 failed, 3 gone (410). The last attempt of an event says
    // when the next one is due, so a restart keeps the retry schedule.
    r#"
CREATE TABLE callback_attempts (
    id            INTEGER PRIMARY KEY,
    event_seq     INTEGER NOT NULL,
    app_id        INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    time          INTEGER NOT NULL,
    url           TEXT NOT NULL,
    http_status   INTEGER,
    error         TEXT NOT NULL,
    duration_us   INTEGER NOT NULL,
    response      TEXT NOT NULL,
    outcome       INTEGER NOT NULL,
    next_attempt  INTEGER
);
CREATE INDEX callback_attempts_event ON callback_attempts (event_seq, id);
CREATE INDEX callback_attempts_app ON callback_attempts (app_id, id);
"#,
    // v6: which files a task read (1), wrote (2) or deleted (3), for the
    // file_id filter of ListTasks and the in-use rule of DeleteMedia. A pull
    // task's file_id is '' until it created its file.
    r#"
CREATE TABLE task_files (
    file_id  TEXT NOT NULL,
    task_seq INTEGER NOT NULL,
    role     INTEGER NOT NULL,
    PRIMARY KEY (file_id, task_seq, role)
) WITHOUT ROWID;
CREATE INDEX task_files_by_task ON task_files (task_seq);
INSERT INTO task_files (file_id, task_seq, role) SELECT file_id, seq, 1 FROM tasks;
INSERT OR IGNORE INTO task_files (file_id, task_seq, role)
    SELECT m.file_id, t.seq, 2 FROM media m JOIN tasks t ON t.task_id = m.source_task_id;
CREATE INDEX media_by_source_task ON media (source_task_id) WHERE source_task_id IS NOT NULL;
-- The file_id filter reads task_files now; this index only cost writes.
DROP INDEX tasks_by_file;
"#,
    // v7: confirmed is 0, not 4, so that a confirm does not grow its row
    // (see the states in events.rs); settled_time was never read.
    r#"
UPDATE events SET state = 0 WHERE state = 4;
ALTER TABLE events DROP COLUMN settled_time;
"#,
    // v8: `vodtask apps revoke`: a revoked app's key no longer authenticates.
    r#"
ALTER TABLE apps ADD COLUMN revoke_time INTEGER;
"#,
    // v9: media objects that may exist in storage without a row, for the
    // sweeper (media/library.rs): a new file being written by `owner` (its
    // row not yet committed), or, with `deleting`, a file whose write was
    // given up or whose row was deleted. A row's insert removes its records
    // in the same transaction; a row's delete adds one.
    r#"
CREATE TABLE media_leftovers (
    file_id  TEXT PRIMARY KEY,
    owner    TEXT NOT NULL,
    since    INTEGER NOT NULL,
    deleting INTEGER NOT NULL
) WITHOUT ROWID;
-- The multipart uploads a leftover's write started: aborted by the sweeper
-- (an unfinished one keeps its parts in the bucket).
CREATE TABLE media_multipart (
    file_id   TEXT NOT NULL,
    name      TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    PRIMARY KEY (file_id, name, upload_id)
) WITHOUT ROWID;
"#,
];

pub(super) fn migrate(conn: &Connection) -> Result<()> {
    // The version is read inside the write transaction, so that two processes
    // opening a new data dir at once (server and `apps create`) cannot both
    // apply the same migration.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let applied = (|| -> Result<()> {
        let version = conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?;
        let version = usize::try_from(version).unwrap_or(0);
        for sql in MIGRATIONS.iter().skip(version) {
            conn.execute_batch(sql)?;
        }
        conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64)?;
        Ok(())
    })();
    match applied {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A data dir written before v7 keeps its confirmed events confirmed.
    #[test]
    fn v7_renumbers_confirmed_events() {
        let conn = Connection::open_in_memory().expect("open");
        for sql in &MIGRATIONS[..6] {
            conn.execute_batch(sql).expect("v1..v6");
        }
        conn.pragma_update(None, "user_version", 6)
            .expect("version");
        for (seq, state) in [(1, 1), (2, 3), (3, 4)] {
            conn.execute(
                "INSERT INTO events (seq, event_id, app_id, order_key, task_id, task_sequence,
                     event_type, event_time, state, settled_time)
                 VALUES (?1, 'ev-' || ?1, 1, 'k', 't', ?1, 'NewFileUpload', 0, ?2, 5)",
                [seq, state],
            )
            .expect("a v6 event");
        }
        migrate(&conn).expect("migrate");
        let states: Vec<i64> = conn
            .prepare("SELECT state FROM events ORDER BY seq")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("states");
        assert_eq!(states, [1, 3, 0], "pending and dead stay, confirmed is 0");
        let pending: i64 = conn
            .query_row("SELECT count(*) FROM events WHERE state = 1", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(pending, 1);
        assert!(
            conn.prepare("SELECT settled_time FROM events").is_err(),
            "settled_time is gone"
        );
    }
}
