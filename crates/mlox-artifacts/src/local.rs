//! [`LocalArtifactRepo`]: artifacts as plain files under one root directory.
//!
//! Links are never followed below the root: every existing component of a path is inspected
//! with `symlink_metadata` and a link anywhere makes the path invalid, and the final file is
//! opened with `O_NOFOLLOW`. Writes go to a hidden temporary file in the destination directory,
//! are synced, and are renamed into place, so readers see the old file or the whole new one and
//! an acknowledged upload survives a crash. Multipart uploads are staged under a hidden
//! directory in the root; names starting with `.mlox-` are reserved for this bookkeeping and
//! are neither listed nor addressable.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use md5::{Digest, Md5};
use mlox_core::{Error, Result};
use serde::{Deserialize, Serialize};
use tokio::fs;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use crate::{
    ArtifactPath, ArtifactRepository, ByteStream, CompletedPart, Download, FileInfo,
    INVALID_PATH_MESSAGE, MultipartCreated,
};

/// Prefix of every name this backend keeps for itself inside the root.
const RESERVED_PREFIX: &str = ".mlox-";
/// Directory (directly under the root) holding in-progress multipart uploads.
const STAGING_DIR: &str = ".mlox-mpu";
/// Prefix of in-flight upload files, next to their destination.
const TMP_PREFIX: &str = ".mlox-tmp-";
const MANIFEST: &str = "manifest.json";
/// Large enough that a multi-GiB upload costs few blocking writes, small enough to keep memory
/// per concurrent upload bounded.
const WRITE_BUFFER: usize = 512 * 1024;
const READ_CHUNK: usize = 256 * 1024;

/// Artifacts stored as files under `root`.
#[derive(Clone, Debug)]
pub struct LocalArtifactRepo {
    root: PathBuf,
}

/// What the in-progress upload will become; written once when the upload starts.
#[derive(Serialize, Deserialize)]
struct Manifest {
    path: String,
    num_parts: u32,
}

/// What is at a path, without following links.
enum Found {
    Missing,
    File,
    Dir,
}

