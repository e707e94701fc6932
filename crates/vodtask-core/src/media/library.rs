//! What a media file is: its id, its name, its size and MD5 (measured on
//! the way in), its probe, and its URL, `<public base URL>/files/<file_id>/
//! <stored_name>`. Its bytes are kept by the storage (`storage/`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use md5::{Digest, Md5};
use tokio::fs;
use tokio::io::AsyncReadExt;

use super::storage::{ObjectBody, Readable, Storage, StorageConfig, UploadLog, Writer};
use super::{
    MAX_FILE_NAME_BYTES, MAX_SOURCE_CONTEXT_BYTES, MediaFile, MediaMetadata, SourceType, probe,
};
use crate::data_dir::create_private_dir;
use crate::error::{Error, Result};
use crate::ids::{AppId, FileId, TaskId};
use crate::store::Store;
use crate::time;

/// What a file's URL points at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum FileUrls {
    /// vodtask's HTTP port serves the bytes (`--file-urls proxy`).
    #[default]
    Served,
    /// vodtask's HTTP port answers with a redirect to a presigned URL of
    /// this lifetime; playlists and WebVTT indexes, whose relative links
    /// would lose the signature, are served (`--file-urls presign`).
    Presigned { ttl: Duration },
    /// `<base>/<object key>`: a CDN or a public bucket (`--file-urls public`).
    Public { base: String },
}

/// How executors read a file kept in an object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputMode {
    /// ffmpeg reads a presigned URL with Range requests; an HLS playlist,
    /// whose segments ffmpeg would fetch unsigned, is copied.
    #[default]
    Presigned,
    /// The file's objects are copied into the task's scratch dir first.
    ScratchCopy,
}

/// How the library is set up (`EngineConfig` carries it).
#[derive(Debug, Clone)]
pub struct LibraryConfig {
    pub storage: StorageConfig,
    pub file_urls: FileUrls,
    pub inputs: InputMode,
    pub ffprobe: PathBuf,
    /// Prefix of served file URLs, e.g. `http://127.0.0.1:8080`.
    pub public_base_url: String,
    pub max_upload_bytes: u64,
}

/// A presigned URL ffmpeg reads must outlive the longest run.
const INPUT_URL_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Clone)]
pub struct MediaLibrary {
    storage: Storage,
    store: Arc<dyn Store>,
    /// This process as the writer of the leftover records it notes: the
    /// writes of any other owner are a dead process's (one process per
    /// data dir), swept.
    owner: Arc<str>,
    tmp_dir: PathBuf,
    ffprobe: PathBuf,
    file_urls: FileUrls,
    inputs: InputMode,
    public_base_url: String,
    max_upload_bytes: u64,
}

impl std::fmt::Debug for MediaLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaLibrary")
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

/// Where the HTTP port finds a file's bytes.
pub enum Served {
    Body(ObjectBody),
    /// A presigned URL to redirect to.
    Redirect(String),
}

impl MediaLibrary {
    pub async fn open(
        config: &LibraryConfig,
        data_dir: &Path,
        store: Arc<dyn Store>,
    ) -> Result<Self> {
        let tmp_dir = data_dir.join("tmp");
        create_private_dir(&tmp_dir)?;
        let uploads = Arc::new(RecordedUploads(Arc::clone(&store)));
        let storage = Storage::open(&config.storage, data_dir, &tmp_dir, uploads).await?;
        // Over a shared store, this process's name there, under which its
        // liveness is kept: other processes' sweepers leave its writes
        // alone while it lives.
        let owner: Arc<str> = store
            .shared_leases()
            .map_or_else(|| uuid::Uuid::new_v4().to_string(), |s| s.node())
            .into();
        Ok(MediaLibrary {
            storage,
            store,
            owner,
            tmp_dir,
            ffprobe: config.ffprobe.clone(),
            file_urls: config.file_urls.clone(),
            inputs: config.inputs,
            public_base_url: config.public_base_url.trim_end_matches('/').to_string(),
            max_upload_bytes: config.max_upload_bytes,
        })
    }

