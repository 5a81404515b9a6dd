//! [`S3ArtifactRepo`]: artifacts as objects in an S3 bucket (AWS, MinIO, or any server that
//! speaks the API), optionally below a key prefix.
//!
//! Object keys are the artifact paths verbatim under the prefix, so a bucket written by mlox
//! reads the same to MLflow's own S3 client and the other way round. S3 has no directories:
//! a directory is any key prefix ending in `/`, which is what MLflow's S3 repository assumes
//! too. To keep the local backend's semantics, a write is refused when the path already has
//! keys below it (it is a directory) or when one of its ancestors is an object (a file is in
//! the way), at the price of a few small requests per write.
//!
//! Uploads never hold a whole body: a small one is sent with one `PUT`, a larger one becomes
//! an S3 multipart upload fed part by part, which only becomes visible when completed and is
//! aborted when the body fails or the request is dropped. Client-driven multipart uploads map
//! onto S3's multipart API directly; the upload id handed out wraps S3's own id with the part
//! count and a tag of the target path, so part numbers and paths are checked before S3 sees
//! them, as the local backend checks them against its manifest.
//!
//! Zero-byte `dir/` marker objects that other tools (S3 consoles) create are shown as the
//! directory they name but cannot be deleted: object_store cannot address a key ending in `/`.
//! MLflow itself never writes them.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use mlox_core::location::{Location, LocationError};
use mlox_core::{Error, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};
use tokio::task::JoinSet;

use crate::{
    ArtifactPath, ArtifactRepository, ByteStream, CompletedPart, Download, FileInfo,
    INVALID_PATH_MESSAGE, MAX_MULTIPART_PARTS, MultipartCreated,
};

/// Bodies up to this size go in one `PUT`; larger ones are sent in parts of at least this
/// size (S3 wants 5 MiB or more for every part but the last).
const PART_SIZE: usize = 8 << 20;
/// Parts of one streamed upload on the wire at once; with the part being filled this bounds
/// an upload's memory to three parts.
const MAX_PARTS_IN_FLIGHT: usize = 2;
/// Every this many parts the part size doubles (up to 16×), so the 10,000-part limit allows
/// streamed uploads of several hundred GiB while small and medium files keep small parts.
const PARTS_PER_SIZE_STEP: u32 = 1_000;
const MAX_PART_SIZE_SHIFT: u32 = 4;
/// Longest S3 upload id accepted back from a client (AWS's are a few hundred characters).
const MAX_S3_UPLOAD_ID: usize = 1_024;
const PATH_TAG_HEX: usize = 16;

/// How to reach S3, read from the environment variables MLflow's own S3 client honours.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `MLFLOW_S3_ENDPOINT_URL`: a non-AWS endpoint such as MinIO. Setting it switches to
    /// path-style addressing and allows plain `http://`.
    pub endpoint_url: Option<String>,
    /// `AWS_ACCESS_KEY_ID`; without it credentials come from the instance or task role.
    pub access_key_id: Option<String>,
    /// `AWS_SECRET_ACCESS_KEY`
    pub secret_access_key: Option<String>,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
    /// `AWS_DEFAULT_REGION`, else `AWS_REGION`, else `us-east-1`.
    pub region: String,
    /// `MLFLOW_S3_IGNORE_TLS`: accept any certificate from the endpoint.
    pub ignore_tls: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint_url: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            region: DEFAULT_REGION.to_owned(),
            ignore_tls: false,
        }
    }
}

const DEFAULT_REGION: &str = "us-east-1";

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of logs; whether they are set is what helps debugging.
        f.debug_struct("S3Config")
            .field("endpoint_url", &self.endpoint_url)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.is_some())
            .field("session_token", &self.session_token.is_some())
            .field("region", &self.region)
            .field("ignore_tls", &self.ignore_tls)
            .finish()
    }
}

impl S3Config {
    /// Reads the configuration through `lookup` (normally `|name| std::env::var(name).ok()`).
    /// Empty values count as unset, as they do for boto3.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let ignore_tls = match get("MLFLOW_S3_IGNORE_TLS") {
            None => false,
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(Error::invalid(format!(
                        "MLFLOW_S3_IGNORE_TLS must be one of true, false, 1, 0; got '{value}'"
                    )));
                }
            },
        };
        Ok(S3Config {
            endpoint_url: get("MLFLOW_S3_ENDPOINT_URL")
                .map(|url| url.trim().trim_end_matches('/').to_owned()),
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
            session_token: get("AWS_SESSION_TOKEN"),
            region: get("AWS_DEFAULT_REGION")
                .or_else(|| get("AWS_REGION"))
                .unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            ignore_tls,
        })
    }
}

