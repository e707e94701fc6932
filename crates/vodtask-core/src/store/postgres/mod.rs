//! State in PostgreSQL (`--database postgres://…`): a pool of connections,
//! each write one transaction of READ COMMITTED with the rows it changes
//! locked, retried when PostgreSQL picks it as a deadlock's victim.
//!
//! Where SQLite's single writer gives an order for free, this store takes
//! locks: a claim skips tasks other claims hold (`FOR UPDATE SKIP LOCKED`),
//! a transition locks its task's row, a task that reads a file shares the
//! file's row lock (so that a delete cannot slip between the check and the
//! insert), and events of one app are numbered under the app's row lock
//! (so that a loader never sees a later seq commit before an earlier one).
//!
//! Event leases live in the rows too (`leases.rs`, the port of
//! `store/leases.rs`), so that any number of processes share the database;
//! they wake each other through LISTEN/NOTIFY (`notify.rs`).

mod attempts;
mod duties;
mod events;
mod leases;
mod nodes;
mod notify;
mod rows;
mod schema;
mod tasks;
mod upkeep;

#[cfg(test)]
mod conformance;

use std::collections::{HashMap, HashSet};
use std::ops::Deref;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_util::sync::CancellationToken;

use self::rows::{MEDIA_COLUMNS, Sql, to_json};
use super::leases::SharedLeases;
use super::{
    Access, AppRecord, Claim, Duty, EventPage, Lease, LeaseState, MediaLeftover, Orphans,
    OutboxListener, Outcome, PendingEvent, Recovered, Revive, Settled, Store, Stored, Tail,
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

/// How a PostgreSQL store is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgConfig {
    /// `postgres://user@host:port/database?options=-csearch_path%3D…`
    pub url: String,
    /// Connections in the pool.
    pub pool_size: usize,
}

impl PgConfig {
    pub fn new(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: url.into(),
            pool_size: DEFAULT_POOL,
        }
    }
}

const DEFAULT_POOL: usize = 16;
/// How long a call waits for the database to take a connection, or for a
/// connection from a full pool, before it fails with UNAVAILABLE.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a silent database is waited for before its connection is
/// taken for broken.
const CUT_OFF: Duration = Duration::from_secs(10);
/// Deadlock victims are retried this many times.
const RETRIES: u32 = 5;
const PURGE_BATCH: i64 = 1000;

pub struct PgStore {
    pool: Pool,
    listener: RwLock<Option<OutboxListener>>,
    leases: Arc<leases::PgLeases>,
    notifier: Arc<notify::Notifier>,
    /// Stops the notifier's tasks when the store goes.
    stop: CancellationToken,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        let unreachable = match e.code() {
            // Connection exceptions, a server shutting down, too many
            // connections: another try later may succeed.
            Some(code) => {
                let class = &code.code()[..2];
                matches!(class, "08" | "57" | "53")
            }
            None => true,
        };
        if unreachable {
            // tokio-postgres says "error connecting to server" and keeps
            // the why (refused, timed out, no such host) in its source.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(&format!(": {s}"));
                source = s.source();
            }
            Error::Unavailable(format!("database: {why}"))
        } else {
            Error::Storage(Box::new(e))
        }
    }
}

fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Backend(e) => e.into(),
        other => Error::Unavailable(format!("database: no connection: {other}")),
    }
}

/// A deadlock's victim, or a serialization failure: rolled back, and safe
/// to run again.
fn retryable(e: &Error) -> bool {
    let Error::Storage(source) = e else {
        return false;
    };
    source
        .downcast_ref::<tokio_postgres::Error>()
        .and_then(tokio_postgres::Error::code)
        .is_some_and(|c| {
            *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
                || *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
        })
}

/// A write transaction, and the apps it wrote events for (told to the
/// outbox listener after the commit).
pub(super) struct Tx<'a> {
    txn: deadpool_postgres::Transaction<'a>,
    emitted: Mutex<Vec<AppId>>,
}

