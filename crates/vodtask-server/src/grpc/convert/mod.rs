//! Conversions between the contract's messages and the core's types. Every
//! rejected value names its field as the contract spells it.

use chrono::{DateTime, Utc};
use tonic::Status;
use vodtask_core::ids::FileId;
use vodtask_core::media::{MediaFile, MediaMetadata, SourceType};
use vodtask_core::task::query::{HourRange, Overview, SortBy, SortOrder, TimeRange};
use vodtask_core::task::{AttemptRecord, Task, TaskStatus, TaskType};
use vodtask_core::time::Timestamp;
use vodtask_proto::v1 as pb;

use super::status::{invalid, to_status};

mod output;
mod spec;

pub(crate) use output::output_to_pb;
pub(crate) use spec::{procedure_plan, spec, spec_to_pb};

pub(crate) fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

fn from_timestamp(field: &str, t: &prost_types::Timestamp) -> Result<Timestamp, Status> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|nanos| DateTime::<Utc>::from_timestamp(t.seconds, nanos))
        .ok_or_else(|| invalid(field, "is not a valid timestamp"))
}

pub(crate) fn time_range(field: &str, r: Option<&pb::TimeRange>) -> Result<TimeRange, Status> {
    let Some(r) = r else {
        return Ok(TimeRange::default());
    };
    Ok(TimeRange {
        after: r
            .after
            .as_ref()
            .map(|t| from_timestamp(&format!("{field}.after"), t))
            .transpose()?,
        before: r
            .before
            .as_ref()
            .map(|t| from_timestamp(&format!("{field}.before"), t))
            .transpose()?,
    })
}

fn hour_range(r: HourRange) -> pb::TimeRange {
    let at = |h: i64| DateTime::<Utc>::from_timestamp(h.saturating_mul(3600), 0).map(timestamp);
    pb::TimeRange {
        after: r.first_hour.and_then(at),
        before: r.end_hour.and_then(at),
    }
}

pub(crate) fn file_id(field: &str, raw: &str) -> Result<FileId, Status> {
    FileId::parse(field, raw).map_err(to_status)
}

pub(crate) fn status_to_pb(s: TaskStatus) -> pb::TaskStatus {
    match s {
        TaskStatus::Waiting => pb::TaskStatus::Waiting,
        TaskStatus::Processing => pb::TaskStatus::Processing,
        TaskStatus::Finish => pb::TaskStatus::Finish,
        TaskStatus::Aborted => pb::TaskStatus::Aborted,
    }
}

pub(crate) fn type_to_pb(t: TaskType) -> pb::TaskType {
    match t {
        TaskType::Transcode => pb::TaskType::Transcode,
        TaskType::SnapshotByTimeOffset => pb::TaskType::SnapshotByTimeOffset,
        TaskType::Concat => pb::TaskType::Concat,
        TaskType::Clip => pb::TaskType::Clip,
        TaskType::ImageSprites => pb::TaskType::ImageSprites,
        TaskType::PullUpload => pb::TaskType::PullUpload,
        TaskType::DeleteMedia => pb::TaskType::DeleteMedia,
        TaskType::Procedure => pb::TaskType::Procedure,
    }
}

pub(crate) fn status_filter(raw: i32) -> Result<Option<TaskStatus>, Status> {
    match pb::TaskStatus::try_from(raw) {
        Ok(pb::TaskStatus::Unspecified) => Ok(None),
        Ok(s) => Ok(TaskStatus::from_code(s as i64)),
        Err(_) => Err(invalid("status", format!("unknown task status {raw}"))),
    }
}

pub(crate) fn type_filter(raw: i32) -> Result<Option<TaskType>, Status> {
    match pb::TaskType::try_from(raw) {
        Ok(pb::TaskType::Unspecified) => Ok(None),
        Ok(t) => Ok(TaskType::from_code(t as i64)),
        Err(_) => Err(invalid("task_type", format!("unknown task type {raw}"))),
    }
}

pub(crate) fn sort_by(raw: i32) -> Result<SortBy, Status> {
    match pb::TaskSortBy::try_from(raw) {
        Ok(pb::TaskSortBy::Unspecified | pb::TaskSortBy::CreateTime) => Ok(SortBy::CreateTime),
        Ok(pb::TaskSortBy::FinishTime) => Ok(SortBy::FinishTime),
        Err(_) => Err(invalid("sort_by", format!("unknown sort field {raw}"))),
    }
}

