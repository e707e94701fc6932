//! Group commit. One thread owns the only writing connection; every write is
//! a closure queued to it. The thread drains whatever queued up while the
//! previous commit was syncing, runs each closure in its own savepoint (a
//! failing one rolls back alone), commits once, and only then answers the
//! callers: durability is never traded for the batching.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock, mpsc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::outbox;
use crate::error::{Error, Result, panic_message};
use crate::store::OutboxListener;

/// Upper bound of writes per transaction, to keep commit latency bounded.
const MAX_BATCH: usize = 1024;

trait Job: Send {
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn PendingReply>;
    fn reject(self: Box<Self>, reason: &str);
}

trait PendingReply: Send {
    fn complete(self: Box<Self>, commit: Result<(), &str>);
}

struct WriteJob<F, T> {
    work: F,
    reply: oneshot::Sender<Result<T>>,
}

struct Reply<T> {
    result: Result<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<F, T> Job for WriteJob<F, T>
where
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn PendingReply> {
        let result = in_savepoint(conn, self.work);
        Box::new(Reply {
            result,
            reply: self.reply,
        })
    }

    fn reject(self: Box<Self>, reason: &str) {
        let _ = self.reply.send(Err(storage(reason)));
    }
}

impl<T: Send + 'static> PendingReply for Reply<T> {
    fn complete(self: Box<Self>, commit: Result<(), &str>) {
        let outcome = match commit {
            Ok(()) => self.result,
            Err(reason) => Err(storage(reason)),
        };
        let _ = self.reply.send(outcome);
    }
}

fn storage(reason: &str) -> Error {
    Error::Storage(reason.to_string().into())
}

/// Runs one statement from the connection's statement cache: the
/// transaction-control statements run for every write, and parsing them
/// each time cost about a quarter of the writer's CPU.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn in_savepoint<T>(conn: &Connection, work: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    run_cached(conn, "SAVEPOINT job")?;
    let events_from = outbox::mark();
    // A panicking write is a bug, but it must cost only that write: were
    // the thread to unwind, every later write of every app would fail while
    // the server still looked healthy.
    let result =
        std::panic::catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|panic| {
            let what = panic_message(panic.as_ref());
            tracing::error!("a write panicked and was rolled back: {what}");
            Err(Error::Internal(format!("a write panicked: {what}")))
        });
    match &result {
        Ok(_) => run_cached(conn, "RELEASE job")?,
        Err(_) => {
            outbox::roll_back_to(events_from);
            run_cached(conn, "ROLLBACK TO job")?;
            run_cached(conn, "RELEASE job")?;
        }
    }
    result
}

pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    /// Set if the thread itself died (its jobs' panics are caught one by
    /// one, so this is a bug in the loop): no write can succeed any more.
    died: Arc<OnceLock<String>>,
    /// Told after each commit which apps got events in it.
    listener: Arc<OnceLock<OutboxListener>>,
}

impl Writer {
    pub(super) fn start(conn: Connection) -> Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let died = Arc::new(OnceLock::new());
        let record = Arc::clone(&died);
        let listener = Arc::new(OnceLock::new());
        let tell = Arc::clone(&listener);
        std::thread::Builder::new()
            .name(super::WRITER_THREAD.into())
            .spawn(move || {
                if let Err(panic) =
                    std::panic::catch_unwind(AssertUnwindSafe(|| run(conn, queue, &tell)))
                {
                    let _ = record.set(format!(
                        "the SQLite writer panicked: {}",
                        panic_message(panic.as_ref())
                    ));
                }
            })
            .map_err(|e| Error::io("start the SQLite writer thread", e))?;
        Ok(Writer {
            jobs,
            died,
            listener,
        })
    }

    /// Sets the outbox listener; only the first one set is kept.
    pub(super) fn listen_outbox(&self, listener: OutboxListener) {
        if self.listener.set(listener).is_err() {
            tracing::error!("the store's outbox already has a listener; the new one is ignored");
        }
    }

    /// Why no write can succeed any more, if so.
    pub(super) fn failure(&self) -> Option<String> {
        self.died.get().cloned()
    }

    /// Runs `work` in the next transaction; returns after it is committed.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(WriteJob { work, reply }))
            .map_err(|_| Error::Internal("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Internal("the SQLite writer dropped a write".into()))?
    }
}

