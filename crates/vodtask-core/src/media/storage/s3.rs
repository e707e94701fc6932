//! Media in an S3-compatible bucket, `<prefix>/<file_id>/<name>`, through
//! the `object_store` crate (its S3 client signs with SigV4, retries with
//! backoff and presigns). Writes are streamed: a single PUT below
//! `PART_SIZE`, a multipart upload above it with at most `PARTS_IN_FLIGHT`
//! parts in memory, so that a 1 GiB upload needs no more memory than a
//! small one. An object is visible to S3 readers only once its PUT or
//! CompleteMultipartUpload returns; vodtask shows it only once its row is
//! committed on top of that.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as Key;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use super::{ObjectBody, S3Config, UploadLog};
use crate::error::{Error, Result};
use crate::ids::FileId;

/// Parts of a multipart upload: S3 wants at least 5 MiB but the last.
const PART_SIZE: usize = 8 << 20;
/// Parts uploaded at once by one writer; bounds its memory to
/// `(PARTS_IN_FLIGHT + 1) * PART_SIZE`.
const PARTS_IN_FLIGHT: usize = 2;

#[derive(Clone)]
pub struct S3Storage {
    client: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    uploads: Arc<dyn UploadLog>,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Storage(s3://{}/{})", self.bucket, self.prefix)
    }
}

