//! What a media file is: its id, its name, its size and MD5 (measured on
//! the way in), its probe, and its URL, `<public base URL>/files/<file_id>/
//! <stored_name>`. Its bytes are kept by the storage (`storage/`).

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use tokio::fs;
use tokio::io::AsyncReadExt;

use super::storage::{LocalStorage, LocalWriter};
use super::{
    MAX_FILE_NAME_BYTES, MAX_SOURCE_CONTEXT_BYTES, MediaFile, MediaMetadata, SourceType, probe,
};
use crate::data_dir::create_private_dir;
use crate::error::{Error, Result};
use crate::ids::{AppId, FileId, TaskId};
use crate::time;

#[derive(Debug, Clone)]
pub struct MediaLibrary {
    storage: LocalStorage,
    tmp_dir: PathBuf,
    ffprobe: PathBuf,
    public_base_url: String,
    max_upload_bytes: u64,
}

impl MediaLibrary {
    pub fn open(
        data_dir: &Path,
        ffprobe: PathBuf,
        public_base_url: &str,
        max_upload_bytes: u64,
    ) -> Result<Self> {
        let tmp_dir = data_dir.join("tmp");
        create_private_dir(&tmp_dir)?;
        let storage = LocalStorage::open(data_dir.join("media"), tmp_dir.clone())?;
        Ok(MediaLibrary {
            storage,
            tmp_dir,
            ffprobe,
            public_base_url: public_base_url.trim_end_matches('/').to_string(),
            max_upload_bytes,
        })
    }

    pub fn media_dir(&self) -> &Path {
        self.storage.root()
    }

    pub fn max_upload_bytes(&self) -> u64 {
        self.max_upload_bytes
    }

    pub fn ffprobe(&self) -> &Path {
        &self.ffprobe
    }

    pub fn path_of(&self, file_id: &FileId, stored_name: &str) -> PathBuf {
        self.storage.path_of(file_id, stored_name)
    }

    pub fn url_of(&self, file_id: &FileId, stored_name: &str) -> String {
        format!("{}/files/{}/{}", self.public_base_url, file_id, stored_name)
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
        self.begin(app_id, file_name, source_context, None)
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
    }

    fn begin(
        &self,
        app_id: AppId,
        file_name: &str,
        source_context: &str,
        pulled_by: Option<TaskId>,
    ) -> Result<Upload> {
        let file_id = FileId::generate();
        let stored_name = stored_upload_name(file_name);
        let writer = self.storage.writer(&file_id, &stored_name)?;
        Ok(Upload {
            library: self.clone(),
            app_id,
            file_id,
            file_name: file_name.to_string(),
            stored_name,
            source_context: source_context.to_string(),
            writer,
            size: 0,
            md5: Md5::new(),
            pulled_by,
        })
    }