fn run(conn: Connection, queue: mpsc::Receiver<Box<dyn Job>>, listener: &OnceLock<OutboxListener>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = run_cached(&conn, "BEGIN IMMEDIATE") {
            let reason = format!("cannot begin a transaction: {e}");
            batch.into_iter().for_each(|job| job.reject(&reason));
            continue;
        }
        let replies: Vec<_> = batch.into_iter().map(|job| job.run(&conn)).collect();
        let emitted = outbox::take();
        match run_cached(&conn, "COMMIT") {
            Ok(()) => {
                // Before the answers: a writer that sees its write done
                // finds its events already announced.
                if let Some(tell) = listener.get().filter(|_| !emitted.is_empty()) {
                    tell(&emitted);
                }
                replies.into_iter().for_each(|r| r.complete(Ok(())));
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                let reason = format!("commit failed: {e}");
                tracing::error!("{reason}");
                replies.into_iter().for_each(|r| r.complete(Err(&reason)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer over a new database with one table `t (x)`.
    fn writer_of_one_table() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("db")).expect("open");
        conn.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .expect("schema");
        (dir, Writer::start(conn).expect("start"))
    }

    #[tokio::test]
    async fn a_failing_write_rolls_back_alone() {
        let (_dir, writer) = writer_of_one_table();
        let ok = writer.write(|c| Ok(c.execute("INSERT INTO t VALUES (1)", [])?));
        let dup = writer.write(|c| {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            Ok(c.execute("INSERT INTO t VALUES (1)", [])?)
        });
        let (ok, dup) = tokio::join!(ok, dup);
        assert!(ok.is_ok());
        assert!(dup.is_err());
        let rows: i64 = writer
            .write(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .expect("count");
        assert_eq!(rows, 1, "the failed write's first insert was rolled back");
    }

    #[tokio::test]
    async fn a_panicking_write_is_rolled_back_and_the_writer_goes_on() {
        let (_dir, writer) = writer_of_one_table();
        let ok = writer.write(|c| Ok(c.execute("INSERT INTO t VALUES (1)", [])?));
        let boom = writer.write(|c| -> Result<usize> {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            panic!("a bug in a write")
        });
        let (ok, boom) = tokio::join!(ok, boom);
        assert!(ok.is_ok(), "a write batched with the panicking one commits");
        let e = boom.expect_err("the panicking write fails");
        assert!(e.to_string().contains("a bug in a write"), "{e}");
        let rows: i64 = writer
            .write(|c| {
                c.execute("INSERT INTO t VALUES (3)", [])?;
                Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?)
            })
            .await
            .expect("the writer still writes");
        assert_eq!(
            rows, 2,
            "rows 1 and 3; the panicking write's row 2 was rolled back"
        );
    }

    #[tokio::test]
    async fn the_outbox_listener_hears_of_committed_events_only() {
        use std::sync::Mutex;

        use crate::ids::AppId;

        let (_dir, writer) = writer_of_one_table();
        let heard: Arc<Mutex<Vec<Vec<AppId>>>> = Arc::default();
        let log = Arc::clone(&heard);
        writer.listen_outbox(Arc::new(move |apps: &[AppId]| {
            log.lock().expect("log").push(apps.to_vec());
        }));
        let kept = writer.write(|c| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            outbox::emitted(AppId(7));
            outbox::emitted(AppId(7));
            Ok(())
        });
        let rolled_back = writer.write(|c| -> Result<()> {
            outbox::emitted(AppId(8));
            c.execute("INSERT INTO t VALUES (1)", [])?;
            Ok(())
        });
        let (kept, rolled_back) = tokio::join!(kept, rolled_back);
        kept.expect("the first write commits");
        assert!(rolled_back.is_err(), "the duplicate row fails its write");
        writer
            .write(|c| Ok(c.execute("INSERT INTO t VALUES (2)", [])?))
            .await
            .expect("a write without events");
        assert_eq!(
            *heard.lock().expect("log"),
            vec![vec![AppId(7)]],
            "told once, of app 7 only: app 8's event rolled back with its write, \
             and a commit without events is not announced"
        );
    }
}
