//! Stable error codes of finished tasks (0 = success). Negative codes follow
//! the platform's convention of one range per processing stage; positive 7xxxx
//! codes are vodtask's own internal failures. Listed in docs/api.md.

/// The source file could not be read by ffprobe (corrupt, not media).
pub const PROBE_FAILED: i32 = -43001;
/// The source has no video stream.
pub const NO_VIDEO_STREAM: i32 = -43002;
/// ffmpeg failed while taking snapshots.
pub const SNAPSHOT_FAILED: i32 = -44001;
/// A snapshot time offset lies past the end of the source (per picture).
pub const SNAPSHOT_OFFSET_OUT_OF_RANGE: i32 = -44002;
/// ffmpeg failed while making image sprites.
pub const SPRITES_FAILED: i32 = -44003;
/// ffmpeg failed while transcoding.
pub const TRANSCODE_FAILED: i32 = -45001;
/// ffmpeg failed while joining the inputs of a concat.
pub const CONCAT_FAILED: i32 = -45002;
/// ffmpeg failed while cutting a clip.
pub const CLIP_FAILED: i32 = -45003;
/// A pull got an HTTP status other than 2xx (the message has it).
pub const PULL_HTTP_ERROR: i32 = -46001;
/// A pull did not finish within its timeout.
pub const PULL_TIMEOUT: i32 = -46002;
/// A pull's file is larger than the server's upload limit.
pub const PULL_TOO_LARGE: i32 = -46003;
/// A pull could not connect (or its address is not allowed), or the
/// transfer broke off.
pub const PULL_CONNECT_FAILED: i32 = -46004;
/// The source file is missing from the media library.
pub const SOURCE_MISSING: i32 = -47001;
/// DeleteMedia: a waiting or running task uses one of the files.
pub const FILE_IN_USE: i32 = -47002;
/// Clip: the start offset is not before the end of the source.
pub const CLIP_OUT_OF_RANGE: i32 = -47003;
/// vodtask could not store the output (disk full, permissions).
pub const INTERNAL_IO: i32 = 70001;
/// The task's worker was lost (crash) more often than the retry limit allows.
pub const WORKER_LOST: i32 = 70002;
/// In events: the task was cancelled (ABORTED).
pub const ABORTED: i32 = 70003;
/// The media storage (an S3-compatible store) did not answer, or answered
/// with errors, for longer than its client retries (30 s): the task could
/// not read its input or store its output. Nothing was stored; redo it.
pub const STORAGE_UNAVAILABLE: i32 = 70004;
