//! Task SQL: the PostgreSQL twin of `store/sqlite/tasks.rs`, with the row
//! locks that SQLite's single writer made unnecessary. Writes take the
//! caller's transaction; reads any connection.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::Tx;
use super::rows::{self, ATTEMPT_COLUMNS, Sql, TASK_COLUMNS};
use crate::error::{Error, Result};
use crate::events::envelope::Draft;
use crate::ids::{AppId, FileId, TaskId};
use crate::media::MediaFile;
use crate::store::codec::{Assign, assignments, to_json};
use crate::store::{Claim, Lease, LeaseState, Orphans, Recovered};
use crate::task::Outcome;
use crate::task::errcode;
use crate::task::query::{HourRange, Overview, Position, SortBy, SortOrder, TaskPage, TaskQuery};
use crate::task::{
    Cancel, Change, Inserted, NewTask, Orphan, Task, TaskOutput, TaskSpec, TaskStatus, TaskType,
};
use crate::time::{Timestamp, hour_of, to_micros};

type Value = Box<dyn ToSql + Sync + Send>;

/// What a transition needs to know of the row it changes.
struct Current {
    seq: i64,
    app_id: i64,
    task_type: i64,
    status: TaskStatus,
    create_time: i64,
    lease_token: i64,
    recoveries: i64,
    cancel_requested: bool,
}

/// The row of task `id`, locked until the transaction ends.
async fn current(tx: &Tx<'_>, id: &str) -> Result<Option<Current>> {
    let Some(r) = tx
        .opt(
            "SELECT seq, app_id, task_type, status, create_time, lease_token, recoveries, cancel_requested
             FROM tasks WHERE task_id = $1 FOR UPDATE",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Current {
        seq: r.try_get(0)?,
        app_id: r.try_get(1)?,
        task_type: r.try_get(2)?,
        status: rows::status(r.try_get(3)?)?,
        create_time: r.try_get(4)?,
        lease_token: r.try_get(5)?,
        recoveries: r.try_get(6)?,
        cancel_requested: r.try_get(7)?,
    }))
}

async fn current_of_app(tx: &Tx<'_>, app: AppId, id: &TaskId) -> Result<Current> {
    current(tx, id.as_str())
        .await?
        .filter(|c| c.app_id == app.0)
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &TaskId) -> Error {
    Error::NotFound(format!("task_id: no task {id}"))
}

/// The one place where a task's status is written: the change's fields,
/// then the status with the guard on the old one, the counters and, when
/// the task ends, its completion event, all in the caller's transaction.
async fn apply(tx: &Tx<'_>, cur: &Current, change: &Change) -> Result<()> {
    let t = change.transition;
    if !t.allowed_from(cur.status) {
        return Err(Error::Internal(format!(
            "illegal transition {t:?} from {:?}",
            cur.status
        )));
    }
    write_fields(tx, cur.seq, change).await?;
    let changed = tx
        .exec(
            "UPDATE tasks SET status = $1 WHERE seq = $2 AND status = $3",
            &[&t.to().code(), &cur.seq, &cur.status.code()],
        )
        .await?;
    if changed != 1 {
        return Err(Error::Internal("task changed under a transition".into()));
    }
    count(
        tx,
        cur.app_id,
        cur.create_time,
        cur.task_type,
        &[(cur.status.code(), -1), (t.to().code(), 1)],
    )
    .await?;
    if t.to().is_terminal() {
        emit_ended(tx, cur).await?;
    }
    Ok(())
}

/// The fields a change sets, in one statement (none: no statement).
async fn write_fields(tx: &Tx<'_>, seq: i64, c: &Change) -> Result<()> {
    let assignments = assignments(c)?;
    if assignments.is_empty() {
        return Ok(());
    }
    let mut sets: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    for a in assignments {
        let (column, value): (_, Value) = match a {
            Assign::Int(column, v) => (column, Box::new(v)),
            Assign::Text(column, v) => (column, Box::new(v)),
            Assign::Bool(column, v) => (column, Box::new(v)),
            Assign::Expr(expr) => {
                sets.push(expr.to_string());
                continue;
            }
        };
        values.push(value);
        sets.push(format!("{column} = ${}", values.len()));
    }
    values.push(Box::new(seq));
    let sql = format!(
        "UPDATE tasks SET {} WHERE seq = ${}",
        sets.join(", "),
        values.len()
    );
    tx.exec(&sql, &params(&values)).await?;
    Ok(())
}

