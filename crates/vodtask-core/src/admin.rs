//! What `vodtask apps` does to a data dir, whether or not a server runs on
//! it: the server sees a new app at its next call with that key, and stops
//! accepting a revoked key within a second (see `Engine::authenticate`).

use std::path::Path;

use crate::app::{ApiKey, App};
use crate::engine::create_app;
use crate::error::{Error, Result};
use std::sync::Arc;

use crate::store::{Access, AppRecord, Store, StoreConfig, SyncMode};
use crate::time;

/// Whether a data dir may be made where there is none (`--init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    Refuse,
    Create,
}

/// Where the server keeps its state: `--database`, else `--data-dir`.
#[derive(Debug, Clone)]
pub struct Place<'a> {
    pub store: &'a StoreConfig,
    pub data_dir: &'a Path,
}

/// Opens the store of an existing data dir (or the database). A wrong
/// `--data-dir` (run from another directory, a typo) must not silently
/// make a new, empty data dir whose keys the running server would never
/// accept.
pub async fn open_store(place: &Place<'_>, missing: Missing) -> Result<Arc<dyn Store>> {
    let Place {
        store: config,
        data_dir,
    } = *place;
    if missing == Missing::Refuse && !crate::store::exists(config, data_dir) {
        let why = if !data_dir.exists() {
            "does not exist"
        } else if !data_dir.is_dir() {
            "is not a directory"
        } else {
            "is not a vodtask data dir (no vodtask.db)"
        };
        return Err(Error::FailedPrecondition(format!(
            "data dir {} {why}; give the server's --data-dir, or --init to make a new one",
            data_dir.display()
        )));
    }
    crate::store::open(config, data_dir, SyncMode::Full, Access::Admin).await
}

/// Creates an app; its key is returned once (only its hash is stored).
pub async fn create_app_in(
    place: &Place<'_>,
    name: &str,
    missing: Missing,
) -> Result<(App, ApiKey)> {
    let store = open_store(place, missing).await?;
    create_app(store.as_ref(), name).await
}

pub async fn list_apps_in(place: &Place<'_>) -> Result<Vec<AppRecord>> {
    open_store(place, Missing::Refuse).await?.list_apps().await
}

/// Revokes an app's key, for good.
pub async fn revoke_app_in(place: &Place<'_>, name: &str) -> Result<AppRecord> {
    open_store(place, Missing::Refuse)
        .await?
        .revoke_app(name, time::now())
        .await
}