pub(crate) fn order(raw: i32) -> Result<SortOrder, Status> {
    match pb::SortOrder::try_from(raw) {
        Ok(pb::SortOrder::Unspecified | pb::SortOrder::Desc) => Ok(SortOrder::Desc),
        Ok(pb::SortOrder::Asc) => Ok(SortOrder::Asc),
        Err(_) => Err(invalid("order", format!("unknown sort order {raw}"))),
    }
}

fn attempt(a: &AttemptRecord) -> pb::TaskAttempt {
    pb::TaskAttempt {
        attempt: a.attempt as i32,
        status: status_to_pb(a.status) as i32,
        err_code: a.err_code,
        message: a.message.clone(),
        begin_process_time: a.begin_process_time.map(timestamp),
        finish_time: a.finish_time.map(timestamp),
        output: a.output.as_ref().map(output_to_pb),
    }
}

pub(crate) fn task(t: &Task) -> pb::Task {
    pb::Task {
        task_id: t.id.to_string(),
        task_type: type_to_pb(t.task_type()) as i32,
        status: status_to_pb(t.status) as i32,
        err_code: t.err_code,
        message: t.message.clone(),
        progress: i32::from(t.progress),
        attempt: t.attempt as i32,
        create_time: Some(timestamp(t.create_time)),
        begin_process_time: t.begin_process_time.map(timestamp),
        finish_time: t.finish_time.map(timestamp),
        priority: t.priority,
        session_id: t.session_id.clone().unwrap_or_default(),
        session_context: t.session_context.clone(),
        file_id: t.file_id().map(ToString::to_string).unwrap_or_default(),
        input: Some(spec_to_pb(&t.spec)),
        output: t.output.as_ref().map(output_to_pb),
        cancel_requested: t.cancel_requested,
        previous_attempts: t.previous_attempts.iter().map(attempt).collect(),
    }
}

pub(crate) fn overview(o: &Overview) -> pb::GetTaskOverviewResponse {
    pb::GetTaskOverviewResponse {
        total: o.total(),
        by_status: o
            .by_status
            .iter()
            .map(|(s, n)| pb::StatusCount {
                status: status_to_pb(*s) as i32,
                count: *n,
            })
            .collect(),
        by_type: o
            .by_type
            .iter()
            .map(|(t, n)| pb::TypeCount {
                task_type: type_to_pb(*t) as i32,
                count: *n,
            })
            .collect(),
        queue_depth: o.queue_depth,
        running: o.running,
        counted_create_time: (!o.counted.is_unbounded()).then(|| hour_range(o.counted)),
    }
}

fn metadata(m: &MediaMetadata) -> pb::MediaMetadata {
    pb::MediaMetadata {
        container: m.container.clone(),
        duration_seconds: m.duration_seconds,
        width: m.width as i32,
        height: m.height as i32,
        bitrate: m.bitrate,
        streams: m
            .streams
            .iter()
            .map(|s| pb::MediaStream {
                index: s.index as i32,
                codec_type: s.codec_type.clone(),
                codec: s.codec.clone(),
                bitrate: s.bitrate,
                width: s.width as i32,
                height: s.height as i32,
                fps: s.fps,
                sample_rate: s.sample_rate as i32,
                channels: s.channels as i32,
            })
            .collect(),
    }
}

pub(crate) fn media(m: &MediaFile, file_url: String) -> pb::MediaInfo {
    pb::MediaInfo {
        file_id: m.file_id.to_string(),
        file_name: m.file_name.clone(),
        file_url,
        size: m.size as i64,
        md5: m.md5.clone(),
        create_time: Some(timestamp(m.create_time)),
        source_type: match m.source_type {
            SourceType::ClientUpload => pb::SourceType::ClientUpload,
            SourceType::TaskOutput => pb::SourceType::TaskOutput,
            SourceType::Pull => pb::SourceType::Pull,
        } as i32,
        source_context: m.source_context.clone(),
        metadata: m.metadata.as_ref().ok().map(metadata),
        probe_error: m.metadata.as_ref().err().cloned().unwrap_or_default(),
        source_task_id: m
            .source_task_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}
