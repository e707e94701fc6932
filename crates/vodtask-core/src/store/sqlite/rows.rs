//! Mapping between rows and domain types.

use rusqlite::{OptionalExtension, Row};

use crate::error::Result;
use crate::ids::{AppId, FileId, TaskId};
use crate::media::{MediaFile, SourceType};
use crate::store::codec::{corrupt, json};
pub(super) use crate::store::codec::{status, to_json};
use crate::task::{AttemptRecord, Task, TaskOutput, TaskSpec};
use crate::time::from_micros;

pub(super) const TASK_COLUMNS: &str = "seq, task_id, app_id, status, err_code, message, progress, attempt, \
     create_time, begin_process_time, finish_time, priority, session_id, session_context, input_json, \
     output_json, cancel_requested, file_id";

/// A task and its `seq` (the keyset tie-breaker).
pub(super) fn task(row: &Row<'_>) -> Result<(i64, Task)> {
    let output: Option<String> = row.get(15)?;
    let spec: TaskSpec = json(&row.get::<_, String>(14)?)?;
    let task = Task {
        id: TaskId::from_stored(row.get(1)?),
        app_id: AppId(row.get(2)?),
        status: status(row.get(3)?)?,
        err_code: row.get(4)?,
        message: row.get(5)?,
        progress: row.get::<_, i64>(6)?.clamp(0, 100) as u8,
        attempt: row.get::<_, i64>(7)?.max(1) as u32,
        create_time: from_micros(row.get(8)?),
        begin_process_time: row.get::<_, Option<i64>>(9)?.map(from_micros),
        finish_time: row.get::<_, Option<i64>>(10)?.map(from_micros),
        priority: row.get(11)?,
        session_id: row.get(12)?,
        session_context: row.get(13)?,
        spec,
        file_id: Some(row.get::<_, String>(17)?)
            .filter(|f| !f.is_empty())
            .map(FileId::from_stored),
        output: output.as_deref().map(json::<TaskOutput>).transpose()?,
        cancel_requested: row.get(16)?,
        previous_attempts: Vec::new(),
    };
    Ok((row.get(0)?, task))
}

pub(super) fn attempt(row: &Row<'_>) -> Result<AttemptRecord> {
    let output: Option<String> = row.get(6)?;
    Ok(AttemptRecord {
        attempt: row.get::<_, i64>(0)?.max(1) as u32,
        status: status(row.get(1)?)?,
        err_code: row.get(2)?,
        message: row.get(3)?,
        begin_process_time: row.get::<_, Option<i64>>(4)?.map(from_micros),
        finish_time: row.get::<_, Option<i64>>(5)?.map(from_micros),
        output: output.as_deref().map(json::<TaskOutput>).transpose()?,
    })
}

pub(super) const MEDIA_COLUMNS: &str = "file_id, app_id, file_name, stored_name, size, md5, create_time, \
     source_type, source_context, source_task_id, metadata_json, probe_error";

pub(super) fn media(row: &Row<'_>) -> Result<MediaFile> {
    let metadata: Option<String> = row.get(10)?;
    let probe_error: Option<String> = row.get(11)?;
    let metadata = match (metadata, probe_error) {
        (Some(m), _) => Ok(json(&m)?),
        (None, e) => Err(e.unwrap_or_default()),
    };
    let source_type = row.get::<_, i64>(7)?;
    Ok(MediaFile {
        file_id: FileId::from_stored(row.get(0)?),
        app_id: AppId(row.get(1)?),
        file_name: row.get(2)?,
        stored_name: row.get(3)?,
        size: row.get::<_, i64>(4)?.max(0) as u64,
        md5: row.get(5)?,
        create_time: from_micros(row.get(6)?),
        source_type: SourceType::from_code(source_type)
            .ok_or_else(|| corrupt(format!("source type {source_type}")))?,
        source_context: row.get(8)?,
        source_task_id: row.get::<_, Option<String>>(9)?.map(TaskId::from_stored),
        metadata,
    })
}

/// Runs a query for at most one row mapped with a fallible mapper.
pub(super) fn one<T>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
    map: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut rows = stmt.query(params)?;
    rows.next()?.map(map).transpose()
}

pub(super) fn optional<T>(r: rusqlite::Result<T>) -> Result<Option<T>> {
    Ok(r.optional()?)
}
