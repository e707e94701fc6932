//! Plain camelCase JS objects <-> the vodtask.v1 protobuf messages. Enums
//! are their proto names without the type prefix (`TASK_STATUS_FINISH` is
//! `'FINISH'`), timestamps RFC 3339 strings, int64 JS numbers. Nothing here
//! validates beyond what the conversion itself needs: the service checks
//! the values and names the field.

use std::collections::HashMap;

use napi_derive::napi;
use vodtask_client::pb;

// ---------------------------------------------------------------- errors

/// Every error crosses into JS as `"<GRPC_CODE>: <message>"`; the JS layer
/// (index.js) turns it into an `Error` with `code` set to the gRPC name.
pub fn to_js(e: vodtask_client::Error) -> napi::Error {
    let message = match &e {
        vodtask_client::Error::Status { message, .. } => message.clone(),
        other => other.to_string(),
    };
    napi::Error::new(
        napi::Status::GenericFailure,
        format!("{}: {message}", e.code_name()),
    )
}

pub fn invalid(message: impl std::fmt::Display) -> napi::Error {
    coded("INVALID_ARGUMENT", message)
}

/// An error of the binding itself, with the gRPC code name it reports.
pub fn coded(code: &str, message: impl std::fmt::Display) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("{code}: {message}"))
}

// ---------------------------------------------------------------- enums

fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_string()
}

macro_rules! enum_conv {
    ($to:ident, $from:ident, $ty:ty, $prefix:literal) => {
        #[allow(dead_code)]
        pub fn $to(v: i32) -> String {
            match <$ty>::try_from(v) {
                Ok(e) => enum_name(e.as_str_name(), $prefix),
                Err(_) => v.to_string(),
            }
        }
        #[allow(dead_code)]
        pub fn $from(field: &str, s: &str) -> napi::Result<i32> {
            <$ty>::from_str_name(&format!("{}{s}", $prefix))
                .map(|e| e as i32)
                .ok_or_else(|| invalid(format!("{field}: unknown value {s:?}")))
        }
    };
}

enum_conv!(
    task_status_name,
    task_status_value,
    pb::TaskStatus,
    "TASK_STATUS_"
);
enum_conv!(task_type_name, task_type_value, pb::TaskType, "TASK_TYPE_");
enum_conv!(file_type_name, file_type_value, pb::FileType, "FILE_TYPE_");
enum_conv!(
    notify_mode_name,
    notify_mode_value,
    pb::NotifyMode,
    "NOTIFY_MODE_"
);
enum_conv!(
    position_type_name,
    position_type_value,
    pb::PositionType,
    "POSITION_TYPE_"
);
enum_conv!(
    subtask_status_name,
    subtask_status_value,
    pb::SubtaskStatus,
    "SUBTASK_STATUS_"
);
enum_conv!(
    source_type_name,
    source_type_value,
    pb::SourceType,
    "SOURCE_TYPE_"
);
enum_conv!(
    handle_status_name,
    handle_status_value,
    pb::HandleStatus,
    "HANDLE_STATUS_"
);
enum_conv!(
    delivery_mode_name,
    delivery_mode_value,
    pb::DeliveryMode,
    "DELIVERY_MODE_"
);
enum_conv!(sort_by_name, sort_by_value, pb::TaskSortBy, "TASK_SORT_BY_");
enum_conv!(
    sort_order_name,
    sort_order_value,
    pb::SortOrder,
    "SORT_ORDER_"
);

fn time(t: Option<pb_time::Timestamp>) -> Option<String> {
    t.map(|t| t.to_string())
}

mod pb_time {
    pub use prost_types::Timestamp;
}

fn parse_time(field: &str, s: &str) -> napi::Result<pb_time::Timestamp> {
    s.parse()
        .map_err(|e| invalid(format!("{field}: not an RFC 3339 time ({e}): {s:?}")))
}

// ---------------------------------------------------------------- specs

#[napi(object)]
#[derive(Clone)]
pub struct TranscodeSpec {
    pub file_id: String,
    pub definitions: Vec<i32>,
}

#[napi(object)]
#[derive(Clone)]
pub struct SnapshotByTimeOffsetSpec {
    pub file_id: String,
    pub definition: i32,
    pub time_offsets_ms: Vec<i64>,
}

#[napi(object)]
#[derive(Clone)]
pub struct ConcatSpec {
    pub file_ids: Vec<String>,
    /// 'MP4' and/or 'M3U8'.
    pub output_types: Vec<String>,
}

#[napi(object)]
#[derive(Clone)]
pub struct ClipSpec {
    pub file_id: String,
    /// Seconds.
    pub start_time_offset: f64,
    /// Seconds; past the end means "to the end".
    pub end_time_offset: f64,
}

#[napi(object)]
#[derive(Clone)]
pub struct ImageSpritesSpec {
    pub file_id: String,
    pub definition: i32,
}

