//! What every artifact backend must do, written once against the trait. Each behaviour is a
//! function taking a fresh, empty repository; `conformance_tests!` turns the whole list into
//! `#[tokio::test]`s for one backend, so a behaviour added here runs on every backend.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use mlox_artifacts::{ArtifactPath, ArtifactRepository, ByteStream, CompletedPart, FileInfo};
use mlox_core::{Code, Error};

/// A fresh empty repository and whatever must live as long as it (a temporary directory);
/// `None` when the backend is unavailable here and its tests are skipped.
pub type Fixture = Option<(Box<dyn Any>, Arc<dyn ArtifactRepository>)>;

/// Instantiates every behaviour below as a test, with `$fixture` (an `async fn() -> Fixture`)
/// making each test's repository.
macro_rules! conformance_tests {
    ($fixture:path) => {
        $crate::conformance::conformance_tests!(@each $fixture;
            put_get_round_trip_and_overwrite,
            empty_upload_makes_an_empty_file,
            missing_files_and_directories_are_not_found,
            listing_follows_mlflow_semantics,
            a_fresh_root_lists_empty,
            delete_files_trees_and_nothing,
            writes_that_collide_with_the_tree_are_refused,
            failed_upload_leaves_nothing_and_keeps_the_old_file,
            abandoned_upload_leaves_nothing,
            large_uploads_stream_through,
            multipart_parts_in_any_order_join_in_part_order,
            multipart_bad_completions_are_refused,
            multipart_malformed_upload_ids_are_refused,
            multipart_abort_drops_the_parts,
            multipart_part_counts_and_targets_are_checked_up_front,
        );
    };
    (@each $fixture:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                if let Some((_keep, repo)) = $fixture().await {
                    $crate::conformance::$name(repo.as_ref()).await;
                }
            }
        )*
    };
}
pub(crate) use conformance_tests;

/// Smallest part S3 accepts for any part but the last.
pub const MIN_PART: usize = 5 << 20;

pub fn p(raw: &str) -> ArtifactPath {
    ArtifactPath::parse(raw).unwrap()
}

pub fn body(data: &'static [u8]) -> ByteStream {
    futures::stream::once(async move { Ok(Bytes::from_static(data)) }).boxed()
}

pub fn chunks(parts: Vec<&'static [u8]>) -> ByteStream {
    futures::stream::iter(parts.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed()
}

/// `data` as an upload body cut into 64 KiB chunks, as a socket would deliver it.
pub fn owned(data: Vec<u8>) -> ByteStream {
    let data = Bytes::from(data);
    let pieces: Vec<Bytes> = (0..data.len())
        .step_by(64 << 10)
        .map(|start| data.slice(start..data.len().min(start + (64 << 10))))
        .collect();
    futures::stream::iter(pieces.into_iter().map(Ok)).boxed()
}

/// `len` bytes that differ from part to part and position to position, so a misplaced or
/// repeated piece shows.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed)
                .wrapping_add((i >> 16) as u8)
        })
        .collect()
}

pub async fn read(repo: &dyn ArtifactRepository, raw: &str) -> Vec<u8> {
    let download = repo.get(&p(raw)).await.unwrap();
    let data: Vec<Bytes> = download.stream.try_collect().await.unwrap();
    let data = data.concat();
    assert_eq!(data.len() as u64, download.size);
    data
}

pub fn file(name: &str, size: u64) -> FileInfo {
    FileInfo {
        path: name.into(),
        is_dir: false,
        file_size: Some(size),
    }
}

pub fn dir(name: &str) -> FileInfo {
    FileInfo {
        path: name.into(),
        is_dir: true,
        file_size: None,
    }
}

pub fn assert_code(err: Error, code: Code) {
    assert_eq!(err.code, code, "{err}");
}

pub fn part(n: u32, etag: Option<&str>) -> CompletedPart {
    CompletedPart {
        part_number: n,
        etag: etag.map(str::to_owned),
    }
}

pub async fn put_get_round_trip_and_overwrite(repo: &dyn ArtifactRepository) {
    let written = repo
        .put(&p("a/b/c.txt"), chunks(vec![b"hello ", b"world"]))
        .await
        .unwrap();
    assert_eq!(written, 11);
    assert_eq!(read(repo, "a/b/c.txt").await, b"hello world");
    repo.put(&p("a/b/c.txt"), body(b"new")).await.unwrap();
    assert_eq!(read(repo, "a/b/c.txt").await, b"new");
    assert_eq!(repo.list(&p("a/b")).await.unwrap(), [file("c.txt", 3)]);
}