impl<'a> Deref for Tx<'a> {
    type Target = deadpool_postgres::Transaction<'a>;

    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

impl Tx<'_> {
    /// An event of `app` was written in this transaction.
    fn emitted(&self, app: AppId) {
        if let Ok(mut apps) = self.emitted.lock()
            && !apps.contains(&app)
        {
            apps.push(app);
        }
    }
}

/// Runs `$body` (an expression yielding a future of `Result<T>`, using the
/// transaction `$tx`) in a transaction, commits it when it succeeds, and
/// runs it again when PostgreSQL rolled it back to break a deadlock. The
/// body is evaluated once per try, so it borrows its inputs.
macro_rules! in_tx {
    ($store:expr, |$tx:ident| $body:expr) => {{
        let store: &PgStore = $store;
        let mut tries = 0;
        loop {
            let mut client = store.client().await?;
            let $tx = store.begin(&mut client).await?;
            let result = $body.await;
            match store.end($tx, result).await {
                Err(e) if retryable(&e) && tries < RETRIES => tries += 1,
                done => break done,
            }
        }
    }};
}

impl PgStore {
    /// Connects and migrates the schema.
    pub async fn open(config: &PgConfig, access: Access) -> Result<PgStore> {
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(|e| {
            Error::invalid(
                "database",
                format!("not a PostgreSQL URL (postgres://user@host:port/database): {e}"),
            )
        })?;
        pg.connect_timeout(CONNECT_TIMEOUT);
        // A database cut off without a word (packets dropped, not refused)
        // would hold a call until the kernel gives up, minutes later: a
        // connection whose sent data goes unacknowledged this long, or
        // whose idle peer stops answering keepalives, is broken instead,
        // and the pool replaces it. The URL's own settings win.
        if pg.get_tcp_user_timeout().is_none() {
            pg.tcp_user_timeout(CUT_OFF);
        }
        if !config.url.contains("keepalives_idle") {
            pg.keepalives_idle(CUT_OFF);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("vodtask");
        }
        let (mut client, connection) = pg.connect(NoTls).await?;
        tokio::spawn(connection);
        schema::migrate(&mut client).await?;
        let schema: String = client
            .query_one("SELECT current_schema()", &[])
            .await?
            .get(0);
        drop(client);
        let manager = Manager::from_config(
            pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| Error::Internal(format!("database pool: {e}")))?;
        let stop = CancellationToken::new();
        // An admin command neither listens nor is listened to.
        let listening = access == Access::Engine;
        let notifier = notify::Notifier::start(pool.clone(), pg, &schema, listening, stop.clone());
        if listening {
            // Alive before its first write, so that no other sweeper takes
            // that write for a dead process's.
            nodes::beat(&pool, &notifier.node).await?;
            tokio::spawn(nodes::keep_beating(
                pool.clone(),
                notifier.node.clone(),
                stop.clone(),
            ));
            tokio::spawn(upkeep::keep_tidy(pool.clone(), stop.clone()));
        }
        Ok(PgStore {
            leases: Arc::new(leases::PgLeases {
                pool: pool.clone(),
                notifier: Arc::clone(&notifier),
            }),
            pool,
            listener: RwLock::new(None),
            notifier,
            stop,
        })
    }

    async fn client(&self) -> Result<Object> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn begin<'a>(&self, client: &'a mut Object) -> Result<Tx<'a>> {
        Ok(Tx {
            txn: client.transaction().await?,
            emitted: Mutex::new(Vec::new()),
        })
    }

    /// Commits `tx` if `result` is Ok (rolls it back otherwise), then tells
    /// the outbox listener of the events it committed.
    async fn end<T>(&self, tx: Tx<'_>, result: Result<T>) -> Result<T> {
        let value = match result {
            Ok(value) => value,
            Err(e) => {
                // A failed rollback leaves nothing behind: the connection
                // is then broken, and the pool drops it.
                let _ = tx.txn.rollback().await;
                return Err(e);
            }
        };
        let emitted = std::mem::take(&mut *tx.emitted.lock().map_err(|_| poisoned())?);
        tx.txn.commit().await?;
        if !emitted.is_empty() {
            if let Some(listener) = self.listener.read().map_err(|_| poisoned())?.as_ref() {
                listener(&emitted);
            }
            self.notifier.committed(&emitted);
        }
        Ok(value)
    }
}

