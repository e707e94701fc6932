//! The worker pool. Claims queued tasks (priority, then FIFO) while a worker
//! slot is free, runs each under a lease it renews by heartbeat, and writes
//! the result with the lease's fencing token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::time::Instant;

use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::EngineConfig;
use crate::events::envelope;
use crate::exec::{self, Puller, RunContext, RunResult, Step};
use crate::ids::{FileId, TaskId};
use crate::media::{MediaFile, MediaLibrary};
use crate::store::{Claim, Lease, LeaseState, Store};
use crate::task::Outcome;
use crate::task::procedure::{NotifyMode, overall_progress};
use crate::task::{Task, TaskOutput, TaskSpec};
use crate::time;

/// How often a running task renews its lease and writes its progress.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long an idle worker waits before looking at the queue again even
/// without a wake-up (tasks written by another process).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// A procedure's subtask progress is written at most this often.
const STEP_FLUSH: Duration = Duration::from_secs(1);

/// What recording a procedure's steps needs of its run.
struct Steps<'a> {
    task: &'a Task,
    source: Option<&'a MediaFile>,
    lease: &'a Lease,
    stop: &'a CancellationToken,
    user_cancelled: &'a AtomicBool,
    lost: &'a AtomicBool,
}

struct Running {
    stop: CancellationToken,
    user_cancelled: Arc<AtomicBool>,
    progress: Arc<AtomicU8>,
    done: watch::Receiver<bool>,
}

pub(crate) struct Scheduler {
    store: Arc<dyn Store>,
    library: MediaLibrary,
    config: EngineConfig,
    wake: Notify,
    running: Mutex<HashMap<TaskId, Running>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// One permit per worker: a claimed task holds one; a procedure may
    /// borrow free ones for more subtasks at once.
    slots: Arc<Semaphore>,
    puller: Puller,
    ffmpeg: crate::exec::Ffmpeg,
    /// Bumped at every change of a task (WatchTask).
    changes: Arc<super::watch::TaskChanges>,
}

impl Scheduler {
    pub(crate) fn start(
        store: Arc<dyn Store>,
        library: MediaLibrary,
        config: EngineConfig,
        children: crate::exec::Children,
        changes: Arc<super::watch::TaskChanges>,
        vital: &crate::vital::Vital,
    ) -> crate::Result<Arc<Scheduler>> {
        let scheduler = Arc::new(Scheduler {
            puller: Puller::new(config.outbound_policy.clone())?,
            changes,
            ffmpeg: crate::exec::Ffmpeg {
                program: config.ffmpeg.clone(),
                children,
                data_dir: config.data_dir.clone(),
            },
            slots: Arc::new(Semaphore::new(config.workers)),
            store,
            library,
            config,
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let run = Arc::clone(&scheduler);
        vital.spawn(&scheduler.tracker, "the task claim loop", run.claim_loop());
        Ok(scheduler)
    }

    /// A task was queued: a free worker should look.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// The live progress of a task running in this process.
    pub(crate) fn live_progress(&self, id: &TaskId) -> Option<u8> {
        let running = self.running.lock().ok()?;
        running.get(id).map(|r| r.progress.load(Ordering::Relaxed))
    }

    /// Stops a task running in this process and waits (bounded) until its
    /// worker has recorded the end. False when it does not run here.
    pub(crate) async fn cancel_local(&self, id: &TaskId, wait: Duration) -> bool {
        let done = {
            let Ok(running) = self.running.lock() else {
                return false;
            };
            let Some(r) = running.get(id) else {
                return false;
            };
            r.user_cancelled.store(true, Ordering::SeqCst);
            r.stop.cancel();
            r.done.clone()
        };
        let mut done = done;
        let _ = tokio::time::timeout(wait, done.wait_for(|d| *d)).await;
        true
    }

    /// Stops claiming, gives every running task back to the queue and waits
    /// for the workers to finish doing so.
    pub(crate) async fn shutdown(&self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    async fn claim_loop(self: Arc<Self>) {
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&self.slots).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = self.shutdown.cancelled() => return,
            };
            let now = time::now();
            let claim = match self
                .store
                .claim_next(time::after(now, self.config.lease), now)
                .await
            {
                Ok(Some(claim)) => {
                    self.changes.bump();
                    claim
                }
                Ok(None) => {
                    // The slot is free while nothing waits: a running
                    // procedure may borrow it for a subtask.
                    drop(permit);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!("claiming a task failed: {e}");
                    drop(permit);
                    tokio::select! {
                        _ = tokio::time::sleep(IDLE_POLL) => {}
                        _ = self.shutdown.cancelled() => return,
                    }
                    continue;
                }
            };
            let worker = Arc::clone(&self);
            self.tracker.spawn(async move {
                worker.execute(claim).await;
                drop(permit);
            });
        }
    }

