//! The event envelope, byte-identical in every delivery path:
//! `{"version":"4.0","eventType":…,"eventId":…,"eventTime":…,"taskSequence":…,"data":{…}}`
//! with the platform's camelCase data fields (see vod-model.md).

use serde_json::{Value, json};

use super::EventType;
use crate::media::MediaFile;
use crate::task::{Task, TaskOutput, TaskStatus, TaskType, errcode};
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
/// `errcode::ABORTED`).
pub fn task_ended(task: &Task, source: Option<&MediaFile>) -> Draft {
    let status = match task.status {
        TaskStatus::Aborted => errcode::ABORTED,
        _ => task.err_code,
    };
    let message = if task.status == TaskStatus::Aborted && task.message.is_empty() {
        "cancelled".to_string()
    } else {
        task.message.clone()
    };
    let mut data = json!({
        "vodTaskId": task.id.as_str(),
        "status": status,
        "message": message,
        "fileId": task.file_id().as_str(),
        "sessionContext": task.session_context,
    });
    match (task.task_type(), &task.output) {
        (TaskType::Transcode, output) => {
            data["fileName"] = json!(source.map(|m| m.file_name.as_str()).unwrap_or_default());
            data["duration"] = json!(
                source
                    .and_then(|m| m.metadata.as_ref().ok())
                    .map_or(0.0, |m| m.duration_seconds)
            );
            data["coverUrl"] = json!("");
            if let (0, Some(TaskOutput::Transcode { play_set })) = (status, output) {
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
        }
        (TaskType::SnapshotByTimeOffset, output) => {
            if let crate::task::TaskSpec::SnapshotByTimeOffset(spec) = &task.spec {
                data["definition"] = json!(spec.definition);
            }
            let pictures = match output {
                Some(TaskOutput::SnapshotByTimeOffset { pictures }) => pictures
                    .iter()
                    .map(|p| json!({"timeOffset": p.time_offset_ms, "url": p.url, "status": p.status}))
                    .collect(),
                _ => Vec::new(),
            };
            data["picInfo"] = Value::Array(pictures);
        }
    }
    let event_type = match task.task_type() {
        TaskType::Transcode => EventType::TranscodeComplete,
        TaskType::SnapshotByTimeOffset => EventType::CreateSnapshotByTimeOffsetComplete,
    };
    Draft {
        event_type,
        order_key: task.id.as_str().to_string(),
        task_id: Some(task.id.as_str().to_string()),
        data,
    }
}

/// NewFileUpload for a file an app uploaded.
pub fn file_uploaded(media: &MediaFile, file_url: &str) -> Draft {
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
            "procedureTaskId": "",
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