pub async fn empty_upload_makes_an_empty_file(repo: &dyn ArtifactRepository) {
    repo.put(&p("empty"), futures::stream::empty().boxed())
        .await
        .unwrap();
    assert_eq!(read(repo, "empty").await, b"");
    assert_eq!(
        repo.list(&ArtifactPath::root()).await.unwrap(),
        [file("empty", 0)]
    );
}

pub async fn missing_files_and_directories_are_not_found(repo: &dyn ArtifactRepository) {
    repo.put(&p("d/f.txt"), body(b"x")).await.unwrap();
    for raw in ["nope", "d", "d/nope", "d/f.txt/deeper"] {
        let err = repo.get(&p(raw)).await.unwrap_err();
        assert_code(err.clone(), Code::ResourceDoesNotExist);
        assert_eq!(err.message, format!("No such artifact: '{raw}'"));
    }
    assert_code(
        repo.get(&ArtifactPath::root()).await.unwrap_err(),
        Code::ResourceDoesNotExist,
    );
}

pub async fn listing_follows_mlflow_semantics(repo: &dyn ArtifactRepository) {
    repo.put(&p("run/x.txt"), body(b"123456789")).await.unwrap();
    repo.put(&p("run/sub/y.bin"), body(b"yy")).await.unwrap();
    repo.put(&p("run/a.txt"), body(b"")).await.unwrap();
    assert_eq!(
        repo.list(&p("run")).await.unwrap(),
        [file("a.txt", 0), dir("sub"), file("x.txt", 9)]
    );
    assert_eq!(repo.list(&p("run/sub/")).await.unwrap(), [file("y.bin", 2)]);
    assert_eq!(
        repo.list(&ArtifactPath::root()).await.unwrap(),
        [dir("run")]
    );
    assert!(repo.list(&p("run/x.txt")).await.unwrap().is_empty());
    assert!(repo.list(&p("missing/dir")).await.unwrap().is_empty());
    assert!(
        repo.list(&p("run/x.txt/under-a-file"))
            .await
            .unwrap()
            .is_empty()
    );
    // A name that is a prefix of a sibling's is not that sibling's parent.
    assert!(repo.list(&p("ru")).await.unwrap().is_empty());
}

pub async fn a_fresh_root_lists_empty(repo: &dyn ArtifactRepository) {
    assert!(repo.list(&ArtifactPath::root()).await.unwrap().is_empty());
    repo.put(&p("f"), body(b"1")).await.unwrap();
    assert_eq!(
        repo.list(&ArtifactPath::root()).await.unwrap(),
        [file("f", 1)]
    );
}

pub async fn delete_files_trees_and_nothing(repo: &dyn ArtifactRepository) {
    repo.put(&p("r/a.txt"), body(b"a")).await.unwrap();
    repo.put(&p("r/d/e/f.txt"), body(b"f")).await.unwrap();
    repo.put(&p("r/dx/keep.txt"), body(b"k")).await.unwrap();
    repo.delete(&p("r/a.txt")).await.unwrap();
    assert_eq!(repo.list(&p("r")).await.unwrap(), [dir("d"), dir("dx")]);
    repo.delete(&p("r/d")).await.unwrap();
    assert_eq!(repo.list(&p("r")).await.unwrap(), [dir("dx")]);
    assert_eq!(read(repo, "r/dx/keep.txt").await, b"k");
    repo.delete(&p("r/dx")).await.unwrap();
    assert!(repo.list(&p("r")).await.unwrap().is_empty());
    repo.delete(&p("r/missing")).await.unwrap();
    repo.delete(&p("nothing/here")).await.unwrap();
    assert_code(
        repo.delete(&ArtifactPath::root()).await.unwrap_err(),
        Code::InvalidParameterValue,
    );
}

pub async fn writes_that_collide_with_the_tree_are_refused(repo: &dyn ArtifactRepository) {
    repo.put(&p("d/f.txt"), body(b"x")).await.unwrap();
    let err = repo.put(&p("d"), body(b"x")).await.unwrap_err();
    assert_eq!(
        err,
        Error::invalid("Cannot write artifact 'd': it is a directory")
    );
    let err = repo.put(&p("d/f.txt/g"), body(b"x")).await.unwrap_err();
    assert_eq!(
        err,
        Error::invalid("Cannot create directory 'd/f.txt': a file exists there")
    );
    assert_code(
        repo.put(&ArtifactPath::root(), body(b"x"))
            .await
            .unwrap_err(),
        Code::InvalidParameterValue,
    );
    assert_eq!(repo.list(&ArtifactPath::root()).await.unwrap(), [dir("d")]);
    assert_eq!(repo.list(&p("d")).await.unwrap(), [file("f.txt", 1)]);
}

