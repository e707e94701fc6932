//! What a task produced: its typed output, one variant per task type.

use serde::{Deserialize, Serialize};

use super::procedure::SubtaskState;
use super::spec::FileType;
use crate::ids::FileId;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskOutput {
    Transcode {
        play_set: Vec<PlayItem>,
    },
    SnapshotByTimeOffset {
        pictures: Vec<SnapshotPicture>,
    },
    /// One file per output type, in the order they were asked for.
    Concat {
        files: Vec<OutputFile>,
    },
    Clip {
        file: OutputFile,
    },
    ImageSprites(SpriteSet),
    PullUpload {
        file_id: FileId,
        file_url: String,
        size: u64,
        /// The procedure started on the new file, if one was asked for.
        procedure_task_id: Option<String>,
    },
    DeleteMedia {
        /// The files asked for and the renditions that went with them.
        deleted: Vec<FileId>,
    },
    /// Written while the procedure runs too: the subtasks as they stand.
    Procedure {
        subtasks: Vec<SubtaskState>,
    },
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

/// A new media file a task wrote (clip, concat).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    pub file_type: FileType,
    pub file_id: FileId,
    pub url: String,
    pub duration_seconds: f64,
    pub size: u64,
}

/// Thumbnails tiled into sprite images, with a WebVTT index of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpriteSet {
    pub file_id: FileId,
    pub definition: i32,
    /// Thumbnails in all images.
    pub total_count: u32,
    pub image_urls: Vec<String>,
    pub web_vtt_url: String,
}
