//! Media in a local directory: `<root>/<file_id>/<name>`, with partial
//! writes in a sibling temp dir so that they are never served. A file is
//! durable once its write returns: its bytes and both directories are
//! fsynced around an atomic rename.

use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use std::ops::Range;

use futures::{StreamExt, TryStreamExt};
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::io::ReaderStream;

use super::ObjectBody;

use crate::data_dir::create_private_dir;
use crate::error::{Error, Result};
use crate::ids::FileId;

#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    tmp_dir: PathBuf,
}

impl LocalStorage {
    /// `tmp_dir` must be on the same filesystem as `root` (files are renamed
    /// from one to the other).
    pub fn open(root: PathBuf, tmp_dir: PathBuf) -> Result<Self> {
        for dir in [&root, &tmp_dir] {
            create_private_dir(dir)?;
        }
        Ok(LocalStorage { root, tmp_dir })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where ffmpeg and ffprobe read `<file_id>/<name>`.
    pub fn path_of(&self, file_id: &FileId, name: &str) -> PathBuf {
        self.root.join(file_id.as_str()).join(name)
    }

    /// A new object written as a stream. Nothing of it is visible until
    /// `finish`; a writer dropped before that (cancelled, failed, or its
    /// future dropped at any await) removes its temp file at once.
    pub fn writer(&self, file_id: &FileId, name: &str) -> Result<LocalWriter> {
        let tmp = TempFile {
            path: self.tmp_dir.join(format!("upload-{file_id}")),
            armed: true,
        };
        // Created without an await between it and its guard: a future
        // dropped while a blocking-pool create was in flight would leave a
        // file its guard had already failed to remove.
        let file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp.path)
            .map_err(|e| Error::io(format!("create {}", tmp.path.display()), e))?;
        Ok(LocalWriter {
            storage: self.clone(),
            file_id: file_id.clone(),
            name: name.to_string(),
            file: fs::File::from_std(file),
            tmp,
        })
    }

    /// Adopts a finished local file (a task's output in its scratch dir) as
    /// `<file_id>/<name>`: synced, then moved, not copied.
    pub async fn put_file(&self, file_id: &FileId, name: &str, local: &Path) -> Result<()> {
        sync_file(local).await?;
        self.place(file_id, name, local).await
    }

