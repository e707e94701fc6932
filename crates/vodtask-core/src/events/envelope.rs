//! The event envelope, byte-identical in every delivery path:
//! `{"version":"4.0","eventType":…,"eventId":…,"eventTime":…,"taskSequence":…,"data":{…}}`
//! with the platform's camelCase data fields (see vod-model.md).

use serde_json::{Value, json};

use super::EventType;
use crate::media::MediaFile;
use crate::task::procedure::{CoverPosition, NotifyMode, SubtaskOutput, SubtaskSpec, SubtaskState};
use crate::task::{OutputFile, Task, TaskOutput, TaskSpec, TaskStatus, errcode};
use crate::time::Timestamp;

/// An event before the store gives it its id, time and sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub event_type: EventType,
    /// What orders events: the task id, or the file id for file events.
    pub order_key: String,
    pub task_id: Option<String>,
    pub data: Value,
}

impl Draft {
    /// The envelope as delivered. Field order is fixed by construction, so
    /// the stored text is what every consumer receives.
    pub fn seal(&self, event_id: &str, event_time: Timestamp, task_sequence: i64) -> String {
        let envelope = json!({
            "version": "4.0",
            "eventType": self.event_type.as_str(),
            "eventId": event_id,
            "eventTime": event_time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "taskSequence": task_sequence,
            "data": self.data,
        });
        envelope.to_string()
    }
}

/// The completion event of an ended task (FINISH, or ABORTED with
/// `errcode::ABORTED`); None for a procedure whose notify mode is NONE.
/// `source` is the task's file, when the library has it.
pub fn task_ended(task: &Task, source: Option<&MediaFile>) -> Option<Draft> {
    let status = match task.status {
        TaskStatus::Aborted => errcode::ABORTED,
        _ => task.err_code,
    };
    let message = if task.status == TaskStatus::Aborted && task.message.is_empty() {
        "cancelled".to_string()
    } else {
        task.message.clone()
    };
    let file_id = task.file_id().map_or("", |f| f.as_str());
    let mut data = json!({
        "vodTaskId": task.id.as_str(),
        "status": status,
        "message": message,
        "sessionContext": task.session_context,
    });
    let output = task.output.as_ref().filter(|_| status == 0);
    let event_type = match &task.spec {
        TaskSpec::Transcode(_) => {
            data["fileId"] = json!(file_id);
            data["fileName"] = json!(source.map(|m| m.file_name.as_str()).unwrap_or_default());
            data["duration"] = json!(
                source
                    .and_then(|m| m.metadata.as_ref().ok())
                    .map_or(0.0, |m| m.duration_seconds)
            );
            data["coverUrl"] = json!("");
            if let Some(TaskOutput::Transcode { play_set }) = output {
                data["playSet"] = play_set
                    .iter()
                    .map(|p| {
                        json!({
                            "url": p.url,
                            "definition": p.definition,
                            "vbitrate": p.vbitrate,
                            "vheight": p.vheight,
                            "vwidth": p.vwidth,
                        })
                    })
                    .collect();
            }
            EventType::TranscodeComplete
        }
        TaskSpec::SnapshotByTimeOffset(spec) => {
            data["fileId"] = json!(file_id);
            data["definition"] = json!(spec.definition);
            // Per-picture results are kept when some pictures failed.
            let pictures = match &task.output {
                Some(TaskOutput::SnapshotByTimeOffset { pictures }) => pictures
                    .iter()
                    .map(|p| json!({"timeOffset": p.time_offset_ms, "url": p.url, "status": p.status}))
                    .collect(),
                _ => Vec::new(),
            };
            data["picInfo"] = Value::Array(pictures);
            EventType::CreateSnapshotByTimeOffsetComplete
        }
        TaskSpec::Concat(spec) => {
            data["fileInfo"] = match output {
                Some(TaskOutput::Concat { files }) => {
                    files.iter().map(|f| output_file_info(f, 0, "")).collect()
                }
                _ => spec
                    .output_types
                    .iter()
                    .map(|t| failed_file_info(t.as_str(), status, &message))
                    .collect(),
            };
            EventType::ConcatComplete
        }
        TaskSpec::Clip(spec) => {
            data["srcFileId"] = json!(spec.file_id.as_str());
            data["fileInfo"] = match output {
                Some(TaskOutput::Clip { file }) => output_file_info(file, 0, ""),
                _ => failed_file_info("mp4", status, &message),
            };
            EventType::ClipComplete
        }
        TaskSpec::ImageSprites(spec) => {
            data["fileId"] = json!(file_id);
            data["definition"] = json!(spec.definition);
            let (count, urls, vtt) = match output {
                Some(TaskOutput::ImageSprites(set)) => (
                    set.total_count,
                    set.image_urls.clone(),
                    set.web_vtt_url.as_str(),
                ),
                _ => (0, Vec::new(), ""),
            };
            data["totalCount"] = json!(count);
            data["imageSpriteUrl"] = json!(urls);
            data["webVttUrl"] = json!(vtt);
            EventType::CreateImageSpriteComplete
        }
        TaskSpec::PullUpload(_) => {
            let (file_url, procedure) = match output {
                Some(TaskOutput::PullUpload {
                    file_url,
                    procedure_task_id,
                    ..
                }) => (file_url.as_str(), procedure_task_id.as_deref()),
                _ => ("", None),
            };
            data["fileId"] = json!(file_id);
            data["fileUrl"] = json!(file_url);
            data["procedureTaskId"] = json!(procedure.unwrap_or_default());
            EventType::PullComplete
        }
        TaskSpec::DeleteMedia(spec) => {
            // On failure the event still names the files asked for.
            let files: Vec<&str> = match output {
                Some(TaskOutput::DeleteMedia { deleted }) => {
                    deleted.iter().map(|f| f.as_str()).collect()
                }
                _ => spec.file_ids.iter().map(|f| f.as_str()).collect(),
            };
            data["fileInfo"] = files.iter().map(|f| json!({"fileId": f})).collect();
            EventType::FileDeleted
        }
        TaskSpec::Procedure(spec) => {
            if spec.plan.notify_mode == NotifyMode::Never {
                return None;
            }
            return Some(procedure_state(task, source, "FINISH", status, &message));
        }
    };
    Some(Draft {
        event_type,
        order_key: task.id.as_str().to_string(),
        task_id: Some(task.id.as_str().to_string()),
        data,
    })
}