#[napi(object)]
#[derive(Clone)]
pub struct PullUploadSpec {
    pub media_url: String,
    pub file_name: Option<String>,
    pub source_context: Option<String>,
    /// 1..86400; unset means 3600.
    pub timeout_seconds: Option<i32>,
    pub procedure: Option<ProcedurePlan>,
}

#[napi(object)]
#[derive(Clone)]
pub struct DeleteMediaSpec {
    pub file_ids: Vec<String>,
}

#[napi(object)]
#[derive(Clone)]
pub struct ProcedureSpec {
    pub file_id: String,
    pub subtasks: Vec<SubtaskSpec>,
    /// 'FINISH' (default), 'CHANGE' or 'NONE'.
    pub notify_mode: Option<String>,
}

/// A procedure without its file: what an upload or a pull starts on the
/// file it creates.
#[napi(object)]
#[derive(Clone)]
pub struct ProcedurePlan {
    pub subtasks: Vec<SubtaskSpec>,
    pub notify_mode: Option<String>,
}

#[napi(object)]
#[derive(Clone)]
pub struct DefinitionSubtask {
    pub definition: i32,
}

#[napi(object)]
#[derive(Clone)]
pub struct SnapshotByTimeOffsetSubtask {
    pub definition: i32,
    pub time_offsets_ms: Vec<i64>,
}

#[napi(object)]
#[derive(Clone)]
pub struct CoverBySnapshotSubtask {
    pub definition: i32,
    /// 'TIME' (default, seconds) or 'PERCENT'.
    pub position_type: Option<String>,
    pub position: f64,
}

/// Exactly one field is set.
#[napi(object)]
#[derive(Clone)]
pub struct SubtaskSpec {
    pub transcode: Option<DefinitionSubtask>,
    pub snapshot_by_time_offset: Option<SnapshotByTimeOffsetSubtask>,
    pub image_sprites: Option<DefinitionSubtask>,
    pub cover_by_snapshot: Option<CoverBySnapshotSubtask>,
}

/// What a task does: exactly one field is set.
#[napi(object)]
#[derive(Clone)]
pub struct TaskSpec {
    pub transcode: Option<TranscodeSpec>,
    pub snapshot_by_time_offset: Option<SnapshotByTimeOffsetSpec>,
    pub concat: Option<ConcatSpec>,
    pub clip: Option<ClipSpec>,
    pub image_sprites: Option<ImageSpritesSpec>,
    pub pull_upload: Option<PullUploadSpec>,
    pub delete_media: Option<DeleteMediaSpec>,
    pub procedure: Option<ProcedureSpec>,
}

fn exactly_one<T>(field: &str, kinds: Vec<Option<T>>) -> napi::Result<T> {
    let mut set = kinds.into_iter().flatten();
    match (set.next(), set.next()) {
        (Some(kind), None) => Ok(kind),
        (None, _) => Err(invalid(format!("{field}: no kind is set"))),
        (Some(_), Some(_)) => Err(invalid(format!("{field}: more than one kind is set"))),
    }
}

fn notify_mode(field: &str, mode: Option<&str>) -> napi::Result<i32> {
    mode.map_or(Ok(0), |m| notify_mode_value(field, m))
}

pub fn subtask_to_pb(field: &str, s: SubtaskSpec) -> napi::Result<pb::SubtaskSpec> {
    use pb::subtask_spec::Kind;
    let kind = exactly_one(
        field,
        vec![
            s.transcode.map(|t| {
                napi::Result::Ok(Kind::Transcode(pb::TranscodeSubtask {
                    definition: t.definition,
                }))
            }),
            s.snapshot_by_time_offset.map(|t| {
                napi::Result::Ok(Kind::SnapshotByTimeOffset(
                    pb::SnapshotByTimeOffsetSubtask {
                        definition: t.definition,
                        time_offsets_ms: t.time_offsets_ms,
                    },
                ))
            }),
            s.image_sprites.map(|t| {
                napi::Result::Ok(Kind::ImageSprites(pb::ImageSpritesSubtask {
                    definition: t.definition,
                }))
            }),
            s.cover_by_snapshot.map(|t| {
                napi::Result::Ok(Kind::CoverBySnapshot(pb::CoverBySnapshotSubtask {
                    definition: t.definition,
                    position_type: match t.position_type.as_deref() {
                        Some(p) => position_type_value(&format!("{field}.positionType"), p)?,
                        None => 0,
                    },
                    position: t.position,
                }))
            }),
        ],
    )??;
    Ok(pb::SubtaskSpec { kind: Some(kind) })
}

fn subtasks_to_pb(field: &str, subtasks: Vec<SubtaskSpec>) -> napi::Result<Vec<pb::SubtaskSpec>> {
    subtasks
        .into_iter()
        .enumerate()
        .map(|(i, s)| subtask_to_pb(&format!("{field}[{i}]"), s))
        .collect()
}

pub fn plan_to_pb(field: &str, p: ProcedurePlan) -> napi::Result<pb::ProcedurePlan> {
    Ok(pb::ProcedurePlan {
        subtasks: subtasks_to_pb(&format!("{field}.subtasks"), p.subtasks)?,
        notify_mode: notify_mode(&format!("{field}.notifyMode"), p.notify_mode.as_deref())?,
    })
}

