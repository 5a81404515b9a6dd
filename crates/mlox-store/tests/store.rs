//! The store's behaviour on a real SQLite database, rule by rule: each test name states the
//! rule it checks.

// Helpers outside `#[test]` functions panic too; in a test that is the failure report.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::path::Path;

use mlox_core::entities::{
    Dataset, DatasetInput, KeyValue, LoggedModelStatus, Metric, ModelOutput, Run, RunStatus,
    ViewType,
};
use mlox_core::{Code, Error};
use mlox_store::{
    CreateRun, GcRequest, LoggedModelOrder, MetricHistoryRequest, NewModelVersion, SqlStore,
    StoreOptions,
};

// ------------------------------------------------------------------------------- helpers

async fn open_at(dir: &Path) -> mlox_core::Result<SqlStore> {
    SqlStore::open(StoreOptions {
        uri: format!("sqlite:///{}/t.db", dir.display()),
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 4,
    })
    .await
}

/// A fresh store on its own database file; keep the directory alive as long as the store.
async fn store() -> (tempfile::TempDir, SqlStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(dir.path()).await.unwrap();
    (dir, store)
}

/// A second, raw connection to the same file, for checking what the store wrote.
async fn raw(dir: &Path) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&format!("sqlite://{}/t.db", dir.display()))
        .await
        .unwrap()
}

async fn count(pool: &sqlx::AnyPool, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_one(pool)
        .await
        .unwrap()
        .get::<i64, _>(0)
}

fn code<T: std::fmt::Debug>(result: mlox_core::Result<T>) -> Code {
    result.unwrap_err().code
}

fn err<T: std::fmt::Debug>(result: mlox_core::Result<T>) -> Error {
    result.unwrap_err()
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue::new(key, value)
}

fn metric(key: &str, value: f64, timestamp: i64, step: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp,
        step,
        dataset_name: None,
        dataset_digest: None,
        model_id: None,
        run_id: None,
    }
}

async fn experiment(store: &SqlStore, name: &str) -> String {
    store.create_experiment(name, None, &[]).await.unwrap()
}

async fn run_in(store: &SqlStore, experiment_id: &str) -> Run {
    store
        .create_run(CreateRun {
            experiment_id: Some(experiment_id.into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn named_run(store: &SqlStore, experiment_id: &str, name: &str, start: i64) -> String {
    store
        .create_run(CreateRun {
            experiment_id: Some(experiment_id.into()),
            run_name: Some(name.into()),
            start_time: Some(start),
            ..Default::default()
        })
        .await
        .unwrap()
        .info
        .run_id
}

fn tag<'a>(tags: &'a [KeyValue], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
}

fn latest<'a>(run: &'a Run, key: &str) -> &'a Metric {
    run.data.metrics.iter().find(|m| m.key == key).unwrap()
}

async fn search(store: &SqlStore, experiments: &[&str], filter: &str) -> Vec<String> {
    let ids: Vec<String> = experiments.iter().map(|e| e.to_string()).collect();
    let mut out: Vec<String> = store
        .search_runs(&ids, Some(filter), ViewType::ActiveOnly, None, &[], None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.info.run_name)
        .collect();
    out.sort();
    out
}

async fn history(store: &SqlStore, run_id: &str, key: &str) -> Vec<Metric> {
    store
        .get_metric_history(&MetricHistoryRequest {
            run_id: run_id.into(),
            metric_key: key.into(),
            max_results: None,
            page_token: None,
        })
        .await
        .unwrap()
        .items
}

fn version(name: &str, source: &str) -> NewModelVersion {
    NewModelVersion {
        name: name.into(),
        source: source.into(),
        ..Default::default()
    }
}

async fn model_with_versions(store: &SqlStore, name: &str, n: usize) {
    store
        .create_registered_model(name, &[], None)
        .await
        .unwrap();
    for _ in 0..n {
        store
            .create_model_version(version(name, "s3://bucket/model"))
            .await
            .unwrap();
    }
}

// --------------------------------------------------------------------------- experiments

#[tokio::test]
async fn the_default_experiment_0_exists_in_a_new_database() {
    let (_dir, store) = store().await;
    let exp = store.get_experiment("0").await.unwrap();
    assert_eq!(exp.name, "Default");
    assert_eq!(exp.lifecycle_stage, "active");
    assert_eq!(exp.artifact_location, "mlflow-artifacts:/0");
    assert_eq!(store.get_experiment_by_name("Default").await.unwrap(), exp);
}

#[tokio::test]
async fn new_experiments_get_the_next_id_and_an_artifact_location_under_the_root() {
    let (_dir, store) = store().await;
    let first = experiment(&store, "first").await;
    let second = store
        .create_experiment("second", Some("s3://bucket/custom"), &[kv("team", "a")])
        .await
        .unwrap();
    assert_eq!((first.as_str(), second.as_str()), ("1", "2"));
    assert_eq!(
        store
            .get_experiment(&first)
            .await
            .unwrap()
            .artifact_location,
        "mlflow-artifacts:/1"
    );
    let second = store.get_experiment(&second).await.unwrap();
    assert_eq!(second.artifact_location, "s3://bucket/custom");
    assert_eq!(second.tags, vec![kv("team", "a")]);
}

#[tokio::test]
async fn experiments_are_found_by_id_and_name_renamed_deleted_and_restored() {
    let (_dir, store) = store().await;
    let id = experiment(&store, "exp").await;
    assert_eq!(
        store
            .get_experiment_by_name("exp")
            .await
            .unwrap()
            .experiment_id,
        id
    );

    store.rename_experiment(&id, "renamed").await.unwrap();
    assert_eq!(store.get_experiment(&id).await.unwrap().name, "renamed");
    assert_eq!(
        err(store.get_experiment_by_name("exp").await).message,
        "Could not find experiment with name 'exp'"
    );

    store.delete_experiment(&id).await.unwrap();
    assert_eq!(
        store.get_experiment(&id).await.unwrap().lifecycle_stage,
        "deleted"
    );
    // A deleted experiment is still found by id and by name.
    assert_eq!(
        store
            .get_experiment_by_name("renamed")
            .await
            .unwrap()
            .lifecycle_stage,
        "deleted"
    );
    assert_eq!(
        code(store.rename_experiment(&id, "again").await),
        Code::InvalidParameterValue
    );

    store.restore_experiment(&id).await.unwrap();
    assert_eq!(
        store.get_experiment(&id).await.unwrap().lifecycle_stage,
        "active"
    );
    assert_eq!(
        code(store.restore_experiment(&id).await),
        Code::ResourceDoesNotExist,
        "restoring an active experiment finds no deleted experiment"
    );
    store.delete_experiment(&id).await.unwrap();
    assert_eq!(
        code(store.delete_experiment(&id).await),
        Code::ResourceDoesNotExist,
        "deleting twice finds no active experiment"
    );
}

#[tokio::test]
async fn a_missing_experiment_is_resource_does_not_exist() {
    let (_dir, store) = store().await;
    let e = err(store.get_experiment("42").await);
    assert_eq!(e.code, Code::ResourceDoesNotExist);
    assert_eq!(e.message, "No Experiment with id=42 exists");
    assert_eq!(
        code(store.get_experiment("not-a-number").await),
        Code::InvalidParameterValue
    );
}

#[tokio::test]
async fn experiment_names_are_unique_even_against_deleted_experiments() {
    let (_dir, store) = store().await;
    let id = experiment(&store, "taken").await;
    let e = err(store.create_experiment("taken", None, &[]).await);
    assert_eq!(e.code, Code::ResourceAlreadyExists);
    assert_eq!(e.message, "Experiment(name=taken) already exists.");

    store.delete_experiment(&id).await.unwrap();
    let e = err(store.create_experiment("taken", None, &[]).await);
    assert_eq!(e.code, Code::ResourceAlreadyExists);
    assert!(
        e.message.contains("already exists in deleted state"),
        "{}",
        e.message
    );

    experiment(&store, "other").await;
    assert_eq!(
        code(store.rename_experiment("0", "other").await),
        Code::ResourceAlreadyExists
    );
}

#[tokio::test]
async fn the_default_experiment_cannot_be_deleted() {
    let (_dir, store) = store().await;
    assert_eq!(
        code(store.delete_experiment("0").await),
        Code::InvalidParameterValue
    );
    assert_eq!(
        store.get_experiment("0").await.unwrap().lifecycle_stage,
        "active"
    );
}

#[tokio::test]
async fn deleting_an_experiment_soft_deletes_its_runs_and_restoring_brings_them_back() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "e").await;
    let run = run_in(&store, &exp).await.info.run_id;
    let ids = [exp.clone()];

    store.delete_experiment(&exp).await.unwrap();
    assert_eq!(
        store.get_run(&run).await.unwrap().info.lifecycle_stage,
        "deleted"
    );
    let active = store
        .search_runs(&ids, None, ViewType::ActiveOnly, None, &[], None)
        .await
        .unwrap();
    assert!(active.items.is_empty());
    let deleted = store
        .search_runs(&ids, None, ViewType::DeletedOnly, None, &[], None)
        .await
        .unwrap();
    assert_eq!(deleted.items.len(), 1);
    assert_eq!(
        code(
            store
                .create_run(CreateRun {
                    experiment_id: Some(exp.clone()),
                    ..Default::default()
                })
                .await
        ),
        Code::InvalidParameterValue,
        "no new runs in a deleted experiment"
    );
    assert_eq!(
        code(store.restore_run(&run).await),
        Code::InvalidParameterValue,
        "a run cannot be restored while its experiment is deleted"
    );

    store.restore_experiment(&exp).await.unwrap();
    assert_eq!(
        store.get_run(&run).await.unwrap().info.lifecycle_stage,
        "active"
    );
}

#[tokio::test]
async fn experiment_tags_are_upserted_and_deleting_a_missing_tag_is_not_found() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "e").await;
    store.set_experiment_tag(&exp, &kv("k", "1")).await.unwrap();
    store.set_experiment_tag(&exp, &kv("k", "2")).await.unwrap();
    assert_eq!(
        store.get_experiment(&exp).await.unwrap().tags,
        vec![kv("k", "2")]
    );
    store.delete_experiment_tag(&exp, "k").await.unwrap();
    assert_eq!(
        code(store.delete_experiment_tag(&exp, "k").await),
        Code::ResourceDoesNotExist
    );
}

// ---------------------------------------------------------------------------------- runs

#[tokio::test]
async fn run_artifacts_live_under_the_experiment_location() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "e").await;
    let run = run_in(&store, &exp).await;
    assert_eq!(
        run.info.artifact_uri,
        format!("mlflow-artifacts:/{exp}/{}/artifacts", run.info.run_id)
    );
    assert_eq!(run.info.run_id, run.info.run_uuid);
    assert_eq!(run.info.status, RunStatus::Running);
    assert_eq!(
        store.get_run(&run.info.run_id).await.unwrap().info,
        run.info
    );
}

#[tokio::test]
async fn a_run_created_without_a_name_gets_a_generated_one_mirrored_in_the_run_name_tag() {
    let (_dir, store) = store().await;
    let run = run_in(&store, "0").await;
    assert!(!run.info.run_name.is_empty());
    assert_eq!(
        run.info.run_name.split('-').count(),
        3,
        "{}",
        run.info.run_name
    );
    let stored = store.get_run(&run.info.run_id).await.unwrap();
    assert_eq!(
        tag(&stored.data.tags, "mlflow.runName"),
        Some(run.info.run_name.as_str())
    );
}

