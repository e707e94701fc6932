//! Task SQL. Every function takes a connection and runs inside the caller's
//! transaction (the group-commit writer) or read connection.

use rusqlite::types::Value;
use rusqlite::{Connection, params};

use super::rows::{self, TASK_COLUMNS, one, to_json};
use crate::error::{Error, Result};
use crate::events::envelope::Draft;
use crate::ids::{AppId, FileId, TaskId};
use crate::media::MediaFile;
use crate::store::codec::{Assign, assignments};
use crate::store::{Claim, Lease, LeaseState, Orphans, Recovered};
use crate::task::Outcome;
use crate::task::errcode;
use crate::task::query::{HourRange, Overview, Position, SortBy, SortOrder, TaskPage, TaskQuery};
use crate::task::{
    Cancel, Change, Inserted, NewTask, Orphan, Task, TaskOutput, TaskSpec, TaskStatus, TaskType,
};
use crate::time::{Timestamp, hour_of, to_micros};

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

fn current_by(
    conn: &Connection,
    clause: &str,
    key: &dyn rusqlite::ToSql,
) -> Result<Option<Current>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq, app_id, task_type, status, create_time, lease_token, recoveries, cancel_requested
         FROM tasks WHERE {clause}"
    ))?;
    one(&mut stmt, [key], |r| {
        Ok(Current {
            seq: r.get(0)?,
            app_id: r.get(1)?,
            task_type: r.get(2)?,
            status: rows::status(r.get(3)?)?,
            create_time: r.get(4)?,
            lease_token: r.get(5)?,
            recoveries: r.get(6)?,
            cancel_requested: r.get(7)?,
        })
    })
}

fn current_of_app(conn: &Connection, app: AppId, id: &TaskId) -> Result<Current> {
    current_by(conn, "task_id = ?1", &id.as_str())?
        .filter(|c| c.app_id == app.0)
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &TaskId) -> Error {
    Error::NotFound(format!("task_id: no task {id}"))
}

/// The one place where a task's status is written: the change's fields,
/// then the status with the guard on the old one, the counters and, when
/// the task ends, its completion event, all in the caller's transaction.
fn apply(conn: &Connection, cur: &Current, change: &Change) -> Result<()> {
    let t = change.transition;
    if !t.allowed_from(cur.status) {
        return Err(Error::Internal(format!(
            "illegal transition {t:?} from {:?}",
            cur.status
        )));
    }
    write_fields(conn, cur.seq, change)?;
    let changed = conn
        .prepare_cached("UPDATE tasks SET status = ?1 WHERE seq = ?2 AND status = ?3")?
        .execute(params![t.to().code(), cur.seq, cur.status.code()])?;
    if changed != 1 {
        return Err(Error::Internal("task changed under a transition".into()));
    }
    count(
        conn,
        cur.app_id,
        cur.create_time,
        cur.status.code(),
        cur.task_type,
        -1,
    )?;
    count(
        conn,
        cur.app_id,
        cur.create_time,
        t.to().code(),
        cur.task_type,
        1,
    )?;
    if t.to().is_terminal() {
        emit_ended(conn, cur)?;
    }
    Ok(())
}

/// The fields a change sets, in one statement (none: no statement).
fn write_fields(conn: &Connection, seq: i64, c: &Change) -> Result<()> {
    let assignments = assignments(c)?;
    if assignments.is_empty() {
        return Ok(());
    }
    let mut sets: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    for a in assignments {
        let (column, value) = match a {
            Assign::Int(column, v) => (column, v.map_or(Value::Null, Value::Integer)),
            Assign::Text(column, v) => (column, v.map_or(Value::Null, Value::Text)),
            Assign::Bool(column, v) => (column, Value::Integer(v.into())),
            Assign::Expr(expr) => {
                sets.push(expr.to_string());
                continue;
            }
        };
        values.push(value);
        sets.push(format!("{column} = ?{}", values.len()));
    }
    values.push(Value::Integer(seq));
    let sql = format!(
        "UPDATE tasks SET {} WHERE seq = ?{}",
        sets.join(", "),
        values.len()
    );
    conn.prepare_cached(&sql)?
        .execute(rusqlite::params_from_iter(values))?;
    Ok(())
}

