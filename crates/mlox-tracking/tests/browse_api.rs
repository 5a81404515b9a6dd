//! The artifact routes of MLflow's web UI over a real SQLite store: listing and fetching the
//! artifacts of runs, logged models and model versions, whether they sit behind the server's
//! artifact proxy or in a directory of their own, and refusing every path that would leave them.

// Helpers outside `#[test]` functions panic too; in a test that is the failure report.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use mlox_artifacts::{ArtifactRepository, LocalArtifactRepo};
use mlox_store::{SqlStore, StoreOptions};
use mlox_tracking::{AppState, ArtifactLocations, ServerSettings, router};
use serde_json::{Value, json};
use support::Reply;

const API: &str = "/api/2.0/mlflow";
const AJAX: &str = "/ajax-api/2.0/mlflow";

struct Fixture {
    tmp: tempfile::TempDir,
    /// The artifacts destination behind `mlflow-artifacts:` URIs.
    proxy_root: PathBuf,
    app: Router,
}

async fn fixture() -> Fixture {
    fixture_with(true).await
}

async fn fixture_with(serve_artifacts: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let proxy_root = tmp.path().join("proxy");
    std::fs::create_dir_all(&proxy_root).unwrap();
    let store = SqlStore::open(StoreOptions {
        uri: format!("sqlite:///{}/t.db", tmp.path().display()),
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 4,
    })
    .await
    .unwrap();
    let proxy: Option<Arc<dyn ArtifactRepository>> =
        serve_artifacts.then(|| Arc::new(LocalArtifactRepo::new(&proxy_root)) as _);
    let app = router(AppState {
        store,
        settings: Arc::new(ServerSettings {
            serve_artifacts,
            api_version: "3.17.2".into(),
            store_type: "SqlStore".into(),
            webhook_policy: mlox_webhooks::UrlPolicy::default(),
            artifact_host_policy: Default::default(),
        }),
        artifacts: ArtifactLocations::new(proxy),
    });
    Fixture {
        tmp,
        proxy_root,
        app,
    }
}

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

