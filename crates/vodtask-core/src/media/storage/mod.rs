//! Where media bytes live. Every byte of every media file (uploads, pulled
//! sources, task outputs with their HLS segments and sprite images) goes
//! through here, keyed `<file_id>/<name>`; nothing else in vodtask opens,
//! renames or removes a media file. The library above it decides what a
//! file is (its id, its name, its size and MD5, its probe) and keeps the
//! durable record of objects that may lack a row; the storage only keeps
//! bytes.
//!
//! Two backends share one vocabulary: a streamed write that is invisible
//! until finished, the adoption of a task's finished local outputs, where
//! ffmpeg reads an object, a ranged read for the HTTP port, and the removal
//! of a file's every object.
//! - `local.rs`: a directory (`file://`), the default;
//! - `s3.rs`: an S3-compatible bucket (`s3://`), with the `s3` feature.

mod local;
#[cfg(feature = "s3")]
mod s3;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;

pub use local::{LocalStorage, LocalWriter};
#[cfg(feature = "s3")]
pub use s3::{S3Storage, S3Writer};

use crate::error::{Error, Result};
use crate::ids::FileId;

/// Where a backend records a multipart upload it starts, before its first
/// part, so that one a crash leaves unfinished can be aborted (the library
/// keeps it with the file's leftover record).
#[async_trait::async_trait]
// Only an object store starts multipart uploads.
#[cfg_attr(not(feature = "s3"), allow(dead_code))]
pub trait UploadLog: Send + Sync {
    async fn started(&self, file_id: &FileId, name: &str, upload_id: &str) -> Result<()>;
}

/// Where media are kept, as `--storage` names it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StorageConfig {
    /// `file:///path`; `None` is `<data-dir>/media`.
    #[default]
    DataDir,
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3(S3Config),
}

/// An S3-compatible bucket. Credentials, and whatever is not given here,
/// come from the standard `AWS_*` environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix, without leading or trailing '/'; may be empty.
    pub prefix: String,
    /// `http(s)://host:port` of a store other than AWS (`--s3-endpoint`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `bucket` in the path rather than in the host name (MinIO, Ceph,
    /// most self-hosted stores).
    pub path_style: bool,
    /// How long a request that fails (no answer, 5xx) is retried with
    /// backoff before the operation fails.
    pub retry_timeout: Duration,
}

/// The default of [`S3Config::retry_timeout`].
pub const S3_RETRY_TIMEOUT: Duration = Duration::from_secs(30);

impl StorageConfig {
    /// Parses `--storage`: `file:///absolute/path` or `s3://bucket[/prefix]`.
    pub fn parse(url: &str) -> Result<StorageConfig> {
        let field = "--storage";
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(Error::invalid(
                    field,
                    format!("{url:?}: a file:// URL takes an absolute path (file:///srv/media)"),
                ));
            }
            return Ok(StorageConfig::Local(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid_bucket = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid_bucket {
                return Err(Error::invalid(
                    field,
                    format!(
                        "{url:?}: the bucket name must be 3 to 63 lowercase letters, digits, '-' or '.'"
                    ),
                ));
            }
            let prefix = prefix.trim_matches('/');
            if prefix
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
                && !prefix.is_empty()
            {
                return Err(Error::invalid(
                    field,
                    format!("{url:?}: the key prefix must not have empty, '.' or '..' parts"),
                ));
            }
            return Ok(StorageConfig::S3(S3Config {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                endpoint: None,
                region: None,
                path_style: false,
                retry_timeout: S3_RETRY_TIMEOUT,
            }));
        }
        Err(Error::invalid(
            field,
            format!("{url:?}: expected file:///path or s3://bucket/prefix"),
        ))
    }
}

/// Where ffmpeg and ffprobe read an object.
#[derive(Debug, Clone)]
pub enum Readable {
    Path(PathBuf),
    /// A short-lived presigned URL; never written to a log or a message
    /// (see `ffmpeg::redact`).
    Url(String),
}

