//! `mlox import` against MLflow-shaped SQLite databases built from MLflow 3.17.2's real DDL
//! (tests/fixtures/mlflow-3.17.2-sqlite.sql, dumped from a database MLflow created itself).

// Helpers outside `#[test]` functions panic too; in a test that is the failure report.
#![allow(clippy::unwrap_used)]

use mlox_core::entities::{LoggedModelStatus, RunStatus, ViewType};
use mlox_import::{ImportError, ImportOptions, ImportReport, import};
use mlox_store::{MetricHistoryRequest, NewModelVersion, SqlStore, StoreOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{Row, SqlSafeStr};
use std::path::{Path, PathBuf};

const MLFLOW_DDL: &str = include_str!("fixtures/mlflow-3.17.2-sqlite.sql");
/// `MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY` of the MLflow server the fixture pretends to be, and
/// secrets its `cryptography.fernet` wrote: "whsec-imported" under it, another under a key
/// that is lost.
const FERNET_KEY: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
const SECRET_UNDER_KEY: &str = "gAAAAABrFrKzzRwC45Wur7rTVG8kVIDxhf9xS1IRNe7qFIIwYpWgAQQ6euLs15wGXXWma3PLyPg8-XzmR3Qn_lWYMaWegnAOig==";
const SECRET_UNDER_OTHER_KEY: &str = "gAAAAABrFrKzEV-U8N3TK-7DhSPDGYS6hvdvI7V1kVP9WxaGHEmq0m9VMwhwPnRyx44o4A0_r_VkAKnH2jO2LYUlbGYcEswWtw==";
const R1: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const R2: &str = "11111111111111111111111111111111";
const R3: &str = "22222222222222222222222222222222";
const MODEL: &str = "m-5f2b8a0c1d3e4f5a6b7c8d9e0f1a2b3c";

async fn mlflow_db(path: &Path) -> SqlitePool {
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(MLFLOW_DDL))
        .execute(&pool)
        .await
        .unwrap();
    pool
}

