//! The store conformance suite on SQLite: each case on a new database in a
//! temporary directory, opened as the server opens it.

use std::sync::Arc;

use super::SqliteStore;
use crate::store::conformance::Fixture;

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path()).expect("open the store");
    Fixture::new(Arc::new(store), dir)
}

crate::store_conformance!(fresh());