#[tokio::test]
async fn a_run_name_given_as_argument_or_tag_is_kept_and_a_conflict_is_refused() {
    let (_dir, store) = store().await;
    let by_tag = store
        .create_run(CreateRun {
            tags: vec![kv("mlflow.runName", "from-tag")],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_tag.info.run_name, "from-tag");
    let both = store
        .create_run(CreateRun {
            run_name: Some("a".into()),
            tags: vec![kv("mlflow.runName", "b")],
            ..Default::default()
        })
        .await;
    assert_eq!(code(both), Code::InvalidParameterValue);
}

#[tokio::test]
async fn the_run_name_tag_follows_update_run_and_set_tag() {
    let (_dir, store) = store().await;
    let id = named_run(&store, "0", "first", 1).await;
    assert_eq!(
        tag(
            &store.get_run(&id).await.unwrap().data.tags,
            "mlflow.runName"
        ),
        Some("first")
    );

    let info = store
        .update_run(
            &id,
            Some(RunStatus::Finished),
            Some(99),
            Some("second".into()),
        )
        .await
        .unwrap();
    assert_eq!(info.run_name, "second");
    let run = store.get_run(&id).await.unwrap();
    assert_eq!(run.info.run_name, "second");
    assert_eq!(run.info.status, RunStatus::Finished);
    assert_eq!(run.info.end_time, Some(99));
    assert_eq!(tag(&run.data.tags, "mlflow.runName"), Some("second"));

    store
        .set_tag(&id, &kv("mlflow.runName", "third"))
        .await
        .unwrap();
    let run = store.get_run(&id).await.unwrap();
    assert_eq!(run.info.run_name, "third");
    assert_eq!(tag(&run.data.tags, "mlflow.runName"), Some("third"));

    // An update without a name keeps the name.
    store.update_run(&id, None, None, None).await.unwrap();
    assert_eq!(store.get_run(&id).await.unwrap().info.run_name, "third");
}

#[tokio::test]
async fn a_param_may_be_relogged_with_the_same_value_but_never_changed() {
    let (_dir, store) = store().await;
    let id = run_in(&store, "0").await.info.run_id;
    store.log_param(&id, &kv("lr", "0.1")).await.unwrap();
    store.log_param(&id, &kv("lr", "0.1")).await.unwrap();

    let e = err(store.log_param(&id, &kv("lr", "0.2")).await);
    assert_eq!(e.code, Code::InvalidParameterValue);
    assert_eq!(
        e.message,
        format!(
            "Changing param values is not allowed. Param with key='lr' was already logged with \
             value='0.1' for run ID='{id}'. Attempted logging new value '0.2'."
        )
    );
    assert_eq!(
        store.get_run(&id).await.unwrap().data.params,
        vec![kv("lr", "0.1")]
    );
}

#[tokio::test]
async fn a_batch_that_changes_a_param_is_refused_whole() {
    let (_dir, store) = store().await;
    let id = run_in(&store, "0").await.info.run_id;
    store.log_param(&id, &kv("lr", "0.1")).await.unwrap();

    let e = err(store
        .log_batch(
            &id,
            &[metric("loss", 1.0, 1, 0)],
            &[kv("fresh", "x"), kv("lr", "0.2")],
            &[kv("t", "v")],
        )
        .await);
    assert_eq!(e.code, Code::InvalidParameterValue);
    assert_eq!(
        e.message,
        format!(
            "Changing param values is not allowed. Params were already logged='[{{'key': 'lr', \
             'old_value': '0.1', 'new_value': '0.2'}}]' for run ID='{id}'."
        )
    );
    let run = store.get_run(&id).await.unwrap();
    assert_eq!(run.data.params, vec![kv("lr", "0.1")]);
    assert!(run.data.metrics.is_empty());
    assert_eq!(tag(&run.data.tags, "t"), None);

    // The same batch with the unchanged value goes through.
    store
        .log_batch(&id, &[], &[kv("fresh", "x"), kv("lr", "0.1")], &[])
        .await
        .unwrap();
    let mut params = store.get_run(&id).await.unwrap().data.params;
    params.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(params, vec![kv("fresh", "x"), kv("lr", "0.1")]);
}

#[tokio::test]
async fn duplicate_param_keys_in_one_batch_are_refused() {
    let (_dir, store) = store().await;
    let id = run_in(&store, "0").await.info.run_id;
    let e = err(store
        .log_batch(&id, &[], &[kv("a", "1"), kv("a", "1")], &[])
        .await);
    assert_eq!(e.code, Code::InvalidParameterValue);
    assert!(
        e.message.starts_with("Duplicate parameter keys"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn writes_to_a_deleted_run_are_refused_until_it_is_restored() {
    let (_dir, store) = store().await;
    let id = run_in(&store, "0").await.info.run_id;
    store.set_tag(&id, &kv("keep", "1")).await.unwrap();
    store.delete_run(&id).await.unwrap();

    let expected = format!("The run {id} must be in the 'active' state. Current state is deleted.");
    for e in [
        err(store.log_metric(&id, &metric("m", 1.0, 1, 0)).await),
        err(store.log_param(&id, &kv("p", "1")).await),
        err(store.set_tag(&id, &kv("t", "1")).await),
        err(store.log_batch(&id, &[], &[], &[kv("t", "1")]).await),
        err(store.delete_run_tag(&id, "keep").await),
        err(store.log_inputs(&id, &[], &[]).await),
    ] {
        assert_eq!(
            (e.code, e.message.as_str()),
            (Code::InvalidParameterValue, expected.as_str())
        );
    }
    assert_eq!(
        code(
            store
                .update_run(&id, Some(RunStatus::Finished), None, None)
                .await
        ),
        Code::InvalidParameterValue
    );

    store.restore_run(&id).await.unwrap();
    store.log_param(&id, &kv("p", "1")).await.unwrap();
}

#[tokio::test]
async fn writes_to_a_missing_run_are_resource_does_not_exist() {
    let (_dir, store) = store().await;
    let e = err(store.log_param("deadbeef", &kv("p", "1")).await);
    assert_eq!(e.code, Code::ResourceDoesNotExist);
    assert_eq!(e.message, "Run with id=deadbeef not found");
    assert_eq!(
        code(store.get_run("deadbeef").await),
        Code::ResourceDoesNotExist
    );
}

#[tokio::test]
async fn the_latest_metric_is_the_highest_step_then_timestamp_then_value() {
    let (_dir, store) = store().await;
    let id = run_in(&store, "0").await.info.run_id;
    let check = |value: f64, timestamp: i64, step: i64| {
        let store = store.clone();
        let id = id.clone();
        async move {
            let run = store.get_run(&id).await.unwrap();
            let m = latest(&run, "m");
            assert_eq!((m.value, m.timestamp, m.step), (value, timestamp, step));
        }
    };
    store
        .log_metric(&id, &metric("m", 1.0, 10, 5))
        .await
        .unwrap();
    // A lower step loses even with a later timestamp and a higher value.
    store
        .log_metric(&id, &metric("m", 9.0, 100, 3))
        .await
        .unwrap();
    check(1.0, 10, 5).await;
    // Same step, later timestamp wins even with a lower value.
    store
        .log_metric(&id, &metric("m", 0.5, 11, 5))
        .await
        .unwrap();
    check(0.5, 11, 5).await;
    // Same step and timestamp: the higher value wins, a lower one does not.
    store
        .log_metric(&id, &metric("m", 7.0, 11, 5))
        .await
        .unwrap();
    store
        .log_metric(&id, &metric("m", 3.0, 11, 5))
        .await
        .unwrap();
    check(7.0, 11, 5).await;
    // The same order decides within one batch.
    store
        .log_batch(
            &id,
            &[
                metric("m", 2.0, 50, 6),
                metric("m", 4.0, 40, 6),
                metric("m", 8.0, 60, 2),
            ],
            &[],
            &[],
        )
        .await
        .unwrap();
    check(2.0, 50, 6).await;
    assert_eq!(history(&store, &id, "m").await.len(), 8);
}

#[tokio::test]
async fn nan_and_infinite_metric_values_round_trip() {
    let (_dir, store) = store().await;
    let id = run_in(&store, "0").await.info.run_id;
    store
        .log_batch(
            &id,
            &[
                metric("nan", f64::NAN, 1, 0),
                metric("pinf", f64::INFINITY, 1, 0),
                metric("ninf", f64::NEG_INFINITY, 1, 0),
            ],
            &[],
            &[],
        )
        .await
        .unwrap();
    let run = store.get_run(&id).await.unwrap();
    assert!(latest(&run, "nan").value.is_nan());
    assert_eq!(latest(&run, "pinf").value, f64::INFINITY);
    assert_eq!(latest(&run, "ninf").value, f64::NEG_INFINITY);
    assert!(history(&store, &id, "nan").await[0].value.is_nan());
    assert_eq!(history(&store, &id, "pinf").await[0].value, f64::INFINITY);
    assert_eq!(
        history(&store, &id, "ninf").await[0].value,
        f64::NEG_INFINITY
    );

    // A later NaN point still becomes the latest value.
    store
        .log_metric(&id, &metric("pinf", f64::NAN, 2, 0))
        .await
        .unwrap();
    assert!(
        latest(&store.get_run(&id).await.unwrap(), "pinf")
            .value
            .is_nan()
    );
}

#[tokio::test]
async fn an_identical_metric_point_is_stored_once() {
    let (_dir, store) = store().await;
    let id = run_in(&store, "0").await.info.run_id;
    let point = metric("m", 1.5, 7, 2);
    store.log_metric(&id, &point).await.unwrap();
    store.log_metric(&id, &point).await.unwrap();
    store
        .log_batch(&id, &[point.clone(), point.clone()], &[], &[])
        .await
        .unwrap();
    store
        .log_metric(&id, &metric("m", f64::NAN, 7, 2))
        .await
        .unwrap();
    store
        .log_metric(&id, &metric("m", f64::NAN, 7, 2))
        .await
        .unwrap();
    let points = history(&store, &id, "m").await;
    assert_eq!(points.len(), 2, "{points:?}");
    // A different value at the same step and time is a different point.
    store
        .log_metric(&id, &metric("m", 2.5, 7, 2))
        .await
        .unwrap();
    assert_eq!(history(&store, &id, "m").await.len(), 3);
}

#[tokio::test]
async fn metric_history_is_ordered_by_timestamp_then_step_then_value_and_pages() {
    let (_dir, store) = store().await;
    let id = run_in(&store, "0").await.info.run_id;
    store
        .log_batch(
            &id,
            &[
                metric("m", 5.0, 20, 0),
                metric("m", 3.0, 10, 2),
                metric("m", 2.0, 10, 1),
                metric("m", 1.0, 10, 1),
                metric("other", 0.0, 0, 0),
            ],
            &[],
            &[],
        )
        .await
        .unwrap();
    let all: Vec<(i64, i64, f64)> = history(&store, &id, "m")
        .await
        .iter()
        .map(|m| (m.timestamp, m.step, m.value))
        .collect();
    assert_eq!(
        all,
        vec![(10, 1, 1.0), (10, 1, 2.0), (10, 2, 3.0), (20, 0, 5.0)]
    );

    let mut token = None;
    let mut paged = Vec::new();
    let mut pages = 0;
    loop {
        let page = store
            .get_metric_history(&MetricHistoryRequest {
                run_id: id.clone(),
                metric_key: "m".into(),
                max_results: Some(3),
                page_token: token.clone(),
            })
            .await
            .unwrap();
        pages += 1;
        paged.extend(page.items.iter().map(|m| (m.timestamp, m.step, m.value)));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!((pages, paged), (2, all));

    assert_eq!(
        code(
            store
                .get_metric_history(&MetricHistoryRequest {
                    run_id: id.clone(),
                    metric_key: "m".into(),
                    max_results: None,
                    page_token: Some("not a token".into()),
                })
                .await
        ),
        Code::InvalidParameterValue
    );
    assert_eq!(
        code(
            store
                .get_metric_history(&MetricHistoryRequest {
                    run_id: "missing".into(),
                    metric_key: "m".into(),
                    ..Default::default()
                })
                .await
        ),
        Code::ResourceDoesNotExist
    );
}

/// A long history, packed into blocks, then added to with a point that sorts first, a repeat
/// of a packed point and a NaN: every reader answers it in MLflow's order, once per point,
/// whole or in pages. Shared by the SQLite and PostgreSQL tests.
async fn check_packed_history(store: &SqlStore, run: &str) {
    // Two values far outside a training loop's range travel through the seal another way.
    let value = |i: i64| match i {
        17 => 4.425_160_402_714_337_5e284,
        18 => f64::NEG_INFINITY,
        _ => i as f64 * 0.5,
    };
    let points: Vec<Metric> = (0..3000)
        .map(|i| metric("loss", value(i), 1_000 + i, i))
        .collect();
    for batch in points.chunks(1000) {
        store.log_batch(run, batch, &[], &[]).await.unwrap();
    }
    // Seals run beside the writes, and one that raced another packs nothing; once they have
    // settled, the sweep packs whatever whole blocks are left.
    let mut quiet = 0;
    while quiet < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        quiet = if store.seal_metric_histories().await.unwrap() == 0 {
            quiet + 1
        } else {
            0
        };
    }
    let late = [
        metric("loss", 9.0, 5, 0),
        metric("loss", 50.0, 1_100, 100),
        metric("loss", f64::NAN, 4_000, 3_000),
    ];
    store.log_batch(run, &late, &[], &[]).await.unwrap();

    let shown = |ms: &[Metric]| -> Vec<(i64, i64, String)> {
        ms.iter()
            .map(|m| (m.timestamp, m.step, m.value.to_string()))
            .collect()
    };
    let mut expected = points.clone();
    expected.insert(0, late[0].clone());
    expected.push(late[2].clone());
    let expected = shown(&expected);
    assert_eq!(expected.len(), 3002);

    assert_eq!(shown(&history(store, run, "loss").await), expected);
    let mut paged = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = store
            .get_metric_history(&MetricHistoryRequest {
                run_id: run.into(),
                metric_key: "loss".into(),
                max_results: Some(700),
                page_token: token.take(),
            })
            .await
            .unwrap();
        pages += 1;
        paged.extend(shown(&page.items));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(paged, expected);
    // A token that holds only an offset (MLflow's own kind) still pages.
    let from_offset = store
        .get_metric_history(&MetricHistoryRequest {
            run_id: run.into(),
            metric_key: "loss".into(),
            max_results: Some(700),
            page_token: Some(mlox_core::page_token::encode(700)),
        })
        .await
        .unwrap();
    assert_eq!(shown(&from_offset.items), expected[700..1400]);

    let bulk = store
        .get_metric_history_bulk(&[run.to_string()], Some("loss"), None)
        .await
        .unwrap();
    assert_eq!(shown(&bulk), expected);
    let sampled: Vec<i64> = store
        .get_metric_history_bulk_interval(&[run.to_string()], "loss", None, None, 4)
        .await
        .unwrap()
        .iter()
        .map(|m| m.step)
        .collect();
    // Step 0 holds two points (the late one and the first logged); 3000 is the NaN.
    assert_eq!(sampled, vec![0, 0, 1000, 2000, 3000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_histories_are_packed_into_blocks_and_read_back_in_order_once() {
    let (dir, store) = store().await;
    let run = run_in(&store, "0").await.info.run_id;
    check_packed_history(&store, &run).await;
    let pool = raw(dir.path()).await;
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM metric_blocks").await, 2);
    assert_eq!(
        count(&pool, "SELECT SUM(points) FROM metric_blocks").await,
        2048
    );
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM metrics").await,
        3003 - 2048
    );

    // Removing the run removes its blocks too.
    store.delete_run(&run).await.unwrap();
    assert!(store.hard_delete_run(&run, false).await.unwrap());
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM metric_blocks").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_fill_blocks_as_they_are_logged_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(dir.path()).await.unwrap();
    let run = run_in(&store, "0").await.info.run_id;
    // Logged a point at a time, as a training loop does: each block is packed beside the
    // writer once the series fills it.
    for i in 0..1100 {
        store
            .log_metric(&run, &metric("acc", 0.25, i, i))
            .await
            .unwrap();
    }
    let pool = raw(dir.path()).await;
    let blocks_of = |key: &'static str| {
        let pool = pool.clone();
        async move {
            let sql = format!("SELECT COUNT(*) FROM metric_blocks WHERE key = '{key}'");
            for _ in 0..100 {
                if count(&pool, &sql).await > 0 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            count(&pool, &sql).await
        }
    };
    assert_eq!(blocks_of("acc").await, 1);
    // Points an older mlox wrote, one row each, are found and packed when the store opens.
    drop(store);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO metrics (run_uuid, key, step, timestamp, value, is_nan) \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1499) \
         SELECT '{run}', 'f1', i, i, 0.5, 0 FROM n"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let store = open_at(dir.path()).await.unwrap();
    assert_eq!(blocks_of("f1").await, 1);
    assert_eq!(history(&store, &run, "f1").await.len(), 1500);
    assert_eq!(history(&store, &run, "acc").await.len(), 1100);
}

#[tokio::test]
async fn bulk_interval_sampling_keeps_the_first_and_last_steps() {
    let (_dir, store) = store().await;
    let a = run_in(&store, "0").await.info.run_id;
    let b = run_in(&store, "0").await.info.run_id;
    let points: Vec<Metric> = (0..100).map(|s| metric("loss", s as f64, s, s)).collect();
    store.log_batch(&a, &points, &[], &[]).await.unwrap();
    store
        .log_batch(&b, &[metric("loss", 1.0, 1, 3)], &[], &[])
        .await
        .unwrap();

    let sampled = store
        .get_metric_history_bulk_interval(&[a.clone(), b.clone()], "loss", None, None, 10)
        .await
        .unwrap();
    let steps_a: Vec<i64> = sampled
        .iter()
        .filter(|m| m.run_id.as_deref() == Some(a.as_str()))
        .map(|m| m.step)
        .collect();
    assert_eq!(steps_a.len(), 10, "{steps_a:?}");
    assert_eq!((steps_a[0], steps_a[9]), (0, 99));
    assert!(steps_a.windows(2).all(|w| w[0] < w[1]), "{steps_a:?}");
    let steps_b: Vec<i64> = sampled
        .iter()
        .filter(|m| m.run_id.as_deref() == Some(b.as_str()))
        .map(|m| m.step)
        .collect();
    assert_eq!(steps_b, vec![3]);

    // Steps with gaps between them are sampled by position, as contiguous ones are.
    let gapped = run_in(&store, "0").await.info.run_id;
    let steps = sampled_steps_of_gapped_history(&store, &gapped, 100, 2, 10).await;
    assert_eq!(steps, vec![0, 22, 44, 66, 88, 110, 132, 154, 176, 198]);
    let contiguous: Vec<i64> = steps_a.iter().map(|s| 2 * s).collect();
    assert_eq!(
        steps, contiguous,
        "the same positions whether or not steps have gaps"
    );

    let window = store
        .get_metric_history_bulk_interval(std::slice::from_ref(&a), "loss", Some(20), Some(30), 4)
        .await
        .unwrap();
    let steps: Vec<i64> = window.iter().map(|m| m.step).collect();
    assert_eq!((steps.first(), steps.last()), (Some(&20), Some(&30)));
    assert!(steps.len() <= 4);

    assert_eq!(
        code(
            store
                .get_metric_history_bulk_interval(&[], "loss", None, None, 10)
                .await
        ),
        Code::InvalidParameterValue
    );
    assert_eq!(
        code(
            store
                .get_metric_history_bulk_interval(&[a], "loss", None, None, 0)
                .await
        ),
        Code::InvalidParameterValue
    );
}

fn dataset(name: &str, digest: &str, context: Option<&str>) -> DatasetInput {
    DatasetInput {
        tags: context
            .map(|c| vec![kv("mlflow.data.context", c)])
            .unwrap_or_default(),
        dataset: Dataset {
            name: name.into(),
            digest: digest.into(),
            source_type: "local".into(),
            source: "{\"uri\": \"/data\"}".into(),
            schema: None,
            profile: Some("{\"num_rows\": 3}".into()),
        },
    }
}

#[tokio::test]
async fn log_inputs_shares_one_dataset_per_experiment_and_keeps_context_tags() {
    let (dir, store) = store().await;
    let exp = experiment(&store, "e").await;
    let a = run_in(&store, &exp).await.info.run_id;
    let b = run_in(&store, &exp).await.info.run_id;
    let c = run_in(&store, "0").await.info.run_id;

    store
        .log_inputs(&a, &[dataset("train", "d1", Some("training"))], &[])
        .await
        .unwrap();
    // Logging the same dataset to the same run again adds nothing.
    store
        .log_inputs(&a, &[dataset("train", "d1", Some("training"))], &[])
        .await
        .unwrap();
    store
        .log_inputs(&b, &[dataset("train", "d1", Some("eval"))], &[])
        .await
        .unwrap();
    store
        .log_inputs(&c, &[dataset("train", "d1", None)], &[])
        .await
        .unwrap();

    let run_a = store.get_run(&a).await.unwrap();
    assert_eq!(
        run_a.inputs.dataset_inputs,
        vec![dataset("train", "d1", Some("training"))]
    );
    let run_b = store.get_run(&b).await.unwrap();
    assert_eq!(
        run_b.inputs.dataset_inputs,
        vec![dataset("train", "d1", Some("eval"))]
    );

    let pool = raw(dir.path()).await;
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM datasets").await,
        2,
        "one per experiment"
    );
    assert_eq!(
        count(&pool, "SELECT COUNT(*) FROM inputs").await,
        3,
        "one per run"
    );
}

#[tokio::test]
async fn log_outputs_links_existing_logged_models_to_the_run() {
    let (_dir, store) = store().await;
    let run = run_in(&store, "0").await.info.run_id;
    let model = store
        .create_logged_model("0", Some("m"), None, Some(&run), &[], &[])
        .await
        .unwrap();
    let model_id = model.info.model_id.clone();
    assert!(store.get_run(&run).await.unwrap().outputs.is_none());

    store
        .log_outputs(
            &run,
            &[ModelOutput {
                model_id: model_id.clone(),
                step: 4,
            }],
        )
        .await
        .unwrap();
    let outputs = store.get_run(&run).await.unwrap().outputs.unwrap();
    assert_eq!(
        outputs.model_outputs,
        vec![ModelOutput { model_id, step: 4 }]
    );

    let e = err(store
        .log_outputs(
            &run,
            &[ModelOutput {
                model_id: "m-missing".into(),
                step: 0,
            }],
        )
        .await);
    assert_eq!(e.code, Code::ResourceDoesNotExist);
    assert_eq!(e.message, "Logged model with ID 'm-missing' not found.");
}

// --------------------------------------------------------------------------- search_runs

/// Three runs in one experiment with distinguishable metrics, params, tags and datasets.
async fn search_fixture(store: &SqlStore) -> (String, [String; 3]) {
    let exp = experiment(store, "search").await;
    let a = named_run(store, &exp, "alpha", 1000).await;
    let b = named_run(store, &exp, "Beta", 2000).await;
    let c = named_run(store, &exp, "gamma", 3000).await;
    store
        .log_batch(
            &a,
            &[metric("acc", 0.9, 1, 0)],
            &[kv("model", "cnn")],
            &[kv("team", "Vision")],
        )
        .await
        .unwrap();
    store
        .log_batch(
            &b,
            &[metric("acc", 0.5, 1, 0)],
            &[kv("model", "rnn")],
            &[kv("team", "vision")],
        )
        .await
        .unwrap();
    store
        .log_inputs(&a, &[dataset("train", "d1", Some("training"))], &[])
        .await
        .unwrap();
    store
        .log_inputs(&c, &[dataset("holdout", "d2", Some("eval"))], &[])
        .await
        .unwrap();
    store
        .update_run(&c, Some(RunStatus::Finished), Some(3500), None)
        .await
        .unwrap();
    (exp, [a, b, c])
}

#[tokio::test]
async fn search_runs_filters_on_metrics_params_tags_and_attributes() {
    let (_dir, store) = store().await;
    let (exp, _) = search_fixture(&store).await;
    let e = [exp.as_str()];
    assert_eq!(search(&store, &e, "metrics.acc > 0.6").await, ["alpha"]);
    assert_eq!(
        search(&store, &e, "metrics.acc <= 0.9").await,
        ["Beta", "alpha"]
    );
    assert_eq!(search(&store, &e, "params.model = 'rnn'").await, ["Beta"]);
    assert_eq!(search(&store, &e, "params.model != 'rnn'").await, ["alpha"]);
    assert_eq!(search(&store, &e, "tags.team = 'vision'").await, ["Beta"]);
    assert_eq!(
        search(&store, &e, "attributes.status = 'FINISHED'").await,
        ["gamma"]
    );
    assert_eq!(
        search(&store, &e, "attributes.run_name = 'alpha'").await,
        ["alpha"]
    );
    assert_eq!(
        search(&store, &e, "attributes.start_time >= 2000").await,
        ["Beta", "gamma"]
    );
    assert_eq!(
        search(&store, &e, "metrics.acc > 0.1 AND params.model = 'cnn'").await,
        ["alpha"]
    );
    assert!(search(&store, &e, "metrics.missing > 0").await.is_empty());
}

#[tokio::test]
async fn search_runs_filters_on_datasets() {
    let (_dir, store) = store().await;
    let (exp, _) = search_fixture(&store).await;
    let e = [exp.as_str()];
    assert_eq!(
        search(&store, &e, "dataset.name = 'train'").await,
        ["alpha"]
    );
    assert_eq!(search(&store, &e, "dataset.digest = 'd2'").await, ["gamma"]);
    assert_eq!(
        search(&store, &e, "dataset.context = 'eval'").await,
        ["gamma"]
    );
    assert_eq!(
        search(&store, &e, "dataset.name IN ('train', 'holdout')").await,
        ["alpha", "gamma"]
    );
}

#[tokio::test]
async fn like_is_case_sensitive_and_ilike_is_not() {
    let (_dir, store) = store().await;
    let (exp, _) = search_fixture(&store).await;
    let e = [exp.as_str()];
    assert_eq!(search(&store, &e, "tags.team LIKE 'V%'").await, ["alpha"]);
    assert_eq!(search(&store, &e, "tags.team LIKE 'v%'").await, ["Beta"]);
    assert_eq!(
        search(&store, &e, "tags.team ILIKE 'V%'").await,
        ["Beta", "alpha"]
    );
    assert_eq!(
        search(&store, &e, "attributes.run_name LIKE 'b%'").await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(&store, &e, "attributes.run_name ILIKE 'b%'").await,
        ["Beta"]
    );
    assert_eq!(
        search(&store, &e, "attributes.run_name LIKE '_lpha'").await,
        ["alpha"]
    );
}

#[tokio::test]
async fn run_id_in_and_not_in_select_exactly_the_listed_runs() {
    let (_dir, store) = store().await;
    let (exp, [a, b, _c]) = search_fixture(&store).await;
    let e = [exp.as_str()];
    assert_eq!(
        search(&store, &e, &format!("attributes.run_id IN ('{a}', '{b}')")).await,
        ["Beta", "alpha"]
    );
    assert_eq!(
        search(&store, &e, &format!("attributes.run_id NOT IN ('{a}')")).await,
        ["Beta", "gamma"]
    );
}

#[tokio::test]
async fn ordering_by_a_metric_puts_runs_without_it_last_in_both_directions() {
    let (_dir, store) = store().await;
    let (exp, _) = search_fixture(&store).await;
    let ids = [exp];
    for (order, expected) in [
        ("metrics.acc ASC", ["Beta", "alpha", "gamma"]),
        ("metrics.acc DESC", ["alpha", "Beta", "gamma"]),
    ] {
        let names: Vec<String> = store
            .search_runs(
                &ids,
                None,
                ViewType::ActiveOnly,
                None,
                &[order.into()],
                None,
            )
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.info.run_name)
            .collect();
        assert_eq!(names, expected, "{order}");
    }
    // Without an order the newest run comes first.
    let names: Vec<String> = store
        .search_runs(&ids, None, ViewType::ActiveOnly, None, &[], None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.info.run_name)
        .collect();
    assert_eq!(names, ["gamma", "Beta", "alpha"]);
}

#[tokio::test]
async fn paging_through_search_results_returns_every_run_exactly_once() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "paging").await;
    let mut created = HashSet::new();
    for i in 0..7 {
        // Equal start times force the tiebreaker to keep pages stable.
        created.insert(named_run(&store, &exp, &format!("r{i}"), 5).await);
    }
    let ids = [exp];
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store
            .search_runs(
                &ids,
                None,
                ViewType::ActiveOnly,
                Some(3),
                &[],
                token.as_deref(),
            )
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|r| r.info.run_id));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), created);
}

