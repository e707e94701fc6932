//! The engine: the task and media APIs every edge (gRPC, bindings) calls.
//! It validates, talks to the store, wakes the scheduler and runs the
//! periodic upkeep (lease recovery, retention).

mod events;
mod scheduler;
mod subscription;
mod watch;

pub use subscription::{StreamItem, Subscription};

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::scheduler::Scheduler;
use self::watch::TaskChanges;
pub use self::watch::TaskUpdate;
use crate::app::{ApiKey, App, KeyHash, validate_app_name};
use crate::callbacks::worker::PushWorkers;
use crate::data_dir;
use crate::error::{Error, Result};
use crate::ids::{AppId, FileId, TaskId};
use crate::media::{
    FileUrls, InputMode, LibraryConfig, MediaFile, MediaLibrary, Served, StorageConfig, Upload,
};
use crate::outbound::AddressPolicy;
use crate::queue::Hub;
use crate::store::{Access, Duty, Orphans, Store, StoreConfig, SyncMode};
use crate::task::procedure::{ProcedurePlan, ProcedureSpec};
use crate::task::query::{HourRange, Overview, TaskPage, TaskQuery, TimeRange};
use crate::task::{NewTask, Task, TaskRequest, TaskSpec, TaskStatus, TaskType};
use crate::time;
use crate::vital::Vital;

/// The name of the app created on an empty data dir.
pub const DEFAULT_APP: &str = "default";

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    /// Tasks run at once; 0 runs none (an API-only engine).
    pub workers: usize,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// Prefix of file URLs, e.g. `http://127.0.0.1:8080`.
    pub public_base_url: String,
    /// A running task's lease; renewed every second while its worker lives.
    pub lease: Duration,
    /// Recoveries after lost workers before a task ends with WORKER_LOST.
    pub max_recoveries: u32,
    /// Ended tasks are deleted this long after they finished.
    pub task_retention: Duration,
    pub max_upload_bytes: u64,
    /// Which addresses HTTP callbacks and pulls may connect to.
    pub outbound_policy: AddressPolicy,
    /// Where the engine's state is kept.
    pub store: StoreConfig,
    /// Whether every commit is fsynced (the default) or only handed to
    /// the OS.
    pub sync: SyncMode,
    /// Where media bytes are kept (`--storage`).
    pub storage: StorageConfig,
    /// What file URLs point at (`--file-urls`).
    pub file_urls: FileUrls,
    /// How executors read files kept in an object store.
    pub inputs: InputMode,
}

impl EngineConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            public_base_url: "http://127.0.0.1:8080".into(),
            lease: Duration::from_secs(30),
            max_recoveries: 3,
            task_retention: Duration::from_secs(7 * 24 * 3600),
            max_upload_bytes: 10 << 30,
            outbound_policy: AddressPolicy::default(),
            store: StoreConfig::default(),
            sync: SyncMode::Full,
            storage: StorageConfig::default(),
            file_urls: FileUrls::default(),
            inputs: InputMode::default(),
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// An [`Engine`] that may have been dropped.
#[derive(Clone)]
pub struct WeakEngine(std::sync::Weak<Inner>);