pub fn spec_to_pb(s: TaskSpec) -> napi::Result<pb::TaskSpec> {
    use pb::task_spec::Kind;
    let kind = exactly_one(
        "spec",
        vec![
            s.transcode.map(|t| {
                napi::Result::Ok(Kind::Transcode(pb::TranscodeSpec {
                    file_id: t.file_id,
                    definitions: t.definitions,
                }))
            }),
            s.snapshot_by_time_offset.map(|t| {
                napi::Result::Ok(Kind::SnapshotByTimeOffset(pb::SnapshotByTimeOffsetSpec {
                    file_id: t.file_id,
                    definition: t.definition,
                    time_offsets_ms: t.time_offsets_ms,
                }))
            }),
            s.concat.map(|t| {
                napi::Result::Ok(Kind::Concat(pb::ConcatSpec {
                    file_ids: t.file_ids,
                    output_types: t
                        .output_types
                        .iter()
                        .enumerate()
                        .map(|(i, o)| file_type_value(&format!("spec.concat.outputTypes[{i}]"), o))
                        .collect::<napi::Result<_>>()?,
                }))
            }),
            s.clip.map(|t| {
                napi::Result::Ok(Kind::Clip(pb::ClipSpec {
                    file_id: t.file_id,
                    start_time_offset: t.start_time_offset,
                    end_time_offset: t.end_time_offset,
                }))
            }),
            s.image_sprites.map(|t| {
                napi::Result::Ok(Kind::ImageSprites(pb::ImageSpritesSpec {
                    file_id: t.file_id,
                    definition: t.definition,
                }))
            }),
            s.pull_upload.map(|t| {
                napi::Result::Ok(Kind::PullUpload(pb::PullUploadSpec {
                    media_url: t.media_url,
                    file_name: t.file_name.unwrap_or_default(),
                    source_context: t.source_context.unwrap_or_default(),
                    timeout_seconds: t.timeout_seconds.unwrap_or(0),
                    procedure: t
                        .procedure
                        .map(|p| plan_to_pb("spec.pullUpload.procedure", p))
                        .transpose()?,
                }))
            }),
            s.delete_media.map(|t| {
                napi::Result::Ok(Kind::DeleteMedia(pb::DeleteMediaSpec {
                    file_ids: t.file_ids,
                }))
            }),
            s.procedure.map(|t| {
                napi::Result::Ok(Kind::Procedure(pb::ProcedureSpec {
                    file_id: t.file_id,
                    subtasks: subtasks_to_pb("spec.procedure.subtasks", t.subtasks)?,
                    notify_mode: notify_mode(
                        "spec.procedure.notifyMode",
                        t.notify_mode.as_deref(),
                    )?,
                }))
            }),
        ],
    )??;
    Ok(pb::TaskSpec { kind: Some(kind) })
}

fn subtask_from_pb(s: pb::SubtaskSpec) -> SubtaskSpec {
    use pb::subtask_spec::Kind;
    let mut out = SubtaskSpec {
        transcode: None,
        snapshot_by_time_offset: None,
        image_sprites: None,
        cover_by_snapshot: None,
    };
    match s.kind {
        Some(Kind::Transcode(t)) => {
            out.transcode = Some(DefinitionSubtask {
                definition: t.definition,
            })
        }
        Some(Kind::SnapshotByTimeOffset(t)) => {
            out.snapshot_by_time_offset = Some(SnapshotByTimeOffsetSubtask {
                definition: t.definition,
                time_offsets_ms: t.time_offsets_ms,
            })
        }
        Some(Kind::ImageSprites(t)) => {
            out.image_sprites = Some(DefinitionSubtask {
                definition: t.definition,
            })
        }
        Some(Kind::CoverBySnapshot(t)) => {
            out.cover_by_snapshot = Some(CoverBySnapshotSubtask {
                definition: t.definition,
                position_type: Some(position_type_name(t.position_type)),
                position: t.position,
            })
        }
        None => {}
    }
    out
}

fn plan_from_pb(p: pb::ProcedurePlan) -> ProcedurePlan {
    ProcedurePlan {
        subtasks: p.subtasks.into_iter().map(subtask_from_pb).collect(),
        notify_mode: Some(notify_mode_name(p.notify_mode)),
    }
}

