//! What only the SQLite store can be asked; everything the `Store` trait
//! promises is checked by the conformance suite (`conformance.rs`).

use super::SqliteStore;
use crate::store::SyncMode;

/// `--sync` reaches the writing connection (SQLite: 2 is FULL, 1 NORMAL).
#[tokio::test]
async fn the_sync_mode_is_the_writers_synchronous_setting() {
    for (mode, level) in [(SyncMode::Full, 2), (SyncMode::Normal, 1)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open_with(dir.path(), mode).expect("open");
        let got: i64 = store
            .writer
            .write(|c| Ok(c.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
            .await
            .expect("read the setting");
        assert_eq!(got, level, "{mode:?}");
    }
}
