//! Task outputs: the core's `TaskOutput` as the contract's.

use vodtask_core::task::procedure::{SubtaskOutput, SubtaskState, SubtaskStatus};
use vodtask_core::task::{OutputFile, PlayItem, SnapshotPicture, SpriteSet, TaskOutput};
use vodtask_proto::v1 as pb;

use super::spec::{file_type_pb, subtask_to_pb};
use super::timestamp;

pub(crate) fn output_to_pb(output: &TaskOutput) -> pb::TaskOutput {
    use pb::task_output::Kind;
    let kind = match output {
        TaskOutput::Transcode { play_set } => Kind::Transcode(pb::TranscodeOutput {
            play_set: play_set.iter().map(play_item).collect(),
        }),
        TaskOutput::SnapshotByTimeOffset { pictures } => {
            Kind::SnapshotByTimeOffset(snapshot_output(pictures))
        }
        TaskOutput::Concat { files } => Kind::Concat(pb::ConcatOutput {
            files: files.iter().map(output_file).collect(),
        }),
        TaskOutput::Clip { file } => Kind::Clip(pb::ClipOutput {
            file: Some(output_file(file)),
        }),
        TaskOutput::ImageSprites(set) => Kind::ImageSprites(sprites(set)),
        TaskOutput::PullUpload {
            file_id,
            file_url,
            size,
            procedure_task_id,
        } => Kind::PullUpload(pb::PullUploadOutput {
            file_id: file_id.to_string(),
            file_url: file_url.clone(),
            size: *size as i64,
            procedure_task_id: procedure_task_id.clone().unwrap_or_default(),
        }),
        TaskOutput::DeleteMedia { deleted } => Kind::DeleteMedia(pb::DeleteMediaOutput {
            deleted_file_ids: deleted.iter().map(ToString::to_string).collect(),
        }),
        TaskOutput::Procedure { subtasks } => Kind::Procedure(pb::ProcedureOutput {
            subtasks: subtasks.iter().map(subtask).collect(),
        }),
    };
    pb::TaskOutput { kind: Some(kind) }
}

fn play_item(p: &PlayItem) -> pb::PlayItem {
    pb::PlayItem {
        definition: p.definition,
        file_id: p.file_id.to_string(),
        url: p.url.clone(),
        vbitrate: p.vbitrate,
        vwidth: p.vwidth as i32,
        vheight: p.vheight as i32,
        duration_seconds: p.duration_seconds,
        size: p.size as i64,
    }
}

fn snapshot_output(pictures: &[SnapshotPicture]) -> pb::SnapshotByTimeOffsetOutput {
    pb::SnapshotByTimeOffsetOutput {
        pictures: pictures
            .iter()
            .map(|p| pb::SnapshotPicture {
                time_offset_ms: p.time_offset_ms,
                status: p.status,
                message: p.message.clone(),
                file_id: p
                    .file_id
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                url: p.url.clone(),
            })
            .collect(),
    }
}

fn output_file(f: &OutputFile) -> pb::OutputFile {
    pb::OutputFile {
        file_type: file_type_pb(f.file_type) as i32,
        file_id: f.file_id.to_string(),
        url: f.url.clone(),
        duration_seconds: f.duration_seconds,
        size: f.size as i64,
    }
}

fn sprites(s: &SpriteSet) -> pb::ImageSpritesOutput {
    pb::ImageSpritesOutput {
        file_id: s.file_id.to_string(),
        definition: s.definition,
        total_count: s.total_count as i32,
        image_urls: s.image_urls.clone(),
        web_vtt_url: s.web_vtt_url.clone(),
    }
}

fn subtask(s: &SubtaskState) -> pb::Subtask {
    use pb::subtask_output::Kind;
    pb::Subtask {
        input: Some(subtask_to_pb(&s.spec)),
        status: match s.status {
            SubtaskStatus::Waiting => pb::SubtaskStatus::Waiting,
            SubtaskStatus::Processing => pb::SubtaskStatus::Processing,
            SubtaskStatus::Success => pb::SubtaskStatus::Success,
            SubtaskStatus::Fail => pb::SubtaskStatus::Fail,
        } as i32,
        err_code: s.err_code,
        message: s.message.clone(),
        progress: i32::from(s.progress),
        begin_time: s.begin_time.map(timestamp),
        finish_time: s.finish_time.map(timestamp),
        output: s.output.as_ref().map(|o| pb::SubtaskOutput {
            kind: Some(match o {
                SubtaskOutput::Transcode(p) => Kind::Transcode(play_item(p)),
                SubtaskOutput::SnapshotByTimeOffset { pictures } => {
                    Kind::SnapshotByTimeOffset(snapshot_output(pictures))
                }
                SubtaskOutput::ImageSprites(set) => Kind::ImageSprites(sprites(set)),
                SubtaskOutput::CoverBySnapshot { file_id, url } => {
                    Kind::CoverBySnapshot(pb::CoverOutput {
                        file_id: file_id.to_string(),
                        url: url.clone(),
                    })
                }
            }),
        }),
    }
}