fn spec_from_pb(s: pb::TaskSpec) -> TaskSpec {
    use pb::task_spec::Kind;
    let mut out = TaskSpec {
        transcode: None,
        snapshot_by_time_offset: None,
        concat: None,
        clip: None,
        image_sprites: None,
        pull_upload: None,
        delete_media: None,
        procedure: None,
    };
    match s.kind {
        Some(Kind::Transcode(t)) => {
            out.transcode = Some(TranscodeSpec {
                file_id: t.file_id,
                definitions: t.definitions,
            })
        }
        Some(Kind::SnapshotByTimeOffset(t)) => {
            out.snapshot_by_time_offset = Some(SnapshotByTimeOffsetSpec {
                file_id: t.file_id,
                definition: t.definition,
                time_offsets_ms: t.time_offsets_ms,
            })
        }
        Some(Kind::Concat(t)) => {
            out.concat = Some(ConcatSpec {
                file_ids: t.file_ids,
                output_types: t.output_types.into_iter().map(file_type_name).collect(),
            })
        }
        Some(Kind::Clip(t)) => {
            out.clip = Some(ClipSpec {
                file_id: t.file_id,
                start_time_offset: t.start_time_offset,
                end_time_offset: t.end_time_offset,
            })
        }
        Some(Kind::ImageSprites(t)) => {
            out.image_sprites = Some(ImageSpritesSpec {
                file_id: t.file_id,
                definition: t.definition,
            })
        }
        Some(Kind::PullUpload(t)) => {
            out.pull_upload = Some(PullUploadSpec {
                media_url: t.media_url,
                file_name: Some(t.file_name),
                source_context: Some(t.source_context),
                timeout_seconds: Some(t.timeout_seconds),
                procedure: t.procedure.map(plan_from_pb),
            })
        }
        Some(Kind::DeleteMedia(t)) => {
            out.delete_media = Some(DeleteMediaSpec {
                file_ids: t.file_ids,
            })
        }
        Some(Kind::Procedure(t)) => {
            out.procedure = Some(ProcedureSpec {
                file_id: t.file_id,
                subtasks: t.subtasks.into_iter().map(subtask_from_pb).collect(),
                notify_mode: Some(notify_mode_name(t.notify_mode)),
            })
        }
        None => {}
    }
    out
}

// ---------------------------------------------------------------- outputs

#[napi(object)]
pub struct OutputFile {
    /// 'MP4' or 'M3U8'.
    pub file_type: String,
    pub file_id: String,
    pub url: String,
    pub duration_seconds: f64,
    pub size: i64,
}

#[napi(object)]
pub struct PlayItem {
    pub definition: i32,
    pub file_id: String,
    pub url: String,
    /// Video bits per second.
    pub vbitrate: i64,
    pub vwidth: i32,
    pub vheight: i32,
    pub duration_seconds: f64,
    pub size: i64,
}

#[napi(object)]
pub struct SnapshotPicture {
    pub time_offset_ms: i64,
    /// 0 = taken.
    pub status: i32,
    pub message: String,
    pub file_id: String,
    pub url: String,
}

#[napi(object)]
pub struct TranscodeOutput {
    pub play_set: Vec<PlayItem>,
}

#[napi(object)]
pub struct SnapshotByTimeOffsetOutput {
    pub pictures: Vec<SnapshotPicture>,
}

#[napi(object)]
pub struct ConcatOutput {
    pub files: Vec<OutputFile>,
}

#[napi(object)]
pub struct ClipOutput {
    pub file: Option<OutputFile>,
}

#[napi(object)]
pub struct ImageSpritesOutput {
    pub file_id: String,
    pub definition: i32,
    pub total_count: i32,
    pub image_urls: Vec<String>,
    pub web_vtt_url: String,
}

#[napi(object)]
pub struct PullUploadOutput {
    pub file_id: String,
    pub file_url: String,
    pub size: i64,
    pub procedure_task_id: String,
}

#[napi(object)]
pub struct DeleteMediaOutput {
    pub deleted_file_ids: Vec<String>,
}

#[napi(object)]
pub struct CoverOutput {
    pub file_id: String,
    pub url: String,
}

#[napi(object)]
pub struct SubtaskOutput {
    pub transcode: Option<PlayItem>,
    pub snapshot_by_time_offset: Option<SnapshotByTimeOffsetOutput>,
    pub image_sprites: Option<ImageSpritesOutput>,
    pub cover_by_snapshot: Option<CoverOutput>,
}

#[napi(object)]
pub struct Subtask {
    pub input: Option<SubtaskSpec>,
    /// 'WAITING', 'PROCESSING', 'SUCCESS' or 'FAIL'.
    pub status: String,
    pub err_code: i32,
    pub message: String,
    pub progress: i32,
    pub begin_time: Option<String>,
    pub finish_time: Option<String>,
    pub output: Option<SubtaskOutput>,
}

#[napi(object)]
pub struct ProcedureOutput {
    pub subtasks: Vec<Subtask>,
}

/// A task's result: the field of its type is set.
#[napi(object)]
pub struct TaskOutput {
    pub transcode: Option<TranscodeOutput>,
    pub snapshot_by_time_offset: Option<SnapshotByTimeOffsetOutput>,
    pub concat: Option<ConcatOutput>,
    pub clip: Option<ClipOutput>,
    pub image_sprites: Option<ImageSpritesOutput>,
    pub pull_upload: Option<PullUploadOutput>,
    pub delete_media: Option<DeleteMediaOutput>,
    pub procedure: Option<ProcedureOutput>,
}

