//! Artifact storage for mlox: the files runs and models log, kept under one artifact root and
//! served by the tracking server's proxied artifact API. This crate owns the
//! [`ArtifactRepository`] trait every storage backend implements (streaming uploads and
//! downloads, MLflow's listing semantics, deletion and multipart uploads), its two backends,
//! [`LocalArtifactRepo`] on the local filesystem and [`S3ArtifactRepo`] on S3 or an
//! S3-compatible store such as MinIO, [`open_artifact_repository`], which picks the backend for
//! an artifact root URI, and [`ArtifactLocations`], which finds the repository behind any stored
//! artifact location (the proxy's, a bucket's, a directory's). Locations are read with
//! `mlox_core::location`, whose [`ArtifactPath`] is the only way a client-supplied path reaches
//! storage (it can never name anything outside the root). Failures are [`mlox_core::Error`]s,
//! so transports render them without knowing the backend. This crate knows no transport and no
//! database: it must not import mlox-store or any HTTP server crate.

mod local;
mod locations;
pub mod mime;
mod s3;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use mlox_core::location::{Location, LocationError};
use mlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Implementations of [`ArtifactRepository`] in other crates use the same macro.
pub use async_trait::async_trait;
pub use local::LocalArtifactRepo;
pub use locations::{ArtifactLocation, ArtifactLocations, bad_location};
pub use mime::content_type_for;
pub use mlox_core::location::{ArtifactPath, INVALID_PATH_MESSAGE};
pub use s3::{S3ArtifactRepo, S3Config};

/// An upload body. Errors come from the transport (a dropped connection, a size limit) and are
/// reported to the client as they are, so the producer picks their [`mlox_core::Code`].
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// A download body; by the time it is read the response status is sent, so errors only abort.
pub type DownloadStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Most parts a multipart upload may have (S3's limit, which clients already respect).
pub const MAX_MULTIPART_PARTS: u32 = 10_000;

/// The message MLflow's client recognises to fall back to a single upload.
pub const MULTIPART_UNSUPPORTED_MESSAGE: &str =
    "Multipart upload is not supported for the current artifact repository";

/// An artifact file opened for download.
pub struct Download {
    pub size: u64,
    pub stream: DownloadStream,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// One entry of a directory listing, shaped as MLflow's `FileInfo`: `path` is the entry's name
/// relative to the listed directory, and directories carry no size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    pub path: String,
    pub is_dir: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
}

/// Where a client sends one part of a multipart upload when the backend can take it directly
/// (a presigned object-store URL). Backends without such URLs leave it to the transport to
/// route parts back through [`ArtifactRepository::upload_part`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresignedPart {
    pub part_number: u32,
    pub url: String,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// A started multipart upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultipartCreated {
    pub upload_id: String,
    /// `Some` when parts go straight to the backend; `None` when they come through us.
    pub presigned: Option<Vec<PresignedPart>>,
}

/// A part the client says it uploaded, as it lists them when completing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedPart {
    pub part_number: u32,
    /// The ETag the part upload answered; `None` trusts whatever is staged for that number.
    #[serde(default)]
    pub etag: Option<String>,
}

/// Refuses a part count outside what every backend accepts.
pub(crate) fn check_num_parts(num_parts: u32) -> Result<()> {
    if !(1..=MAX_MULTIPART_PARTS).contains(&num_parts) {
        return Err(Error::invalid(format!(
            "num_parts must be between 1 and {MAX_MULTIPART_PARTS}, got {num_parts}"
        )));
    }
    Ok(())
}

/// Refuses a part number the upload was not created with.
pub(crate) fn check_part_number(part_number: u32, num_parts: u32) -> Result<()> {
    if !(1..=num_parts).contains(&part_number) {
        return Err(Error::invalid(format!(
            "part_number must be between 1 and {num_parts}, got {part_number}"
        )));
    }
    Ok(())
}

fn multipart_unsupported() -> Error {
    Error::not_implemented(MULTIPART_UNSUPPORTED_MESSAGE)
}

