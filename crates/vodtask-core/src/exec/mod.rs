//! Executors: the real media work of each task type, done with ffmpeg.

mod ffmpeg;
mod snapshot;
mod transcode;

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::media::{MediaFile, MediaLibrary, MediaMetadata};
use crate::task::{Task, TaskOutput, TaskSpec, errcode};

/// Everything one task run may use.
pub struct RunContext<'a> {
    pub task: &'a Task,
    pub library: &'a MediaLibrary,
    pub ffmpeg: &'a Path,
    /// A scratch directory of this run; outputs are moved out of it into the
    /// library.
    pub scratch: PathBuf,
    /// The source file, when the library has it.
    pub source: Option<MediaFile>,
    pub on_progress: &'a (dyn Fn(f64) + Send + Sync),
    pub cancel: &'a CancellationToken,
}

/// How a run ended.
pub enum RunResult {
    Done {
        err_code: i32,
        message: String,
        output: Option<TaskOutput>,
        new_media: Vec<MediaFile>,
    },
    Cancelled,
}

impl RunResult {
    fn failed(err_code: i32, message: impl Into<String>) -> Self {
        RunResult::Done {
            err_code,
            message: message.into(),
            output: None,
            new_media: Vec::new(),
        }
    }
}

pub async fn run(ctx: RunContext<'_>) -> RunResult {
    let (source, metadata) = match source_of(&ctx) {
        Ok(found) => found,
        Err(failure) => return failure,
    };
    match &ctx.task.spec {
        TaskSpec::Transcode(spec) => transcode::run(&ctx, &source, &metadata, spec).await,
        TaskSpec::SnapshotByTimeOffset(spec) => snapshot::run(&ctx, &source, &metadata, spec).await,
    }
}

/// The source path and its probe, or the failure that ends the task.
fn source_of(ctx: &RunContext<'_>) -> Result<(PathBuf, MediaMetadata), RunResult> {
    let Some(media) = &ctx.source else {
        return Err(RunResult::failed(
            errcode::SOURCE_MISSING,
            format!(
                "source file {} is not in the media library",
                ctx.task.file_id()
            ),
        ));
    };
    let path = ctx.library.path_of(&media.file_id, &media.stored_name);
    if !path.is_file() {
        return Err(RunResult::failed(
            errcode::SOURCE_MISSING,
            format!("source file {} is missing on disk", media.file_id),
        ));
    }
    let metadata = match &media.metadata {
        Ok(m) => m.clone(),
        Err(reason) => {
            return Err(RunResult::failed(
                errcode::PROBE_FAILED,
                format!("ffprobe could not read the source: {reason}"),
            ));
        }
    };
    if !metadata.has_video() {
        return Err(RunResult::failed(
            errcode::NO_VIDEO_STREAM,
            "the source has no video stream",
        ));
    }
    Ok((path, metadata))
}
