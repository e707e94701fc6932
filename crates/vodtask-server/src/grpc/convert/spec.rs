//! Task specs: the contract's `TaskSpec` to the core's and back. A rejected
//! value names its field as the contract spells it (`spec.concat.file_ids[1]`).

use tonic::Status;
use vodtask_core::ids::FileId;
use vodtask_core::task::procedure::{
    CoverPosition, NotifyMode, ProcedurePlan, ProcedureSpec, SubtaskSpec,
};
use vodtask_core::task::{
    ClipSpec, ConcatSpec, DEFAULT_PULL_TIMEOUT_SECONDS, DeleteSpec, FileType, PullSpec,
    SnapshotSpec, SpritesSpec, TaskSpec, TranscodeSpec,
};
use vodtask_proto::v1 as pb;

use super::file_id;
use crate::grpc::status::invalid;

pub(crate) fn spec(spec: Option<pb::TaskSpec>) -> Result<TaskSpec, Status> {
    use pb::task_spec::Kind;
    Ok(match spec.and_then(|s| s.kind) {
        Some(Kind::Transcode(t)) => TaskSpec::Transcode(TranscodeSpec {
            file_id: file_id("spec.transcode.file_id", &t.file_id)?,
            definitions: t.definitions,
        }),
        Some(Kind::SnapshotByTimeOffset(s)) => TaskSpec::SnapshotByTimeOffset(SnapshotSpec {
            file_id: file_id("spec.snapshot_by_time_offset.file_id", &s.file_id)?,
            definition: s.definition,
            time_offsets_ms: s.time_offsets_ms,
        }),
        Some(Kind::Concat(c)) => TaskSpec::Concat(ConcatSpec {
            file_ids: file_ids("spec.concat.file_ids", &c.file_ids)?,
            output_types: c
                .output_types
                .iter()
                .enumerate()
                .map(|(i, t)| file_type(&format!("spec.concat.output_types[{i}]"), *t))
                .collect::<Result<_, _>>()?,
        }),
        Some(Kind::Clip(c)) => TaskSpec::Clip(ClipSpec {
            file_id: file_id("spec.clip.file_id", &c.file_id)?,
            start_time_offset: c.start_time_offset,
            end_time_offset: c.end_time_offset,
        }),
        Some(Kind::ImageSprites(s)) => TaskSpec::ImageSprites(SpritesSpec {
            file_id: file_id("spec.image_sprites.file_id", &s.file_id)?,
            definition: s.definition,
        }),
        Some(Kind::PullUpload(p)) => TaskSpec::PullUpload(PullSpec {
            media_url: p.media_url,
            file_name: (!p.file_name.is_empty()).then_some(p.file_name),
            source_context: p.source_context,
            timeout_seconds: match p.timeout_seconds {
                0 => DEFAULT_PULL_TIMEOUT_SECONDS,
                n => u32::try_from(n).map_err(|_| {
                    invalid(
                        "spec.pull_upload.timeout_seconds",
                        "must be within 1..86400",
                    )
                })?,
            },
            procedure: p
                .procedure
                .map(|plan| procedure_plan("spec.pull_upload.procedure", plan))
                .transpose()?,
        }),
        Some(Kind::DeleteMedia(d)) => TaskSpec::DeleteMedia(DeleteSpec {
            file_ids: file_ids("spec.delete_media.file_ids", &d.file_ids)?,
        }),
        Some(Kind::Procedure(p)) => TaskSpec::Procedure(ProcedureSpec {
            file_id: file_id("spec.procedure.file_id", &p.file_id)?,
            plan: procedure_plan(
                "spec.procedure",
                pb::ProcedurePlan {
                    subtasks: p.subtasks,
                    notify_mode: p.notify_mode,
                },
            )?,
        }),
        None => {
            return Err(invalid(
                "spec",
                "must set one task type (transcode, snapshot_by_time_offset, concat, clip, \
                 image_sprites, pull_upload, delete_media, procedure)",
            ));
        }
    })
}

