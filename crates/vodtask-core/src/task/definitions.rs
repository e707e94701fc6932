//! Built-in output definitions, numbered as the platform numbers its presets.

/// The container of a transcode output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    /// An HLS playlist (`index.m3u8`) with its MPEG-TS segments beside it.
    Hls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranscodeDefinition {
    pub id: i32,
    pub name: &'static str,
    pub container: Container,
    /// Target frame height; the width follows the aspect ratio (even), and a
    /// smaller source is never upscaled.
    pub height: u32,
    /// Upper bound of the H.264 video bitrate (CRF 23 below it).
    pub max_video_kbps: u32,
    pub audio_kbps: u32,
}

pub const TRANSCODE_DEFINITIONS: &[TranscodeDefinition] = &[
    TranscodeDefinition {
        id: 100010,
        name: "MP4 360p",
        container: Container::Mp4,
        height: 360,
        max_video_kbps: 600,
        audio_kbps: 64,
    },
    TranscodeDefinition {
        id: 100020,
        name: "MP4 540p",
        container: Container::Mp4,
        height: 540,
        max_video_kbps: 1000,
        audio_kbps: 96,
    },
    TranscodeDefinition {
        id: 100030,
        name: "MP4 720p",
        container: Container::Mp4,
        height: 720,
        max_video_kbps: 1800,
        audio_kbps: 128,
    },
    TranscodeDefinition {
        id: 100040,
        name: "MP4 1080p",
        container: Container::Mp4,
        height: 1080,
        max_video_kbps: 3000,
        audio_kbps: 128,
    },
    TranscodeDefinition {
        id: 100210,
        name: "HLS 360p",
        container: Container::Hls,
        height: 360,
        max_video_kbps: 600,
        audio_kbps: 64,
    },
    TranscodeDefinition {
        id: 100220,
        name: "HLS 540p",
        container: Container::Hls,
        height: 540,
        max_video_kbps: 1000,
        audio_kbps: 96,
    },
    TranscodeDefinition {
        id: 100230,
        name: "HLS 720p",
        container: Container::Hls,
        height: 720,
        max_video_kbps: 1800,
        audio_kbps: 128,
    },
    TranscodeDefinition {
        id: 100240,
        name: "HLS 1080p",
        container: Container::Hls,
        height: 1080,
        max_video_kbps: 3000,
        audio_kbps: 128,
    },
];

pub fn transcode_definition(id: i32) -> Option<&'static TranscodeDefinition> {
    TRANSCODE_DEFINITIONS.iter().find(|d| d.id == id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotDefinition {
    pub id: i32,
    pub name: &'static str,
    /// None: the source resolution.
    pub height: Option<u32>,
    /// ffmpeg's JPEG quality scale, 2 (best) .. 31.
    pub jpeg_quality: u8,
}

pub const SNAPSHOT_DEFINITIONS: &[SnapshotDefinition] = &[
    SnapshotDefinition {
        id: 10,
        name: "JPEG, source resolution",
        height: None,
        jpeg_quality: 3,
    },
    SnapshotDefinition {
        id: 20,
        name: "JPEG 360p, high quality",
        height: Some(360),
        jpeg_quality: 2,
    },
];

pub fn snapshot_definition(id: i32) -> Option<&'static SnapshotDefinition> {
    SNAPSHOT_DEFINITIONS.iter().find(|d| d.id == id)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpriteDefinition {
    pub id: i32,
    pub name: &'static str,
    /// One thumbnail every this many seconds, the first at 0.
    pub interval_seconds: u32,
    /// Thumbnail size; the picture is fitted inside and letterboxed.
    pub width: u32,
    pub height: u32,
    /// Thumbnails per sprite image: `columns` x `rows`.
    pub columns: u32,
    pub rows: u32,
}

pub const SPRITE_DEFINITIONS: &[SpriteDefinition] = &[
    SpriteDefinition {
        id: 10,
        name: "every 10 s, 142x80, 10x10 per image",
        interval_seconds: 10,
        width: 142,
        height: 80,
        columns: 10,
        rows: 10,
    },
    SpriteDefinition {
        id: 20,
        name: "every 2 s, 160x90, 5x5 per image",
        interval_seconds: 2,
        width: 160,
        height: 90,
        columns: 5,
        rows: 5,
    },
];

pub fn sprite_definition(id: i32) -> Option<&'static SpriteDefinition> {
    SPRITE_DEFINITIONS.iter().find(|d| d.id == id)
}

/// The output height for a target height: never above the source's, and even
/// (H.264 with 4:2:0 chroma needs even dimensions).
pub fn output_height(target: u32, source: u32) -> u32 {
    let h = if source == 0 {
        target
    } else {
        target.min(source)
    };
    (h & !1).max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_upscales_and_stays_even() {
        assert_eq!(output_height(720, 240), 240);
        assert_eq!(output_height(360, 1080), 360);
        assert_eq!(output_height(1080, 719), 718);
    }

    #[test]
    fn definitions_are_found_by_id() {
        assert_eq!(transcode_definition(100030).map(|d| d.height), Some(720));
        assert!(transcode_definition(100050).is_none());
        assert_eq!(snapshot_definition(20).and_then(|d| d.height), Some(360));
    }
}