#[tokio::test]
async fn view_types_select_active_deleted_or_all_runs() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "views").await;
    let live = named_run(&store, &exp, "live", 1).await;
    let gone = named_run(&store, &exp, "gone", 2).await;
    store.delete_run(&gone).await.unwrap();
    let ids = [exp];
    let names = |view: ViewType| {
        let store = store.clone();
        let ids = ids.clone();
        async move {
            store
                .search_runs(&ids, None, view, None, &[], None)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|r| r.info.run_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(ViewType::ActiveOnly).await, vec![live.clone()]);
    assert_eq!(names(ViewType::DeletedOnly).await, vec![gone.clone()]);
    assert_eq!(names(ViewType::All).await, vec![gone, live]);
}

#[tokio::test]
async fn search_runs_bounds_max_results_and_rejects_bad_filters() {
    let (_dir, store) = store().await;
    let (exp, _) = search_fixture(&store).await;
    let ids = [exp];
    let e = err(store
        .search_runs(&ids, None, ViewType::ActiveOnly, Some(50_001), &[], None)
        .await);
    assert_eq!(e.code, Code::InvalidParameterValue);
    assert!(e.message.contains("50000"), "{}", e.message);
    assert!(
        store
            .search_runs(&ids, None, ViewType::ActiveOnly, Some(0), &[], None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let one = store
        .search_runs(&ids, None, ViewType::ActiveOnly, Some(1), &[], None)
        .await
        .unwrap();
    assert_eq!(one.items.len(), 1);
    assert!(one.next_page_token.is_some());
    assert_eq!(
        store
            .search_runs(&ids, None, ViewType::ActiveOnly, Some(50_000), &[], None)
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    for bad in [
        "metrics.acc >",
        "nonsense",
        "attributes.colour = 'red'",
        "metrics.acc > 'x'",
    ] {
        assert_eq!(
            code(
                store
                    .search_runs(&ids, Some(bad), ViewType::ActiveOnly, None, &[], None)
                    .await
            ),
            Code::InvalidParameterValue,
            "{bad}"
        );
    }
    assert_eq!(
        code(
            store
                .search_runs(
                    &ids,
                    None,
                    ViewType::ActiveOnly,
                    None,
                    &["bogus.x".into()],
                    None
                )
                .await
        ),
        Code::InvalidParameterValue
    );
}

// ------------------------------------------------------------------------- logged models

#[tokio::test]
async fn a_logged_model_is_created_pending_under_the_experiment_and_finalized() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "lm").await;
    let model = store
        .create_logged_model(
            &exp,
            Some("clf"),
            Some("sklearn"),
            None,
            &[kv("alpha", "0.5")],
            &[kv("stage", "dev")],
        )
        .await
        .unwrap();
    let id = model.info.model_id.clone();
    assert!(id.starts_with("m-"), "{id}");
    assert_eq!(
        model.info.artifact_uri,
        format!("mlflow-artifacts:/{exp}/models/{id}/artifacts")
    );
    assert_eq!(model.info.status, LoggedModelStatus::Pending);
    assert_eq!(model.info.experiment_id, exp);
    assert_eq!(model.info.tags, vec![kv("stage", "dev")]);
    assert_eq!(model.data.params, vec![kv("alpha", "0.5")]);
    assert_eq!(store.get_logged_model(&id).await.unwrap(), model);

    let ready = store
        .finalize_logged_model(&id, LoggedModelStatus::Ready)
        .await
        .unwrap();
    assert_eq!(ready.info.status, LoggedModelStatus::Ready);
    assert_eq!(
        code(
            store
                .finalize_logged_model(&id, LoggedModelStatus::Pending)
                .await
        ),
        Code::InvalidParameterValue
    );

    let tagged = store
        .set_logged_model_tags(&id, &[kv("stage", "prod"), kv("owner", "me")])
        .await
        .unwrap();
    assert_eq!(
        tagged.info.tags,
        vec![kv("owner", "me"), kv("stage", "prod")]
    );
    store.delete_logged_model_tag(&id, "owner").await.unwrap();
    assert_eq!(
        code(store.delete_logged_model_tag(&id, "owner").await),
        Code::ResourceDoesNotExist
    );

    store.delete_logged_model(&id).await.unwrap();
    let e = err(store.get_logged_model(&id).await);
    assert_eq!(e.code, Code::ResourceDoesNotExist);
    assert_eq!(e.message, format!("Logged model with ID '{id}' not found."));
}

#[tokio::test]
async fn a_logged_model_source_run_must_belong_to_its_experiment() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "lm").await;
    let run = run_in(&store, "0").await.info.run_id;
    assert_eq!(
        code(
            store
                .create_logged_model(&exp, None, None, Some(&run), &[], &[])
                .await
        ),
        Code::InvalidParameterValue
    );
    let unnamed = store
        .create_logged_model("0", None, None, Some(&run), &[], &[])
        .await
        .unwrap();
    assert!(
        unnamed.info.name.starts_with("model-"),
        "{}",
        unnamed.info.name
    );
    assert_eq!(unnamed.info.source_run_id.as_deref(), Some(run.as_str()));
}

#[tokio::test]
async fn logged_model_search_filters_orders_and_hides_deleted_models() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "lm").await;
    let mut ids = Vec::new();
    for name in ["b", "a", "c"] {
        ids.push(
            store
                .create_logged_model(&exp, Some(name), None, None, &[], &[kv("n", name)])
                .await
                .unwrap()
                .info
                .model_id,
        );
    }
    store.delete_logged_model(&ids[2]).await.unwrap();
    let exps = [exp];
    let names = |filter: Option<&'static str>, ascending: bool| {
        let store = store.clone();
        let exps = exps.clone();
        async move {
            store
                .search_logged_models(
                    &exps,
                    filter,
                    &[],
                    None,
                    &[LoggedModelOrder {
                        field_name: "name".into(),
                        ascending,
                    }],
                    None,
                )
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|m| m.info.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names(None, true).await, ["a", "b"]);
    assert_eq!(names(None, false).await, ["b", "a"]);
    assert_eq!(names(Some("name = 'a'"), true).await, ["a"]);
    assert_eq!(names(Some("tags.n = 'b'"), true).await, ["b"]);
    assert_eq!(
        code(
            store
                .search_logged_models(&[], None, &[], None, &[], None)
                .await
        ),
        Code::InvalidParameterValue
    );
    assert_eq!(
        code(
            store
                .search_logged_models(&exps, None, &[], Some(51), &[], None)
                .await
        ),
        Code::InvalidParameterValue
    );
}

#[tokio::test]
async fn a_logged_model_lists_the_model_versions_registered_from_it() {
    let (_dir, store) = store().await;
    let model = store
        .create_logged_model("0", Some("m"), None, None, &[], &[])
        .await
        .unwrap();
    let id = model.info.model_id.clone();
    assert!(model.info.registrations.is_empty());
    store
        .create_registered_model("reg", &[], None)
        .await
        .unwrap();
    store
        .create_model_version(NewModelVersion {
            model_id: Some(id.clone()),
            ..version("reg", &format!("models:/{id}"))
        })
        .await
        .unwrap();
    let regs = store
        .get_logged_model(&id)
        .await
        .unwrap()
        .info
        .registrations;
    assert_eq!(regs.len(), 1);
    assert_eq!(
        (regs[0].name.as_str(), regs[0].version.as_str()),
        ("reg", "1")
    );
}

// ------------------------------------------------------------------------------ registry

#[tokio::test]
async fn a_duplicate_registered_model_name_is_refused() {
    let (_dir, store) = store().await;
    store.create_registered_model("m", &[], None).await.unwrap();
    let e = err(store.create_registered_model("m", &[], None).await);
    assert_eq!(e.code, Code::ResourceAlreadyExists);
    assert_eq!(e.message, "Registered Model (name=m) already exists.");
    let e = err(store.get_registered_model("nope").await);
    assert_eq!(e.code, Code::ResourceDoesNotExist);
    assert_eq!(e.message, "Registered Model with name=nope not found");
    assert_eq!(
        code(
            store
                .create_model_version(version("nope", "s3://b/m"))
                .await
        ),
        Code::ResourceDoesNotExist
    );
}