fn file_ids(field: &str, raw: &[String]) -> Result<Vec<FileId>, Status> {
    raw.iter()
        .enumerate()
        .map(|(i, f)| file_id(&format!("{field}[{i}]"), f))
        .collect()
}

fn file_type(field: &str, raw: i32) -> Result<FileType, Status> {
    match pb::FileType::try_from(raw) {
        Ok(pb::FileType::Mp4) => Ok(FileType::Mp4),
        Ok(pb::FileType::M3u8) => Ok(FileType::M3u8),
        _ => Err(invalid(field, format!("{raw} is not MP4 (1) or M3U8 (2)"))),
    }
}

pub(crate) fn file_type_pb(t: FileType) -> pb::FileType {
    match t {
        FileType::Mp4 => pb::FileType::Mp4,
        FileType::M3u8 => pb::FileType::M3u8,
    }
}

/// `prefix` is the message holding `subtasks` and `notify_mode`.
pub(crate) fn procedure_plan(prefix: &str, p: pb::ProcedurePlan) -> Result<ProcedurePlan, Status> {
    let notify_mode = match pb::NotifyMode::try_from(p.notify_mode) {
        Ok(pb::NotifyMode::Unspecified | pb::NotifyMode::Finish) => NotifyMode::Finish,
        Ok(pb::NotifyMode::Change) => NotifyMode::Change,
        Ok(pb::NotifyMode::None) => NotifyMode::Never,
        Err(_) => {
            return Err(invalid(
                &format!("{prefix}.notify_mode"),
                format!("{} is not FINISH, CHANGE or NONE", p.notify_mode),
            ));
        }
    };
    let subtasks = p
        .subtasks
        .into_iter()
        .enumerate()
        .map(|(i, s)| subtask(&format!("{prefix}.subtasks[{i}]"), s))
        .collect::<Result<_, _>>()?;
    Ok(ProcedurePlan {
        subtasks,
        notify_mode,
    })
}

fn subtask(field: &str, s: pb::SubtaskSpec) -> Result<SubtaskSpec, Status> {
    use pb::subtask_spec::Kind;
    Ok(match s.kind {
        Some(Kind::Transcode(t)) => SubtaskSpec::Transcode {
            definition: t.definition,
        },
        Some(Kind::SnapshotByTimeOffset(t)) => SubtaskSpec::SnapshotByTimeOffset {
            definition: t.definition,
            time_offsets_ms: t.time_offsets_ms,
        },
        Some(Kind::ImageSprites(t)) => SubtaskSpec::ImageSprites {
            definition: t.definition,
        },
        Some(Kind::CoverBySnapshot(c)) => SubtaskSpec::CoverBySnapshot {
            definition: c.definition,
            position: match pb::PositionType::try_from(c.position_type) {
                Ok(pb::PositionType::Unspecified | pb::PositionType::Time) => {
                    CoverPosition::Time(c.position)
                }
                Ok(pb::PositionType::Percent) => CoverPosition::Percent(c.position),
                Err(_) => {
                    return Err(invalid(
                        &format!("{field}.cover_by_snapshot.position_type"),
                        format!("{} is not TIME or PERCENT", c.position_type),
                    ));
                }
            },
        },
        None => {
            return Err(invalid(
                field,
                "must set one subtask type (transcode, snapshot_by_time_offset, image_sprites, \
                 cover_by_snapshot)",
            ));
        }
    })
}