impl LocalArtifactRepo {
    /// A repository over an existing directory. The root itself may be a link (operators
    /// often mount storage that way); nothing below it may.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalArtifactRepo { root: root.into() }
    }

    /// Creates `root` if needed and returns a repository over it.
    pub async fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)
            .await
            .map_err(|e| Error::internal(format!("Cannot create the artifact root: {e}")))?;
        Ok(LocalArtifactRepo { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Removes multipart uploads untouched for `max_age` (clients that died mid-upload).
    /// Returns how many were removed.
    pub async fn purge_stale_uploads(&self, max_age: Duration) -> Result<usize> {
        let staging = self.root.join(STAGING_DIR);
        let mut entries = match fs::read_dir(&staging).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_error("list multipart uploads", e)),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error("list multipart uploads", e))?
        {
            let Ok(meta) = entry.metadata().await else {
                continue;
            };
            let age = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok());
            if meta.is_dir() && age.is_some_and(|age| age >= max_age) {
                fs::remove_dir_all(entry.path())
                    .await
                    .map_err(|e| io_error("remove a stale multipart upload", e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Inspects `path` component by component without following links.
    async fn find(&self, path: &ArtifactPath) -> Result<Found> {
        refuse_reserved(path)?;
        let mut current = self.root.clone();
        let segments: Vec<&str> = path.segments().collect();
        if segments.is_empty() {
            return match fs::metadata(&current).await {
                Ok(meta) if meta.is_dir() => Ok(Found::Dir),
                Ok(_) => Err(Error::internal("The artifact root is not a directory")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Missing),
                Err(e) => Err(io_error("inspect the artifact root", e)),
            };
        }
        for (idx, segment) in segments.iter().enumerate() {
            current.push(segment);
            let meta = match fs::symlink_metadata(&current).await {
                Ok(meta) => meta,
                Err(e) if is_absent(&e) => return Ok(Found::Missing),
                Err(e) => return Err(io_error(&format!("inspect '{path}'"), e)),
            };
            if meta.file_type().is_symlink() {
                return Err(Error::invalid(INVALID_PATH_MESSAGE));
            }
            let last = idx + 1 == segments.len();
            if meta.is_dir() {
                if last {
                    return Ok(Found::Dir);
                }
            } else if last && meta.is_file() {
                return Ok(Found::File);
            } else {
                // A file in the middle of the path, or a device or socket: nothing to serve.
                return Ok(Found::Missing);
            }
        }
        Ok(Found::Missing)
    }

    /// Makes `dir` (and its missing ancestors) exist as real directories below the root.
    async fn ensure_dir(&self, dir: &ArtifactPath) -> Result<PathBuf> {
        let mut current = self.root.clone();
        if !fs::try_exists(&current).await.unwrap_or(false) {
            fs::create_dir_all(&current)
                .await
                .map_err(|e| Error::internal(format!("Cannot create the artifact root: {e}")))?;
        }
        let mut walked = String::new();
        for segment in dir.segments() {
            current.push(segment);
            if !walked.is_empty() {
                walked.push('/');
            }
            walked.push_str(segment);
            match fs::create_dir(&current).await {
                Ok(()) => {
                    let parent = current.parent().unwrap_or(&self.root).to_path_buf();
                    sync_dir(&parent).await?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
                    return Err(file_in_the_way(&walked));
                }
                Err(e) => return Err(io_error(&format!("create directory '{walked}'"), e)),
            }
            let meta = fs::symlink_metadata(&current)
                .await
                .map_err(|e| io_error(&format!("inspect '{walked}'"), e))?;
            if meta.file_type().is_symlink() {
                return Err(Error::invalid(INVALID_PATH_MESSAGE));
            }
            if !meta.is_dir() {
                return Err(file_in_the_way(&walked));
            }
        }
        Ok(current)
    }

    /// Where a file at `path` would go, with its directory created; refuses directories.
    async fn prepare_target(&self, path: &ArtifactPath) -> Result<(PathBuf, PathBuf)> {
        refuse_reserved(path)?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(Error::invalid(INVALID_PATH_MESSAGE));
        };
        let dir = self.ensure_dir(&parent).await?;
        let target = dir.join(name);
        match fs::symlink_metadata(&target).await {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(Error::invalid(INVALID_PATH_MESSAGE));
            }
            Ok(meta) if meta.is_dir() => {
                return Err(Error::invalid(format!(
                    "Cannot write artifact '{path}': it is a directory"
                )));
            }
            Ok(_) => {}
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(io_error(&format!("inspect '{path}'"), e)),
        }
        Ok((dir, target))
    }

    fn staging_dir(&self, upload_id: &str) -> Result<PathBuf> {
        // Only the canonical form of a real UUID ever becomes a directory name.
        let id = Uuid::try_parse(upload_id)
            .map_err(|_| Error::invalid(format!("Invalid upload_id: '{upload_id}'")))?;
        Ok(self.root.join(STAGING_DIR).join(id.simple().to_string()))
    }

    /// The manifest of an upload, checked against the path the client names now.
    async fn manifest(
        &self,
        staging: &Path,
        upload_id: &str,
        path: &ArtifactPath,
    ) -> Result<Manifest> {
        let raw = match fs::read(staging.join(MANIFEST)).await {
            Ok(raw) => raw,
            Err(e) if is_absent(&e) => {
                return Err(Error::not_found(format!(
                    "No such multipart upload: '{upload_id}'"
                )));
            }
            Err(e) => return Err(io_error("read a multipart upload", e)),
        };
        let manifest: Manifest = serde_json::from_slice(&raw)
            .map_err(|e| Error::internal(format!("Corrupt multipart upload '{upload_id}': {e}")))?;
        if manifest.path != path.as_str() {
            return Err(Error::invalid(format!(
                "Multipart upload '{upload_id}' is for '{}', not '{path}'",
                manifest.path
            )));
        }
        Ok(manifest)
    }

    /// The staged files of part `part_number` with their ETags.
    async fn staged_versions(
        &self,
        staging: &Path,
        part_number: u32,
    ) -> Result<Vec<(String, PathBuf)>> {
        let what = "read a multipart upload";
        let prefix = part_prefix(part_number);
        let mut entries = fs::read_dir(staging).await.map_err(|e| io_error(what, e))?;
        let mut found = Vec::new();
        while let Some(entry) = entries.next_entry().await.map_err(|e| io_error(what, e))? {
            let name = entry.file_name();
            if let Some(etag) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) {
                found.push((etag.to_owned(), entry.path()));
            }
        }
        Ok(found)
    }

    /// The staged file for one part, checked against the ETag the client was given.
    async fn staged_part(
        &self,
        staging: &Path,
        upload_id: &str,
        part: &CompletedPart,
    ) -> Result<PathBuf> {
        // Clients echo the header value, which object stores quote.
        let wanted = part
            .etag
            .as_deref()
            .map(|e| e.trim_matches('"'))
            .filter(|e| !e.is_empty());
        let versions = self.staged_versions(staging, part.part_number).await?;
        versions
            .into_iter()
            .find(|(etag, _)| wanted.is_none_or(|w| w == etag))
            .map(|(_, path)| path)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Part {} of multipart upload '{upload_id}' was not uploaded{}",
                    part.part_number,
                    wanted
                        .map(|e| format!(" with ETag {e}"))
                        .unwrap_or_default()
                ))
            })
    }
}

