//! The embedded default store: one SQLite file in WAL mode, a group-commit
//! writer thread and a pool of read connections. Commits are fsynced
//! (`synchronous = FULL`) unless the store is opened with
//! `SyncMode::Normal`.

mod attempts;
mod checkpoint;
mod events;
mod outbox;
mod rows;
mod schema;
mod tasks;
mod writer;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, params};

use self::rows::{MEDIA_COLUMNS, one, to_json};
use self::writer::Writer;
use super::{
    AppRecord, Claim, EventPage, Lease, LeaseState, MediaLeftover, Orphans, Outcome, PendingEvent,
    Recovered, Revive, Settled, Store, Stored, SyncMode, Tail,
};
use crate::app::{App, KeyHash};
use crate::callbacks::{AttemptsOf, CallbackAttempt};
use crate::error::{Error, Result};
use crate::events::EventConfig;
use crate::events::envelope::Draft;
use crate::ids::{AppId, FileId, TaskId};
use crate::media::MediaFile;
use crate::task::query::{HourRange, Overview, TaskPage, TaskQuery};
use crate::task::{Inserted, NewTask, Task, TaskOutput};
use crate::time::{Timestamp, from_micros, to_micros};

const PURGE_BATCH: u32 = 1000;

/// The name of the thread that makes every write (group commit). Linux keeps
/// 15 bytes of a thread's name, so names of this store's threads are short
/// enough to tell apart in `top -H`, `perf` and `/proc`.
pub const WRITER_THREAD: &str = "sqlite-writer";

/// The database file in a data dir (with its `-wal` and `-shm`).
pub const DB_FILE: &str = "vodtask.db";

pub struct SqliteStore {
    writer: Writer,
    _checkpointer: checkpoint::Checkpointer,
    readers: Arc<ReadPool>,
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Storage(Box::new(e))
    }
}

/// Read connections, opened as needed up to `READERS` (each holds a page
/// cache, so an unbounded pool would grow with the number of concurrent
/// reads).
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: tokio::sync::Semaphore,
}

const READERS: usize = 8;

/// Page cache per connection, in KiB: the writer's is the large one; the
/// read connections and the checkpointer share the OS page cache anyway.
/// With `READERS`, memory stays bounded however large the database grows.
const WRITER_CACHE_KIB: i64 = 32 * 1024;
const READER_CACHE_KIB: i64 = 4 * 1024;
/// Readers map the database file instead of copying each page out of the
/// kernel with a read call: a queue refill reads a thousand envelopes, and
/// with eight readers taking turns their page caches are mostly cold. (Pages
/// still in the WAL are read as before; the writer never maps.)
const READER_MMAP_BYTES: i64 = 1 << 30;

/// SQLite's `synchronous` on the writing connection.
fn synchronous(sync: SyncMode) -> &'static str {
    match sync {
        SyncMode::Full => "FULL",
        SyncMode::Normal => "NORMAL",
    }
}

fn open_connection(path: &Path, cache_kib: i64, sync: SyncMode) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.pragma_update(None, "synchronous", synchronous(sync))?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) `<dir>/vodtask.db`, fsyncing every commit.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        SqliteStore::open_with(dir, SyncMode::Full)
    }

    /// `open`, with commits on disk as `sync` says.
    pub fn open_with(dir: &Path, sync: SyncMode) -> Result<SqliteStore> {
        crate::data_dir::create_private_dir(dir)?;
        let path = dir.join(DB_FILE);
        create_private_db(&path)?;
        let conn = open_connection(&path, WRITER_CACHE_KIB, sync)?;
        schema::migrate(&conn)?;
        // Checkpoints copy the WAL into the database file; run in the
        // writer they would stall every commit queued behind them. They
        // fsync the WAL first and the database after, whatever `sync` is:
        // with `SyncMode::Normal` they are what puts commits on disk.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = checkpoint::Checkpointer::start(open_connection(
            &path,
            READER_CACHE_KIB,
            SyncMode::Full,
        )?)?;
        Ok(SqliteStore {
            writer: Writer::start(conn)?,
            _checkpointer: checkpointer,
            readers: Arc::new(ReadPool {
                path,
                idle: Mutex::new(Vec::new()),
                permits: tokio::sync::Semaphore::new(READERS),
            }),
        })
    }

    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = Arc::clone(&self.readers);
        let _permit = pool
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("the read pool is closed".into()))?;
        let pool = Arc::clone(&pool);
        tokio::task::spawn_blocking(move || {
            let idle = pool.idle.lock().ok().and_then(|mut idle| idle.pop());
            let conn = match idle {
                Some(conn) => conn,
                None => {
                    let conn = open_connection(&pool.path, READER_CACHE_KIB, SyncMode::Full)?;
                    conn.execute_batch("PRAGMA query_only = 1")?;
                    conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
                    conn
                }
            };
            let result = work(&conn);
            if let Ok(mut idle) = pool.idle.lock() {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| Error::Internal(format!("read task failed: {e}")))?
    }
}

