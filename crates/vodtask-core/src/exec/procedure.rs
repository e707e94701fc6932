//! Procedures: the subtasks run on one source, as many at once as the worker
//! pool has free slots (the procedure's own slot always runs one). Every
//! change of a subtask is sent as a `Step`, which the scheduler records (with
//! its files, and its event in CHANGE mode) while the procedure goes on.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::OwnedSemaphorePermit;

use super::{RunContext, RunResult, Source, Stop, cover, snapshot, sprites, transcode};
use crate::media::MediaFile;
use crate::task::Outcome;
use crate::task::TaskOutput;
use crate::task::procedure::{
    ProcedureSpec, SubtaskOutput, SubtaskSpec, SubtaskState, SubtaskStatus, overall_progress,
};
use crate::time;

/// The subtasks as they stand after a change.
pub(crate) struct Step {
    pub subtasks: Vec<SubtaskState>,
    /// A subtask started or ended (not just progress): CHANGE mode sends an
    /// event for it.
    pub changed: bool,
    /// Files a subtask wrote, recorded with this step.
    pub new_media: Vec<MediaFile>,
}

/// Which worker slot a subtask runs in.
enum Slot {
    /// The procedure's own.
    Own,
    /// A free slot of the pool, given back when the subtask ends.
    Borrowed { _permit: OwnedSemaphorePermit },
}

pub(super) async fn run(
    ctx: &RunContext<'_>,
    source: &Source,
    spec: &ProcedureSpec,
) -> Result<RunResult, Stop> {
    let state = Arc::new(Mutex::new(spec.plan.initial_state()));
    let total = spec.plan.subtasks.len();
    let mut running = FuturesUnordered::new();
    let mut next = 0;
    let mut own_free = true;
    let mut cancelled = false;
    loop {
        while next < total {
            let slot = if own_free {
                own_free = false;
                Slot::Own
            } else if let Ok(permit) = Arc::clone(ctx.slots).try_acquire_owned() {
                Slot::Borrowed { _permit: permit }
            } else {
                break;
            };
            running.push(run_one(ctx, source, &state, next, slot));
            next += 1;
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            Some((own, stopped)) = running.next() => {
                cancelled |= stopped;
                own_free |= own;
            }
            Ok(permit) = Arc::clone(ctx.slots).acquire_owned(), if next < total && !cancelled => {
                running.push(run_one(ctx, source, &state, next, Slot::Borrowed { _permit: permit }));
                next += 1;
            }
        }
        if cancelled {
            // The cancel token stops the running ones; start no more.
            next = total;
        }
    }
    if cancelled || ctx.cancel.is_cancelled() {
        return Err(Stop::Cancelled);
    }
    let subtasks = lock(&state).clone();
    let failed: Vec<&SubtaskState> = subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Fail)
        .collect();
    let (err_code, message) = match failed.first() {
        None => (0, String::new()),
        Some(first) => (
            first.err_code,
            format!(
                "{} of {} subtasks failed; first: {} ({})",
                failed.len(),
                subtasks.len(),
                first.spec.type_name(),
                first.message
            ),
        ),
    };
    Ok(RunResult::Done(Outcome::Finished {
        err_code,
        message,
        output: Some(TaskOutput::Procedure { subtasks }),
        // Recorded step by step.
        new_media: Vec::new(),
        follow_up: None,
    }))
}

fn lock(state: &Mutex<Vec<SubtaskState>>) -> std::sync::MutexGuard<'_, Vec<SubtaskState>> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Sends the subtasks as they stand, and the procedure's progress.
fn publish(
    ctx: &RunContext<'_>,
    state: &Mutex<Vec<SubtaskState>>,
    changed: bool,
    new_media: Vec<MediaFile>,
) {
    let subtasks = lock(state).clone();
    (ctx.on_progress)(f64::from(overall_progress(&subtasks)) / 100.0);
    // The receiver lives as long as the run; a send can only fail after it.
    let _ = ctx.steps.send(Step {
        subtasks,
        changed,
        new_media,
    });
}

