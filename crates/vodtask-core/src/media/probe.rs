//! What ffprobe says about a file.

use std::path::Path;

use super::storage::Readable;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MediaMetadata {
    pub container: String,
    pub duration_seconds: f64,
    pub width: u32,
    pub height: u32,
    pub bitrate: i64,
    pub streams: Vec<MediaStream>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MediaStream {
    pub index: u32,
    pub codec_type: String,
    pub codec: String,
    pub bitrate: i64,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub sample_rate: u32,
    pub channels: u32,
}

impl MediaMetadata {
    pub fn has_video(&self) -> bool {
        self.streams.iter().any(|s| s.codec_type == "video")
    }

    fn video(&self) -> Option<&MediaStream> {
        self.streams.iter().find(|s| s.codec_type == "video")
    }

    pub fn video_bitrate(&self) -> i64 {
        self.video().map_or(0, |v| v.bitrate)
    }
}

/// Runs ffprobe; Err holds ffprobe's reason, fit for a task's message.
pub async fn probe(ffprobe: &Path, file: &Readable) -> Result<MediaMetadata, String> {
    let output = crate::exec::child_command(ffprobe)
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(file.as_arg())
        .output()
        .await
        .map_err(|e| format!("cannot run {}: {e}", ffprobe.display()))?;
    if !output.status.success() {
        let reason = String::from_utf8_lossy(&output.stderr).trim().to_string();
        return Err(if reason.is_empty() {
            format!("ffprobe exited with {}", output.status)
        } else {
            match file {
                Readable::Path(path) => without_paths(&reason, path),
                Readable::Url(_) => redact_signed_urls(&reason),
            }
        });
    }
    parse(&output.stdout)
}

/// ffmpeg and ffprobe name a URL they read in their messages: a presigned
/// URL's query (its signature, valid for hours) is cut off before the
/// message reaches a log or an app.
pub(crate) fn redact_signed_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("X-Amz-") {
        // The query starts at the last '?' before it, within one token.
        let head = &rest[..at];
        let token_start = head
            .rfind(|c: char| c.is_whitespace() || c == '\'' || c == '"')
            .map_or(0, |i| i + 1);
        let cut = head[token_start..]
            .rfind('?')
            .map_or(at, |q| token_start + q);
        out.push_str(&rest[..cut]);
        out.push_str("?(signature removed)");
        let after = &rest[at..];
        // A presigned query holds only these (the rest is percent-encoded).
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || "%=&-_.~".contains(c)))
            .unwrap_or(after.len());
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// ffprobe names the file it read by its path ("/srv/data/media/<id>/
/// source.txt: Invalid data found..."), and the reason reaches apps
/// (DescribeMedia.probe_error, task messages), which need not learn where
/// the server keeps its data: the file becomes its name, files beside it
/// (an HLS playlist's segments) their names, and the directory `input`.
pub(crate) fn without_paths(reason: &str, file: &Path) -> String {
    let mut reason = reason.to_string();
    if let (Some(path), Some(name)) = (file.to_str(), file.file_name().and_then(|n| n.to_str())) {
        reason = reason.replace(path, name);
    }
    // Trimmed, a parent "/" is empty: nothing to replace then.
    let dir = file
        .parent()
        .and_then(Path::to_str)
        .map_or("", |d| d.trim_end_matches('/'));
    if !dir.is_empty() {
        reason = reason.replace(&format!("{dir}/"), "").replace(dir, "input");
    }
    reason
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    format: RawFormat,
    #[serde(default)]
    streams: Vec<RawStream>,
}