/// Artifacts stored as objects under `s3://bucket/prefix`.
#[derive(Clone, Debug)]
pub struct S3ArtifactRepo {
    store: AmazonS3,
    bucket: String,
    /// Key prefix without surrounding `/`; empty for the whole bucket.
    prefix: String,
}

impl S3ArtifactRepo {
    /// A repository over `root` (`s3://bucket` or `s3://bucket/some/prefix`). Nothing is
    /// sent to S3 yet: a wrong bucket or credentials show up on the first request.
    pub fn new(root: &str, config: &S3Config) -> Result<Self> {
        let (bucket, prefix) = parse_root(root)?;
        // The HTTP client is built without a TLS crypto provider of its own (see the workspace
        // manifest); an already installed one, e.g. by the webhook sender, is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut options = ClientOptions::new()
            // Downloads stream at the client's pace, so a whole-request deadline would cut
            // off large artifacts; a stalled connection is caught by the read timeout.
            .with_timeout_disabled()
            .with_read_timeout(Duration::from_secs(60))
            .with_connect_timeout(Duration::from_secs(5));
        if config.ignore_tls {
            options = options.with_allow_invalid_certificates(true);
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&config.region)
            // A few quick retries ride out a blip; MLflow's client retries whole requests on
            // 5xx for minutes, so waiting longer here only multiplies the delay.
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(60),
            });
        match &config.endpoint_url {
            Some(endpoint) => {
                options = options.with_allow_http(true);
                builder = builder
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false);
            }
            // Dotted names break the TLS wildcard of virtual-hosted URLs, so they stay
            // path-style, as boto3 does.
            None => builder = builder.with_virtual_hosted_style_request(!bucket.contains('.')),
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        let store = builder
            .with_client_options(options)
            .build()
            .map_err(|e| Error::invalid(format!("Invalid S3 configuration for '{root}': {e}")))?;
        Ok(S3ArtifactRepo {
            store,
            bucket,
            prefix,
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key prefix artifacts live under, without surrounding `/`; empty for the bucket.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The object key of `path`; the root maps to the prefix itself.
    fn key(&self, path: &ArtifactPath) -> Result<ObjectPath> {
        let raw = match (self.prefix.is_empty(), path.is_root()) {
            (true, _) => path.as_str().to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{}", self.prefix, path.as_str()),
        };
        // `parse` keeps the text verbatim (no re-encoding), which keeps keys MLflow-compatible.
        ObjectPath::parse(raw).map_err(|_| Error::invalid(INVALID_PATH_MESSAGE))
    }

    /// The key of a file; the root is a directory and never one.
    fn file_key(&self, path: &ArtifactPath) -> Result<ObjectPath> {
        if path.is_root() {
            return Err(Error::invalid(INVALID_PATH_MESSAGE));
        }
        self.key(path)
    }

    async fn is_object(&self, path: &ArtifactPath) -> Result<bool> {
        match self.store.head(&self.key(path)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(s3_error(&format!("inspect '{path}'"), &e)),
        }
    }

    /// Whether any key lies below `key/`: one request however large the directory.
    async fn has_children(&self, path: &ArtifactPath, key: &ObjectPath) -> Result<bool> {
        let prefix = format!("{key}/");
        let page = self
            .store
            .list_paginated(
                Some(&prefix),
                PaginatedListOptions {
                    max_keys: Some(1),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| s3_error(&format!("inspect '{path}'"), &e))?;
        Ok(!page.result.objects.is_empty() || !page.result.common_prefixes.is_empty())
    }

    /// Refuses a write that would turn a directory into a file or need a file to be a
    /// directory, as the local backend must.
    async fn check_writable(&self, path: &ArtifactPath, key: &ObjectPath) -> Result<()> {
        let mut ancestors = Vec::new();
        let mut current = path.parent();
        while let Some(dir) = current.filter(|d| !d.is_root()) {
            current = dir.parent();
            ancestors.push(dir);
        }
        ancestors.reverse();
        let files = futures::future::try_join_all(ancestors.iter().map(|a| self.is_object(a)));
        let (files, is_dir) = futures::try_join!(files, self.has_children(path, key))?;
        if let Some((ancestor, _)) = ancestors.iter().zip(files).find(|(_, file)| *file) {
            return Err(Error::invalid(format!(
                "Cannot create directory '{ancestor}': a file exists there"
            )));
        }
        if is_dir {
            return Err(Error::invalid(format!(
                "Cannot write artifact '{path}': it is a directory"
            )));
        }
        Ok(())
    }

    /// Sends `body` to `key`: one `PUT` when it fits in a part, a multipart upload otherwise.
    async fn upload(
        &self,
        path: &ArtifactPath,
        key: &ObjectPath,
        mut body: ByteStream,
    ) -> Result<u64> {
        let what = || format!("write artifact '{path}'");
        let mut pending: Vec<Bytes> = Vec::new();
        let mut pending_len = 0usize;
        let mut written = 0u64;
        let mut multipart: Option<StreamedUpload> = None;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    if let Some(upload) = multipart.take() {
                        upload.abort().await;
                    }
                    return Err(e);
                }
            };
            written += chunk.len() as u64;
            pending_len += chunk.len();
            pending.push(chunk);
            let part_size = multipart
                .as_ref()
                .map_or(PART_SIZE, StreamedUpload::part_size);
            if pending_len < part_size {
                continue;
            }
            let upload = match multipart.as_mut() {
                Some(upload) => upload,
                None => {
                    let started = self
                        .store
                        .put_multipart(key)
                        .await
                        .map_err(|e| s3_error(&what(), &e))?;
                    multipart.insert(StreamedUpload::new(started))
                }
            };
            let part = PutPayload::from_iter(std::mem::take(&mut pending));
            pending_len = 0;
            if let Err(e) = upload.send(part).await {
                if let Some(upload) = multipart.take() {
                    upload.abort().await;
                }
                return Err(s3_error(&what(), &e));
            }
        }
        let payload = PutPayload::from_iter(pending);
        match multipart {
            None => {
                self.store
                    .put(key, payload)
                    .await
                    .map_err(|e| s3_error(&what(), &e))?;
            }
            Some(mut upload) => {
                if payload.content_length() > 0
                    && let Err(e) = upload.send(payload).await
                {
                    upload.abort().await;
                    return Err(s3_error(&what(), &e));
                }
                upload.finish().await.map_err(|e| s3_error(&what(), &e))?;
            }
        }
        Ok(written)
    }

    /// Checks a client's upload id against the path it names now.
    fn upload_for<'a>(&self, path: &ArtifactPath, upload_id: &'a str) -> Result<UploadId<'a>> {
        let id = UploadId::parse(upload_id)?;
        if id.path_tag != path_tag(path) {
            return Err(Error::invalid(format!(
                "Multipart upload '{upload_id}' is not for '{path}'"
            )));
        }
        Ok(id)
    }
}

