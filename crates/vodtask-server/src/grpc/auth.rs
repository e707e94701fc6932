//! `authorization: Bearer <api key>` → the calling app.

use tonic::Status;
use tonic::metadata::MetadataMap;
use vodtask_core::Engine;
use vodtask_core::ids::AppId;

use super::status::to_status;

pub(crate) async fn app_of(engine: &Engine, metadata: &MetadataMap) -> Result<AppId, Status> {
    let header = metadata.get("authorization").ok_or_else(|| {
        Status::unauthenticated("authorization: missing; send 'authorization: Bearer <api key>'")
    })?;
    let key = header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Status::unauthenticated("authorization: must be 'Bearer <api key>'"))?;
    engine
        .authenticate(key)
        .await
        .map(|app| app.id)
        .map_err(to_status)
}