/// `values` as the statement's parameters.
fn params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|v| v.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// The completion event of a task that just ended, in the same transaction.
async fn emit_ended(tx: &Tx<'_>, cur: &Current) -> Result<()> {
    let row = tx
        .one(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE seq = $1"),
            &[&cur.seq],
        )
        .await?;
    let (_, task) = rows::task(&row)?;
    let source = match task.file_id() {
        Some(file) => media_row(&**tx, cur.app_id, file.as_str(), Lock::None).await?,
        None => None,
    };
    let Some(draft) = crate::events::envelope::task_ended(&task, source.as_ref()) else {
        return Ok(());
    };
    let at = task.finish_time.unwrap_or_else(crate::time::now);
    super::events::emit(tx, AppId(cur.app_id), &draft, at).await
}

/// How a read of a media row locks it.
#[derive(Clone, Copy)]
enum Lock {
    None,
    /// A delete: a task that reads the file waits for it to commit.
    Update,
}

async fn media_row(
    c: &impl GenericClient,
    app: i64,
    file_id: &str,
    lock: Lock,
) -> Result<Option<MediaFile>> {
    let lock = match lock {
        Lock::None => "",
        Lock::Update => " FOR UPDATE",
    };
    c.opt(
        &format!(
            "SELECT {} FROM media WHERE file_id = $1 AND app_id = $2{lock}",
            rows::MEDIA_COLUMNS
        ),
        &[&file_id, &app],
    )
    .await?
    .as_ref()
    .map(rows::media)
    .transpose()
}

/// How a task relates to a file (`task_files.role`).
#[derive(Debug, Clone, Copy)]
enum FileRole {
    Reads = 1,
    Wrote = 2,
    Deletes = 3,
}

async fn link_file(tx: &Tx<'_>, task_seq: i64, file_id: &FileId, role: FileRole) -> Result<()> {
    tx.exec(
        "INSERT INTO task_files (file_id, task_seq, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&file_id.as_str(), &task_seq, &(role as i64)],
    )
    .await?;
    Ok(())
}

/// The first of `files` that a waiting or running task (other than
/// `except`) reads, with that task's id.
async fn file_in_use(
    tx: &Tx<'_>,
    files: &[FileId],
    except: Option<i64>,
) -> Result<Option<(FileId, String)>> {
    for file in files {
        if let Some(row) = tx
            .opt(
                "SELECT t.task_id FROM task_files f JOIN tasks t ON t.seq = f.task_seq
                 WHERE f.file_id = $1 AND f.role = 1 AND t.status IN (1, 2) AND t.seq <> $2 LIMIT 1",
                &[&file.as_str(), &except.unwrap_or(0)],
            )
            .await?
        {
            return Ok(Some((file.clone(), row.try_get(0)?)));
        }
    }
    Ok(None)
}

/// The renditions of a file: what transcodes, snapshots, sprites and
/// procedures that read it wrote.
async fn renditions_of(tx: &Tx<'_>, app: i64, file: &FileId) -> Result<Vec<FileId>> {
    let types: Vec<i64> = TaskType::ALL
        .into_iter()
        .filter(|t| t.writes_renditions())
        .map(TaskType::code)
        .collect();
    tx.rows(
        "SELECT m.file_id FROM task_files f
         JOIN tasks t ON t.seq = f.task_seq AND t.task_type = ANY($3)
         JOIN media m ON m.source_task_id = t.task_id AND m.app_id = $2
         WHERE f.file_id = $1 AND f.role = 1",
        &[&file.as_str(), &app, &types],
    )
    .await?
    .iter()
    .map(|r| Ok(FileId::from_stored(r.try_get(0)?)))
    .collect()
}