#[async_trait]
impl ArtifactRepository for S3ArtifactRepo {
    async fn put(&self, path: &ArtifactPath, body: ByteStream) -> Result<u64> {
        let key = self.file_key(path)?;
        self.check_writable(path, &key).await?;
        self.upload(path, &key, body).await
    }

    async fn get(&self, path: &ArtifactPath) -> Result<Download> {
        let missing = || Error::not_found(format!("No such artifact: '{path}'"));
        if path.is_root() {
            return Err(missing());
        }
        let found = match self.store.get(&self.key(path)?).await {
            Ok(found) => found,
            Err(e) if is_missing_object(&e) => return Err(missing()),
            Err(e) => return Err(s3_error(&format!("open '{path}'"), &e)),
        };
        let size = found.meta.size;
        let stream = found
            .into_stream()
            .map_err(|e| io::Error::other(format!("S3 download failed: {}", s3_reason(&e))))
            .boxed();
        Ok(Download { size, stream })
    }

    async fn list(&self, path: &ArtifactPath) -> Result<Vec<FileInfo>> {
        let key = self.key(path)?;
        let listed = self
            .store
            .list_with_delimiter((!key.is_root()).then_some(&key))
            .await
            .map_err(|e| s3_error(&format!("list '{path}'"), &e))?;
        let mut files = Vec::with_capacity(listed.objects.len() + listed.common_prefixes.len());
        for dir in &listed.common_prefixes {
            if let Some(name) = dir.filename() {
                files.push(FileInfo {
                    path: name.to_owned(),
                    is_dir: true,
                    file_size: None,
                });
            }
        }
        for object in &listed.objects {
            // A zero-byte `dir/` marker (as consoles create) names the directory itself.
            if object.location == key {
                continue;
            }
            if let Some(name) = object.location.filename() {
                files.push(FileInfo {
                    path: name.to_owned(),
                    is_dir: false,
                    file_size: Some(object.size),
                });
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    async fn delete(&self, path: &ArtifactPath) -> Result<()> {
        if path.is_root() {
            return Err(Error::invalid("Refusing to delete the whole artifact root"));
        }
        let key = self.key(path)?;
        let what = format!("delete '{path}'");
        let below = self.store.list(Some(&key)).map_ok(|meta| meta.location);
        let itself = futures::stream::once(futures::future::ready(Ok(key)));
        let mut deleted = self.store.delete_stream(below.chain(itself).boxed());
        while let Some(result) = deleted.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(s3_error(&what, &e)),
            }
        }
        Ok(())
    }

    fn supports_multipart(&self) -> bool {
        true
    }

    async fn create_multipart(
        &self,
        path: &ArtifactPath,
        num_parts: u32,
    ) -> Result<MultipartCreated> {
        crate::check_num_parts(num_parts)?;
        let key = self.file_key(path)?;
        // Fail now, not after the client sent gigabytes, if the target can never be written.
        self.check_writable(path, &key).await?;
        let s3_id = MultipartStore::create_multipart(&self.store, &key)
            .await
            .map_err(|e| s3_error("start a multipart upload", &e))?;
        Ok(MultipartCreated {
            upload_id: format!("{num_parts}.{}.{s3_id}", path_tag(path)),
            presigned: None,
        })
    }

    /// The part is held in memory until S3 has it, since S3 needs its length up front. Parts
    /// are bounded by the transport's upload limit, and MLflow's client cuts files into
    /// chunks of `MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE` (100 MiB by default), which also keeps
    /// every part but the last above S3's 5 MiB minimum.
    async fn upload_part(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
    ) -> Result<String> {
        let id = self.upload_for(path, upload_id)?;
        crate::check_part_number(part_number, id.num_parts)?;
        let key = self.file_key(path)?;
        let chunks: Vec<Bytes> = body.try_collect().await?;
        let part_idx = usize::try_from(part_number - 1)
            .map_err(|_| Error::invalid("part_number is out of range"))?;
        let part = MultipartStore::put_part(
            &self.store,
            &key,
            &id.s3_id.to_owned(),
            part_idx,
            PutPayload::from_iter(chunks),
        )
        .await
        .map_err(|e| match e {
            object_store::Error::NotFound { .. } => no_such_upload(upload_id),
            e => s3_error("upload a multipart part", &e),
        })?;
        Ok(part.content_id.trim_matches('"').to_owned())
    }

    async fn complete_multipart(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<()> {
        let id = self.upload_for(path, upload_id)?;
        if parts.is_empty() {
            return Err(Error::invalid("A multipart upload needs at least one part"));
        }
        let mut previous = 0;
        let mut ids = Vec::with_capacity(parts.len());
        for part in parts {
            if part.part_number <= previous || part.part_number > id.num_parts {
                return Err(Error::invalid(format!(
                    "Parts must be listed in increasing order between 1 and {}; got part {} after {}",
                    id.num_parts, part.part_number, previous
                )));
            }
            // S3 could join a subset, but object_store numbers the listed parts 1..n.
            if part.part_number != previous + 1 {
                return Err(Error::invalid(format!(
                    "Parts must be listed without gaps from part 1; part {} is missing",
                    previous + 1
                )));
            }
            let Some(etag) = part.etag.as_deref().map(|e| e.trim_matches('"')) else {
                return Err(Error::invalid(format!(
                    "Part {} of multipart upload '{upload_id}' needs the ETag its upload answered",
                    part.part_number
                )));
            };
            ids.push(PartId {
                content_id: format!("\"{etag}\""),
            });
            previous = part.part_number;
        }
        let key = self.file_key(path)?;
        self.check_writable(path, &key).await?;
        MultipartStore::complete_multipart(&self.store, &key, &id.s3_id.to_owned(), ids)
            .await
            .map_err(|e| {
                let reason = s3_reason(&e);
                match e {
                    object_store::Error::NotFound { .. } => no_such_upload(upload_id),
                    // The client named parts or ETags S3 does not have, or parts too small.
                    _ if reason.starts_with("InvalidPart")
                        || reason.starts_with("EntityTooSmall") =>
                    {
                        Error::invalid(format!(
                            "S3 refused the parts of multipart upload '{upload_id}': {reason}"
                        ))
                    }
                    e => s3_error("complete a multipart upload", &e),
                }
            })?;
        Ok(())
    }

    async fn abort_multipart(&self, path: &ArtifactPath, upload_id: &str) -> Result<()> {
        let id = self.upload_for(path, upload_id)?;
        let key = self.file_key(path)?;
        match MultipartStore::abort_multipart(&self.store, &key, &id.s3_id.to_owned()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(s3_error("abort a multipart upload", &e)),
        }
    }
}

/// An S3 multipart upload being fed from a request body. Dropping it unfinished (the request
/// future was cancelled) aborts the upload in the background, so no parts linger.
struct StreamedUpload {
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: JoinSet<object_store::Result<()>>,
    parts_sent: u32,
}

impl StreamedUpload {
    fn new(upload: Box<dyn MultipartUpload>) -> Self {
        StreamedUpload {
            upload: Some(upload),
            in_flight: JoinSet::new(),
            parts_sent: 0,
        }
    }

    fn part_size(&self) -> usize {
        PART_SIZE << (self.parts_sent / PARTS_PER_SIZE_STEP).min(MAX_PART_SIZE_SHIFT)
    }

    /// Starts uploading `part`, first waiting for room so a fast client cannot pile up parts.
    async fn send(&mut self, part: PutPayload) -> object_store::Result<()> {
        while self.in_flight.len() >= MAX_PARTS_IN_FLIGHT {
            if let Some(done) = self.in_flight.join_next().await {
                flatten_join(done)?;
            }
        }
        while let Some(done) = self.in_flight.try_join_next() {
            flatten_join(done)?;
        }
        let Some(upload) = self.upload.as_mut() else {
            return Err(generic("the multipart upload is already closed"));
        };
        self.in_flight.spawn(upload.put_part(part));
        self.parts_sent += 1;
        Ok(())
    }

    /// Waits for the parts and makes the object visible; on failure the upload is aborted.
    async fn finish(mut self) -> object_store::Result<()> {
        while let Some(done) = self.in_flight.join_next().await {
            if let Err(e) = flatten_join(done) {
                self.abort().await;
                return Err(e);
            }
        }
        let Some(mut upload) = self.upload.take() else {
            return Err(generic("the multipart upload is already closed"));
        };
        match upload.complete().await {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(error = %abort, "could not abort a failed S3 upload");
                }
                Err(e)
            }
        }
    }