#[tokio::test]
async fn versions_are_numbered_without_gaps_and_a_deleted_number_is_never_reused() {
    let (_dir, store) = store().await;
    model_with_versions(&store, "m", 3).await;
    store.delete_model_version("m", "3").await.unwrap();
    store.delete_model_version("m", "2").await.unwrap();
    let e = err(store.get_model_version("m", "3").await);
    assert_eq!(e.code, Code::ResourceDoesNotExist);
    assert_eq!(e.message, "Model Version (name=m, version=3) not found");
    let next = store
        .create_model_version(version("m", "s3://bucket/model"))
        .await
        .unwrap();
    assert_eq!(next.version, "4");
    let listed: Vec<String> = store
        .search_model_versions(Some("name = 'm'"), None, &[], None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(listed, ["4", "1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_version_creation_numbers_versions_one_to_n() {
    let (_dir, store) = store().await;
    store.create_registered_model("m", &[], None).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_model_version(version("m", "s3://bucket/model"))
                    .await
                    .map(|v| v.version.parse::<i64>().unwrap())
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap().unwrap());
    }
    numbers.sort();
    assert_eq!(numbers, (1..=16).collect::<Vec<_>>());
}

#[tokio::test]
async fn transitioning_with_archive_existing_versions_archives_the_others_in_that_stage() {
    let (_dir, store) = store().await;
    model_with_versions(&store, "m", 3).await;
    store
        .transition_model_version_stage("m", "1", "production", false)
        .await
        .unwrap();
    store
        .transition_model_version_stage("m", "2", "Production", false)
        .await
        .unwrap();
    store
        .transition_model_version_stage("m", "3", "Staging", false)
        .await
        .unwrap();
    let v3 = store
        .transition_model_version_stage("m", "3", "Production", true)
        .await
        .unwrap();
    assert_eq!(v3.current_stage, "Production");
    for v in ["1", "2"] {
        assert_eq!(
            store.get_model_version("m", v).await.unwrap().current_stage,
            "Archived"
        );
    }
    assert_eq!(
        code(
            store
                .transition_model_version_stage("m", "1", "Archived", true)
                .await
        ),
        Code::InvalidParameterValue
    );
    assert_eq!(
        code(
            store
                .transition_model_version_stage("m", "1", "Shipped", false)
                .await
        ),
        Code::InvalidParameterValue
    );
    assert_eq!(
        code(
            store
                .transition_model_version_stage("m", "9", "Staging", false)
                .await
        ),
        Code::ResourceDoesNotExist
    );
}

#[tokio::test]
async fn latest_versions_are_the_newest_version_in_each_stage() {
    let (_dir, store) = store().await;
    model_with_versions(&store, "m", 4).await;
    store
        .transition_model_version_stage("m", "1", "Production", false)
        .await
        .unwrap();
    store
        .transition_model_version_stage("m", "2", "Production", false)
        .await
        .unwrap();
    store
        .transition_model_version_stage("m", "3", "Staging", false)
        .await
        .unwrap();
    let by_stage = |versions: Vec<mlox_core::entities::ModelVersion>| {
        versions
            .into_iter()
            .map(|v| (v.current_stage, v.version))
            .collect::<Vec<_>>()
    };
    let all = by_stage(store.get_latest_versions("m", &[]).await.unwrap());
    assert_eq!(all.len(), 3);
    for pair in [("Production", "2"), ("Staging", "3"), ("None", "4")] {
        assert!(all.contains(&(pair.0.into(), pair.1.into())), "{all:?}");
    }
    assert_eq!(
        by_stage(
            store
                .get_latest_versions("m", &["production".into()])
                .await
                .unwrap()
        ),
        vec![("Production".to_string(), "2".to_string())]
    );
    assert_eq!(
        store
            .get_registered_model("m")
            .await
            .unwrap()
            .latest_versions
            .len(),
        3
    );
    assert_eq!(
        code(store.get_latest_versions("m", &["Bogus".into()]).await),
        Code::InvalidParameterValue
    );
}

#[tokio::test]
async fn aliases_refuse_reserved_names_move_between_versions_and_can_be_deleted() {
    let (_dir, store) = store().await;
    model_with_versions(&store, "m", 2).await;
    for reserved in ["latest", "Latest", "v1", "V12"] {
        let e = err(store.set_registered_model_alias("m", reserved, "1").await);
        assert_eq!(e.code, Code::InvalidParameterValue);
        assert!(e.message.contains("reserved"), "{}", e.message);
    }
    store
        .set_registered_model_alias("m", "champion", "1")
        .await
        .unwrap();
    assert_eq!(
        store
            .get_model_version_by_alias("m", "champion")
            .await
            .unwrap()
            .version,
        "1"
    );
    store
        .set_registered_model_alias("m", "champion", "2")
        .await
        .unwrap();
    assert_eq!(
        store
            .get_model_version_by_alias("m", "champion")
            .await
            .unwrap()
            .version,
        "2"
    );
    assert!(
        store
            .get_model_version("m", "1")
            .await
            .unwrap()
            .aliases
            .is_empty()
    );
    assert_eq!(
        store.get_model_version("m", "2").await.unwrap().aliases,
        ["champion"]
    );
    let model = store.get_registered_model("m").await.unwrap();
    assert_eq!(model.aliases.len(), 1);
    assert_eq!(
        (
            model.aliases[0].alias.as_str(),
            model.aliases[0].version.as_str()
        ),
        ("champion", "2")
    );

    store
        .delete_registered_model_alias("m", "champion")
        .await
        .unwrap();
    assert_eq!(
        code(store.get_model_version_by_alias("m", "champion").await),
        Code::InvalidParameterValue
    );
    assert_eq!(
        code(store.set_registered_model_alias("m", "x", "7").await),
        Code::ResourceDoesNotExist
    );
    // Deleting a version takes its aliases with it.
    store
        .set_registered_model_alias("m", "gone", "1")
        .await
        .unwrap();
    store.delete_model_version("m", "1").await.unwrap();
    assert!(
        store
            .get_registered_model("m")
            .await
            .unwrap()
            .aliases
            .is_empty()
    );
}

#[tokio::test]
async fn renaming_a_registered_model_carries_its_versions_tags_and_aliases() {
    let (_dir, store) = store().await;
    store
        .create_registered_model("old", &[kv("team", "a")], Some("desc"))
        .await
        .unwrap();
    store
        .create_model_version(NewModelVersion {
            tags: vec![kv("v", "1")],
            ..version("old", "s3://bucket/model")
        })
        .await
        .unwrap();
    store
        .set_registered_model_alias("old", "prod", "1")
        .await
        .unwrap();
    store
        .create_registered_model("taken", &[], None)
        .await
        .unwrap();
    assert_eq!(
        code(store.rename_registered_model("old", "taken").await),
        Code::ResourceAlreadyExists
    );

    let renamed = store.rename_registered_model("old", "new").await.unwrap();
    assert_eq!(renamed.name, "new");
    assert_eq!(renamed.tags, vec![kv("team", "a")]);
    assert_eq!(renamed.description.as_deref(), Some("desc"));
    assert_eq!(renamed.aliases.len(), 1);
    let v = store.get_model_version("new", "1").await.unwrap();
    assert_eq!(
        (v.name.as_str(), v.tags.clone(), v.aliases.clone()),
        ("new", vec![kv("v", "1")], vec!["prod".to_string()])
    );
    assert_eq!(
        code(store.get_registered_model("old").await),
        Code::ResourceDoesNotExist
    );
    assert_eq!(
        code(store.get_model_version("old", "1").await),
        Code::ResourceDoesNotExist
    );
    // Numbering continues after the rename.
    assert_eq!(
        store
            .create_model_version(version("new", "s3://bucket/model"))
            .await
            .unwrap()
            .version,
        "2"
    );
}

#[tokio::test]
async fn deleting_a_registered_model_removes_its_versions_tags_and_aliases() {
    let (dir, store) = store().await;
    store
        .create_registered_model("m", &[kv("t", "1")], None)
        .await
        .unwrap();
    store
        .create_model_version(NewModelVersion {
            tags: vec![kv("v", "1")],
            ..version("m", "s3://bucket/model")
        })
        .await
        .unwrap();
    store
        .set_registered_model_alias("m", "a", "1")
        .await
        .unwrap();
    store.delete_registered_model("m").await.unwrap();

    assert_eq!(
        code(store.get_registered_model("m").await),
        Code::ResourceDoesNotExist
    );
    assert_eq!(
        code(store.get_model_version("m", "1").await),
        Code::ResourceDoesNotExist
    );
    assert!(
        store
            .search_model_versions(Some("name = 'm'"), None, &[], None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let pool = raw(dir.path()).await;
    for table in [
        "registered_model_tags",
        "model_versions",
        "model_version_tags",
        "registered_model_aliases",
    ] {
        assert_eq!(
            count(
                &pool,
                &format!("SELECT COUNT(*) FROM {table} WHERE name = 'm'")
            )
            .await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        code(store.delete_registered_model("m").await),
        Code::ResourceDoesNotExist
    );
}

#[tokio::test]
async fn registry_search_treats_a_missing_tag_as_not_equal() {
    let (_dir, store) = store().await;
    store
        .create_registered_model("plain", &[], None)
        .await
        .unwrap();
    store
        .create_registered_model("prompt", &[kv("mlflow.prompt.is_prompt", "true")], None)
        .await
        .unwrap();
    store
        .create_registered_model(
            "not-prompt",
            &[kv("mlflow.prompt.is_prompt", "false")],
            None,
        )
        .await
        .unwrap();
    let names = |filter: &'static str| {
        let store = store.clone();
        async move {
            store
                .search_registered_models(Some(filter), None, &[], None)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        names("tag.`mlflow.prompt.is_prompt` != 'true'").await,
        ["not-prompt", "plain"]
    );
    assert_eq!(
        names("tag.`mlflow.prompt.is_prompt` = 'true'").await,
        ["prompt"]
    );
    assert_eq!(names("name LIKE 'p%'").await, ["plain", "prompt"]);
    assert_eq!(names("name ILIKE 'P%'").await, ["plain", "prompt"]);

    for _ in 0..2 {
        store
            .create_model_version(version("plain", "s3://bucket/p"))
            .await
            .unwrap();
    }
    store
        .create_model_version(NewModelVersion {
            tags: vec![kv("mlflow.prompt.is_prompt", "true")],
            ..version("prompt", "dummy-source")
        })
        .await
        .unwrap();
    // A prompt version's source is a placeholder, never an artifact location.
    let e = err(store
        .create_model_version(NewModelVersion {
            tags: vec![kv("mlflow.prompt.is_prompt", "true")],
            ..version("prompt", "s3://bucket/p")
        })
        .await);
    assert!(
        e.message.starts_with("Invalid prompt source"),
        "{}",
        e.message
    );
    let versions: Vec<(String, String)> = store
        .search_model_versions(
            Some("tag.`mlflow.prompt.is_prompt` != 'true'"),
            None,
            &[],
            None,
        )
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|v| (v.name, v.version))
        .collect();
    assert_eq!(
        versions,
        [
            ("plain".to_string(), "2".to_string()),
            ("plain".to_string(), "1".to_string())
        ]
    );
    assert_eq!(
        code(
            store
                .search_registered_models(Some("bogus.x = 1"), None, &[], None)
                .await
        ),
        Code::InvalidParameterValue
    );
}

#[tokio::test]
async fn a_version_made_from_a_logged_model_downloads_from_the_models_artifact_location() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "e").await;
    let model = store
        .create_logged_model(&exp, Some("m"), None, None, &[], &[])
        .await
        .unwrap();
    let id = model.info.model_id.clone();
    store
        .create_registered_model("reg", &[], None)
        .await
        .unwrap();
    let v = store
        .create_model_version(NewModelVersion {
            model_id: Some(id.clone()),
            ..version("reg", &format!("models:/{id}"))
        })
        .await
        .unwrap();
    assert_eq!(v.source, format!("models:/{id}"));
    assert_eq!(v.model_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        store
            .get_model_version_download_uri("reg", "1")
            .await
            .unwrap(),
        format!("mlflow-artifacts:/{exp}/models/{id}/artifacts")
    );
    // A plain source downloads from itself.
    store
        .create_model_version(version("reg", "s3://bucket/elsewhere"))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_model_version_download_uri("reg", "2")
            .await
            .unwrap(),
        "s3://bucket/elsewhere"
    );
    assert_eq!(
        code(store.get_model_version_download_uri("reg", "3").await),
        Code::ResourceDoesNotExist
    );
}

#[tokio::test]
async fn model_version_sources_must_match_the_run_or_model_they_claim() {
    let (_dir, store) = store().await;
    let run = run_in(&store, "0").await.info.run_id;
    let other = run_in(&store, "0").await.info.run_id;
    store.create_registered_model("m", &[], None).await.unwrap();

    let with_run = |source: String, run_id: &str| NewModelVersion {
        run_id: Some(run_id.into()),
        ..version("m", &source)
    };
    let ok = store
        .create_model_version(with_run(format!("runs:/{run}/model"), &run))
        .await
        .unwrap();
    assert_eq!(ok.run_id, run);
    let e = err(store
        .create_model_version(with_run(format!("runs:/{other}/model"), &run))
        .await);
    assert_eq!(e.code, Code::InvalidParameterValue);
    assert!(
        e.message.starts_with("Invalid model version source"),
        "{}",
        e.message
    );

    // Artifacts of the named run are fine; another run's are not.
    store
        .create_model_version(with_run(
            format!("mlflow-artifacts:/0/{run}/artifacts/model"),
            &run,
        ))
        .await
        .unwrap();
    assert_eq!(
        code(
            store
                .create_model_version(with_run(
                    format!("mlflow-artifacts:/0/{other}/artifacts/model"),
                    &run,
                ))
                .await
        ),
        Code::InvalidParameterValue
    );

    for relative in [
        "s3://bucket/models/../../secrets",
        "/abs/../etc/passwd",
        "mlflow-artifacts:/0/..%2f..%2fx",
    ] {
        let e = err(store.create_model_version(version("m", relative)).await);
        assert_eq!(e.code, Code::InvalidParameterValue, "{relative}");
    }
    let e = err(store
        .create_model_version(version("m", "/local/model"))
        .await);
    assert_eq!(e.code, Code::InvalidParameterValue);
    assert!(e.message.contains("local path"), "{}", e.message);

    // A logged-model source needs the model id it names.
    let model = store
        .create_logged_model("0", None, None, None, &[], &[])
        .await
        .unwrap();
    assert_eq!(
        code(
            store
                .create_model_version(version("m", &format!("models:/{}", model.info.model_id)))
                .await
        ),
        Code::InvalidParameterValue
    );
    assert_eq!(
        code(store.create_model_version(version("m", "")).await),
        Code::InvalidParameterValue
    );
}

#[tokio::test]
async fn model_version_tags_and_descriptions_are_updated_in_place() {
    let (_dir, store) = store().await;
    model_with_versions(&store, "m", 1).await;
    store
        .set_model_version_tag("m", "1", &kv("k", "1"))
        .await
        .unwrap();
    store
        .set_model_version_tag("m", "1", &kv("k", "2"))
        .await
        .unwrap();
    let v = store
        .update_model_version("m", "1", Some("about"))
        .await
        .unwrap();
    assert_eq!(
        (v.tags.clone(), v.description.as_str()),
        (vec![kv("k", "2")], "about")
    );
    store.delete_model_version_tag("m", "1", "k").await.unwrap();
    assert!(
        store
            .get_model_version("m", "1")
            .await
            .unwrap()
            .tags
            .is_empty()
    );
    assert_eq!(
        code(store.get_model_version("m", "one").await),
        Code::InvalidParameterValue
    );
}

// -------------------------------------------------------------------------------- schema

#[tokio::test]
async fn reopening_an_existing_database_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let (exp, run) = {
        let store = open_at(dir.path()).await.unwrap();
        let exp = experiment(&store, "kept").await;
        let run = run_in(&store, &exp).await.info.run_id;
        store.log_param(&run, &kv("p", "1")).await.unwrap();
        store.create_registered_model("m", &[], None).await.unwrap();
        (exp, run)
    };
    let store = open_at(dir.path()).await.unwrap();
    assert_eq!(store.get_experiment(&exp).await.unwrap().name, "kept");
    assert_eq!(
        store.get_run(&run).await.unwrap().data.params,
        vec![kv("p", "1")]
    );
    store.get_registered_model("m").await.unwrap();
    assert_eq!(
        store.schema_version().await.unwrap(),
        mlox_store::SCHEMA_VERSION
    );
    assert_eq!(experiment(&store, "next").await, "2");
}