fn output_file(f: pb::OutputFile) -> OutputFile {
    OutputFile {
        file_type: file_type_name(f.file_type),
        file_id: f.file_id,
        url: f.url,
        duration_seconds: f.duration_seconds,
        size: f.size,
    }
}

fn play_item(p: pb::PlayItem) -> PlayItem {
    PlayItem {
        definition: p.definition,
        file_id: p.file_id,
        url: p.url,
        vbitrate: p.vbitrate,
        vwidth: p.vwidth,
        vheight: p.vheight,
        duration_seconds: p.duration_seconds,
        size: p.size,
    }
}

fn snapshots(s: pb::SnapshotByTimeOffsetOutput) -> SnapshotByTimeOffsetOutput {
    SnapshotByTimeOffsetOutput {
        pictures: s
            .pictures
            .into_iter()
            .map(|p| SnapshotPicture {
                time_offset_ms: p.time_offset_ms,
                status: p.status,
                message: p.message,
                file_id: p.file_id,
                url: p.url,
            })
            .collect(),
    }
}

fn sprites(s: pb::ImageSpritesOutput) -> ImageSpritesOutput {
    ImageSpritesOutput {
        file_id: s.file_id,
        definition: s.definition,
        total_count: s.total_count,
        image_urls: s.image_urls,
        web_vtt_url: s.web_vtt_url,
    }
}

fn subtask(s: pb::Subtask) -> Subtask {
    use pb::subtask_output::Kind;
    Subtask {
        input: s.input.map(subtask_from_pb),
        status: subtask_status_name(s.status),
        err_code: s.err_code,
        message: s.message,
        progress: s.progress,
        begin_time: time(s.begin_time),
        finish_time: time(s.finish_time),
        output: s.output.map(|o| {
            let mut out = SubtaskOutput {
                transcode: None,
                snapshot_by_time_offset: None,
                image_sprites: None,
                cover_by_snapshot: None,
            };
            match o.kind {
                Some(Kind::Transcode(p)) => out.transcode = Some(play_item(p)),
                Some(Kind::SnapshotByTimeOffset(s)) => {
                    out.snapshot_by_time_offset = Some(snapshots(s))
                }
                Some(Kind::ImageSprites(s)) => out.image_sprites = Some(sprites(s)),
                Some(Kind::CoverBySnapshot(c)) => {
                    out.cover_by_snapshot = Some(CoverOutput {
                        file_id: c.file_id,
                        url: c.url,
                    })
                }
                None => {}
            }
            out
        }),
    }
}

fn output_from_pb(o: pb::TaskOutput) -> TaskOutput {
    use pb::task_output::Kind;
    let mut out = TaskOutput {
        transcode: None,
        snapshot_by_time_offset: None,
        concat: None,
        clip: None,
        image_sprites: None,
        pull_upload: None,
        delete_media: None,
        procedure: None,
    };
    match o.kind {
        Some(Kind::Transcode(t)) => {
            out.transcode = Some(TranscodeOutput {
                play_set: t.play_set.into_iter().map(play_item).collect(),
            })
        }
        Some(Kind::SnapshotByTimeOffset(s)) => out.snapshot_by_time_offset = Some(snapshots(s)),
        Some(Kind::Concat(c)) => {
            out.concat = Some(ConcatOutput {
                files: c.files.into_iter().map(output_file).collect(),
            })
        }
        Some(Kind::Clip(c)) => {
            out.clip = Some(ClipOutput {
                file: c.file.map(output_file),
            })
        }
        Some(Kind::ImageSprites(s)) => out.image_sprites = Some(sprites(s)),
        Some(Kind::PullUpload(p)) => {
            out.pull_upload = Some(PullUploadOutput {
                file_id: p.file_id,
                file_url: p.file_url,
                size: p.size,
                procedure_task_id: p.procedure_task_id,
            })
        }
        Some(Kind::DeleteMedia(d)) => {
            out.delete_media = Some(DeleteMediaOutput {
                deleted_file_ids: d.deleted_file_ids,
            })
        }
        Some(Kind::Procedure(p)) => {
            out.procedure = Some(ProcedureOutput {
                subtasks: p.subtasks.into_iter().map(subtask).collect(),
            })
        }
        None => {}
    }
    out
}

// ---------------------------------------------------------------- tasks

#[napi(object)]
pub struct TaskAttempt {
    pub attempt: i32,
    pub status: String,
    pub err_code: i32,
    pub message: String,
    pub begin_process_time: Option<String>,
    pub finish_time: Option<String>,
    pub output: Option<TaskOutput>,
}

