//! Durable state behind one narrow trait, so that the engine knows nothing of
//! SQLite (the embedded default) and a PostgreSQL store can follow.
//!
//! Contract for every implementation: a method returns only after its writes
//! are durable; each status change is one `Transition` applied with its
//! `from` set as a guard, together with the counters, in one transaction.

mod codec;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod leases;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::app::{App, KeyHash};
use crate::callbacks::{AttemptsOf, CallbackAttempt};
use crate::error::{Error, Result};
use crate::events::envelope::Draft;
use crate::events::{Event, EventConfig};
use crate::ids::{AppId, FileId, TaskId};
use crate::media::MediaFile;
use crate::task::query::{HourRange, Overview, TaskPage, TaskQuery};
use crate::task::{Inserted, NewTask, Outcome, Task, TaskOutput};
use crate::time::Timestamp;

/// Which store an engine keeps its state in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreConfig {
    /// SQLite in the data dir: the embedded default, one process at a time.
    #[default]
    Embedded,
    /// A PostgreSQL database (`--database postgres://…`).
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgConfig),
}

impl StoreConfig {
    /// `--database`: a `postgres://` (or `postgresql://`) URL.
    pub fn parse(url: &str) -> Result<StoreConfig> {
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            #[cfg(feature = "postgres")]
            Some("postgres" | "postgresql") => {
                Ok(StoreConfig::Postgres(postgres::PgConfig::new(url)))
            }
            #[cfg(not(feature = "postgres"))]
            Some("postgres" | "postgresql") => Err(Error::invalid(
                "database",
                "this build of vodtask has no PostgreSQL store (cargo feature `postgres`)",
            )),
            _ => Err(Error::invalid(
                "database",
                "expected postgres://user@host:port/database (without it, state is kept \
                 in SQLite in the data dir)",
            )),
        }
    }
}

/// Who opens a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The engine, which runs tasks and delivers events.
    Engine,
    /// `vodtask apps …`, possibly beside a running engine.
    Admin,
}

/// Opens (creating if needed) the configured store of `data_dir`.
pub async fn open(
    config: &StoreConfig,
    data_dir: &Path,
    sync: SyncMode,
    access: Access,
) -> Result<Arc<dyn Store>> {
    match config {
        StoreConfig::Embedded => {
            let _ = access; // The data dir's lock file says who runs.
            Ok(Arc::new(sqlite::SqliteStore::open_with(data_dir, sync)?))
        }
        #[cfg(feature = "postgres")]
        StoreConfig::Postgres(pg) => Ok(Arc::new(postgres::PgStore::open(pg, access).await?)),
    }
}

/// Whether the configured store exists already (a data dir that was set
/// up, rather than a typo). A database always does: the URL names it.
pub fn exists(config: &StoreConfig, data_dir: &Path) -> bool {
    match config {
        StoreConfig::Embedded => data_dir.join(sqlite::DB_FILE).is_file(),
        #[cfg(feature = "postgres")]
        StoreConfig::Postgres(_) => true,
    }
}

/// When an acknowledged write is on disk (for SQLite, `synchronous` on
/// the writing connection). Media files are fsynced before their row
/// either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncMode {
    /// Each commit's WAL is fsynced before anyone is answered: an
    /// acknowledged write survives a power loss or a crash of the OS.
    #[default]
    Full,
    /// A commit is in the OS's page cache before anyone is answered, so it
    /// survives the process dying (`kill -9`), not a power loss: the WAL is
    /// fsynced before each checkpoint, every 200 ms, and a power loss or OS
    /// crash may take what was acknowledged since (the database stays
    /// consistent). No fsync per commit.
    Normal,
}

/// `full` or `normal`, as the bindings' options spell it.
impl std::str::FromStr for SyncMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<SyncMode, String> {
        match s {
            "full" => Ok(SyncMode::Full),
            "normal" => Ok(SyncMode::Normal),
            _ => Err(format!("must be 'full' or 'normal', not {s:?}")),
        }
    }
}