impl Fixture {
    async fn send(&self, method: Method, uri: &str, body: Option<Value>) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        support::send(&self.app, request).await
    }

    async fn get(&self, uri: &str) -> Reply {
        self.send(Method::GET, uri, None).await
    }

    async fn ok(&self, method: Method, uri: &str, body: Value) -> Value {
        let reply = self.send(method, uri, Some(body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
        reply.json()
    }

    async fn experiment(&self, name: &str, artifact_location: Option<&Path>) -> String {
        let mut body = json!({ "name": name });
        if let Some(location) = artifact_location {
            body["artifact_location"] = json!(location.display().to_string());
        }
        let reply = self
            .ok(Method::POST, &format!("{API}/experiments/create"), body)
            .await;
        reply["experiment_id"].as_str().unwrap().to_owned()
    }

    /// A run and the directory its artifacts are stored in.
    async fn run(&self, experiment_id: &str) -> (String, String) {
        let reply = self
            .ok(
                Method::POST,
                &format!("{API}/runs/create"),
                json!({ "experiment_id": experiment_id, "start_time": 1 }),
            )
            .await;
        let info = &reply["run"]["info"];
        (
            info["run_id"].as_str().unwrap().to_owned(),
            info["artifact_uri"].as_str().unwrap().to_owned(),
        )
    }

    /// Where an `mlflow-artifacts:` URI's files are on disk.
    fn proxied_dir(&self, uri: &str) -> PathBuf {
        let path = uri.strip_prefix("mlflow-artifacts:/").unwrap();
        self.proxy_root.join(path)
    }

    /// A run with artifacts behind the proxy: text in a subdirectory, a model directory, a page.
    async fn proxied_run(&self) -> (String, String) {
        let experiment = self.experiment("proxied", None).await;
        let (run_id, uri) = self.run(&experiment).await;
        let dir = self.proxied_dir(&uri);
        write(&dir, "notes/hello.txt", "hello world");
        write(&dir, "config.json", "{\"a\": 1}");
        write(&dir, "model/MLmodel", "flavors: {}\n");
        write(&dir, "model/model.pkl", "\u{1}\u{2}binary");
        write(&dir, "report.html", "<script>alert(1)</script>");
        (run_id, uri)
    }
}

fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error_code"], code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn lists_a_proxied_run_at_its_root() {
    let fx = fixture().await;
    let (run_id, uri) = fx.proxied_run().await;
    let reply = fx
        .get(&format!("{AJAX}/artifacts/list?run_uuid={run_id}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["root_uri"], uri);
    insta::assert_json_snapshot!(body, { ".root_uri" => "[root_uri]" }, @r#"
    {
      "files": [
        {
          "file_size": 8,
          "is_dir": false,
          "path": "config.json"
        },
        {
          "is_dir": true,
          "path": "model"
        },
        {
          "is_dir": true,
          "path": "notes"
        },
        {
          "file_size": 25,
          "is_dir": false,
          "path": "report.html"
        }
      ],
      "root_uri": "[root_uri]"
    }
    "#);
    // Every prefix and either spelling of the run id give the same answer.
    for prefix in [API, AJAX, "/api/3.0/mlflow"] {
        for param in ["run_id", "run_uuid"] {
            let other = fx
                .get(&format!("{prefix}/artifacts/list?{param}={run_id}&path="))
                .await;
            assert_eq!(other.json(), body, "{prefix} {param}");
        }
    }
}

#[tokio::test]
async fn lists_a_subdirectory_with_paths_from_the_run_root() {
    let fx = fixture().await;
    let (run_id, _) = fx.proxied_run().await;
    for path in ["model", "model/"] {
        let reply = fx
            .get(&format!("{API}/artifacts/list?run_id={run_id}&path={path}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        insta::allow_duplicates! {
            insta::assert_json_snapshot!(reply.json()["files"], @r#"
            [
              {
                "file_size": 12,
                "is_dir": false,
                "path": "model/MLmodel"
              },
              {
                "file_size": 8,
                "is_dir": false,
                "path": "model/model.pkl"
              }
            ]
            "#);
        }
    }
    // A file or a missing directory lists as nothing, as MLflow's client expects.
    for path in ["config.json", "absent", "notes/hello.txt"] {
        let reply = fx
            .get(&format!("{API}/artifacts/list?run_id={run_id}&path={path}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json().as_object().unwrap().len(), 1, "{path}");
        assert!(reply.json()["root_uri"].is_string());
    }
}

#[tokio::test]
async fn downloads_with_a_preview_content_type() {
    let fx = fixture().await;
    let (run_id, _) = fx.proxied_run().await;
    let reply = fx
        .get(&format!(
            "/get-artifact?path=notes/hello.txt&run_uuid={run_id}"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "hello world");
    assert_eq!(reply.header(header::CONTENT_TYPE), "text/plain");
    assert_eq!(reply.header(header::CONTENT_LENGTH), "11");
    assert_eq!(reply.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(reply.header(header::CONTENT_SECURITY_POLICY), "sandbox");
    assert_eq!(
        reply.header(header::CONTENT_DISPOSITION),
        "attachment; filename=hello.txt"
    );
    for (path, content_type) in [
        ("model/MLmodel", "text/plain"),
        ("config.json", "text/plain"),
        ("model/model.pkl", "application/octet-stream"),
    ] {
        let reply = fx
            .get(&format!("/get-artifact?path={path}&run_id={run_id}"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        assert_eq!(reply.header(header::CONTENT_TYPE), content_type, "{path}");
    }
}

#[tokio::test]
async fn html_is_served_as_sandboxed_plain_text() {
    let fx = fixture().await;
    let (run_id, _) = fx.proxied_run().await;
    let reply = fx
        .get(&format!("/get-artifact?path=report.html&run_uuid={run_id}"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "<script>alert(1)</script>");
    assert_eq!(reply.header(header::CONTENT_TYPE), "text/plain");
    assert_eq!(reply.header(header::CONTENT_SECURITY_POLICY), "sandbox");
    assert_eq!(reply.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
}

#[tokio::test]
async fn traversal_attempts_are_refused() {
    let fx = fixture().await;
    let (run_id, uri) = fx.proxied_run().await;
    // Something a traversal out of the run's artifacts would reach.
    write(&fx.proxied_dir(&uri), "../../secret.txt", "secret");
    write(fx.tmp.path(), "outside.txt", "outside");
    let model = fx
        .ok(
            Method::POST,
            &format!("{API}/logged-models"),
            json!({ "experiment_id": "1" }),
        )
        .await;
    let model_id = model["model"]["info"]["model_id"].as_str().unwrap();
    for path in [
        "..",
        "../secret.txt",
        "../../secret.txt",
        "..%2F..%2Fsecret.txt",
        "%2e%2e/%2e%2e/secret.txt",
        "%252e%252e/%252e%252e/secret.txt",
        "model/../../../secret.txt",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "..%5C..%5Csecret.txt",
        "model%5CMLmodel",
        "C:%5Cwindows",
        "file:///etc/passwd",
        "a%00b",
    ] {
        for uri in [
            format!("{API}/artifacts/list?run_id={run_id}&path={path}"),
            format!("{AJAX}/artifacts/list?run_uuid={run_id}&path={path}"),
            format!("/get-artifact?run_uuid={run_id}&path={path}"),
            format!(
                "{AJAX}/logged-models/{model_id}/artifacts/directories?artifact_directory_path={path}"
            ),
            format!("{AJAX}/logged-models/{model_id}/artifacts/files?artifact_file_path={path}"),
        ] {
            let reply = fx.get(&uri).await;
            assert_error(&reply, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
            assert_eq!(reply.json()["message"], "Invalid path", "{uri}");
        }
    }
}

#[tokio::test]
async fn unknown_runs_and_missing_files_are_404() {
    let fx = fixture().await;
    let (run_id, _) = fx.proxied_run().await;
    let unknown = "0123456789abcdef0123456789abcdef";
    for uri in [
        format!("{AJAX}/artifacts/list?run_uuid={unknown}"),
        format!("/get-artifact?run_uuid={unknown}&path=x.txt"),
    ] {
        let reply = fx.get(&uri).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
        insta::allow_duplicates! {
            insta::assert_json_snapshot!(reply.json(), @r#"
            {
              "error_code": "RESOURCE_DOES_NOT_EXIST",
              "message": "Run with id=0123456789abcdef0123456789abcdef not found"
            }
            "#);
        }
    }
    let reply = fx
        .get(&format!(
            "/get-artifact?run_uuid={run_id}&path=notes/absent.txt"
        ))
        .await;
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "RESOURCE_DOES_NOT_EXIST",
      "message": "No such artifact: 'notes/absent.txt'"
    }
    "#);
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = fx
        .get(&format!("/get-artifact?run_uuid={run_id}&path=model"))
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let reply = fx.get(&format!("/get-artifact?run_uuid={run_id}")).await;
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Missing value for required parameter 'path'. See the API docs for more information about request parameters."
    }
    "#);
    let reply = fx.get(&format!("{API}/artifacts/list?path=model")).await;
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "INVALID_PARAMETER_VALUE",
      "message": "Missing value for required parameter 'run_id'. See the API docs for more information about request parameters."
    }
    "#);
}

#[tokio::test]
async fn runs_with_their_own_artifact_directory() {
    let fx = fixture().await;
    let location = fx.tmp.path().join("elsewhere");
    let experiment = fx.experiment("local", Some(&location)).await;
    let (run_id, uri) = fx.run(&experiment).await;
    let dir = PathBuf::from(&uri);
    assert!(dir.starts_with(&location), "{uri}");
    // Nothing logged yet: an empty listing, and reading creates no directory.
    let reply = fx
        .get(&format!("{API}/artifacts/list?run_id={run_id}"))
        .await;
    assert_eq!(reply.json(), json!({ "root_uri": uri }));
    assert!(!dir.exists());
    write(&dir, "plots/loss.png", "png");
    let reply = fx
        .get(&format!("{API}/artifacts/list?run_id={run_id}&path=plots"))
        .await;
    assert_eq!(
        reply.json(),
        json!({
            "root_uri": uri,
            "files": [{ "path": "plots/loss.png", "is_dir": false, "file_size": 3 }],
        })
    );
    let reply = fx
        .get(&format!(
            "/get-artifact?run_id={run_id}&path=plots/loss.png"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header(header::CONTENT_TYPE), "image/png");
    assert_eq!(reply.text(), "png");
}

#[tokio::test]
async fn proxied_runs_need_the_proxy() {
    let fx = fixture_with(false).await;
    let experiment = fx.experiment("proxied", None).await;
    let (run_id, _) = fx.run(&experiment).await;
    for uri in [
        format!("{API}/artifacts/list?run_id={run_id}"),
        format!("/get-artifact?run_id={run_id}&path=x.txt"),
    ] {
        let reply = fx.get(&uri).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "INVALID_STATE");
        assert!(
            reply.json()["message"]
                .as_str()
                .unwrap()
                .contains("--no-serve-artifacts")
        );
    }
}

#[tokio::test]
async fn logged_model_artifacts() {
    let fx = fixture().await;
    let experiment = fx.experiment("models", None).await;
    let model = fx
        .ok(
            Method::POST,
            &format!("{API}/logged-models"),
            json!({ "experiment_id": experiment }),
        )
        .await;
    let info = &model["model"]["info"];
    let model_id = info["model_id"].as_str().unwrap();
    let uri = info["artifact_uri"].as_str().unwrap();
    let dir = fx.proxied_dir(uri);
    write(&dir, "MLmodel", "artifact_path: model\n");
    write(&dir, "data/model.skops", "weights");

    let reply = fx
        .get(&format!(
            "{AJAX}/logged-models/{model_id}/artifacts/directories"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json()["root_uri"], uri);
    insta::assert_json_snapshot!(reply.json()["files"], @r#"
    [
      {
        "file_size": 21,
        "is_dir": false,
        "path": "MLmodel"
      },
      {
        "is_dir": true,
        "path": "data"
      }
    ]
    "#);
    let reply = fx
        .get(&format!(
            "{API}/logged-models/{model_id}/artifacts/directories?artifact_directory_path=data"
        ))
        .await;
    assert_eq!(
        reply.json()["files"],
        json!([{ "path": "data/model.skops", "is_dir": false, "file_size": 7 }])
    );

    let reply = fx
        .get(&format!(
            "{AJAX}/logged-models/{model_id}/artifacts/files?artifact_file_path=MLmodel"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "artifact_path: model\n");
    assert_eq!(reply.header(header::CONTENT_TYPE), "text/plain");
    assert_eq!(reply.header(header::CONTENT_SECURITY_POLICY), "sandbox");

    let reply = fx
        .get(&format!("{AJAX}/logged-models/{model_id}/artifacts/files"))
        .await;
    insta::assert_json_snapshot!(reply.json(), @r#"
    {
      "error_code": "BAD_REQUEST",
      "message": "Request must include the \"artifact_file_path\" query parameter."
    }
    "#);
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    for uri in [
        format!("{AJAX}/logged-models/m-absent/artifacts/directories"),
        format!("{AJAX}/logged-models/m-absent/artifacts/files?artifact_file_path=MLmodel"),
    ] {
        let reply = fx.get(&uri).await;
        assert_error(&reply, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    }
}

#[tokio::test]
async fn model_version_artifacts() {
    let fx = fixture().await;
    let (run_id, uri) = fx.proxied_run().await;
    fx.ok(
        Method::POST,
        &format!("{API}/registered-models/create"),
        json!({ "name": "wine" }),
    )
    .await;
    for source in [format!("{uri}/model"), format!("runs:/{run_id}/model")] {
        fx.ok(
            Method::POST,
            &format!("{API}/model-versions/create"),
            json!({ "name": "wine", "source": source, "run_id": run_id }),
        )
        .await;
    }
    for version in ["1", "2"] {
        for prefix in ["", AJAX] {
            let reply = fx
                .get(&format!(
                    "{prefix}/model-versions/get-artifact?path=MLmodel&name=wine&version={version}"
                ))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{version}: {}", reply.text());
            assert_eq!(reply.text(), "flavors: {}\n");
            assert_eq!(reply.header(header::CONTENT_TYPE), "text/plain");
        }
    }
    let reply = fx
        .get("/model-versions/get-artifact?path=../notes/hello.txt&name=wine&version=1")
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
    let reply = fx
        .get("/model-versions/get-artifact?path=MLmodel&name=wine&version=9")
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST");
    let reply = fx
        .get("/model-versions/get-artifact?path=MLmodel&name=wine")
        .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE");
}

#[tokio::test]
async fn no_malformed_query_ever_gets_a_server_error() {
    let fx = fixture().await;
    let (run_id, _) = fx.proxied_run().await;
    for route in ["/get-artifact", "/model-versions/get-artifact"] {
        for query in [
            String::new(),
            "?".into(),
            "?=&&=".into(),
            "?path=%FF%FE&run_id=%FF".into(),
            format!("?run_id={run_id}&path=%FF"),
            format!("?run_uuid={run_id}&path=&path=x"),
            format!("?run_id={run_id}&path={}", "a/".repeat(3000)),
            format!("?run_id={run_id}&path={}", "x".repeat(300)),
            "?name=wine&version=abc&path=MLmodel".into(),
            "?name=&version=&path=".into(),
        ] {
            let uri = format!("{route}{query}");
            let reply = fx.get(&uri).await;
            assert!(
                reply.status.is_client_error(),
                "GET {uri} answered {}: {}",
                reply.status,
                reply.text()
            );
        }
    }
}

#[tokio::test]
async fn the_web_ui_uploads_a_small_file_into_a_run() {
    let fx = fixture().await;
    let experiment = fx.experiment("uploads", None).await;
    let (run_id, uri) = fx.run(&experiment).await;
    let upload = |query: String, body: &'static str| {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("{AJAX}/upload-artifact{query}"))
            .body(Body::from(body))
            .unwrap();
        support::send(&fx.app, request)
    };
    let reply = upload(
        format!("?run_uuid={run_id}&path=dir/test.txt"),
        "hello world",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        std::fs::read_to_string(fx.proxied_dir(&uri).join("dir/test.txt")).unwrap(),
        "hello world"
    );
    let reply = fx
        .get(&format!(
            "/get-artifact?run_uuid={run_id}&path=dir/test.txt"
        ))
        .await;
    assert_eq!(reply.text(), "hello world");

    // Refused in MLflow's order and words.
    for (query, body, message) in [
        (String::new(), "x", "Request must specify run_uuid."),
        (
            format!("?run_uuid={run_id}"),
            "x",
            "Request must specify path.",
        ),
        (
            format!("?run_uuid={run_id}&path="),
            "x",
            "Request must specify path.",
        ),
        (
            format!("?run_uuid={run_id}&path=../test.txt"),
            "x",
            "Invalid path",
        ),
        (
            format!("?run_uuid={run_id}&path=test.txt"),
            "",
            "Request must specify data.",
        ),
    ] {
        let reply = upload(query.clone(), body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.text()
        );
        let json = reply.json();
        assert_eq!(json["error_code"], "INVALID_PARAMETER_VALUE", "{query}");
        assert_eq!(json["message"], message, "{query}");
    }
    let reply = upload("?run_uuid=nope&path=a.txt".into(), "x").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text());
}

#[tokio::test]
async fn an_upload_over_ten_megabytes_is_refused_as_mlflow_refuses_it() {
    let fx = fixture().await;
    let experiment = fx.experiment("big", None).await;
    let (run_id, _) = fx.run(&experiment).await;
    let body = vec![b'x'; 10 * 1024 * 1024 + 1];
    // Without a declared length, the body itself is measured.
    let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(body) });
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!(
            "{AJAX}/upload-artifact?run_uuid={run_id}&path=big.bin"
        ))
        .body(Body::from_stream(stream))
        .unwrap();
    let reply = support::send(&fx.app, request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    assert_eq!(
        reply.json()["message"],
        "Artifact size is too large. Max size is 10MB."
    );
}