#[napi(object)]
pub struct Task {
    pub task_id: String,
    /// 'TRANSCODE', 'SNAPSHOT_BY_TIME_OFFSET', 'CONCAT', 'CLIP',
    /// 'IMAGE_SPRITES', 'PULL_UPLOAD', 'DELETE_MEDIA' or 'PROCEDURE'.
    pub task_type: String,
    /// 'WAITING', 'PROCESSING', 'FINISH' or 'ABORTED'.
    pub status: String,
    /// 0 = success (see docs/api.md, error codes).
    pub err_code: i32,
    pub message: String,
    /// 0..100.
    pub progress: i32,
    pub attempt: i32,
    /// RFC 3339.
    pub create_time: Option<String>,
    pub begin_process_time: Option<String>,
    pub finish_time: Option<String>,
    pub priority: i32,
    pub session_id: String,
    pub session_context: String,
    pub file_id: String,
    pub input: Option<TaskSpec>,
    pub output: Option<TaskOutput>,
    pub cancel_requested: bool,
    pub previous_attempts: Vec<TaskAttempt>,
}

pub fn task(t: pb::Task) -> Task {
    Task {
        task_id: t.task_id,
        task_type: task_type_name(t.task_type),
        status: task_status_name(t.status),
        err_code: t.err_code,
        message: t.message,
        progress: t.progress,
        attempt: t.attempt,
        create_time: time(t.create_time),
        begin_process_time: time(t.begin_process_time),
        finish_time: time(t.finish_time),
        priority: t.priority,
        session_id: t.session_id,
        session_context: t.session_context,
        file_id: t.file_id,
        input: t.input.map(spec_from_pb),
        output: t.output.map(output_from_pb),
        cancel_requested: t.cancel_requested,
        previous_attempts: t
            .previous_attempts
            .into_iter()
            .map(|a| TaskAttempt {
                attempt: a.attempt,
                status: task_status_name(a.status),
                err_code: a.err_code,
                message: a.message,
                begin_process_time: time(a.begin_process_time),
                finish_time: time(a.finish_time),
                output: a.output.map(output_from_pb),
            })
            .collect(),
    }
}

#[napi(object)]
pub struct CreateTaskOptions {
    /// -10..10, higher first.
    pub priority: Option<i32>,
    pub session_id: Option<String>,
    pub session_context: Option<String>,
}

/// A half-open range `after <= t < before`, RFC 3339 strings (the JS layer
/// also takes `Date`s).
#[napi(object)]
pub struct TimeRange {
    pub after: Option<String>,
    pub before: Option<String>,
}

fn range_to_pb(field: &str, r: TimeRange) -> napi::Result<pb::TimeRange> {
    Ok(pb::TimeRange {
        after: r
            .after
            .map(|s| parse_time(&format!("{field}.after"), &s))
            .transpose()?,
        before: r
            .before
            .map(|s| parse_time(&format!("{field}.before"), &s))
            .transpose()?,
    })
}

fn range_from_pb(r: pb::TimeRange) -> TimeRange {
    TimeRange {
        after: time(r.after),
        before: time(r.before),
    }
}

#[napi(object)]
pub struct ListTasksOptions {
    pub status: Option<String>,
    pub task_type: Option<String>,
    pub file_id: Option<String>,
    pub create_time: Option<TimeRange>,
    pub finish_time: Option<TimeRange>,
    /// 'CREATE_TIME' (default) or 'FINISH_TIME'.
    pub sort_by: Option<String>,
    /// 'DESC' (default) or 'ASC'.
    pub order: Option<String>,
    /// 1..100; unset means 10.
    pub limit: Option<i32>,
    pub scroll_token: Option<String>,
}

pub fn list_request(o: ListTasksOptions) -> napi::Result<pb::ListTasksRequest> {
    Ok(pb::ListTasksRequest {
        status: o
            .status
            .map(|s| task_status_value("status", &s))
            .transpose()?
            .unwrap_or(0),
        task_type: o
            .task_type
            .map(|s| task_type_value("taskType", &s))
            .transpose()?
            .unwrap_or(0),
        file_id: o.file_id.unwrap_or_default(),
        create_time: o
            .create_time
            .map(|r| range_to_pb("createTime", r))
            .transpose()?,
        finish_time: o
            .finish_time
            .map(|r| range_to_pb("finishTime", r))
            .transpose()?,
        sort_by: o
            .sort_by
            .map(|s| sort_by_value("sortBy", &s))
            .transpose()?
            .unwrap_or(0),
        order: o
            .order
            .map(|s| sort_order_value("order", &s))
            .transpose()?
            .unwrap_or(0),
        limit: o.limit.unwrap_or(0),
        scroll_token: o.scroll_token.unwrap_or_default(),
    })
}

#[napi(object)]
pub struct TaskList {
    pub tasks: Vec<Task>,
    /// Empty when there are no more tasks.
    pub scroll_token: String,
}

pub fn task_list(r: pb::ListTasksResponse) -> TaskList {
    TaskList {
        tasks: r.tasks.into_iter().map(task).collect(),
        scroll_token: r.scroll_token,
    }
}

#[napi(object)]
pub struct TaskOverview {
    pub total: i64,
    /// Counts by status name ('WAITING', 'FINISH', ...).
    pub by_status: HashMap<String, i64>,
    /// Counts by task type name ('TRANSCODE', ...).
    pub by_type: HashMap<String, i64>,
    pub queue_depth: i64,
    pub running: i64,
    pub counted_create_time: Option<TimeRange>,
}