    async fn execute(&self, claim: Claim) {
        let Claim { task, lease } = claim;
        let stop = self.shutdown.child_token();
        let user_cancelled = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicU8::new(0));
        let (done_tx, done_rx) = watch::channel(false);
        if let Ok(mut running) = self.running.lock() {
            running.insert(
                task.id.clone(),
                Running {
                    stop: stop.clone(),
                    user_cancelled: Arc::clone(&user_cancelled),
                    progress: Arc::clone(&progress),
                    done: done_rx,
                },
            );
        }
        tracing::info!(task_id = %task.id, attempt = task.attempt, "task started");
        let started = Instant::now();

        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.heartbeat(&lease, &stop, &user_cancelled, &progress, &lost);
        let mut inputs = Vec::new();
        for file_id in task.spec.input_files() {
            let media = match self.store.get_media(task.app_id, file_id).await {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(task_id = %task.id, "reading input {file_id} failed: {e}");
                    None
                }
            };
            inputs.push((file_id.clone(), media));
        }
        let source = inputs.first().and_then(|(_, m)| m.clone());
        let (steps_tx, steps_rx) = mpsc::unbounded_channel();
        let work = async {
            let scratch = match self
                .library
                .scratch_dir(&format!("run-{}-{}", task.id, lease.token))
                .await
            {
                Ok(dir) => dir,
                Err(e) => {
                    let failed = Outcome::Finished {
                        err_code: crate::task::errcode::INTERNAL_IO,
                        message: e.to_string(),
                        output: None,
                        new_media: Vec::new(),
                        follow_up: None,
                    };
                    return (RunResult::Done(failed), None);
                }
            };
            let on_progress = |f: f64| {
                // 100 is written only with the result.
                let pct = (f * 100.0).floor().clamp(0.0, 99.0) as u8;
                if progress.fetch_max(pct, Ordering::Relaxed) < pct {
                    self.changes.bump();
                }
            };
            let result = exec::run(RunContext {
                task: &task,
                library: &self.library,
                ffmpeg: &self.ffmpeg,
                puller: &self.puller,
                scratch: scratch.clone(),
                inputs,
                on_progress: &on_progress,
                cancel: &stop,
                slots: &self.slots,
                steps: steps_tx,
            })
            .await;
            (result, Some(scratch))
        };
        let steps = Steps {
            task: &task,
            source: source.as_ref(),
            lease: &lease,
            stop: &stop,
            user_cancelled: &user_cancelled,
            lost: &lost,
        };
        let ((result, scratch), (), ()) = tokio::join!(
            async {
                let r = work.await;
                stop.cancel(); // ends the heartbeat too
                r
            },
            heartbeat,
            self.record_steps(steps, steps_rx),
        );

        let now = time::now();
        // What the log line says of this run.
        let ended = match &result {
            _ if lost.load(Ordering::SeqCst) => "lease lost",
            RunResult::Cancelled if user_cancelled.load(Ordering::SeqCst) => "aborted",
            RunResult::Cancelled => "requeued (shutting down)",
            RunResult::Done(Outcome::Finished { err_code: 0, .. }) => "succeeded",
            RunResult::Done(Outcome::Finished { .. }) => "failed",
            RunResult::Done(Outcome::Deleted { .. }) => "succeeded",
            RunResult::Done(Outcome::Aborted) => "aborted",
        };
        let err_code = match &result {
            RunResult::Done(Outcome::Finished { err_code, .. }) => *err_code,
            _ => 0,
        };
        let recorded = if lost.load(Ordering::SeqCst) {
            tracing::warn!(task_id = %task.id, "lease lost; the result of this run is dropped");
            Ok(None)
        } else {
            match result {
                RunResult::Cancelled if user_cancelled.load(Ordering::SeqCst) => {
                    self.store.finish(&lease, Outcome::Aborted, now).await
                }
                RunResult::Cancelled => self
                    .store
                    .release(&lease)
                    .await
                    .map(|held| held.then(Vec::new)),
                RunResult::Done(outcome) => {
                    let written: Vec<FileId> = match &outcome {
                        Outcome::Finished { new_media, .. } => {
                            new_media.iter().map(|m| m.file_id.clone()).collect()
                        }
                        _ => Vec::new(),
                    };
                    let recorded = self.store.finish(&lease, outcome, now).await;
                    if !matches!(recorded, Ok(Some(_))) {
                        for file in &written {
                            self.library.discard(file).await;
                        }
                    }
                    recorded
                }
            }
        };
        self.changes.bump();
        match recorded {
            Ok(Some(removed)) => {
                // Rows are gone, with a record of their objects: a file is
                // never served without its row, and what a crash or a
                // storage outage leaves here, the sweeper removes.
                self.library.removed(&removed).await;
                // A pull may have queued a procedure on its file.
                self.wake();
                tracing::info!(
                    task_id = %task.id,
                    attempt = task.attempt,
                    outcome = ended,
                    err_code,
                    seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
                    "task run ended"
                );
            }
            Ok(None) => {
                tracing::warn!(task_id = %task.id, "task run not recorded: lease no longer held")
            }
            Err(e) => tracing::error!(task_id = %task.id, "recording the task run failed: {e}"),
        }
        if let Some(dir) = scratch {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
        if let Ok(mut running) = self.running.lock() {
            running.remove(&task.id);
        }
        let _ = done_tx.send(true);
    }

    /// Records a procedure's steps as they come, until its run ends: a
    /// subtask's start or end at once (with its files, and its event in
    /// CHANGE mode), progress alone at most every `STEP_FLUSH`.
    async fn record_steps(&self, s: Steps<'_>, mut rx: mpsc::UnboundedReceiver<Step>) {
        let notify = matches!(&s.task.spec,
            TaskSpec::Procedure(p) if p.plan.notify_mode == NotifyMode::Change);
        let mut pending: Option<Step> = None;
        let mut last = Instant::now();
        loop {
            let next = if pending.is_some() {
                match tokio::time::timeout(STEP_FLUSH.saturating_sub(last.elapsed()), rx.recv())
                    .await
                {
                    Ok(next) => next,
                    Err(_) => {
                        if let Some(step) = pending.take() {
                            self.write_step(&s, step, false).await;
                            last = Instant::now();
                        }
                        continue;
                    }
                }
            } else {
                rx.recv().await
            };
            // None: the run ended; its result supersedes any pending step.
            let Some(step) = next else { return };
            if step.changed || !step.new_media.is_empty() {
                pending = None;
                let event = notify && step.changed;
                self.write_step(&s, step, event).await;
                last = Instant::now();
            } else {
                pending = Some(step);
            }
        }
    }

    async fn write_step(&self, s: &Steps<'_>, step: Step, event: bool) {
        if s.lost.load(Ordering::SeqCst) {
            for media in &step.new_media {
                self.library.discard(&media.file_id).await;
            }
            return;
        }
        let progress = overall_progress(&step.subtasks);
        let output = TaskOutput::Procedure {
            subtasks: step.subtasks,
        };
        let draft = event.then(|| {
            let mut now = s.task.clone();
            now.output = Some(output.clone());
            envelope::procedure_state(&now, s.source, "PROCESSING", 0, "")
        });
        let written = self
            .store
            .record_step(s.lease, progress, &output, step.new_media.clone(), draft)
            .await;
        match written {
            Ok(LeaseState::Held { cancel_requested }) => {
                self.changes.bump();
                if cancel_requested {
                    s.user_cancelled.store(true, Ordering::SeqCst);
                    s.stop.cancel();
                }
                return;
            }
            Ok(LeaseState::Lost) => {
                s.lost.store(true, Ordering::SeqCst);
                s.stop.cancel();
            }
            Err(e) => tracing::error!(task_id = %s.task.id, "recording a subtask failed: {e}"),
        }
        for media in &step.new_media {
            self.library.discard(&media.file_id).await;
        }
    }

    /// Renews the lease and writes progress until `stop`; cancels the run when
    /// the task's cancel is requested (possibly by another process) or the
    /// lease is lost.
    async fn heartbeat(
        &self,
        lease: &Lease,
        stop: &CancellationToken,
        user_cancelled: &AtomicBool,
        progress: &AtomicU8,
        lost: &AtomicBool,
    ) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(HEARTBEAT) => {}
            }
            let pct = progress.load(Ordering::Relaxed);
            match self
                .store
                .heartbeat(lease, pct, time::after(time::now(), self.config.lease))
                .await
            {
                Ok(LeaseState::Held {
                    cancel_requested: false,
                }) => {}
                Ok(LeaseState::Held {
                    cancel_requested: true,
                }) => {
                    user_cancelled.store(true, Ordering::SeqCst);
                    stop.cancel();
                }
                Ok(LeaseState::Lost) => {
                    lost.store(true, Ordering::SeqCst);
                    stop.cancel();
                }
                Err(e) => tracing::warn!(task_id = %lease.task_id, "heartbeat failed: {e}"),
            }
        }
    }
}
