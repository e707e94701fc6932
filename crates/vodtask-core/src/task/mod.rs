//! The task domain: identity, state machine, typed input and output.

mod change;
pub mod definitions;
pub mod errcode;
mod outcome;
mod output;
pub mod procedure;
pub mod query;
mod spec;
mod status;

pub use change::{Cancel, Change, LeaseUpdate, Orphan, Recoveries};
pub use outcome::Outcome;
pub use output::{OutputFile, PlayItem, SnapshotPicture, SpriteSet, TaskOutput};
pub use spec::{
    ClipSpec, ConcatSpec, DEFAULT_PULL_TIMEOUT_SECONDS, DeleteSpec, FileType, MAX_CONCAT_INPUTS,
    MAX_DEFINITIONS, MAX_DELETE_FILES, MAX_TIME_OFFSETS, PullSpec, SnapshotSpec, SpritesSpec,
    TaskSpec, TaskType, TranscodeSpec,
};
pub use status::{TaskStatus, Transition};

use crate::error::{Error, Result};
use crate::ids::{AppId, FileId, TaskId};
use crate::time::Timestamp;

pub const MAX_SESSION_ID_CHARS: usize = 50;
pub const MAX_SESSION_CONTEXT_CHARS: usize = 1000;
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -10..=10;

/// A task as stored and described.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: TaskId,
    pub app_id: AppId,
    pub status: TaskStatus,
    pub err_code: i32,
    pub message: String,
    pub progress: u8,
    pub attempt: u32,
    pub create_time: Timestamp,
    pub begin_process_time: Option<Timestamp>,
    pub finish_time: Option<Timestamp>,
    pub priority: i32,
    pub session_id: Option<String>,
    pub session_context: String,
    pub spec: TaskSpec,
    /// The file the task is about: its (first) input, or the file a pull
    /// created once it finished.
    pub file_id: Option<FileId>,
    pub output: Option<TaskOutput>,
    pub cancel_requested: bool,
    /// Filled by DescribeTask only.
    pub previous_attempts: Vec<AttemptRecord>,
}

impl Task {
    pub fn task_type(&self) -> TaskType {
        self.spec.task_type()
    }

    pub fn file_id(&self) -> Option<&FileId> {
        self.file_id.as_ref()
    }
}

/// The result of an earlier attempt, kept when a task is redone.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub attempt: u32,
    pub status: TaskStatus,
    pub err_code: i32,
    pub message: String,
    pub begin_process_time: Option<Timestamp>,
    pub finish_time: Option<Timestamp>,
    pub output: Option<TaskOutput>,
}

/// A validated CreateTask request.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRequest {
    pub spec: TaskSpec,
    pub priority: i32,
    pub session_id: Option<String>,
    pub session_context: String,
}

impl TaskRequest {
    /// Validates every field; an empty session id means none.
    pub fn new(
        spec: TaskSpec,
        priority: i32,
        session_id: String,
        session_context: String,
    ) -> Result<Self> {
        spec.validate()?;
        if !PRIORITY_RANGE.contains(&priority) {
            return Err(Error::invalid(
                "priority",
                format!("must be within -10..10, got {priority}"),
            ));
        }
        crate::limits::check_text("session_id", &session_id, MAX_SESSION_ID_CHARS)?;
        if session_context.chars().count() > MAX_SESSION_CONTEXT_CHARS {
            return Err(Error::invalid(
                "session_context",
                format!("must be at most {MAX_SESSION_CONTEXT_CHARS} characters"),
            ));
        }
        Ok(TaskRequest {
            spec,
            priority,
            session_id: (!session_id.is_empty()).then_some(session_id),
            session_context,
        })
    }

    /// Identifies the request for session-id deduplication: two requests are
    /// "the same" when spec, priority and context are equal.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(&self.spec).unwrap_or_default());
        h.update(self.priority.to_le_bytes());
        h.update(self.session_context.as_bytes());
        hex::encode(h.finalize())
    }
}

/// What a store inserts for CreateTask.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: TaskId,
    pub app_id: AppId,
    pub request: TaskRequest,
    pub create_time: Timestamp,
}

/// CreateTask's answer from the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    Created(TaskId),
    /// The session id was used before by an identical request.
    Existing(TaskId),
}

impl Inserted {
    pub fn task_id(&self) -> &TaskId {
        match self {
            Inserted::Created(id) | Inserted::Existing(id) => id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TaskSpec {
        TaskSpec::Transcode(TranscodeSpec {
            file_id: FileId::from_stored("1".into()),
            definitions: vec![100010],
        })
    }

    #[test]
    fn common_fields_are_checked() {
        assert!(TaskRequest::new(spec(), 10, String::new(), String::new()).is_ok());
        let err = TaskRequest::new(spec(), 11, String::new(), String::new()).unwrap_err();
        assert!(err.to_string().starts_with("priority:"), "{err}");
        let err = TaskRequest::new(spec(), 0, "x".repeat(51), String::new()).unwrap_err();
        assert!(err.to_string().starts_with("session_id:"), "{err}");
        let err = TaskRequest::new(spec(), 0, String::new(), "é".repeat(1001)).unwrap_err();
        assert!(err.to_string().starts_with("session_context:"), "{err}");
        assert!(TaskRequest::new(spec(), 0, "é".repeat(50), "é".repeat(1000)).is_ok());
    }

    #[test]
    fn fingerprint_tells_requests_apart() {
        let a = TaskRequest::new(spec(), 0, "s".into(), "ctx".into()).expect("valid");
        let b = TaskRequest::new(spec(), 1, "s".into(), "ctx".into()).expect("valid");
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
    }
}
