//! Behaviour of the local-filesystem artifact repository through its public trait.

// Helpers outside `#[test]` functions panic too; in a test that is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use mlox_artifacts::{
    ArtifactPath, ArtifactRepository, ByteStream, CompletedPart, FileInfo, LocalArtifactRepo,
};
use mlox_core::{Code, Error};

fn p(raw: &str) -> ArtifactPath {
    ArtifactPath::parse(raw).unwrap()
}

fn body(data: &'static [u8]) -> ByteStream {
    futures::stream::once(async move { Ok(Bytes::from_static(data)) }).boxed()
}

fn chunks(parts: Vec<&'static [u8]>) -> ByteStream {
    futures::stream::iter(parts.into_iter().map(|c| Ok(Bytes::from_static(c)))).boxed()
}

fn repo() -> (tempfile::TempDir, LocalArtifactRepo) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("artifacts");
    std::fs::create_dir(&root).unwrap();
    (dir, LocalArtifactRepo::new(root))
}

async fn read(repo: &LocalArtifactRepo, raw: &str) -> Vec<u8> {
    let download = repo.get(&p(raw)).await.unwrap();
    let data: Vec<Bytes> = download.stream.try_collect().await.unwrap();
    let data = data.concat();
    assert_eq!(data.len() as u64, download.size);
    data
}

fn file(name: &str, size: u64) -> FileInfo {
    FileInfo {
        path: name.into(),
        is_dir: false,
        file_size: Some(size),
    }
}

fn dir(name: &str) -> FileInfo {
    FileInfo {
        path: name.into(),
        is_dir: true,
        file_size: None,
    }
}

/// Every name under `root`, relative, sorted; shows leftovers a test did not expect.
fn tree(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            out.push(
                path.strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn assert_code(err: Error, code: Code) {
    assert_eq!(err.code, code, "{err}");
}

#[tokio::test]
async fn put_get_round_trip_and_overwrite() {
    let (_tmp, repo) = repo();
    let written = repo
        .put(&p("a/b/c.txt"), chunks(vec![b"hello ", b"world"]))
        .await
        .unwrap();
    assert_eq!(written, 11);
    assert_eq!(read(&repo, "a/b/c.txt").await, b"hello world");
    repo.put(&p("a/b/c.txt"), body(b"new")).await.unwrap();
    assert_eq!(read(&repo, "a/b/c.txt").await, b"new");
    assert_eq!(tree(repo.root()), ["a", "a/b", "a/b/c.txt"]);
}

#[tokio::test]
async fn empty_upload_makes_an_empty_file() {
    let (_tmp, repo) = repo();
    repo.put(&p("empty"), futures::stream::empty().boxed())
        .await
        .unwrap();
    assert_eq!(read(&repo, "empty").await, b"");
}

#[tokio::test]
async fn missing_files_and_directories_are_not_found() {
    let (_tmp, repo) = repo();
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

#[tokio::test]
async fn listing_follows_mlflow_semantics() {
    let (_tmp, repo) = repo();
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
}

#[tokio::test]
async fn listing_a_missing_root_is_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = LocalArtifactRepo::new(tmp.path().join("not-yet"));
    assert!(repo.list(&ArtifactPath::root()).await.unwrap().is_empty());
    repo.put(&p("f"), body(b"1")).await.unwrap();
    assert_eq!(
        repo.list(&ArtifactPath::root()).await.unwrap(),
        [file("f", 1)]
    );
}

#[tokio::test]
async fn delete_files_trees_and_nothing() {
    let (_tmp, repo) = repo();
    repo.put(&p("r/a.txt"), body(b"a")).await.unwrap();
    repo.put(&p("r/d/e/f.txt"), body(b"f")).await.unwrap();
    repo.delete(&p("r/a.txt")).await.unwrap();
    assert_eq!(repo.list(&p("r")).await.unwrap(), [dir("d")]);
    repo.delete(&p("r/d")).await.unwrap();
    assert!(repo.list(&p("r")).await.unwrap().is_empty());
    repo.delete(&p("r/missing")).await.unwrap();
    repo.delete(&p("nothing/here")).await.unwrap();
    assert_code(
        repo.delete(&ArtifactPath::root()).await.unwrap_err(),
        Code::InvalidParameterValue,
    );
    assert_eq!(tree(repo.root()), ["r"]);
}

#[tokio::test]
async fn writes_that_collide_with_the_tree_are_refused() {
    let (_tmp, repo) = repo();
    repo.put(&p("d/f.txt"), body(b"x")).await.unwrap();
    assert_code(
        repo.put(&p("d"), body(b"x")).await.unwrap_err(),
        Code::InvalidParameterValue,
    );
    assert_code(
        repo.put(&p("d/f.txt/g"), body(b"x")).await.unwrap_err(),
        Code::InvalidParameterValue,
    );
    assert_code(
        repo.put(&ArtifactPath::root(), body(b"x"))
            .await
            .unwrap_err(),
        Code::InvalidParameterValue,
    );
    assert_eq!(tree(repo.root()), ["d", "d/f.txt"]);
}

#[tokio::test]
async fn failed_upload_leaves_nothing_and_keeps_the_old_file() {
    let (_tmp, repo) = repo();
    repo.put(&p("keep.txt"), body(b"old")).await.unwrap();
    let failing: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(Error::bad_request("connection reset")),
    ])
    .boxed();
    let err = repo.put(&p("keep.txt"), failing).await.unwrap_err();
    assert_eq!(err, Error::bad_request("connection reset"));
    assert_eq!(read(&repo, "keep.txt").await, b"old");
    assert_eq!(tree(repo.root()), ["keep.txt"]);
}