    async fn abort(mut self) {
        self.in_flight.abort_all();
        if let Some(mut upload) = self.upload.take()
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(error = %e, "could not abort a failed S3 upload");
        }
    }
}

impl Drop for StreamedUpload {
    fn drop(&mut self) {
        self.in_flight.abort_all();
        if let Some(mut upload) = self.upload.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "could not abort an abandoned S3 upload");
                }
            });
        }
    }
}

fn flatten_join(
    done: std::result::Result<object_store::Result<()>, tokio::task::JoinError>,
) -> object_store::Result<()> {
    done.map_err(|e| generic(&format!("a part upload did not finish: {e}")))?
}

fn generic(message: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: message.to_owned().into(),
    }
}

/// A client-facing multipart upload id: `<num_parts>.<path tag>.<S3 upload id>`.
struct UploadId<'a> {
    num_parts: u32,
    path_tag: &'a str,
    s3_id: &'a str,
}

impl<'a> UploadId<'a> {
    fn parse(raw: &'a str) -> Result<Self> {
        let invalid = || Error::invalid(format!("Invalid upload_id: '{raw}'"));
        let mut fields = raw.splitn(3, '.');
        let (Some(num_parts), Some(path_tag), Some(s3_id)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(invalid());
        };
        let num_parts = Some(num_parts)
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (1..=MAX_MULTIPART_PARTS).contains(n))
            .ok_or_else(invalid)?;
        let tag_ok = path_tag.len() == PATH_TAG_HEX
            && path_tag
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        // S3 ids are opaque but printable; anything else did not come from us.
        let id_ok = !s3_id.is_empty()
            && s3_id.len() <= MAX_S3_UPLOAD_ID
            && s3_id.bytes().all(|b| b.is_ascii_graphic());
        if !tag_ok || !id_ok {
            return Err(invalid());
        }
        Ok(UploadId {
            num_parts,
            path_tag,
            s3_id,
        })
    }
}

