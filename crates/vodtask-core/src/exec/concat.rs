//! Concat: joins sources end to end. Every input is fitted (letterboxed) to
//! the first one's frame size and frame rate, and its audio resampled to one
//! format; an input without audio contributes silence. One encode writes the
//! MP4; an HLS output is remuxed from it without a second encode.

use std::ffi::OsString;

use super::clip::AUDIO_KBPS;
use super::transcode::{HLS_PLAYLIST, h264_args, hls_args};
use super::{
    RunContext, RunResult, Source, Stop, at_stage, ffmpeg, output_file, stored, succeeded,
};
use crate::task::{ConcatSpec, FileType, TaskOutput, errcode};

pub(super) async fn run(
    ctx: &RunContext<'_>,
    sources: &[Source],
    spec: &ConcatSpec,
) -> Result<RunResult, Stop> {
    let Some(first) = sources.first() else {
        return Err(Stop::Failed(
            errcode::SOURCE_MISSING,
            "concat needs at least two sources".into(),
        ));
    };
    let (width, height) = (even(first.meta.width), even(first.meta.height));
    let fps = first
        .meta
        .streams
        .iter()
        .find(|s| s.codec_type == "video")
        .map(|s| s.fps)
        .filter(|f| f.is_finite() && *f > 0.0)
        .unwrap_or(25.0);
    let with_audio = sources.iter().any(has_audio);
    let total: f64 = sources.iter().map(|s| s.meta.duration_seconds).sum();

    let mut args: Vec<OsString> = Vec::new();
    for s in sources {
        args.extend(["-i".into(), s.arg()]);
    }
    let mut graph = String::new();
    let mut joined = String::new();
    for (i, s) in sources.iter().enumerate() {
        graph.push_str(&format!(
            "[{i}:v:0]scale={width}:{height}:force_original_aspect_ratio=decrease,\
             pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={fps},format=yuv420p[v{i}];"
        ));
        joined.push_str(&format!("[v{i}]"));
        if with_audio {
            if has_audio(s) {
                graph.push_str(&format!(
                    "[{i}:a:0]aresample=48000,aformat=sample_fmts=fltp:channel_layouts=stereo[a{i}];"
                ));
            } else {
                graph.push_str(&format!(
                    "anullsrc=r=48000:cl=stereo,atrim=duration={:.3},aformat=sample_fmts=fltp[a{i}];",
                    s.meta.duration_seconds
                ));
            }
            joined.push_str(&format!("[a{i}]"));
        }
    }
    let n = sources.len();
    let a = u8::from(with_audio);
    graph.push_str(&format!("{joined}concat=n={n}:v=1:a={a}[v]"));
    if with_audio {
        graph.push_str("[a]");
    }
    args.extend([
        "-filter_complex".into(),
        graph.into(),
        "-map".into(),
        "[v]".into(),
    ]);
    if with_audio {
        args.extend(["-map".into(), "[a]".into()]);
    }
    args.extend(h264_args(None, None, AUDIO_KBPS));
    // Keyframes every 4 s, so that the HLS remux can cut even segments.
    args.extend(
        [
            "-force_key_frames",
            "expr:gte(t,n_forced*4)",
            "-movflags",
            "+faststart",
        ]
        .map(OsString::from),
    );
    let mp4 = ctx.scratch.join("concat.mp4");
    args.push(mp4.clone().into());
    ffmpeg::run(ctx.ffmpeg, args, total, ctx.on_progress, ctx.cancel)
        .await
        .map_err(at_stage(errcode::CONCAT_FAILED))?;

    let mut files = Vec::new();
    let mut new_media = Vec::new();
    // The HLS remux reads the MP4, so it goes first.
    if spec.output_types.contains(&FileType::M3u8) {
        let dir = ctx.scratch.join("hls");
        std::fs::create_dir_all(&dir).map_err(|e| {
            Stop::Failed(
                errcode::INTERNAL_IO,
                format!("create {}: {e}", dir.display()),
            )
        })?;
        let mut args: Vec<OsString> = vec!["-i".into(), mp4.clone().into()];
        args.extend(["-map", "0", "-c", "copy"].map(OsString::from));
        args.extend(hls_args(&dir));
        ffmpeg::run(ctx.ffmpeg, args, 0.0, &|_| {}, ctx.cancel)
            .await
            .map_err(at_stage(errcode::CONCAT_FAILED))?;
        let media = ctx
            .library
            .adopt_output_dir(ctx.task.app_id, &ctx.task.id, &dir, HLS_PLAYLIST)
            .await
            .map_err(stored)?;
        files.push(output_file(ctx, FileType::M3u8, &media));
        new_media.push(media);
    }
    if spec.output_types.contains(&FileType::Mp4) {
        let media = ctx
            .library
            .adopt_output(ctx.task.app_id, &ctx.task.id, &mp4, "concat.mp4")
            .await
            .map_err(stored)?;
        files.push(output_file(ctx, FileType::Mp4, &media));
        new_media.push(media);
    }
    // In the order the output types were asked for.
    files.sort_by_key(|f| spec.output_types.iter().position(|t| *t == f.file_type));
    Ok(succeeded(TaskOutput::Concat { files }, new_media))
}

fn has_audio(s: &Source) -> bool {
    s.meta.streams.iter().any(|st| st.codec_type == "audio")
}

/// H.264 with 4:2:0 chroma needs even dimensions.
fn even(n: u32) -> u32 {
    (n & !1).max(2)
}