/// Runs subtask `i`; returns whether it ran in the procedure's own slot and
/// whether it was cancelled.
async fn run_one(
    ctx: &RunContext<'_>,
    source: &Source,
    state: &Arc<Mutex<Vec<SubtaskState>>>,
    i: usize,
    slot: Slot,
) -> (bool, bool) {
    let spec = {
        let mut s = lock(state);
        s[i].status = SubtaskStatus::Processing;
        s[i].begin_time = Some(time::now());
        s[i].spec.clone()
    };
    publish(ctx, state, true, Vec::new());
    let scratch = ctx.scratch.join(format!("subtask-{i}"));
    let on_progress = |f: f64| {
        let pct = (f * 100.0).floor().clamp(0.0, 99.0) as u8;
        let moved = {
            let mut s = lock(state);
            let moved = pct > s[i].progress;
            s[i].progress = s[i].progress.max(pct);
            moved
        };
        if moved {
            publish(ctx, state, false, Vec::new());
        }
    };
    let result = match std::fs::create_dir_all(&scratch) {
        Err(e) => Err(Stop::Failed(
            crate::task::errcode::INTERNAL_IO,
            format!("create {}: {e}", scratch.display()),
        )),
        Ok(()) => {
            let sub = RunContext {
                task: ctx.task,
                library: ctx.library,
                ffmpeg: ctx.ffmpeg,
                puller: ctx.puller,
                scratch,
                inputs: Vec::new(),
                on_progress: &on_progress,
                cancel: ctx.cancel,
                slots: ctx.slots,
                steps: ctx.steps.clone(),
            };
            run_subtask(&sub, source, &spec).await
        }
    };
    let (cancelled, new_media) = {
        let mut s = lock(state);
        let sub = &mut s[i];
        sub.finish_time = Some(time::now());
        match result {
            Ok((output, status, media)) => {
                sub.status = if status.0 == 0 {
                    SubtaskStatus::Success
                } else {
                    SubtaskStatus::Fail
                };
                (sub.err_code, sub.message) = status;
                if sub.status == SubtaskStatus::Success {
                    sub.progress = 100;
                }
                sub.output = Some(output);
                (false, media)
            }
            Err(Stop::Failed(code, message)) => {
                sub.status = SubtaskStatus::Fail;
                sub.err_code = code;
                sub.message = message;
                (false, Vec::new())
            }
            Err(Stop::Cancelled) => (true, Vec::new()),
        }
    };
    if !cancelled {
        publish(ctx, state, true, new_media);
    }
    // A borrowed slot goes back to the pool here.
    let own = matches!(slot, Slot::Own);
    drop(slot);
    (own, cancelled)
}

type SubtaskResult = (SubtaskOutput, (i32, String), Vec<MediaFile>);

async fn run_subtask(
    ctx: &RunContext<'_>,
    source: &Source,
    spec: &SubtaskSpec,
) -> Result<SubtaskResult, Stop> {
    let ok = (0, String::new());
    match spec {
        SubtaskSpec::Transcode { definition } => {
            let (mut items, media) =
                transcode::encode(ctx, source, &[*definition], ctx.on_progress).await?;
            let item = items.pop().ok_or_else(|| {
                Stop::Failed(
                    crate::task::errcode::TRANSCODE_FAILED,
                    "no output was written".into(),
                )
            })?;
            Ok((SubtaskOutput::Transcode(item), ok, media))
        }
        SubtaskSpec::SnapshotByTimeOffset {
            definition,
            time_offsets_ms,
        } => {
            let (pictures, media) =
                snapshot::take(ctx, source, *definition, time_offsets_ms, ctx.on_progress).await?;
            // A snapshot subtask lists its pictures even when one failed.
            let status = snapshot::summary(&pictures);
            Ok((
                SubtaskOutput::SnapshotByTimeOffset { pictures },
                status,
                media,
            ))
        }
        SubtaskSpec::ImageSprites { definition } => {
            let (set, media) = sprites::make(ctx, source, *definition, ctx.on_progress).await?;
            Ok((SubtaskOutput::ImageSprites(set), ok, vec![media]))
        }
        SubtaskSpec::CoverBySnapshot {
            definition,
            position,
        } => {
            let media = cover::take(ctx, source, *definition, *position, ctx.on_progress).await?;
            let output = SubtaskOutput::CoverBySnapshot {
                file_id: media.file_id.clone(),
                url: ctx.library.url_of(&media.file_id, &media.stored_name),
            };
            Ok((output, ok, vec![media]))
        }
    }
}
