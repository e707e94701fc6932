//! Procedures: a parent task whose subtasks run on one file, each with its
//! own status, and whose events follow a notify mode.

use serde::{Deserialize, Serialize};

use super::output::{PlayItem, SnapshotPicture, SpriteSet};
use super::spec::{
    validate_snapshot, validate_snapshot_definition, validate_sprites,
    validate_transcode_definition,
};
use crate::error::{Error, Result};
use crate::ids::FileId;
use crate::time::Timestamp;

pub const MAX_SUBTASKS: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcedureSpec {
    pub file_id: FileId,
    #[serde(flatten)]
    pub plan: ProcedurePlan,
}

/// What a procedure does, without its file: the part an upload or a pull
/// names to start on the file it creates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcedurePlan {
    pub subtasks: Vec<SubtaskSpec>,
    pub notify_mode: NotifyMode,
}

/// When ProcedureStateChanged is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NotifyMode {
    /// Once, when the last subtask ended.
    #[default]
    Finish,
    /// On every subtask change, and at the end.
    Change,
    Never,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubtaskSpec {
    Transcode {
        definition: i32,
    },
    SnapshotByTimeOffset {
        definition: i32,
        time_offsets_ms: Vec<i64>,
    },
    ImageSprites {
        definition: i32,
    },
    CoverBySnapshot {
        definition: i32,
        position: CoverPosition,
    },
}

/// Where a cover is taken.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum CoverPosition {
    /// Seconds from the start.
    Time(f64),
    /// 0..=100 percent of the duration.
    Percent(f64),
}

impl SubtaskSpec {
    /// The platform's name of the subtask type (`taskType` in events).
    pub fn type_name(&self) -> &'static str {
        match self {
            SubtaskSpec::Transcode { .. } => "Transcode",
            SubtaskSpec::SnapshotByTimeOffset { .. } => "SnapshotByTimeOffset",
            SubtaskSpec::ImageSprites { .. } => "ImageSprites",
            SubtaskSpec::CoverBySnapshot { .. } => "CoverBySnapshot",
        }
    }

    fn validate(&self, prefix: &str) -> Result<()> {
        match self {
            SubtaskSpec::Transcode { definition } => validate_transcode_definition(
                &format!("{prefix}.transcode.definition"),
                *definition,
            ),
            SubtaskSpec::SnapshotByTimeOffset {
                definition,
                time_offsets_ms,
            } => validate_snapshot(
                &format!("{prefix}.snapshot_by_time_offset"),
                *definition,
                time_offsets_ms,
            ),
            SubtaskSpec::ImageSprites { definition } => {
                validate_sprites(&format!("{prefix}.image_sprites"), *definition)
            }
            SubtaskSpec::CoverBySnapshot {
                definition,
                position,
            } => {
                let prefix = format!("{prefix}.cover_by_snapshot");
                validate_snapshot_definition(&format!("{prefix}.definition"), *definition)?;
                let ok = match *position {
                    CoverPosition::Time(t) => t.is_finite() && t >= 0.0,
                    CoverPosition::Percent(p) => p.is_finite() && (0.0..=100.0).contains(&p),
                };
                if !ok {
                    return Err(Error::invalid(
                        format!("{prefix}.position"),
                        "must be at least 0 (seconds), or within 0..100 for PERCENT",
                    ));
                }
                Ok(())
            }
        }
    }
}

impl ProcedurePlan {
    /// `prefix` is the message that holds `subtasks` (`spec.procedure`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let field = format!("{prefix}.subtasks");
        if self.subtasks.is_empty() || self.subtasks.len() > MAX_SUBTASKS {
            return Err(Error::invalid(
                field,
                format!("must hold 1..{MAX_SUBTASKS} subtasks"),
            ));
        }
        for (i, s) in self.subtasks.iter().enumerate() {
            s.validate(&format!("{field}[{i}]"))?;
        }
        Ok(())
    }

    /// Every subtask waiting: the state a procedure starts from.
    pub fn initial_state(&self) -> Vec<SubtaskState> {
        self.subtasks
            .iter()
            .map(|spec| SubtaskState {
                spec: spec.clone(),
                status: SubtaskStatus::Waiting,
                err_code: 0,
                message: String::new(),
                progress: 0,
                begin_time: None,
                finish_time: None,
                output: None,
            })
            .collect()
    }
}

/// A subtask's status. The platform knows PROCESSING, SUCCESS and FAIL;
/// WAITING is vodtask's for a subtask that has not started yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubtaskStatus {
    Waiting,
    Processing,
    Success,
    Fail,
}

impl SubtaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubtaskStatus::Waiting => "WAITING",
            SubtaskStatus::Processing => "PROCESSING",
            SubtaskStatus::Success => "SUCCESS",
            SubtaskStatus::Fail => "FAIL",
        }
    }

    pub fn is_done(self) -> bool {
        matches!(self, SubtaskStatus::Success | SubtaskStatus::Fail)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubtaskState {
    pub spec: SubtaskSpec,
    pub status: SubtaskStatus,
    pub err_code: i32,
    pub message: String,
    pub progress: u8,
    pub begin_time: Option<Timestamp>,
    pub finish_time: Option<Timestamp>,
    /// Set on success.
    pub output: Option<SubtaskOutput>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubtaskOutput {
    Transcode(PlayItem),
    SnapshotByTimeOffset { pictures: Vec<SnapshotPicture> },
    ImageSprites(SpriteSet),
    CoverBySnapshot { file_id: FileId, url: String },
}

/// A procedure's progress: the mean of its subtasks'.
pub fn overall_progress(subtasks: &[SubtaskState]) -> u8 {
    if subtasks.is_empty() {
        return 0;
    }
    let sum: u32 = subtasks
        .iter()
        .map(|s| {
            if s.status.is_done() {
                100
            } else {
                u32::from(s.progress)
            }
        })
        .sum();
    (sum / subtasks.len() as u32) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(subtasks: Vec<SubtaskSpec>) -> ProcedurePlan {
        ProcedurePlan {
            subtasks,
            notify_mode: NotifyMode::Finish,
        }
    }

    fn rejected_field(p: ProcedurePlan) -> String {
        match p.validate("spec.procedure") {
            Err(Error::InvalidArgument { field, .. }) => field,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn subtask_rules_name_the_field() {
        assert!(
            plan(vec![
                SubtaskSpec::Transcode { definition: 100210 },
                SubtaskSpec::CoverBySnapshot {
                    definition: 10,
                    position: CoverPosition::Percent(50.0)
                },
            ])
            .validate("spec.procedure")
            .is_ok()
        );
        assert_eq!(rejected_field(plan(vec![])), "spec.procedure.subtasks");
        assert_eq!(
            rejected_field(plan(vec![
                SubtaskSpec::ImageSprites { definition: 10 },
                SubtaskSpec::Transcode { definition: 5 }
            ])),
            "spec.procedure.subtasks[1].transcode.definition"
        );
        assert_eq!(
            rejected_field(plan(vec![SubtaskSpec::CoverBySnapshot {
                definition: 10,
                position: CoverPosition::Percent(101.0)
            }])),
            "spec.procedure.subtasks[0].cover_by_snapshot.position"
        );
    }

    #[test]
    fn progress_is_the_mean_of_the_subtasks() {
        let mut s = plan(vec![
            SubtaskSpec::Transcode { definition: 100010 },
            SubtaskSpec::ImageSprites { definition: 10 },
        ])
        .initial_state();
        assert_eq!(overall_progress(&s), 0);
        s[0].status = SubtaskStatus::Fail;
        s[1].progress = 50;
        assert_eq!(overall_progress(&s), 75);
    }
}
