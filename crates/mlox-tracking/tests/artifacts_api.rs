//! The proxied artifact API end to end over a local artifact root, driven as MLflow's client
//! drives it.

// Helpers outside `#[test]` functions panic too; in a test that is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use futures::StreamExt;
use http_body_util::BodyExt;
use mlox_artifacts::{ArtifactPath, ArtifactRepository, ByteStream, Download, FileInfo};
use mlox_artifacts::{LocalArtifactRepo, async_trait};
use mlox_tracking::artifacts::{ArtifactsConfig, router, router_with_config};
use serde_json::{Value, json};
use support::Reply;
use tower::ServiceExt;

const API: &str = "/api/2.0/mlflow-artifacts";

struct Fixture {
    _tmp: tempfile::TempDir,
    /// The directory holding the artifact root; nothing but the root may ever appear here.
    parent: PathBuf,
    root: PathBuf,
    app: Router,
}

fn fixture() -> Fixture {
    fixture_with(ArtifactsConfig::default())
}

fn fixture_with(config: ArtifactsConfig) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path().join("srv");
    let root = parent.join("artifacts");
    std::fs::create_dir_all(&root).unwrap();
    let repo: Arc<dyn ArtifactRepository> = Arc::new(LocalArtifactRepo::new(&root));
    let app = router_with_config(repo, config);
    Fixture {
        _tmp: tmp,
        parent,
        root,
        app,
    }
}

impl Fixture {
    async fn send(&self, method: Method, uri: &str, body: Body) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::HOST, "mlflow.test:5000")
            .body(body)
            .unwrap();
        support::send(&self.app, request).await
    }

    async fn put(&self, path: &str, data: impl Into<Body>) -> Reply {
        self.send(Method::PUT, &format!("{API}/artifacts/{path}"), data.into())
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(
            Method::GET,
            &format!("{API}/artifacts/{path}"),
            Body::empty(),
        )
        .await
    }

    async fn list(&self, query: &str) -> Reply {
        self.send(
            Method::GET,
            &format!("{API}/artifacts{query}"),
            Body::empty(),
        )
        .await
    }

    async fn post(&self, uri: &str, body: Value) -> Reply {
        self.send(Method::POST, uri, Body::from(body.to_string()))
            .await
    }

    /// Every name under the root's parent, to prove nothing was written outside the root.
    fn outside_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn ok_empty(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json(), json!({}));
}

#[tokio::test]
async fn upload_list_download_round_trip() {
    let fx = fixture();
    ok_empty(&fx.put("1/run/artifacts/x.txt", "123456789").await);
    ok_empty(
        &fx.put(
            "1/run/artifacts/sub/plot.png",
            vec![0x89u8, b'P', b'N', b'G'],
        )
        .await,
    );
    ok_empty(
        &fx.put("1/run/artifacts/model/MLmodel", "flavors: {}\n")
            .await,
    );

    let listing = fx.list("?path=1%2Frun%2Fartifacts").await;
    assert_eq!(listing.status, StatusCode::OK);
    assert_eq!(
        listing.json(),
        json!({"files": [
            {"path": "model", "is_dir": true},
            {"path": "sub", "is_dir": true},
            {"path": "x.txt", "is_dir": false, "file_size": 9},
        ]})
    );
    assert_eq!(
        fx.list("?path=1/run/artifacts/sub").await.json(),
        json!({"files": [{"path": "plot.png", "is_dir": false, "file_size": 4}]})
    );

    let text = fx.get("1/run/artifacts/x.txt").await;
    assert_eq!(text.status, StatusCode::OK);
    assert_eq!(&text.body[..], b"123456789");
    assert_eq!(text.header(header::CONTENT_TYPE), "text/plain");
    assert_eq!(text.header(header::CONTENT_LENGTH), "9");
    assert_eq!(
        text.header(header::CONTENT_DISPOSITION),
        "attachment; filename=x.txt"
    );
    assert_eq!(text.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    let png = fx.get("1/run/artifacts/sub/plot.png").await;
    assert_eq!(png.header(header::CONTENT_TYPE), "image/png");
    assert_eq!(&png.body[..], [0x89u8, b'P', b'N', b'G']);
    let mlmodel = fx.get("1/run/artifacts/model/MLmodel").await;
    assert_eq!(mlmodel.header(header::CONTENT_TYPE), "text/plain");

    // Overwrites replace the content.
    ok_empty(&fx.put("1/run/artifacts/x.txt", "new").await);
    assert_eq!(&fx.get("1/run/artifacts/x.txt").await.body[..], b"new");
    assert_eq!(
        std::fs::read(fx.root.join("1/run/artifacts/x.txt")).unwrap(),
        b"new"
    );
}

#[tokio::test]
async fn listing_a_file_or_a_missing_path_is_empty() {
    let fx = fixture();
    ok_empty(&fx.put("a/b/c.txt", "c").await);
    for query in ["?path=a/b/c.txt", "?path=missing", "?path=a/b/c.txt/deeper"] {
        let reply = fx.list(query).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}");
        assert_eq!(reply.json(), json!({}), "{query}");
    }
    for query in ["", "?path=", "?other=1"] {
        assert_eq!(
            fx.list(query).await.json(),
            json!({"files": [{"path": "a", "is_dir": true}]}),
            "{query:?}"
        );
    }
    // MLflow's client addresses directories with a trailing slash at times.
    assert_eq!(
        fx.list("?path=a/").await.json(),
        json!({"files": [{"path": "b", "is_dir": true}]})
    );
}

