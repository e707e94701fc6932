//! WAL checkpoints on their own thread and connection. SQLite's automatic
//! checkpoint runs inside the committing connection, so every thousandth
//! page or so one unlucky commit (and the whole group behind it) waited for
//! the copy and its fsync; here a PASSIVE checkpoint runs beside the writer
//! and never blocks it. The WAL starts over from its beginning at the first
//! commit after a checkpoint that copied everything.

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::{Error, Result};

const EVERY: Duration = Duration::from_millis(200);

/// Stops its thread when dropped.
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    pub(super) fn start(conn: Connection) -> Result<Checkpointer> {
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpt".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!("WAL checkpoint failed: {e}");
                    }
                }
            })
            .map_err(|e| Error::io("start the SQLite checkpoint thread", e))?;
        Ok(Checkpointer { _stop: stop })
    }
}