pub(crate) fn subtask_to_pb(s: &SubtaskSpec) -> pb::SubtaskSpec {
    use pb::subtask_spec::Kind;
    let kind = match s {
        SubtaskSpec::Transcode { definition } => Kind::Transcode(pb::TranscodeSubtask {
            definition: *definition,
        }),
        SubtaskSpec::SnapshotByTimeOffset {
            definition,
            time_offsets_ms,
        } => Kind::SnapshotByTimeOffset(pb::SnapshotByTimeOffsetSubtask {
            definition: *definition,
            time_offsets_ms: time_offsets_ms.clone(),
        }),
        SubtaskSpec::ImageSprites { definition } => Kind::ImageSprites(pb::ImageSpritesSubtask {
            definition: *definition,
        }),
        SubtaskSpec::CoverBySnapshot {
            definition,
            position,
        } => {
            let (position_type, position) = match position {
                CoverPosition::Time(t) => (pb::PositionType::Time, *t),
                CoverPosition::Percent(p) => (pb::PositionType::Percent, *p),
            };
            Kind::CoverBySnapshot(pb::CoverBySnapshotSubtask {
                definition: *definition,
                position_type: position_type as i32,
                position,
            })
        }
    };
    pb::SubtaskSpec { kind: Some(kind) }
}

fn plan_to_pb(plan: &ProcedurePlan) -> pb::ProcedurePlan {
    pb::ProcedurePlan {
        subtasks: plan.subtasks.iter().map(subtask_to_pb).collect(),
        notify_mode: notify_to_pb(plan.notify_mode) as i32,
    }
}

fn notify_to_pb(mode: NotifyMode) -> pb::NotifyMode {
    match mode {
        NotifyMode::Finish => pb::NotifyMode::Finish,
        NotifyMode::Change => pb::NotifyMode::Change,
        NotifyMode::Never => pb::NotifyMode::None,
    }
}

pub(crate) fn spec_to_pb(spec: &TaskSpec) -> pb::TaskSpec {
    use pb::task_spec::Kind;
    let ids = |files: &[FileId]| files.iter().map(ToString::to_string).collect();
    let kind = match spec {
        TaskSpec::Transcode(t) => Kind::Transcode(pb::TranscodeSpec {
            file_id: t.file_id.to_string(),
            definitions: t.definitions.clone(),
        }),
        TaskSpec::SnapshotByTimeOffset(s) => {
            Kind::SnapshotByTimeOffset(pb::SnapshotByTimeOffsetSpec {
                file_id: s.file_id.to_string(),
                definition: s.definition,
                time_offsets_ms: s.time_offsets_ms.clone(),
            })
        }
        TaskSpec::Concat(c) => Kind::Concat(pb::ConcatSpec {
            file_ids: ids(&c.file_ids),
            output_types: c
                .output_types
                .iter()
                .map(|t| file_type_pb(*t) as i32)
                .collect(),
        }),
        TaskSpec::Clip(c) => Kind::Clip(pb::ClipSpec {
            file_id: c.file_id.to_string(),
            start_time_offset: c.start_time_offset,
            end_time_offset: c.end_time_offset,
        }),
        TaskSpec::ImageSprites(s) => Kind::ImageSprites(pb::ImageSpritesSpec {
            file_id: s.file_id.to_string(),
            definition: s.definition,
        }),
        TaskSpec::PullUpload(p) => Kind::PullUpload(pb::PullUploadSpec {
            media_url: p.media_url.clone(),
            file_name: p.file_name.clone().unwrap_or_default(),
            source_context: p.source_context.clone(),
            timeout_seconds: i32::try_from(p.timeout_seconds).unwrap_or(i32::MAX),
            procedure: p.procedure.as_ref().map(plan_to_pb),
        }),
        TaskSpec::DeleteMedia(d) => Kind::DeleteMedia(pb::DeleteMediaSpec {
            file_ids: ids(&d.file_ids),
        }),
        TaskSpec::Procedure(p) => Kind::Procedure(pb::ProcedureSpec {
            file_id: p.file_id.to_string(),
            subtasks: p.plan.subtasks.iter().map(subtask_to_pb).collect(),
            notify_mode: notify_to_pb(p.plan.notify_mode) as i32,
        }),
    };
    pb::TaskSpec { kind: Some(kind) }
}