#[tokio::test]
async fn names_with_spaces_and_unicode_round_trip() {
    let fx = fixture();
    ok_empty(&fx.put("r/my%20file%20%C3%BC.txt", "u").await);
    assert!(fx.root.join("r/my file ü.txt").is_file());
    assert_eq!(
        fx.list("?path=r").await.json(),
        json!({"files": [{"path": "my file ü.txt", "is_dir": false, "file_size": 1}]})
    );
    let reply = fx.get("r/my%20file%20%C3%BC.txt").await;
    assert_eq!(&reply.body[..], b"u");
    assert_eq!(
        reply.header(header::CONTENT_DISPOSITION),
        "attachment; filename=\"my file u.txt\"; filename*=UTF-8''my%20file%20%C3%BC.txt"
    );
}

#[tokio::test]
async fn missing_artifacts_and_directories_are_404() {
    let fx = fixture();
    ok_empty(&fx.put("1/run/artifacts/x.txt", "x").await);
    let reply = fx.get("1/run/artifacts/model").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "No such artifact: '1/run/artifacts/model'"
    }
    "#);
    let reply = fx.get("1/run").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "No such artifact: '1/run'"
    }
    "#);
}

#[tokio::test]
async fn delete_files_and_trees() {
    let fx = fixture();
    ok_empty(&fx.put("1/run/artifacts/a.txt", "a").await);
    ok_empty(&fx.put("1/run/artifacts/d/e.txt", "e").await);
    ok_empty(
        &fx.send(
            Method::DELETE,
            &format!("{API}/artifacts/1/run/artifacts/a.txt"),
            Body::empty(),
        )
        .await,
    );
    assert_eq!(
        fx.get("1/run/artifacts/a.txt").await.status,
        StatusCode::NOT_FOUND
    );
    // The client deletes a run's artifacts by addressing the directory with a trailing slash.
    ok_empty(
        &fx.send(
            Method::DELETE,
            &format!("{API}/artifacts/1/run/artifacts/"),
            Body::empty(),
        )
        .await,
    );
    assert_eq!(fx.list("?path=1/run").await.json(), json!({}));
    ok_empty(
        &fx.send(
            Method::DELETE,
            &format!("{API}/artifacts/never/was"),
            Body::empty(),
        )
        .await,
    );
}

#[tokio::test]
async fn ajax_prefix_serves_the_same_routes() {
    let fx = fixture();
    ok_empty(
        &fx.send(
            Method::PUT,
            "/ajax-api/2.0/mlflow-artifacts/artifacts/z.txt",
            Body::from("z"),
        )
        .await,
    );
    let reply = fx
        .send(
            Method::GET,
            "/ajax-api/2.0/mlflow-artifacts/artifacts?path=",
            Body::empty(),
        )
        .await;
    assert_eq!(
        reply.json(),
        json!({"files": [{"path": "z.txt", "is_dir": false, "file_size": 1}]})
    );
    assert_eq!(&fx.get("z.txt").await.body[..], b"z");
}