/// A place artifacts live. Paths are already validated; implementations still refuse names
/// they reserve for themselves and anything that would resolve outside their root.
#[async_trait]
pub trait ArtifactRepository: Send + Sync + 'static {
    /// Stores `body` at `path`, replacing any file there. Returns the bytes written. An
    /// acknowledged upload is durable, and a failed or abandoned one leaves nothing visible.
    async fn put(&self, path: &ArtifactPath, body: ByteStream) -> Result<u64>;

    /// Opens the file at `path`; a missing path or a directory is `RESOURCE_DOES_NOT_EXIST`.
    async fn get(&self, path: &ArtifactPath) -> Result<Download>;

    /// The entries directly under `path`, sorted by name; empty when `path` is a file or does
    /// not exist (MLflow's client tells files from directories this way).
    async fn list(&self, path: &ArtifactPath) -> Result<Vec<FileInfo>>;

    /// Removes the file or directory tree at `path`; removing nothing is not an error.
    async fn delete(&self, path: &ArtifactPath) -> Result<()>;

    /// Whether the multipart methods below do anything.
    fn supports_multipart(&self) -> bool {
        false
    }

    /// Starts a multipart upload that will become the file at `path`.
    async fn create_multipart(
        &self,
        _path: &ArtifactPath,
        _num_parts: u32,
    ) -> Result<MultipartCreated> {
        Err(multipart_unsupported())
    }

    /// Stores part `part_number` (from 1) of an upload; returns its ETag. Uploading a part
    /// again replaces it.
    async fn upload_part(
        &self,
        _path: &ArtifactPath,
        _upload_id: &str,
        _part_number: u32,
        _body: ByteStream,
    ) -> Result<String> {
        Err(multipart_unsupported())
    }

    /// Joins the listed parts, in order, into the file at `path` and forgets the upload.
    async fn complete_multipart(
        &self,
        _path: &ArtifactPath,
        _upload_id: &str,
        _parts: &[CompletedPart],
    ) -> Result<()> {
        Err(multipart_unsupported())
    }

    /// Drops an upload and its parts; aborting an unknown upload is not an error.
    async fn abort_multipart(&self, _path: &ArtifactPath, _upload_id: &str) -> Result<()> {
        Err(multipart_unsupported())
    }
}

/// Opens the repository an artifact root URI names, configuring S3 from the process
/// environment (see [`S3Config::from_env`]). Local directories are created if missing.
pub async fn open_artifact_repository(uri: &str) -> Result<Arc<dyn ArtifactRepository>> {
    open_artifact_repository_with_env(uri, |name| std::env::var(name).ok()).await
}