#[async_trait]
impl ArtifactRepository for LocalArtifactRepo {
    async fn put(&self, path: &ArtifactPath, body: ByteStream) -> Result<u64> {
        let (dir, target) = self.prepare_target(path).await?;
        let (written, _) = write_atomically(&dir, body, false, path, |_| target).await?;
        Ok(written)
    }

    async fn get(&self, path: &ArtifactPath) -> Result<Download> {
        let missing = || Error::not_found(format!("No such artifact: '{path}'"));
        match self.find(path).await? {
            Found::File => {}
            Found::Dir | Found::Missing => return Err(missing()),
        }
        let full = path.under(&self.root);
        let file = match open_nofollow(&full).await {
            Ok(file) => file,
            Err(e) if is_absent(&e) => return Err(missing()),
            Err(e) if is_link_refusal(&e) => return Err(Error::invalid(INVALID_PATH_MESSAGE)),
            Err(e) => return Err(io_error(&format!("open '{path}'"), e)),
        };
        // Size from the opened file, not the earlier lookup, so a concurrent replace cannot
        // make the announced length disagree with the bytes sent.
        let meta = file
            .metadata()
            .await
            .map_err(|e| io_error(&format!("open '{path}'"), e))?;
        if !meta.is_file() {
            return Err(missing());
        }
        Ok(Download {
            size: meta.len(),
            stream: ReaderStream::with_capacity(file, READ_CHUNK).boxed(),
        })
    }