#[tokio::test]
async fn writing_over_a_directory_is_a_client_error() {
    let fx = fixture();
    ok_empty(&fx.put("d/f.txt", "f").await);
    let reply = fx.put("d", "x").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Cannot write artifact 'd': it is a directory"
    }
    "#);
    let reply = fx.put("d/f.txt/g", "x").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Cannot create directory 'd/f.txt': a file exists there"
    }
    "#);
}

const TRAVERSALS: &[&str] = &[
    "..%2f..%2foutside.txt",
    "..%2F..%2Foutside.txt",
    "a/../../outside.txt",
    "a/%2e%2e/%2e%2e/outside.txt",
    "%2e%2e/outside.txt",
    "%2E%2E%2Foutside.txt",
    "%252e%252e/outside.txt",
    "%252e%252e%252foutside.txt",
    "%25252e%25252e%25252foutside.txt",
    "a%5c..%5c..%5coutside.txt",
    "..%5coutside.txt",
    "%2foutside.txt",
    "%2Fetc%2Fpasswd",
    "C:%5coutside.txt",
    "c:outside.txt",
    "file:%2F%2F%2Foutside.txt",
    "a%00b",
    "a%0Ab",
    "a%23b",
    "./x.txt",
    "a/./x.txt",
    "a//x.txt",
    "%C0%AE%C0%AE/outside.txt",
    ".mlox-mpu/x",
];

#[tokio::test]
async fn traversal_attempts_are_400_and_touch_nothing() {
    let fx = fixture();
    ok_empty(&fx.put("inside.txt", "inside").await);
    for attack in TRAVERSALS {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let reply = fx
                .send(
                    method.clone(),
                    &format!("{API}/artifacts/{attack}"),
                    Body::from("pwned"),
                )
                .await;
            assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {attack}");
            assert_eq!(
                reply.json(),
                json!({"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}),
                "{method} {attack}"
            );
        }
        let reply = fx.list(&format!("?path={attack}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "list {attack}");
        let reply = fx
            .post(
                &format!("{API}/mpu/create/{attack}"),
                json!({"path": "/local/big.bin", "num_parts": 1}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "mpu/create {attack}");
    }
    let reply = fx.list("?path=..").await;
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Invalid path"
    }
    "#);
    // A hostile local file name in a multipart request is refused the same way.
    for local in ["..", "/tmp/..", "C:\\x\\..", "%2e%2e", ".mlox-mpu"] {
        let reply = fx
            .post(
                &format!("{API}/mpu/create/dir"),
                json!({"path": local, "num_parts": 1}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{local}");
    }
    assert_eq!(fx.outside_names(), ["artifacts"]);
    assert_eq!(
        fx.list("").await.json(),
        json!({"files": [{"path": "inside.txt", "is_dir": false, "file_size": 6}]})
    );
    assert_eq!(std::fs::read_dir(&fx.root).unwrap().count(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn links_out_of_the_root_are_refused() {
    let fx = fixture();
    let outside = fx.parent.join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(&outside, fx.root.join("link")).unwrap();
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let reply = fx
            .send(
                method.clone(),
                &format!("{API}/artifacts/link/secret.txt"),
                Body::from("x"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method}");
    }
    assert_eq!(fx.list("?path=link").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(fx.list("").await.json(), json!({}));
    assert_eq!(
        std::fs::read(outside.join("secret.txt")).unwrap(),
        b"secret"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

/// Peak resident memory of this process, where the OS tells it.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[tokio::test]
async fn large_uploads_and_downloads_stream() {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 200;
    let fx = fixture();
    let before = peak_rss_bytes();
    // 200 MiB produced on the fly; only one chunk ever exists at a time on this side.
    let body = Body::from_stream(
        futures::stream::iter(0..CHUNKS)
            .map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![(i % 251) as u8; CHUNK]))),
    );
    ok_empty(&fx.put("big/blob.bin", body).await);
    let size = std::fs::metadata(fx.root.join("big/blob.bin"))
        .unwrap()
        .len();
    assert_eq!(size, (CHUNK * CHUNKS) as u64);

    let request = Request::get(format!("{API}/artifacts/big/blob.bin"))
        .body(Body::empty())
        .unwrap();
    let response = fx.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_LENGTH],
        size.to_string().as_str()
    );
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/octet-stream"
    );
    let mut stream = response.into_body().into_data_stream();
    let mut offset = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= CHUNK);
        for (i, byte) in chunk.iter().enumerate() {
            assert_eq!(*byte, (((offset + i) / CHUNK) % 251) as u8);
        }
        offset += chunk.len();
    }
    assert_eq!(offset as u64, size);
    if let (Some(before), Some(after)) = (before, peak_rss_bytes()) {
        let grown = after.saturating_sub(before);
        assert!(
            grown < 100 << 20,
            "peak memory grew by {grown} bytes moving 200 MiB"
        );
    }
}

#[tokio::test]
async fn upload_size_limit_is_enforced_without_trusting_content_length() {
    let fx = fixture_with(ArtifactsConfig {
        max_upload_bytes: Some(1000),
        ..Default::default()
    });
    ok_empty(&fx.put("small.bin", vec![0u8; 1000]).await);
    let reply = fx.put("declared.bin", vec![0u8; 1001]).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Upload exceeds the maximum artifact size of 1000 bytes"
    }
    "#);
    let streamed = Body::from_stream(futures::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 300]))),
    ));
    let reply = fx.put("streamed.bin", streamed).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        fx.list("").await.json(),
        json!({"files": [{"path": "small.bin", "is_dir": false, "file_size": 1000}]})
    );
    assert_eq!(std::fs::read_dir(&fx.root).unwrap().count(), 1);
}