pub fn overview_request(range: Option<TimeRange>) -> napi::Result<pb::GetTaskOverviewRequest> {
    Ok(pb::GetTaskOverviewRequest {
        create_time: range.map(|r| range_to_pb("createTime", r)).transpose()?,
    })
}

pub fn overview(r: pb::GetTaskOverviewResponse) -> TaskOverview {
    TaskOverview {
        total: r.total,
        by_status: r
            .by_status
            .into_iter()
            .map(|c| (task_status_name(c.status), c.count))
            .collect(),
        by_type: r
            .by_type
            .into_iter()
            .map(|c| (task_type_name(c.task_type), c.count))
            .collect(),
        queue_depth: r.queue_depth,
        running: r.running,
        counted_create_time: r.counted_create_time.map(range_from_pb),
    }
}

// ---------------------------------------------------------------- media

#[napi(object)]
pub struct UploadOptions {
    /// Default: the path's last component.
    pub file_name: Option<String>,
    pub source_context: Option<String>,
    pub procedure: Option<ProcedurePlan>,
}

#[napi(object)]
pub struct UploadResult {
    pub file_id: String,
    pub file_url: String,
    /// Set when the upload asked for a procedure.
    pub procedure_task_id: String,
}

pub fn upload_result(r: pb::UploadMediaResponse) -> UploadResult {
    UploadResult {
        file_id: r.file_id,
        file_url: r.file_url,
        procedure_task_id: r.procedure_task_id,
    }
}

#[napi(object)]
pub struct MediaStream {
    pub index: i32,
    /// 'video', 'audio', ...
    pub codec_type: String,
    pub codec: String,
    pub bitrate: i64,
    pub width: i32,
    pub height: i32,
    pub fps: f64,
    pub sample_rate: i32,
    pub channels: i32,
}

#[napi(object)]
pub struct MediaMetadata {
    pub container: String,
    pub duration_seconds: f64,
    pub width: i32,
    pub height: i32,
    pub bitrate: i64,
    pub streams: Vec<MediaStream>,
}

#[napi(object)]
pub struct MediaInfo {
    pub file_id: String,
    pub file_name: String,
    pub file_url: String,
    pub size: i64,
    pub md5: String,
    pub create_time: Option<String>,
    /// 'CLIENT_UPLOAD', 'TASK_OUTPUT' or 'PULL'.
    pub source_type: String,
    pub source_context: String,
    /// Unset when ffprobe could not read the file (see probeError).
    pub metadata: Option<MediaMetadata>,
    pub probe_error: String,
    pub source_task_id: String,
}

pub fn media_info(m: pb::MediaInfo) -> MediaInfo {
    MediaInfo {
        file_id: m.file_id,
        file_name: m.file_name,
        file_url: m.file_url,
        size: m.size,
        md5: m.md5,
        create_time: time(m.create_time),
        source_type: source_type_name(m.source_type),
        source_context: m.source_context,
        metadata: m.metadata.map(|d| MediaMetadata {
            container: d.container,
            duration_seconds: d.duration_seconds,
            width: d.width,
            height: d.height,
            bitrate: d.bitrate,
            streams: d
                .streams
                .into_iter()
                .map(|s| MediaStream {
                    index: s.index,
                    codec_type: s.codec_type,
                    codec: s.codec,
                    bitrate: s.bitrate,
                    width: s.width,
                    height: s.height,
                    fps: s.fps,
                    sample_rate: s.sample_rate,
                    channels: s.channels,
                })
                .collect(),
        }),
        probe_error: m.probe_error,
        source_task_id: m.source_task_id,
    }
}

// ---------------------------------------------------------------- events

/// An event as index.js receives it: the JS `Event` is this plus `data`,
/// which index.js parses from `content_json` with JSON.parse. V8 parses an
/// envelope faster than serde_json plus building the object property by
/// property through N-API would, and on the JS thread rather than a tokio
/// worker (docs/benchmarks.md, consumers).
#[napi(object)]
pub struct RawEvent {
    /// The same on every redelivery: deduplicate by it.
    pub event_id: String,
    pub event_type: String,
    /// Empty for events not about a task (NewFileUpload).
    pub task_id: String,
    pub event_time: Option<String>,
    pub task_sequence: i64,
    /// The envelope as sent, byte-identical in every delivery path.
    pub content_json: String,
    pub delivery_count: i32,
}

pub fn raw_event(e: pb::Event) -> RawEvent {
    RawEvent {
        event_id: e.event_id,
        event_type: e.event_type,
        task_id: e.task_id,
        event_time: time(e.event_time),
        task_sequence: e.task_sequence,
        content_json: e.content_json,
        delivery_count: e.delivery_count,
    }
}

#[napi(object)]
pub struct RawPulledEvent {
    /// Valid for this delivery only.
    pub msg_handle: String,
    pub event: RawEvent,
}