async fn exec(pool: &SqlitePool, statements: &[&str]) {
    for s in statements {
        sqlx::query(sqlx::AssertSqlSafe(*s).into_sql_str())
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
}

/// A small MLflow installation: experiments (one deleted, ids with a gap), runs (one deleted),
/// params, tags, a metric history with a NaN point, a dataset input, a logged model with its
/// params/tags/metrics and run links, a registered model with a live, a deleted and a staged
/// version, tags and an alias, plus a trace (not imported) and webhooks: one plain, one with a
/// secret under the fixture's Fernet key, one deleted and one whose secret was encrypted with
/// another key (left out).
async fn fill(pool: &SqlitePool) {
    exec(pool, &[
        "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES \
         (0, 'Default', 'mlflow-artifacts:/0', 'active', 1000, 1000), \
         (1, 'exp-a', 'mlflow-artifacts:/1', 'active', 2000, 2500), \
         (5, 'exp-gone', '/old/place/5', 'deleted', 3000, 3500)",
        "INSERT INTO experiment_tags (key, value, experiment_id) VALUES ('team', 'vision', 1), ('note', NULL, 1)",
        &format!("INSERT INTO runs (run_uuid, name, source_type, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri, experiment_id, deleted_time) VALUES \
         ('{R1}', 'run-one', 'LOCAL', 'alice', 'FINISHED', 10000, 20000, 'active', 'mlflow-artifacts:/1/{R1}/artifacts', 1, NULL), \
         ('{R2}', 'run-two', 'LOCAL', 'bob', 'FAILED', 11000, 12000, 'deleted', 'mlflow-artifacts:/1/{R2}/artifacts', 1, 13000), \
         ('{R3}', NULL, 'LOCAL', NULL, 'RUNNING', 14000, NULL, 'deleted', '/old/place/5/{R3}/artifacts', 5, NULL)"),
        &format!("INSERT INTO params (key, value, run_uuid) VALUES ('alpha', '0.5', '{R1}'), ('l1', '0.1', '{R1}'), ('alpha', '0.9', '{R2}')"),
        &format!("INSERT INTO tags (key, value, run_uuid) VALUES ('mlflow.runName', 'run-one', '{R1}'), ('mlflow.user', 'alice', '{R1}'), ('empty', NULL, '{R1}'), ('mlflow.parentRunId', '{R1}', '{R2}')"),
        // The loss history ends on a NaN point, stored the way MLflow stores it.
        &format!("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES \
         ('loss', 0.9, 100, '{R1}', 0, 0), ('loss', 0.7, 200, '{R1}', 1, 0), ('loss', 0.5, 300, '{R1}', 2, 0), \
         ('loss', 0, 400, '{R1}', 3, 1), ('acc', 0.8, 150, '{R1}', 0, 0), ('acc', 1.7976931348623157e308, 160, '{R1}', 1, 0), \
         ('loss', 2.5, 500, '{R2}', 0, 0)"),
        &format!("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES \
         ('loss', 0, 400, 3, 1, '{R1}'), ('acc', 1.7976931348623157e308, 160, 1, 0, '{R1}'), ('loss', 2.5, 500, 0, 0, '{R2}')"),
        "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, dataset_source_type, dataset_source, dataset_schema, dataset_profile) VALUES \
         ('d0000000000000000000000000000001', 1, 'wine', 'abc123', 'local', '{\"uri\": \"/data/wine.csv\"}', '{\"mlflow_colspec\": []}', NULL)",
        &format!("INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id, step) VALUES \
         ('i0000000000000000000000000000001', 'DATASET', 'd0000000000000000000000000000001', 'RUN', '{R1}', 0), \
         ('i0000000000000000000000000000002', 'RUN_OUTPUT', '{R1}', 'MODEL_OUTPUT', '{MODEL}', 3), \
         ('i0000000000000000000000000000003', 'RUN_INPUT', '{R2}', 'MODEL_INPUT', '{MODEL}', 0)"),
        "INSERT INTO input_tags (input_uuid, name, value) VALUES ('i0000000000000000000000000000001', 'mlflow.data.context', 'training')",
        &format!("INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message) VALUES \
         ('{MODEL}', 1, 'model', 'mlflow-artifacts:/1/models/{MODEL}/artifacts', 15000, 16000, 2, 'active', NULL, '{R1}', NULL)"),
        &format!("INSERT INTO logged_model_params (model_id, experiment_id, param_key, param_value) VALUES ('{MODEL}', 1, 'alpha', '0.5')"),
        &format!("INSERT INTO logged_model_tags (model_id, experiment_id, tag_key, tag_value) VALUES ('{MODEL}', 1, 'mlflow.source.name', 'train.py')"),
        &format!("INSERT INTO logged_model_metrics (model_id, metric_name, metric_timestamp_ms, metric_step, metric_value, experiment_id, run_id, dataset_uuid, dataset_name, dataset_digest) VALUES \
         ('{MODEL}', 'acc', 150, 0, 0.8, 1, '{R1}', 'd0000000000000000000000000000001', 'wine', 'abc123'), \
         ('{MODEL}', 'loss', 400, 3, NULL, 1, '{R1}', NULL, NULL, NULL)"),
        "INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES ('clf', 17000, 19000, 'wine classifier'), ('empty-model', 17500, NULL, NULL)",
        "INSERT INTO registered_model_tags (key, value, name) VALUES ('owner', 'alice', 'clf')",
        &format!("INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, source, run_id, status, status_message, run_link, storage_location) VALUES \
         ('clf', 1, 17100, 17100, 'first', NULL, 'Production', 'models:/{MODEL}', '{R1}', 'READY', NULL, NULL, 'mlflow-artifacts:/1/models/{MODEL}/artifacts'), \
         ('clf', 2, 17200, 18000, NULL, NULL, 'Deleted_Internal', 'REDACTED-SOURCE-PATH', NULL, 'READY', NULL, NULL, NULL), \
         ('clf', 3, 17300, 17300, NULL, NULL, 'Staging', 'mlflow-artifacts:/1/{R1}/artifacts/model', '{R1}', 'READY', NULL, 'http://mlflow/#/runs/{R1}', 'mlflow-artifacts:/1/{R1}/artifacts/model')"),
        "INSERT INTO model_version_tags (key, value, name, version) VALUES ('validated', 'yes', 'clf', 1), ('note', NULL, 'clf', 3)",
        "INSERT INTO registered_model_aliases (alias, version, name) VALUES ('champion', 1, 'clf'), ('challenger', 3, 'clf')",
        "INSERT INTO trace_info (request_id, experiment_id, timestamp_ms, execution_time_ms, status) VALUES ('tr-1', 1, 100, 5, 'OK')",
        "INSERT INTO webhooks (webhook_id, name, url, status, creation_timestamp) VALUES ('wh-1', 'hook', 'https://example.com/hook', 'ACTIVE', 100)",
        &format!("INSERT INTO webhooks (webhook_id, name, description, url, status, secret, creation_timestamp, last_updated_timestamp) VALUES \
         ('wh-2', 'signed', 'with a secret', 'https://example.com/signed', 'DISABLED', '{SECRET_UNDER_KEY}', 200, 250)"),
        "INSERT INTO webhooks (webhook_id, name, url, status, creation_timestamp, deleted_timestamp) VALUES ('wh-3', 'gone', 'https://example.com/gone', 'ACTIVE', 300, 400)",
        &format!("INSERT INTO webhooks (webhook_id, name, url, status, secret, creation_timestamp) VALUES ('wh-4', 'other-key', 'https://example.com/other', 'ACTIVE', '{SECRET_UNDER_OTHER_KEY}', 500)"),
        "INSERT INTO webhook_events (webhook_id, entity, action) VALUES ('wh-1', 'registered_model', 'created'), ('wh-1', 'model_version', 'created'), ('wh-2', 'model_version_alias', 'created')",
    ])
    .await;
}

struct Fixture {
    _dir: tempfile::TempDir,
    mlflow: PathBuf,
    mlox: PathBuf,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mlflow = dir.path().join("mlflow.db");
    let pool = mlflow_db(&mlflow).await;
    fill(&pool).await;
    pool.close().await;
    let mlox = dir.path().join("mlox.db");
    Fixture {
        _dir: dir,
        mlflow,
        mlox,
    }
}

fn sqlite_uri(path: &Path) -> String {
    format!("sqlite:///{}", path.display())
}

fn options(from: &Path, to: &str) -> ImportOptions {
    ImportOptions {
        from: sqlite_uri(from),
        to: to.to_string(),
        // Small batches so that several transactions per table are exercised.
        batch_size: 2,
        progress: false,
        webhook_secret_key: Some(FERNET_KEY.into()),
    }
}

async fn open(uri: &str) -> SqlStore {
    SqlStore::open(StoreOptions {
        uri: uri.to_string(),
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 2,
    })
    .await
    .unwrap()
}

/// Rows in a target table, read past the store; `raw` is a sqlx URL.
async fn count(raw: &str, table: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(raw).await.unwrap();
    let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}");
    let n: i64 = sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    pool.close().await;
    n
}

