//! The media library: files an app uploaded and files its tasks wrote.

mod library;
pub mod probe;
mod storage;

pub use storage::{ObjectBody, Readable, S3_RETRY_TIMEOUT, S3Config, StorageConfig};

pub use library::{
    FileUrls, InputMode, LibraryConfig, MediaLibrary, Served, Upload, validate_file_name,
    validate_source_context,
};
pub use probe::{MediaMetadata, MediaStream};

use serde::{Deserialize, Serialize};

use crate::ids::{AppId, FileId, TaskId};
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceType {
    ClientUpload,
    TaskOutput,
    /// Downloaded by a pull task.
    Pull,
}

impl SourceType {
    pub fn code(self) -> i64 {
        match self {
            SourceType::ClientUpload => 1,
            SourceType::TaskOutput => 2,
            SourceType::Pull => 3,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(SourceType::ClientUpload),
            2 => Some(SourceType::TaskOutput),
            3 => Some(SourceType::Pull),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MediaFile {
    pub file_id: FileId,
    pub app_id: AppId,
    /// The name the app gave it (or vodtask, for outputs).
    pub file_name: String,
    /// The name on disk and in the URL, `<file_id>/<stored_name>`.
    pub stored_name: String,
    pub size: u64,
    pub md5: String,
    pub create_time: Timestamp,
    pub source_type: SourceType,
    pub source_context: String,
    pub source_task_id: Option<TaskId>,
    pub metadata: Result<MediaMetadata, String>,
}

/// The Content-Type a media file is served and stored with, by its name:
/// HLS as players expect it (RFC 8216; the general MIME table says
/// `audio/x-mpegurl` and `video/vnd.dlna.mpeg-tts`), anything else by its
/// extension.
pub fn content_type(name: &str) -> String {
    if name.ends_with(".m3u8") {
        "application/vnd.apple.mpegurl".into()
    } else if name.ends_with(".ts") {
        "video/mp2t".into()
    } else {
        mime_guess::from_path(name)
            .first_or_octet_stream()
            .essence_str()
            .to_string()
    }
}

pub const MAX_FILE_NAME_BYTES: usize = 255;
pub const MAX_SOURCE_CONTEXT_BYTES: usize = 256;

#[cfg(test)]
mod tests {
    #[test]
    fn content_types_follow_the_name_with_hls_as_players_expect() {
        use super::content_type;
        assert_eq!(content_type("index.m3u8"), "application/vnd.apple.mpegurl");
        assert_eq!(content_type("seg_00001.ts"), "video/mp2t");
        assert_eq!(content_type("f100010.mp4"), "video/mp4");
        assert_eq!(content_type("sprite_0.jpg"), "image/jpeg");
        assert_eq!(content_type("index.vtt"), "text/vtt");
        assert_eq!(content_type("source"), "application/octet-stream");
    }
}
