//! The worker pool. Claims queued tasks (priority, then FIFO) while a worker
//! slot is free, runs each under a lease it renews by heartbeat, and writes
//! the result with the lease's fencing token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::EngineConfig;
use crate::exec::{self, RunContext, RunResult};
use crate::ids::TaskId;
use crate::media::MediaLibrary;
use crate::store::{Claim, Lease, LeaseState, Outcome, Store};
use crate::time;

/// How often a running task renews its lease and writes its progress.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long an idle worker waits before looking at the queue again even
/// without a wake-up (tasks written by another process).
const IDLE_POLL: Duration = Duration::from_secs(1);

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
    queues: Arc<crate::queue::Queues>,
}

impl Scheduler {
    pub(crate) fn start(
        store: Arc<dyn Store>,
        library: MediaLibrary,
        config: EngineConfig,
        queues: Arc<crate::queue::Queues>,
    ) -> Arc<Scheduler> {
        let scheduler = Arc::new(Scheduler {
            store,
            library,
            config,
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            queues,
        });
        let run = Arc::clone(&scheduler);
        scheduler.tracker.spawn(run.claim_loop());
        scheduler
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
        let slots = Arc::new(Semaphore::new(self.config.workers));
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
                _ = self.shutdown.cancelled() => return,
            };
            let claim = loop {
                let now = time::now();
                match self.store.claim_next(now + self.config.lease, now).await {
                    Ok(Some(claim)) => break claim,
                    Ok(None) => {}
                    Err(e) => tracing::error!("claiming a task failed: {e}"),
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = self.shutdown.cancelled() => return,
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

        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.heartbeat(&lease, &stop, &user_cancelled, &progress, &lost);
        let source = match self.store.get_media(task.app_id, task.file_id()).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(task_id = %task.id, "reading the source failed: {e}");
                None
            }
        };
        let work = async {
            let scratch = match self
                .library
                .scratch_dir(&format!("run-{}-{}", task.id, lease.token))
                .await
            {
                Ok(dir) => dir,
                Err(e) => {
                    return (
                        RunResult::Done {
                            err_code: crate::task::errcode::INTERNAL_IO,
                            message: e.to_string(),
                            output: None,
                            new_media: Vec::new(),
                        },
                        None,
                    );
                }
            };
            let on_progress = |f: f64| {
                // 100 is written only with the result.
                let pct = (f * 100.0).floor().clamp(0.0, 99.0) as u8;
                progress.fetch_max(pct, Ordering::Relaxed);
            };
            let result = exec::run(RunContext {
                task: &task,
                library: &self.library,
                ffmpeg: &self.config.ffmpeg,
                scratch: scratch.clone(),
                source,
                on_progress: &on_progress,
                cancel: &stop,
            })
            .await;
            (result, Some(scratch))
        };
        let ((result, scratch), ()) = tokio::join!(
            async {
                let r = work.await;
                stop.cancel(); // ends the heartbeat too
                r
            },
            heartbeat
        );

        let now = time::now();
        let recorded = if lost.load(Ordering::SeqCst) {
            tracing::warn!(task_id = %task.id, "lease lost; the result of this run is dropped");
            Ok(false)
        } else {
            match result {
                RunResult::Cancelled if user_cancelled.load(Ordering::SeqCst) => {
                    self.store.finish(&lease, Outcome::Aborted, now).await
                }
                RunResult::Cancelled => self.store.release(&lease).await,
                RunResult::Done {
                    err_code,
                    message,
                    output,
                    new_media,
                } => {
                    let files: Vec<_> = new_media.iter().map(|m| m.file_id.clone()).collect();
                    let outcome = Outcome::Finished {
                        err_code,
                        message,
                        output,
                        new_media,
                    };
                    let recorded = self.store.finish(&lease, outcome, now).await;
                    if !matches!(recorded, Ok(true)) {
                        for file in &files {
                            self.library.discard(file).await;
                        }
                    }
                    recorded
                }
            }
        };
        // A finish or abort wrote the task's completion event.
        self.queues.committed(task.app_id);
        match recorded {
            Ok(true) => tracing::info!(task_id = %task.id, "task run recorded"),
            Ok(false) => {
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
                .heartbeat(lease, pct, time::now() + self.config.lease)
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