/// Adds `deltas` (status, n) to the counters of a task of `task_type`
/// created at `create_time`, on this connection's shard. Rows go in
/// status order, so that two transactions lock shared rows in one order.
async fn count(
    tx: &Tx<'_>,
    app: i64,
    create_time: i64,
    task_type: i64,
    deltas: &[(i64, i64)],
) -> Result<()> {
    let mut deltas = deltas.to_vec();
    deltas.sort_unstable();
    let (statuses, ns): (Vec<i64>, Vec<i64>) = deltas.into_iter().unzip();
    let hour = hour_of(crate::time::from_micros(create_time));
    tx.exec(
        "INSERT INTO task_counts (app_id, status, task_type, shard, n)
         SELECT $1, s, $2, pg_backend_pid() % 16, n FROM unnest($3::bigint[], $4::bigint[]) AS d(s, n)
         ON CONFLICT (app_id, status, task_type, shard) DO UPDATE SET n = task_counts.n + excluded.n",
        &[&app, &task_type, &statuses, &ns],
    )
    .await?;
    tx.exec(
        "INSERT INTO task_counts_hourly (app_id, hour, status, task_type, shard, n)
         SELECT $1, $2, s, $3, pg_backend_pid() % 16, n FROM unnest($4::bigint[], $5::bigint[]) AS d(s, n)
         ON CONFLICT (app_id, hour, status, task_type, shard)
         DO UPDATE SET n = task_counts_hourly.n + excluded.n",
        &[&app, &hour, &task_type, &statuses, &ns],
    )
    .await?;
    Ok(())
}

/// The task an app's session id names, with the fingerprint of its request.
async fn by_session(tx: &Tx<'_>, app: AppId, session_id: &str) -> Result<Option<(String, String)>> {
    tx.opt(
        "SELECT task_id, request_hash FROM tasks WHERE app_id = $1 AND session_id = $2",
        &[&app.0, &session_id],
    )
    .await?
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .transpose()
}

fn same_session(
    session_id: &str,
    fingerprint: &str,
    (id, hash): (String, String),
) -> Result<Inserted> {
    if hash == fingerprint {
        Ok(Inserted::Existing(TaskId::from_stored(id)))
    } else {
        Err(Error::AlreadyExists(format!(
            "session_id: {session_id:?} was used by task {id} with a different request"
        )))
    }
}

pub(super) async fn insert(tx: &Tx<'_>, task: &NewTask) -> Result<Inserted> {
    let req = &task.request;
    let fingerprint = req.fingerprint();
    if let Some(session_id) = &req.session_id
        && let Some(existing) = by_session(tx, task.app_id, session_id).await?
    {
        return same_session(session_id, &fingerprint, existing);
    }
    // The input rows stay locked (shared) until the commit, so that a
    // delete cannot remove a file between this check and the insert.
    let inputs = req.spec.input_files();
    let names: Vec<&str> = inputs.iter().map(|f| f.as_str()).collect();
    let found: Vec<String> = tx
        .rows(
            "SELECT file_id FROM media WHERE app_id = $1 AND file_id = ANY($2) FOR SHARE",
            &[&task.app_id.0, &names],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    if let Some(missing) = inputs
        .iter()
        .find(|f| !found.iter().any(|g| g == f.as_str()))
    {
        return Err(Error::NotFound(format!("file_id: no media file {missing}")));
    }
    let deletes = matches!(req.spec, TaskSpec::DeleteMedia(_));
    if deletes {
        let files: Vec<FileId> = inputs.iter().map(|f| (*f).clone()).collect();
        if let Some((file, user)) = file_in_use(tx, &files, None).await? {
            return Err(Error::FailedPrecondition(format!(
                "file_ids: file {file} is used by task {user}, which is waiting or running"
            )));
        }
    }
    let role = if deletes {
        FileRole::Deletes
    } else {
        FileRole::Reads
    };
    let task_type = req.spec.task_type().code();
    let create_time = to_micros(task.create_time);
    let hour = hour_of(task.create_time);
    // The row, its files and its counters in one statement: one round trip
    // instead of four (a CreateTask waits on its round trips, not on
    // PostgreSQL's CPU).
    let inserted = tx
        .opt(
            "WITH t AS (
                 INSERT INTO tasks (task_id, app_id, task_type, status, priority, create_time,
                                    session_id, session_context, request_hash, file_id, input_json)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (app_id, session_id) WHERE session_id IS NOT NULL DO NOTHING
                 RETURNING seq),
             f AS (
                 INSERT INTO task_files (file_id, task_seq, role)
                 SELECT DISTINCT u.f, t.seq, $13::bigint FROM t, unnest($12::text[]) AS u(f)
                 ON CONFLICT DO NOTHING),
             c AS (
                 INSERT INTO task_counts (app_id, status, task_type, shard, n)
                 SELECT $2, $4, $3, pg_backend_pid() % 16, 1 FROM t
                 ON CONFLICT (app_id, status, task_type, shard)
                 DO UPDATE SET n = task_counts.n + excluded.n),
             h AS (
                 INSERT INTO task_counts_hourly (app_id, hour, status, task_type, shard, n)
                 SELECT $2, $14, $4, $3, pg_backend_pid() % 16, 1 FROM t
                 ON CONFLICT (app_id, hour, status, task_type, shard)
                 DO UPDATE SET n = task_counts_hourly.n + excluded.n)
             SELECT seq FROM t",
            &[
                &task.id.as_str(),
                &task.app_id.0,
                &task_type,
                &TaskStatus::Waiting.code(),
                &i64::from(req.priority),
                &create_time,
                &req.session_id,
                &req.session_context,
                &fingerprint,
                &req.spec.main_file().map_or("", FileId::as_str),
                &to_json(&req.spec)?,
                &names,
                &(role as i64),
                &hour,
            ],
        )
        .await?;
    if inserted.is_none() {
        // A concurrent call with the same session id committed first.
        let session_id = req.session_id.as_deref().unwrap_or_default();
        let existing = by_session(tx, task.app_id, session_id)
            .await?
            .ok_or_else(|| Error::Internal("a conflicting session vanished".into()))?;
        return same_session(session_id, &fingerprint, existing);
    }
    Ok(Inserted::Created(task.id.clone()))
}