    /// Adopts every file of a local directory as the objects of one file
    /// (an HLS playlist with its segments, sprite images with their index).
    pub async fn put_dir(&self, file_id: &FileId, local_dir: &Path) -> Result<()> {
        let mut entries = fs::read_dir(local_dir)
            .await
            .map_err(|e| Error::io(format!("read {}", local_dir.display()), e))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| Error::io(format!("read {}", local_dir.display()), e))?
        {
            sync_file(&entry.path()).await?;
        }
        let dest_dir = self.root.join(file_id.as_str());
        fs::rename(local_dir, &dest_dir).await.map_err(|e| {
            Error::io(
                format!("move {} to {}", local_dir.display(), dest_dir.display()),
                e,
            )
        })?;
        sync_dir(&dest_dir).await?;
        sync_dir(&self.root).await
    }

    /// Removes every object of one file; a file with none left is no error.
    /// With its partial write, should a crash have left one (a temp dir
    /// inside a shared root is not emptied at start: other nodes may be
    /// writing there).
    pub async fn delete_file(&self, file_id: &FileId) -> Result<()> {
        let partial = self.tmp_dir.join(format!("upload-{file_id}"));
        match fs::remove_file(&partial).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("remove {}", partial.display()), e)),
        }
        let dir = self.root.join(file_id.as_str());
        match fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("remove {}", dir.display()), e)),
        }
    }

    /// Copies every file of `<file_id>/` into `dest_dir`.
    pub async fn copy_file(&self, file_id: &FileId, dest_dir: &Path) -> Result<u64> {
        let dir = self.root.join(file_id.as_str());
        let mut entries = fs::read_dir(&dir)
            .await
            .map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
        let mut total = 0;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| Error::io(format!("read {}", dir.display()), e))?
        {
            let dest = dest_dir.join(entry.file_name());
            total += fs::copy(entry.path(), &dest).await.map_err(|e| {
                Error::io(
                    format!("copy {} to {}", entry.path().display(), dest.display()),
                    e,
                )
            })?;
        }
        Ok(total)
    }

    pub async fn read(
        &self,
        file_id: &FileId,
        name: &str,
        range: Option<Range<u64>>,
    ) -> Result<ObjectBody> {
        let path = self.path_of(file_id, name);
        let mut file = fs::File::open(&path).await.map_err(|e| match e.kind() {
            ErrorKind::NotFound => Error::NotFound(format!("no object {file_id}/{name}")),
            _ => Error::io(format!("open {}", path.display()), e),
        })?;
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
            .len();
        let range = range.unwrap_or(0..size);
        let range = range.start.min(size)..range.end.min(size);
        file.seek(std::io::SeekFrom::Start(range.start))
            .await
            .map_err(|e| Error::io(format!("seek {}", path.display()), e))?;
        let stream = ReaderStream::new(file.take(range.end - range.start))
            .map_err(move |e| Error::io(format!("read {}", path.display()), e))
            .boxed();
        Ok(ObjectBody {
            size,
            range,
            stream,
        })
    }

    pub async fn size_of(&self, file_id: &FileId, name: &str) -> Result<u64> {
        let path = self.path_of(file_id, name);
        match fs::metadata(&path).await {
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                Err(Error::NotFound(format!("no object {file_id}/{name}")))
            }
            Err(e) => Err(Error::io(format!("stat {}", path.display()), e)),
        }
    }

    /// Renames `src` to its place and syncs both directories, so that the
    /// file survives a crash once this returns. On an error the file's
    /// directory is removed again (its row will not be written).
    async fn place(&self, file_id: &FileId, name: &str, src: &Path) -> Result<()> {
        let dir = self.root.join(file_id.as_str());
        fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let dest = dir.join(name);
        let placed = async {
            fs::rename(src, &dest).await.map_err(|e| {
                Error::io(format!("move {} to {}", src.display(), dest.display()), e)
            })?;
            sync_dir(&dir).await?;
            sync_dir(&self.root).await
        };
        if let Err(e) = placed.await {
            let _ = fs::remove_dir_all(&dir).await;
            return Err(e);
        }
        Ok(())
    }
}

/// One object being written.
pub struct LocalWriter {
    storage: LocalStorage,
    file_id: FileId,
    name: String,
    file: fs::File,
    tmp: TempFile,
}

impl LocalWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.file
            .write_all(chunk)
            .await
            .map_err(|e| Error::io(format!("write {}", self.tmp.path.display()), e))
    }

    /// Makes the bytes durable and moves them to their place.
    pub async fn finish(self) -> Result<()> {
        let LocalWriter {
            storage,
            file_id,
            name,
            mut file,
            tmp,
        } = self;
        // `write_all` may leave its last write in flight: `flush` waits for
        // it and reports its error, which `sync_all` would not.
        let synced = async {
            file.flush().await?;
            file.sync_all().await
        };
        synced
            .await
            .map_err(|e| Error::io(format!("sync {}", tmp.path.display()), e))?;
        drop(file);
        storage.place(&file_id, &name, &tmp.path).await?;
        tmp.disarm();
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn temp_path(&self) -> &Path {
        &self.tmp.path
    }
}

/// Owns a write's temp file from its creation until `place` has moved it:
/// dropped before that, it removes the file.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// The file has been moved to its place; nothing to remove.
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Blocking, but one unlink; never panics.
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), "cannot remove an unfinished upload: {e}")
            }
        }
    }
}

async fn sync_file(path: &Path) -> Result<()> {
    let file = fs::File::open(path)
        .await
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    file.sync_all()
        .await
        .map_err(|e| Error::io(format!("sync {}", path.display()), e))
}

async fn sync_dir(dir: &Path) -> Result<()> {
    let d = fs::File::open(dir)
        .await
        .map_err(|e| Error::io(format!("open {}", dir.display()), e))?;
    d.sync_all()
        .await
        .map_err(|e| Error::io(format!("sync {}", dir.display()), e))
}