    /// The directory of a local storage, which the HTTP port serves as it
    /// is; `None` for an object store.
    pub fn media_dir(&self) -> Option<&Path> {
        self.storage.local_root()
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    pub fn ffprobe(&self) -> &Path {
        &self.ffprobe
    }

    pub fn url_of(&self, file_id: &FileId, stored_name: &str) -> String {
        match &self.file_urls {
            FileUrls::Public { base } => format!(
                "{}/{}",
                base.trim_end_matches('/'),
                self.storage.key_of(file_id, stored_name)
            ),
            FileUrls::Served | FileUrls::Presigned { .. } => {
                format!("{}/files/{}/{}", self.public_base_url, file_id, stored_name)
            }
        }
    }

    /// A scratch directory for one task run, removed by the caller.
    pub async fn scratch_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.tmp_dir.join(name);
        let _ = fs::remove_dir_all(&dir).await;
        fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        Ok(dir)
    }

    pub async fn begin_upload(
        &self,
        app_id: AppId,
        file_name: &str,
        source_context: &str,
    ) -> Result<Upload> {
        validate_file_name("header.file_name", file_name)?;
        validate_source_context("header.source_context", source_context)?;
        self.begin(app_id, file_name, source_context, None).await
    }

    /// Starts receiving a file that a pull task downloads.
    pub async fn begin_pull(
        &self,
        app_id: AppId,
        task_id: &TaskId,
        file_name: &str,
        source_context: &str,
    ) -> Result<Upload> {
        self.begin(app_id, file_name, source_context, Some(task_id.clone()))
            .await
    }

    async fn begin(
        &self,
        app_id: AppId,
        file_name: &str,
        source_context: &str,
        pulled_by: Option<TaskId>,
    ) -> Result<Upload> {
        let file_id = FileId::generate();
        let stored_name = stored_upload_name(file_name);
        let guard = self.note_write(&file_id).await?;
        let writer = self.storage.writer(&file_id, &stored_name)?;
        Ok(Upload {
            guard,
            app_id,
            file_name: file_name.to_string(),
            stored_name,
            source_context: source_context.to_string(),
            writer,
            size: 0,
            max_bytes: self.max_upload_bytes,
            md5: Md5::new(),
            pulled_by,
        })
    }

    /// Records, before the first byte of a new file is written, that its
    /// objects may exist without a row: a crash from here on leaves a
    /// record for the sweeper, not an orphan.
    async fn note_write(&self, file_id: &FileId) -> Result<WriteGuard> {
        self.store
            .note_media_write(file_id, &self.owner, time::now())
            .await?;
        Ok(WriteGuard {
            library: Some(self.clone()),
            file_id: file_id.clone(),
        })
    }

    /// Stores a file a task wrote as a new media file: probed where it
    /// lies, then moved (local) or uploaded (object store).
    pub async fn adopt_output(
        &self,
        app_id: AppId,
        task_id: &TaskId,
        src: &Path,
        stored_name: &str,
    ) -> Result<MediaFile> {
        let (size, md5) = digest_file(src).await?;
        let metadata = probe::probe(&self.ffprobe, &Readable::Path(src.to_path_buf())).await;
        let file_id = FileId::generate();
        let guard = self.note_write(&file_id).await?;
        self.storage.put_file(&file_id, stored_name, src).await?;
        guard.disarm();
        Ok(task_output(
            file_id,
            app_id,
            task_id,
            stored_name,
            size,
            md5,
            metadata,
        ))
    }

    /// Stores a directory a task wrote (an HLS playlist with its segments,
    /// sprite images with their WebVTT index) as one media file:
    /// `main_name` is what its URL points at, and its MD5 the file's; size
    /// counts every file.
    pub async fn adopt_output_dir(
        &self,
        app_id: AppId,
        task_id: &TaskId,
        src_dir: &Path,
        main_name: &str,
    ) -> Result<MediaFile> {
        let main = src_dir.join(main_name);
        let (_, md5) = digest_file(&main).await?;
        let size = dir_size(src_dir).await?;
        let metadata = probe::probe(&self.ffprobe, &Readable::Path(main)).await;
        let file_id = FileId::generate();
        let guard = self.note_write(&file_id).await?;
        self.storage.put_dir(&file_id, src_dir).await?;
        guard.disarm();
        Ok(task_output(
            file_id, app_id, task_id, main_name, size, md5, metadata,
        ))
    }