/// The path and query of an absolute URL the server handed out.
fn local_part(url: &str) -> &str {
    let rest = url
        .strip_prefix("http://mlflow.test:5000")
        .unwrap_or_else(|| panic!("{url}"));
    assert!(rest.starts_with(API), "{url}");
    rest
}

#[tokio::test]
async fn multipart_upload_create_parts_complete() {
    let fx = fixture();
    let create = fx
        .post(
            &format!("{API}/mpu/create/5/run/artifacts/data"),
            json!({"path": "/home/me/work/big file.bin", "num_parts": 3}),
        )
        .await;
    assert_eq!(create.status, StatusCode::OK, "{:?}", create.body);
    let created = create.json();
    let upload_id = created["upload_id"].as_str().unwrap().to_owned();
    let credentials = created["credentials"].as_array().unwrap();
    assert_eq!(credentials.len(), 3);
    for (i, credential) in credentials.iter().enumerate() {
        assert_eq!(credential["part_number"], json!(i + 1));
        assert_eq!(credential["headers"], json!({}));
        assert_eq!(
            credential["url"],
            json!(format!(
                "http://mlflow.test:5000{API}/mpu/upload/5/run/artifacts/data/big%20file.bin\
                 ?upload_id={upload_id}&part_number={}",
                i + 1
            ))
        );
    }
    // Parts arrive in parallel, so in any order.
    let mut parts = Vec::new();
    for (i, data) in [(2, "third"), (0, "first-"), (1, "second-")] {
        let url = credentials[i]["url"].as_str().unwrap();
        let reply = fx
            .send(Method::PUT, local_part(url), Body::from(data))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let etag = reply.header(header::ETAG).to_owned();
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() == 34,
            "{etag}"
        );
        parts.push(json!({"part_number": i + 1, "etag": etag, "url": url}));
    }
    parts.sort_by_key(|p| p["part_number"].as_u64());
    // Nothing is visible before completion.
    assert_eq!(fx.list("?path=5/run/artifacts").await.json(), json!({}));
    let complete = fx
        .post(
            &format!("{API}/mpu/complete/5/run/artifacts/data"),
            json!({"path": "/home/me/work/big file.bin", "upload_id": upload_id, "parts": parts}),
        )
        .await;
    ok_empty(&complete);
    let reply = fx.get("5/run/artifacts/data/big%20file.bin").await;
    assert_eq!(&reply.body[..], b"first-second-third");
    assert_eq!(
        fx.list("?path=5/run/artifacts/data").await.json(),
        json!({"files": [{"path": "big file.bin", "is_dir": false, "file_size": 18}]})
    );
    assert_eq!(
        fx.list("").await.json(),
        json!({"files": [{"path": "5", "is_dir": true}]})
    );
}