/// A short digest of the target path, so an upload id cannot be completed onto another path
/// (S3 would only say the upload does not exist).
fn path_tag(path: &ArtifactPath) -> String {
    let digest = Md5::digest(path.as_str().as_bytes());
    digest
        .iter()
        .take(PATH_TAG_HEX / 2)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn no_such_upload(upload_id: &str) -> Error {
    Error::not_found(format!("No such multipart upload: '{upload_id}'"))
}

/// The bucket and the key prefix (without surrounding `/`) of an `s3://bucket/prefix` root.
fn parse_root(root: &str) -> Result<(String, String)> {
    let (bucket, prefix) = match Location::parse(root) {
        Ok(Location::S3 { bucket, key }) => (bucket, key),
        Ok(_) => return Err(invalid_root(root, &LocationError::S3Shape)),
        Err(error) => return Err(invalid_root(root, &error)),
    };
    // Valid in a key, but in a root an operator typed they are a slip.
    if prefix
        .as_str()
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid_root(root, &LocationError::S3QueryOrFragment));
    }
    if !prefix.is_root() {
        ObjectPath::parse(prefix.as_str())
            .map_err(|_| invalid_root(root, &LocationError::S3Key))?;
    }
    Ok((bucket, prefix.to_string()))
}

/// Why `root` is not an S3 artifact root, in the words operators see at start-up.
pub(crate) fn invalid_root(root: &str, error: &LocationError) -> Error {
    let why = match error {
        LocationError::S3QueryOrFragment => "query strings, fragments and spaces are not supported",
        LocationError::S3Bucket => "the bucket name is missing or malformed",
        LocationError::S3Key => "the key prefix has empty or '.' segments",
        _ => "expected s3://bucket/optional/prefix",
    };
    Error::invalid(format!("Invalid S3 artifact root '{root}': {why}"))
}