pub(super) async fn get(
    c: &impl GenericClient,
    app: AppId,
    id: &TaskId,
    with_attempts: bool,
) -> Result<Option<Task>> {
    let Some(row) = c
        .opt(
            &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = $1 AND app_id = $2"),
            &[&id.as_str(), &app.0],
        )
        .await?
    else {
        return Ok(None);
    };
    let (seq, mut task) = rows::task(&row)?;
    if with_attempts {
        for r in c
            .rows(
                &format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM task_attempts WHERE task_seq = $1 ORDER BY attempt"
                ),
                &[&seq],
            )
            .await?
        {
            task.previous_attempts.push(rows::attempt(&r)?);
        }
    }
    Ok(Some(task))
}

async fn get_existing(tx: &Tx<'_>, app: AppId, id: &TaskId) -> Result<Task> {
    get(&**tx, app, id, true)
        .await?
        .ok_or_else(|| not_found(id))
}

pub(super) async fn list(c: &impl GenericClient, app: AppId, q: &TaskQuery) -> Result<TaskPage> {
    let key = match q.sort_by {
        SortBy::CreateTime => "create_time",
        SortBy::FinishTime => "finish_time",
    };
    let mut sql = format!("SELECT {TASK_COLUMNS}, {key} FROM tasks WHERE app_id = $1");
    let mut args: Vec<Value> = vec![Box::new(app.0)];
    let mut filter = |clause: &str, value: Value| {
        args.push(value);
        sql.push_str(&clause.replace('?', &format!("${}", args.len())));
    };
    if let Some(s) = q.status {
        filter(" AND status = ?", Box::new(s.code()));
    }
    if let Some(t) = q.task_type {
        filter(" AND task_type = ?", Box::new(t.code()));
    }
    if let Some(f) = &q.file_id {
        filter(
            " AND seq IN (SELECT task_seq FROM task_files WHERE file_id = ?)",
            Box::new(f.as_str().to_string()),
        );
    }
    for (column, range) in [
        ("create_time", q.create_time),
        ("finish_time", q.finish_time),
    ] {
        if let Some(after) = range.after {
            filter(&format!(" AND {column} >= ?"), Box::new(to_micros(after)));
        }
        if let Some(before) = range.before {
            filter(&format!(" AND {column} < ?"), Box::new(to_micros(before)));
        }
    }
    let (cmp, dir) = match q.order {
        SortOrder::Asc => (">", "ASC"),
        SortOrder::Desc => ("<", "DESC"),
    };
    if q.sort_by == SortBy::FinishTime {
        sql.push_str(" AND finish_time IS NOT NULL");
    }
    if let Some(Position { key: k, tie }) = q.after {
        args.push(Box::new(k));
        args.push(Box::new(tie));
        sql.push_str(&format!(
            " AND ({key}, seq) {cmp} (${}, ${})",
            args.len() - 1,
            args.len()
        ));
    }
    sql.push_str(&format!(
        " ORDER BY {key} {dir}, seq {dir} LIMIT {}",
        q.limit + 1
    ));
    let found = c.rows(&sql, &params(&args)).await?;
    let mut tasks = Vec::with_capacity(found.len());
    let mut last = None;
    for row in &found {
        if tasks.len() == q.limit as usize {
            let scroll_token = last.map(|p| q.token_after(p)).unwrap_or_default();
            return Ok(TaskPage {
                tasks,
                scroll_token,
            });
        }
        let (seq, task) = rows::task(row)?;
        last = Some(Position {
            key: row.try_get(18)?,
            tie: seq,
        });
        tasks.push(task);
    }
    Ok(TaskPage {
        tasks,
        scroll_token: String::new(),
    })
}

