//! Image sprites: a thumbnail every N seconds, tiled into sprite images, with
//! a WebVTT index that maps each time range to its tile
//! (`sprite_001.jpg#xywh=x,y,w,h`). The images and the index are one media
//! file whose URL is the index.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

use super::{RunContext, RunResult, Source, Stop, at_stage, ffmpeg, stored, succeeded};
use crate::media::MediaFile;
use crate::task::definitions::{SpriteDefinition, sprite_definition};
use crate::task::{SpriteSet, SpritesSpec, TaskOutput, errcode};

const INDEX: &str = "index.vtt";

pub(super) async fn run(
    ctx: &RunContext<'_>,
    source: &Source,
    spec: &SpritesSpec,
) -> Result<RunResult, Stop> {
    let (set, media) = make(ctx, source, spec.definition, ctx.on_progress).await?;
    Ok(succeeded(TaskOutput::ImageSprites(set), vec![media]))
}

pub(super) async fn make(
    ctx: &RunContext<'_>,
    source: &Source,
    definition: i32,
    on_progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<(SpriteSet, MediaFile), Stop> {
    let def = sprite_definition(definition).ok_or_else(|| {
        Stop::Failed(
            errcode::SPRITES_FAILED,
            format!("unknown definition {definition}"),
        )
    })?;
    let io = |what: &Path, e: std::io::Error| {
        Stop::Failed(errcode::INTERNAL_IO, format!("{}: {e}", what.display()))
    };
    let thumbs = ctx.scratch.join("thumbs");
    let out = ctx.scratch.join("sprites");
    for dir in [&thumbs, &out] {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let (w, h) = (def.width, def.height);

    // 1. One thumbnail per interval, fitted into w x h.
    let mut args: Vec<OsString> = vec!["-i".into(), source.arg()];
    args.extend([
        "-map".into(),
        "0:v:0".into(),
        "-vf".into(),
        format!(
            // eof_action=pass keeps the last thumbnail of a source shorter
            // than a whole interval past it (a 2 s source has one at 0).
            "fps=1/{}:eof_action=pass,scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2",
            def.interval_seconds
        )
        .into(),
        "-q:v".into(),
        "3".into(),
    ]);
    args.push(thumbs.join("t_%05d.jpg").into());
    let half = |f: f64| on_progress(f * 0.9);
    ffmpeg::run(
        ctx.ffmpeg,
        args,
        source.meta.duration_seconds,
        &half,
        ctx.cancel,
    )
    .await
    .map_err(at_stage(errcode::SPRITES_FAILED))?;
    let count = std::fs::read_dir(&thumbs)
        .map_err(|e| io(&thumbs, e))?
        .filter(|e| e.is_ok())
        .count() as u32;
    if count == 0 {
        return Err(Stop::Failed(
            errcode::SPRITES_FAILED,
            "ffmpeg wrote no thumbnail".into(),
        ));
    }

    // 2. Tiles of columns x rows; the last image is padded.
    let mut args: Vec<OsString> = ["-framerate", "1", "-i"].map(OsString::from).to_vec();
    args.push(thumbs.join("t_%05d.jpg").into());
    args.extend(
        [
            "-vf".to_string(),
            format!("tile={}x{}", def.columns, def.rows),
            "-q:v".into(),
            "3".into(),
        ]
        .map(OsString::from),
    );
    args.push(out.join("sprite_%03d.jpg").into());
    ffmpeg::run(ctx.ffmpeg, args, 0.0, &|_| {}, ctx.cancel)
        .await
        .map_err(at_stage(errcode::SPRITES_FAILED))?;
    let per_image = def.columns * def.rows;
    let images = count.div_ceil(per_image);
    for i in 1..=images {
        let path = out.join(sprite_name(i));
        if !path.is_file() {
            return Err(Stop::Failed(
                errcode::SPRITES_FAILED,
                format!("ffmpeg did not write {}", sprite_name(i)),
            ));
        }
    }
    let vtt = web_vtt(def, count, source.meta.duration_seconds);
    std::fs::write(out.join(INDEX), vtt).map_err(|e| io(&out, e))?;

    let media = ctx
        .library
        .adopt_output_dir(ctx.task.app_id, &ctx.task.id, &out, INDEX)
        .await
        .map_err(stored)?;
    let set = SpriteSet {
        file_id: media.file_id.clone(),
        definition: def.id,
        total_count: count,
        image_urls: (1..=images)
            .map(|i| ctx.library.url_of(&media.file_id, &sprite_name(i)))
            .collect(),
        web_vtt_url: ctx.library.url_of(&media.file_id, INDEX),
    };
    Ok((set, media))
}

fn sprite_name(i: u32) -> String {
    format!("sprite_{i:03}.jpg")
}

/// One cue per thumbnail: its time range and its tile.
fn web_vtt(def: &SpriteDefinition, count: u32, duration: f64) -> String {
    let mut vtt = String::from("WEBVTT\n");
    let per_image = def.columns * def.rows;
    for k in 0..count {
        let start = f64::from(k * def.interval_seconds);
        let end = f64::from((k + 1) * def.interval_seconds).min(duration.max(start));
        let image = sprite_name(k / per_image + 1);
        let x = (k % def.columns) * def.width;
        let y = (k % per_image / def.columns) * def.height;
        let _ = write!(
            vtt,
            "\n{} --> {}\n{image}#xywh={x},{y},{},{}\n",
            cue_time(start),
            cue_time(end),
            def.width,
            def.height
        );
    }
    vtt
}

fn cue_time(seconds: f64) -> String {
    let ms = (seconds * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cues_walk_the_grid_and_the_images() {
        let def = sprite_definition(20).expect("definition 20");
        let vtt = web_vtt(def, 27, 53.5);
        assert!(vtt.starts_with(
            "WEBVTT\n\n00:00:00.000 --> 00:00:02.000\nsprite_001.jpg#xywh=0,0,160,90\n"
        ));
        // Thumbnails 5 and 6 open the second row.
        assert!(vtt.contains("00:00:10.000 --> 00:00:12.000\nsprite_001.jpg#xywh=0,90,160,90\n"));
        assert!(vtt.contains("00:00:12.000 --> 00:00:14.000\nsprite_001.jpg#xywh=160,90,160,90\n"));
        // Thumbnail 26 is the second of the second image; the last cue ends
        // at the end of the source.
        assert!(vtt.contains("00:00:50.000 --> 00:00:52.000\nsprite_002.jpg#xywh=0,0,160,90\n"));
        assert!(vtt.contains("00:00:52.000 --> 00:00:53.500\nsprite_002.jpg#xywh=160,0,160,90\n"));
        assert_eq!(vtt.matches("-->").count(), 27);
    }
}
