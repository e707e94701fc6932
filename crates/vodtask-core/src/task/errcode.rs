//! Stable error codes of finished tasks (0 = success). Negative codes follow
//! the platform's convention of one range per processing stage; positive 7xxxx
//! codes are vodtask's own internal failures. Listed in the README.

/// The source file could not be read by ffprobe (corrupt, not media).
pub const PROBE_FAILED: i32 = -43001;
/// The source has no video stream.
pub const NO_VIDEO_STREAM: i32 = -43002;
/// ffmpeg failed while taking snapshots.
pub const SNAPSHOT_FAILED: i32 = -44001;
/// A snapshot time offset lies past the end of the source (per picture).
pub const SNAPSHOT_OFFSET_OUT_OF_RANGE: i32 = -44002;
/// ffmpeg failed while transcoding.
pub const TRANSCODE_FAILED: i32 = -45001;
/// The source file is missing from the media library.
pub const SOURCE_MISSING: i32 = -47001;
/// vodtask could not store the output (disk full, permissions).
pub const INTERNAL_IO: i32 = 70001;
/// The task's worker was lost (crash) more often than the retry limit allows.
pub const WORKER_LOST: i32 = 70002;
/// In events: the task was cancelled (ABORTED).
pub const ABORTED: i32 = 70003;
