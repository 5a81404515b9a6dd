//! Model URIs resolved and downloaded from a real mlox tracking server (its registry, logged
//! models and artifact proxy, listening on a local port), the way `mlox serve` fetches models.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use mlox_artifacts::{ArtifactPath, ArtifactRepository, LocalArtifactRepo};
use mlox_core::Code;
use mlox_fetch::{FetchConfig, ModelFetcher};
use mlox_store::{CreateRun, NewModelVersion, SqlStore, StoreOptions};
use mlox_tracking::{AppState, ServerSettings};

struct Registry {
    _dir: tempfile::TempDir,
    url: String,
    run_id: String,
    model_id: String,
    server: tokio::task::JoinHandle<()>,
}

async fn put(repo: &LocalArtifactRepo, path: &str, body: &str) {
    let body = body.to_string();
    let stream = futures::stream::once(async move { Ok(bytes::Bytes::from(body)) });
    repo.put(&ArtifactPath::parse(path).unwrap(), Box::pin(stream))
        .await
        .unwrap();
}

/// A tracking server holding one run with a model under `model/`, one logged model `lm`
/// from that run, and a registered model `wine`: version 1 from `runs:/<run>/model` in
/// Production, version 2 from the logged model with alias `champion`.
async fn registry() -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(StoreOptions {
        uri: format!("sqlite:///{}/t.db", dir.path().display()),
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 4,
    })
    .await
    .unwrap();
    let artifacts = LocalArtifactRepo::create(dir.path().join("artifacts"))
        .await
        .unwrap();
    let exp = store.create_experiment("fetch", None, &[]).await.unwrap();
    let run = store
        .create_run(CreateRun {
            experiment_id: Some(exp.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    let run_id = run.info.run_id.clone();
    put(
        &artifacts,
        &format!("{exp}/{run_id}/artifacts/model/MLmodel"),
        "flavors: {run: {}}\n",
    )
    .await;
    put(
        &artifacts,
        &format!("{exp}/{run_id}/artifacts/model/sub dir/weights.txt"),
        "1 2 3",
    )
    .await;
    let lm = store
        .create_logged_model(&exp, Some("lm"), None, Some(&run_id), &[], &[])
        .await
        .unwrap();
    let model_id = lm.info.model_id.clone();
    let lm_root = lm
        .info
        .artifact_uri
        .trim_start_matches("mlflow-artifacts:/")
        .to_string();
    put(
        &artifacts,
        &format!("{lm_root}/MLmodel"),
        "flavors: {logged: {}}\n",
    )
    .await;

    store
        .create_registered_model("wine", &[], None)
        .await
        .unwrap();
    for (source, from_model) in [
        (format!("runs:/{run_id}/model"), None),
        (format!("models:/{model_id}"), Some(model_id.clone())),
    ] {
        store
            .create_model_version(NewModelVersion {
                name: "wine".into(),
                source,
                run_id: Some(run_id.clone()),
                model_id: from_model,
                tags: vec![],
                run_link: None,
                description: None,
            })
            .await
            .unwrap();
    }
    store
        .transition_model_version_stage("wine", "1", "Production", false)
        .await
        .unwrap();
    store
        .set_registered_model_alias("wine", "champion", "2")
        .await
        .unwrap();

    let app = mlox_tracking::router(AppState {
        store,
        settings: Arc::new(ServerSettings {
            serve_artifacts: true,
            api_version: "3.17.2".into(),
            store_type: "SqlStore".into(),
            webhook_policy: mlox_webhooks::UrlPolicy::default(),
            artifact_host_policy: Default::default(),
        }),
        artifacts: mlox_tracking::ArtifactLocations::default(),
    })
    .merge(mlox_tracking::artifacts::router(Arc::new(artifacts)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Registry {
        _dir: dir,
        url,
        run_id,
        model_id,
        server,
    }
}

/// Fetches a model URI given as text, as `mlox serve -m` receives it.
async fn fetch(f: &ModelFetcher, uri: &str) -> mlox_core::Result<mlox_fetch::FetchedModel> {
    f.fetch(&mlox_mlmodel::ModelUri::parse(uri)?).await
}

fn fetcher(tracking_uri: Option<&str>, cache: &Path) -> ModelFetcher {
    ModelFetcher::new(FetchConfig {
        tracking_uri: tracking_uri.map(str::to_string),
        token: None,
        basic_auth: None,
        cache_dir: cache.to_path_buf(),
    })
    .unwrap()
}

fn mlmodel(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("MLmodel")).unwrap()
}

#[tokio::test]
async fn every_registry_and_run_uri_downloads_the_model_it_names() {
    let r = registry().await;
    let cache = tempfile::tempdir().unwrap();
    let f = fetcher(Some(&r.url), cache.path());

    let from_run = fetch(&f, &format!("runs:/{}/model", r.run_id))
        .await
        .unwrap();
    assert_eq!(mlmodel(&from_run.dir), "flavors: {run: {}}\n");
    assert_eq!(
        std::fs::read_to_string(from_run.dir.join("sub dir/weights.txt")).unwrap(),
        "1 2 3",
        "nested files and names with spaces come along"
    );
    assert!(
        from_run.location.ends_with("/artifacts/model"),
        "{}",
        from_run.location
    );

    // A run path that names a logged model of the run resolves to that model (MLflow 3).
    let logged = fetch(&f, &format!("runs:/{}/lm", r.run_id)).await.unwrap();
    assert_eq!(mlmodel(&logged.dir), "flavors: {logged: {}}\n");

    for (uri, want) in [
        ("models:/wine/1", "run"),
        ("models:/wine/production", "run"),
        ("models:/wine@champion", "logged"),
        ("models:/wine/latest", "logged"),
    ] {
        let got = fetch(&f, uri).await.unwrap();
        assert_eq!(
            mlmodel(&got.dir),
            format!("flavors: {{{want}: {{}}}}\n"),
            "{uri}"
        );
    }
    let by_id = fetch(&f, &format!("models:/{}", r.model_id)).await.unwrap();
    assert_eq!(by_id.dir, logged.dir, "one location, one cache entry");
    r.server.abort();
}

#[tokio::test]
async fn a_downloaded_model_is_served_from_the_cache_without_the_server() {
    let r = registry().await;
    let cache = tempfile::tempdir().unwrap();
    let f = fetcher(Some(&r.url), cache.path());
    let first = fetch(&f, "models:/wine/1").await.unwrap();
    r.server.abort();
    let _ = r.server.await;
    let again = fetch(&f, &first.location).await.unwrap();
    assert_eq!(again.dir, first.dir);
    // Nothing half-written is left beside the published model.
    let leftovers: Vec<_> = std::fs::read_dir(cache.path().join("models"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn unresolvable_uris_fail_with_the_reason() {
    let r = registry().await;
    let cache = tempfile::tempdir().unwrap();
    let f = fetcher(Some(&r.url), cache.path());

    let e = fetch(&f, "models:/nope/1").await.unwrap_err();
    assert_eq!(e.code, Code::ResourceDoesNotExist, "{e:?}");
    assert!(e.message.contains("nope"), "{}", e.message);

    // The server's own answer is passed on (MLflow calls a missing alias a bad parameter).
    let e = fetch(&f, "models:/wine@missing").await.unwrap_err();
    assert_eq!(e.code, Code::InvalidParameterValue, "{e:?}");
    assert!(
        e.message.contains("alias missing not found"),
        "{}",
        e.message
    );

    let e = fetch(&f, "models:/wine/Staging").await.unwrap_err();
    assert!(e.message.contains("stage 'Staging'"), "{}", e.message);

    let e = fetch(&f, &format!("runs:/{}/missing", r.run_id))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::ResourceDoesNotExist, "{e:?}");
    assert!(e.message.contains("no MLmodel"), "{}", e.message);

    let e = fetch(&f, "models:/wine").await.unwrap_err();
    assert_eq!(e.code, Code::InvalidParameterValue);

    let offline = fetcher(None, cache.path());
    let e = fetch(&offline, "models:/wine/1").await.unwrap_err();
    assert!(e.message.contains("MLFLOW_TRACKING_URI"), "{}", e.message);

    let gone = fetcher(Some("http://127.0.0.1:9"), cache.path());
    let e = fetch(&gone, "models:/wine/1").await.unwrap_err();
    assert_eq!(e.code, Code::TemporarilyUnavailable, "{e:?}");
    r.server.abort();
}

#[tokio::test]
async fn local_model_directories_are_used_in_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("MLmodel"), "flavors: {local: {}}\n").unwrap();
    let f = fetcher(None, dir.path());
    let got = fetch(&f, dir.path().to_str().unwrap()).await.unwrap();
    assert_eq!(got.dir, dir.path());
    let got = fetch(&f, &format!("file://{}", dir.path().display()))
        .await
        .unwrap();
    assert_eq!(got.dir, dir.path());
    let e = fetch(&f, "/definitely/not/here").await.unwrap_err();
    assert_eq!(e.code, Code::ResourceDoesNotExist);
}