/// [`open_artifact_repository`] with the environment read through `env`.
///
/// Plain paths and `file:` URIs are local directories; `s3://bucket/optional/prefix` is S3.
/// Other schemes are refused rather than mistaken for relative paths.
pub async fn open_artifact_repository_with_env(
    uri: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn ArtifactRepository>> {
    match ArtifactRoot::classify(uri)? {
        ArtifactRoot::Local(path) => Ok(Arc::new(LocalArtifactRepo::create(path).await?)),
        ArtifactRoot::S3 => {
            let config = S3Config::from_env(env)?;
            Ok(Arc::new(S3ArtifactRepo::new(uri, &config)?))
        }
    }
}

/// Opens the repository at an artifact root that is only to be read, such as a run's own
/// artifact location: unlike [`open_artifact_repository`], a local directory that does not
/// exist is left alone (it lists as empty) rather than created by a read.
pub async fn open_artifact_repository_for_reading(
    uri: &str,
) -> Result<Arc<dyn ArtifactRepository>> {
    match ArtifactRoot::classify(uri)? {
        ArtifactRoot::Local(path) => Ok(Arc::new(LocalArtifactRepo::new(path))),
        ArtifactRoot::S3 => {
            let config = S3Config::from_env(|name| std::env::var(name).ok())?;
            Ok(Arc::new(S3ArtifactRepo::new(uri, &config)?))
        }
    }
}

/// The backend an artifact root URI names.
#[derive(Debug, PartialEq, Eq)]
enum ArtifactRoot {
    Local(PathBuf),
    S3,
}

impl ArtifactRoot {
    fn classify(uri: &str) -> Result<Self> {
        match Location::parse(uri) {
            Ok(Location::Local(path)) => Ok(ArtifactRoot::Local(path)),
            Ok(Location::S3 { .. }) => Ok(ArtifactRoot::S3),
            Err(LocationError::Empty) => Err(Error::invalid("The artifact root must not be empty")),
            Err(LocationError::FileHost) => Err(Error::invalid(format!(
                "Unsupported artifact root '{uri}': file URIs must name a local path"
            ))),
            Err(LocationError::FilePath) => {
                Err(Error::invalid(format!("Invalid artifact root '{uri}'")))
            }
            Err(
                error @ (LocationError::S3Bucket
                | LocationError::S3QueryOrFragment
                | LocationError::S3Key),
            ) => Err(s3::invalid_root(uri, &error)),
            _ => Err(Error::invalid(format!(
                "Unsupported artifact root '{uri}': supported are local paths, file:// URIs and \
                 s3://bucket/prefix URIs"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_roots_pick_their_backend() {
        let local = |raw: &str| ArtifactRoot::Local(PathBuf::from(raw));
        for (uri, expected) in [
            ("./mlartifacts", local("./mlartifacts")),
            ("/srv/artifacts", local("/srv/artifacts")),
            ("relative/dir", local("relative/dir")),
            ("C:\\artifacts", local("C:\\artifacts")),
            ("file:///srv/my%20artifacts", local("/srv/my artifacts")),
            ("file://localhost/srv/a", local("/srv/a")),
            ("FILE:/srv/a", local("/srv/a")),
            ("file:rel/dir", local("rel/dir")),
            ("s3://bucket/prefix", ArtifactRoot::S3),
            ("s3://bucket", ArtifactRoot::S3),
        ] {
            assert_eq!(ArtifactRoot::classify(uri).expect(uri), expected, "{uri}");
        }
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        for uri in [
            "gs://b/p",
            "wasbs://c@a.blob/p",
            "hdfs://nn/p",
            "s3:bucket",
            "",
            "file://host/p",
        ] {
            let err = ArtifactRoot::classify(uri).expect_err(uri);
            assert_eq!(err.code, mlox_core::Code::InvalidParameterValue, "{uri}");
        }
        let err = ArtifactRoot::classify("gs://b/p").expect_err("gs");
        assert!(
            err.message.contains("s3://") && err.message.contains("file://"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn reading_a_missing_local_root_creates_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("absent");
        let repo = open_artifact_repository_for_reading(&dir.display().to_string())
            .await
            .expect("local");
        assert!(
            repo.list(&ArtifactPath::root())
                .await
                .expect("list")
                .is_empty()
        );
        assert!(!dir.exists());
        assert!(
            open_artifact_repository_for_reading("gs://b/p")
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn the_factory_opens_both_backends() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("new-root");
        let uri = format!("file://{}", dir.display());
        let local = open_artifact_repository_with_env(&uri, |_| None)
            .await
            .expect("local");
        assert!(local.supports_multipart());
        assert!(dir.is_dir());
        // Building an S3 repository sends nothing, so no server is needed here.
        let s3 = open_artifact_repository_with_env("s3://bucket/prefix", |name| {
            (name == "MLFLOW_S3_ENDPOINT_URL").then(|| "http://127.0.0.1:1".to_owned())
        })
        .await
        .expect("s3");
        assert!(s3.supports_multipart());
        let bad = open_artifact_repository_with_env("s3://bucket", |name| {
            (name == "MLFLOW_S3_IGNORE_TLS").then(|| "maybe".to_owned())
        })
        .await;
        assert!(bad.is_err());
    }
}
