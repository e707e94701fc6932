//! Executors: the real work of each task type, done with ffmpeg (and an
//! HTTP client for pulls). An executor returns the store `Outcome` to record;
//! the scheduler records it under the task's lease.

mod children;
mod clip;
mod concat;
mod cover;
mod ffmpeg;
mod procedure;
mod pull;
mod snapshot;
mod sprites;
mod transcode;

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub use children::Children;
pub(crate) use children::command as child_command;
pub(crate) use ffmpeg::Ffmpeg;
pub(crate) use procedure::Step;
pub(crate) use pull::Puller;
pub use transcode::transcode_command_line;

use crate::ids::FileId;
use crate::media::{MediaFile, MediaLibrary, MediaMetadata, Readable};
use crate::task::Outcome;
use crate::task::{Task, TaskSpec, errcode};

/// Everything one task run may use.
pub(crate) struct RunContext<'a> {
    pub task: &'a Task,
    pub library: &'a MediaLibrary,
    pub ffmpeg: &'a Ffmpeg,
    pub puller: &'a Puller,
    /// A scratch directory of this run; outputs are moved out of it into the
    /// library.
    pub scratch: PathBuf,
    /// The task's input files in spec order, each when the library has it.
    pub inputs: Vec<(FileId, Option<MediaFile>)>,
    pub on_progress: &'a (dyn Fn(f64) + Send + Sync),
    pub cancel: &'a CancellationToken,
    /// The worker pool's free slots: a procedure runs more subtasks at once
    /// when it can take one.
    pub slots: &'a Arc<Semaphore>,
    /// A procedure's subtask changes, recorded as they happen.
    pub steps: mpsc::UnboundedSender<Step>,
}

/// How a run ended.
pub(crate) enum RunResult {
    Done(Outcome),
    Cancelled,
}

/// Why an executor stopped early.
pub(crate) enum Stop {
    Cancelled,
    Failed(i32, String),
}

impl Stop {
    fn into_result(self) -> RunResult {
        match self {
            Stop::Cancelled => RunResult::Cancelled,
            Stop::Failed(code, message) => failed(code, message),
        }
    }
}

/// Gives an ffmpeg failure its stage's error code.
fn at_stage(code: i32) -> impl Fn(ffmpeg::RunError) -> Stop {
    move |e| match e {
        ffmpeg::RunError::Cancelled => Stop::Cancelled,
        ffmpeg::RunError::Failed(reason) => Stop::Failed(code, reason),
    }
}

/// A library error (reading an input, storing an output) ends the task:
/// STORAGE_UNAVAILABLE when the media storage did not answer (after its
/// client's retries), INTERNAL_IO otherwise.
fn stored(e: crate::Error) -> Stop {
    match e {
        crate::Error::Unavailable(m) => Stop::Failed(errcode::STORAGE_UNAVAILABLE, m),
        e => Stop::Failed(errcode::INTERNAL_IO, e.to_string()),
    }
}

/// How a new media file of a clip or concat is reported.
fn output_file(
    ctx: &RunContext<'_>,
    file_type: crate::task::FileType,
    media: &MediaFile,
) -> crate::task::OutputFile {
    crate::task::OutputFile {
        file_type,
        file_id: media.file_id.clone(),
        url: ctx.library.url_of(&media.file_id, &media.stored_name),
        duration_seconds: media.metadata.as_ref().map_or(0.0, |m| m.duration_seconds),
        size: media.size,
    }
}

fn failed(err_code: i32, message: impl Into<String>) -> RunResult {
    RunResult::Done(Outcome::Finished {
        err_code,
        message: message.into(),
        output: None,
        new_media: Vec::new(),
        follow_up: None,
    })
}

fn succeeded(output: crate::task::TaskOutput, new_media: Vec<MediaFile>) -> RunResult {
    RunResult::Done(Outcome::Finished {
        err_code: 0,
        message: String::new(),
        output: Some(output),
        new_media,
        follow_up: None,
    })
}

/// A readable video source: where ffmpeg reads it and what ffprobe said
/// of it.
pub(crate) struct Source {
    pub input: Readable,
    pub meta: MediaMetadata,
}

impl Source {
    /// The source as ffmpeg's `-i` argument.
    pub fn arg(&self) -> std::ffi::OsString {
        self.input.as_arg()
    }
}

pub(crate) async fn run(ctx: RunContext<'_>) -> RunResult {
    let ctx = &ctx;
    let result = match &ctx.task.spec {
        TaskSpec::PullUpload(spec) => pull::run(ctx, spec).await,
        TaskSpec::DeleteMedia(spec) => Ok(RunResult::Done(Outcome::Deleted {
            files: spec.file_ids.clone(),
        })),
        TaskSpec::Concat(spec) => {
            async {
                let mut sources = Vec::new();
                for (id, media) in &ctx.inputs {
                    sources.push(source_of(ctx, id, media.as_ref()).await?);
                }
                concat::run(ctx, &sources, spec).await
            }
            .await
        }
        TaskSpec::Transcode(spec) => {
            async { transcode::run(ctx, &first_source(ctx).await?, spec).await }.await
        }
        TaskSpec::SnapshotByTimeOffset(spec) => {
            async { snapshot::run(ctx, &first_source(ctx).await?, spec).await }.await
        }
        TaskSpec::Clip(spec) => {
            async { clip::run(ctx, &first_source(ctx).await?, spec).await }.await
        }
        TaskSpec::ImageSprites(spec) => {
            async { sprites::run(ctx, &first_source(ctx).await?, spec).await }.await
        }
        TaskSpec::Procedure(spec) => {
            async { procedure::run(ctx, &first_source(ctx).await?, spec).await }.await
        }
    };
    result.unwrap_or_else(Stop::into_result)
}

async fn first_source(ctx: &RunContext<'_>) -> Result<Source, Stop> {
    match ctx.inputs.first() {
        Some((id, media)) => source_of(ctx, id, media.as_ref()).await,
        None => Err(Stop::Failed(
            errcode::SOURCE_MISSING,
            "the task names no source file".into(),
        )),
    }
}

/// Where ffmpeg reads a source and its probe, or why the task cannot use
/// it.
async fn source_of(
    ctx: &RunContext<'_>,
    id: &FileId,
    media: Option<&MediaFile>,
) -> Result<Source, Stop> {
    let Some(media) = media else {
        return Err(Stop::Failed(
            errcode::SOURCE_MISSING,
            format!("source file {id} is not in the media library"),
        ));
    };
    let meta = match &media.metadata {
        Ok(m) => m.clone(),
        Err(reason) => {
            return Err(Stop::Failed(
                errcode::PROBE_FAILED,
                format!("ffprobe could not read source file {id}: {reason}"),
            ));
        }
    };
    if !meta.has_video() {
        return Err(Stop::Failed(
            errcode::NO_VIDEO_STREAM,
            format!("source file {id} has no video stream"),
        ));
    }
    let input = match ctx.library.input(media, &ctx.scratch).await {
        Ok(input) => input,
        Err(crate::Error::NotFound(m)) => return Err(Stop::Failed(errcode::SOURCE_MISSING, m)),
        Err(e) => return Err(stored(e)),
    };
    Ok(Source { input, meta })
}
