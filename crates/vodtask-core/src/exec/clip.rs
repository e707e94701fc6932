//! Clip: the part of a source between two offsets, re-encoded so that the
//! cut is frame-accurate (a stream copy could only cut at keyframes).

use std::ffi::OsString;

use super::transcode::h264_args;
use super::{
    RunContext, RunResult, Source, Stop, at_stage, ffmpeg, output_file, stored, succeeded,
};
use crate::task::{ClipSpec, FileType, TaskOutput, errcode};

/// Audio bitrate of clips and concats, in kbit/s.
pub(super) const AUDIO_KBPS: u32 = 128;

pub(super) async fn run(
    ctx: &RunContext<'_>,
    source: &Source,
    spec: &ClipSpec,
) -> Result<RunResult, Stop> {
    let duration = source.meta.duration_seconds;
    if spec.start_time_offset >= duration {
        return Err(Stop::Failed(
            errcode::CLIP_OUT_OF_RANGE,
            format!(
                "start_time_offset {} s is not before the end of the source ({duration:.3} s)",
                spec.start_time_offset
            ),
        ));
    }
    // Past the end means "to the end".
    let length = spec.end_time_offset.min(duration) - spec.start_time_offset;
    let name = "clip.mp4";
    let path = ctx.scratch.join(name);
    let mut args: Vec<OsString> = ["-ss", &format!("{:.3}", spec.start_time_offset), "-i"]
        .map(OsString::from)
        .to_vec();
    args.push(source.arg());
    args.extend(
        [
            "-t",
            &format!("{length:.3}"),
            "-map",
            "0:v:0",
            "-map",
            "0:a:0?",
        ]
        .map(OsString::from),
    );
    args.extend(h264_args(None, None, AUDIO_KBPS));
    args.extend(["-movflags", "+faststart"].map(OsString::from));
    args.push(path.clone().into());
    ffmpeg::run(ctx.ffmpeg, args, length, ctx.on_progress, ctx.cancel)
        .await
        .map_err(at_stage(errcode::CLIP_FAILED))?;
    let media = ctx
        .library
        .adopt_output(ctx.task.app_id, &ctx.task.id, &path, name)
        .await
        .map_err(stored)?;
    let file = output_file(ctx, FileType::Mp4, &media);
    Ok(succeeded(TaskOutput::Clip { file }, vec![media]))
}