#[derive(Deserialize, Default)]
struct RawFormat {
    #[serde(default)]
    format_name: String,
    duration: Option<String>,
    bit_rate: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawStream {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    codec_type: String,
    #[serde(default)]
    codec_name: String,
    bit_rate: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    avg_frame_rate: Option<String>,
    sample_rate: Option<String>,
    channels: Option<u32>,
}

fn num<T: std::str::FromStr + Default>(s: Option<&str>) -> T {
    s.and_then(|s| s.parse().ok()).unwrap_or_default()
}

/// "30000/1001" → 29.97; "0/0" → 0.
fn rate(s: Option<&str>) -> f64 {
    let Some((n, d)) = s.and_then(|s| s.split_once('/')) else {
        return num(s);
    };
    let (n, d): (f64, f64) = (num(Some(n)), num(Some(d)));
    if d == 0.0 { 0.0 } else { n / d }
}

/// Public for the fuzz targets (fuzz/): ffprobe's JSON is shaped by the uploaded file.
pub fn parse(json: &[u8]) -> Result<MediaMetadata, String> {
    let raw: Raw =
        serde_json::from_slice(json).map_err(|e| format!("unreadable ffprobe output: {e}"))?;
    if raw.streams.is_empty() {
        return Err("no audio or video streams".to_string());
    }
    let streams: Vec<MediaStream> = raw
        .streams
        .into_iter()
        .map(|s| MediaStream {
            index: s.index,
            codec_type: s.codec_type,
            codec: s.codec_name,
            bitrate: num(s.bit_rate.as_deref()),
            width: s.width.unwrap_or(0),
            height: s.height.unwrap_or(0),
            fps: rate(s.avg_frame_rate.as_deref()),
            sample_rate: num(s.sample_rate.as_deref()),
            channels: s.channels.unwrap_or(0),
        })
        .collect();
    let (width, height) = streams
        .iter()
        .find(|s| s.codec_type == "video")
        .map_or((0, 0), |v| (v.width, v.height));
    Ok(MediaMetadata {
        container: raw.format.format_name,
        duration_seconds: num(raw.format.duration.as_deref()),
        width,
        height,
        bitrate: num(raw.format.bit_rate.as_deref()),
        streams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ffprobe_json() {
        let json = br#"{"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":320,"height":240,"avg_frame_rate":"30000/1001","bit_rate":"1000"},
            {"index":1,"codec_type":"audio","codec_name":"aac","sample_rate":"44100","channels":2}],
            "format":{"format_name":"mov,mp4","duration":"2.500000","bit_rate":"12345"}}"#;
        let m = parse(json).expect("parse");
        assert_eq!((m.width, m.height), (320, 240));
        assert!((m.duration_seconds - 2.5).abs() < 1e-9);
        assert!((m.streams[0].fps - 29.97).abs() < 0.01);
        assert_eq!(m.streams[1].sample_rate, 44100);
        assert_eq!(m.bitrate, 12345);
    }

    #[test]
    fn presigned_queries_are_cut_from_messages() {
        let url = "http://127.0.0.1:9000/b/p/123/source.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc";
        let said =
            format!("{url}: Invalid data found when processing input\nInput #0, from '{url}':");
        let redacted = redact_signed_urls(&said);
        assert!(!redacted.contains("X-Amz"), "{redacted}");
        assert!(!redacted.contains("abc"), "{redacted}");
        assert!(
            redacted.contains("/b/p/123/source.mp4?(signature removed): Invalid data"),
            "{redacted}"
        );
        assert!(redacted.contains("from '"), "{redacted}");
        assert_eq!(redact_signed_urls("no urls here"), "no urls here");
    }

    #[test]
    fn probe_errors_name_the_file_not_its_path() {
        let file = Path::new("/srv/vodtask-data/media/f_123/source.txt");
        assert_eq!(
            without_paths(
                "/srv/vodtask-data/media/f_123/source.txt: Invalid data found when processing input",
                file
            ),
            "source.txt: Invalid data found when processing input"
        );
        // A playlist's segment, the directory itself, a file: URL.
        let playlist = Path::new("/srv/vodtask-data/media/f_9/index.m3u8");
        let reason = without_paths(
            "/srv/vodtask-data/media/f_9/seg_001.ts: No such file or directory\n\
             Opening /srv/vodtask-data/media/f_9 failed\n\
             file:/srv/vodtask-data/media/f_9/index.m3u8: Invalid data",
            playlist,
        );
        assert_eq!(
            reason,
            "seg_001.ts: No such file or directory\n\
             Opening input failed\n\
             file:index.m3u8: Invalid data"
        );
        assert!(!reason.contains("/srv"), "{reason}");
        // Nothing to strip.
        assert_eq!(without_paths("no streams", file), "no streams");
    }

    #[test]
    fn no_streams_is_an_error() {
        assert!(parse(br#"{"format":{}}"#).is_err());
        assert!(parse(b"not json").is_err());
    }
}