/// ProcedureStateChanged: `state` is PROCESSING (a subtask changed, in
/// CHANGE mode) or FINISH. The subtasks are the task's output as it stands.
pub fn procedure_state(
    task: &Task,
    source: Option<&MediaFile>,
    state: &str,
    err_code: i32,
    message: &str,
) -> Draft {
    let subtasks = match &task.output {
        Some(TaskOutput::Procedure { subtasks }) => subtasks.as_slice(),
        _ => &[],
    };
    let data = json!({
        "vodTaskId": task.id.as_str(),
        "status": state,
        "errCode": err_code,
        "message": message,
        "fileId": task.file_id().map_or("", |f| f.as_str()),
        "sessionContext": task.session_context,
        "metaData": source.map_or(Value::Null, meta_data),
        "processTaskList": subtasks.iter().map(subtask_json).collect::<Vec<_>>(),
    });
    Draft {
        event_type: EventType::ProcedureStateChanged,
        order_key: task.id.as_str().to_string(),
        task_id: Some(task.id.as_str().to_string()),
        data,
    }
}

fn output_file_info(f: &OutputFile, status: i32, message: &str) -> Value {
    json!({
        "fileType": f.file_type.as_str(),
        "status": status,
        "message": message,
        "fileId": f.file_id.as_str(),
        "fileUrl": f.url,
    })
}

fn failed_file_info(file_type: &str, status: i32, message: &str) -> Value {
    json!({
        "fileType": file_type,
        "status": status,
        "message": message,
        "fileId": "",
        "fileUrl": "",
    })
}