const TABLE_ROWS: &[(&str, i64)] = &[
    ("experiments", 3),
    ("experiment_tags", 2),
    ("runs", 3),
    ("params", 3),
    ("tags", 4),
    ("metrics", 7),
    ("latest_metrics", 3),
    ("datasets", 1),
    ("inputs", 1),
    ("run_models", 2),
    ("input_tags", 1),
    ("logged_models", 1),
    ("logged_model_params", 1),
    ("logged_model_tags", 1),
    ("logged_model_metrics", 2),
    ("registered_models", 2),
    ("registered_model_tags", 1),
    ("model_versions", 3),
    ("model_version_tags", 2),
    ("registered_model_aliases", 2),
    ("webhooks", 2),
    ("traces", 1),
];

fn assert_report(report: &ImportReport, written: impl Fn(i64) -> i64) {
    for (table, rows) in TABLE_ROWS {
        let t = report
            .table(table)
            .unwrap_or_else(|| panic!("{table} missing"));
        assert_eq!(t.read, *rows as u64, "{table} read");
        assert_eq!(t.written, written(*rows) as u64, "{table} written");
        assert!(!t.absent);
    }
    let skipped: Vec<(&str, u64)> = report
        .not_imported
        .iter()
        .map(|(t, n, _)| (*t, *n))
        .collect();
    assert_eq!(skipped, vec![("webhooks", 1)]);
}

#[tokio::test]
async fn every_table_and_id_is_carried_over_and_a_second_import_changes_nothing() {
    let f = fixture().await;
    let raw = format!("sqlite://{}", f.mlox.display());
    carried_over_and_idempotent(&f.mlflow, &sqlite_uri(&f.mlox), &raw).await;
}