/// Creates the database file 0600 before SQLite opens it: SQLite gives the
/// -wal and -shm files it creates the database file's mode. Files left
/// looser (by an older vodtask) are tightened.
fn create_private_db(path: &Path) -> Result<()> {
    std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_os_string();
        name.push(suffix);
        crate::data_dir::make_private(Path::new(&name), 0o600);
    }
    Ok(())
}

fn insert_media(conn: &Connection, m: &MediaFile) -> Result<()> {
    let given_up: Option<bool> = rows::optional(conn.query_row(
        "SELECT deleting FROM media_leftovers WHERE file_id = ?1",
        [m.file_id.as_str()],
        |r| r.get(0),
    ))?;
    if given_up == Some(true) {
        return Err(crate::store::codec::given_up_write(&m.file_id));
    }
    let (metadata, probe_error) = match &m.metadata {
        Ok(meta) => (Some(to_json(meta)?), None),
        Err(e) => (None, Some(e.clone())),
    };
    conn.prepare_cached(&format!(
        "INSERT INTO media ({MEDIA_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))?
    .execute(params![
        m.file_id.as_str(),
        m.app_id.0,
        m.file_name,
        m.stored_name,
        m.size as i64,
        m.md5,
        to_micros(m.create_time),
        m.source_type.code(),
        m.source_context,
        m.source_task_id.as_ref().map(TaskId::as_str),
        metadata,
        probe_error,
    ])?;
    // Its objects are complete and now have their row.
    forget_leftover(conn, m.file_id.as_str())
}

fn forget_leftover(conn: &Connection, file_id: &str) -> Result<()> {
    conn.prepare_cached("DELETE FROM media_leftovers WHERE file_id = ?1")?
        .execute([file_id])?;
    conn.prepare_cached("DELETE FROM media_multipart WHERE file_id = ?1")?
        .execute([file_id])?;
    Ok(())
}

fn app_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AppRecord> {
    Ok(AppRecord {
        name: r.get(0)?,
        create_time: from_micros(r.get(1)?),
        revoke_time: r.get::<_, Option<i64>>(2)?.map(from_micros),
    })
}

#[async_trait]
impl Store for SqliteStore {
    fn failure(&self) -> Option<String> {
        self.writer.failure()
    }

    fn listen_outbox(&self, listener: crate::store::OutboxListener) {
        self.writer.listen_outbox(listener);
    }

    async fn create_app(&self, name: &str, key_hash: &KeyHash, now: Timestamp) -> Result<App> {
        let (name, hash) = (name.to_string(), key_hash.0.clone());
        self.writer
            .write(move |conn| {
                let exists: Option<i64> = rows::optional(conn.query_row(
                    "SELECT app_id FROM apps WHERE name = ?1",
                    [&name],
                    |r| r.get(0),
                ))?;
                if exists.is_some() {
                    return Err(Error::AlreadyExists(format!(
                        "name: an app named {name:?} exists already"
                    )));
                }
                conn.execute(
                    "INSERT INTO apps (name, key_hash, create_time) VALUES (?1, ?2, ?3)",
                    params![name, hash, to_micros(now)],
                )?;
                Ok(App {
                    id: AppId(conn.last_insert_rowid()),
                    name,
                })
            })
            .await
    }

    async fn app_by_key(&self, key_hash: &KeyHash) -> Result<Option<App>> {
        let hash = key_hash.0.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT app_id, name FROM apps WHERE key_hash = ?1 AND revoke_time IS NULL",
            )?;
            one(&mut stmt, [hash], |r| {
                Ok(App {
                    id: AppId(r.get(0)?),
                    name: r.get(1)?,
                })
            })
        })
        .await
    }

    async fn app_count(&self) -> Result<u64> {
        self.read(|conn| {
            Ok(conn.query_row("SELECT count(*) FROM apps", [], |r| r.get::<_, i64>(0))? as u64)
        })
        .await
    }

    async fn list_apps(&self) -> Result<Vec<AppRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare("SELECT name, create_time, revoke_time FROM apps ORDER BY app_id")?
                .query_map([], app_record)?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn revoke_app(&self, name: &str, now: Timestamp) -> Result<AppRecord> {
        let name = name.to_string();
        self.writer
            .write(move |conn| {
                conn.execute(
                    "UPDATE apps SET revoke_time = ?2 WHERE name = ?1 AND revoke_time IS NULL",
                    params![name, to_micros(now)],
                )?;
                rows::optional(conn.query_row(
                    "SELECT name, create_time, revoke_time FROM apps WHERE name = ?1",
                    [&name],
                    app_record,
                ))?
                .ok_or_else(|| Error::NotFound(format!("name: no app named {name:?}")))
            })
            .await
    }

    async fn insert_media(
        &self,
        media: &MediaFile,
        event: Option<Draft>,
        follow_up: Option<NewTask>,
    ) -> Result<()> {
        let media = media.clone();
        self.writer
            .write(move |conn| {
                insert_media(conn, &media)?;
                if let Some(task) = follow_up {
                    tasks::insert(conn, task)?;
                }
                match event {
                    Some(draft) => events::emit(conn, media.app_id.0, &draft, media.create_time),
                    None => Ok(()),
                }
            })
            .await
    }

    async fn get_media(&self, app: AppId, file_id: &FileId) -> Result<Option<MediaFile>> {
        let file_id = file_id.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {MEDIA_COLUMNS} FROM media WHERE file_id = ?1 AND app_id = ?2"
            ))?;
            one(&mut stmt, params![file_id.as_str(), app.0], rows::media)
        })
        .await
    }

    async fn recorded_files(&self, file_ids: Vec<String>) -> Result<HashSet<String>> {
        self.read(move |conn| {
            let mut found = HashSet::new();
            let mut stmt = conn.prepare_cached("SELECT 1 FROM media WHERE file_id = ?1")?;
            for id in file_ids {
                if stmt.exists([&id])? {
                    found.insert(id);
                }
            }
            Ok(found)
        })
        .await
    }

    async fn note_media_write(&self, file: &FileId, owner: &str, now: Timestamp) -> Result<()> {
        let (file, owner) = (file.clone(), owner.to_string());
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO media_leftovers (file_id, owner, since, deleting)
                     VALUES (?1, ?2, ?3, 0)",
                )?
                .execute(params![file.as_str(), owner, to_micros(now)])?;
                Ok(())
            })
            .await
    }

    async fn abandon_media_write(&self, file: &FileId) -> Result<()> {
        let file = file.clone();
        self.writer
            .write(move |conn| {
                conn.prepare_cached("UPDATE media_leftovers SET deleting = 1 WHERE file_id = ?1")?
                    .execute([file.as_str()])?;
                Ok(())
            })
            .await
    }

    async fn note_multipart(&self, file: &FileId, name: &str, upload_id: &str) -> Result<()> {
        let (file, name, upload_id) = (file.clone(), name.to_string(), upload_id.to_string());
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    "INSERT OR IGNORE INTO media_multipart (file_id, name, upload_id)
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![file.as_str(), name, upload_id])?;
                Ok(())
            })
            .await
    }

    async fn media_leftovers(&self, owner: &str, limit: usize) -> Result<Vec<MediaLeftover>> {
        let owner = owner.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT file_id FROM media_leftovers WHERE deleting = 1 OR owner != ?1
                 ORDER BY since LIMIT ?2",
            )?;
            let files: Vec<String> = stmt
                .query_map(params![owner, limit as i64], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut uploads = conn
                .prepare_cached("SELECT name, upload_id FROM media_multipart WHERE file_id = ?1")?;
            files
                .into_iter()
                .map(|file| {
                    let multipart = uploads
                        .query_map([&file], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<rusqlite::Result<_>>()?;
                    Ok(MediaLeftover {
                        file_id: FileId::from_stored(file),
                        multipart,
                    })
                })
                .collect()
        })
        .await
    }

    async fn clear_media_leftover(&self, file: &FileId) -> Result<()> {
        let file = file.clone();
        self.writer
            .write(move |conn| forget_leftover(conn, file.as_str()))
            .await
    }

    async fn insert_task(&self, task: NewTask) -> Result<Inserted> {
        self.writer
            .write(move |conn| tasks::insert(conn, task))
            .await
    }

    async fn get_task(&self, app: AppId, id: &TaskId, with_attempts: bool) -> Result<Option<Task>> {
        let id = id.clone();
        self.read(move |conn| tasks::get(conn, app, &id, with_attempts))
            .await
    }

    async fn list_tasks(&self, app: AppId, query: &TaskQuery) -> Result<TaskPage> {
        let query = query.clone();
        self.read(move |conn| tasks::list(conn, app, &query)).await
    }

    async fn overview(&self, app: AppId, range: HourRange) -> Result<Overview> {
        self.read(move |conn| tasks::overview(conn, app, range))
            .await
    }

    async fn redo_task(&self, app: AppId, id: &TaskId, _now: Timestamp) -> Result<Task> {
        let id = id.clone();
        self.writer
            .write(move |conn| tasks::redo(conn, app, &id))
            .await
    }

    async fn cancel_task(&self, app: AppId, id: &TaskId, now: Timestamp) -> Result<Task> {
        let id = id.clone();
        self.writer
            .write(move |conn| tasks::cancel(conn, app, &id, now))
            .await
    }

    async fn claim_next(&self, lease_until: Timestamp, now: Timestamp) -> Result<Option<Claim>> {
        self.writer
            .write(move |conn| tasks::claim_next(conn, lease_until, now))
            .await
    }

    async fn heartbeat(
        &self,
        lease: &Lease,
        progress: u8,
        lease_until: Timestamp,
    ) -> Result<LeaseState> {
        let lease = lease.clone();
        self.writer
            .write(move |conn| tasks::heartbeat(conn, &lease, progress, lease_until))
            .await
    }

    async fn record_step(
        &self,
        lease: &Lease,
        progress: u8,
        output: &TaskOutput,
        new_media: Vec<MediaFile>,
        event: Option<Draft>,
    ) -> Result<LeaseState> {
        let (lease, output) = (lease.clone(), output.clone());
        self.writer
            .write(move |conn| {
                tasks::record_step(conn, &lease, progress, &output, &new_media, event)
            })
            .await
    }

    async fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<Option<Vec<FileId>>> {
        let lease = lease.clone();
        self.writer
            .write(move |conn| tasks::finish(conn, &lease, outcome, now))
            .await
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        let lease = lease.clone();
        self.writer
            .write(move |conn| tasks::release(conn, &lease))
            .await
    }

    async fn recover(
        &self,
        orphans: Orphans,
        max_recoveries: u32,
        now: Timestamp,
    ) -> Result<Recovered> {
        self.writer
            .write(move |conn| tasks::recover(conn, orphans, max_recoveries, now))
            .await
    }

    async fn purge_finished(&self, before: Timestamp) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self
                .writer
                .write(move |conn| tasks::purge(conn, before, PURGE_BATCH))
                .await?;
            total += n;
            if n < u64::from(PURGE_BATCH) {
                return Ok(total);
            }
        }
    }

    async fn event_config(&self, app: AppId) -> Result<EventConfig> {
        self.read(move |conn| events::config(conn, app.0)).await
    }

    async fn set_event_config(&self, app: AppId, config: &EventConfig) -> Result<()> {
        let config = config.clone();
        self.writer
            .write(move |conn| events::set_config(conn, app.0, &config))
            .await
    }

    async fn load_events(&self, app: AppId, after: i64, limit: u32) -> Result<Vec<PendingEvent>> {
        self.read(move |conn| events::load(conn, app, after, limit))
            .await
    }

    async fn settle_events(
        &self,
        app: AppId,
        seqs: Vec<(i64, u32)>,
        outcome: Settled,
    ) -> Result<()> {
        self.writer
            .write(move |conn| events::settle(conn, app, &seqs, outcome))
            .await
    }

    async fn event_states(&self, app: AppId, seqs: Vec<i64>) -> Result<HashMap<i64, Stored>> {
        self.read(move |conn| events::states(conn, app, &seqs))
            .await
    }

    async fn dead_letter_events(
        &self,
        app: AppId,
        limit: u32,
        after: Option<i64>,
    ) -> Result<EventPage> {
        self.read(move |conn| events::dead_letters(conn, app, limit, after))
            .await
    }

    async fn revive_events(
        &self,
        app: AppId,
        event_ids: Option<Vec<String>>,
        which: Revive,
    ) -> Result<Vec<PendingEvent>> {
        self.writer
            .write(move |conn| events::revive(conn, app, event_ids.as_deref(), which))
            .await
    }

    async fn pending_event_seqs(&self, app: AppId, event_ids: Vec<String>) -> Result<Vec<i64>> {
        self.read(move |conn| events::pending_seqs(conn, app, &event_ids))
            .await
    }

    async fn event_tail(&self, app: AppId, after: i64) -> Result<Tail> {
        self.read(move |conn| events::tail(conn, app, after)).await
    }

    async fn push_apps(&self) -> Result<Vec<AppId>> {
        self.read(attempts::push_apps).await
    }

    async fn record_attempt(
        &self,
        app: AppId,
        seq: i64,
        attempt: CallbackAttempt,
        settle: Option<Settled>,
    ) -> Result<()> {
        self.writer
            .write(move |conn| attempts::record(conn, app, seq, &attempt, settle))
            .await
    }

    async fn endpoint_failing_since(&self, app: AppId) -> Result<Option<Timestamp>> {
        self.read(move |conn| attempts::failing_since(conn, app))
            .await
    }

    async fn last_attempt(&self, app: AppId, seq: i64) -> Result<Option<CallbackAttempt>> {
        self.read(move |conn| attempts::last(conn, app, seq)).await
    }

    async fn callback_attempts(&self, app: AppId, of: AttemptsOf) -> Result<Vec<CallbackAttempt>> {
        self.read(move |conn| attempts::list(conn, app, &of)).await
    }

    async fn purge_events(&self, now: Timestamp) -> Result<u64> {
        self.writer
            .write(move |conn| events::purge(conn, now))
            .await
    }
}

#[cfg(test)]
mod private_files {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::SqliteStore;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[tokio::test]
    async fn a_new_data_dir_and_database_are_the_owners_only() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("data");
        let store = SqliteStore::open(&dir).expect("open");
        assert_eq!(mode(&dir), 0o700);
        // The WAL and the shared memory exist once the schema is written.
        for name in ["vodtask.db", "vodtask.db-wal", "vodtask.db-shm"] {
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        }
        drop(store);
    }

    #[tokio::test]
    async fn a_looser_data_dir_is_tightened_at_open() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("data");
        drop(SqliteStore::open(&dir).expect("open"));
        set_mode(&dir, 0o755);
        for name in ["vodtask.db", "vodtask.db-wal", "vodtask.db-shm"] {
            let path = dir.join(name);
            if path.exists() {
                set_mode(&path, 0o644);
            }
        }
        let store = SqliteStore::open(&dir).expect("reopen");
        assert_eq!(mode(&dir), 0o700);
        for name in ["vodtask.db", "vodtask.db-wal", "vodtask.db-shm"] {
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        }
        drop(store);
    }
}