    /// Where ffmpeg reads a task's input: in place (a local file, or a
    /// presigned URL), or a copy in `scratch`.
    pub async fn input(&self, media: &MediaFile, scratch: &Path) -> Result<Readable> {
        let (id, name) = (&media.file_id, media.stored_name.as_str());
        if let Some(root) = self.storage.local_root() {
            let path = root.join(id.as_str()).join(name);
            return match fs::metadata(&path).await {
                Ok(meta) if meta.is_file() => Ok(Readable::Path(path)),
                _ => Err(Error::NotFound(format!(
                    "source file {id} is missing on disk"
                ))),
            };
        }
        let playlist = name.ends_with(".m3u8");
        if self.inputs == InputMode::Presigned && !playlist {
            self.storage.size_of(id, name).await?;
            return self.storage.readable(id, name, INPUT_URL_TTL).await;
        }
        ensure_room(scratch, media.size)?;
        let dir = scratch.join(format!("input-{id}"));
        fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        self.storage.fetch_file(id, &dir).await?;
        let path = dir.join(name);
        if !path.is_file() {
            return Err(Error::NotFound(format!(
                "source file {id} is missing in storage"
            )));
        }
        Ok(Readable::Path(path))
    }

    /// The bytes of `<file_id>/<name>` for the HTTP port (object stores
    /// only; a local storage is served as a directory). NotFound unless
    /// the file has a row: an object whose write was not committed, or
    /// whose delete was, is never served.
    /// With `head`, the body is empty (HEAD): nothing is read.
    pub async fn serve(
        &self,
        file_id: &str,
        name: &str,
        head: bool,
        range: impl FnOnce(u64) -> Option<std::ops::Range<u64>>,
    ) -> Result<Served> {
        let not_found = || Error::NotFound(format!("no file {file_id}/{name}"));
        let id = FileId::parse("file_id", file_id).map_err(|_| not_found())?;
        if validate_file_name("name", name).is_err() {
            return Err(not_found());
        }
        let recorded = self.store.recorded_files(vec![file_id.to_string()]).await?;
        if !recorded.contains(file_id) {
            return Err(not_found());
        }
        if let FileUrls::Presigned { ttl } = &self.file_urls
            && !(name.ends_with(".m3u8") || name.ends_with(".vtt"))
        {
            self.storage.size_of(&id, name).await?;
            if let Readable::Url(url) = self.storage.readable(&id, name, *ttl).await? {
                return Ok(Served::Redirect(url));
            }
        }
        let size = self.storage.size_of(&id, name).await?;
        let range = range(size);
        if head {
            return Ok(Served::Body(ObjectBody {
                size,
                range: range.unwrap_or(0..size),
                stream: futures::stream::empty().boxed(),
            }));
        }
        let body = self.storage.read(&id, name, range).await?;
        Ok(Served::Body(body))
    }

    /// Removes a new file's objects after its row could not be written (or
    /// its task's result was dropped): its record is turned into a delete
    /// first, so that the sweeper finishes the job should this fail.
    pub async fn discard(&self, file_id: &FileId) {
        if let Err(e) = self.store.abandon_media_write(file_id).await {
            tracing::warn!(%file_id, "cannot mark a media file for removal: {e}");
            return;
        }
        self.remove(file_id).await;
    }

    /// Removes the objects of files whose rows were deleted (their delete
    /// records were written with the delete).
    pub async fn removed(&self, file_ids: &[FileId]) {
        for file_id in file_ids {
            self.remove(file_id).await;
        }
    }