impl WeakEngine {
    pub fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

struct Inner {
    store: Arc<dyn Store>,
    library: MediaLibrary,
    config: EngineConfig,
    scheduler: Arc<Scheduler>,
    /// Known keys, with when each was last found in the store.
    keys: RwLock<HashMap<KeyHash, (App, std::time::Instant)>>,
    /// Event delivery: every app's queue.
    hub: Arc<Hub>,
    /// The callback workers of apps in PUSH mode.
    push: PushWorkers,
    /// Cancelled by `shutdown`: upkeep and open streams end.
    closing: CancellationToken,
    vital: Vital,
    /// Bumped by every change of a task, for WatchTask.
    task_changes: Arc<TaskChanges>,
    upkeep_tasks: TaskTracker,
    /// Held for the engine's lifetime: one engine per data dir.
    _lock: File,
}

/// How long a known key is trusted before it is looked up again: a key
/// revoked by `vodtask apps revoke` stops working within this.
const KEY_RECHECK: Duration = Duration::from_secs(1);

fn unknown_key() -> Error {
    Error::Unauthenticated("authorization: unknown or revoked API key".into())
}

/// How often the sweeper looks for objects to remove that were not removed
/// at once (a delete or a given-up write while the storage was down).
const MEDIA_SWEEP: Duration = Duration::from_secs(30);
/// How often expired events and ended tasks are deleted.
const RETENTION: Duration = Duration::from_secs(600);

/// How often a process sharing its store looks for apps another process
/// switched to PUSH mode or back.
const PUSH_APPS_RECHECK: Duration = Duration::from_secs(5);

/// How long CancelTask waits for a running task's worker to stop.
const CANCEL_WAIT: Duration = Duration::from_secs(10);

impl Engine {
    /// Opens the data dir (creating it), takes its lock, recovers tasks a
    /// previous process left running and starts the workers.
    pub async fn open(config: EngineConfig) -> Result<Engine> {
        let dir = &config.data_dir;
        if dir.exists() && !dir.is_dir() {
            return Err(Error::FailedPrecondition(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        // A wrong path shows now, not when the first task or upload fails.
        check_tool("ffmpeg", &config.ffmpeg).await?;
        check_tool("ffprobe", &config.ffprobe).await?;
        data_dir::create_private_dir(dir)?;
        let lock = data_dir::lock(dir)?;
        let store = crate::store::open(&config.store, dir, config.sync, Access::Engine).await?;
        // Before anything runs: ffmpeg that a killed predecessor left would
        // race this process's own run of the same task on its scratch files.
        let children = crate::exec::Children::open(dir)?;
        children.kill_leftovers();
        data_dir::clear_dir(&dir.join("tmp"));
        let library = MediaLibrary::open(
            &LibraryConfig {
                storage: config.storage.clone(),
                file_urls: config.file_urls.clone(),
                inputs: config.inputs,
                ffprobe: config.ffprobe.clone(),
                public_base_url: config.public_base_url.clone(),
                max_upload_bytes: config.max_upload_bytes,
            },
            dir,
            Arc::clone(&store),
        )
        .await?;
        // Start-up chores that fail are logged, not fatal: a server that
        // cannot start cannot be told, through its API, what to do instead.
        if its_turn(store.as_ref(), Duty::MediaSweep, MEDIA_SWEEP).await {
            match library.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    "removed the media of {n} files a previous run left unfinished or deleted"
                ),
                Err(e) => {
                    tracing::error!("removing media left by a crash failed (retried later): {e}")
                }
            }
        }

        if store.app_count().await? == 0 {
            let (_, key) = create_app(store.as_ref(), DEFAULT_APP).await?;
            data_dir::write_key_file(&dir.join("default.key"), key.expose())?;
            tracing::info!(
                "created app {DEFAULT_APP:?}; its API key is in {}",
                dir.join("default.key").display()
            );
        }
        // We hold the data dir's lock, so whatever is PROCESSING in a store
        // of our own was left by a process that died: run it again now
        // rather than after its lease. In a store other processes share,
        // running tasks may be theirs: only expired leases are orphans.
        // Should this fail, the leases' expiry recovers the same tasks later.
        let orphans = match store.shared_leases() {
            Some(_) => Orphans::ExpiredBefore(time::now()),
            None => Orphans::All,
        };
        match store
            .recover(orphans, config.max_recoveries, time::now())
            .await
        {
            Ok(r) if r.requeued + r.failed > 0 => {
                tracing::warn!(
                    requeued = r.requeued,
                    failed = r.failed,
                    "recovered tasks a previous run left running"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!("recovering tasks of a previous run failed: {e}"),
        }

        let vital = Vital::new();
        let task_changes = Arc::new(TaskChanges::new());
        let hub = Hub::new(Arc::clone(&store));
        let closing = CancellationToken::new();
        let upkeep_tasks = TaskTracker::new();
        let push = PushWorkers::new(
            Arc::clone(&hub),
            Arc::clone(&store),
            config.outbound_policy.clone(),
            vital.clone(),
            upkeep_tasks.clone(),
            closing.clone(),
        )?;
        let scheduler = Scheduler::start(
            Arc::clone(&store),
            library.clone(),
            config.clone(),
            children,
            Arc::clone(&task_changes),
            &vital,
        )?;
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                library,
                config,
                scheduler,
                keys: RwLock::new(HashMap::new()),
                hub,
                push,
                closing,
                vital,
                task_changes,
                upkeep_tasks,
                _lock: lock,
            }),
        };
        engine.inner.vital.spawn(
            &engine.inner.upkeep_tasks,
            "upkeep (lease recovery, retention)",
            engine.clone().upkeep(),
        );
        for app in engine.inner.store.push_apps().await? {
            engine
                .inner
                .push
                .sync(app, crate::events::DeliveryMode::Push);
        }
        Ok(engine)
    }