#[tokio::test]
async fn abandoned_upload_future_removes_its_temp_file() {
    let (_tmp, repo) = repo();
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
    assert_eq!(tree(repo.root()), ["d"]);
}

#[tokio::test]
async fn reserved_names_are_not_addressable() {
    let (_tmp, repo) = repo();
    let created = repo.create_multipart(&p("x/big.bin"), 2).await.unwrap();
    assert!(created.presigned.is_none());
    for raw in [
        ".mlox-mpu",
        ".mlox-mpu/whatever",
        "a/.mlox-tmp-1",
        ".mlox-x",
    ] {
        let path = p(raw);
        assert_code(
            repo.get(&path).await.unwrap_err(),
            Code::InvalidParameterValue,
        );
        assert_code(
            repo.list(&path).await.unwrap_err(),
            Code::InvalidParameterValue,
        );
        assert_code(
            repo.put(&path, body(b"x")).await.unwrap_err(),
            Code::InvalidParameterValue,
        );
        assert_code(
            repo.delete(&path).await.unwrap_err(),
            Code::InvalidParameterValue,
        );
    }
    assert!(repo.list(&ArtifactPath::root()).await.unwrap().is_empty());
}

#[cfg(unix)]
mod links {
    use super::*;
    use std::os::unix::fs::symlink;

    #[tokio::test]
    async fn links_inside_the_root_are_never_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
        symlink(&outside, root.join("escape")).unwrap();
        symlink(outside.join("secret.txt"), root.join("secret-link.txt")).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        symlink("../escape", root.join("real/up")).unwrap();
        let repo = LocalArtifactRepo::new(&root);

        for raw in ["escape/secret.txt", "secret-link.txt", "real/up/secret.txt"] {
            let path = p(raw);
            assert_code(
                repo.get(&path).await.unwrap_err(),
                Code::InvalidParameterValue,
            );
            assert_code(
                repo.delete(&path).await.unwrap_err(),
                Code::InvalidParameterValue,
            );
            assert_code(
                repo.put(&path, body(b"pwned")).await.unwrap_err(),
                Code::InvalidParameterValue,
            );
        }
        for raw in ["escape", "escape/", "real/up"] {
            assert_code(
                repo.list(&p(raw)).await.unwrap_err(),
                Code::InvalidParameterValue,
            );
        }
        assert_code(
            repo.put(&p("escape/new.txt"), body(b"x"))
                .await
                .unwrap_err(),
            Code::InvalidParameterValue,
        );
        assert_code(
            repo.create_multipart(&p("escape/big.bin"), 1)
                .await
                .unwrap_err(),
            Code::InvalidParameterValue,
        );
        // Links are invisible in listings, since they cannot be fetched.
        assert_eq!(
            repo.list(&ArtifactPath::root()).await.unwrap(),
            [dir("real")]
        );
        assert!(repo.list(&p("real")).await.unwrap().is_empty());
        assert_eq!(tree(&outside), ["secret.txt"]);
        assert_eq!(
            std::fs::read(outside.join("secret.txt")).unwrap(),
            b"secret"
        );
    }

    #[tokio::test]
    async fn a_linked_root_is_allowed() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real-root");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, tmp.path().join("root")).unwrap();
        let repo = LocalArtifactRepo::new(tmp.path().join("root"));
        repo.put(&p("a/b.txt"), body(b"ok")).await.unwrap();
        assert_eq!(read(&repo, "a/b.txt").await, b"ok");
        assert_eq!(std::fs::read(real.join("a/b.txt")).unwrap(), b"ok");
    }
}

mod multipart {
    use super::*;

