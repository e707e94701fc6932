//! What a task does: its type and its typed input, with every rule that does
//! not need the store. Field names in errors are the contract's
//! (`spec.transcode.definitions[2]`).

use serde::{Deserialize, Serialize};

use super::definitions::{snapshot_definition, sprite_definition, transcode_definition};
use super::procedure::ProcedureSpec;
use crate::error::{Error, Result};
use crate::ids::{FileId, TaskId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskType {
    Transcode,
    SnapshotByTimeOffset,
    Concat,
    Clip,
    ImageSprites,
    PullUpload,
    DeleteMedia,
    Procedure,
}

impl TaskType {
    pub const ALL: [TaskType; 8] = [
        TaskType::Transcode,
        TaskType::SnapshotByTimeOffset,
        TaskType::Concat,
        TaskType::Clip,
        TaskType::ImageSprites,
        TaskType::PullUpload,
        TaskType::DeleteMedia,
        TaskType::Procedure,
    ];

    /// Stable number used by the stores (and equal to the proto enum value).
    pub fn code(self) -> i64 {
        match self {
            TaskType::Transcode => 1,
            TaskType::SnapshotByTimeOffset => 2,
            TaskType::Concat => 3,
            TaskType::Clip => 4,
            TaskType::ImageSprites => 5,
            TaskType::PullUpload => 6,
            TaskType::DeleteMedia => 7,
            TaskType::Procedure => 8,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        TaskType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// A new id for a task of this type: `<type prefix>-<32 hex digits>`,
    /// like the platform's `transcode-1edb…`. A UUIDv7, so ids grow with
    /// time (inserts land at the end of the id index instead of on a random
    /// page) and still carry 74 random bits.
    pub fn new_id(self) -> TaskId {
        TaskId::from_stored(format!(
            "{}-{}",
            self.id_prefix(),
            uuid::Uuid::now_v7().simple()
        ))
    }

    pub fn id_prefix(self) -> &'static str {
        match self {
            TaskType::Transcode => "transcode",
            TaskType::SnapshotByTimeOffset => "snapshot",
            TaskType::Concat => "concat",
            TaskType::Clip => "clip",
            TaskType::ImageSprites => "sprites",
            TaskType::PullUpload => "pull",
            TaskType::DeleteMedia => "delete",
            TaskType::Procedure => "procedure",
        }
    }

    /// Whether the files this type writes are renditions of its source (and
    /// go when the source is deleted), rather than media of their own.
    pub fn writes_renditions(self) -> bool {
        matches!(
            self,
            TaskType::Transcode
                | TaskType::SnapshotByTimeOffset
                | TaskType::ImageSprites
                | TaskType::Procedure
        )
    }
}

/// The typed input of a task; one variant per task type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskSpec {
    Transcode(TranscodeSpec),
    SnapshotByTimeOffset(SnapshotSpec),
    Concat(ConcatSpec),
    Clip(ClipSpec),
    ImageSprites(SpritesSpec),
    PullUpload(PullSpec),
    DeleteMedia(DeleteSpec),
    Procedure(ProcedureSpec),
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

/// The container of a concat (or clip) output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileType {
    Mp4,
    M3u8,
}

impl FileType {
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::Mp4 => "mp4",
            FileType::M3u8 => "m3u8",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConcatSpec {
    /// Joined in this order; the output has the first one's frame size.
    pub file_ids: Vec<FileId>,
    pub output_types: Vec<FileType>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipSpec {
    pub file_id: FileId,
    /// Seconds from the start of the source.
    pub start_time_offset: f64,
    /// Seconds from the start; past the end means "to the end".
    pub end_time_offset: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpritesSpec {
    pub file_id: FileId,
    pub definition: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullSpec {
    pub media_url: String,
    /// The library name; by default the last segment of the URL's path.
    pub file_name: Option<String>,
    pub source_context: String,
    /// The whole download must end within this.
    pub timeout_seconds: u32,
    /// Started on the new file once it is in the library.
    pub procedure: Option<super::procedure::ProcedurePlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteSpec {
    pub file_ids: Vec<FileId>,
}

pub const MAX_DEFINITIONS: usize = 16;
pub const MAX_TIME_OFFSETS: usize = 100;
pub const MAX_CONCAT_INPUTS: usize = 20;
pub const MAX_DELETE_FILES: usize = 100;
pub const MAX_MEDIA_URL_BYTES: usize = 2048;
pub const DEFAULT_PULL_TIMEOUT_SECONDS: u32 = 3600;
pub const MAX_PULL_TIMEOUT_SECONDS: u32 = 86_400;

impl TaskSpec {
    pub fn task_type(&self) -> TaskType {
        match self {
            TaskSpec::Transcode(_) => TaskType::Transcode,
            TaskSpec::SnapshotByTimeOffset(_) => TaskType::SnapshotByTimeOffset,
            TaskSpec::Concat(_) => TaskType::Concat,
            TaskSpec::Clip(_) => TaskType::Clip,
            TaskSpec::ImageSprites(_) => TaskType::ImageSprites,
            TaskSpec::PullUpload(_) => TaskType::PullUpload,
            TaskSpec::DeleteMedia(_) => TaskType::DeleteMedia,
            TaskSpec::Procedure(_) => TaskType::Procedure,
        }
    }

    /// The files the task reads (or deletes), which must exist when it is
    /// created. Empty for a pull.
    pub fn input_files(&self) -> Vec<&FileId> {
        match self {
            TaskSpec::Transcode(s) => vec![&s.file_id],
            TaskSpec::SnapshotByTimeOffset(s) => vec![&s.file_id],
            TaskSpec::Concat(s) => s.file_ids.iter().collect(),
            TaskSpec::Clip(s) => vec![&s.file_id],
            TaskSpec::ImageSprites(s) => vec![&s.file_id],
            TaskSpec::PullUpload(_) => Vec::new(),
            TaskSpec::DeleteMedia(s) => s.file_ids.iter().collect(),
            TaskSpec::Procedure(s) => vec![&s.file_id],
        }
    }

    /// The file a task is about (a pull's is known once it ran).
    pub fn main_file(&self) -> Option<&FileId> {
        self.input_files().into_iter().next()
    }

    /// Checks every rule that does not need the store.
    pub fn validate(&self) -> Result<()> {
        match self {
            TaskSpec::Transcode(s) => {
                validate_transcode_definitions("spec.transcode.definitions", &s.definitions)
            }
            TaskSpec::SnapshotByTimeOffset(s) => validate_snapshot(
                "spec.snapshot_by_time_offset",
                s.definition,
                &s.time_offsets_ms,
            ),
            TaskSpec::Concat(s) => {
                let field = "spec.concat.file_ids";
                if s.file_ids.len() < 2 || s.file_ids.len() > MAX_CONCAT_INPUTS {
                    return Err(Error::invalid(
                        field,
                        format!("must name 2..{MAX_CONCAT_INPUTS} files"),
                    ));
                }
                let field = "spec.concat.output_types";
                if s.output_types.is_empty() {
                    return Err(Error::invalid(field, "must name mp4, m3u8 or both"));
                }
                for (i, t) in s.output_types.iter().enumerate() {
                    if s.output_types[..i].contains(t) {
                        return Err(Error::invalid(
                            format!("{field}[{i}]"),
                            format!("{} is listed twice", t.as_str()),
                        ));
                    }
                }
                Ok(())
            }
            TaskSpec::Clip(s) => {
                let (start, end) = (s.start_time_offset, s.end_time_offset);
                if !start.is_finite() || start < 0.0 {
                    return Err(Error::invalid(
                        "spec.clip.start_time_offset",
                        "must be a number of seconds, at least 0",
                    ));
                }
                if !end.is_finite() || end < start + 0.1 {
                    return Err(Error::invalid(
                        "spec.clip.end_time_offset",
                        "must be at least 0.1 s after start_time_offset",
                    ));
                }
                Ok(())
            }
            TaskSpec::ImageSprites(s) => validate_sprites("spec.image_sprites", s.definition),
            TaskSpec::PullUpload(s) => {
                let field = "spec.pull_upload.media_url";
                if s.media_url.len() > MAX_MEDIA_URL_BYTES {
                    return Err(Error::invalid(
                        field,
                        format!("must be at most {MAX_MEDIA_URL_BYTES} bytes"),
                    ));
                }
                crate::outbound::validate_url(field, &s.media_url)?;
                if let Some(name) = &s.file_name {
                    crate::media::validate_file_name("spec.pull_upload.file_name", name)?;
                }
                crate::media::validate_source_context(
                    "spec.pull_upload.source_context",
                    &s.source_context,
                )?;
                if s.timeout_seconds == 0 || s.timeout_seconds > MAX_PULL_TIMEOUT_SECONDS {
                    return Err(Error::invalid(
                        "spec.pull_upload.timeout_seconds",
                        format!("must be within 1..{MAX_PULL_TIMEOUT_SECONDS}"),
                    ));
                }
                if let Some(plan) = &s.procedure {
                    plan.validate("spec.pull_upload.procedure")?;
                }
                Ok(())
            }
            TaskSpec::DeleteMedia(s) => {
                let field = "spec.delete_media.file_ids";
                if s.file_ids.is_empty() || s.file_ids.len() > MAX_DELETE_FILES {
                    return Err(Error::invalid(
                        field,
                        format!("must name 1..{MAX_DELETE_FILES} files"),
                    ));
                }
                for (i, f) in s.file_ids.iter().enumerate() {
                    if s.file_ids[..i].contains(f) {
                        return Err(Error::invalid(
                            format!("{field}[{i}]"),
                            format!("{f} is listed twice"),
                        ));
                    }
                }
                Ok(())
            }
            TaskSpec::Procedure(s) => s.plan.validate("spec.procedure"),
        }
    }
}

pub(crate) fn validate_transcode_definitions(field: &str, definitions: &[i32]) -> Result<()> {
    if definitions.is_empty() {
        return Err(Error::invalid(field, "must name at least one definition"));
    }
    if definitions.len() > MAX_DEFINITIONS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_DEFINITIONS} definitions"),
        ));
    }
    for (i, d) in definitions.iter().enumerate() {
        validate_transcode_definition(&format!("{field}[{i}]"), *d)?;
        if definitions[..i].contains(d) {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                format!("{d} is listed twice"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn validate_transcode_definition(field: &str, definition: i32) -> Result<()> {
    if transcode_definition(definition).is_none() {
        return Err(Error::invalid(
            field,
            format!(
                "{definition} is not a transcode definition (MP4 100010..100040, HLS 100210..100240)"
            ),
        ));
    }
    Ok(())
}

/// `prefix` is the message holding `definition` and `time_offsets_ms`.
pub(crate) fn validate_snapshot(prefix: &str, definition: i32, offsets: &[i64]) -> Result<()> {
    validate_snapshot_definition(&format!("{prefix}.definition"), definition)?;
    let field = format!("{prefix}.time_offsets_ms");
    if offsets.is_empty() {
        return Err(Error::invalid(field, "must hold at least one time offset"));
    }
    if offsets.len() > MAX_TIME_OFFSETS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_TIME_OFFSETS} time offsets"),
        ));
    }
    if let Some(i) = offsets.iter().position(|t| *t < 0) {
        return Err(Error::invalid(
            format!("{field}[{i}]"),
            "must not be negative",
        ));
    }
    Ok(())
}

pub(crate) fn validate_snapshot_definition(field: &str, definition: i32) -> Result<()> {
    if snapshot_definition(definition).is_none() {
        return Err(Error::invalid(
            field,
            format!("{definition} is not a snapshot definition (10, 20)"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_sprites(prefix: &str, definition: i32) -> Result<()> {
    if sprite_definition(definition).is_none() {
        return Err(Error::invalid(
            format!("{prefix}.definition"),
            format!("{definition} is not an image sprite definition (10, 20)"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: &str) -> FileId {
        FileId::from_stored(n.into())
    }

    fn transcode(defs: &[i32]) -> TaskSpec {
        TaskSpec::Transcode(TranscodeSpec {
            file_id: file("1"),
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
        assert!(transcode(&[100010, 100040, 100210]).validate().is_ok());
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
                file_id: file("1"),
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
    fn concat_clip_and_delete_rules_name_the_field() {
        let concat = |n: usize, types: &[FileType]| {
            TaskSpec::Concat(ConcatSpec {
                file_ids: (0..n).map(|i| file(&i.to_string())).collect(),
                output_types: types.to_vec(),
            })
        };
        assert!(
            concat(2, &[FileType::Mp4, FileType::M3u8])
                .validate()
                .is_ok()
        );
        assert_eq!(
            rejected_field(concat(1, &[FileType::Mp4])),
            "spec.concat.file_ids"
        );
        assert_eq!(rejected_field(concat(2, &[])), "spec.concat.output_types");
        assert_eq!(
            rejected_field(concat(2, &[FileType::Mp4, FileType::Mp4])),
            "spec.concat.output_types[1]"
        );
        let clip = |start, end| {
            TaskSpec::Clip(ClipSpec {
                file_id: file("1"),
                start_time_offset: start,
                end_time_offset: end,
            })
        };
        assert!(clip(1.0, 2.5).validate().is_ok());
        assert_eq!(
            rejected_field(clip(-1.0, 2.0)),
            "spec.clip.start_time_offset"
        );
        assert_eq!(rejected_field(clip(2.0, 2.0)), "spec.clip.end_time_offset");
        assert_eq!(
            rejected_field(clip(0.0, f64::NAN)),
            "spec.clip.end_time_offset"
        );
        let delete = |ids: &[&str]| {
            TaskSpec::DeleteMedia(DeleteSpec {
                file_ids: ids.iter().map(|i| file(i)).collect(),
            })
        };
        assert_eq!(rejected_field(delete(&[])), "spec.delete_media.file_ids");
        assert_eq!(
            rejected_field(delete(&["1", "1"])),
            "spec.delete_media.file_ids[1]"
        );
    }

    #[test]
    fn pull_rules_name_the_field() {
        let pull = |url: &str, timeout| {
            TaskSpec::PullUpload(PullSpec {
                media_url: url.into(),
                file_name: None,
                source_context: String::new(),
                timeout_seconds: timeout,
                procedure: None,
            })
        };
        assert!(pull("https://example.com/a.mp4", 60).validate().is_ok());
        assert_eq!(
            rejected_field(pull("ftp://example.com/a.mp4", 60)),
            "spec.pull_upload.media_url"
        );
        assert_eq!(
            rejected_field(pull("https://example.com/a.mp4", 0)),
            "spec.pull_upload.timeout_seconds"
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