/// The same into PostgreSQL: the server every test machine runs (`MLOX_TEST_PG_URL`, default
/// `postgresql://postgres@127.0.0.1:5432`); each run creates its own database.
#[tokio::test]
async fn every_table_and_id_is_carried_over_into_postgresql() {
    let server = std::env::var("MLOX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".to_string());
    let server = server
        .trim_end_matches('/')
        .replacen("postgresql://", "postgres://", 1);
    let database = format!("mlox_import_{}", unique_suffix());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    let create = format!("CREATE DATABASE {database}");
    sqlx::query(sqlx::AssertSqlSafe(create))
        .execute(&admin)
        .await
        .unwrap();
    let f = fixture().await;
    let raw = format!("{server}/{database}");
    carried_over_and_idempotent(
        &f.mlflow,
        &raw.replacen("postgres://", "postgresql://", 1),
        &raw,
    )
    .await;
    let drop_db = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop_db))
        .execute(&admin)
        .await
        .unwrap();
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{nanos}", std::process::id())
}

async fn carried_over_and_idempotent(mlflow: &Path, target: &str, raw: &str) {
    let report = import(&options(mlflow, target)).await.unwrap();
    assert_eq!(report.source_revision, mlox_import::MLFLOW_HEAD_REVISION);
    // Experiment 0 already exists in a fresh mlox store; the source's row replaces it only
    // where it differs (here: the creation time).
    assert_report(&report, |rows| rows);
    for (table, rows) in TABLE_ROWS {
        assert_eq!(count(raw, table).await, *rows, "{table}");
    }

    let store = open(target).await;
    // Traces keep their ids, times and states.
    let trace = store.get_trace_info("tr-1").await.unwrap();
    assert_eq!(
        (
            &trace["state"],
            &trace["request_time"],
            &trace["execution_duration"]
        ),
        (
            &serde_json::json!("OK"),
            &serde_json::json!("1970-01-01T00:00:00.100Z"),
            &serde_json::json!("0.005s")
        )
    );
    // Experiments keep ids, locations, stages and tags.
    let default = store.get_experiment("0").await.unwrap();
    assert_eq!(
        (default.name.as_str(), default.creation_time),
        ("Default", 1000)
    );
    let a = store.get_experiment("1").await.unwrap();
    assert_eq!(a.name, "exp-a");
    assert_eq!(a.artifact_location, "mlflow-artifacts:/1");
    let mut tags: Vec<(String, String)> = a.tags.into_iter().map(|t| (t.key, t.value)).collect();
    tags.sort();
    assert_eq!(
        tags,
        vec![
            ("note".into(), String::new()),
            ("team".into(), "vision".into())
        ]
    );
    let gone = store.get_experiment("5").await.unwrap();
    assert_eq!(
        (
            gone.lifecycle_stage.as_str(),
            gone.artifact_location.as_str()
        ),
        ("deleted", "/old/place/5")
    );

    // Runs: info, params, tags, latest metrics (the NaN point is the latest loss), inputs
    // and model outputs.
    let r1 = store.get_run(R1).await.unwrap();
    assert_eq!(r1.info.run_name, "run-one");
    assert_eq!(r1.info.experiment_id, "1");
    assert_eq!(r1.info.user_id, "alice");
    assert_eq!(r1.info.status, RunStatus::Finished);
    assert_eq!((r1.info.start_time, r1.info.end_time), (10000, Some(20000)));
    assert_eq!(
        r1.info.artifact_uri,
        format!("mlflow-artifacts:/1/{R1}/artifacts")
    );
    assert_eq!(r1.data.params.len(), 2);
    assert!(
        r1.data
            .tags
            .iter()
            .any(|t| t.key == "empty" && t.value.is_empty())
    );
    let loss = r1.data.metrics.iter().find(|m| m.key == "loss").unwrap();
    assert!(loss.value.is_nan());
    assert_eq!((loss.step, loss.timestamp), (3, 400));
    let acc = r1.data.metrics.iter().find(|m| m.key == "acc").unwrap();
    assert_eq!(acc.value, f64::MAX);
    let dataset = &r1.inputs.dataset_inputs[0];
    assert_eq!(
        (
            dataset.dataset.name.as_str(),
            dataset.dataset.digest.as_str()
        ),
        ("wine", "abc123")
    );
    assert_eq!(dataset.tags[0].value, "training");
    let outputs = r1.outputs.unwrap().model_outputs;
    assert_eq!((outputs[0].model_id.as_str(), outputs[0].step), (MODEL, 3));
    let r2 = store.get_run(R2).await.unwrap();
    assert_eq!(r2.info.lifecycle_stage, "deleted");
    assert_eq!(r2.inputs.model_inputs[0].model_id, MODEL);
    let r3 = store.get_run(R3).await.unwrap();
    assert_eq!(
        (r3.info.run_name.as_str(), r3.info.user_id.as_str()),
        ("", "")
    );
    // Deleted runs are found only when asked for.
    let active = store
        .search_runs(&["1".into()], None, ViewType::ActiveOnly, None, &[], None)
        .await
        .unwrap();
    assert_eq!(active.items.len(), 1);
    let deleted = store
        .search_runs(
            &["1".into(), "5".into()],
            Some("params.alpha = '0.9'"),
            ViewType::DeletedOnly,
            None,
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(deleted.items[0].info.run_id, R2);

    // The whole history, in step order, NaN included.
    let history = store
        .get_metric_history(&MetricHistoryRequest {
            run_id: R1.into(),
            metric_key: "loss".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let steps: Vec<(i64, i64)> = history
        .items
        .iter()
        .map(|m| (m.step, m.timestamp))
        .collect();
    assert_eq!(steps, vec![(0, 100), (1, 200), (2, 300), (3, 400)]);
    assert_eq!(history.items[1].value, 0.7);
    assert!(history.items[3].value.is_nan());

    // Logged model: status name, params, tags, metrics (a NULL value reads as NaN).
    let model = store.get_logged_model(MODEL).await.unwrap();
    assert_eq!(model.info.status, LoggedModelStatus::Ready);
    assert_eq!(model.info.source_run_id.as_deref(), Some(R1));
    assert_eq!(
        model.info.artifact_uri,
        format!("mlflow-artifacts:/1/models/{MODEL}/artifacts")
    );
    assert_eq!(model.data.params[0].value, "0.5");
    assert_eq!(model.info.tags[0].value, "train.py");
    assert_eq!(model.data.metrics.len(), 2);

    // Registry: versions keep numbers, stages, sources, links; aliases and tags resolve.
    let champion = store
        .get_model_version_by_alias("clf", "champion")
        .await
        .unwrap();
    assert_eq!(champion.version, "1");
    assert_eq!(champion.current_stage, "Production");
    assert_eq!(champion.model_id.as_deref(), Some(MODEL));
    assert_eq!(champion.tags[0].value, "yes");
    assert_eq!(
        store
            .get_model_version_download_uri("clf", "1")
            .await
            .unwrap(),
        format!("mlflow-artifacts:/1/models/{MODEL}/artifacts")
    );
    let v3 = store.get_model_version("clf", "3").await.unwrap();
    assert_eq!(v3.current_stage, "Staging");
    assert_eq!(v3.run_link, format!("http://mlflow/#/runs/{R1}"));
    assert_eq!(v3.model_id, None);
    assert!(store.get_model_version("clf", "2").await.is_err());
    let clf = store.get_registered_model("clf").await.unwrap();
    assert_eq!(clf.description.as_deref(), Some("wine classifier"));

    // Webhooks keep ids, events and status; the secret is sealed with mlox's key and opens
    // to what MLflow signed with, so receivers keep verifying.
    let plain = store.get_webhook("wh-1").await.unwrap();
    let keys: Vec<String> = plain.events.iter().map(|e| e.key()).collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&"registered_model.created".to_string()));
    assert!(keys.contains(&"model_version.created".to_string()));
    assert_eq!((plain.secret, plain.last_updated_timestamp), (None, 100));
    let signed = store.get_webhook("wh-2").await.unwrap();
    assert_eq!(signed.status, mlox_core::webhooks::WebhookStatus::Disabled);
    assert_eq!(signed.description.as_deref(), Some("with a secret"));
    let sealed = signed.secret.unwrap();
    assert!(!sealed.contains(SECRET_UNDER_KEY) && !sealed.contains("whsec-imported"));
    assert_eq!(
        mlox_webhooks::secrets().open(&sealed).unwrap(),
        "whsec-imported"
    );
    assert!(store.get_webhook("wh-3").await.is_err());
    assert!(store.get_webhook("wh-4").await.is_err());

    // New ids continue above the imported ones, deleted versions included.
    assert_eq!(
        store
            .create_experiment("after-import", None, &[])
            .await
            .unwrap(),
        "6"
    );
    let v4 = store
        .create_model_version(NewModelVersion {
            name: "clf".into(),
            source: format!("mlflow-artifacts:/1/{R1}/artifacts/model"),
            run_id: Some(R1.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(v4.version, "4");

    // Importing again writes nothing and duplicates nothing; the rows added in mlox stay.
    let again = import(&options(mlflow, target)).await.unwrap();
    assert_report(&again, |_| 0);
    for (table, rows) in TABLE_ROWS {
        let extra = match *table {
            "experiments" | "model_versions" => 1,
            _ => 0,
        };
        assert_eq!(count(raw, table).await, rows + extra, "{table}");
    }
}

#[tokio::test]
async fn a_database_without_alembic_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    exec(
        &pool,
        &["CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY)"],
    )
    .await;
    pool.close().await;
    let err = import(&options(&path, &sqlite_uri(&dir.path().join("mlox.db"))))
        .await
        .unwrap_err();
    assert!(matches!(err, ImportError::NotMlflow(_)), "{err}");
    assert!(err.to_string().contains("not an MLflow database"));
}

#[tokio::test]
async fn an_unknown_revision_is_imported_by_the_tables_it_has() {
    let f = fixture().await;
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&f.mlflow))
        .await
        .unwrap();
    exec(
        &pool,
        &[
            "UPDATE alembic_version SET version_num = 'ffffffffffff'",
            "DROP TABLE logged_model_metrics",
        ],
    )
    .await;
    pool.close().await;
    let report = import(&options(&f.mlflow, &sqlite_uri(&f.mlox)))
        .await
        .unwrap();
    assert_eq!(report.source_revision, "ffffffffffff");
    assert!(report.table("logged_model_metrics").unwrap().absent);
    assert_eq!(report.table("metrics").unwrap().written, 7);
}

#[tokio::test]
async fn workspaces_other_than_default_are_refused() {
    let f = fixture().await;
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&f.mlflow))
        .await
        .unwrap();
    exec(&pool, &["INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, workspace) VALUES (9, 'exp-a', 'x', 'active', 'team-b')"]).await;
    pool.close().await;
    let err = import(&options(&f.mlflow, &sqlite_uri(&f.mlox)))
        .await
        .unwrap_err();
    assert!(matches!(err, ImportError::Workspaces(_)), "{err}");
    assert!(
        !f.mlox.exists(),
        "nothing is written before the checks pass"
    );
}

