//! Artifact storage for mlox: the files runs and models log, kept under one artifact root and
//! served by the tracking server's proxied artifact API. This crate owns three things: the
//! [`ArtifactPath`] type that is the only way a client-supplied location reaches storage (it can
//! never name anything outside the root), the [`ArtifactRepository`] trait every storage backend
//! implements (streaming uploads and downloads, MLflow's listing semantics, deletion and
//! multipart uploads), and [`LocalArtifactRepo`], the local-filesystem backend. Failures are
//! [`mlox_core::Error`]s, so transports render them without knowing the backend.

mod local;
pub mod mime;
mod path;

use bytes::Bytes;
use futures::stream::BoxStream;
use mlox_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Implementations of [`ArtifactRepository`] in other crates use the same macro.
pub use async_trait::async_trait;
pub use local::LocalArtifactRepo;
pub use mime::content_type_for;
pub use path::{ArtifactPath, INVALID_PATH_MESSAGE};

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