    /// Why the engine cannot go on (a panic in its background work, or a
    /// store that can no longer write), if so.
    pub fn failure(&self) -> Option<String> {
        self.inner
            .vital
            .failure()
            .or_else(|| self.inner.store.failure())
    }

    /// A handle that does not keep the engine (and its data dir's lock)
    /// alive, for edges that outlive it briefly (the HTTP port).
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    /// [`failure`](Self::failure) as a probe for a health endpoint, which
    /// does not keep the engine (and its data dir's lock) alive.
    pub fn health_probe(&self) -> impl Fn() -> Option<String> + Send + Sync + 'static {
        let engine = self.downgrade();
        move || engine.upgrade().and_then(|engine| engine.failure())
    }

    /// Resolves with the reason once the engine has failed; see
    /// [`failure`](Self::failure). The server then exits.
    pub async fn failed(&self) -> String {
        loop {
            tokio::select! {
                reason = self.inner.vital.failed() => return reason,
                // The store reports a dead writer only when asked.
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    if let Some(reason) = self.inner.store.failure() {
                        return reason;
                    }
                }
            }
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The directory of a local media storage, which the HTTP edge serves
    /// as it is; `None` when media are in an object store (see
    /// [`serve_file`](Self::serve_file)).
    pub fn media_dir(&self) -> Option<&Path> {
        self.inner.library.media_dir()
    }

    /// A file's bytes (or a redirect to them) for the HTTP edge, when
    /// media are in an object store. `range` maps the object's size to the
    /// part asked for; with `head` the body is left empty.
    pub async fn serve_file(
        &self,
        file_id: &str,
        name: &str,
        head: bool,
        range: impl FnOnce(u64) -> Option<std::ops::Range<u64>>,
    ) -> Result<Served> {
        self.inner.library.serve(file_id, name, head, range).await
    }

    /// Maps an API key to its app. A known key is trusted for a second and
    /// then looked up again, so that a revoked one stops working within a
    /// second; an unknown one is looked up every time, so that a key made by
    /// `vodtask apps create` works at once.
    pub async fn authenticate(&self, api_key: &str) -> Result<App> {
        let hash = KeyHash::of(api_key);
        let now = std::time::Instant::now();
        if let Some((app, _)) = self
            .inner
            .keys
            .read()
            .ok()
            .and_then(|k| k.get(&hash).cloned())
            .filter(|(_, checked)| now.duration_since(*checked) < KEY_RECHECK)
        {
            return Ok(app);
        }
        let found = self.inner.store.app_by_key(&hash).await?;
        let Ok(mut keys) = self.inner.keys.write() else {
            return found.ok_or_else(unknown_key);
        };
        match found {
            Some(app) => {
                keys.insert(hash, (app.clone(), now));
                Ok(app)
            }
            None => {
                keys.remove(&hash);
                Err(unknown_key())
            }
        }
    }

    pub async fn create_app(&self, name: &str) -> Result<(App, ApiKey)> {
        create_app(self.inner.store.as_ref(), name).await
    }

    pub async fn create_task(&self, app: AppId, request: TaskRequest) -> Result<TaskId> {
        let task = NewTask {
            id: request.spec.task_type().new_id(),
            app_id: app,
            request,
            create_time: time::now(),
        };
        let inserted = self.inner.store.insert_task(task).await?;
        self.inner.scheduler.wake();
        Ok(inserted.task_id().clone())
    }

    pub async fn describe_task(&self, app: AppId, id: &TaskId) -> Result<Task> {
        let mut task = self
            .inner
            .store
            .get_task(app, id, true)
            .await?
            .ok_or_else(|| Error::NotFound(format!("task_id: no task {id}")))?;
        self.overlay_live_progress(&mut task);
        Ok(task)
    }

    pub async fn list_tasks(&self, app: AppId, query: &TaskQuery) -> Result<TaskPage> {
        let mut page = self.inner.store.list_tasks(app, query).await?;
        page.tasks
            .iter_mut()
            .for_each(|t| self.overlay_live_progress(t));
        Ok(page)
    }

    /// Counts per status and type, from counters. A create-time range is
    /// widened to whole UTC hours (`Overview::counted` says which).
    pub async fn overview(&self, app: AppId, create_time: TimeRange) -> Result<Overview> {
        create_time.validate("create_time")?;
        self.inner
            .store
            .overview(app, HourRange::covering(create_time))
            .await
    }

    pub async fn redo_task(&self, app: AppId, id: &TaskId) -> Result<Task> {
        let task = self.inner.store.redo_task(app, id, time::now()).await?;
        self.inner.task_changes.bump();
        self.inner.scheduler.wake();
        Ok(task)
    }

    /// WAITING: aborted at once. PROCESSING: its ffmpeg is killed and the
    /// call returns once the task is ABORTED (or after a bounded wait, with
    /// `cancel_requested` set). Ended tasks are returned unchanged.
    pub async fn cancel_task(&self, app: AppId, id: &TaskId) -> Result<Task> {
        let task = self.inner.store.cancel_task(app, id, time::now()).await?;
        self.inner.task_changes.bump();
        if task.status != TaskStatus::Processing {
            return Ok(task);
        }
        if self.inner.scheduler.cancel_local(id, CANCEL_WAIT).await {
            return self.describe_task(app, id).await;
        }
        if self.inner.store.shared_leases().is_some() {
            // Run by another process, which sees the flag at its next
            // heartbeat (every second) and kills its ffmpeg.
            let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let now = self.describe_task(app, id).await?;
                if now.status != TaskStatus::Processing {
                    return Ok(now);
                }
            }
        }
        Ok(task)
    }

