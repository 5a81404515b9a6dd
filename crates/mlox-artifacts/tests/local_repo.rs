//! Behaviour of the local-filesystem artifact repository through its public trait: the shared
//! conformance suite, plus what only a filesystem has (links, reserved names, leftovers).

// Helpers outside `#[test]` functions panic too; in a test that is the failure report.
#![allow(clippy::unwrap_used)]

mod conformance;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use conformance::{assert_code, body, dir, file, p, part, read};
use futures::StreamExt;
use mlox_artifacts::{ArtifactPath, ArtifactRepository, ByteStream, LocalArtifactRepo};
use mlox_core::{Code, Error};

fn repo() -> (tempfile::TempDir, LocalArtifactRepo) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("artifacts");
    std::fs::create_dir(&root).unwrap();
    (dir, LocalArtifactRepo::new(root))
}

async fn fixture() -> conformance::Fixture {
    let (tmp, repo) = repo();
    Some((Box::new(tmp), Arc::new(repo)))
}

mod suite {
    use super::fixture;
    crate::conformance::conformance_tests!(fixture);
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

#[tokio::test]
async fn writes_leave_only_the_file_behind() {
    let (_tmp, repo) = repo();
    repo.put(&p("a/b/c.txt"), body(b"one")).await.unwrap();
    repo.put(&p("a/b/c.txt"), body(b"two")).await.unwrap();
    assert_eq!(tree(repo.root()), ["a", "a/b", "a/b/c.txt"]);
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
async fn failed_upload_leaves_no_temporary_file() {
    let (_tmp, repo) = repo();
    repo.put(&p("keep.txt"), body(b"old")).await.unwrap();
    let failing: ByteStream = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(Error::bad_request("connection reset")),
    ])
    .boxed();
    repo.put(&p("keep.txt"), failing).await.unwrap_err();
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
    async fn unknown_uploads_are_not_found_and_aborts_leave_no_parts() {
        let (_tmp, repo) = repo();
        let path = p("f.bin");
        let unknown = "0123456789abcdef0123456789abcdef";
        assert_code(
            repo.upload_part(&path, unknown, 1, body(b"x"))
                .await
                .unwrap_err(),
            Code::ResourceDoesNotExist,
        );
        repo.abort_multipart(&path, unknown).await.unwrap();
        let id = repo.create_multipart(&path, 1).await.unwrap().upload_id;
        repo.upload_part(&path, &id, 1, body(b"a")).await.unwrap();
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