impl S3Storage {
    pub async fn open(config: &S3Config, uploads: Arc<dyn UploadLog>) -> Result<S3Storage> {
        // Its TLS (reqwest's rustls without a built-in provider) needs the
        // process's provider, ring; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_retry(RetryConfig {
                retry_timeout: config.retry_timeout,
                max_retries: 10,
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(60)),
            );
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if config.path_style {
            builder = builder.with_virtual_hosted_style_request(false);
        }
        let client = builder
            .build()
            .map_err(|e| Error::invalid("--storage", format!("S3 configuration: {e}")))?;
        let storage = S3Storage {
            client: Arc::new(client),
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone(),
            uploads,
        };
        storage.check().await?;
        Ok(storage)
    }

    /// One listing under the prefix: the bucket exists and the
    /// credentials may read it.
    async fn check(&self) -> Result<()> {
        let prefix = (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str()));
        match self.client.list_with_delimiter(prefix.as_ref()).await {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::FailedPrecondition(format!(
                "--storage s3://{}/{}: the bucket cannot be listed ({}); check the bucket name, \
                 --s3-endpoint, --s3-region and the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY \
                 credentials",
                self.bucket,
                self.prefix,
                short(&e)
            ))),
        }
    }

    pub fn key_of(&self, file_id: &FileId, name: &str) -> String {
        if self.prefix.is_empty() {
            format!("{file_id}/{name}")
        } else {
            format!("{}/{file_id}/{name}", self.prefix)
        }
    }

    fn key(&self, file_id: &FileId, name: &str) -> Key {
        Key::from(self.key_of(file_id, name))
    }

    fn file_prefix(&self, file_id: &FileId) -> Key {
        if self.prefix.is_empty() {
            Key::from(file_id.as_str())
        } else {
            Key::from(format!("{}/{file_id}", self.prefix))
        }
    }

    pub fn writer(&self, file_id: &FileId, name: &str) -> S3Writer {
        S3Writer {
            client: Arc::clone(&self.client),
            uploads: Arc::clone(&self.uploads),
            file_id: file_id.clone(),
            name: name.to_string(),
            key: self.key(file_id, name),
            buffer: BytesMut::new(),
            upload: None,
        }
    }

    pub async fn put_file(&self, file_id: &FileId, name: &str, local: &Path) -> Result<()> {
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::io(format!("open {}", local.display()), e))?;
        let mut writer = self.writer(file_id, name);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| Error::io(format!("read {}", local.display()), e))?;
            if n == 0 {
                break;
            }
            writer.write(&buf[..n]).await?;
        }
        writer.finish().await
    }

    pub async fn put_dir(&self, file_id: &FileId, local_dir: &Path) -> Result<()> {
        let mut names = Vec::new();
        let mut entries = tokio::fs::read_dir(local_dir)
            .await
            .map_err(|e| Error::io(format!("read {}", local_dir.display()), e))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| Error::io(format!("read {}", local_dir.display()), e))?
        {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        // HLS segments are small and many: a few PUTs at once.
        futures::stream::iter(names)
            .map(|name| async move { self.put_file(file_id, &name, &local_dir.join(&name)).await })
            .buffer_unordered(4)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    pub async fn abort_upload(&self, file_id: &FileId, name: &str, upload_id: &str) -> Result<()> {
        let key = self.key(file_id, name);
        match self
            .client
            .abort_multipart(&key, &upload_id.to_string())
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(format!("abort upload of {key}"), short(&e))),
        }
    }

    pub async fn delete_file(&self, file_id: &FileId) -> Result<()> {
        let prefix = self.file_prefix(file_id);
        let keys = self
            .client
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        self.client
            .delete_stream(keys)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| unavailable(format!("delete {prefix}/"), short(&e)))?;
        Ok(())
    }

    pub async fn presign(&self, file_id: &FileId, name: &str, ttl: Duration) -> Result<String> {
        let key = self.key(file_id, name);
        self.client
            .signed_url(http::Method::GET, &key, ttl)
            .await
            .map(|url| url.to_string())
            .map_err(|e| unavailable(format!("presign {key}"), short(&e)))
    }

    pub async fn fetch_file(&self, file_id: &FileId, dest_dir: &Path) -> Result<u64> {
        let prefix = self.file_prefix(file_id);
        let objects: Vec<_> = self
            .client
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| unavailable(format!("list {prefix}/"), short(&e)))?;
        let mut total = 0;
        for meta in objects {
            let Some(name) = meta.location.filename() else {
                continue;
            };
            let dest = dest_dir.join(name);
            let mut out = tokio::fs::File::create(&dest)
                .await
                .map_err(|e| Error::io(format!("create {}", dest.display()), e))?;
            let mut body = self
                .client
                .get(&meta.location)
                .await
                .map_err(|e| unavailable(format!("get {}", meta.location), short(&e)))?
                .into_stream();
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|e| unavailable(format!("get {}", meta.location), short(&e)))?;
                total += chunk.len() as u64;
                out.write_all(&chunk)
                    .await
                    .map_err(|e| Error::io(format!("write {}", dest.display()), e))?;
            }
            out.flush()
                .await
                .map_err(|e| Error::io(format!("write {}", dest.display()), e))?;
        }
        Ok(total)
    }

    pub async fn read(
        &self,
        file_id: &FileId,
        name: &str,
        range: Option<Range<u64>>,
    ) -> Result<ObjectBody> {
        let key = self.key(file_id, name);
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = self
            .client
            .get_opts(&key, options)
            .await
            .map_err(|e| read_error(&key, e))?;
        let size = got.meta.size;
        let range = got.range.clone();
        let stream = got
            .into_stream()
            .map_err(move |e| unavailable("read", short(&e)))
            .boxed();
        Ok(ObjectBody {
            size,
            range,
            stream,
        })
    }

    pub async fn size_of(&self, file_id: &FileId, name: &str) -> Result<u64> {
        let key = self.key(file_id, name);
        self.client
            .head(&key)
            .await
            .map(|meta| meta.size)
            .map_err(|e| read_error(&key, e))
    }
}

fn read_error(key: &Key, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::NotFound(format!("no object {key}")),
        e => unavailable(format!("get {key}"), short(&e)),
    }
}

/// object_store's messages nest their sources; the first line is enough
/// for a log or a status, and never carries credentials.
fn short(e: &object_store::Error) -> String {
    let text = e.to_string();
    text.lines().next().unwrap_or_default().to_string()
}

/// The Content-Type an object is stored with: what the HTTP port would
/// serve for its name, so that a CDN in front of the bucket serves the same.
fn content_type(key: &Key) -> Attributes {
    let mut attributes = Attributes::new();
    attributes.insert(
        Attribute::ContentType,
        crate::media::content_type(key.as_ref()).into(),
    );
    attributes
}

/// One object being written: buffered up to one part, then a multipart
/// upload with its parts sent in the background.
pub struct S3Writer {
    client: Arc<AmazonS3>,
    uploads: Arc<dyn UploadLog>,
    file_id: FileId,
    name: String,
    key: Key,
    buffer: BytesMut,
    upload: Option<Multipart>,
}

struct Multipart {
    id: String,
    /// Parts sent or being sent, by index.
    parts: JoinSet<Result<(usize, PartId)>>,
    done: Vec<(usize, PartId)>,
    next: usize,
}