#[tokio::test]
async fn multipart_abort_and_errors() {
    let fx = fixture();
    let created = fx
        .post(
            &format!("{API}/mpu/create/run"),
            json!({"path": "C:\\data\\big.bin", "num_parts": "2"}),
        )
        .await
        .json();
    let upload_id = created["upload_id"].as_str().unwrap().to_owned();
    let url = created["credentials"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.contains("/mpu/upload/run/big.bin?"), "{url}");
    ok_empty(
        &fx.send(Method::PUT, local_part(&url), Body::from("part"))
            .await,
    );

    // Completing with an ETag that was never answered is refused.
    let reply = fx
        .post(
            &format!("{API}/mpu/complete/run"),
            json!({"path": "big.bin", "upload_id": upload_id, "parts": [
                {"part_number": 1, "etag": "\"00000000000000000000000000000000\""}
            ]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let abort = fx
        .post(
            &format!("{API}/mpu/abort/run"),
            json!({"path": "C:\\data\\big.bin", "upload_id": upload_id}),
        )
        .await;
    ok_empty(&abort);
    let reply = fx
        .send(Method::PUT, local_part(&url), Body::from("late"))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let mut body = reply.json();
    body["message"] = body["message"]
        .as_str()
        .unwrap()
        .replace(&upload_id, "[upload_id]")
        .into();
    insta::assert_json_snapshot!(body, @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "No such multipart upload: '[upload_id]'"
    }
    "#);
}

#[tokio::test]
async fn multipart_request_validation() {
    let fx = fixture();
    let uri = format!("{API}/mpu/create/run");
    let create = |body: Value| fx.post(&uri, body);
    let reply = create(json!({"num_parts": 2})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Missing value for required parameter 'path'. See the API docs for more information about request parameters."
    }
    "#);
    let reply = create(json!({"path": "a.bin", "num_parts": 0})).await;
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "num_parts must be between 1 and 10000, got 0"
    }
    "#);
    let reply = create(json!({"path": "a.bin", "num_parts": "many"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = fx
        .send(
            Method::POST,
            &format!("{API}/mpu/create/run"),
            Body::from("{not json"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error_code"], "INVALID_PARAMETER_VALUE");
    let reply = fx
        .post(
            &format!("{API}/mpu/complete/run"),
            json!({"path": "a.bin", "upload_id": "nope", "parts": []}),
        )
        .await;
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Invalid upload_id: 'nope'"
    }
    "#);
    let reply = fx
        .send(
            Method::PUT,
            &format!("{API}/mpu/upload/run/a.bin?part_number=1"),
            Body::from("x"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = fx
        .send(
            Method::PUT,
            &format!("{API}/mpu/upload/run/a.bin?upload_id=../../x&part_number=1"),
            Body::from("x"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(fx.outside_names(), ["artifacts"]);
}

/// A repository that can do the basics only, like a backend without multipart support.
struct Basic;

#[async_trait]
impl ArtifactRepository for Basic {
    async fn put(&self, _: &ArtifactPath, _: ByteStream) -> mlox_core::Result<u64> {
        Ok(0)
    }
    async fn get(&self, path: &ArtifactPath) -> mlox_core::Result<Download> {
        Err(mlox_core::Error::not_found(format!(
            "No such artifact: '{path}'"
        )))
    }
    async fn list(&self, _: &ArtifactPath) -> mlox_core::Result<Vec<FileInfo>> {
        Ok(Vec::new())
    }
    async fn delete(&self, _: &ArtifactPath) -> mlox_core::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn repositories_without_multipart_make_the_client_fall_back() {
    let app = router(Arc::new(Basic));
    let request = Request::post(format!("{API}/mpu/create/1/run/artifacts"))
        .body(Body::from(
            json!({"path": "/x/big.bin", "num_parts": 3}).to_string(),
        ))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_IMPLEMENTED);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    insta::assert_json_snapshot!(body, @r#"
    {
      "error_code": "NOT_IMPLEMENTED",
      "message": "Multipart upload is not supported for the current artifact repository"
    }
    "#);
}