pub(super) async fn overview(
    c: &impl GenericClient,
    app: AppId,
    range: HourRange,
) -> Result<Overview> {
    let triples = |rows: Vec<tokio_postgres::Row>| -> Result<Vec<(i64, i64, i64)>> {
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    };
    let all_time = triples(
        c.rows(
            "SELECT status, task_type, sum(n)::bigint FROM task_counts WHERE app_id = $1
             GROUP BY status, task_type",
            &[&app.0],
        )
        .await?,
    )?;
    let counted = if range.is_unbounded() {
        all_time.clone()
    } else {
        triples(
            c.rows(
                "SELECT status, task_type, sum(n)::bigint FROM task_counts_hourly
                 WHERE app_id = $1 AND hour >= $2 AND hour < $3 GROUP BY status, task_type",
                &[
                    &app.0,
                    &range.first_hour.unwrap_or(i64::MIN),
                    &range.end_hour.unwrap_or(i64::MAX),
                ],
            )
            .await?,
        )?
    };
    Ok(Overview::from_counts(range, &counted, &all_time))
}

pub(super) async fn redo(tx: &Tx<'_>, app: AppId, id: &TaskId) -> Result<Task> {
    let cur = current_of_app(tx, app, id).await?;
    let change = Change::redo(id, cur.status)?;
    // The ended attempt is kept as history before the change clears it.
    tx.exec(
        &format!(
            "INSERT INTO task_attempts (task_seq, {ATTEMPT_COLUMNS})
             SELECT seq, {ATTEMPT_COLUMNS} FROM tasks WHERE seq = $1"
        ),
        &[&cur.seq],
    )
    .await?;
    apply(tx, &cur, &change).await?;
    get_existing(tx, app, id).await
}

pub(super) async fn cancel(tx: &Tx<'_>, app: AppId, id: &TaskId, now: Timestamp) -> Result<Task> {
    let cur = current_of_app(tx, app, id).await?;
    match Change::cancel(cur.status, now) {
        Cancel::Now(change) => apply(tx, &cur, &change).await?,
        Cancel::Flag => {
            tx.exec(
                "UPDATE tasks SET cancel_requested = true WHERE seq = $1",
                &[&cur.seq],
            )
            .await?;
        }
        Cancel::Nothing => {}
    }
    get_existing(tx, app, id).await
}

pub(super) async fn claim_next(
    tx: &Tx<'_>,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<Option<Claim>> {
    // Tasks that other claims hold are skipped, not waited for; the index
    // tasks_queue has exactly this order.
    let Some(row) = tx
        .opt(
            "SELECT task_id FROM tasks WHERE status = 1 ORDER BY priority DESC, seq
             LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?
    else {
        return Ok(None);
    };
    let id = TaskId::from_stored(row.try_get(0)?);
    let cur = current(tx, id.as_str())
        .await?
        .ok_or_else(|| not_found(&id))?;
    apply(tx, &cur, &Change::claim(now, lease_until)).await?;
    let task = get(&**tx, AppId(cur.app_id), &id, false)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Some(Claim {
        task,
        lease: Lease {
            task_id: id,
            token: cur.lease_token + 1,
        },
    }))
}