/// The platform's `metaData` of a file.
fn meta_data(media: &MediaFile) -> Value {
    let Ok(m) = &media.metadata else {
        return json!({"size": media.size, "md5": media.md5});
    };
    let streams = |kind: &'static str| m.streams.iter().filter(move |s| s.codec_type == kind);
    json!({
        "size": media.size,
        "container": m.container,
        "bitrate": m.bitrate,
        "height": m.height,
        "width": m.width,
        "md5": media.md5,
        "duration": m.duration_seconds,
        "videoStreamList": streams("video")
            .map(|s| json!({"bitrate": s.bitrate, "height": s.height, "width": s.width, "codec": s.codec, "fps": s.fps}))
            .collect::<Vec<_>>(),
        "audioStreamList": streams("audio")
            .map(|s| json!({"bitrate": s.bitrate, "samplingRate": s.sample_rate, "codec": s.codec}))
            .collect::<Vec<_>>(),
    })
}

fn subtask_json(s: &SubtaskState) -> Value {
    let input = match &s.spec {
        SubtaskSpec::Transcode { definition } => json!({"definition": definition}),
        SubtaskSpec::SnapshotByTimeOffset {
            definition,
            time_offsets_ms,
        } => json!({"definition": definition, "timeOffset": time_offsets_ms}),
        SubtaskSpec::ImageSprites { definition } => json!({"definition": definition}),
        SubtaskSpec::CoverBySnapshot {
            definition,
            position,
        } => {
            let (kind, at) = match position {
                CoverPosition::Time(t) => ("Time", t),
                CoverPosition::Percent(p) => ("Percent", p),
            };
            json!({"definition": definition, "positionType": kind, "position": at})
        }
    };
    let output = match &s.output {
        None => json!({}),
        Some(SubtaskOutput::Transcode(p)) => json!({
            "url": p.url,
            "fileId": p.file_id.as_str(),
            "definition": p.definition,
            "size": p.size,
            "bitrate": p.vbitrate,
            "height": p.vheight,
            "width": p.vwidth,
            "duration": p.duration_seconds,
        }),
        Some(SubtaskOutput::SnapshotByTimeOffset { pictures }) => json!({
            "imgInfo": pictures
                .iter()
                .map(|p| json!({"timeOffset": p.time_offset_ms, "url": p.url, "status": p.status}))
                .collect::<Vec<_>>(),
        }),
        Some(SubtaskOutput::ImageSprites(set)) => json!({
            "totalCount": set.total_count,
            "imageUrls": set.image_urls,
            "webVttUrl": set.web_vtt_url,
        }),
        Some(SubtaskOutput::CoverBySnapshot { url, .. }) => json!({"imageUrl": url}),
    };
    json!({
        "taskType": s.spec.type_name(),
        "status": s.status.as_str(),
        "errCode": s.err_code,
        "message": s.message,
        "progress": s.progress,
        "input": input,
        "output": output,
    })
}

/// NewFileUpload for a file an app uploaded; `procedure_task_id` names the
/// procedure the upload started, if any.
pub fn file_uploaded(media: &MediaFile, file_url: &str, procedure_task_id: &str) -> Draft {
    Draft {
        event_type: EventType::NewFileUpload,
        order_key: format!("file:{}", media.file_id),
        task_id: None,
        data: json!({
            "fileId": media.file_id.as_str(),
            "fileName": media.file_name,
            "fileUrl": file_url,
            "coverUrl": "",
            "sourceType": "ClientUpload",
            "sourceContext": media.source_context,
            "procedureTaskId": procedure_task_id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time;

    #[test]
    fn envelope_has_the_platform_fields_and_ours() {
        let draft = Draft {
            event_type: EventType::NewFileUpload,
            order_key: "file:1".into(),
            task_id: None,
            data: json!({"fileId": "1"}),
        };
        let text = draft.seal("ev-1", time::now(), 3);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], "4.0");
        assert_eq!(v["eventType"], "NewFileUpload");
        assert_eq!(v["eventId"], "ev-1");
        assert_eq!(v["taskSequence"], 3);
        assert_eq!(v["data"]["fileId"], "1");
        assert!(chrono::DateTime::parse_from_rfc3339(v["eventTime"].as_str().unwrap()).is_ok());
    }
}
