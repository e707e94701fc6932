//! Snapshot by time offset: one JPEG per offset, each with its own status.

use std::ffi::OsString;
use std::path::PathBuf;

use super::ffmpeg::{self, RunError};
use super::{RunContext, RunResult, Source, Stop, stored};
use crate::media::MediaFile;
use crate::task::Outcome;
use crate::task::definitions::{SnapshotDefinition, output_height, snapshot_definition};
use crate::task::{SnapshotPicture, SnapshotSpec, TaskOutput, errcode};

pub(super) async fn run(
    ctx: &RunContext<'_>,
    source: &Source,
    spec: &SnapshotSpec,
) -> Result<RunResult, Stop> {
    let (pictures, new_media) = take(
        ctx,
        source,
        spec.definition,
        &spec.time_offsets_ms,
        ctx.on_progress,
    )
    .await?;
    // The task succeeds only when every picture was taken; the output lists
    // each picture's own status either way.
    let (err_code, message) = summary(&pictures);
    Ok(RunResult::Done(Outcome::Finished {
        err_code,
        message,
        output: Some(TaskOutput::SnapshotByTimeOffset { pictures }),
        new_media,
        follow_up: None,
    }))
}

/// 0 when every picture was taken, else the first failure's code.
pub(super) fn summary(pictures: &[SnapshotPicture]) -> (i32, String) {
    match pictures.iter().find(|p| p.status != 0) {
        None => (0, String::new()),
        Some(p) => (
            p.status,
            format!(
                "{} of {} pictures failed; first: {}",
                pictures.iter().filter(|p| p.status != 0).count(),
                pictures.len(),
                p.message
            ),
        ),
    }
}

/// Takes one picture per offset; a picture that fails has its status.
pub(super) async fn take(
    ctx: &RunContext<'_>,
    source: &Source,
    definition: i32,
    offsets_ms: &[i64],
    on_progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(Vec<SnapshotPicture>, Vec<MediaFile>), Stop> {
    let def = definition_of(definition)?;
    let duration_ms = (source.meta.duration_seconds * 1000.0) as i64;
    let total = offsets_ms.len() as f64;
    let mut pictures = Vec::new();
    let mut new_media = Vec::new();
    for (i, &offset) in offsets_ms.iter().enumerate() {
        let mut picture = SnapshotPicture {
            time_offset_ms: offset,
            status: 0,
            message: String::new(),
            file_id: None,
            url: String::new(),
        };
        if offset >= duration_ms {
            picture.status = errcode::SNAPSHOT_OFFSET_OUT_OF_RANGE;
            picture.message =
                format!("time offset {offset} ms is not before the end ({duration_ms} ms)");
            pictures.push(picture);
            continue;
        }
        let name = format!("snapshot_{}_{offset}.jpg", def.id);
        let step = |f: f64| on_progress((i as f64 + f) / total);
        match grab(ctx, source, def, offset, &name, &step).await {
            Err(RunError::Cancelled) => return Err(Stop::Cancelled),
            Err(RunError::Failed(reason)) => {
                picture.status = errcode::SNAPSHOT_FAILED;
                picture.message = reason;
            }
            Ok(path) => {
                let media = ctx
                    .library
                    .adopt_output(ctx.task.app_id, &ctx.task.id, &path, &name)
                    .await
                    .map_err(stored)?;
                picture.url = ctx.library.url_of(&media.file_id, &media.stored_name);
                picture.file_id = Some(media.file_id.clone());
                new_media.push(media);
            }
        }
        on_progress((i + 1) as f64 / total);
        pictures.push(picture);
    }
    Ok((pictures, new_media))
}

/// The snapshot definition, or the task's failure (specs are validated, so
/// only a definition removed since the task was queued gets here).
pub(super) fn definition_of(definition: i32) -> Result<&'static SnapshotDefinition, Stop> {
    snapshot_definition(definition).ok_or_else(|| {
        Stop::Failed(
            errcode::SNAPSHOT_FAILED,
            format!("unknown definition {definition}"),
        )
    })
}

/// Writes the frame at `offset_ms` as `scratch/name`.
pub(super) async fn grab(
    ctx: &RunContext<'_>,
    source: &Source,
    def: &SnapshotDefinition,
    offset_ms: i64,
    name: &str,
    on_progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<PathBuf, RunError> {
    let path = ctx.scratch.join(name);
    let mut args: Vec<OsString> = ["-ss", &format!("{:.3}", offset_ms as f64 / 1000.0), "-i"]
        .map(OsString::from)
        .to_vec();
    args.push(source.arg());
    args.extend(["-frames:v", "1", "-q:v", &def.jpeg_quality.to_string()].map(OsString::from));
    if let Some(h) = def.height {
        args.extend([
            "-vf".into(),
            format!("scale=-2:{}", output_height(h, source.meta.height)).into(),
        ]);
    }
    args.push(path.clone().into());
    ffmpeg::run(ctx.ffmpeg, args, 0.0, on_progress, ctx.cancel).await?;
    if !path.is_file() {
        return Err(RunError::Failed(
            "ffmpeg wrote no picture at this offset".into(),
        ));
    }
    Ok(path)
}
