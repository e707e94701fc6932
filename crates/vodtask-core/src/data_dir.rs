//! The data dir: private to its user, held by one process at a time, and
//! where the default app's key is written for the first user to read.

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};

/// Creates `dir` (and missing parents) readable by this user only, or
/// takes group and other permissions off it if it exists: the data dir
/// holds the database, with webhook signing secrets in plain text, and the
/// media. Tightening may fail on a file system without modes; that is
/// logged, not fatal.
pub(crate) fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    make_private(dir, 0o700);
    Ok(())
}

/// Sets `path`'s mode to `mode` if it grants anything to group or others
/// (a missing path is left alone).
pub(crate) fn make_private(path: &Path, mode: u32) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let old = meta.permissions().mode() & 0o7777;
    if old & 0o077 == 0 {
        return;
    }
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => tracing::info!(
            path = %path.display(),
            "tightened permissions from {old:o} to {mode:o} (readable by this user only)"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            "cannot tighten permissions {old:o} to {mode:o}: {e}"
        ),
    }
}

/// Takes the data dir's lock, held as long as the file is open: one engine
/// per data dir.
pub(crate) fn lock(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    file.try_lock().map_err(|_| {
        Error::FailedPrecondition(format!(
            "data dir {} is in use by another vodtask process",
            dir.display()
        ))
    })?;
    Ok(file)
}

/// Removes what `dir` holds (scratch files a previous run left).
pub(crate) fn clear_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// Writes the key readable by the owner only, atomically.
pub(crate) fn write_key_file(path: &Path, key: &str) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("key.tmp");
    let mut file = File::options()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(format!("create {}", tmp.display()), e))?;
    file.write_all(format!("{key}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("rename to {}", path.display()), e))
}
