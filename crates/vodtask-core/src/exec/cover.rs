//! Cover by snapshot (a procedure subtask): one picture at a time or a
//! percentage of the duration.

use super::ffmpeg::RunError;
use super::{RunContext, Source, Stop, snapshot, stored};
use crate::media::MediaFile;
use crate::task::errcode;
use crate::task::procedure::CoverPosition;

pub(super) async fn take(
    ctx: &RunContext<'_>,
    source: &Source,
    definition: i32,
    position: CoverPosition,
    on_progress: &(dyn Fn(f64) + Send + Sync),
) -> Result<MediaFile, Stop> {
    let def = snapshot::definition_of(definition)?;
    let duration_ms = (source.meta.duration_seconds * 1000.0) as i64;
    let offset_ms = match position {
        CoverPosition::Time(seconds) => (seconds * 1000.0) as i64,
        // 100 % is the last frame, not the end.
        CoverPosition::Percent(p) => {
            ((duration_ms as f64 * p / 100.0) as i64).min(duration_ms - 100)
        }
    }
    .max(0);
    if offset_ms >= duration_ms {
        return Err(Stop::Failed(
            errcode::SNAPSHOT_OFFSET_OUT_OF_RANGE,
            format!("cover position {offset_ms} ms is not before the end ({duration_ms} ms)"),
        ));
    }
    let name = "cover.jpg";
    let path = snapshot::grab(ctx, source, def, offset_ms, name, on_progress)
        .await
        .map_err(|e| match e {
            RunError::Cancelled => Stop::Cancelled,
            RunError::Failed(reason) => Stop::Failed(errcode::SNAPSHOT_FAILED, reason),
        })?;
    ctx.library
        .adopt_output(ctx.task.app_id, &ctx.task.id, &path, name)
        .await
        .map_err(stored)
}