/// The row of a lease that is still held (locked), or None when it was lost.
async fn held(tx: &Tx<'_>, lease: &Lease) -> Result<Option<Current>> {
    Ok(current(tx, lease.task_id.as_str())
        .await?
        .filter(|c| c.status == TaskStatus::Processing && c.lease_token == lease.token))
}

pub(super) async fn heartbeat(
    tx: &Tx<'_>,
    lease: &Lease,
    progress: u8,
    lease_until: Timestamp,
) -> Result<LeaseState> {
    let flag = tx
        .opt(
            "UPDATE tasks SET progress = $1, lease_expires = $2
             WHERE task_id = $3 AND lease_token = $4 AND status = 2 RETURNING cancel_requested",
            &[
                &i64::from(progress),
                &to_micros(lease_until),
                &lease.task_id.as_str(),
                &lease.token,
            ],
        )
        .await?;
    Ok(match flag {
        Some(r) => LeaseState::Held {
            cancel_requested: r.try_get(0)?,
        },
        None => LeaseState::Lost,
    })
}

pub(super) async fn record_step(
    tx: &Tx<'_>,
    lease: &Lease,
    progress: u8,
    output: &TaskOutput,
    new_media: &[MediaFile],
    event: Option<&Draft>,
) -> Result<LeaseState> {
    let held = tx
        .opt(
            "UPDATE tasks SET progress = $1, output_json = $2
             WHERE task_id = $3 AND lease_token = $4 AND status = 2
             RETURNING cancel_requested, app_id, seq",
            &[
                &i64::from(progress),
                &to_json(output)?,
                &lease.task_id.as_str(),
                &lease.token,
            ],
        )
        .await?;
    let Some(row) = held else {
        return Ok(LeaseState::Lost);
    };
    let (cancel_requested, app, seq): (bool, i64, i64) =
        (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    for media in new_media {
        super::insert_media(tx, media).await?;
        link_file(tx, seq, &media.file_id, FileRole::Wrote).await?;
    }
    if let Some(draft) = event {
        super::events::emit(tx, AppId(app), draft, crate::time::now()).await?;
    }
    Ok(LeaseState::Held { cancel_requested })
}

pub(super) async fn finish(
    tx: &Tx<'_>,
    lease: &Lease,
    outcome: &Outcome,
    now: Timestamp,
) -> Result<Option<Vec<FileId>>> {
    let Some(cur) = held(tx, lease).await? else {
        return Ok(None);
    };
    let mut removed = Vec::new();
    let (err_code, message, output) = match outcome {
        Outcome::Finished {
            err_code,
            message,
            output,
            new_media,
            follow_up,
        } => {
            for media in new_media {
                super::insert_media(tx, media).await?;
                link_file(tx, cur.seq, &media.file_id, FileRole::Wrote).await?;
            }
            if let Some(TaskOutput::PullUpload { file_id, .. }) = output {
                tx.exec(
                    "UPDATE tasks SET file_id = $1 WHERE seq = $2",
                    &[&file_id.as_str(), &cur.seq],
                )
                .await?;
            }
            if let Some(task) = follow_up {
                insert(tx, task).await?;
            }
            (*err_code, message.clone(), output.clone())
        }
        Outcome::Deleted { files } => match delete_files(tx, &cur, files, now).await? {
            Ok(deleted) => {
                removed.clone_from(&deleted);
                (0, String::new(), Some(TaskOutput::DeleteMedia { deleted }))
            }
            Err((err_code, message)) => (err_code, message, None),
        },
        Outcome::Aborted => {
            apply(tx, &cur, &Change::abort_running(now)).await?;
            return Ok(Some(removed));
        }
    };
    apply(tx, &cur, &Change::finish(err_code, message, output, now)).await?;
    Ok(Some(removed))
}

/// Deletes the rows of `files` and of their renditions, or none of them
/// (with the task's error) when one is missing or in use.
async fn delete_files(
    tx: &Tx<'_>,
    cur: &Current,
    files: &[FileId],
    now: Timestamp,
) -> Result<std::result::Result<Vec<FileId>, (i32, String)>> {
    let mut all: Vec<FileId> = Vec::new();
    for file in files {
        // Locked before the in-use check: a task that reads the file has
        // committed by then (and is seen), or waits and then finds no file.
        if media_row(&**tx, cur.app_id, file.as_str(), Lock::Update)
            .await?
            .is_none()
        {
            return Ok(Err((
                errcode::SOURCE_MISSING,
                format!("file {file} is not in the media library"),
            )));
        }
        all.push(file.clone());
        for r in renditions_of(tx, cur.app_id, file).await? {
            if !all.contains(&r) {
                media_row(&**tx, cur.app_id, r.as_str(), Lock::Update).await?;
                all.push(r);
            }
        }
    }
    if let Some((file, user)) = file_in_use(tx, &all, Some(cur.seq)).await? {
        return Ok(Err((
            errcode::FILE_IN_USE,
            format!("file {file} is used by task {user}, which is waiting or running"),
        )));
    }
    for file in &all {
        tx.exec(
            "DELETE FROM media WHERE file_id = $1 AND app_id = $2",
            &[&file.as_str(), &cur.app_id],
        )
        .await?;
        // Its objects go after the commit; should that not happen, the
        // sweeper finds them here.
        tx.exec(
            "INSERT INTO media_leftovers (file_id, owner, since, deleting) VALUES ($1, '', $2, true)
             ON CONFLICT (file_id) DO UPDATE
             SET owner = excluded.owner, since = excluded.since, deleting = true",
            &[&file.as_str(), &to_micros(now)],
        )
        .await?;
    }
    Ok(Ok(all))
}

pub(super) async fn release(tx: &Tx<'_>, lease: &Lease) -> Result<bool> {
    let Some(cur) = held(tx, lease).await? else {
        return Ok(false);
    };
    let change = Change::release(cur.cancel_requested, crate::time::now());
    apply(tx, &cur, &change).await?;
    Ok(true)
}

pub(super) async fn recover(
    tx: &Tx<'_>,
    orphans: Orphans,
    max_recoveries: u32,
    now: Timestamp,
) -> Result<Recovered> {
    // Rows another transaction holds (a worker finishing, another node
    // recovering) are skipped: they are not orphans of this call.
    let expired_before = match orphans {
        Orphans::All => i64::MAX,
        Orphans::ExpiredBefore(t) => to_micros(t),
    };
    let ids = tx
        .rows(
            "SELECT task_id FROM tasks WHERE status = 2 AND coalesce(lease_expires, 0) < $1
             ORDER BY seq FOR UPDATE SKIP LOCKED",
            &[&expired_before],
        )
        .await?;
    let mut recovered = Recovered::default();
    for row in ids {
        let id: String = row.try_get(0)?;
        let Some(cur) = current(tx, &id).await? else {
            continue;
        };
        let recoveries = u32::try_from(cur.recoveries).unwrap_or(u32::MAX);
        let (orphan, change) =
            Change::orphaned(cur.cancel_requested, recoveries, max_recoveries, now);
        apply(tx, &cur, &change).await?;
        match orphan {
            Orphan::Requeued => recovered.requeued += 1,
            Orphan::Failed => recovered.failed += 1,
            Orphan::Aborted => {}
        }
    }
    Ok(recovered)
}

/// Deletes up to `batch` ended tasks; the caller repeats while it returns `batch`.
pub(super) async fn purge(tx: &Tx<'_>, before: Timestamp, batch: i64) -> Result<u64> {
    let victims = tx
        .rows(
            "SELECT seq, app_id, task_type, status, create_time FROM tasks
             WHERE finish_time IS NOT NULL AND finish_time < $1 AND status IN (3, 4)
             LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&to_micros(before), &batch],
        )
        .await?;
    let mut seqs = Vec::with_capacity(victims.len());
    for r in &victims {
        let (seq, app, task_type, status, create_time): (i64, i64, i64, i64, i64) = (
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
        );
        count(tx, app, create_time, task_type, &[(status, -1)]).await?;
        seqs.push(seq);
    }
    for table in ["task_attempts", "task_files"] {
        tx.exec(
            &format!("DELETE FROM {table} WHERE task_seq = ANY($1)"),
            &[&seqs],
        )
        .await?;
    }
    tx.exec("DELETE FROM tasks WHERE seq = ANY($1)", &[&seqs])
        .await?;
    Ok(victims.len() as u64)
}
