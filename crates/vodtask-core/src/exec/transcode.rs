//! Transcode: one ffmpeg run decodes the source once and writes one output
//! per definition, an MP4 file or an HLS playlist with its segments.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use super::ffmpeg;
use super::{RunContext, RunResult, Source, Stop, at_stage, succeeded};
use crate::media::MediaFile;
use crate::task::definitions::{
    Container, TranscodeDefinition, output_height, transcode_definition,
};
use crate::task::{PlayItem, TaskOutput, TranscodeSpec, errcode};

/// HLS segment length, in seconds; keyframes are forced on its boundaries.
const HLS_SEGMENT_SECONDS: u32 = 4;
/// The playlist of an HLS output; its segments lie beside it.
pub(super) const HLS_PLAYLIST: &str = "index.m3u8";

pub(super) async fn run(
    ctx: &RunContext<'_>,
    source: &Source,
    spec: &TranscodeSpec,
) -> Result<RunResult, Stop> {
    let (play_set, new_media) = encode(ctx, source, &spec.definitions, ctx.on_progress).await?;
    Ok(succeeded(TaskOutput::Transcode { play_set }, new_media))
}

/// Encodes every definition in one ffmpeg run and adopts the outputs.
pub(super) async fn encode(
    ctx: &RunContext<'_>,
    source: &Source,
    definitions: &[i32],
    on_progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(Vec<PlayItem>, Vec<MediaFile>), Stop> {
    let (args, outputs) = command(&source.arg(), source.meta.height, definitions, &ctx.scratch)?;
    ffmpeg::run(
        ctx.ffmpeg,
        args,
        source.meta.duration_seconds,
        on_progress,
        ctx.cancel,
    )
    .await
    .map_err(at_stage(errcode::TRANSCODE_FAILED))?;

    // Each adoption hashes, syncs and probes one output: side by side, the
    // probes (most of the time after ffmpeg) overlap.
    let adopting = std::time::Instant::now();
    let adopted = futures::future::join_all(outputs.iter().map(|(_, output)| async move {
        match output {
            Output::File(path) => {
                ctx.library
                    .adopt_output(ctx.task.app_id, &ctx.task.id, path, &file_name(path))
                    .await
            }
            Output::Dir(dir) => {
                ctx.library
                    .adopt_output_dir(ctx.task.app_id, &ctx.task.id, dir, HLS_PLAYLIST)
                    .await
            }
        }
    }))
    .await;
    tracing::debug!(
        seconds = adopting.elapsed().as_secs_f64(),
        "transcode outputs stored"
    );
    let mut stored_ok = Vec::new();
    let mut first_error = None;
    for a in adopted {
        match a {
            Ok(media) => stored_ok.push(media),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        for media in &stored_ok {
            ctx.library.discard(&media.file_id).await;
        }
        return Err(super::stored(e));
    }
    let mut play_set = Vec::new();
    let mut new_media = Vec::new();
    for ((def, _), media) in outputs.iter().zip(stored_ok) {
        let out = media.metadata.clone().unwrap_or_default();
        play_set.push(PlayItem {
            definition: def.id,
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
    Ok((play_set, new_media))
}

/// The ffmpeg arguments (after `BASE_ARGS`) that transcode `source` to
/// `definitions` in `out_dir`, and where each output will be.
fn command(
    source: &OsStr,
    source_height: u32,
    definitions: &[i32],
    out_dir: &Path,
) -> Result<(Vec<OsString>, Vec<Planned>), Stop> {
    let mut args: Vec<OsString> = vec!["-i".into(), source.into()];
    let mut outputs = Vec::new();
    for id in definitions {
        let def = transcode_definition(*id).ok_or_else(|| {
            Stop::Failed(
                errcode::TRANSCODE_FAILED,
                format!("unknown definition {id}"),
            )
        })?;
        let height = output_height(def.height, source_height);
        let (out_args, output) = output_args(out_dir, def, height)?;
        args.extend(out_args);
        outputs.push((def, output));
    }
    Ok((args, outputs))
}

/// The whole ffmpeg command line (without the program) vodtask runs for a
/// transcode, so that a benchmark can run exactly the same one directly.
pub fn transcode_command_line(
    source: &Path,
    source_height: u32,
    definitions: &[i32],
    out_dir: &Path,
) -> crate::Result<Vec<OsString>> {
    let (args, _) =
        command(source.as_os_str(), source_height, definitions, out_dir).map_err(|stop| {
            crate::Error::invalid(
                "definitions",
                match stop {
                    Stop::Failed(_, reason) => reason,
                    Stop::Cancelled => "cancelled".into(),
                },
            )
        })?;
    let mut line: Vec<OsString> = ffmpeg::BASE_ARGS.map(OsString::from).to_vec();
    line.extend(args);
    Ok(line)
}

/// A definition and where its output will be.
type Planned = (&'static TranscodeDefinition, Output);

enum Output {
    File(PathBuf),
    /// An HLS playlist and segments.
    Dir(PathBuf),
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The encoder and muxer arguments of one definition.
fn output_args(
    scratch: &Path,
    def: &TranscodeDefinition,
    height: u32,
) -> Result<(Vec<OsString>, Output), Stop> {
    let mut args: Vec<OsString> = ["-map", "0:v:0", "-map", "0:a:0?"]
        .map(OsString::from)
        .to_vec();
    args.extend(h264_args(
        Some(&format!("scale=-2:{height}")),
        Some(def.max_video_kbps),
        def.audio_kbps,
    ));
    match def.container {
        Container::Mp4 => {
            let path = scratch.join(format!("f{}.mp4", def.id));
            args.extend(["-movflags", "+faststart"].map(OsString::from));
            args.push(path.clone().into());
            Ok((args, Output::File(path)))
        }
        Container::Hls => {
            let dir = scratch.join(format!("f{}", def.id));
            std::fs::create_dir_all(&dir).map_err(|e| {
                Stop::Failed(
                    errcode::INTERNAL_IO,
                    format!("create {}: {e}", dir.display()),
                )
            })?;
            args.extend(hls_args(&dir));
            Ok((args, Output::Dir(dir)))
        }
    }
}

/// H.264 (CRF 23, capped at `max_video_kbps` when given) and AAC, with the
/// video filter `vf`.
pub(super) fn h264_args(
    vf: Option<&str>,
    max_video_kbps: Option<u32>,
    audio_kbps: u32,
) -> Vec<OsString> {
    let mut args: Vec<String> = Vec::new();
    if let Some(vf) = vf {
        args.extend(["-vf".into(), vf.into()]);
    }
    args.extend([
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        "veryfast".into(),
        "-crf".into(),
        "23".into(),
    ]);
    if let Some(kbps) = max_video_kbps {
        args.extend([
            "-maxrate".into(),
            format!("{kbps}k"),
            "-bufsize".into(),
            format!("{}k", kbps * 2),
        ]);
    }
    args.extend([
        "-pix_fmt".into(),
        "yuv420p".into(),
        "-c:a".into(),
        "aac".into(),
        "-b:a".into(),
        format!("{audio_kbps}k"),
    ]);
    args.into_iter().map(OsString::from).collect()
}

/// Muxes into `dir/index.m3u8` with segments `dir/seg_00000.ts`…, a VOD
/// playlist; keyframes on segment boundaries so that segments are even.
pub(super) fn hls_args(dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-force_key_frames".to_string(),
        format!("expr:gte(t,n_forced*{HLS_SEGMENT_SECONDS})"),
        "-f".into(),
        "hls".into(),
        "-hls_time".into(),
        HLS_SEGMENT_SECONDS.to_string(),
        "-hls_playlist_type".into(),
        "vod".into(),
        "-hls_segment_filename".into(),
    ]
    .map(OsString::from)
    .to_vec();
    args.push(dir.join("seg_%05d.ts").into());
    args.push(dir.join(HLS_PLAYLIST).into());
    args
}