    /// Moves a file a task wrote into the library as a new media file.
    pub async fn adopt_output(
        &self,
        app_id: AppId,
        task_id: &TaskId,
        src: &Path,
        stored_name: &str,
    ) -> Result<MediaFile> {
        let (size, md5) = digest_file(src).await?;
        let file_id = FileId::generate();
        self.storage.put_file(&file_id, stored_name, src).await?;
        let metadata = self.probe(&file_id, stored_name).await;
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

    /// Moves a directory a task wrote (an HLS playlist with its segments,
    /// sprite images with their WebVTT index) into the library as one media
    /// file: `main_name` is what its URL points at, and its MD5 the file's;
    /// size counts every file.
    pub async fn adopt_output_dir(
        &self,
        app_id: AppId,
        task_id: &TaskId,
        src_dir: &Path,
        main_name: &str,
    ) -> Result<MediaFile> {
        let (_, md5) = digest_file(&src_dir.join(main_name)).await?;
        let size = dir_size(src_dir).await?;
        let file_id = FileId::generate();
        self.storage.put_dir(&file_id, src_dir).await?;
        let metadata = self.probe(&file_id, main_name).await;
        Ok(task_output(
            file_id, app_id, task_id, main_name, size, md5, metadata,
        ))
    }

    async fn probe(&self, file_id: &FileId, name: &str) -> Result<MediaMetadata, String> {
        probe::probe(&self.ffprobe, &self.storage.path_of(file_id, name)).await
    }

    /// Removes a file's bytes (used when its database row could not be
    /// written, or was deleted).
    pub async fn discard(&self, file_id: &FileId) {
        if let Err(e) = self.storage.delete_file(file_id).await {
            tracing::warn!(%file_id, "cannot remove a media file's bytes: {e}");
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
    library: MediaLibrary,
    app_id: AppId,
    file_id: FileId,
    file_name: String,
    stored_name: String,
    source_context: String,
    writer: LocalWriter,
    size: u64,
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
        if self.size > self.library.max_upload_bytes {
            return Err(Error::ResourceExhausted(format!(
                "upload exceeds the limit of {} bytes (--max-upload-bytes)",
                self.library.max_upload_bytes
            )));
        }
        self.md5.update(chunk);
        self.writer.write(chunk).await
    }

    /// Makes the bytes durable in storage and probes them. The caller
    /// records the returned file in the store.
    pub async fn finish(self) -> Result<MediaFile> {
        let Upload {
            library,
            app_id,
            file_id,
            file_name,
            stored_name,
            source_context,
            writer,
            size,
            md5,
            pulled_by,
        } = self;
        if size == 0 {
            return Err(Error::invalid("chunk", "the upload carried no bytes"));
        }
        writer.finish().await?;
        let metadata = library.probe(&file_id, &stored_name).await;
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
        let lib = MediaLibrary::open(dir.path(), "ffprobe".into(), "http://h", 1024).expect("open");
        let mut up = lib
            .begin_upload(AppId(1), "a.txt", "ctx")
            .await
            .expect("begin");
        up.write(b"hello ").await.expect("write");
        up.write(b"world").await.expect("write");
        let media = up.finish().await.expect("finish");
        assert_eq!(media.size, 11);
        assert_eq!(media.md5, "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let path = lib.path_of(&media.file_id, &media.stored_name);
        assert_eq!(std::fs::read(path).expect("read"), b"hello world");
        assert!(media.metadata.is_err(), "text is not media");
    }

    #[tokio::test]
    async fn upload_limit_is_enforced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib = MediaLibrary::open(dir.path(), "ffprobe".into(), "http://h", 4).expect("open");
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
        let lib =
            MediaLibrary::open(dir.path(), "ffprobe".into(), "http://h", 1 << 20).expect("open");

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
        let lib =
            MediaLibrary::open(dir.path(), "ffprobe".into(), "http://h", 1 << 20).expect("open");
        assert_eq!(mode(lib.media_dir()), 0o700);
        assert_eq!(mode(&lib.tmp_dir), 0o700);
        let up = lib
            .begin_upload(AppId(1), "a.bin", "")
            .await
            .expect("begin");
        assert_eq!(mode(up.writer.temp_path()), 0o600);
    }

    #[tokio::test]
    async fn a_finish_dropped_midway_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lib =
            MediaLibrary::open(dir.path(), "ffprobe".into(), "http://h", 1 << 20).expect("open");
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
        let lib =
            MediaLibrary::open(dir.path(), "ffprobe".into(), "http://h", 1 << 20).expect("open");
        let mut up = lib
            .begin_upload(AppId(1), "a.bin", "")
            .await
            .expect("begin");
        up.write(b"bytes").await.expect("write");
        let media = up.finish().await.expect("finish");
        assert_eq!(temp_files(&lib), Vec::<String>::new());
        let path = lib.path_of(&media.file_id, &media.stored_name);
        assert_eq!(std::fs::read(path).expect("read"), b"bytes");
    }
}