impl Readable {
    pub fn as_arg(&self) -> std::ffi::OsString {
        match self {
            Readable::Path(p) => p.clone().into_os_string(),
            Readable::Url(u) => u.into(),
        }
    }
}

/// An object's bytes (or a range of them), as a stream.
pub struct ObjectBody {
    /// The whole object's size.
    pub size: u64,
    /// The bytes in `stream`.
    pub range: Range<u64>,
    pub stream: BoxStream<'static, Result<Bytes>>,
}

#[derive(Debug, Clone)]
pub enum Storage {
    Local(LocalStorage),
    #[cfg(feature = "s3")]
    S3(S3Storage),
}

/// One object being written; invisible until `finish`, and gone (or, on
/// S3, aborted) when dropped before.
pub enum Writer {
    Local(LocalWriter),
    #[cfg(feature = "s3")]
    S3(S3Writer),
}

impl Writer {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        match self {
            Writer::Local(w) => w.write(chunk).await,
            #[cfg(feature = "s3")]
            Writer::S3(w) => w.write(chunk).await,
        }
    }

    pub async fn finish(self) -> Result<()> {
        match self {
            Writer::Local(w) => w.finish().await,
            #[cfg(feature = "s3")]
            Writer::S3(w) => w.finish().await,
        }
    }
}

impl Storage {
    /// Opens the storage `config` names; `data_dir` holds the default
    /// local one and the temp dir of local writes. An S3 bucket is checked
    /// now (reachable, credentials accepted), so that a wrong flag fails
    /// the start, not the first upload.
    pub async fn open(
        config: &StorageConfig,
        data_dir: &Path,
        tmp_dir: &Path,
        uploads: Arc<dyn UploadLog>,
    ) -> Result<Storage> {
        match config {
            StorageConfig::DataDir => Ok(Storage::Local(LocalStorage::open(
                data_dir.join("media"),
                tmp_dir.to_path_buf(),
            )?)),
            StorageConfig::Local(root) => {
                // Partial writes are renamed into place: their temp dir must
                // be on the root's filesystem.
                let tmp = root.join(".partial");
                Ok(Storage::Local(LocalStorage::open(root.clone(), tmp)?))
            }
            #[cfg(feature = "s3")]
            StorageConfig::S3(s3) => Ok(Storage::S3(S3Storage::open(s3, uploads).await?)),
            #[cfg(not(feature = "s3"))]
            StorageConfig::S3(_) => Err({
                let _ = uploads;
                Error::invalid(
                    "--storage",
                    "this build has no S3 support (the `s3` cargo feature of vodtask-core)",
                )
            }),
        }
    }

    /// The directory of a local storage (served as it is by the HTTP port).
    pub fn local_root(&self) -> Option<&Path> {
        match self {
            Storage::Local(l) => Some(l.root()),
            #[cfg(feature = "s3")]
            Storage::S3(_) => None,
        }
    }

    pub fn writer(&self, file_id: &FileId, name: &str) -> Result<Writer> {
        match self {
            Storage::Local(l) => Ok(Writer::Local(l.writer(file_id, name)?)),
            #[cfg(feature = "s3")]
            Storage::S3(s) => Ok(Writer::S3(s.writer(file_id, name))),
        }
    }

    /// Stores a finished local file (a task's output in its scratch dir)
    /// as `<file_id>/<name>`.
    pub async fn put_file(&self, file_id: &FileId, name: &str, local: &Path) -> Result<()> {
        match self {
            Storage::Local(l) => l.put_file(file_id, name, local).await,
            #[cfg(feature = "s3")]
            Storage::S3(s) => s.put_file(file_id, name, local).await,
        }
    }

    /// Stores every file of a local directory as the objects of one file
    /// (an HLS playlist with its segments, sprite images with their index).
    pub async fn put_dir(&self, file_id: &FileId, local_dir: &Path) -> Result<()> {
        match self {
            Storage::Local(l) => l.put_dir(file_id, local_dir).await,
            #[cfg(feature = "s3")]
            Storage::S3(s) => s.put_dir(file_id, local_dir).await,
        }
    }