#[tokio::test]
async fn a_target_newer_than_this_mlox_is_refused() {
    let f = fixture().await;
    drop(open(&sqlite_uri(&f.mlox)).await);
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&f.mlox))
        .await
        .unwrap();
    exec(
        &pool,
        &["INSERT INTO mlox_schema (version, name, applied_at) VALUES (999, 'future', 0)"],
    )
    .await;
    pool.close().await;
    let err = import(&options(&f.mlflow, &sqlite_uri(&f.mlox)))
        .await
        .unwrap_err();
    assert!(matches!(err, ImportError::Target(_)), "{err}");
    assert!(err.to_string().contains("newer than this mlox"), "{err}");
}

#[tokio::test]
async fn an_experiment_name_taken_under_another_id_stops_the_import() {
    let f = fixture().await;
    let store = open(&sqlite_uri(&f.mlox)).await;
    assert_eq!(
        store.create_experiment("exp-a", None, &[]).await.unwrap(),
        "1"
    );
    store.delete_experiment("1").await.unwrap();
    drop(store);
    // Same id, same name: skipped. Rename it so the name collides under a different id.
    let pool = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&f.mlox))
        .await
        .unwrap();
    exec(
        &pool,
        &["UPDATE experiments SET experiment_id = 7 WHERE name = 'exp-a'"],
    )
    .await;
    pool.close().await;
    let err = import(&options(&f.mlflow, &sqlite_uri(&f.mlox)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already taken in the target"),
        "{err}"
    );
}