    async fn remove(&self, file_id: &FileId) {
        let removed = async {
            self.storage.delete_file(file_id).await?;
            self.store.clear_media_leftover(file_id).await
        };
        if let Err(e) = removed.await {
            tracing::warn!(%file_id, "removing a media file's objects failed, retried later: {e}");
        }
    }

    /// Removes the objects of every file that its records say may lack a
    /// row: writes a dead process left, given-up writes and deleted files.
    /// Returns how many files were swept; stops at the first failure (the
    /// storage is likely down), to go on at the next sweep.
    pub async fn sweep(&self) -> Result<usize> {
        let mut swept = 0;
        loop {
            let batch = self.store.media_leftovers(&self.owner, 100).await?;
            if batch.is_empty() {
                return Ok(swept);
            }
            for leftover in &batch {
                let file_id = &leftover.file_id;
                // Marked given up first: a writer that was only slow (taken
                // for dead) can then no longer record the file whose
                // objects go now.
                self.store.abandon_media_write(file_id).await?;
                for (name, upload_id) in &leftover.multipart {
                    self.storage.abort_upload(file_id, name, upload_id).await?;
                }
                self.storage.delete_file(file_id).await?;
                self.store.clear_media_leftover(file_id).await?;
                swept += 1;
            }
        }
    }
}

/// What a copy into a scratch dir must leave free on its disk: a full disk
/// would fail every running task and upload at once.
const SCRATCH_HEADROOM: u64 = 1 << 30;

/// Refuses a copy of `needed` bytes into `dir` that would leave less than
/// `SCRATCH_HEADROOM` free.
fn ensure_room(dir: &Path, needed: u64) -> Result<()> {
    let stat = rustix::fs::statvfs(dir)
        .map_err(|e| Error::io(format!("statvfs {}", dir.display()), e.into()))?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    if free < needed.saturating_add(SCRATCH_HEADROOM) {
        return Err(Error::ResourceExhausted(format!(
            "the scratch dir has {} MiB free; copying a {} MiB input there would leave less than {} MiB",
            free >> 20,
            needed >> 20,
            SCRATCH_HEADROOM >> 20
        )));
    }
    Ok(())
}

/// Multipart uploads are recorded with their file's leftover record.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
struct RecordedUploads(Arc<dyn Store>);

#[async_trait::async_trait]
impl UploadLog for RecordedUploads {
    async fn started(&self, file_id: &FileId, name: &str, upload_id: &str) -> Result<()> {
        self.0.note_multipart(file_id, name, upload_id).await
    }
}

/// A new file's leftover record, while its objects are being written:
/// dropped before `disarm` (the write failed, or its future was dropped),
/// it has the library discard them in the background.
struct WriteGuard {
    library: Option<MediaLibrary>,
    file_id: FileId,
}

impl WriteGuard {
    /// The objects are complete: the caller records the file (or discards
    /// it) from here on.
    fn disarm(mut self) {
        self.library = None;
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let Some(library) = self.library.take() else {
            return;
        };
        let file_id = self.file_id.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { library.discard(&file_id).await });
        }
    }
}

/// A file a task wrote, as the library records it.
fn task_output(
    file_id: FileId,
    app_id: AppId,
    task_id: &TaskId,
    name: &str,
    size: u64,
    md5: String,
    metadata: Result<MediaMetadata, String>,
) -> MediaFile {
    MediaFile {
        file_id,
        app_id,
        file_name: name.to_string(),
        stored_name: name.to_string(),
        size,
        md5,
        create_time: time::now(),
        source_type: SourceType::TaskOutput,
        source_context: String::new(),
        source_task_id: Some(task_id.clone()),
        metadata,
    }
}

/// An upload in progress, measured on the way (size limit, MD5). Dropped
/// before `finish` (cancelled, failed, or its future dropped at any await),
/// it leaves nothing behind.
pub struct Upload {
    guard: WriteGuard,
    app_id: AppId,
    file_name: String,
    stored_name: String,
    source_context: String,
    writer: Writer,
    size: u64,
    max_bytes: u64,
    md5: Md5,
    /// Set when a pull task downloads the file.
    pulled_by: Option<TaskId>,
}