    /// Aborts a multipart upload a write started (an upload that is gone
    /// already is no error).
    pub async fn abort_upload(&self, file_id: &FileId, name: &str, upload_id: &str) -> Result<()> {
        match self {
            Storage::Local(_) => {
                let _ = (file_id, name, upload_id);
                Ok(())
            }
            #[cfg(feature = "s3")]
            Storage::S3(s) => s.abort_upload(file_id, name, upload_id).await,
        }
    }

    /// Removes every object of one file; a file with none left is no error.
    pub async fn delete_file(&self, file_id: &FileId) -> Result<()> {
        match self {
            Storage::Local(l) => l.delete_file(file_id).await,
            #[cfg(feature = "s3")]
            Storage::S3(s) => s.delete_file(file_id).await,
        }
    }

    /// Where ffmpeg reads `<file_id>/<name>` in place: a local path, or a
    /// presigned URL valid for `ttl`.
    pub async fn readable(&self, file_id: &FileId, name: &str, ttl: Duration) -> Result<Readable> {
        match self {
            Storage::Local(l) => {
                let _ = ttl;
                Ok(Readable::Path(l.path_of(file_id, name)))
            }
            #[cfg(feature = "s3")]
            Storage::S3(s) => s.presign(file_id, name, ttl).await.map(Readable::Url),
        }
    }

    /// Copies every object of a file into `dest_dir` (which exists), for
    /// ffmpeg to read locally; returns the bytes copied.
    pub async fn fetch_file(&self, file_id: &FileId, dest_dir: &Path) -> Result<u64> {
        match self {
            Storage::Local(l) => l.copy_file(file_id, dest_dir).await,
            #[cfg(feature = "s3")]
            Storage::S3(s) => s.fetch_file(file_id, dest_dir).await,
        }
    }

    /// The bytes of `<file_id>/<name>` in `range` (all when `None`);
    /// NotFound when there is no such object.
    pub async fn read(
        &self,
        file_id: &FileId,
        name: &str,
        range: Option<Range<u64>>,
    ) -> Result<ObjectBody> {
        match self {
            Storage::Local(l) => l.read(file_id, name, range).await,
            #[cfg(feature = "s3")]
            Storage::S3(s) => s.read(file_id, name, range).await,
        }
    }

    /// The object's size, or NotFound.
    pub async fn size_of(&self, file_id: &FileId, name: &str) -> Result<u64> {
        match self {
            Storage::Local(l) => l.size_of(file_id, name).await,
            #[cfg(feature = "s3")]
            Storage::S3(s) => s.size_of(file_id, name).await,
        }
    }

    /// The object key of `<file_id>/<name>` below the bucket (with the
    /// prefix), for public URLs.
    pub fn key_of(&self, file_id: &FileId, name: &str) -> String {
        match self {
            Storage::Local(_) => format!("{file_id}/{name}"),
            #[cfg(feature = "s3")]
            Storage::S3(s) => s.key_of(file_id, name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_are_parsed_or_refused_naming_the_flag() {
        assert_eq!(
            StorageConfig::parse("file:///srv/media").ok(),
            Some(StorageConfig::Local("/srv/media".into()))
        );
        let Ok(StorageConfig::S3(s3)) = StorageConfig::parse("s3://my-bucket/vod/media/") else {
            panic!("an s3 URL");
        };
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("my-bucket", "vod/media")
        );
        let Ok(StorageConfig::S3(s3)) = StorageConfig::parse("s3://my-bucket") else {
            panic!("an s3 URL");
        };
        assert_eq!(s3.prefix, "");
        for bad in [
            "gs://b/p",
            "/srv/media",
            "file://relative",
            "s3://",
            "s3://UPPER",
            "s3://b",
            "s3://bucket/a//b",
            "s3://bucket/a/../b",
        ] {
            let err = StorageConfig::parse(bad).expect_err(bad).to_string();
            assert!(err.starts_with("--storage: "), "{bad}: {err}");
        }
    }
}