/// A missing key, as opposed to a missing bucket (both are 404 to S3).
fn is_missing_object(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. }) && !s3_reason(e).starts_with("NoSuchBucket")
}

/// Any other failure: the service or its configuration, never the client's request, so it is
/// an internal error whose message carries what S3 said.
fn s3_error(what: &str, e: &object_store::Error) -> Error {
    // The full error names the endpoint, bucket and request URL: for the operator's log only.
    tracing::warn!(error = %e, "S3 request to {what} failed");
    Error::internal(format!("Failed to {what}: {}", s3_reason(e)))
}

/// What S3 answered (its error code and message), or why it could not be reached, without
/// the request URL, which would tell clients the bucket and endpoint.
fn s3_reason(e: &object_store::Error) -> String {
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(next) = source {
        chain.push(next.to_string());
        source = next.source();
    }
    let text = chain.join("\n");
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))?;
        Some(text[start..start + end].trim().to_owned())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) if !message.is_empty() => return format!("{code}: {message}"),
        (Some(code), _) => return code,
        _ => {}
    }
    const STATUS: &str = "status code: ";
    if let Some(start) = text.find(STATUS) {
        let status = &text[start + STATUS.len()..];
        let status = status.split([':', '\n']).next().unwrap_or(status).trim();
        return format!("S3 answered {status}");
    }
    match e {
        // These carry no request URL, and their text is the clearest there is.
        object_store::Error::InvalidPath { .. }
        | object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. } => e.to_string(),
        // The innermost cause of a transport failure ("Connection refused", "timed out").
        _ => format!(
            "cannot reach S3: {}",
            chain.last().map(String::as_str).unwrap_or("unknown error")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<S3Config> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        S3Config::from_env(|name| vars.get(name).cloned())
    }

    #[test]
    fn config_defaults_and_mlflow_variables() {
        assert_eq!(config(&[]).expect("empty env"), S3Config::default());
        assert_eq!(S3Config::default().region, "us-east-1");
        let full = config(&[
            ("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9000/"),
            ("AWS_ACCESS_KEY_ID", "key"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
            ("AWS_REGION", "eu-west-1"),
            ("MLFLOW_S3_IGNORE_TLS", "True"),
        ])
        .expect("full env");
        assert_eq!(
            full,
            S3Config {
                endpoint_url: Some("http://127.0.0.1:9000".into()),
                access_key_id: Some("key".into()),
                secret_access_key: Some("secret".into()),
                session_token: Some("token".into()),
                region: "eu-west-1".into(),
                ignore_tls: true,
            }
        );
        let debug = format!("{full:?}");
        assert!(
            !debug.contains("secret\"") && !debug.contains("token\""),
            "{debug}"
        );
    }

    #[test]
    fn default_region_wins_over_region_and_empty_means_unset() {
        let both = config(&[
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_REGION", "eu-west-1"),
        ]);
        assert_eq!(both.expect("env").region, "ap-south-1");
        let empty = config(&[("AWS_DEFAULT_REGION", ""), ("MLFLOW_S3_ENDPOINT_URL", " ")]);
        let empty = empty.expect("env");
        assert_eq!(empty.region, "us-east-1");
        assert_eq!(empty.endpoint_url, None);
    }

    #[test]
    fn ignore_tls_takes_mlflow_booleans_only() {
        for (value, expected) in [("1", true), ("TRUE", true), ("0", false), ("false", false)] {
            let parsed = config(&[("MLFLOW_S3_IGNORE_TLS", value)]).expect(value);
            assert_eq!(parsed.ignore_tls, expected, "{value}");
        }
        let err = config(&[("MLFLOW_S3_IGNORE_TLS", "yes")]).expect_err("yes");
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
        assert!(err.message.contains("MLFLOW_S3_IGNORE_TLS"), "{err}");
    }

    #[test]
    fn roots_split_into_bucket_and_prefix() {
        let ok = |root: &str| parse_root(root).unwrap_or_else(|e| panic!("{root}: {e}"));
        assert_eq!(ok("s3://bucket"), ("bucket".into(), String::new()));
        assert_eq!(ok("s3://bucket/"), ("bucket".into(), String::new()));
        assert_eq!(
            ok("s3://b/some/prefix/"),
            ("b".into(), "some/prefix".into())
        );
        for bad in [
            "s3://",
            "s3:///prefix",
            "s3://b/a//c",
            "s3://b/a/../c",
            "s3://b/p?x=1",
            "s3://b/p#f",
            "s3://user@b/p",
            "s3://b:9000/p",
            "gs://b/p",
            "s3://b/a b",
        ] {
            let err = parse_root(bad).expect_err(bad);
            assert_eq!(err.code, mlox_core::Code::InvalidParameterValue, "{bad}");
        }
    }

    #[test]
    fn keys_are_artifact_paths_under_the_prefix_verbatim() {
        let config = S3Config {
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            ..S3Config::default()
        };
        let p = |raw: &str| ArtifactPath::parse(raw).expect(raw);
        let prefixed = S3ArtifactRepo::new("s3://b/some/prefix", &config).expect("repo");
        assert_eq!(
            prefixed.key(&p("a%b/..c/x y")).expect("key").as_ref(),
            "some/prefix/a%b/..c/x y"
        );
        assert_eq!(
            prefixed.key(&ArtifactPath::root()).expect("key").as_ref(),
            "some/prefix"
        );
        let bare = S3ArtifactRepo::new("s3://b", &config).expect("repo");
        assert_eq!(bare.key(&p("a/b")).expect("key").as_ref(), "a/b");
        assert!(bare.key(&ArtifactPath::root()).expect("key").is_root());
        assert!(bare.file_key(&ArtifactPath::root()).is_err());
    }

    #[test]
    fn upload_ids_round_trip_and_refuse_junk() {
        let path = ArtifactPath::parse("a/b.bin").expect("path");
        let raw = format!("3.{}.2~abc.DEF_ghi-jkl", path_tag(&path));
        let id = UploadId::parse(&raw).expect("id");
        assert_eq!((id.num_parts, id.s3_id), (3, "2~abc.DEF_ghi-jkl"));
        assert_eq!(id.path_tag, path_tag(&path));
        let tag = path_tag(&path);
        for bad in [
            String::new(),
            "../../etc".into(),
            "not-a-uuid".into(),
            "%2e%2e".into(),
            format!("0.{tag}.x"),
            format!("10001.{tag}.x"),
            format!("+1.{tag}.x"),
            format!("1.{tag}."),
            format!("1.{tag}.a b"),
            format!("1.{}.x", &tag[1..]),
            format!("1.{}.x", tag.to_uppercase()),
        ] {
            assert!(UploadId::parse(&bad).is_err(), "{bad:?}");
        }
    }
}