#[tokio::test]
async fn a_database_from_a_newer_mlox_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(dir.path()).await.unwrap();
    drop(store);
    let pool = raw(dir.path()).await;
    sqlx::query("INSERT INTO mlox_schema (version, name, applied_at) VALUES (999, 'future', 0)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let e = err(open_at(dir.path()).await);
    assert_eq!(e.code, Code::InvalidState);
    assert!(
        e.message
            .contains("The database schema is at version 999, newer than this mlox understands"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_database_at_an_older_schema_is_refused_until_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_at(dir.path()).await.unwrap());
    // Roll the record back as if the database came from an mlox that knew only migration 1.
    let pool = raw(dir.path()).await;
    undo_migrations_after(&pool, 1).await;
    pool.close().await;

    let e = err(open_at(dir.path()).await);
    assert_eq!(e.code, Code::InvalidState);
    assert!(
        e.message.contains("older than this mlox")
            && e.message.contains("`mlox db upgrade sqlite:///"),
        "{}",
        e.message
    );

    let upgraded = SqlStore::open_and_upgrade(StoreOptions {
        uri: format!("sqlite:///{}/t.db", dir.path().display()),
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 2,
    })
    .await
    .unwrap();
    assert_eq!(
        upgraded.schema_version().await.unwrap(),
        mlox_store::SCHEMA_VERSION
    );
    upgraded
        .create_registered_model("m", &[], None)
        .await
        .unwrap();
    upgraded
        .create_evaluation_dataset("ds", &[], &[])
        .await
        .unwrap();
    drop(upgraded);
    open_at(dir.path()).await.unwrap();
}

// ---------------------------------------------------------------------------- postgresql

/// The PostgreSQL server every machine runs for the test suites.
fn pg_server() -> String {
    std::env::var("MLOX_TEST_PG_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_string()
}

/// A fresh, empty PostgreSQL database; its URI in MLflow's form.
async fn fresh_pg_database() -> String {
    sqlx::any::install_default_drivers();
    let server = pg_server();
    let admin = sqlx::AnyPool::connect(&format!(
        "{}/postgres",
        server.replacen("postgresql://", "postgres://", 1)
    ))
    .await
    .expect("PostgreSQL must be running at MLOX_TEST_PG_URL (default 127.0.0.1:5432)");
    let name = format!("mlox_store_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    format!("{server}/{name}")
}

/// Drops a database made by [`fresh_pg_database`], closing whatever still uses it.
async fn drop_pg_database(uri: &str) {
    let (server, name) = uri.rsplit_once('/').unwrap();
    let admin = sqlx::AnyPool::connect(&format!(
        "{}/postgres",
        server.replacen("postgresql://", "postgres://", 1)
    ))
    .await
    .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
}

async fn open_pg(uri: &str) -> mlox_core::Result<SqlStore> {
    SqlStore::open(StoreOptions {
        uri: uri.to_string(),
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 4,
    })
    .await
}

#[tokio::test]
async fn replicas_starting_together_on_an_empty_postgres_database_all_come_up() {
    let uri = fresh_pg_database().await;
    let opened = futures::future::join_all((0..4).map(|_| open_pg(&uri))).await;
    let stores: Vec<SqlStore> = opened.into_iter().map(|s| s.unwrap()).collect();
    for store in &stores {
        assert_eq!(
            store.schema_version().await.unwrap(),
            mlox_store::SCHEMA_VERSION
        );
    }
    // One schema, one default experiment, and every replica sees the others' writes.
    let exp = experiment(&stores[0], "shared").await;
    assert_eq!(stores[3].get_experiment(&exp).await.unwrap().name, "shared");
    drop(stores);
    drop_pg_database(&uri).await;
}

/// Rows a plan line says its node produced in all (rows × loops), if it is an analysed line.
fn actual_rows(line: &str) -> Option<u64> {
    let actual = &line[line.find("(actual ")?..];
    let rows: u64 = actual[actual.find("rows=")? + 5..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let loops: u64 = actual[actual.find("loops=")? + 6..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(rows * loops)
}

/// A run search with a filter and an order on a metric, as the benchmark and the UI send it,
/// walks the metric's (key, value) index in order and stops once the page is full; it never
/// joins every matching run and sorts them. Half the 4000 runs match the metric clause, a
/// quarter of those the param clause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_run_search_by_filter_and_metric_order_stops_at_the_page_end() {
    let uri = fresh_pg_database().await;
    let store = open_pg(&uri).await.unwrap();
    let exp = experiment(&store, "plans").await;
    let ids: Vec<u64> = (0..4000).collect();
    for chunk in ids.chunks(50) {
        futures::future::join_all(chunk.iter().map(|&i| {
            let store = &store;
            let exp = &exp;
            async move {
                let run = run_in(store, exp).await.info.run_id;
                let m1 = (i * 7919 % 4000) as f64 / 4000.0;
                store
                    .log_batch(
                        &run,
                        &[metric("m1", m1, 1, 0), metric("m2", 1.0, 1, 0)],
                        &[
                            kv("p1", ["a", "b", "c", "d"][(i % 4) as usize]),
                            kv("p2", "x"),
                        ],
                        &[kv("t1", &format!("group-{}", i % 10))],
                    )
                    .await
                    .unwrap();
            }
        }))
        .await;
    }
    let pool = sqlx::AnyPool::connect(&uri.replacen("postgresql://", "postgres://", 1))
        .await
        .unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();

    let filter = "metrics.m1 > 0.5 and params.p1 = 'a'";
    let order = ["metrics.m1 DESC".to_string()];
    let page = store
        .search_runs(
            std::slice::from_ref(&exp),
            Some(filter),
            mlox_core::entities::ViewType::ActiveOnly,
            Some(100),
            &order,
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 100);
    let values: Vec<f64> = page
        .items
        .iter()
        .map(|r| r.data.metrics.iter().find(|m| m.key == "m1").unwrap().value)
        .collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");

    let plan = store
        .explain_search_runs(std::slice::from_ref(&exp), Some(filter), Some(100), &order)
        .await
        .unwrap()
        .unwrap();
    let shown = plan.join("\n");
    let node = |l: &str| {
        l.trim_start()
            .trim_start_matches("->")
            .trim_start()
            .to_string()
    };
    assert!(
        !plan.iter().any(|l| node(l).starts_with("Sort  (")),
        "a full sort:\n{shown}"
    );
    let metric_rows: u64 = plan
        .iter()
        .filter(|l| l.contains("latest_metrics f0"))
        .filter_map(|l| actual_rows(l))
        .sum();
    assert!(
        metric_rows < 1000,
        "read {metric_rows} of the 2000 matching metric rows:\n{shown}"
    );
    drop(store);
    drop(pool);
    drop_pg_database(&uri).await;
}

#[tokio::test]
async fn postgres_follows_the_same_rules_as_sqlite() {
    let uri = fresh_pg_database().await;
    let store = open_pg(&uri).await.unwrap();
    let exp = experiment(&store, "pg").await;
    assert_eq!(exp, "1");
    let run = run_in(&store, &exp).await.info.run_id;
    store.log_param(&run, &kv("p", "1")).await.unwrap();
    let e = err(store.log_param(&run, &kv("p", "2")).await);
    assert_eq!(e.code, Code::InvalidParameterValue);
    let e = err(store.create_experiment("pg", None, &[]).await);
    assert_eq!(e.code, Code::ResourceAlreadyExists);
    store.create_registered_model("m", &[], None).await.unwrap();
    let e = err(store.create_registered_model("m", &[], None).await);
    assert_eq!(e.code, Code::ResourceAlreadyExists);
    // Sampling a history with gaps between its steps happens in the database, in
    // PostgreSQL's SQL too.
    let steps = sampled_steps_of_gapped_history(&store, &run, 50, 3, 5).await;
    assert_eq!(steps, vec![0, 36, 72, 108, 147]);
    // Packed histories read back the same from PostgreSQL's blocks.
    let long = run_in(&store, &exp).await.info.run_id;
    check_packed_history(&store, &long).await;
    drop(store);
    drop_pg_database(&uri).await;
}

// ------------------------------------------------------------------ concurrent writers

/// Concurrent log calls share commits on SQLite; each must still get its own answer: refusals
/// do not spill over onto the valid calls committed alongside them, and every accepted write
/// is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_log_calls_are_answered_one_by_one_even_when_committed_together() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "together").await;
    let live = run_in(&store, &exp).await.info.run_id;
    let gone = run_in(&store, &exp).await.info.run_id;
    store.delete_run(&gone).await.unwrap();
    store.log_param(&live, &kv("fixed", "1")).await.unwrap();

    let mut calls = Vec::new();
    for i in 0..60i64 {
        let store = store.clone();
        let (live, gone) = (live.clone(), gone.clone());
        calls.push(tokio::spawn(async move {
            let outcome = match i % 3 {
                0 => {
                    store
                        .log_batch(
                            &live,
                            &[metric("m", i as f64, 1000 + i, i)],
                            &[kv(&format!("p{i}"), "v")],
                            &[],
                        )
                        .await
                }
                1 => {
                    store
                        .log_batch(&gone, &[metric("m", 0.0, 1, 0)], &[], &[])
                        .await
                }
                _ => {
                    store
                        .log_batch(
                            &live,
                            &[metric("x", 0.0, 1, i)],
                            &[kv("fixed", &i.to_string())],
                            &[],
                        )
                        .await
                }
            };
            (i, outcome)
        }));
    }
    for call in calls {
        let (i, outcome) = call.await.unwrap();
        match i % 3 {
            0 => assert!(outcome.is_ok(), "{i}: {outcome:?}"),
            1 => assert_eq!(
                code(outcome),
                Code::InvalidParameterValue,
                "{i}: a deleted run"
            ),
            _ => {
                let e = err(outcome);
                assert!(
                    e.message.contains("Changing param values is not allowed"),
                    "{i}: {}",
                    e.message
                );
            }
        }
    }
    let steps: Vec<i64> = history(&store, &live, "m")
        .await
        .iter()
        .map(|m| m.step)
        .collect();
    assert_eq!(steps, (0..60).step_by(3).collect::<Vec<_>>());
    assert!(
        history(&store, &live, "x").await.is_empty(),
        "refused batches wrote nothing"
    );
    let params = store.get_run(&live).await.unwrap().data.params;
    assert_eq!(params.len(), 1 + 20);
    assert!(params.contains(&kv("fixed", "1")));
}

/// Calls committed together are checked as if they ran one after another: of many
/// concurrent calls setting the same new param to different values exactly one wins, the
/// others are refused with nothing written, and the latest value of a metric is the newest
/// step whichever call of a group carried it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_log_calls_on_one_run_see_each_other() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "one-run").await;
    let run = run_in(&store, &exp).await.info.run_id;
    // Big batches on another run keep the writer busy, so the calls below queue up and are
    // committed in groups rather than one by one.
    let other = run_in(&store, &exp).await.info.run_id;
    let busy: Vec<_> = (0..4i64)
        .map(|b| {
            let (store, other) = (store.clone(), other.clone());
            tokio::spawn(async move {
                let points: Vec<Metric> = (0..1000)
                    .map(|s| metric(&format!("k{}", s % 100), 0.0, b, s))
                    .collect();
                store.log_batch(&other, &points, &[], &[]).await
            })
        })
        .collect();

    let calls: Vec<_> = (0..40i64)
        .map(|i| {
            let (store, run) = (store.clone(), run.clone());
            tokio::spawn(async move {
                let outcome = store
                    .log_batch(
                        &run,
                        &[
                            metric("claimed", i as f64, 1, i),
                            metric("acc", i as f64, 1000 + i, i),
                        ],
                        &[kv("owner", &i.to_string())],
                        &[],
                    )
                    .await;
                (i, outcome)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for call in calls {
        let (i, outcome) = call.await.unwrap();
        match outcome {
            Ok(()) => winners.push(i),
            Err(e) => assert!(
                e.message.contains("Changing param values is not allowed"),
                "{i}: {}",
                e.message
            ),
        }
    }
    for call in busy {
        call.await.unwrap().unwrap();
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one call sets the param: {winners:?}"
    );
    let winner = winners[0];
    let data = store.get_run(&run).await.unwrap().data;
    assert_eq!(data.params, vec![kv("owner", &winner.to_string())]);
    let claimed: Vec<i64> = history(&store, &run, "claimed")
        .await
        .iter()
        .map(|m| m.step)
        .collect();
    assert_eq!(claimed, vec![winner], "refused calls wrote no points");

    let calls: Vec<_> = (0..40i64)
        .map(|i| {
            let (store, run) = (store.clone(), run.clone());
            tokio::spawn(async move {
                store
                    .log_metric(&run, &metric("loss", -(i as f64), 1, 100 + i))
                    .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    let latest = store.get_run(&run).await.unwrap().data.metrics;
    let loss = latest.iter().find(|m| m.key == "loss").unwrap();
    assert_eq!((loss.step, loss.value), (139, -39.0));
    assert_eq!(history(&store, &run, "loss").await.len(), 40);
}

/// Logs `points` values of `loss` at steps `0, stride, 2·stride, …` and returns the steps
/// get-history-bulk-interval samples from them when asked for at most `max`.
async fn sampled_steps_of_gapped_history(
    store: &SqlStore,
    run_id: &str,
    points: i64,
    stride: i64,
    max: i64,
) -> Vec<i64> {
    let history: Vec<Metric> = (0..points)
        .map(|s| metric("loss", s as f64, s, stride * s))
        .collect();
    store.log_batch(run_id, &history, &[], &[]).await.unwrap();
    let runs = [run_id.to_string()];
    let sampled = store
        .get_metric_history_bulk_interval(&runs, "loss", None, None, max)
        .await
        .unwrap();
    sampled.iter().map(|m| m.step).collect()
}

#[tokio::test]
async fn postgres_databases_of_other_programs_are_refused_and_its_own_reopened() {
    let uri = fresh_pg_database().await;
    // Its own schema, reopened: no complaint.
    drop(open_pg(&uri).await.unwrap());
    open_pg(&uri).await.unwrap();
    drop_pg_database(&uri).await;

    let uri = fresh_pg_database().await;
    let conn_url = uri.replacen("postgresql://", "postgres://", 1);
    let admin = sqlx::AnyPool::connect(&conn_url).await.unwrap();
    for statement in [
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)",
        "INSERT INTO alembic_version VALUES ('1b5f0d9ad7c1')",
        "CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY)",
    ] {
        sqlx::query(statement).execute(&admin).await.unwrap();
    }
    let refused = open_pg(&uri).await.err().unwrap();
    assert!(
        refused
            .message
            .contains("is an MLflow database (schema revision 1b5f0d9ad7c1)")
    );
    assert!(refused.message.contains("mlox import --from"));
    let mlox_tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'mlox_schema'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(
        mlox_tables, 0,
        "nothing may be written to a foreign database"
    );
    admin.close().await;
    drop_pg_database(&uri).await;
}

// ---------------------------------------------------------------------------- gc

#[tokio::test]
async fn gc_removes_deleted_runs_whole_and_refuses_what_is_not_deleted() {
    let (dir, store) = store().await;
    let experiment = store.create_experiment("gc", None, &[]).await.unwrap();
    let kept = run_in(&store, &experiment).await.info.run_id;
    let gone = run_in(&store, &experiment).await.info.run_id;
    for id in [&kept, &gone] {
        store
            .log_batch(
                id,
                &[metric("loss", 0.5, 1, 0)],
                &[kv("lr", "0.1")],
                &[kv("t", "x")],
            )
            .await
            .unwrap();
    }
    store.delete_run(&gone).await.unwrap();

    // Naming a live run is refused, and nothing is removed.
    let refused = store
        .gc_plan(&GcRequest {
            run_ids: Some(vec![kept.clone()]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        refused
            .message
            .contains("is not in `deleted` lifecycle stage")
    );
    // Deleted a moment ago: too young for --older-than 1h.
    let young = store
        .gc_plan(&GcRequest {
            run_ids: Some(vec![gone.clone()]),
            older_than_ms: Some(3_600_000),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(young.message.contains("not older than the required age"));
    let plan = store
        .gc_plan(&GcRequest {
            older_than_ms: Some(3_600_000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(plan.runs.is_empty());

    let plan = store.gc_plan(&GcRequest::default()).await.unwrap();
    assert_eq!(plan.runs.len(), 1);
    assert_eq!(plan.runs[0].id, gone);
    assert!(plan.runs[0].artifact_location.contains(&gone));
    assert!(store.hard_delete_run(&gone, false).await.unwrap());
    assert!(
        !store.hard_delete_run(&gone, false).await.unwrap(),
        "already gone"
    );

    let pool = raw(dir.path()).await;
    for table in ["runs", "params", "tags", "metrics", "latest_metrics"] {
        let left = count(
            &pool,
            &format!("SELECT COUNT(*) FROM {table} WHERE run_uuid = '{gone}'"),
        )
        .await;
        assert_eq!(left, 0, "{table} still holds the removed run");
        let kept_rows = count(
            &pool,
            &format!("SELECT COUNT(*) FROM {table} WHERE run_uuid = '{kept}'"),
        )
        .await;
        assert!(kept_rows > 0, "{table} lost the live run's rows");
    }
    assert_eq!(
        store.get_run(&gone).await.unwrap_err().code,
        mlox_core::Code::ResourceDoesNotExist
    );
}

#[tokio::test]
async fn gc_keeps_a_run_restored_after_the_plan() {
    let (_dir, store) = store().await;
    let experiment = store
        .create_experiment("gc-restore", None, &[])
        .await
        .unwrap();
    let id = run_in(&store, &experiment).await.info.run_id;
    store.delete_run(&id).await.unwrap();
    let plan = store.gc_plan(&GcRequest::default()).await.unwrap();
    assert_eq!(plan.runs.len(), 1);
    store.restore_run(&id).await.unwrap();
    assert!(!store.hard_delete_run(&id, false).await.unwrap());
    assert_eq!(
        store.get_run(&id).await.unwrap().info.lifecycle_stage,
        "active"
    );
}

#[tokio::test]
async fn gc_of_an_experiment_takes_its_runs_and_logged_models() {
    let (dir, store) = store().await;
    let experiment = store
        .create_experiment("gc-exp", None, &[kv("team", "a")])
        .await
        .unwrap();
    let other = store
        .create_experiment("gc-other", None, &[])
        .await
        .unwrap();
    let run = run_in(&store, &experiment).await.info.run_id;
    let survivor = run_in(&store, &other).await.info.run_id;
    let live = store
        .gc_plan(&GcRequest {
            experiment_ids: Some(vec![experiment.clone()]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        live.message
            .contains("are not in the deleted lifecycle stage")
    );
    store.delete_experiment(&experiment).await.unwrap();
    let plan = store
        .gc_plan(&GcRequest {
            experiment_ids: Some(vec![experiment.clone()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(plan.experiments.len(), 1);
    assert_eq!(
        plan.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![run.clone()]
    );
    assert!(plan.runs[0].with_experiment, "taken with its experiment");
    assert!(
        store
            .hard_delete_run(&run, plan.runs[0].with_experiment)
            .await
            .unwrap()
    );
    assert!(store.hard_delete_experiment(&experiment).await.unwrap());
    let pool = raw(dir.path()).await;
    assert_eq!(
        count(
            &pool,
            &format!("SELECT COUNT(*) FROM experiment_tags WHERE experiment_id = {experiment}")
        )
        .await,
        0
    );
    assert_eq!(
        store.get_experiment(&experiment).await.unwrap_err().code,
        mlox_core::Code::ResourceDoesNotExist
    );
    assert_eq!(
        store.get_run(&survivor).await.unwrap().info.lifecycle_stage,
        "active"
    );
}

// -------------------------------------------------------------------------------- traces

const TRACE_T0: i64 = 1_700_000_000_000;

/// A trace's info as the client sends it: name, start offset (ms), duration (ms), state, tags,
/// metadata.
fn trace_info(
    experiment_id: &str,
    trace_id: &str,
    name: &str,
    (offset, duration): (i64, i64),
    state: &str,
    tags: &[(&str, &str)],
    metadata: &[(&str, &str)],
) -> serde_json::Value {
    let start = TRACE_T0 + offset;
    let mut tags: serde_json::Map<String, serde_json::Value> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect();
    tags.insert("mlflow.traceName".into(), serde_json::json!(name));
    let metadata: serde_json::Map<String, serde_json::Value> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect();
    let seconds = start / 1000;
    serde_json::json!({
        "trace_id": trace_id,
        "client_request_id": format!("client-{trace_id}"),
        "trace_location": {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}},
        "request_time": format!("2023-11-14T22:{:02}:{:02}.{:03}Z", (seconds / 60) % 60, seconds % 60, start % 1000),
        "execution_duration": format!("{}s", duration as f64 / 1000.0),
        "state": state,
        "trace_metadata": metadata,
        "tags": tags,
    })
}

/// id, name, (start offset, duration), state, tags, metadata.
type TraceRow<'a> = (
    &'a str,
    &'a str,
    (i64, i64),
    &'a str,
    &'a [(&'a str, &'a str)],
    Vec<(&'a str, &'a str)>,
);

/// The traces of the search table: A to E, a second apart.
async fn trace_corpus(store: &SqlStore) -> (String, String) {
    let exp = experiment(store, "traces").await;
    let run = run_in(store, &exp).await.info.run_id;
    let corpus: [TraceRow; 5] = [
        (
            "A",
            "retrieve",
            (1000, 50),
            "OK",
            &[("team", "search"), ("env", "prod")],
            vec![("user", "alice")],
        ),
        (
            "B",
            "generate",
            (2000, 300),
            "ERROR",
            &[("team", "llm")],
            vec![("user", "bob")],
        ),
        (
            "C",
            "retrieve",
            (3000, 10),
            "OK",
            &[("team", "search")],
            vec![],
        ),
        (
            "D",
            "rerank",
            (4000, 120),
            "OK",
            &[("env", "dev")],
            vec![("user", "alice"), ("mlflow.sourceRun", run.as_str())],
        ),
        (
            "E",
            "generate",
            (5000, 200),
            "OK",
            &[("team", "llm"), ("env", "prod")],
            vec![],
        ),
    ];
    for (id, name, times, state, tags, metadata) in corpus {
        store
            .start_trace(trace_info(&exp, id, name, times, state, tags, &metadata))
            .await
            .unwrap();
    }
    store
        .link_traces_to_run(&["E".to_string(), "missing".to_string()], &run)
        .await
        .unwrap();
    (exp, run)
}

async fn trace_letters(
    store: &SqlStore,
    exp: &str,
    filter: &str,
    order_by: &[&str],
) -> mlox_core::Result<String> {
    let order_by: Vec<String> = order_by.iter().map(|o| o.to_string()).collect();
    let (traces, _) = store
        .search_traces(mlox_store::traces::TraceSearch {
            experiment_ids: &[exp.to_string()],
            filter: Some(filter),
            order_by: &order_by,
            max_results: None,
            page_token: None,
        })
        .await?;
    Ok(traces
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_string())
        .collect())
}

/// Every row: filter, order_by, the traces found in order.
async fn trace_search_follows_mlflow(store: &SqlStore) {
    let (exp, run) = trace_corpus(store).await;
    let feedback = |value: serde_json::Value| serde_json::json!({"assessment_name": "quality", "feedback": {"value": value}});
    store
        .create_assessment("A", feedback(serde_json::json!("good")))
        .await
        .unwrap();
    store
        .create_assessment("B", feedback(serde_json::json!(0.2)))
        .await
        .unwrap();
    let overridden = store
        .create_assessment("C", feedback(serde_json::json!(0.9)))
        .await
        .unwrap();
    store
        .create_assessment(
            "C",
            serde_json::json!({"assessment_name": "quality", "feedback": {"value": true},
                "overrides": overridden["assessment_id"]}),
        )
        .await
        .unwrap();
    store
        .create_assessment(
            "D",
            serde_json::json!({"assessment_name": "answer", "expectation": {"value": "42"}}),
        )
        .await
        .unwrap();
    let run_filter = format!("run_id = '{run}'");
    let source_run_filter = format!("metadata.`mlflow.sourceRun` = '{run}'");
    let cases: Vec<(&str, &[&str], &str)> = vec![
        ("", &[], "EDCBA"),
        ("trace.name = 'retrieve'", &[], "CA"),
        ("name != 'generate'", &[], "DCA"),
        ("trace.name LIKE 're%'", &[], "DCA"),
        ("trace.name ILIKE 'RE%'", &[], "DCA"),
        ("trace.name LIKE 'RE%'", &[], ""),
        ("trace.status = 'ERROR'", &[], "B"),
        ("status IN ('ERROR', 'IN_PROGRESS')", &[], "B"),
        ("status NOT IN ('ERROR')", &[], "EDCA"),
        ("trace.timestamp_ms > 1700000002500", &[], "EDC"),
        (
            "timestamp >= 1700000002000 AND timestamp < 1700000004000",
            &[],
            "CB",
        ),
        ("execution_time_ms > 100", &[], "EDB"),
        ("end_time_ms >= 1700000004100", &[], "ED"),
        ("client_request_id = 'client-C'", &[], "C"),
        ("request_id IN ('A', 'B')", &[], "BA"),
        ("tags.team = 'search'", &[], "CA"),
        ("tags.env != 'prod'", &[], "D"),
        ("tags.env IS NULL", &[], "CB"),
        ("tags.env IS NOT NULL", &[], "EDA"),
        ("tags.team ILIKE 'LL%'", &[], "EB"),
        ("metadata.user = 'alice'", &[], "DA"),
        ("metadata.user IS NULL", &[], "EC"),
        (&run_filter, &[], "ED"),
        (&source_run_filter, &[], "ED"),
        (
            "trace.name = 'retrieve' AND tags.team = 'search' AND timestamp_ms > 1700000001500",
            &[],
            "C",
        ),
        ("feedback.quality = 'good'", &[], "A"),
        ("feedback.quality = 'true'", &[], "C"),
        ("feedback.quality != 'good'", &[], "CB"),
        ("feedback.quality > 0.5", &[], ""),
        ("feedback.quality <= 0.5", &[], "B"),
        ("feedback.quality LIKE '%oo%'", &[], "A"),
        ("feedback.quality IS NULL", &[], "ED"),
        ("feedback.quality IS NOT NULL", &[], "CBA"),
        ("expectation.answer = '42'", &[], "D"),
        ("expectation.quality IS NOT NULL", &[], ""),
        ("", &["timestamp_ms ASC"], "ABCDE"),
        ("", &["execution_time_ms DESC"], "BEDAC"),
        ("", &["name ASC"], "EBDCA"),
        ("", &["status", "timestamp_ms"], "BACDE"),
        ("", &["tags.team DESC"], "CAEBD"),
        ("", &["metadata.user ASC", "timestamp_ms ASC"], "ADBCE"),
    ];
    for (filter, order_by, expected) in cases {
        assert_eq!(
            trace_letters(store, &exp, filter, order_by).await.unwrap(),
            expected,
            "{filter} / {order_by:?}"
        );
    }
    for (filter, message) in [
        ("trace.foo = 'x'", "Invalid attribute key 'foo' specified."),
        ("span.foo = 'x'", "Invalid span attribute 'foo'"),
        ("name IN ('a')", "Invalid comparator 'IN'"),
    ] {
        let e = err(trace_letters(store, &exp, filter, &[]).await);
        assert_eq!(e.code, Code::InvalidParameterValue, "{filter}");
        assert!(e.message.contains(message), "{filter}: {}", e.message);
    }
    // Pages of two, in the order asked.
    let order = vec!["timestamp_ms ASC".to_string()];
    let mut token: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let (traces, next) = store
            .search_traces(mlox_store::traces::TraceSearch {
                experiment_ids: std::slice::from_ref(&exp),
                filter: None,
                order_by: &order,
                max_results: Some(2),
                page_token: token.as_deref(),
            })
            .await
            .unwrap();
        pages.push(
            traces
                .iter()
                .map(|t| t["trace_id"].as_str().unwrap())
                .collect::<String>(),
        );
        match next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, ["AB", "CD", "E"]);
}

/// A span of trace `trace` (one hex digit repeated) with id `id`.
fn otel_span(
    trace: char,
    id: char,
    parent: Option<char>,
    name: &str,
    attributes: &[(&str, serde_json::Value)],
    error: bool,
) -> mlox_core::spans::StoredSpan {
    use mlox_core::spans::{OtelSpan, SpanStatusCode};
    let bytes = |c: char, n: usize| hex_bytes(&c.to_string().repeat(n * 2));
    OtelSpan {
        trace_id: bytes(trace, 16),
        span_id: bytes(id, 8),
        parent_span_id: parent.map(|p| bytes(p, 8)).unwrap_or_default(),
        name: name.into(),
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_001_000_000_000,
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        events: Vec::new(),
        status: Some((
            if error {
                SpanStatusCode::Error
            } else {
                SpanStatusCode::Ok
            },
            String::new(),
        )),
    }
    .into_stored(None)
    .unwrap()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// Spans stored for two traces, then found by MLflow's span filters: all span clauses of one
/// filter must hold for the same span.
async fn span_filters_find_traces_by_their_spans(store: &SqlStore) {
    use serde_json::json;
    let exp = experiment(store, "spans").await;
    store
        .log_spans(
            &exp,
            vec![
                otel_span(
                    'a',
                    '1',
                    None,
                    "agent",
                    &[
                        ("openinference.span.kind", json!("AGENT")),
                        ("model", json!("gpt-4")),
                    ],
                    false,
                ),
                otel_span(
                    'a',
                    '2',
                    Some('1'),
                    "search",
                    &[
                        ("openinference.span.kind", json!("RETRIEVER")),
                        ("hits", json!(3)),
                    ],
                    true,
                ),
                otel_span(
                    'b',
                    '3',
                    None,
                    "other",
                    &[("note", json!("I like it"))],
                    false,
                ),
            ],
        )
        .await
        .unwrap();
    let a = format!("tr-{}", "a".repeat(32));
    let b = format!("tr-{}", "b".repeat(32));
    let found = |filter: &'static str| {
        let exp = exp.clone();
        async move {
            let (traces, _) = store
                .search_traces(mlox_store::traces::TraceSearch {
                    experiment_ids: &[exp],
                    filter: Some(filter),
                    order_by: &[
                        "trace.timestamp_ms ASC".to_string(),
                        "request_id".to_string(),
                    ],
                    max_results: None,
                    page_token: None,
                })
                .await
                .unwrap();
            traces
                .iter()
                .map(|t| t["trace_id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("span.name = 'search'").await, [a.as_str()]);
    assert_eq!(
        found("span.type = 'RETRIEVER' AND span.status = 'ERROR'").await,
        [a.as_str()]
    );
    assert!(
        found("span.type = 'RETRIEVER' AND span.name = 'agent'")
            .await
            .is_empty()
    );
    assert_eq!(found("span.attributes.model = 'gpt-4'").await, [a.as_str()]);
    assert_eq!(found("span.attributes.hits = '3'").await, [a.as_str()]);
    assert_eq!(
        found("span.attributes.model LIKE '%gpt%'").await,
        [a.as_str()]
    );
    assert!(found("span.attributes.model != 'gpt-4'").await.contains(&b));
    assert_eq!(found("trace.text LIKE '%I like it%'").await, [b.as_str()]);
    assert_eq!(found("trace.text ILIKE '%i LIKE IT%'").await, [b.as_str()]);
    assert_eq!(
        found("span.name LIKE '%e%' AND trace.status = 'OK'").await,
        [a.as_str(), b.as_str()]
    );
    let spans = store.load_spans(&[a.clone(), b.clone()]).await.unwrap();
    let names: Vec<&str> = spans[&a]
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["agent", "search"]);
    // Deleting the trace deletes its spans.
    store
        .delete_traces(&exp, std::slice::from_ref(&a))
        .await
        .unwrap();
    assert!(
        !store
            .load_spans(&[a])
            .await
            .unwrap()
            .contains_key(&format!("tr-{}", "a".repeat(32)))
    );
}

#[tokio::test]
async fn trace_search_follows_mlflow_on_sqlite() {
    let (_dir, store) = store().await;
    trace_search_follows_mlflow(&store).await;
    span_filters_find_traces_by_their_spans(&store).await;
}

#[tokio::test]
async fn trace_search_follows_mlflow_on_postgres() {
    let uri = fresh_pg_database().await;
    let store = open_pg(&uri).await.unwrap();
    trace_search_follows_mlflow(&store).await;
    span_filters_find_traces_by_their_spans(&store).await;
    drop(store);
    drop_pg_database(&uri).await;
}

#[tokio::test]
async fn upgrading_to_trace_search_copies_existing_traces_fields_out() {
    let (dir, store) = store().await;
    let exp = experiment(&store, "old").await;
    store
        .start_trace(trace_info(
            &exp,
            "old",
            "n",
            (0, 1500),
            "OK",
            &[],
            &[("user", "zoe")],
        ))
        .await
        .unwrap();
    drop(store);
    // Back to schema 2, with the trace row as schema 2 kept it.
    let pool = raw(dir.path()).await;
    undo_migrations_after(&pool, 2).await;
    pool.close().await;
    let store = SqlStore::open_and_upgrade(StoreOptions {
        uri: format!("sqlite:///{}/t.db", dir.path().display()),
        default_artifact_root: "mlflow-artifacts:".into(),
        max_connections: 4,
    })
    .await
    .unwrap();
    assert_eq!(
        trace_letters(
            &store,
            &exp,
            "metadata.user = 'zoe' AND execution_time_ms = 1500",
            &[]
        )
        .await
        .unwrap(),
        "old"
    );
}

#[tokio::test]
async fn assessments_override_update_and_delete_like_mlflow() {
    let (_dir, store) = store().await;
    let exp = experiment(&store, "judged").await;
    store
        .start_trace(trace_info(&exp, "t", "n", (0, 1), "OK", &[], &[]))
        .await
        .unwrap();
    let feedback = store
        .create_assessment(
            "t",
            serde_json::json!({"assessment_name": "q", "feedback": {"value": "good"}, "rationale": "r"}),
        )
        .await
        .unwrap();
    let old_id = feedback["assessment_id"].as_str().unwrap().to_string();
    assert_eq!(feedback["valid"], true);
    let e = err(store
        .create_assessment("t", serde_json::json!({"assessment_name": "x"}))
        .await);
    assert_eq!(e.code, Code::InvalidParameterValue);
    let updated = store
        .update_assessment(
            "t",
            &old_id,
            &serde_json::json!({"assessment_name": "q2", "feedback": {"value": "great"}, "metadata": {"k": "v"}}),
            &["assessment_name".into(), "feedback".into(), "metadata".into()],
        )
        .await
        .unwrap();
    assert_eq!(updated["assessment_name"], "q2");
    assert_eq!(updated["feedback"]["value"], "great");
    assert_eq!(updated["rationale"], "r");
    assert_eq!(updated["metadata"]["k"], "v");
    let e = err(store
        .update_assessment(
            "t",
            &old_id,
            &serde_json::json!({}),
            &["expectation".into()],
        )
        .await);
    assert_eq!(
        e.message,
        "Cannot update expectation value on a Feedback assessment."
    );
    let new = store
        .create_assessment(
            "t",
            serde_json::json!({"assessment_name": "q2", "feedback": {"value": "bad"}, "overrides": old_id}),
        )
        .await
        .unwrap();
    let new_id = new["assessment_id"].as_str().unwrap().to_string();
    assert_eq!(
        store.get_assessment("t", &old_id).await.unwrap()["valid"],
        false
    );
    let info = store.get_trace_info("t").await.unwrap();
    assert_eq!(info["assessments"].as_array().unwrap().len(), 2);
    store.delete_assessment("t", &new_id).await.unwrap();
    store.delete_assessment("t", &new_id).await.unwrap();
    assert_eq!(
        store.get_assessment("t", &old_id).await.unwrap()["valid"],
        true
    );
    let e = err(store.get_assessment("t", &new_id).await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            Code::ResourceDoesNotExist,
            format!("Assessment with ID '{new_id}' not found for trace 't'").as_str()
        )
    );
    let e = err(store.get_assessment("nope", &new_id).await);
    assert_eq!(e.message, "Trace with request_id 'nope' not found");
    let e = err(
        store
            .create_assessment(
                "t",
                serde_json::json!({"assessment_name": "q", "feedback": {"value": 1}, "overrides": "a-missing"}),
            )
            .await,
    );
    assert_eq!(e.code, Code::ResourceDoesNotExist);
}

// ------------------------------------------------------------------ evaluation datasets

fn dataset_records(value: serde_json::Value) -> Vec<mlox_core::evaluation_datasets::RecordInput> {
    mlox_core::evaluation_datasets::parse_records(&value.to_string()).unwrap()
}

async fn dataset_names(
    store: &SqlStore,
    experiments: &[&str],
    filter: &str,
    order: &[&str],
) -> Vec<String> {
    let experiments: Vec<String> = experiments.iter().map(|e| e.to_string()).collect();
    let order: Vec<String> = order.iter().map(|o| o.to_string()).collect();
    store
        .search_evaluation_datasets(&experiments, Some(filter), None, &order, None)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.name)
        .collect()
}

/// The rules MLflow's SQL store applies to evaluation datasets, on either database.
async fn evaluation_datasets_follow_mlflow(store: &SqlStore) {
    use mlox_core::evaluation_datasets::{RecordCursor, dataset_digest};
    let e1 = experiment(store, "eval-1").await;
    let e2 = experiment(store, "eval-2").await;
    let created = store
        .create_evaluation_dataset(
            "qa",
            &[kv("team", "ml"), kv("mlflow.user", "ann")],
            &[e1.clone(), e1.clone()],
        )
        .await
        .unwrap();
    assert!(created.dataset_id.starts_with("d-"));
    assert_eq!(created.experiment_ids, Some(vec![e1.clone()]));
    assert_eq!(created.created_by.as_deref(), Some("ann"));
    assert_eq!(created.digest, dataset_digest("qa", created.created_time));
    assert_eq!(created.schema, None);
    let id = created.dataset_id.clone();
    let other = store
        .create_evaluation_dataset("other", &[kv("team", "data")], std::slice::from_ref(&e2))
        .await
        .unwrap();
    // Experiments must exist.
    let e = err(store
        .create_evaluation_dataset("x", &[], &["99999".into()])
        .await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (Code::ResourceDoesNotExist, "No Experiment with id=99999")
    );

    // Records: new inputs are inserted, the same inputs (in any key order) merged.
    let (inserted, updated) = store
        .upsert_evaluation_dataset_records(
            &id,
            &dataset_records(serde_json::json!([
                {"inputs": {"q": "a", "n": 1}, "expectations": {"x": 1}, "tags": {"t": "1"}},
                {"inputs": {"q": "b"}, "outputs": "out"},
                {"inputs": {"q": "c"}, "tags": {"mlflow.user": "bo"}},
            ])),
        )
        .await
        .unwrap();
    assert_eq!((inserted, updated), (3, 0));
    let (inserted, updated) = store
        .upsert_evaluation_dataset_records(
            &id,
            &dataset_records(serde_json::json!([
                {"inputs": {"n": 1, "q": "a"}, "expectations": {"y": 2}},
                {"inputs": {"q": "d"}},
                {"inputs": {"q": "d"}, "tags": {"k": "v"}},
            ])),
        )
        .await
        .unwrap();
    assert_eq!((inserted, updated), (1, 2));
    let dataset = store.get_evaluation_dataset(&id).await.unwrap();
    assert_eq!(dataset.profile.as_deref(), Some(r#"{"num_records": 4}"#));
    assert_eq!(
        dataset.digest,
        dataset_digest("qa", dataset.last_update_time)
    );
    assert_eq!(dataset.last_updated_by, None);
    assert_eq!(
        dataset.schema.as_deref(),
        Some(
            r#"{"inputs": {"n": "integer", "q": "string"}, "outputs": "string", "expectations": {"x": "integer", "y": "integer"}, "version": "1.0"}"#
        )
    );
    assert_eq!(
        store
            .evaluation_dataset_records("d-missing", 10, &RecordCursor::Start)
            .await
            .unwrap(),
        (vec![], None)
    );
    let e = err(store
        .upsert_evaluation_dataset_records("d-missing", &[])
        .await);
    assert_eq!(e.code, Code::ResourceDoesNotExist);

    // Pages follow (created_time, id) with MLflow's cursor.
    let (first, token) = store
        .evaluation_dataset_records(&id, 3, &RecordCursor::Start)
        .await
        .unwrap();
    let cursor =
        mlox_core::evaluation_datasets::parse_records_page_token(token.as_deref()).unwrap();
    let (rest, none) = store
        .evaluation_dataset_records(&id, 3, &cursor)
        .await
        .unwrap();
    assert_eq!((first.len(), rest.len(), none), (3, 1, None));
    let all: Vec<_> = first.iter().chain(&rest).collect();
    let merged = all.iter().find(|r| r.inputs["q"] == "a").unwrap();
    assert_eq!(merged.expectations.as_ref().unwrap().len(), 2);
    assert_eq!(merged.tags["t"], "1");
    let d = all.iter().find(|r| r.inputs["q"] == "d").unwrap();
    assert_eq!(d.tags["k"], "v");
    assert_eq!(d.outputs, Some(serde_json::json!({})));
    assert_eq!(
        all.iter()
            .find(|r| r.inputs["q"] == "c")
            .unwrap()
            .created_by
            .as_deref(),
        Some("bo")
    );

    // Deleting records counts what was there and keeps the profile.
    let deleted = store
        .delete_evaluation_dataset_records(&id, &[d.dataset_record_id.clone(), "dr-none".into()])
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let dataset = store.get_evaluation_dataset(&id).await.unwrap();
    assert_eq!(dataset.profile.as_deref(), Some(r#"{"num_records": 3}"#));

    // Tags: set merges, delete is idempotent, a missing dataset is named.
    store
        .set_evaluation_dataset_tags(&id, &[kv("team", "ml2"), kv("new", "1")])
        .await
        .unwrap();
    store
        .delete_evaluation_dataset_tag(&id, "new")
        .await
        .unwrap();
    store
        .delete_evaluation_dataset_tag(&id, "new")
        .await
        .unwrap();
    let tags = store.get_evaluation_dataset(&id).await.unwrap().tags;
    assert_eq!(tags, vec![kv("mlflow.user", "ann"), kv("team", "ml2")]);
    let e = err(store
        .set_evaluation_dataset_tags("d-missing", &[kv("a", "b")])
        .await);
    assert_eq!(
        e.message,
        "Could not find evaluation dataset with ID d-missing"
    );

    // Search by experiment, attribute and tag filters, and order.
    assert_eq!(
        dataset_names(store, &[], "", &[]).await,
        vec!["other", "qa"]
    );
    assert_eq!(dataset_names(store, &[&e1], "", &[]).await, vec!["qa"]);
    assert_eq!(
        dataset_names(store, &["abc"], "", &[]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        dataset_names(store, &[], "tags.team = 'data'", &[]).await,
        vec!["other"]
    );
    assert_eq!(
        dataset_names(store, &[], "tags.team LIKE 'ml%'", &[]).await,
        vec!["qa"]
    );
    assert_eq!(
        dataset_names(store, &[], "name IN ('qa', 'zz')", &[]).await,
        vec!["qa"]
    );
    assert_eq!(
        dataset_names(store, &[], "created_by = 'ann'", &[]).await,
        vec!["qa"]
    );
    assert_eq!(
        dataset_names(store, &[], "created_time > 0", &["name DESC"]).await,
        vec!["qa", "other"]
    );
    let page = store
        .search_evaluation_datasets(&[], None, Some(1), &[], None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let next = store
        .search_evaluation_datasets(&[], None, Some(1), &[], page.next_page_token.as_deref())
        .await
        .unwrap();
    assert_eq!((next.items.len(), next.next_page_token), (1, None));
    let e = err(store
        .search_evaluation_datasets(&[], None, Some(0), &[], None)
        .await);
    assert_eq!(
        e.message,
        "Invalid value None for parameter 'max_results' supplied. It must be a positive integer"
    );

    // Experiments: adding is idempotent, removing skips what is not linked.
    let added = store
        .add_evaluation_dataset_to_experiments(&id, &[e2.clone(), e1.clone()])
        .await
        .unwrap();
    assert_eq!(added.experiment_ids, Some(vec![e1.clone(), e2.clone()]));
    let e = err(store
        .add_evaluation_dataset_to_experiments(&id, &["424242".into()])
        .await);
    assert_eq!(e.message, "No Experiment with id=424242");
    let e = err(store
        .add_evaluation_dataset_to_experiments("d-missing", std::slice::from_ref(&e1))
        .await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (Code::ResourceDoesNotExist, "Dataset 'd-missing' not found")
    );
    let removed = store
        .remove_evaluation_dataset_from_experiments(&id, &[e1.clone(), "7777".into(), "x".into()])
        .await
        .unwrap();
    assert_eq!(removed.experiment_ids, Some(vec![e2.clone()]));
    assert_eq!(
        store.evaluation_dataset_experiment_ids(&id).await.unwrap(),
        vec![e2.clone()]
    );

    // Deleting is idempotent and takes everything of the dataset with it.
    store.delete_evaluation_dataset(&id).await.unwrap();
    store.delete_evaluation_dataset(&id).await.unwrap();
    let e = err(store.get_evaluation_dataset(&id).await);
    assert_eq!(
        e.message,
        format!("Evaluation dataset with id '{id}' not found")
    );
    assert!(
        store
            .evaluation_dataset_experiment_ids(&id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .evaluation_dataset_records(&id, 10, &RecordCursor::Start)
            .await
            .unwrap()
            .0,
        vec![]
    );
    assert_eq!(dataset_names(store, &[], "", &[]).await, vec!["other"]);
    store
        .delete_evaluation_dataset(&other.dataset_id)
        .await
        .unwrap();
}

#[tokio::test]
async fn evaluation_datasets_follow_mlflow_on_sqlite() {
    let (_dir, store) = store().await;
    evaluation_datasets_follow_mlflow(&store).await;
}

#[tokio::test]
async fn evaluation_datasets_follow_mlflow_on_postgres() {
    let uri = fresh_pg_database().await;
    let store = open_pg(&uri).await.unwrap();
    evaluation_datasets_follow_mlflow(&store).await;
    drop(store);
    drop_pg_database(&uri).await;
}

/// Upserts of the same new inputs at once all land on one record: the dataset's row is held
/// while an upsert runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_upserts_of_the_same_inputs_merge_into_one_record() {
    let uri = fresh_pg_database().await;
    let store = open_pg(&uri).await.unwrap();
    let id = store
        .create_evaluation_dataset("race", &[], &[])
        .await
        .unwrap()
        .dataset_id;
    let calls = (0..8).map(|i| {
        let store = store.clone();
        let id = id.clone();
        tokio::spawn(async move {
            store
                .upsert_evaluation_dataset_records(
                    &id,
                    &dataset_records(serde_json::json!([{"inputs": {"q": "same"}, "tags": {format!("t{i}"): "x"}}])),
                )
                .await
        })
    });
    let outcomes = futures::future::join_all(calls).await;
    let inserted: i64 = outcomes.into_iter().map(|o| o.unwrap().unwrap().0).sum();
    assert_eq!(inserted, 1);
    let (records, _) = store
        .evaluation_dataset_records(
            &id,
            10,
            &mlox_core::evaluation_datasets::RecordCursor::Start,
        )
        .await
        .unwrap();
    assert_eq!((records.len(), records[0].tags.len()), (1, 8));
    drop(store);
    drop_pg_database(&uri).await;
}

#[tokio::test]
async fn removing_an_experiment_for_good_unlinks_its_evaluation_datasets() {
    let (_dir, store) = store().await;
    let gone = experiment(&store, "eval-gone").await;
    let kept = experiment(&store, "eval-kept").await;
    let id = store
        .create_evaluation_dataset("linked", &[], &[gone.clone(), kept.clone()])
        .await
        .unwrap()
        .dataset_id;
    store.delete_experiment(&gone).await.unwrap();
    // A deleted experiment keeps its links until it is removed for good.
    assert_eq!(
        store.evaluation_dataset_experiment_ids(&id).await.unwrap(),
        vec![gone.clone(), kept.clone()]
    );
    assert!(store.hard_delete_experiment(&gone).await.unwrap());
    assert_eq!(
        store.evaluation_dataset_experiment_ids(&id).await.unwrap(),
        vec![kept]
    );
    assert_eq!(
        store.get_evaluation_dataset(&id).await.unwrap().name,
        "linked"
    );
}

// ------------------------------------------------------------------------------- auth

#[tokio::test]
async fn auth_tables_live_beside_the_tracking_schema_without_changing_its_version() {
    let (_dir, store) = store().await;
    let before = store.schema_version().await.unwrap();
    let auth = mlox_store::auth::AuthStore::in_tracking_store(&store)
        .await
        .unwrap();
    assert_eq!(store.schema_version().await.unwrap(), before);
    // Opening again finds the tables in place.
    mlox_store::auth::AuthStore::in_tracking_store(&store)
        .await
        .unwrap();
    let alice = auth.create_user("alice", "hash-a", false).await.unwrap();
    let again = auth
        .create_user("alice", "hash-b", false)
        .await
        .unwrap_err();
    assert_eq!(again.code, Code::ResourceAlreadyExists);
    assert_eq!(
        auth.user("alice").await.unwrap().unwrap().password_hash,
        "hash-a"
    );
    assert_eq!(alice.username, "alice");
}

#[tokio::test]
async fn a_direct_grant_replaces_the_previous_one_and_dies_with_its_user() {
    let (_dir, store) = store().await;
    let auth = mlox_store::auth::AuthStore::in_tracking_store(&store)
        .await
        .unwrap();
    let bob = auth.create_user("bob", "h", false).await.unwrap();
    auth.grant_direct(bob.id, "default", "experiment", "7", "READ")
        .await
        .unwrap();
    auth.grant_direct(bob.id, "default", "experiment", "7", "EDIT")
        .await
        .unwrap();
    let grants = auth.grants(bob.id, "default").await.unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].permission, mlox_core::auth::Permission::Edit);
    assert!(grants.iter().all(|g| g.pattern == "7"));
    // Personal roles are not listed among the roles an administrator manages.
    assert!(auth.list_roles(None).await.unwrap().is_empty());
    assert!(
        auth.revoke_direct(bob.id, "default", "experiment", "7")
            .await
            .unwrap()
    );
    assert!(auth.grants(bob.id, "default").await.unwrap().is_empty());

    auth.grant_direct(bob.id, "default", "registered_model", "m", "MANAGE")
        .await
        .unwrap();
    auth.create_token(bob.id, "ci", "digest", None)
        .await
        .unwrap();
    auth.delete_user("bob").await.unwrap();
    assert!(auth.token("digest").await.unwrap().is_none());
    let again = auth.create_user("bob", "h", false).await.unwrap();
    assert!(auth.grants(again.id, "default").await.unwrap().is_empty());
}

#[tokio::test]
async fn resources_name_their_experiment_for_permission_checks() {
    use mlox_store::auth::OwnedBy;
    let (_dir, store) = store().await;
    let experiment = store.create_experiment("owned", None, &[]).await.unwrap();
    let run = run_in(&store, &experiment).await;
    assert_eq!(
        store
            .owning_experiment(OwnedBy::Run, &run.info.run_uuid)
            .await
            .unwrap(),
        Some(experiment.clone())
    );
    assert_eq!(
        store
            .owning_experiment(OwnedBy::ExperimentName, "owned")
            .await
            .unwrap(),
        Some(experiment)
    );
    assert_eq!(
        store.owning_experiment(OwnedBy::Run, "nope").await.unwrap(),
        None
    );
}

/// Takes a database back to schema `version`, as an mlox that knew only the migrations up to it
/// left it: what each later migration added, dropped newest first.
async fn undo_migrations_after(pool: &sqlx::AnyPool, version: i64) {
    let undo: [(i64, &[&str]); 7] = [
        (8, &["DROP TABLE metric_blocks"]),
        (
            7,
            &[
                "DROP TABLE gateway_budget_policies",
                "DROP TABLE gateway_spend",
                "DROP TABLE gateway_budget_alerts",
                "DROP TABLE gateway_rate_windows",
            ],
        ),
        (
            6,
            &[
                "DROP TABLE gateway_secrets",
                "DROP TABLE gateway_model_definitions",
                "DROP TABLE gateway_endpoints",
                "DROP TABLE gateway_endpoint_models",
                "DROP TABLE gateway_endpoint_bindings",
                "DROP TABLE gateway_endpoint_tags",
                "DROP TABLE online_scoring_configs",
            ],
        ),
        (
            5,
            &[
                "DROP TABLE evaluation_datasets",
                "DROP TABLE evaluation_dataset_tags",
                "DROP TABLE evaluation_dataset_records",
                "DROP TABLE evaluation_dataset_experiments",
            ],
        ),
        (
            4,
            &[
                "DROP TABLE spans",
                "DROP TABLE issues",
                "DROP TABLE scorer_versions",
                "DROP TABLE scorers",
                "ALTER TABLE assessments DROP COLUMN created_us",
            ],
        ),
        (
            3,
            &[
                "DROP TABLE trace_metadata",
                "DROP TABLE trace_run_links",
                "DROP INDEX trace_tags_by_key",
                "ALTER TABLE traces DROP COLUMN execution_time_ms",
                "ALTER TABLE traces DROP COLUMN client_request_id",
                "ALTER TABLE assessments DROP COLUMN kind",
                "ALTER TABLE assessments DROP COLUMN name",
                "ALTER TABLE assessments DROP COLUMN is_valid",
                "ALTER TABLE assessments DROP COLUMN value_json",
                "ALTER TABLE assessments DROP COLUMN numeric_value",
            ],
        ),
        (
            2,
            &[
                "DROP TABLE webhook_outbox",
                "DROP TABLE webhooks",
                "DROP TABLE registered_model_aliases",
                "DROP TABLE model_version_tags",
                "DROP TABLE model_versions",
                "DROP TABLE registered_model_tags",
                "DROP TABLE registered_models",
            ],
        ),
    ];
    for (migration, statements) in undo {
        if migration > version {
            for statement in statements {
                sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                    .execute(pool)
                    .await
                    .unwrap();
            }
        }
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM mlox_schema WHERE version > {version}"
    )))
    .execute(pool)
    .await
    .unwrap();
}

// ------------------------------------------------------------------------------- AI gateway

fn gateway_secret(name: &str) -> mlox_store::gateway::NewSecret {
    mlox_store::gateway::NewSecret {
        name: name.into(),
        sealed_value: "sealed-by-the-caller".into(),
        masked_values: [("api_key".to_string(), "sk-...1234".to_string())].into(),
        provider: Some("openai".into()),
        auth_config: Default::default(),
        created_by: None,
    }
}

fn primary(definition_id: &str) -> mlox_core::gateway::ModelConfig {
    mlox_core::gateway::ModelConfig {
        model_definition_id: definition_id.into(),
        linkage_type: mlox_core::gateway::LinkageType::Primary,
        weight: 1.0,
        fallback_order: None,
    }
}

/// A secret, a model definition on it, and an endpoint using the definition.
async fn gateway_endpoint(
    s: &SqlStore,
    name: &str,
    usage_tracking: bool,
) -> (
    mlox_core::gateway::GatewaySecretInfo,
    mlox_core::gateway::GatewayModelDefinition,
    mlox_core::gateway::GatewayEndpoint,
) {
    let secret = s.create_gateway_secret(gateway_secret("k")).await.unwrap();
    let definition = s
        .create_gateway_model_definition("gpt", &secret.secret_id, "openai", "gpt-4", None)
        .await
        .unwrap();
    let endpoint = s
        .create_gateway_endpoint(mlox_store::gateway::NewEndpoint {
            name: name.into(),
            model_configs: vec![primary(&definition.model_definition_id)],
            created_by: None,
            routing_strategy: None,
            fallback_config: None,
            experiment_id: None,
            usage_tracking,
        })
        .await
        .unwrap();
    (secret, definition, endpoint)
}

#[tokio::test]
async fn gateway_definitions_outlive_their_secret_but_not_while_an_endpoint_uses_them() {
    let (dir, s) = store().await;
    let (secret, definition, endpoint) = gateway_endpoint(&s, "chat", false).await;
    assert_eq!(
        code(s.create_gateway_secret(gateway_secret("k")).await),
        Code::ResourceAlreadyExists
    );
    s.set_gateway_endpoint_tag(&endpoint.endpoint_id, "team", "a")
        .await
        .unwrap();
    s.create_gateway_binding(&endpoint.endpoint_id, "scorer", "sc-1", None, None)
        .await
        .unwrap();

    assert_eq!(
        code(
            s.delete_gateway_model_definition(&definition.model_definition_id)
                .await
        ),
        Code::InvalidState
    );
    s.delete_gateway_secret(&secret.secret_id).await.unwrap();
    let orphan = s
        .get_gateway_model_definition(&definition.model_definition_id)
        .await
        .unwrap();
    assert_eq!((orphan.secret_id, orphan.secret_name), (None, None));

    s.delete_gateway_endpoint(&endpoint.endpoint_id)
        .await
        .unwrap();
    let pool = raw(dir.path()).await;
    for table in [
        "gateway_endpoint_models",
        "gateway_endpoint_tags",
        "gateway_endpoint_bindings",
    ] {
        assert_eq!(
            count(&pool, &format!("SELECT COUNT(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    s.delete_gateway_model_definition(&definition.model_definition_id)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_scorer_judged_through_the_gateway_is_stored_by_endpoint_id_and_shown_by_name() {
    let (_dir, s) = store().await;
    let (_, _, endpoint) = gateway_endpoint(&s, "judge", true).await;
    let usage = s
        .get_experiment(endpoint.experiment_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(usage.name, "gateway/judge");

    let experiment = s.create_experiment("scoring", None, &[]).await.unwrap();
    let judge = r#"{"instructions_judge_pydantic_data": {"model": "gateway:/judge"}}"#;
    let version = s.register_scorer(&experiment, "q", judge).await.unwrap();
    assert_eq!(version.serialized_scorer, judge);
    let [binding] = s
        .list_gateway_bindings(Some(&endpoint.endpoint_id), None, None)
        .await
        .unwrap()
        .try_into()
        .unwrap();
    assert_eq!(
        (
            binding.resource_id.as_str(),
            binding.display_name.as_deref()
        ),
        (version.scorer_id.as_str(), Some("q"))
    );

    s.update_gateway_endpoint(
        &endpoint.endpoint_id,
        mlox_store::gateway::EndpointUpdate {
            name: Some("judge-2".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let shown = s.get_scorer(&experiment, "q", None).await.unwrap();
    assert!(
        shown.serialized_scorer.contains("gateway:/judge-2"),
        "{}",
        shown.serialized_scorer
    );

    s.delete_scorer(&experiment, "q", None).await.unwrap();
    assert!(
        s.list_gateway_bindings(Some(&endpoint.endpoint_id), None, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        code(
            s.register_scorer(
                &experiment,
                "r",
                r#"{"instructions_judge_pydantic_data": {"model": "gateway:/none"}}"#
            )
            .await
        ),
        Code::ResourceDoesNotExist
    );
}

#[tokio::test]
async fn an_endpoints_models_keep_the_order_they_were_given_in() {
    let (_dir, s) = store().await;
    let (secret, first, endpoint) = gateway_endpoint(&s, "ordered", false).await;
    let mut ids = vec![first.model_definition_id.clone()];
    for name in ["b", "c", "d"] {
        let d = s
            .create_gateway_model_definition(name, &secret.secret_id, "openai", name, None)
            .await
            .unwrap();
        ids.push(d.model_definition_id);
    }
    // All written in one millisecond: the order is the list's, not the clock's or the ids'.
    let configs: Vec<_> = ids.iter().rev().map(|id| primary(id)).collect();
    let updated = s
        .update_gateway_endpoint(
            &endpoint.endpoint_id,
            mlox_store::gateway::EndpointUpdate {
                model_configs: Some(configs),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let order: Vec<&str> = updated
        .model_mappings
        .iter()
        .map(|m| m.model_definition_id.as_str())
        .collect();
    let expected: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(order, expected);
    s.detach_gateway_model(&endpoint.endpoint_id, &ids[3])
        .await
        .unwrap();
    s.attach_gateway_model(&endpoint.endpoint_id, &primary(&ids[3]), None)
        .await
        .unwrap();
    let again = s
        .get_gateway_endpoint(Some(&endpoint.endpoint_id), None)
        .await
        .unwrap();
    assert_eq!(
        again.model_mappings.last().unwrap().model_definition_id,
        ids[3]
    );
}

// ------------------------------------------------------------------------- gateway budgets

fn budget(
    scope: mlox_core::budget::TargetScope,
    target: Option<&str>,
    action: mlox_core::budget::BudgetAction,
    amount: f64,
) -> mlox_store::budgets::NewBudgetPolicy {
    mlox_store::budgets::NewBudgetPolicy {
        budget_unit: mlox_core::budget::BudgetUnit::Usd,
        budget_amount: amount,
        duration: mlox_core::budget::BudgetDuration {
            unit: mlox_core::budget::DurationUnit::Hours,
            value: 1,
        },
        target_scope: scope,
        target_value: target.map(str::to_string),
        budget_action: action,
        created_by: Some("admin".into()),
    }
}

#[tokio::test]
async fn budget_spend_is_summed_per_scope_and_window_and_alerts_once_per_window() {
    use mlox_core::budget::{BudgetAction, CallScope, TargetScope};
    let (_dir, s) = store().await;
    let (_, _, endpoint) = gateway_endpoint(&s, "chat", false).await;
    let ep = endpoint.endpoint_id.as_str();
    assert_eq!(
        code(
            s.create_budget_policy(budget(
                TargetScope::Endpoint,
                Some("e-missing"),
                BudgetAction::Reject,
                1.0
            ))
            .await
        ),
        Code::ResourceDoesNotExist
    );
    let global = s
        .create_budget_policy(budget(TargetScope::Global, None, BudgetAction::Alert, 1.0))
        .await
        .unwrap();
    let per_endpoint = s
        .create_budget_policy(budget(
            TargetScope::Endpoint,
            Some(ep),
            BudgetAction::Reject,
            0.5,
        ))
        .await
        .unwrap();
    let per_user = s
        .create_budget_policy(budget(
            TargetScope::User,
            Some("alice"),
            BudgetAction::Alert,
            0.25,
        ))
        .await
        .unwrap();
    s.create_webhook(mlox_core::webhooks::NewWebhook {
        name: "budgets".into(),
        url: "https://example.com/hook".into(),
        events: vec![mlox_core::webhooks::WebhookEvent::new("budget_policy", "exceeded").unwrap()],
        description: None,
        secret: None,
        status: None,
    })
    .await
    .unwrap();

    let hour = 3_600_000;
    let t = 1_000 * hour + 5 * 60_000;
    let alice = CallScope {
        endpoint_id: Some(ep),
        username: Some("alice"),
    };
    let bob_elsewhere = CallScope {
        endpoint_id: Some("e-other"),
        username: Some("bob"),
    };
    s.record_gateway_spend(alice, 0.2, t).await.unwrap();
    s.record_gateway_spend(alice, 0.1, t + 1).await.unwrap(); // same minute: one row, summed
    s.record_gateway_spend(bob_elsewhere, 0.4, t + 2 * 60_000)
        .await
        .unwrap();
    s.record_gateway_spend(alice, 9.0, t + hour).await.unwrap(); // the next window

    let window = |p: &mlox_core::budget::BudgetPolicy| p.window_at(t);
    let spend = |p| {
        let s = &s;
        async move { s.budget_spend(p, window(p)).await.unwrap() }
    };
    assert!((spend(&global).await - 0.7).abs() < 1e-9);
    assert!((spend(&per_endpoint).await - 0.3).abs() < 1e-9);
    assert!((spend(&per_user).await - 0.3).abs() < 1e-9);

    // Alice's 0.3 crossed her 0.25 in the first window, and her 9.0 crossed both ALERT
    // policies in the next: three alerts, each once, with MLflow's payload.
    s.record_gateway_spend(alice, 0.1, t + 3).await.unwrap();
    let deliveries = s.claim_webhook_deliveries(100, 60_000, &[]).await.unwrap();
    let mut alerts: Vec<(String, i64)> = deliveries
        .iter()
        .map(|d| {
            assert_eq!(
                (d.entity.as_str(), d.action.as_str()),
                ("budget_policy", "exceeded")
            );
            let payload: serde_json::Value = serde_json::from_str(&d.payload).unwrap();
            assert_eq!(payload["budget_unit"], "USD");
            assert_eq!(payload["duration_unit"], "HOURS");
            (
                payload["budget_policy_id"].as_str().unwrap().to_string(),
                payload["window_start"].as_i64().unwrap(),
            )
        })
        .collect();
    alerts.sort();
    let mut expected = vec![
        (per_user.budget_policy_id.clone(), 1_000 * hour),
        (global.budget_policy_id.clone(), 1_001 * hour),
        (per_user.budget_policy_id.clone(), 1_001 * hour),
    ];
    expected.sort();
    assert_eq!(alerts, expected);
}

#[tokio::test]
async fn budget_policies_update_list_and_delete_as_mlflow_does() {
    use mlox_core::budget::{BudgetAction, TargetScope};
    let (_dir, s) = store().await;
    let (_, _, endpoint) = gateway_endpoint(&s, "chat", false).await;
    let policy = s
        .create_budget_policy(budget(
            TargetScope::Endpoint,
            Some(&endpoint.endpoint_id),
            BudgetAction::Reject,
            5.0,
        ))
        .await
        .unwrap();
    assert!(policy.budget_policy_id.starts_with("bp-"));
    // A new scope does not adopt a target written for the old one.
    assert_eq!(
        s.update_budget_policy(
            &policy.budget_policy_id,
            mlox_store::budgets::BudgetPolicyUpdate {
                target_scope: Some(TargetScope::User),
                ..Default::default()
            }
        )
        .await
        .unwrap_err()
        .message,
        "target_value is required when target_scope is USER."
    );
    let global = s
        .update_budget_policy(
            &policy.budget_policy_id,
            mlox_store::budgets::BudgetPolicyUpdate {
                target_scope: Some(TargetScope::Global),
                budget_amount: Some(7.5),
                updated_by: Some("bob".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((global.target_value, global.budget_amount), (None, 7.5));
    assert_eq!(global.last_updated_by.as_deref(), Some("bob"));
    assert_eq!(global.created_by.as_deref(), Some("admin"));

    for _ in 0..2 {
        s.create_budget_policy(budget(TargetScope::Global, None, BudgetAction::Alert, 1.0))
            .await
            .unwrap();
    }
    let (first, token) = s.list_budget_policies(2, None).await.unwrap();
    let (rest, end) = s.list_budget_policies(2, token.as_deref()).await.unwrap();
    assert_eq!((first.len(), rest.len(), end), (2, 1, None));
    let mut ids: Vec<String> = first
        .iter()
        .chain(&rest)
        .map(|p| p.budget_policy_id.clone())
        .collect();
    let listed = ids.clone();
    ids.sort();
    assert_eq!(listed, ids, "listed by id");

    s.delete_budget_policy(&policy.budget_policy_id)
        .await
        .unwrap();
    assert_eq!(
        code(s.get_budget_policy(&policy.budget_policy_id).await),
        Code::ResourceDoesNotExist
    );
    assert_eq!(
        code(s.delete_budget_policy(&policy.budget_policy_id).await),
        Code::ResourceDoesNotExist
    );
}