/// The right to write a running task's progress and result. `token` is a
/// fencing token: it grows with every claim, so a worker that lost its lease
/// (and a new worker took the task) can no longer write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub task_id: TaskId,
    pub token: i64,
}

#[derive(Debug, Clone)]
pub struct Claim {
    pub task: Task,
    pub lease: Lease,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    Held {
        cancel_requested: bool,
    },
    /// The token is stale: another worker owns the task, or it ended.
    Lost,
}

/// Which running tasks `recover` puts back in the queue.
#[derive(Debug, Clone, Copy)]
pub enum Orphans {
    /// Those whose lease expired before this time.
    ExpiredBefore(Timestamp),
    /// All of them: the caller holds the data dir exclusively, so no other
    /// worker can be running them.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovered {
    /// Queued again (a task whose cancel was requested ends ABORTED
    /// instead, counted in neither field).
    pub requeued: u64,
    /// Ended with `WORKER_LOST` after too many recoveries.
    pub failed: u64,
}

/// An unsettled event, as the queue loads it.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub seq: i64,
    /// Events of one key (a task) are delivered one at a time, in seq order.
    pub order_key: String,
    pub event: Event,
}

/// Which settled events `revive_events` puts back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revive {
    /// Redrive.
    DeadLettered,
    /// Resend: dead-lettered and confirmed ones.
    Settled,
}

/// How an event left the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Confirmed,
    DeadLettered,
}

/// An event's durable state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Pending,
    DeadLettered,
    Confirmed,
}

/// Counts of an app's pending events beyond the queue's in-memory window,
/// and of the whole app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tail {
    pub ready: i64,
    /// Behind an earlier pending event of the same task.
    pub held: i64,
    pub dead_lettered: i64,
    pub oldest_pending: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Where the next page starts; None at the end.
    pub next_after: Option<i64>,
}

/// An app as `vodtask apps list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRecord {
    pub name: String,
    pub create_time: Timestamp,
    pub revoke_time: Option<Timestamp>,
}

/// Told which apps got new events, after the transaction that wrote them
/// committed (and before its writers are answered).
pub type OutboxListener = std::sync::Arc<dyn Fn(&[AppId]) + Send + Sync>;

/// A file whose objects may lack a row (see `Store::media_leftovers`),
/// with the multipart uploads its write started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLeftover {
    pub file_id: FileId,
    /// `(object name, upload id)`.
    pub multipart: Vec<(String, String)>,
}

/// Periodic work that runs once across the processes sharing a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Deleting expired events and ended tasks.
    Retention,
    /// Removing the media objects of deleted and given-up files.
    MediaSweep,
}