/// The completion event of a task that just ended, in the same transaction.
fn emit_ended(conn: &Connection, cur: &Current) -> Result<()> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE seq = ?1"))?;
    let (_, task) = one(&mut stmt, [cur.seq], rows::task)?
        .ok_or_else(|| Error::Internal("ended task vanished".into()))?;
    let source = match task.file_id() {
        Some(file) => media_row(conn, cur.app_id, file.as_str())?,
        None => None,
    };
    let Some(draft) = crate::events::envelope::task_ended(&task, source.as_ref()) else {
        return Ok(());
    };
    let at = task.finish_time.unwrap_or_else(crate::time::now);
    super::events::emit(conn, cur.app_id, &draft, at)
}

fn media_row(conn: &Connection, app: i64, file_id: &str) -> Result<Option<MediaFile>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM media WHERE file_id = ?1 AND app_id = ?2",
        rows::MEDIA_COLUMNS
    ))?;
    one(&mut stmt, params![file_id, app], rows::media)
}

/// How a task relates to a file (`task_files.role`).
#[derive(Debug, Clone, Copy)]
enum FileRole {
    Reads = 1,
    Wrote = 2,
    Deletes = 3,
}

fn link_file(conn: &Connection, task_seq: i64, file_id: &FileId, role: FileRole) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO task_files (file_id, task_seq, role) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![file_id.as_str(), task_seq, role as i64])?;
    Ok(())
}

/// The first of `files` that a waiting or running task (other than
/// `except`) reads, with that task's id.
fn file_in_use(
    conn: &Connection,
    files: &[FileId],
    except: Option<i64>,
) -> Result<Option<(FileId, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.task_id FROM task_files f JOIN tasks t ON t.seq = f.task_seq
         WHERE f.file_id = ?1 AND f.role = 1 AND t.status IN (1, 2) AND t.seq != ?2 LIMIT 1",
    )?;
    for file in files {
        if let Some(task) = one(
            &mut stmt,
            params![file.as_str(), except.unwrap_or(0)],
            |r| Ok(r.get::<_, String>(0)?),
        )? {
            return Ok(Some((file.clone(), task)));
        }
    }
    Ok(None)
}

/// The renditions of a file: what transcodes, snapshots, sprites and
/// procedures that read it wrote.
fn renditions_of(conn: &Connection, app: i64, file: &FileId) -> Result<Vec<FileId>> {
    let types: Vec<String> = TaskType::ALL
        .into_iter()
        .filter(|t| t.writes_renditions())
        .map(|t| t.code().to_string())
        .collect();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT m.file_id FROM task_files f
         JOIN tasks t ON t.seq = f.task_seq AND t.task_type IN ({})
         JOIN media m ON m.source_task_id = t.task_id AND m.app_id = ?2
         WHERE f.file_id = ?1 AND f.role = 1",
        types.join(", ")
    ))?;
    let ids = stmt
        .query_map(params![file.as_str(), app], |r| r.get::<_, String>(0))?
        .map(|r| r.map(FileId::from_stored))
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

fn count(
    conn: &Connection,
    app: i64,
    create_time: i64,
    status: i64,
    task_type: i64,
    delta: i64,
) -> Result<()> {
    let hour = hour_of(crate::time::from_micros(create_time));
    conn.prepare_cached(
        "INSERT INTO task_counts (app_id, status, task_type, n) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT DO UPDATE SET n = n + excluded.n",
    )?
    .execute(params![app, status, task_type, delta])?;
    conn.prepare_cached(
        "INSERT INTO task_counts_hourly (app_id, hour, status, task_type, n) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO UPDATE SET n = n + excluded.n",
    )?
    .execute(params![app, hour, status, task_type, delta])?;
    Ok(())
}