    async fn list(&self, path: &ArtifactPath) -> Result<Vec<FileInfo>> {
        match self.find(path).await? {
            Found::Dir => {}
            Found::File | Found::Missing => return Ok(Vec::new()),
        }
        let full = path.under(&self.root);
        let what = || format!("list '{path}'");
        let mut entries = match fs::read_dir(&full).await {
            Ok(entries) => entries,
            Err(e) if is_absent(&e) => return Ok(Vec::new()),
            Err(e) => return Err(io_error(&what(), e)),
        };
        let mut files = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_error(&what(), e))?
        {
            // Names that are not UTF-8 cannot be addressed through the API; hide them.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with(RESERVED_PREFIX) {
                continue;
            }
            let Ok(file_type) = entry.file_type().await else {
                continue;
            };
            if file_type.is_dir() {
                files.push(FileInfo {
                    path: name,
                    is_dir: true,
                    file_size: None,
                });
            } else if file_type.is_file() {
                let Ok(meta) = entry.metadata().await else {
                    continue;
                };
                files.push(FileInfo {
                    path: name,
                    is_dir: false,
                    file_size: Some(meta.len()),
                });
            }
            // Links and special files are not served, so they are not listed either.
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    async fn delete(&self, path: &ArtifactPath) -> Result<()> {
        if path.is_root() {
            return Err(Error::invalid("Refusing to delete the whole artifact root"));
        }
        let full = path.under(&self.root);
        let result = match self.find(path).await? {
            Found::Missing => return Ok(()),
            Found::File => fs::remove_file(&full).await,
            // `remove_dir_all` does not follow links it meets inside the tree.
            Found::Dir => fs::remove_dir_all(&full).await,
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(io_error(&format!("delete '{path}'"), e)),
        }
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
        // Fail now, not after the client sent gigabytes, if the target can never be written.
        refuse_reserved(path)?;
        if path.is_root() {
            return Err(Error::invalid(INVALID_PATH_MESSAGE));
        }
        if let Found::Dir = self.find(path).await? {
            return Err(Error::invalid(format!(
                "Cannot write artifact '{path}': it is a directory"
            )));
        }
        let upload_id = Uuid::new_v4().simple().to_string();
        let staging_root = self.root.join(STAGING_DIR);
        fs::create_dir_all(&staging_root)
            .await
            .map_err(|e| io_error("start a multipart upload", e))?;
        let meta = fs::symlink_metadata(&staging_root)
            .await
            .map_err(|e| io_error("start a multipart upload", e))?;
        if !meta.is_dir() {
            return Err(Error::internal(
                "The multipart staging area is not a directory",
            ));
        }
        let staging = staging_root.join(&upload_id);
        fs::create_dir(&staging)
            .await
            .map_err(|e| io_error("start a multipart upload", e))?;
        let manifest = Manifest {
            path: path.as_str().to_owned(),
            num_parts,
        };
        let body = serde_json::to_vec(&manifest)
            .map_err(|e| Error::internal(format!("Cannot record a multipart upload: {e}")))?;
        let body: ByteStream =
            futures::stream::once(async move { Ok(bytes::Bytes::from(body)) }).boxed();
        write_atomically(&staging, body, false, path, |_| staging.join(MANIFEST)).await?;
        Ok(MultipartCreated {
            upload_id,
            presigned: None,
        })
    }

    async fn upload_part(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
    ) -> Result<String> {
        let staging = self.staging_dir(upload_id)?;
        let manifest = self.manifest(&staging, upload_id, path).await?;
        crate::check_part_number(part_number, manifest.num_parts)?;
        // The staged name carries the content hash, so a completion naming an ETag can only
        // ever join the exact bytes that upload answered for.
        let prefix = part_prefix(part_number);
        let (_, etag) = write_atomically(&staging, body, true, path, |etag| {
            staging.join(format!("{prefix}{}", etag.unwrap_or_default()))
        })
        .await?;
        let etag = etag.unwrap_or_default();
        // The last finished upload of a part is the part; older versions only waste space.
        for (old, file) in self.staged_versions(&staging, part_number).await? {
            if old != etag {
                let _ = fs::remove_file(file).await;
            }
        }
        Ok(etag)
    }

