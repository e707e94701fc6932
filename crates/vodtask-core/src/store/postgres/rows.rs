//! Mapping between rows and domain types, and the few statement helpers
//! every module uses: each statement comes from the connection's cache of
//! prepared statements, so that a call costs one round trip, not two.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::error::Result;
use crate::ids::{AppId, FileId, TaskId};
use crate::media::{MediaFile, SourceType};
use crate::store::codec::{corrupt, json};
pub(super) use crate::store::codec::{status, to_json};
use crate::task::{AttemptRecord, Task, TaskOutput, TaskSpec};
use crate::time::from_micros;

pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Cached-statement queries on a connection or a transaction.
#[async_trait]
pub(super) trait Sql: GenericClient {
    async fn rows(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let stmt = self.prepare_cached(sql).await?;
        Ok(self.query(&stmt, params).await?)
    }

    async fn opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        let stmt = self.prepare_cached(sql).await?;
        Ok(self.query_opt(&stmt, params).await?)
    }

    async fn one(&self, sql: &str, params: Params<'_>) -> Result<Row> {
        let stmt = self.prepare_cached(sql).await?;
        Ok(self.query_one(&stmt, params).await?)
    }

    async fn exec(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        let stmt = self.prepare_cached(sql).await?;
        Ok(self.execute(&stmt, params).await?)
    }
}

impl<C: GenericClient> Sql for C {}

pub(super) const TASK_COLUMNS: &str = "seq, task_id, app_id, status, err_code, message, progress, attempt, \
     create_time, begin_process_time, finish_time, priority, session_id, session_context, input_json, \
     output_json, cancel_requested, file_id";

/// An i64 column read into a narrower field (the column is only ever
/// written from that field's type).
pub(super) fn narrow<T: TryFrom<i64>>(row: &Row, idx: usize) -> Result<T> {
    let v: i64 = row.try_get(idx)?;
    T::try_from(v).map_err(|_| corrupt(format!("column {idx}: {v} is out of range")))
}

/// A task and its `seq` (the keyset tie-breaker), from `TASK_COLUMNS`.
pub(super) fn task(row: &Row) -> Result<(i64, Task)> {
    let output: Option<String> = row.try_get(15)?;
    let spec: TaskSpec = json(row.try_get::<_, &str>(14)?)?;
    let task = Task {
        id: TaskId::from_stored(row.try_get(1)?),
        app_id: AppId(row.try_get(2)?),
        status: status(row.try_get(3)?)?,
        err_code: narrow(row, 4)?,
        message: row.try_get(5)?,
        progress: row.try_get::<_, i64>(6)?.clamp(0, 100) as u8,
        attempt: row.try_get::<_, i64>(7)?.clamp(1, i64::from(u32::MAX)) as u32,
        create_time: from_micros(row.try_get(8)?),
        begin_process_time: row.try_get::<_, Option<i64>>(9)?.map(from_micros),
        finish_time: row.try_get::<_, Option<i64>>(10)?.map(from_micros),
        priority: narrow(row, 11)?,
        session_id: row.try_get(12)?,
        session_context: row.try_get(13)?,
        spec,
        file_id: Some(row.try_get::<_, String>(17)?)
            .filter(|f| !f.is_empty())
            .map(FileId::from_stored),
        output: output.as_deref().map(json::<TaskOutput>).transpose()?,
        cancel_requested: row.try_get(16)?,
        previous_attempts: Vec::new(),
    };
    Ok((row.try_get(0)?, task))
}

pub(super) const ATTEMPT_COLUMNS: &str =
    "attempt, status, err_code, message, begin_process_time, finish_time, output_json";

pub(super) fn attempt(row: &Row) -> Result<AttemptRecord> {
    let output: Option<String> = row.try_get(6)?;
    Ok(AttemptRecord {
        attempt: row.try_get::<_, i64>(0)?.clamp(1, i64::from(u32::MAX)) as u32,
        status: status(row.try_get(1)?)?,
        err_code: narrow(row, 2)?,
        message: row.try_get(3)?,
        begin_process_time: row.try_get::<_, Option<i64>>(4)?.map(from_micros),
        finish_time: row.try_get::<_, Option<i64>>(5)?.map(from_micros),
        output: output.as_deref().map(json::<TaskOutput>).transpose()?,
    })
}

pub(super) const MEDIA_COLUMNS: &str = "file_id, app_id, file_name, stored_name, size, md5, create_time, \
     source_type, source_context, source_task_id, metadata_json, probe_error";

pub(super) fn media(row: &Row) -> Result<MediaFile> {
    let metadata: Option<String> = row.try_get(10)?;
    let probe_error: Option<String> = row.try_get(11)?;
    let metadata = match (metadata, probe_error) {
        (Some(m), _) => Ok(json(&m)?),
        (None, e) => Err(e.unwrap_or_default()),
    };
    let source_type: i64 = row.try_get(7)?;
    Ok(MediaFile {
        file_id: FileId::from_stored(row.try_get(0)?),
        app_id: AppId(row.try_get(1)?),
        file_name: row.try_get(2)?,
        stored_name: row.try_get(3)?,
        size: row.try_get::<_, i64>(4)?.max(0) as u64,
        md5: row.try_get(5)?,
        create_time: from_micros(row.try_get(6)?),
        source_type: SourceType::from_code(source_type)
            .ok_or_else(|| corrupt(format!("source type {source_type}")))?,
        source_context: row.try_get(8)?,
        source_task_id: row
            .try_get::<_, Option<String>>(9)?
            .map(TaskId::from_stored),
        metadata,
    })
}