    pub async fn begin_upload(
        &self,
        app: AppId,
        file_name: &str,
        source_context: &str,
    ) -> Result<Upload> {
        self.inner
            .library
            .begin_upload(app, file_name, source_context)
            .await
    }

    /// Makes an upload durable and records it, with the procedure `plan`
    /// (validated by the caller) queued on it in the same transaction;
    /// returns once all is done, with the procedure's task id.
    pub async fn finish_upload(
        &self,
        upload: Upload,
        plan: Option<ProcedurePlan>,
    ) -> Result<(MediaFile, Option<TaskId>)> {
        let media = upload.finish().await?;
        let follow_up = plan.map(|plan| NewTask {
            id: TaskType::Procedure.new_id(),
            app_id: media.app_id,
            request: TaskRequest {
                spec: TaskSpec::Procedure(ProcedureSpec {
                    file_id: media.file_id.clone(),
                    plan,
                }),
                priority: 0,
                session_id: None,
                session_context: media.source_context.clone(),
            },
            create_time: time::now(),
        });
        let procedure = follow_up.as_ref().map(|t| t.id.clone());
        let event = crate::events::envelope::file_uploaded(
            &media,
            &self.file_url(&media),
            procedure.as_ref().map_or("", TaskId::as_str),
        );
        if let Err(e) = self
            .inner
            .store
            .insert_media(&media, Some(event), follow_up)
            .await
        {
            self.inner.library.discard(&media.file_id).await;
            return Err(e);
        }
        if procedure.is_some() {
            self.inner.scheduler.wake();
        }
        Ok((media, procedure))
    }