    fn part(n: u32, etag: Option<&str>) -> CompletedPart {
        CompletedPart {
            part_number: n,
            etag: etag.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn parts_in_any_order_join_in_part_order() {
        let (_tmp, repo) = repo();
        let path = p("run/artifacts/big.bin");
        assert!(repo.supports_multipart());
        let id = repo.create_multipart(&path, 3).await.unwrap().upload_id;
        let e3 = repo
            .upload_part(&path, &id, 3, body(b"three"))
            .await
            .unwrap();
        let e1 = repo
            .upload_part(&path, &id, 1, chunks(vec![b"on", b"e-"]))
            .await
            .unwrap();
        let e2 = repo
            .upload_part(&path, &id, 2, body(b"two-"))
            .await
            .unwrap();
        // ETags are the parts' MD5, as object stores give them.
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
            .upload_part(&path, &id, 1, chunks(vec![b"on", b"e-"]))
            .await
            .unwrap();
        let parts = [
            part(1, Some(&e1)),
            part(2, Some(&format!("\"{e2}\""))),
            part(3, Some(&e3)),
        ];
        repo.complete_multipart(&path, &id, &parts).await.unwrap();
        assert_eq!(read(&repo, "run/artifacts/big.bin").await, b"one-two-three");
        // The staging area is gone and never visible.
        assert_eq!(
            repo.list(&ArtifactPath::root()).await.unwrap(),
            [dir("run")]
        );
        assert_code(
            repo.complete_multipart(&path, &id, &parts)
                .await
                .unwrap_err(),
            Code::ResourceDoesNotExist,
        );
    }

    #[tokio::test]
    async fn without_etags_the_latest_upload_of_a_part_wins() {
        let (_tmp, repo) = repo();
        let path = p("f.bin");
        let id = repo.create_multipart(&path, 2).await.unwrap().upload_id;
        repo.upload_part(&path, &id, 1, body(b"first"))
            .await
            .unwrap();
        repo.upload_part(&path, &id, 1, body(b"AB")).await.unwrap();
        repo.upload_part(&path, &id, 2, body(b"C")).await.unwrap();
        repo.complete_multipart(&path, &id, &[part(1, None), part(2, None)])
            .await
            .unwrap();
        assert_eq!(read(&repo, "f.bin").await, b"ABC");
    }

    #[tokio::test]
    async fn bad_completions_are_refused() {
        let (_tmp, repo) = repo();
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
            repo.complete_multipart(&p("other.bin"), &id, &[part(1, None)])
                .await
                .unwrap_err(),
            Code::InvalidParameterValue,
        );
        assert_code(
            repo.upload_part(&path, &id, 3, body(b"x"))
                .await
                .unwrap_err(),
            Code::InvalidParameterValue,
        );
        assert_code(
            repo.upload_part(&path, &id, 0, body(b"x"))
                .await
                .unwrap_err(),
            Code::InvalidParameterValue,
        );
        assert!(repo.get(&path).await.is_err());
        repo.complete_multipart(&path, &id, &[part(1, Some(&e1))])
            .await
            .unwrap();
        assert_eq!(read(&repo, "f.bin").await, b"a");
    }

    #[tokio::test]
    async fn upload_ids_are_checked() {
        let (_tmp, repo) = repo();
        let path = p("f.bin");
        for id in ["../../etc", "", "not-a-uuid", "%2e%2e"] {
            assert_code(
                repo.upload_part(&path, id, 1, body(b"x"))
                    .await
                    .unwrap_err(),
                Code::InvalidParameterValue,
            );
            assert_code(
                repo.abort_multipart(&path, id).await.unwrap_err(),
                Code::InvalidParameterValue,
            );
        }
        let unknown = "0123456789abcdef0123456789abcdef";
        assert_code(
            repo.upload_part(&path, unknown, 1, body(b"x"))
                .await
                .unwrap_err(),
            Code::ResourceDoesNotExist,
        );
        repo.abort_multipart(&path, unknown).await.unwrap();
    }

    #[tokio::test]
    async fn abort_drops_the_parts() {
        let (_tmp, repo) = repo();
        let path = p("f.bin");
        let id = repo.create_multipart(&path, 1).await.unwrap().upload_id;
        repo.upload_part(&path, &id, 1, body(b"a")).await.unwrap();
        assert_code(
            repo.abort_multipart(&p("g.bin"), &id).await.unwrap_err(),
            Code::InvalidParameterValue,
        );
        repo.abort_multipart(&path, &id).await.unwrap();
        repo.abort_multipart(&path, &id).await.unwrap();
        assert_code(
            repo.upload_part(&path, &id, 1, body(b"a"))
                .await
                .unwrap_err(),
            Code::ResourceDoesNotExist,
        );
        assert_eq!(tree(repo.root()), [".mlox-mpu"]);
    }

    #[tokio::test]
    async fn part_counts_and_targets_are_checked_up_front() {
        let (_tmp, repo) = repo();
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
        repo.create_multipart(&p("f.bin"), 10_000).await.unwrap();
    }

    #[tokio::test]
    async fn stale_uploads_are_purged() {
        let (_tmp, repo) = repo();
        assert_eq!(repo.purge_stale_uploads(Duration::ZERO).await.unwrap(), 0);
        let path = p("f.bin");
        let id = repo.create_multipart(&path, 1).await.unwrap().upload_id;
        assert_eq!(
            repo.purge_stale_uploads(Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        assert_eq!(repo.purge_stale_uploads(Duration::ZERO).await.unwrap(), 1);
        assert_code(
            repo.upload_part(&path, &id, 1, body(b"a"))
                .await
                .unwrap_err(),
            Code::ResourceDoesNotExist,
        );
    }
}

#[tokio::test]
async fn large_uploads_stream_through() {
    let (_tmp, repo) = repo();
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