impl Upload {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        let limit = self.max_bytes;
        if self.size > limit {
            return Err(Error::ResourceExhausted(format!(
                "upload exceeds the limit of {limit} bytes (--max-upload-bytes)"
            )));
        }
        self.md5.update(chunk);
        self.writer.write(chunk).await
    }

    /// Makes the bytes durable in storage and probes them. The caller
    /// records the returned file in the store, or discards it.
    pub async fn finish(self) -> Result<MediaFile> {
        let Upload {
            guard,
            app_id,
            file_name,
            stored_name,
            source_context,
            writer,
            size,
            md5,
            pulled_by,
            ..
        } = self;
        if size == 0 {
            return Err(Error::invalid("chunk", "the upload carried no bytes"));
        }
        writer.finish().await?;
        let Some(library) = guard.library.clone() else {
            return Err(Error::Internal("upload already finished".into()));
        };
        let file_id = guard.file_id.clone();
        let metadata = match library
            .storage
            .readable(&file_id, &stored_name, Duration::from_secs(600))
            .await
        {
            Ok(readable) => probe::probe(&library.ffprobe, &readable).await,
            Err(e) => Err(format!("cannot read the file back: {e}")),
        };
        guard.disarm();
        Ok(MediaFile {
            file_id,
            app_id,
            file_name,
            stored_name,
            size,
            md5: hex::encode(md5.finalize()),
            create_time: time::now(),
            source_type: match pulled_by {
                Some(_) => SourceType::Pull,
                None => SourceType::ClientUpload,
            },
            source_context,
            source_task_id: pulled_by,
            metadata,
        })
    }
}

/// `field` names the file name in the caller's message.
pub fn validate_file_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if name.len() > MAX_FILE_NAME_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_FILE_NAME_BYTES} bytes"),
        ));
    }
    if name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(Error::invalid(
            field,
            "must not contain '/', '\\' or control characters, nor be '.' or '..'",
        ));
    }
    Ok(())
}