pub fn pulled(d: pb::EventDelivery) -> Option<RawPulledEvent> {
    d.event.map(|e| RawPulledEvent {
        msg_handle: d.msg_handle,
        event: raw_event(e),
    })
}

#[napi(object)]
pub struct HandleResult {
    pub msg_handle: String,
    /// 'CONFIRMED', 'ALREADY_CONFIRMED', 'EXPIRED', 'UNKNOWN', 'EXTENDED' or
    /// 'NACKED'.
    pub status: String,
}

pub fn handle_results(r: Vec<pb::HandleResult>) -> Vec<HandleResult> {
    r.into_iter()
        .map(|h| HandleResult {
            msg_handle: h.msg_handle,
            status: handle_status_name(h.status),
        })
        .collect()
}

pub fn handle_status(s: pb::HandleStatus) -> String {
    handle_status_name(s as i32)
}

#[napi(object)]
pub struct EventsState {
    pub ready: i64,
    pub in_flight: i64,
    pub delayed: i64,
    pub dead_lettered: i64,
    pub oldest_unconfirmed_age_seconds: f64,
}

pub fn events_state(s: pb::DescribeEventsStateResponse) -> EventsState {
    EventsState {
        ready: s.ready,
        in_flight: s.in_flight,
        delayed: s.delayed,
        dead_lettered: s.dead_lettered,
        oldest_unconfirmed_age_seconds: s.oldest_unconfirmed_age_seconds,
    }
}

#[napi(object)]
pub struct EventConfig {
    /// 'PULL' or 'PUSH'.
    pub mode: String,
    pub notification_url: String,
    pub event_types: HashMap<String, bool>,
    pub visibility_timeout_seconds: i32,
    pub max_deliveries: i32,
    pub retention_seconds: i64,
    /// PUSH: the secret (whsec_…) callbacks are signed with.
    pub signing_secret: String,
    pub previous_secret_expire_time: Option<String>,
    pub callback_timeout_seconds: i32,
    pub retry_schedule_seconds: Vec<i64>,
    pub disable_after_seconds: i64,
    pub endpoint_disabled_time: Option<String>,
}

pub fn event_config(c: pb::EventConfig) -> EventConfig {
    EventConfig {
        mode: delivery_mode_name(c.mode),
        notification_url: c.notification_url,
        event_types: c.event_types.into_iter().collect(),
        visibility_timeout_seconds: c.visibility_timeout_seconds,
        max_deliveries: c.max_deliveries,
        retention_seconds: c.retention_seconds,
        signing_secret: c.signing_secret,
        previous_secret_expire_time: time(c.previous_secret_expire_time),
        callback_timeout_seconds: c.callback_timeout_seconds,
        retry_schedule_seconds: c.retry_schedule_seconds,
        disable_after_seconds: c.disable_after_seconds,
        endpoint_disabled_time: time(c.endpoint_disabled_time),
    }
}

/// Only the fields that are set change.
#[napi(object)]
pub struct EventConfigChanges {
    /// 'PULL' or 'PUSH'.
    pub mode: Option<String>,
    pub notification_url: Option<String>,
    pub event_types: Option<HashMap<String, bool>>,
    pub visibility_timeout_seconds: Option<i32>,
    pub max_deliveries: Option<i32>,
    pub retention_seconds: Option<i64>,
    pub callback_timeout_seconds: Option<i32>,
    pub retry_schedule_seconds: Option<Vec<i64>>,
    pub disable_after_seconds: Option<i64>,
    pub endpoint_enabled: Option<bool>,
}

pub fn config_request(c: EventConfigChanges) -> napi::Result<pb::ModifyEventConfigRequest> {
    Ok(pb::ModifyEventConfigRequest {
        mode: c
            .mode
            .map(|m| delivery_mode_value("mode", &m))
            .transpose()?
            .unwrap_or(0),
        notification_url: c.notification_url,
        event_types: c.event_types.unwrap_or_default().into_iter().collect(),
        visibility_timeout_seconds: c.visibility_timeout_seconds,
        max_deliveries: c.max_deliveries,
        retention_seconds: c.retention_seconds,
        callback_timeout_seconds: c.callback_timeout_seconds,
        retry_schedule_seconds: c.retry_schedule_seconds.unwrap_or_default(),
        disable_after_seconds: c.disable_after_seconds,
        endpoint_enabled: c.endpoint_enabled,
    })
}

#[napi(object)]
pub struct WebhookEvent {
    pub event_id: String,
    pub event_type: String,
    pub task_id: String,
    pub task_sequence: i64,
    /// The envelope's `data`.
    pub data: serde_json::Value,
    /// The body as received.
    pub content_json: String,
}

pub fn webhook_event(w: vodtask_client::WebhookEvent) -> WebhookEvent {
    WebhookEvent {
        event_id: w.event_id,
        event_type: w.event_type,
        task_id: w.task_id,
        task_sequence: w.task_sequence,
        data: w.data,
        content_json: w.content_json,
    }
}
