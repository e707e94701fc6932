//! Transcode: one ffmpeg run decodes the source once and writes one MP4 per
//! definition.

use std::ffi::OsString;
use std::path::Path;

use super::ffmpeg::{self, RunError};
use super::{RunContext, RunResult};
use crate::media::MediaMetadata;
use crate::task::definitions::{output_height, transcode_definition};
use crate::task::{PlayItem, TaskOutput, TranscodeSpec, errcode};

pub(super) async fn run(
    ctx: &RunContext<'_>,
    source: &Path,
    meta: &MediaMetadata,
    spec: &TranscodeSpec,
) -> RunResult {
    let mut args: Vec<OsString> = vec!["-i".into(), source.into()];
    let mut outputs = Vec::new();
    for id in &spec.definitions {
        let Some(def) = transcode_definition(*id) else {
            return RunResult::failed(
                errcode::TRANSCODE_FAILED,
                format!("unknown definition {id}"),
            );
        };
        let height = output_height(def.height, meta.height);
        let name = format!("f{}.mp4", def.id);
        let path = ctx.scratch.join(&name);
        let rate = format!("{}k", def.max_video_kbps);
        let buf = format!("{}k", def.max_video_kbps * 2);
        let audio = format!("{}k", def.audio_kbps);
        args.extend(
            [
                "-map",
                "0:v:0",
                "-map",
                "0:a:0?",
                "-vf",
                &format!("scale=-2:{height}"),
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-crf",
                "23",
                "-maxrate",
                &rate,
                "-bufsize",
                &buf,
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                "aac",
                "-b:a",
                &audio,
                "-movflags",
                "+faststart",
            ]
            .map(OsString::from),
        );
        args.push(path.clone().into());
        outputs.push((def.id, name, path));
    }

    match ffmpeg::run(
        ctx.ffmpeg,
        args,
        meta.duration_seconds,
        ctx.on_progress,
        ctx.cancel,
    )
    .await
    {
        Ok(()) => {}
        Err(RunError::Cancelled) => return RunResult::Cancelled,
        Err(RunError::Failed(reason)) => {
            return RunResult::failed(errcode::TRANSCODE_FAILED, reason);
        }
    }

    let mut play_set = Vec::new();
    let mut new_media = Vec::new();
    for (definition, name, path) in outputs {
        let media = match ctx
            .library
            .adopt_output(ctx.task.app_id, &ctx.task.id, &path, &name)
            .await
        {
            Ok(m) => m,
            Err(e) => return RunResult::failed(errcode::INTERNAL_IO, e.to_string()),
        };
        let out = media.metadata.clone().unwrap_or_default();
        play_set.push(PlayItem {
            definition,
            file_id: media.file_id.clone(),
            url: ctx.library.url_of(&media.file_id, &media.stored_name),
            vbitrate: out.video_bitrate(),
            vwidth: out.width,
            vheight: out.height,
            duration_seconds: out.duration_seconds,
            size: media.size,
        });
        new_media.push(media);
    }
    RunResult::Done {
        err_code: 0,
        message: String::new(),
        output: Some(TaskOutput::Transcode { play_set }),
        new_media,
    }
}