pub async fn failed_upload_leaves_nothing_and_keeps_the_old_file(repo: &dyn ArtifactRepository) {
    repo.put(&p("keep.txt"), body(b"old")).await.unwrap();
    let failing: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(Error::bad_request("connection reset")),
    ])
    .boxed();
    let err = repo.put(&p("keep.txt"), failing).await.unwrap_err();
    assert_eq!(err, Error::bad_request("connection reset"));
    assert_eq!(read(repo, "keep.txt").await, b"old");
    let failing: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(Error::bad_request("connection reset")),
    ])
    .boxed();
    repo.put(&p("new.txt"), failing).await.unwrap_err();
    assert_eq!(
        repo.list(&ArtifactPath::root()).await.unwrap(),
        [file("keep.txt", 3)]
    );
}

pub async fn abandoned_upload_leaves_nothing(repo: &dyn ArtifactRepository) {
    let stalled: ByteStream = futures::stream::iter(vec![Ok(Bytes::from_static(b"start"))])
        .chain(futures::stream::pending())
        .boxed();
    let path = p("d/stalled.bin");
    let upload = repo.put(&path, stalled);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), upload)
            .await
            .is_err()
    );
    assert_code(
        repo.get(&path).await.unwrap_err(),
        Code::ResourceDoesNotExist,
    );
    assert!(repo.list(&p("d")).await.unwrap().is_empty());
}

pub async fn large_uploads_stream_through(repo: &dyn ArtifactRepository) {
    let chunk = Bytes::from(vec![7u8; 1 << 20]);
    let n = 32;
    let stream = futures::stream::iter((0..n).map(move |_| Ok(chunk.clone()))).boxed();
    assert_eq!(repo.put(&p("big.bin"), stream).await.unwrap(), n << 20);
    let download = repo.get(&p("big.bin")).await.unwrap();
    assert_eq!(download.size, n << 20);
    let mut total = 0u64;
    let mut max_chunk = 0usize;
    let mut stream = download.stream;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.iter().all(|b| *b == 7));
        max_chunk = max_chunk.max(chunk.len());
        total += chunk.len() as u64;
    }
    assert_eq!(total, n << 20);
    assert!(max_chunk <= 1 << 20, "downloads are read in bounded chunks");
}

pub async fn multipart_parts_in_any_order_join_in_part_order(repo: &dyn ArtifactRepository) {
    let path = p("run/artifacts/big.bin");
    assert!(repo.supports_multipart());
    let created = repo.create_multipart(&path, 3).await.unwrap();
    assert!(created.presigned.is_none());
    let id = created.upload_id;
    let one = pattern(MIN_PART, 1);
    let two = pattern(MIN_PART + 3, 2);
    let e3 = repo
        .upload_part(&path, &id, 3, body(b"three"))
        .await
        .unwrap();
    let e1 = repo
        .upload_part(&path, &id, 1, owned(one.clone()))
        .await
        .unwrap();
    let e2 = repo
        .upload_part(&path, &id, 2, owned(two.clone()))
        .await
        .unwrap();
    // ETags are the parts' MD5, as object stores give them, and come back unquoted.
    for etag in [&e1, &e2, &e3] {
        assert!(
            etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit()),
            "{etag}"
        );
    }
    assert_eq!(
        repo.upload_part(&path, &id, 1, body(b"hello"))
            .await
            .unwrap(),
        "5d41402abc4b2a76b9719d911017c592"
    );
    // Uploading a part again replaces it.
    let e1 = repo
        .upload_part(&path, &id, 1, owned(one.clone()))
        .await
        .unwrap();
    let parts = [
        part(1, Some(&e1)),
        part(2, Some(&format!("\"{e2}\""))),
        part(3, Some(&e3)),
    ];
    repo.complete_multipart(&path, &id, &parts).await.unwrap();
    let expected = [one.as_slice(), two.as_slice(), b"three"].concat();
    assert!(read(repo, "run/artifacts/big.bin").await == expected);
    // No staging is ever visible.
    assert_eq!(
        repo.list(&ArtifactPath::root()).await.unwrap(),
        [dir("run")]
    );
    // Completing again is acknowledged again (S3 makes completion idempotent so retries are
    // safe) or names an upload that no longer exists; either way the artifact stays whole.
    if let Err(err) = repo.complete_multipart(&path, &id, &parts).await {
        assert_code(err, Code::ResourceDoesNotExist);
    }
    assert!(read(repo, "run/artifacts/big.bin").await == expected);
}