    async fn complete_multipart(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<()> {
        let staging = self.staging_dir(upload_id)?;
        let manifest = self.manifest(&staging, upload_id, path).await?;
        if parts.is_empty() {
            return Err(Error::invalid("A multipart upload needs at least one part"));
        }
        let mut previous = 0;
        for part in parts {
            if part.part_number <= previous || part.part_number > manifest.num_parts {
                return Err(Error::invalid(format!(
                    "Parts must be listed in increasing order between 1 and {}; got part {} after {}",
                    manifest.num_parts, part.part_number, previous
                )));
            }
            previous = part.part_number;
        }
        let mut sources = Vec::with_capacity(parts.len());
        for part in parts {
            sources.push(self.staged_part(&staging, upload_id, part).await?);
        }
        let (dir, target) = self.prepare_target(path).await?;
        let body = concat_files(sources);
        write_atomically(&dir, body, false, path, |_| target).await?;
        if let Err(e) = fs::remove_dir_all(&staging).await {
            // The artifact is in place; leftover parts only cost space until purged.
            tracing::warn!(upload_id, error = %e, "could not remove a completed multipart upload");
        }
        Ok(())
    }

    async fn abort_multipart(&self, path: &ArtifactPath, upload_id: &str) -> Result<()> {
        let staging = self.staging_dir(upload_id)?;
        match self.manifest(&staging, upload_id, path).await {
            Ok(_) => {}
            Err(e) if e.code == mlox_core::Code::ResourceDoesNotExist => return Ok(()),
            Err(e) => return Err(e),
        }
        match fs::remove_dir_all(&staging).await {
            Ok(()) => Ok(()),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(io_error("abort a multipart upload", e)),
        }
    }
}

fn part_prefix(part_number: u32) -> String {
    format!("part-{part_number:05}.")
}

/// Streams `body` into a new hidden file in `dir`, syncs it, and renames it to the path
/// `destination` picks. With `hash`, the MD5 of the content is computed on the way and handed
/// to `destination` (and returned), so a file can be named after its content.
async fn write_atomically(
    dir: &Path,
    mut body: ByteStream,
    hash: bool,
    path: &ArtifactPath,
    destination: impl FnOnce(Option<&str>) -> PathBuf,
) -> Result<(u64, Option<String>)> {
    let what = || format!("write artifact '{path}'");
    let tmp = dir.join(format!("{TMP_PREFIX}{}", Uuid::new_v4().simple()));
    let mut guard = RemoveOnDrop(Some(tmp.clone()));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .await
        .map_err(|e| io_error(&what(), e))?;
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut hasher = hash.then(Md5::new);
    let mut written: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&chunk);
        }
        writer
            .write_all(&chunk)
            .await
            .map_err(|e| io_error(&what(), e))?;
        written += chunk.len() as u64;
    }
    writer.flush().await.map_err(|e| io_error(&what(), e))?;
    let file = writer.into_inner();
    file.sync_all().await.map_err(|e| io_error(&what(), e))?;
    drop(file);
    let etag = hasher.map(|h| hex(&h.finalize()));
    let target = destination(etag.as_deref());
    // `rename` replaces a link at the destination rather than writing through it.
    fs::rename(&tmp, &target)
        .await
        .map_err(|e| io_error(&what(), e))?;
    guard.0 = None;
    sync_dir(dir).await?;
    Ok((written, etag))
}

/// The bytes of `files`, one after another, read in bounded chunks.
fn concat_files(files: Vec<PathBuf>) -> ByteStream {
    futures::stream::iter(files)
        .then(|file| async move {
            let opened = fs::File::open(&file)
                .await
                .map_err(|e| io_error("read a multipart part", e))?;
            Ok::<_, Error>(
                ReaderStream::with_capacity(opened, READ_CHUNK)
                    .map(|chunk| chunk.map_err(|e| io_error("read a multipart part", e))),
            )
        })
        .map(|opened| match opened {
            Ok(stream) => stream.boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .flatten()
        .boxed()
}

/// Deletes an abandoned temporary file, also when the request future is dropped mid-upload.
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // A single unlink; cheap enough to do inline even on a runtime thread.
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(unix)]
async fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .await
}

#[cfg(not(unix))]
async fn open_nofollow(path: &Path) -> io::Result<fs::File> {
    fs::File::open(path).await
}

/// `O_NOFOLLOW` met a link (Linux says `ELOOP`).
fn is_link_refusal(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Makes a rename or creation inside `dir` durable.
async fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let handle = fs::File::open(dir)
            .await
            .map_err(|e| io_error("sync a directory", e))?;
        handle
            .sync_all()
            .await
            .map_err(|e| io_error("sync a directory", e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn refuse_reserved(path: &ArtifactPath) -> Result<()> {
    if path.segments().any(|s| s.starts_with(RESERVED_PREFIX)) {
        return Err(Error::invalid(INVALID_PATH_MESSAGE));
    }
    Ok(())
}

fn file_in_the_way(walked: &str) -> Error {
    Error::invalid(format!(
        "Cannot create directory '{walked}': a file exists there"
    ))
}

/// Absent for our purposes: not there, or a file where a directory was expected.
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn io_error(what: &str, e: io::Error) -> Error {
    // Messages name artifact paths only; the root's location is the operator's business.
    Error::internal(format!("Failed to {what}: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}
