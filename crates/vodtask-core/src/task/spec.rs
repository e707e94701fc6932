//! What a task does (its typed input) and what it produced (its typed output).

use serde::{Deserialize, Serialize};

use super::definitions::{snapshot_definition, transcode_definition};
use crate::error::{Error, Result};
use crate::ids::FileId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskType {
    Transcode,
    SnapshotByTimeOffset,
}

impl TaskType {
    pub const ALL: [TaskType; 2] = [TaskType::Transcode, TaskType::SnapshotByTimeOffset];

    /// Stable number used by the stores (and equal to the proto enum value).
    pub fn code(self) -> i64 {
        match self {
            TaskType::Transcode => 1,
            TaskType::SnapshotByTimeOffset => 2,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        TaskType::ALL.into_iter().find(|t| t.code() == code)
    }

    pub fn id_prefix(self) -> &'static str {
        match self {
            TaskType::Transcode => "transcode",
            TaskType::SnapshotByTimeOffset => "snapshot",
        }
    }
}

/// The typed input of a task; one variant per task type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskSpec {
    Transcode(TranscodeSpec),
    SnapshotByTimeOffset(SnapshotSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscodeSpec {
    pub file_id: FileId,
    pub definitions: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotSpec {
    pub file_id: FileId,
    pub definition: i32,
    pub time_offsets_ms: Vec<i64>,
}

pub const MAX_DEFINITIONS: usize = 16;
pub const MAX_TIME_OFFSETS: usize = 100;

impl TaskSpec {
    pub fn task_type(&self) -> TaskType {
        match self {
            TaskSpec::Transcode(_) => TaskType::Transcode,
            TaskSpec::SnapshotByTimeOffset(_) => TaskType::SnapshotByTimeOffset,
        }
    }

    /// The media file the task reads.
    pub fn file_id(&self) -> &FileId {
        match self {
            TaskSpec::Transcode(s) => &s.file_id,
            TaskSpec::SnapshotByTimeOffset(s) => &s.file_id,
        }
    }

    /// Checks every rule that does not need the store. Field names are the
    /// contract's (`spec.transcode.definitions[2]`).
    pub fn validate(&self) -> Result<()> {
        match self {
            TaskSpec::Transcode(s) => {
                let field = "spec.transcode.definitions";
                if s.definitions.is_empty() {
                    return Err(Error::invalid(field, "must name at least one definition"));
                }
                if s.definitions.len() > MAX_DEFINITIONS {
                    return Err(Error::invalid(
                        field,
                        format!("at most {MAX_DEFINITIONS} definitions"),
                    ));
                }
                for (i, d) in s.definitions.iter().enumerate() {
                    if transcode_definition(*d).is_none() {
                        return Err(Error::invalid(
                            format!("{field}[{i}]"),
                            format!(
                                "{d} is not a transcode definition (100010, 100020, 100030, 100040)"
                            ),
                        ));
                    }
                    if s.definitions[..i].contains(d) {
                        return Err(Error::invalid(
                            format!("{field}[{i}]"),
                            format!("{d} is listed twice"),
                        ));
                    }
                }
                Ok(())
            }
            TaskSpec::SnapshotByTimeOffset(s) => {
                if snapshot_definition(s.definition).is_none() {
                    return Err(Error::invalid(
                        "spec.snapshot_by_time_offset.definition",
                        format!("{} is not a snapshot definition (10, 20)", s.definition),
                    ));
                }
                let field = "spec.snapshot_by_time_offset.time_offsets_ms";
                if s.time_offsets_ms.is_empty() {
                    return Err(Error::invalid(field, "must hold at least one time offset"));
                }
                if s.time_offsets_ms.len() > MAX_TIME_OFFSETS {
                    return Err(Error::invalid(
                        field,
                        format!("at most {MAX_TIME_OFFSETS} time offsets"),
                    ));
                }
                if let Some(i) = s.time_offsets_ms.iter().position(|t| *t < 0) {
                    return Err(Error::invalid(
                        format!("{field}[{i}]"),
                        "must not be negative",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// The typed result of a successful task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutput {
    Transcode { play_set: Vec<PlayItem> },
    SnapshotByTimeOffset { pictures: Vec<SnapshotPicture> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayItem {
    pub definition: i32,
    pub file_id: FileId,
    pub url: String,
    pub vbitrate: i64,
    pub vwidth: u32,
    pub vheight: u32,
    pub duration_seconds: f64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotPicture {
    pub time_offset_ms: i64,
    /// 0 when taken, else an error code (see `errcode`).
    pub status: i32,
    pub message: String,
    pub file_id: Option<FileId>,
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcode(defs: &[i32]) -> TaskSpec {
        TaskSpec::Transcode(TranscodeSpec {
            file_id: FileId::from_stored("1".into()),
            definitions: defs.to_vec(),
        })
    }

    fn rejected_field(spec: TaskSpec) -> String {
        match spec.validate() {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn transcode_rules_name_the_field() {
        assert!(transcode(&[100010, 100040]).validate().is_ok());
        assert_eq!(rejected_field(transcode(&[])), "spec.transcode.definitions");
        assert_eq!(
            rejected_field(transcode(&[100010, 7])),
            "spec.transcode.definitions[1]"
        );
        assert_eq!(
            rejected_field(transcode(&[100010, 100010])),
            "spec.transcode.definitions[1]"
        );
    }

    #[test]
    fn snapshot_rules_name_the_field() {
        let spec = |def, offsets: &[i64]| {
            TaskSpec::SnapshotByTimeOffset(SnapshotSpec {
                file_id: FileId::from_stored("1".into()),
                definition: def,
                time_offsets_ms: offsets.to_vec(),
            })
        };
        assert!(spec(10, &[0, 1500]).validate().is_ok());
        assert_eq!(
            rejected_field(spec(11, &[0])),
            "spec.snapshot_by_time_offset.definition"
        );
        assert_eq!(
            rejected_field(spec(10, &[])),
            "spec.snapshot_by_time_offset.time_offsets_ms"
        );
        assert_eq!(
            rejected_field(spec(10, &[5, -1])),
            "spec.snapshot_by_time_offset.time_offsets_ms[1]"
        );
    }

    #[test]
    fn input_survives_a_json_round_trip() {
        let spec = transcode(&[100020]);
        let json = serde_json::to_string(&spec).expect("serialize");
        assert_eq!(
            serde_json::from_str::<TaskSpec>(&json).expect("parse"),
            spec
        );
    }
}