impl Duty {
    pub fn name(self) -> &'static str {
        match self {
            Duty::Retention => "retention",
            Duty::MediaSweep => "media sweep",
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Why the store can no longer write, if so (a dead writer thread).
    fn failure(&self) -> Option<String> {
        None
    }

    /// Event leases kept in the store, when several processes share it
    /// (None: the queue keeps them in memory).
    fn shared_leases(&self) -> Option<Arc<dyn leases::SharedLeases>> {
        None
    }

    /// Sets the one listener of the outbox (the queue hub). Every write that
    /// adds events tells it, whichever method wrote them, so that no caller
    /// has to remember to; a store shared by several processes also tells
    /// it of events other processes committed.
    fn listen_outbox(&self, listener: OutboxListener);

    // Apps.
    async fn create_app(&self, name: &str, key_hash: &KeyHash, now: Timestamp) -> Result<App>;
    /// The app a key belongs to, unless it was revoked.
    async fn app_by_key(&self, key_hash: &KeyHash) -> Result<Option<App>>;
    /// Every app ever created, revoked ones included (an empty store is
    /// one that has never had an app).
    async fn app_count(&self) -> Result<u64>;
    async fn list_apps(&self) -> Result<Vec<AppRecord>>;
    /// Revokes the app's key (NotFound for an unknown name); revoking twice
    /// keeps the first time.
    async fn revoke_app(&self, name: &str, now: Timestamp) -> Result<AppRecord>;

    // Media library.
    /// Records a file; with `event`, its event, and with `follow_up`, a task
    /// on it (a procedure), in the same transaction.
    async fn insert_media(
        &self,
        media: &MediaFile,
        event: Option<Draft>,
        follow_up: Option<NewTask>,
    ) -> Result<()>;
    async fn get_media(&self, app: AppId, file_id: &FileId) -> Result<Option<MediaFile>>;
    /// Which of `file_ids` (of any app) have a row.
    async fn recorded_files(&self, file_ids: Vec<String>) -> Result<HashSet<String>>;

    // Media objects that may lack a row. Every insert of a media row
    // removes its file's record in the same transaction; every delete of
    // one (DeleteMedia) adds a `deleting` record in the same transaction.
    /// Records, before any object of the new `file` is written, that
    /// `owner` (a process) writes it.
    async fn note_media_write(&self, file: &FileId, owner: &str, now: Timestamp) -> Result<()>;
    /// The write of `file` was given up (by its writer, or by a sweeper
    /// that took its writer for dead): its objects are to be removed, and
    /// its row can no longer be inserted (UNAVAILABLE).
    async fn abandon_media_write(&self, file: &FileId) -> Result<()>;
    /// A multipart upload of the object `name` of `file` was started:
    /// kept with the file's record until it is cleared.
    async fn note_multipart(&self, file: &FileId, name: &str, upload_id: &str) -> Result<()>;
    /// Files whose objects are to be removed, oldest first: given-up
    /// writes, deleted files, and writes of owners other than `owner` that
    /// are not alive (in a store of one process: every other owner; in a
    /// shared store: those whose process stopped beating).
    async fn media_leftovers(&self, owner: &str, limit: usize) -> Result<Vec<MediaLeftover>>;
    /// The objects of `file` are gone: forget its record and uploads.
    async fn clear_media_leftover(&self, file: &FileId) -> Result<()>;

    // Task API.
    /// NOT_FOUND when an input file is not in the app's library;
    /// FAILED_PRECONDITION when a delete names a file a waiting or running
    /// task uses.
    async fn insert_task(&self, task: NewTask) -> Result<Inserted>;
    async fn get_task(&self, app: AppId, id: &TaskId, with_attempts: bool) -> Result<Option<Task>>;
    async fn list_tasks(&self, app: AppId, query: &TaskQuery) -> Result<TaskPage>;
    async fn overview(&self, app: AppId, range: HourRange) -> Result<Overview>;
    /// Redo: FINISH or ABORTED → WAITING, attempt + 1, the old result kept
    /// as a previous attempt.
    async fn redo_task(&self, app: AppId, id: &TaskId, now: Timestamp) -> Result<Task>;
    /// WAITING → ABORTED at once; PROCESSING → flagged, for its worker to
    /// stop. Returns the task after the change.
    async fn cancel_task(&self, app: AppId, id: &TaskId, now: Timestamp) -> Result<Task>;

    // Scheduler.
    /// Claims the queued task with the highest priority; within a priority,
    /// in the order the tasks were created (a redone task keeps its place,
    /// so it runs before tasks created after it).
    async fn claim_next(&self, lease_until: Timestamp, now: Timestamp) -> Result<Option<Claim>>;
    async fn heartbeat(
        &self,
        lease: &Lease,
        progress: u8,
        lease_until: Timestamp,
    ) -> Result<LeaseState>;
    /// Writes a running task's progress and its output so far (a
    /// procedure's subtasks), the files written since, and an event when
    /// one is given, in one transaction.
    async fn record_step(
        &self,
        lease: &Lease,
        progress: u8,
        output: &TaskOutput,
        new_media: Vec<MediaFile>,
        event: Option<Draft>,
    ) -> Result<LeaseState>;
    /// None (and nothing written) when the lease was lost; otherwise the
    /// files whose rows were deleted, for the caller to remove from disk.
    async fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<Option<Vec<FileId>>>;
    /// Gives a running task back to the queue without counting an attempt
    /// (graceful shutdown).
    async fn release(&self, lease: &Lease) -> Result<bool>;
    /// Requeues orphaned running tasks with attempt + 1; one recovered more
    /// than `max_recoveries` times ends FINISH with `WORKER_LOST`. A redo
    /// starts the count again.
    async fn recover(
        &self,
        orphans: Orphans,
        max_recoveries: u32,
        now: Timestamp,
    ) -> Result<Recovered>;
    /// Deletes tasks that ended before `before` (retention).
    async fn purge_finished(&self, before: Timestamp) -> Result<u64>;
    /// Whether this process is to run `duty` now. A store several
    /// processes share says yes to one of them per `every`; a store one
    /// process owns always says yes.
    async fn claim_duty(&self, duty: Duty, every: Duration) -> Result<bool> {
        let _ = (duty, every);
        Ok(true)
    }

    // Events. A task's completion event is written by the transition that
    // ends it (finish, abort, recovery giving up), in the same transaction.
    async fn event_config(&self, app: AppId) -> Result<EventConfig>;
    async fn set_event_config(&self, app: AppId, config: &EventConfig) -> Result<()>;
    /// The app's pending events with seq after `after`, in seq order. An
    /// event never becomes visible with a seq below one a load has already
    /// returned (the queue loads past what it has seen): SQLite's single
    /// writer gives this for free; a store with concurrent writers must
    /// hold back seqs whose transactions may still commit.
    async fn load_events(&self, app: AppId, after: i64, limit: u32) -> Result<Vec<PendingEvent>>;
    /// Records events as settled, each with its delivery count. Events
    /// already settled (or deleted) are left as they are.
    async fn settle_events(
        &self,
        app: AppId,
        seqs: Vec<(i64, u32)>,
        outcome: Settled,
    ) -> Result<()>;
    /// The durable state of the app's events among `seqs` (absent: none).
    async fn event_states(&self, app: AppId, seqs: Vec<i64>) -> Result<HashMap<i64, Stored>>;
    async fn dead_letter_events(
        &self,
        app: AppId,
        limit: u32,
        after: Option<i64>,
    ) -> Result<EventPage>;
    /// Makes settled events pending again (None: all of the app's), with
    /// their delivery count reset; returns them.
    async fn revive_events(
        &self,
        app: AppId,
        event_ids: Option<Vec<String>>,
        which: Revive,
    ) -> Result<Vec<PendingEvent>>;
    /// The seqs of the app's pending events among `event_ids`.
    async fn pending_event_seqs(&self, app: AppId, event_ids: Vec<String>) -> Result<Vec<i64>>;
    /// Counts of pending events with seq after `after`, and app totals.
    async fn event_tail(&self, app: AppId, after: i64) -> Result<Tail>;
    // HTTP callbacks.
    /// Apps whose config says PUSH.
    async fn push_apps(&self) -> Result<Vec<AppId>>;
    /// Logs an attempt; with `settle`, settles its event in the same
    /// transaction.
    async fn record_attempt(
        &self,
        app: AppId,
        seq: i64,
        attempt: CallbackAttempt,
        settle: Option<Settled>,
    ) -> Result<()>;
    async fn last_attempt(&self, app: AppId, seq: i64) -> Result<Option<CallbackAttempt>>;
    /// The first attempt after the endpoint last answered (server errors
    /// and 429 are no answer), if it has not answered since.
    async fn endpoint_failing_since(&self, app: AppId) -> Result<Option<Timestamp>>;
    async fn callback_attempts(&self, app: AppId, of: AttemptsOf) -> Result<Vec<CallbackAttempt>>;

    /// Deletes events past their app's retention.
    async fn purge_events(&self, now: Timestamp) -> Result<u64>;
}