pub fn validate_source_context(field: &str, context: &str) -> Result<()> {
    if context.len() > MAX_SOURCE_CONTEXT_BYTES {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_SOURCE_CONTEXT_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// `source.<ext>`: the extension, when it is short and plain, keeps the
/// served Content-Type right; the app's own name stays in the database.
fn stored_upload_name(file_name: &str) -> String {
    let ext = Path::new(file_name)
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .filter(|e| !e.is_empty() && e.len() <= 8 && e.bytes().all(|b| b.is_ascii_alphanumeric()));
    match ext {
        Some(ext) => format!("source.{ext}"),
        None => "source".to_string(),
    }
}

/// Size and MD5 of a local file (a task's output), read once.
async fn digest_file(path: &Path) -> Result<(u64, String)> {
    let mut file = fs::File::open(path)
        .await
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        md5.update(&buf[..n]);
    }
    Ok((size, hex::encode(md5.finalize())))
}

/// The bytes of every file in a directory a task wrote (no subdirectories).
async fn dir_size(dir: &Path) -> Result<u64> {
    let mut size = 0;
    let mut entries = fs::read_dir(dir)
        .await
        .map_err(|e| Error::io(format!("read {}", dir.display()), e))?;
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| Error::io(format!("read {}", dir.display()), e))?
    {
        let meta = entry
            .metadata()
            .await
            .map_err(|e| Error::io(format!("stat {}", entry.path().display()), e))?;
        size += meta.len();
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A library on a fresh SQLite store in `dir`, its files in
    /// `dir/media`.
    async fn library(dir: &Path, max_upload_bytes: u64) -> MediaLibrary {
        let store = crate::store::open(
            &crate::store::StoreConfig::default(),
            dir,
            crate::store::SyncMode::Normal,
            crate::store::Access::Engine,
        )
        .await
        .expect("store");
        let config = LibraryConfig {
            storage: StorageConfig::DataDir,
            file_urls: FileUrls::Served,
            inputs: InputMode::Presigned,
            ffprobe: "ffprobe".into(),
            public_base_url: "http://h".into(),
            max_upload_bytes,
        };
        MediaLibrary::open(&config, dir, store).await.expect("open")
    }

    #[tokio::test]
    async fn the_sweeper_removes_dead_writes_and_deleted_files_not_live_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = library(dir.path(), 1 << 20).await;
        let root = lib.media_dir().expect("local").to_path_buf();
        let place = |id: &FileId| {
            std::fs::create_dir_all(root.join(id.as_str())).expect("mkdir");
            std::fs::write(root.join(id.as_str()).join("source.bin"), b"left").expect("write");
        };
        // What a killed process left: its record and a complete object.
        let dead = FileId::generate();
        lib.store
            .note_media_write(&dead, "a-dead-process", time::now())
            .await
            .expect("note");
        place(&dead);
        // An upload of this process, in progress: its own.
        let mut live = lib
            .begin_upload(AppId(1), "a.bin", "")
            .await
            .expect("begin");
        live.write(b"bytes").await.expect("write");
        let live_id = live.guard.file_id.clone();
        // A file a delete removed the row of, whose objects stayed.
        let deleted = FileId::generate();
        lib.store
            .note_media_write(&deleted, &lib.owner, time::now())
            .await
            .expect("note");
        lib.store
            .abandon_media_write(&deleted)
            .await
            .expect("abandon");
        place(&deleted);

        assert_eq!(lib.sweep().await.expect("sweep"), 2);
        assert!(!root.join(dead.as_str()).exists());
        assert!(!root.join(deleted.as_str()).exists());
        assert_eq!(lib.sweep().await.expect("sweep"), 0, "records are cleared");
        let media = live.finish().await.expect("finish");
        assert_eq!(media.file_id, live_id);
        assert!(root.join(live_id.as_str()).join("source.bin").is_file());
    }

    /// In a `file:///` root of its own, partial writes lie in the root's
    /// `.partial/` (on the same filesystem), which start-up does not empty:
    /// the sweeper removes a dead writer's from its record.
    #[tokio::test]
    async fn a_partial_write_in_a_shared_root_is_swept_from_its_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::open(
            &crate::store::StoreConfig::default(),
            dir.path(),
            crate::store::SyncMode::Normal,
            crate::store::Access::Engine,
        )
        .await
        .expect("store");
        let shared = dir.path().join("shared");
        let config = LibraryConfig {
            storage: StorageConfig::Local(shared.clone()),
            file_urls: FileUrls::Served,
            inputs: InputMode::Presigned,
            ffprobe: "ffprobe".into(),
            public_base_url: "http://h".into(),
            max_upload_bytes: 1 << 20,
        };
        let lib = MediaLibrary::open(&config, dir.path(), store)
            .await
            .expect("open");
        let dead = FileId::generate();
        lib.store
            .note_media_write(&dead, "a-dead-process", time::now())
            .await
            .expect("note");
        let partial = shared.join(".partial").join(format!("upload-{dead}"));
        std::fs::write(&partial, b"half").expect("write");
        assert_eq!(lib.sweep().await.expect("sweep"), 1);
        assert!(!partial.exists());
    }

    #[test]
    fn a_copy_that_would_fill_the_disk_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(ensure_room(dir.path(), 1 << 20).is_ok());
        let refused = ensure_room(dir.path(), u64::MAX / 2).expect_err("a disk that large");
        assert!(matches!(refused, Error::ResourceExhausted(_)), "{refused}");
    }

    #[test]
    fn stored_names_keep_plain_extensions_only() {
        assert_eq!(stored_upload_name("My Clip.MP4"), "source.mp4");
        assert_eq!(stored_upload_name("noext"), "source");
        assert_eq!(stored_upload_name("x.we ird"), "source");
    }

    #[test]
    fn file_names_are_checked() {
        assert!(validate_file_name("f", "clip.mp4").is_ok());
        assert!(validate_file_name("f", "../x").is_err());
        assert!(validate_file_name("f", "").is_err());
        assert!(validate_file_name("f", "a\nb").is_err());
    }

    #[tokio::test]
    async fn upload_is_durable_and_measured() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = library(dir.path(), 1024).await;
        let mut up = lib
            .begin_upload(AppId(1), "a.txt", "ctx")
            .await
            .expect("begin");
        up.write(b"hello ").await.expect("write");
        up.write(b"world").await.expect("write");
        let media = up.finish().await.expect("finish");
        assert_eq!(media.size, 11);
        assert_eq!(media.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let path = lib
            .media_dir()
            .expect("local")
            .join(media.file_id.as_str())
            .join(&media.stored_name);
        assert_eq!(std::fs::read(path).expect("read"), b"hello world");
        assert!(media.metadata.is_err(), "text is not media");
    }

    #[tokio::test]
    async fn upload_limit_is_enforced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = library(dir.path(), 4).await;
        let mut up = lib
            .begin_upload(AppId(1), "a.bin", "")
            .await
            .expect("begin");
        assert!(matches!(
            up.write(b"12345").await,
            Err(Error::ResourceExhausted(_))
        ));
        drop(up);
        assert_eq!(temp_files(&lib), Vec::<String>::new());
    }

    fn temp_files(lib: &MediaLibrary) -> Vec<String> {
        std::fs::read_dir(&lib.tmp_dir)
            .expect("read tmp")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[tokio::test]
    async fn an_unfinished_upload_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = library(dir.path(), 1 << 20).await;

        let up = lib
            .begin_upload(AppId(1), "a.bin", "")
            .await
            .expect("begin");
        assert_eq!(temp_files(&lib).len(), 1, "the temp file exists meanwhile");
        drop(up);
        assert_eq!(temp_files(&lib), Vec::<String>::new(), "header only");

        let mut up = lib
            .begin_upload(AppId(1), "a.bin", "")
            .await
            .expect("begin");
        up.write(&[1; 4096]).await.expect("write");
        up.write(&[2; 4096]).await.expect("write");
        drop(up);
        assert_eq!(temp_files(&lib), Vec::<String>::new(), "some chunks");

        // Empty: finish refuses it, and removes it.
        let up = lib
            .begin_upload(AppId(1), "a.bin", "")
            .await
            .expect("begin");
        assert!(up.finish().await.is_err());
        assert_eq!(temp_files(&lib), Vec::<String>::new(), "no bytes");
    }

    #[tokio::test]
    async fn the_library_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = library(dir.path(), 1 << 20).await;
        assert_eq!(mode(lib.media_dir().expect("local")), 0o700);
        assert_eq!(mode(&lib.tmp_dir), 0o700);
        let up = lib
            .begin_upload(AppId(1), "a.bin", "")
            .await
            .expect("begin");
        // Without the `s3` feature a local writer is the only kind.
        #[allow(irrefutable_let_patterns)]
        let Writer::Local(writer) = &up.writer else {
            panic!("a local writer");
        };
        assert_eq!(mode(writer.temp_path()), 0o600);
    }

    #[tokio::test]
    async fn a_finish_dropped_midway_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = library(dir.path(), 1 << 20).await;
        let mut up = lib
            .begin_upload(AppId(1), "a.bin", "")
            .await
            .expect("begin");
        up.write(&[7; 64 * 1024]).await.expect("write");
        // Polled once, then dropped: it waits for the blocking pool by then.
        let once = tokio::time::timeout(std::time::Duration::ZERO, up.finish()).await;
        assert!(once.is_err(), "finish cannot be done in one poll");
        assert_eq!(temp_files(&lib), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_finished_upload_is_moved_not_copied() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = library(dir.path(), 1 << 20).await;
        let mut up = lib
            .begin_upload(AppId(1), "a.bin", "")
            .await
            .expect("begin");
        up.write(b"bytes").await.expect("write");
        let media = up.finish().await.expect("finish");
        assert_eq!(temp_files(&lib), Vec::<String>::new());
        let path = lib
            .media_dir()
            .expect("local")
            .join(media.file_id.as_str())
            .join(&media.stored_name);
        assert_eq!(std::fs::read(path).expect("read"), b"bytes");
    }
}