fn poisoned() -> Error {
    Error::Internal("a lock of the PostgreSQL store was poisoned".into())
}

async fn insert_media(tx: &Tx<'_>, m: &MediaFile) -> Result<()> {
    // Locked: a sweeper that marks it given up waits for this commit, or
    // this insert sees its mark.
    let given_up = tx
        .opt(
            "SELECT deleting FROM media_leftovers WHERE file_id = $1 FOR UPDATE",
            &[&m.file_id.as_str()],
        )
        .await?;
    if let Some(row) = given_up
        && row.try_get::<_, bool>(0)?
    {
        return Err(super::codec::given_up_write(&m.file_id));
    }
    let (metadata, probe_error) = match &m.metadata {
        Ok(meta) => (Some(to_json(meta)?), None),
        Err(e) => (None, Some(e.clone())),
    };
    tx.exec(
        &format!(
            "INSERT INTO media ({MEDIA_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ),
        &[
            &m.file_id.as_str(),
            &m.app_id.0,
            &m.file_name,
            &m.stored_name,
            &i64::try_from(m.size).unwrap_or(i64::MAX),
            &m.md5,
            &to_micros(m.create_time),
            &m.source_type.code(),
            &m.source_context,
            &m.source_task_id.as_ref().map(TaskId::as_str),
            &metadata,
            &probe_error,
        ],
    )
    .await?;
    // Its objects are complete and now have their row.
    forget_leftover(tx, m.file_id.as_str()).await
}

async fn forget_leftover(tx: &Tx<'_>, file_id: &str) -> Result<()> {
    tx.exec(
        "DELETE FROM media_leftovers WHERE file_id = $1",
        &[&file_id],
    )
    .await?;
    tx.exec(
        "DELETE FROM media_multipart WHERE file_id = $1",
        &[&file_id],
    )
    .await?;
    Ok(())
}

fn app_record(r: &tokio_postgres::Row) -> Result<AppRecord> {
    Ok(AppRecord {
        name: r.try_get(0)?,
        create_time: from_micros(r.try_get(1)?),
        revoke_time: r.try_get::<_, Option<i64>>(2)?.map(from_micros),
    })
}

#[async_trait]
impl Store for PgStore {
    fn shared_leases(&self) -> Option<Arc<dyn SharedLeases>> {
        Some(Arc::clone(&self.leases) as Arc<dyn SharedLeases>)
    }

    fn listen_outbox(&self, listener: OutboxListener) {
        if let Ok(mut slot) = self.listener.write() {
            *slot = Some(listener);
        }
    }

    async fn create_app(&self, name: &str, key_hash: &KeyHash, now: Timestamp) -> Result<App> {
        let created = in_tx!(self, |tx| tx.opt(
            "INSERT INTO apps (name, key_hash, create_time) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING RETURNING app_id",
            &[&name, &key_hash.0, &to_micros(now)],
        ))?;
        match created {
            Some(row) => Ok(App {
                id: AppId(row.try_get(0)?),
                name: name.to_string(),
            }),
            None => Err(Error::AlreadyExists(format!(
                "name: an app named {name:?} exists already"
            ))),
        }
    }

    async fn app_by_key(&self, key_hash: &KeyHash) -> Result<Option<App>> {
        let c = self.client().await?;
        c.opt(
            "SELECT app_id, name FROM apps WHERE key_hash = $1 AND revoke_time IS NULL",
            &[&key_hash.0],
        )
        .await?
        .map(|r| {
            Ok(App {
                id: AppId(r.try_get(0)?),
                name: r.try_get(1)?,
            })
        })
        .transpose()
    }

    async fn app_count(&self) -> Result<u64> {
        let c = self.client().await?;
        let n: i64 = c.one("SELECT count(*) FROM apps", &[]).await?.try_get(0)?;
        Ok(n.max(0) as u64)
    }

    async fn list_apps(&self) -> Result<Vec<AppRecord>> {
        let c = self.client().await?;
        c.rows(
            "SELECT name, create_time, revoke_time FROM apps ORDER BY app_id",
            &[],
        )
        .await?
        .iter()
        .map(app_record)
        .collect()
    }

    async fn revoke_app(&self, name: &str, now: Timestamp) -> Result<AppRecord> {
        let row = in_tx!(self, |tx| async {
            tx.exec(
                "UPDATE apps SET revoke_time = $2 WHERE name = $1 AND revoke_time IS NULL",
                &[&name, &to_micros(now)],
            )
            .await?;
            tx.opt(
                "SELECT name, create_time, revoke_time FROM apps WHERE name = $1",
                &[&name],
            )
            .await
        })?;
        match row {
            Some(row) => app_record(&row),
            None => Err(Error::NotFound(format!("name: no app named {name:?}"))),
        }
    }

    async fn insert_media(
        &self,
        media: &MediaFile,
        event: Option<Draft>,
        follow_up: Option<NewTask>,
    ) -> Result<()> {
        in_tx!(self, |tx| async {
            insert_media(&tx, media).await?;
            if let Some(task) = &follow_up {
                tasks::insert(&tx, task).await?;
            }
            match &event {
                Some(draft) => events::emit(&tx, media.app_id, draft, media.create_time).await,
                None => Ok(()),
            }
        })
    }

    async fn get_media(&self, app: AppId, file_id: &FileId) -> Result<Option<MediaFile>> {
        let c = self.client().await?;
        c.opt(
            &format!("SELECT {MEDIA_COLUMNS} FROM media WHERE file_id = $1 AND app_id = $2"),
            &[&file_id.as_str(), &app.0],
        )
        .await?
        .as_ref()
        .map(rows::media)
        .transpose()
    }

    async fn recorded_files(&self, file_ids: Vec<String>) -> Result<HashSet<String>> {
        let c = self.client().await?;
        c.rows(
            "SELECT file_id FROM media WHERE file_id = ANY($1)",
            &[&file_ids],
        )
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
    }

    async fn note_media_write(&self, file: &FileId, owner: &str, now: Timestamp) -> Result<()> {
        in_tx!(self, |tx| tx.exec(
            "INSERT INTO media_leftovers (file_id, owner, since, deleting)
             VALUES ($1, $2, $3, false)",
            &[&file.as_str(), &owner, &to_micros(now)],
        ))?;
        Ok(())
    }

    async fn abandon_media_write(&self, file: &FileId) -> Result<()> {
        in_tx!(self, |tx| tx.exec(
            "UPDATE media_leftovers SET deleting = true WHERE file_id = $1",
            &[&file.as_str()],
        ))?;
        Ok(())
    }

    async fn note_multipart(&self, file: &FileId, name: &str, upload_id: &str) -> Result<()> {
        in_tx!(self, |tx| tx.exec(
            "INSERT INTO media_multipart (file_id, name, upload_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&file.as_str(), &name, &upload_id],
        ))?;
        Ok(())
    }

    async fn media_leftovers(&self, owner: &str, limit: usize) -> Result<Vec<MediaLeftover>> {
        let c = self.client().await?;
        let alive_since = to_micros(crate::time::now()) - nodes::ALIVE.as_micros() as i64;
        let files = c
            .rows(
                "SELECT file_id FROM media_leftovers l
                 WHERE deleting OR (owner <> $1 AND NOT EXISTS (
                     SELECT 1 FROM nodes n WHERE n.node = l.owner AND n.seen >= $3))
                 ORDER BY since, file_id LIMIT $2",
                &[
                    &owner,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                    &alive_since,
                ],
            )
            .await?;
        let mut out = Vec::with_capacity(files.len());
        for row in files {
            let file: String = row.try_get(0)?;
            let multipart = c
                .rows(
                    "SELECT name, upload_id FROM media_multipart WHERE file_id = $1
                     ORDER BY name, upload_id",
                    &[&file],
                )
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_>>()?;
            out.push(MediaLeftover {
                file_id: FileId::from_stored(file),
                multipart,
            });
        }
        Ok(out)
    }

    async fn clear_media_leftover(&self, file: &FileId) -> Result<()> {
        in_tx!(self, |tx| forget_leftover(&tx, file.as_str()))
    }

    async fn insert_task(&self, task: NewTask) -> Result<Inserted> {
        in_tx!(self, |tx| tasks::insert(&tx, &task))
    }

    async fn get_task(&self, app: AppId, id: &TaskId, with_attempts: bool) -> Result<Option<Task>> {
        let c = self.client().await?;
        tasks::get(&c, app, id, with_attempts).await
    }

    async fn list_tasks(&self, app: AppId, query: &TaskQuery) -> Result<TaskPage> {
        let c = self.client().await?;
        tasks::list(&c, app, query).await
    }

    async fn overview(&self, app: AppId, range: HourRange) -> Result<Overview> {
        let c = self.client().await?;
        tasks::overview(&c, app, range).await
    }

    async fn redo_task(&self, app: AppId, id: &TaskId, _now: Timestamp) -> Result<Task> {
        in_tx!(self, |tx| tasks::redo(&tx, app, id))
    }

    async fn cancel_task(&self, app: AppId, id: &TaskId, now: Timestamp) -> Result<Task> {
        in_tx!(self, |tx| tasks::cancel(&tx, app, id, now))
    }

    async fn claim_next(&self, lease_until: Timestamp, now: Timestamp) -> Result<Option<Claim>> {
        in_tx!(self, |tx| tasks::claim_next(&tx, lease_until, now))
    }

    async fn heartbeat(
        &self,
        lease: &Lease,
        progress: u8,
        lease_until: Timestamp,
    ) -> Result<LeaseState> {
        in_tx!(self, |tx| tasks::heartbeat(
            &tx,
            lease,
            progress,
            lease_until
        ))
    }

    async fn record_step(
        &self,
        lease: &Lease,
        progress: u8,
        output: &TaskOutput,
        new_media: Vec<MediaFile>,
        event: Option<Draft>,
    ) -> Result<LeaseState> {
        in_tx!(self, |tx| tasks::record_step(
            &tx,
            lease,
            progress,
            output,
            &new_media,
            event.as_ref()
        ))
    }

    async fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<Option<Vec<FileId>>> {
        in_tx!(self, |tx| tasks::finish(&tx, lease, &outcome, now))
    }

    async fn release(&self, lease: &Lease) -> Result<bool> {
        in_tx!(self, |tx| tasks::release(&tx, lease))
    }

    async fn recover(
        &self,
        orphans: Orphans,
        max_recoveries: u32,
        now: Timestamp,
    ) -> Result<Recovered> {
        in_tx!(self, |tx| tasks::recover(&tx, orphans, max_recoveries, now))
    }

    async fn purge_finished(&self, before: Timestamp) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = in_tx!(self, |tx| tasks::purge(&tx, before, PURGE_BATCH))?;
            total += n;
            if n < PURGE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    async fn event_config(&self, app: AppId) -> Result<EventConfig> {
        let c = self.client().await?;
        events::config(&c, app).await
    }

    async fn set_event_config(&self, app: AppId, config: &EventConfig) -> Result<()> {
        in_tx!(self, |tx| events::set_config(&tx, app, config))
    }

    async fn load_events(&self, app: AppId, after: i64, limit: u32) -> Result<Vec<PendingEvent>> {
        let c = self.client().await?;
        events::load(&c, app, after, limit).await
    }

    async fn settle_events(
        &self,
        app: AppId,
        seqs: Vec<(i64, u32)>,
        outcome: Settled,
    ) -> Result<()> {
        in_tx!(self, |tx| events::settle(&tx, app, &seqs, outcome))
    }

    async fn event_states(&self, app: AppId, seqs: Vec<i64>) -> Result<HashMap<i64, Stored>> {
        let c = self.client().await?;
        events::states(&c, app, &seqs).await
    }

    async fn dead_letter_events(
        &self,
        app: AppId,
        limit: u32,
        after: Option<i64>,
    ) -> Result<EventPage> {
        let c = self.client().await?;
        events::dead_letters(&c, app, limit, after).await
    }

    async fn revive_events(
        &self,
        app: AppId,
        event_ids: Option<Vec<String>>,
        which: Revive,
    ) -> Result<Vec<PendingEvent>> {
        in_tx!(self, |tx| events::revive(
            &tx,
            app,
            event_ids.as_deref(),
            which
        ))
    }

    async fn pending_event_seqs(&self, app: AppId, event_ids: Vec<String>) -> Result<Vec<i64>> {
        let c = self.client().await?;
        events::pending_seqs(&c, app, &event_ids).await
    }

    async fn event_tail(&self, app: AppId, after: i64) -> Result<Tail> {
        let c = self.client().await?;
        events::tail(&c, app, after).await
    }

    async fn push_apps(&self) -> Result<Vec<AppId>> {
        let c = self.client().await?;
        attempts::push_apps(&c).await
    }

    async fn claim_duty(&self, duty: Duty, every: Duration) -> Result<bool> {
        let c = self.client().await?;
        duties::claim(&c, duty, &self.notifier.node, every).await
    }

    async fn record_attempt(
        &self,
        app: AppId,
        seq: i64,
        attempt: CallbackAttempt,
        settle: Option<Settled>,
    ) -> Result<()> {
        in_tx!(self, |tx| attempts::record(&tx, app, seq, &attempt, settle))
    }

    async fn last_attempt(&self, app: AppId, seq: i64) -> Result<Option<CallbackAttempt>> {
        let c = self.client().await?;
        attempts::last(&c, app, seq).await
    }

    async fn endpoint_failing_since(&self, app: AppId) -> Result<Option<Timestamp>> {
        let c = self.client().await?;
        attempts::failing_since(&c, app).await
    }

    async fn callback_attempts(&self, app: AppId, of: AttemptsOf) -> Result<Vec<CallbackAttempt>> {
        let c = self.client().await?;
        attempts::list(&c, app, &of).await
    }

    async fn purge_events(&self, now: Timestamp) -> Result<u64> {
        in_tx!(self, |tx| events::purge(&tx, now))
    }
}

/// The conformance suite's and the tests' databases: a schema of its own
/// per store, in the database that `VODTASK_TEST_POSTGRES` names.
#[cfg(any(test, feature = "conformance"))]
pub mod testing {
    use super::{PgConfig, PgStore};
    use crate::store::Access;

    /// The server the tests use unless `VODTASK_TEST_POSTGRES` says.
    pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    pub fn server_url() -> String {
        std::env::var("VODTASK_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_URL.to_string())
    }

    /// A schema created for one test and dropped (with everything in it)
    /// when this is dropped.
    pub struct Schema {
        pub config: PgConfig,
        name: String,
        server: String,
    }

    impl Schema {
        pub async fn create() -> Schema {
            let server = server_url();
            let name = format!("t_{}", uuid::Uuid::new_v4().simple());
            let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("connect to {server} (VODTASK_TEST_POSTGRES): {e}"));
            tokio::spawn(connection);
            client
                .batch_execute(&format!("CREATE SCHEMA {name}"))
                .await
                .expect("create the test's schema");
            let sep = if server.contains('?') { '&' } else { '?' };
            let url = format!("{server}{sep}options=-csearch_path%3D{name}");
            Schema {
                config: PgConfig::new(url),
                name,
                server,
            }
        }

        pub async fn open(&self) -> PgStore {
            PgStore::open(&self.config, Access::Engine)
                .await
                .expect("open the PostgreSQL store")
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let (server, name) = (self.server.clone(), self.name.clone());
            // Drop may run inside a runtime, which cannot block on one of
            // its own: a thread with a runtime of its own drops the schema.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let (client, connection) =
                        tokio_postgres::connect(&server, tokio_postgres::NoTls)
                            .await
                            .ok()?;
                    tokio::spawn(connection);
                    client
                        .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
                        .await
                        .ok()
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("could not drop the test schema {}", self.name);
            }
        }
    }
}