    pub async fn describe_media(&self, app: AppId, file_id: &FileId) -> Result<MediaFile> {
        self.inner
            .store
            .get_media(app, file_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("file_id: no media file {file_id}")))
    }

    pub fn file_url(&self, media: &MediaFile) -> String {
        self.inner
            .library
            .url_of(&media.file_id, &media.stored_name)
    }

    /// Stops taking work, gives running tasks back to the queue (they run
    /// again at the next start) and waits until that is recorded.
    pub async fn shutdown(&self) {
        self.inner.closing.cancel();
        self.inner.upkeep_tasks.close();
        self.inner.scheduler.shutdown().await;
        self.inner.upkeep_tasks.wait().await;
    }

    fn overlay_live_progress(&self, task: &mut Task) {
        if task.status == TaskStatus::Processing
            && let Some(p) = self.inner.scheduler.live_progress(&task.id)
        {
            task.progress = task.progress.max(p);
        }
    }

    /// Lease recovery (workers of other processes sharing a store) and
    /// retention of ended tasks.
    async fn upkeep(self) {
        let inner = &self.inner;
        let recover_every = (inner.config.lease / 3).max(Duration::from_secs(1));
        let mut recover = tokio::time::interval(recover_every);
        let mut purge = tokio::time::interval(RETENTION);
        let mut sweep = tokio::time::interval(MEDIA_SWEEP);
        sweep.tick().await;
        // Over a shared store, another process may switch an app to PUSH
        // or back: every process runs a callback worker for each PUSH app
        // (their leases keep them from sending one event twice at once).
        let shared = inner.store.shared_leases().is_some();
        let mut push_apps = tokio::time::interval(PUSH_APPS_RECHECK);
        loop {
            tokio::select! {
                _ = inner.closing.cancelled() => return,
                _ = recover.tick() => {
                    let now = time::now();
                    match inner.store.recover(Orphans::ExpiredBefore(now), inner.config.max_recoveries, now).await {
                        Ok(r) if r.requeued + r.failed > 0 => {
                            tracing::warn!(
                                requeued = r.requeued,
                                failed = r.failed,
                                "recovered tasks with expired leases"
                            );
                            inner.scheduler.wake();
                            inner.task_changes.bump();
                        }
                        Ok(_) => {}
                        Err(e) => tracing::error!("lease recovery failed: {e}"),
                    }
                }
                _ = push_apps.tick(), if shared => {
                    match inner.store.push_apps().await {
                        Ok(apps) => inner.push.sync_all(&apps),
                        Err(e) => tracing::warn!("reading which apps are in PUSH mode: {e}"),
                    }
                }
                _ = sweep.tick() => {
                    if !its_turn(inner.store.as_ref(), Duty::MediaSweep, MEDIA_SWEEP).await {
                        continue;
                    }
                    match inner.library.sweep().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!("removed the media of {n} deleted or given-up files"),
                        Err(e) => tracing::warn!("removing media of deleted files failed (retried later): {e}"),
                    }
                }
                _ = purge.tick() => {
                    if !its_turn(inner.store.as_ref(), Duty::Retention, RETENTION).await {
                        continue;
                    }
                    match inner.hub.forget_expired().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!("retention deleted {n} events"),
                        Err(e) => tracing::error!("event retention failed: {e}"),
                    }
                    let before = time::before(time::now(), inner.config.task_retention);
                    match inner.store.purge_finished(before).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!("retention deleted {n} ended tasks"),
                        Err(e) => tracing::error!("retention failed: {e}"),
                    }
                }
            }
        }
    }
}

/// Whether this process runs a periodic duty now (over a shared store, one
/// process per period does). A run is claimed for a little less than the
/// period, so that the next tick of whichever process comes first finds it
/// due; should the store not answer, the duty waits for the next tick.
async fn its_turn(store: &dyn Store, duty: Duty, every: Duration) -> bool {
    match store.claim_duty(duty, every.mul_f64(0.9)).await {
        Ok(mine) => mine,
        Err(e) => {
            tracing::warn!("claiming the {} duty: {e}", duty.name());
            false
        }
    }
}

/// Creates an app and returns its key (shown once; only its hash is stored).
pub async fn create_app(store: &dyn Store, name: &str) -> Result<(App, ApiKey)> {
    validate_app_name(name)?;
    let key = ApiKey::generate();
    let app = store.create_app(name, &key.hash(), time::now()).await?;
    Ok((app, key))
}

/// Runs `program -version`: it must start and succeed.
async fn check_tool(name: &str, program: &Path) -> Result<()> {
    let refused = |why: String| {
        Error::FailedPrecondition(format!(
            "{name} at {}: {why}; install it or give its path (--{name})",
            program.display()
        ))
    };
    let run = tokio::process::Command::new(program)
        .arg("-version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(Duration::from_secs(30), run).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(refused(format!("`-version` exited with {status}"))),
        Ok(Err(e)) => Err(refused(format!("cannot run it ({e})"))),
        Err(_) => Err(refused("`-version` did not answer in 30 s".into())),
    }
}
