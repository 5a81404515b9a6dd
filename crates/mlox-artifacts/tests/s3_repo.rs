//! Behaviour of the S3 artifact repository against a real S3 server (moto): the shared
//! conformance suite, run below a key prefix, plus what only an object store has (streamed
//! multipart uploads, prefixes as directories, keys outside the root, S3's error answers).

// Helpers outside `#[test]` functions panic too; in a test that is the failure report.
#![allow(clippy::unwrap_used)]

mod conformance;
mod moto;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use conformance::{MIN_PART, assert_code, body, dir, file, owned, p, part, pattern, read};
use futures::StreamExt;
use mlox_artifacts::{ArtifactPath, ArtifactRepository, ByteStream, S3ArtifactRepo, S3Config};
use mlox_core::{Code, Error};
use moto::Moto;

fn config(moto: &Moto) -> S3Config {
    S3Config {
        endpoint_url: Some(moto.endpoint()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
        ..S3Config::default()
    }
}

/// A repository below `prefix` in a new bucket, or `None` when moto is unavailable.
async fn setup(prefix: &str) -> Option<(&'static Moto, String, S3ArtifactRepo)> {
    let moto = moto::moto().await?;
    let bucket = moto.bucket();
    let root = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    let repo = S3ArtifactRepo::new(&root, &config(moto)).unwrap();
    Some((moto, bucket, repo))
}

async fn fixture() -> conformance::Fixture {
    let (_, _, repo) = setup("conformance/root").await?;
    Some((Box::new(()), Arc::new(repo)))
}

mod suite {
    use super::fixture;
    crate::conformance::conformance_tests!(fixture);
}

/// Waits for background aborts (they run on the runtime after the request future is gone).
async fn wait_for_no_uploads(moto: &Moto, bucket: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !moto.open_uploads(bucket).is_empty() {
        assert!(
            Instant::now() < deadline,
            "uploads still open: {:?}",
            moto.open_uploads(bucket)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_20_mib_body_streams_up_as_a_multipart_object_and_back() {
    let Some((moto, bucket, repo)) = setup("p").await else {
        return;
    };
    let data = pattern(20 << 20, 9);
    let written = repo
        .put(&p("models/weights.bin"), owned(data.clone()))
        .await
        .unwrap();
    assert_eq!(written, 20 << 20);
    // A multipart object's ETag ends in the part count: 8 + 8 + 4 MiB.
    let etag = moto.etag(&bucket, "p/models/weights.bin");
    assert!(etag.ends_with("-3"), "{etag}");
    let download = repo.get(&p("models/weights.bin")).await.unwrap();
    assert_eq!(download.size, 20 << 20);
    let mut stream = download.stream;
    let mut received = Vec::with_capacity(20 << 20);
    let mut max_chunk = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        max_chunk = usize::max(max_chunk, chunk.len());
        received.extend_from_slice(&chunk);
    }
    assert!(received == data, "downloaded bytes differ");
    assert!(
        max_chunk <= 1 << 20,
        "downloads arrive in bounded chunks, got {max_chunk}"
    );
    assert!(moto.open_uploads(&bucket).is_empty());
}

#[tokio::test]
async fn a_body_of_exactly_one_part_is_a_single_put() {
    let Some((moto, bucket, repo)) = setup("").await else {
        return;
    };
    let data = pattern((8 << 20) - 1, 3);
    repo.put(&p("one.bin"), owned(data.clone())).await.unwrap();
    let etag = moto.etag(&bucket, "one.bin");
    assert!(!etag.contains('-'), "{etag}");
    assert!(read(&repo, "one.bin").await == data);
}

#[tokio::test]
async fn client_multipart_with_two_large_parts_completes() {
    let Some((moto, bucket, repo)) = setup("mpu").await else {
        return;
    };
    let path = p("run/big.bin");
    let id = repo.create_multipart(&path, 2).await.unwrap().upload_id;
    assert_eq!(moto.open_uploads(&bucket).len(), 1);
    let first = pattern(MIN_PART + 11, 1);
    let second = pattern(MIN_PART + (1 << 20), 2);
    let e2 = repo
        .upload_part(&path, &id, 2, owned(second.clone()))
        .await
        .unwrap();
    let e1 = repo
        .upload_part(&path, &id, 1, owned(first.clone()))
        .await
        .unwrap();
    repo.complete_multipart(&path, &id, &[part(1, Some(&e1)), part(2, Some(&e2))])
        .await
        .unwrap();
    assert!(read(&repo, "run/big.bin").await == [first, second].concat());
    assert!(moto.open_uploads(&bucket).is_empty());
    assert_eq!(moto.keys(&bucket, ""), ["mpu/run/big.bin"]);
}

#[tokio::test]
async fn completing_needs_etags_and_s3_sized_parts() {
    let Some((_, _, repo)) = setup("").await else {
        return;
    };
    let path = p("f.bin");
    let id = repo.create_multipart(&path, 2).await.unwrap().upload_id;
    let e1 = repo
        .upload_part(&path, &id, 1, body(b"too small"))
        .await
        .unwrap();
    let e2 = repo
        .upload_part(&path, &id, 2, body(b"last"))
        .await
        .unwrap();
    let err = repo
        .complete_multipart(&path, &id, &[part(1, None), part(2, None)])
        .await
        .unwrap_err();
    assert_code(err.clone(), Code::InvalidParameterValue);
    assert!(err.message.contains("ETag"), "{err}");
    let err = repo
        .complete_multipart(&path, &id, &[part(1, Some(&e1)), part(2, Some(&e2))])
        .await
        .unwrap_err();
    assert_code(err.clone(), Code::InvalidParameterValue);
    assert!(err.message.contains("EntityTooSmall"), "{err}");
    repo.abort_multipart(&path, &id).await.unwrap();
}

#[tokio::test]
async fn abort_leaves_nothing() {
    let Some((moto, bucket, repo)) = setup("x").await else {
        return;
    };
    let path = p("big.bin");
    let id = repo.create_multipart(&path, 2).await.unwrap().upload_id;
    repo.upload_part(&path, &id, 1, owned(pattern(MIN_PART, 4)))
        .await
        .unwrap();
    repo.abort_multipart(&path, &id).await.unwrap();
    assert!(moto.open_uploads(&bucket).is_empty());
    assert!(moto.keys(&bucket, "").is_empty());
    assert_code(
        repo.get(&path).await.unwrap_err(),
        Code::ResourceDoesNotExist,
    );
}

#[tokio::test]
async fn a_failed_large_upload_is_aborted_and_keeps_the_old_object() {
    let Some((moto, bucket, repo)) = setup("").await else {
        return;
    };
    repo.put(&p("keep.bin"), body(b"old")).await.unwrap();
    let failing: ByteStream = owned(pattern(17 << 20, 5))
        .chain(futures::stream::once(async {
            Err(Error::bad_request("connection reset"))
        }))
        .boxed();
    let err = repo.put(&p("keep.bin"), failing).await.unwrap_err();
    assert_eq!(err, Error::bad_request("connection reset"));
    assert_eq!(read(&repo, "keep.bin").await, b"old");
    assert!(moto.open_uploads(&bucket).is_empty());
    assert_eq!(moto.keys(&bucket, ""), ["keep.bin"]);
}

#[tokio::test]
async fn an_abandoned_large_upload_is_aborted() {
    let Some((moto, bucket, repo)) = setup("").await else {
        return;
    };
    let stalled: ByteStream = owned(pattern(9 << 20, 6))
        .chain(futures::stream::pending())
        .boxed();
    let path = p("stalled.bin");
    let upload = repo.put(&path, stalled);
    assert!(
        tokio::time::timeout(Duration::from_secs(3), upload)
            .await
            .is_err()
    );
    wait_for_no_uploads(moto, &bucket).await;
    assert!(moto.keys(&bucket, "").is_empty());
}

#[tokio::test]
async fn nested_prefixes_list_as_directories() {
    let Some((moto, bucket, repo)) = setup("root").await else {
        return;
    };
    for (raw, data) in [
        ("a/b/c/d.txt", &b"dd"[..]),
        ("a/b/e.txt", b"e"),
        ("a/x.txt", b"xxx"),
        ("a/b2/f", b""),
    ] {
        repo.put(
            &p(raw),
            futures::stream::iter([Ok(Bytes::copy_from_slice(data))]).boxed(),
        )
        .await
        .unwrap();
    }
    // Consoles create zero-byte `dir/` markers; they name the directory, not a file in it.
    moto.put_raw(&bucket, "root/a/b/", "");
    assert_eq!(repo.list(&ArtifactPath::root()).await.unwrap(), [dir("a")]);
    assert_eq!(
        repo.list(&p("a")).await.unwrap(),
        [dir("b"), dir("b2"), file("x.txt", 3)]
    );
    assert_eq!(
        repo.list(&p("a/b")).await.unwrap(),
        [dir("c"), file("e.txt", 1)]
    );
    assert_eq!(repo.list(&p("a/b/c")).await.unwrap(), [file("d.txt", 2)]);
    assert_eq!(repo.list(&p("a/b2")).await.unwrap(), [file("f", 0)]);
    assert!(repo.list(&p("a/b/c/d.txt")).await.unwrap().is_empty());
    assert!(repo.list(&p("a/b/c/d")).await.unwrap().is_empty());
}

#[tokio::test]
async fn deleting_a_prefix_removes_its_tree_and_nothing_else() {
    let Some((moto, bucket, repo)) = setup("root").await else {
        return;
    };
    for i in 0..25 {
        repo.put(&p(&format!("run/d/{}/{i}.txt", i % 4)), body(b"x"))
            .await
            .unwrap();
    }
    repo.put(&p("run/d2/keep.txt"), body(b"k")).await.unwrap();
    repo.put(&p("run/dx"), body(b"k")).await.unwrap();
    repo.delete(&p("run/d")).await.unwrap();
    assert_eq!(
        moto.keys(&bucket, ""),
        ["root/run/d2/keep.txt", "root/run/dx"]
    );
    repo.delete(&p("run/dx")).await.unwrap();
    assert_eq!(moto.keys(&bucket, ""), ["root/run/d2/keep.txt"]);
}

#[tokio::test]
async fn a_prefixed_root_never_sees_keys_outside_it() {
    let Some((moto, bucket, repo)) = setup("some/prefix").await else {
        return;
    };
    for key in [
        "some/prefix",
        "some/prefix-sibling/x.txt",
        "some/prefixed.txt",
        "some/other/y.txt",
        "top.txt",
    ] {
        moto.put_raw(&bucket, key, "outside");
    }
    assert!(repo.list(&ArtifactPath::root()).await.unwrap().is_empty());
    for raw in ["x.txt", "other/y.txt", "top.txt", "prefix"] {
        assert_code(
            repo.get(&p(raw)).await.unwrap_err(),
            Code::ResourceDoesNotExist,
        );
    }
    assert_code(
        repo.get(&ArtifactPath::root()).await.unwrap_err(),
        Code::ResourceDoesNotExist,
    );
    assert_code(
        repo.delete(&ArtifactPath::root()).await.unwrap_err(),
        Code::InvalidParameterValue,
    );
    repo.put(&p("mine/a.txt"), body(b"a")).await.unwrap();
    assert_eq!(
        repo.list(&ArtifactPath::root()).await.unwrap(),
        [dir("mine")]
    );
    repo.delete(&p("mine")).await.unwrap();
    assert_eq!(
        moto.keys(&bucket, ""),
        [
            "some/other/y.txt",
            "some/prefix",
            "some/prefix-sibling/x.txt",
            "some/prefixed.txt",
            "top.txt"
        ]
    );
}

#[tokio::test]
async fn paths_cannot_leave_the_prefix_and_keys_are_verbatim() {
    let Some((moto, bucket, repo)) = setup("jail").await else {
        return;
    };
    for raw in [
        "../x",
        "a/../../x",
        "/x",
        "%2e%2e/x",
        "a/%2e%2e/%2e%2e/x",
        "a\\..\\x",
        "a//x",
    ] {
        assert_code(
            ArtifactPath::parse(raw).unwrap_err(),
            Code::InvalidParameterValue,
        );
    }
    // Odd but legal names are stored exactly as named, never re-encoded into something else.
    for raw in ["..a/x", "a%b/100%", "sp ace/é.txt", "a/.hidden"] {
        repo.put(&p(raw), body(b"v")).await.unwrap();
        assert_eq!(read(&repo, raw).await, b"v");
    }
    assert_eq!(
        moto.keys(&bucket, ""),
        [
            "jail/..a/x",
            "jail/a%b/100%",
            "jail/a/.hidden",
            "jail/sp ace/é.txt"
        ]
    );
}

#[tokio::test]
async fn s3_failures_map_to_mlflow_codes_without_leaking_the_endpoint() {
    let Some(moto) = moto::moto().await else {
        return;
    };
    let missing_bucket = S3ArtifactRepo::new("s3://no-such-bucket-here/p", &config(moto)).unwrap();
    let err = missing_bucket
        .list(&ArtifactPath::root())
        .await
        .unwrap_err();
    assert_code(err.clone(), Code::InternalError);
    assert!(err.message.contains("NoSuchBucket"), "{err}");
    let err = missing_bucket.get(&p("a.txt")).await.unwrap_err();
    assert_code(err.clone(), Code::InternalError);
    assert!(err.message.contains("NoSuchBucket"), "{err}");
    let err = missing_bucket
        .put(&p("a.txt"), body(b"x"))
        .await
        .unwrap_err();
    assert_code(err.clone(), Code::InternalError);

    // Nothing listens on port 1; retries are few and quick, so this fails fast.
    let unreachable = S3ArtifactRepo::new(
        "s3://bucket",
        &S3Config {
            endpoint_url: Some("http://127.0.0.1:1".into()),
            ..config(moto)
        },
    )
    .unwrap();
    let started = Instant::now();
    let err = unreachable.get(&p("a.txt")).await.unwrap_err();
    assert_code(err.clone(), Code::InternalError);
    assert!(err.message.contains("cannot reach S3"), "{err}");
    assert!(!err.message.contains("127.0.0.1"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = unreachable.list(&ArtifactPath::root()).await.unwrap_err();
    assert_code(err, Code::InternalError);
}
