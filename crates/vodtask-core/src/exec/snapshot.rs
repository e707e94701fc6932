//! Snapshot by time offset: one JPEG per offset, each with its own status.

use std::ffi::OsString;
use std::path::Path;

use super::ffmpeg::{self, RunError};
use super::{RunContext, RunResult};
use crate::media::MediaMetadata;
use crate::task::definitions::{output_height, snapshot_definition};
use crate::task::{SnapshotPicture, SnapshotSpec, TaskOutput, errcode};

pub(super) async fn run(
    ctx: &RunContext<'_>,
    source: &Path,
    meta: &MediaMetadata,
    spec: &SnapshotSpec,
) -> RunResult {
    let Some(def) = snapshot_definition(spec.definition) else {
        return RunResult::failed(
            errcode::SNAPSHOT_FAILED,
            format!("unknown definition {}", spec.definition),
        );
    };
    let duration_ms = (meta.duration_seconds * 1000.0) as i64;
    let total = spec.time_offsets_ms.len() as f64;
    let mut pictures = Vec::new();
    let mut new_media = Vec::new();
    for (i, &offset) in spec.time_offsets_ms.iter().enumerate() {
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
        let path = ctx.scratch.join(&name);
        let mut args: Vec<OsString> = ["-ss", &format!("{:.3}", offset as f64 / 1000.0), "-i"]
            .map(OsString::from)
            .to_vec();
        args.push(source.into());
        args.extend(["-frames:v", "1", "-q:v", &def.jpeg_quality.to_string()].map(OsString::from));
        if let Some(h) = def.height {
            args.extend([
                "-vf".into(),
                format!("scale=-2:{}", output_height(h, meta.height)).into(),
            ]);
        }
        args.push(path.clone().into());
        let step = |f: f64| (ctx.on_progress)((i as f64 + f) / total);
        match ffmpeg::run(ctx.ffmpeg, args, 0.0, &step, ctx.cancel).await {
            Err(RunError::Cancelled) => return RunResult::Cancelled,
            Err(RunError::Failed(reason)) => {
                picture.status = errcode::SNAPSHOT_FAILED;
                picture.message = reason;
            }
            Ok(()) if !path.is_file() => {
                picture.status = errcode::SNAPSHOT_FAILED;
                picture.message = "ffmpeg wrote no picture at this offset".into();
            }
            Ok(()) => match ctx
                .library
                .adopt_output(ctx.task.app_id, &ctx.task.id, &path, &name)
                .await
            {
                Ok(media) => {
                    picture.url = ctx.library.url_of(&media.file_id, &media.stored_name);
                    picture.file_id = Some(media.file_id.clone());
                    new_media.push(media);
                }
                Err(e) => return RunResult::failed(errcode::INTERNAL_IO, e.to_string()),
            },
        }
        (ctx.on_progress)((i + 1) as f64 / total);
        pictures.push(picture);
    }
    // The task succeeds only when every picture was taken; the output lists
    // each picture's own status either way.
    let failed = pictures.iter().find(|p| p.status != 0);
    let (err_code, message) = match failed {
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
    };
    RunResult::Done {
        err_code,
        message,
        output: Some(TaskOutput::SnapshotByTimeOffset { pictures }),
        new_media,
    }
}