impl S3Writer {
    pub async fn write(&mut self, mut chunk: &[u8]) -> Result<()> {
        while !chunk.is_empty() {
            let room = PART_SIZE - self.buffer.len();
            let take = room.min(chunk.len());
            self.buffer.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buffer.len() == PART_SIZE {
                let part = self.buffer.split().freeze();
                self.send_part(part).await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Bytes) -> Result<()> {
        if self.upload.is_none() {
            let options = PutMultipartOptions {
                attributes: content_type(&self.key),
                ..PutMultipartOptions::default()
            };
            let id = self
                .client
                .create_multipart_opts(&self.key, options)
                .await
                .map_err(|e| unavailable(format!("start upload of {}", self.key), short(&e)))?;
            self.upload = Some(Multipart {
                id: id.clone(),
                parts: JoinSet::new(),
                done: Vec::new(),
                next: 0,
            });
            // Recorded before the first part: from here on a crash leaves
            // an upload the sweeper can abort (and should this fail, Drop
            // aborts it).
            self.uploads.started(&self.file_id, &self.name, &id).await?;
        }
        let Some(upload) = self.upload.as_mut() else {
            return Err(Error::Internal("multipart upload not started".into()));
        };
        while upload.parts.len() >= PARTS_IN_FLIGHT {
            let Some(joined) = upload.parts.join_next().await else {
                break;
            };
            upload.done.push(part_result(joined)?);
        }
        let (client, key, id, index) = (
            Arc::clone(&self.client),
            self.key.clone(),
            upload.id.clone(),
            upload.next,
        );
        upload.next += 1;
        upload.parts.spawn(async move {
            client
                .put_part(&key, &id, index, PutPayload::from_bytes(part))
                .await
                .map(|part| (index, part))
                .map_err(|e| unavailable(format!("upload part {index} of {key}"), short(&e)))
        });
        Ok(())
    }

    /// Sends what is left and makes the object whole.
    pub async fn finish(mut self) -> Result<()> {
        if self.upload.is_none() {
            let options = PutOptions {
                attributes: content_type(&self.key),
                ..PutOptions::default()
            };
            let body = self.buffer.split().freeze();
            self.client
                .put_opts(&self.key, PutPayload::from_bytes(body), options)
                .await
                .map_err(|e| unavailable(format!("put {}", self.key), short(&e)))?;
            return Ok(());
        }
        if !self.buffer.is_empty() {
            let last = self.buffer.split().freeze();
            self.send_part(last).await?;
        }
        let Some(mut upload) = self.upload.take() else {
            return Err(Error::Internal("multipart upload not started".into()));
        };
        let finished = async {
            while let Some(joined) = upload.parts.join_next().await {
                upload.done.push(part_result(joined)?);
            }
            upload.done.sort_by_key(|(index, _)| *index);
            let parts = upload.done.drain(..).map(|(_, part)| part).collect();
            self.client
                .complete_multipart(&self.key, &upload.id, parts)
                .await
                .map_err(|e| unavailable(format!("complete upload of {}", self.key), short(&e)))
        }
        .await;
        match finished {
            Ok(_) => Ok(()),
            Err(e) => {
                // Put back, so that Drop aborts it.
                self.upload = Some(upload);
                Err(e)
            }
        }
    }
}

fn part_result(
    joined: std::result::Result<Result<(usize, PartId)>, tokio::task::JoinError>,
) -> Result<(usize, PartId)> {
    joined.map_err(|e| Error::Internal(format!("part upload task: {e}")))?
}

impl Drop for S3Writer {
    /// An unfinished multipart upload keeps its parts (and their cost) in
    /// the bucket until aborted: abort it in the background. Should this
    /// process die first, the bucket's lifecycle rule (docs/operations.md)
    /// removes it.
    fn drop(&mut self) {
        let Some(mut upload) = self.upload.take() else {
            return;
        };
        upload.parts.abort_all();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (client, key) = (Arc::clone(&self.client), self.key.clone());
        runtime.spawn(async move {
            if let Err(e) = client.abort_multipart(&key, &upload.id).await {
                tracing::warn!(%key, "cannot abort an unfinished upload: {}", short(&e));
            }
        });
    }
}

/// An S3 or I/O failure that is worth retrying later (the store is
/// unreachable, or answered 5xx), as opposed to a missing object.
fn unavailable(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("media storage: {what}: {e}"))
}