pub(super) fn insert(conn: &Connection, task: NewTask) -> Result<Inserted> {
    let req = &task.request;
    let fingerprint = req.fingerprint();
    if let Some(session_id) = &req.session_id {
        let mut stmt = conn.prepare_cached(
            "SELECT task_id, request_hash FROM tasks WHERE app_id = ?1 AND session_id = ?2",
        )?;
        let existing = one(&mut stmt, params![task.app_id.0, session_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?;
        if let Some((id, hash)) = existing {
            return if hash == fingerprint {
                Ok(Inserted::Existing(TaskId::from_stored(id)))
            } else {
                Err(Error::AlreadyExists(format!(
                    "session_id: {session_id:?} was used by task {id} with a different request"
                )))
            };
        }
    }
    // Checked here, in the insert's transaction, so that a file cannot
    // vanish between the check and the insert.
    let inputs = req.spec.input_files();
    for file_id in &inputs {
        let file_exists: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM media WHERE file_id = ?1 AND app_id = ?2)",
            )?
            .query_row(params![file_id.as_str(), task.app_id.0], |r| r.get(0))?;
        if !file_exists {
            return Err(Error::NotFound(format!("file_id: no media file {file_id}")));
        }
    }
    let deletes = matches!(req.spec, TaskSpec::DeleteMedia(_));
    if deletes {
        let files: Vec<FileId> = inputs.iter().map(|f| (*f).clone()).collect();
        if let Some((file, user)) = file_in_use(conn, &files, None)? {
            return Err(Error::FailedPrecondition(format!(
                "file_ids: file {file} is used by task {user}, which is waiting or running"
            )));
        }
    }
    let task_type = req.spec.task_type().code();
    let create_time = to_micros(task.create_time);
    conn.prepare_cached(
        "INSERT INTO tasks (task_id, app_id, task_type, status, priority, create_time, session_id,
                            session_context, request_hash, file_id, input_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        task.id.as_str(),
        task.app_id.0,
        task_type,
        TaskStatus::Waiting.code(),
        req.priority,
        create_time,
        req.session_id,
        req.session_context,
        fingerprint,
        req.spec.main_file().map_or("", FileId::as_str),
        to_json(&req.spec)?,
    ])?;
    let seq = conn.last_insert_rowid();
    let role = if deletes {
        FileRole::Deletes
    } else {
        FileRole::Reads
    };
    for file_id in inputs {
        link_file(conn, seq, file_id, role)?;
    }
    count(
        conn,
        task.app_id.0,
        create_time,
        TaskStatus::Waiting.code(),
        task_type,
        1,
    )?;
    Ok(Inserted::Created(task.id))
}

pub(super) fn get(
    conn: &Connection,
    app: AppId,
    id: &TaskId,
    with_attempts: bool,
) -> Result<Option<Task>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?1 AND app_id = ?2"
    ))?;
    let Some((seq, mut task)) = one(&mut stmt, params![id.as_str(), app.0], rows::task)? else {
        return Ok(None);
    };
    if with_attempts {
        let mut stmt = conn.prepare_cached(
            "SELECT attempt, status, err_code, message, begin_process_time, finish_time, output_json
             FROM task_attempts WHERE task_seq = ?1 ORDER BY attempt",
        )?;
        let mut rows = stmt.query([seq])?;
        while let Some(row) = rows.next()? {
            task.previous_attempts.push(rows::attempt(row)?);
        }
    }
    Ok(Some(task))
}

fn get_existing(conn: &Connection, app: AppId, id: &TaskId) -> Result<Task> {
    get(conn, app, id, true)?.ok_or_else(|| not_found(id))
}