pub async fn multipart_bad_completions_are_refused(repo: &dyn ArtifactRepository) {
    let path = p("f.bin");
    let id = repo.create_multipart(&path, 2).await.unwrap().upload_id;
    let e1 = repo.upload_part(&path, &id, 1, body(b"a")).await.unwrap();
    for parts in [
        vec![],
        vec![part(2, None)],
        vec![part(1, Some("0123456789abcdef0123456789abcdef"))],
        vec![part(1, Some(&e1)), part(1, Some(&e1))],
        vec![part(3, None)],
        vec![part(0, None)],
    ] {
        let err = repo
            .complete_multipart(&path, &id, &parts)
            .await
            .unwrap_err();
        assert_code(err, Code::InvalidParameterValue);
    }
    assert_code(
        repo.complete_multipart(&p("other.bin"), &id, &[part(1, Some(&e1))])
            .await
            .unwrap_err(),
        Code::InvalidParameterValue,
    );
    for n in [0, 3] {
        assert_code(
            repo.upload_part(&path, &id, n, body(b"x"))
                .await
                .unwrap_err(),
            Code::InvalidParameterValue,
        );
    }
    assert!(repo.get(&path).await.is_err());
    repo.complete_multipart(&path, &id, &[part(1, Some(&e1))])
        .await
        .unwrap();
    assert_eq!(read(repo, "f.bin").await, b"a");
}

pub async fn multipart_malformed_upload_ids_are_refused(repo: &dyn ArtifactRepository) {
    let path = p("f.bin");
    for id in ["../../etc", "", "not-a-uuid", "%2e%2e", "1/../2"] {
        assert_code(
            repo.upload_part(&path, id, 1, body(b"x"))
                .await
                .unwrap_err(),
            Code::InvalidParameterValue,
        );
        assert_code(
            repo.complete_multipart(&path, id, &[part(1, Some("x"))])
                .await
                .unwrap_err(),
            Code::InvalidParameterValue,
        );
        assert_code(
            repo.abort_multipart(&path, id).await.unwrap_err(),
            Code::InvalidParameterValue,
        );
    }
}

pub async fn multipart_abort_drops_the_parts(repo: &dyn ArtifactRepository) {
    let path = p("f.bin");
    let id = repo.create_multipart(&path, 1).await.unwrap().upload_id;
    repo.upload_part(&path, &id, 1, body(b"a")).await.unwrap();
    assert_code(
        repo.abort_multipart(&p("g.bin"), &id).await.unwrap_err(),
        Code::InvalidParameterValue,
    );
    repo.abort_multipart(&path, &id).await.unwrap();
    // Aborting again, or an upload that no longer exists, is not an error.
    repo.abort_multipart(&path, &id).await.unwrap();
    // The backends answer RESOURCE_DOES_NOT_EXIST (S3 says NoSuchUpload); moto, which the S3
    // suite runs on, answers 500 instead, so only the refusal is common ground.
    repo.upload_part(&path, &id, 1, body(b"a"))
        .await
        .unwrap_err();
    assert_code(
        repo.get(&path).await.unwrap_err(),
        Code::ResourceDoesNotExist,
    );
    assert!(repo.list(&ArtifactPath::root()).await.unwrap().is_empty());
}

pub async fn multipart_part_counts_and_targets_are_checked_up_front(repo: &dyn ArtifactRepository) {
    repo.put(&p("d/x"), body(b"x")).await.unwrap();
    for n in [0, 10_001] {
        assert_code(
            repo.create_multipart(&p("f.bin"), n).await.unwrap_err(),
            Code::InvalidParameterValue,
        );
    }
    assert_code(
        repo.create_multipart(&p("d"), 1).await.unwrap_err(),
        Code::InvalidParameterValue,
    );
    assert_code(
        repo.create_multipart(&ArtifactPath::root(), 1)
            .await
            .unwrap_err(),
        Code::InvalidParameterValue,
    );
    let path = p("f.bin");
    let id = repo
        .create_multipart(&path, 10_000)
        .await
        .unwrap()
        .upload_id;
    repo.abort_multipart(&path, &id).await.unwrap();
}