pub(super) fn list(conn: &Connection, app: AppId, q: &TaskQuery) -> Result<TaskPage> {
    let key = match q.sort_by {
        SortBy::CreateTime => "create_time",
        SortBy::FinishTime => "finish_time",
    };
    let mut sql = format!("SELECT {TASK_COLUMNS}, {key} FROM tasks WHERE app_id = ?");
    let mut args: Vec<Value> = vec![Value::Integer(app.0)];
    let mut filter = |clause: &str, value: Value| {
        sql.push_str(clause);
        args.push(value);
    };
    if let Some(s) = q.status {
        filter(" AND status = ?", Value::Integer(s.code()));
    }
    if let Some(t) = q.task_type {
        filter(" AND task_type = ?", Value::Integer(t.code()));
    }
    if let Some(f) = &q.file_id {
        filter(
            " AND seq IN (SELECT task_seq FROM task_files WHERE file_id = ?)",
            Value::Text(f.as_str().to_string()),
        );
    }
    for (column, range) in [
        ("create_time", q.create_time),
        ("finish_time", q.finish_time),
    ] {
        if let Some(after) = range.after {
            filter(
                &format!(" AND {column} >= ?"),
                Value::Integer(to_micros(after)),
            );
        }
        if let Some(before) = range.before {
            filter(
                &format!(" AND {column} < ?"),
                Value::Integer(to_micros(before)),
            );
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
        sql.push_str(&format!(" AND ({key}, seq) {cmp} (?, ?)"));
        args.push(Value::Integer(k));
        args.push(Value::Integer(tie));
    }
    sql.push_str(&format!(
        " ORDER BY {key} {dir}, seq {dir} LIMIT {}",
        q.limit + 1
    ));

    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
    let mut tasks = Vec::with_capacity(q.limit as usize + 1);
    let mut last = None;
    while let Some(row) = rows.next()? {
        if tasks.len() == q.limit as usize {
            let scroll_token = last.map(|p| q.token_after(p)).unwrap_or_default();
            return Ok(TaskPage {
                tasks,
                scroll_token,
            });
        }
        let (seq, task) = rows::task(row)?;
        let key_value: i64 = row.get(18)?;
        last = Some(Position {
            key: key_value,
            tie: seq,
        });
        tasks.push(task);
    }
    Ok(TaskPage {
        tasks,
        scroll_token: String::new(),
    })
}

pub(super) fn overview(conn: &Connection, app: AppId, range: HourRange) -> Result<Overview> {
    let collect = |stmt: &mut rusqlite::CachedStatement<'_>,
                   args: &[&dyn rusqlite::ToSql]|
     -> Result<Vec<(i64, i64, i64)>> {
        let mut rows = stmt.query(args)?;
        let mut counts = Vec::new();
        while let Some(r) = rows.next()? {
            counts.push((r.get(0)?, r.get(1)?, r.get(2)?));
        }
        Ok(counts)
    };
    let all_time = collect(
        &mut conn
            .prepare_cached("SELECT status, task_type, n FROM task_counts WHERE app_id = ?1")?,
        &[&app.0],
    )?;
    let counted = if range.is_unbounded() {
        all_time.clone()
    } else {
        collect(
            &mut conn.prepare_cached(
                "SELECT status, task_type, SUM(n) FROM task_counts_hourly
                 WHERE app_id = ?1 AND hour >= ?2 AND hour < ?3 GROUP BY status, task_type",
            )?,
            &[
                &app.0,
                &range.first_hour.unwrap_or(i64::MIN),
                &range.end_hour.unwrap_or(i64::MAX),
            ],
        )?
    };
    Ok(Overview::from_counts(range, &counted, &all_time))
}

pub(super) fn redo(conn: &Connection, app: AppId, id: &TaskId) -> Result<Task> {
    let cur = current_of_app(conn, app, id)?;
    let change = Change::redo(id, cur.status)?;
    // The ended attempt is kept as history before the change clears it.
    conn.prepare_cached(
        "INSERT INTO task_attempts (task_seq, attempt, status, err_code, message, begin_process_time, finish_time, output_json)
         SELECT seq, attempt, status, err_code, message, begin_process_time, finish_time, output_json FROM tasks WHERE seq = ?1",
    )?
    .execute([cur.seq])?;
    apply(conn, &cur, &change)?;
    get_existing(conn, app, id)
}

pub(super) fn cancel(conn: &Connection, app: AppId, id: &TaskId, now: Timestamp) -> Result<Task> {
    let cur = current_of_app(conn, app, id)?;
    match Change::cancel(cur.status, now) {
        Cancel::Now(change) => apply(conn, &cur, &change)?,
        Cancel::Flag => {
            conn.prepare_cached("UPDATE tasks SET cancel_requested = 1 WHERE seq = ?1")?
                .execute([cur.seq])?;
        }
        Cancel::Nothing => {}
    }
    get_existing(conn, app, id)
}

pub(super) fn claim_next(
    conn: &Connection,
    lease_until: Timestamp,
    now: Timestamp,
) -> Result<Option<Claim>> {
    let mut stmt = conn.prepare_cached(
        "SELECT task_id FROM tasks WHERE status = 1 ORDER BY priority DESC, seq LIMIT 1",
    )?;
    let Some(id) = one(&mut stmt, [], |r| Ok(TaskId::from_stored(r.get(0)?)))? else {
        return Ok(None);
    };
    let cur = current_by(conn, "task_id = ?1", &id.as_str())?.ok_or_else(|| not_found(&id))?;
    apply(conn, &cur, &Change::claim(now, lease_until))?;
    let task = get(conn, AppId(cur.app_id), &id, false)?.ok_or_else(|| not_found(&id))?;
    Ok(Some(Claim {
        task,
        lease: Lease {
            task_id: id,
            token: cur.lease_token + 1,
        },
    }))
}

/// The row of a lease that is still held, or None when it was lost.
fn held(conn: &Connection, lease: &Lease) -> Result<Option<Current>> {
    Ok(current_by(conn, "task_id = ?1", &lease.task_id.as_str())?
        .filter(|c| c.status == TaskStatus::Processing && c.lease_token == lease.token))
}

pub(super) fn heartbeat(
    conn: &Connection,
    lease: &Lease,
    progress: u8,
    lease_until: Timestamp,
) -> Result<LeaseState> {
    let mut stmt = conn.prepare_cached(
        "UPDATE tasks SET progress = ?1, lease_expires = ?2
         WHERE task_id = ?3 AND lease_token = ?4 AND status = 2 RETURNING cancel_requested",
    )?;
    let flag = one(
        &mut stmt,
        params![
            progress,
            to_micros(lease_until),
            lease.task_id.as_str(),
            lease.token
        ],
        |r| Ok(r.get::<_, bool>(0)?),
    )?;
    Ok(match flag {
        Some(cancel_requested) => LeaseState::Held { cancel_requested },
        None => LeaseState::Lost,
    })
}

pub(super) fn record_step(
    conn: &Connection,
    lease: &Lease,
    progress: u8,
    output: &TaskOutput,
    new_media: &[MediaFile],
    event: Option<Draft>,
) -> Result<LeaseState> {
    let mut stmt = conn.prepare_cached(
        "UPDATE tasks SET progress = ?1, output_json = ?2
         WHERE task_id = ?3 AND lease_token = ?4 AND status = 2
         RETURNING cancel_requested, app_id, seq",
    )?;
    let held = one(
        &mut stmt,
        params![
            progress,
            to_json(output)?,
            lease.task_id.as_str(),
            lease.token
        ],
        |r| {
            Ok((
                r.get::<_, bool>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        },
    )?;
    let Some((cancel_requested, app, seq)) = held else {
        return Ok(LeaseState::Lost);
    };
    for media in new_media {
        super::insert_media(conn, media)?;
        link_file(conn, seq, &media.file_id, FileRole::Wrote)?;
    }
    if let Some(draft) = event {
        super::events::emit(conn, app, &draft, crate::time::now())?;
    }
    Ok(LeaseState::Held { cancel_requested })
}

pub(super) fn finish(
    conn: &Connection,
    lease: &Lease,
    outcome: Outcome,
    now: Timestamp,
) -> Result<Option<Vec<FileId>>> {
    let Some(cur) = held(conn, lease)? else {
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
            for media in &new_media {
                super::insert_media(conn, media)?;
                link_file(conn, cur.seq, &media.file_id, FileRole::Wrote)?;
            }
            if let Some(TaskOutput::PullUpload { file_id, .. }) = &output {
                conn.prepare_cached("UPDATE tasks SET file_id = ?1 WHERE seq = ?2")?
                    .execute(params![file_id.as_str(), cur.seq])?;
            }
            if let Some(task) = follow_up {
                insert(conn, *task)?;
            }
            (err_code, message, output)
        }
        Outcome::Deleted { files } => match delete_files(conn, &cur, &files, now)? {
            Ok(deleted) => {
                removed.clone_from(&deleted);
                (0, String::new(), Some(TaskOutput::DeleteMedia { deleted }))
            }
            Err((err_code, message)) => (err_code, message, None),
        },
        Outcome::Aborted => {
            apply(conn, &cur, &Change::abort_running(now))?;
            return Ok(Some(removed));
        }
    };
    apply(conn, &cur, &Change::finish(err_code, message, output, now))?;
    Ok(Some(removed))
}

/// Deletes the rows of `files` and of their renditions, or none of them
/// (with the task's error) when one is missing or in use.
fn delete_files(
    conn: &Connection,
    cur: &Current,
    files: &[FileId],
    now: Timestamp,
) -> Result<std::result::Result<Vec<FileId>, (i32, String)>> {
    let mut all = Vec::new();
    for file in files {
        if media_row(conn, cur.app_id, file.as_str())?.is_none() {
            return Ok(Err((
                errcode::SOURCE_MISSING,
                format!("file {file} is not in the media library"),
            )));
        }
        all.push(file.clone());
        for r in renditions_of(conn, cur.app_id, file)? {
            if !all.contains(&r) {
                all.push(r);
            }
        }
    }
    if let Some((file, user)) = file_in_use(conn, &all, Some(cur.seq))? {
        return Ok(Err((
            errcode::FILE_IN_USE,
            format!("file {file} is used by task {user}, which is waiting or running"),
        )));
    }
    for file in &all {
        conn.prepare_cached("DELETE FROM media WHERE file_id = ?1 AND app_id = ?2")?
            .execute(params![file.as_str(), cur.app_id])?;
        // Its objects go after the commit; should that not happen, the
        // sweeper finds them here.
        conn.prepare_cached(
            "INSERT OR REPLACE INTO media_leftovers (file_id, owner, since, deleting)
             VALUES (?1, '', ?2, 1)",
        )?
        .execute(params![file.as_str(), crate::time::to_micros(now)])?;
    }
    Ok(Ok(all))
}

pub(super) fn release(conn: &Connection, lease: &Lease) -> Result<bool> {
    let Some(cur) = held(conn, lease)? else {
        return Ok(false);
    };
    let change = Change::release(cur.cancel_requested, crate::time::now());
    apply(conn, &cur, &change)?;
    Ok(true)
}

pub(super) fn recover(
    conn: &Connection,
    orphans: Orphans,
    max_recoveries: u32,
    now: Timestamp,
) -> Result<Recovered> {
    let ids: Vec<String> = {
        let mut stmt = match orphans {
            Orphans::All => {
                conn.prepare_cached("SELECT task_id FROM tasks WHERE status = 2 AND ?1 = ?1")?
            }
            Orphans::ExpiredBefore(_) => conn.prepare_cached(
                "SELECT task_id FROM tasks WHERE status = 2 AND lease_expires < ?1",
            )?,
        };
        let limit = match orphans {
            Orphans::All => 0,
            Orphans::ExpiredBefore(t) => to_micros(t),
        };
        stmt.query_map([limit], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut recovered = Recovered::default();
    for id in ids {
        let Some(cur) = current_by(conn, "task_id = ?1", &id)? else {
            continue;
        };
        let recoveries = u32::try_from(cur.recoveries).unwrap_or(u32::MAX);
        let (orphan, change) =
            Change::orphaned(cur.cancel_requested, recoveries, max_recoveries, now);
        apply(conn, &cur, &change)?;
        match orphan {
            Orphan::Requeued => recovered.requeued += 1,
            Orphan::Failed => recovered.failed += 1,
            Orphan::Aborted => {}
        }
    }
    Ok(recovered)
}

/// Deletes up to `batch` ended tasks; the caller repeats while it returns `batch`.
pub(super) fn purge(conn: &Connection, before: Timestamp, batch: u32) -> Result<u64> {
    let victims: Vec<(i64, i64, i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT seq, app_id, task_type, status, create_time FROM tasks
             WHERE finish_time IS NOT NULL AND finish_time < ?1 AND status IN (3, 4) LIMIT ?2",
        )?
        .query_map(params![to_micros(before), batch], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (seq, app, task_type, status, create_time) in &victims {
        conn.prepare_cached("DELETE FROM task_attempts WHERE task_seq = ?1")?
            .execute([seq])?;
        conn.prepare_cached("DELETE FROM task_files WHERE task_seq = ?1")?
            .execute([seq])?;
        conn.prepare_cached("DELETE FROM tasks WHERE seq = ?1")?
            .execute([seq])?;
        count(conn, *app, *create_time, *status, *task_type, -1)?;
    }
    Ok(victims.len() as u64)
}
