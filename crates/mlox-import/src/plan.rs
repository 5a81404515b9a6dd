//! What is copied from which MLflow table into which mlox table: one SELECT per target table
//! that yields the target's columns in order, already shaped (renamed columns, NULLs MLflow
//! allows but mlox does not, booleans as integers, enum integers as mlox's names). Every cast
//! is spelled so SQLite and PostgreSQL sources answer with the same value kinds.

use crate::source::{Engine, Source};
use mlox_core::entities::LoggedModelStatus;
use mlox_store::ImportTable;

pub(crate) struct TablePlan {
    /// The MLflow table read; a plan whose table the source lacks is skipped.
    pub source_table: &'static str,
    pub target: ImportTable,
    /// Shown in the progress bar and summary; distinguishes two plans on one source table.
    pub label: &'static str,
    pub select: String,
    pub count: String,
}

fn int(expr: &str) -> String {
    format!("CAST({expr} AS BIGINT)")
}

fn real(expr: &str) -> String {
    format!("CAST({expr} AS DOUBLE PRECISION)")
}

/// MLflow's BOOLEAN columns are 0/1 integers on SQLite and booleans on PostgreSQL; a CASE
/// reads both.
fn flag(column: &str) -> String {
    int(&format!("CASE WHEN {column} THEN 1 ELSE 0 END"))
}

fn plan(
    source_table: &'static str,
    target: ImportTable,
    label: &'static str,
    columns: &[String],
    filter: &str,
) -> TablePlan {
    TablePlan {
        source_table,
        target,
        label,
        select: format!("SELECT {} FROM {source_table}{filter}", columns.join(", ")),
        count: format!("SELECT COUNT(*) FROM {source_table}{filter}"),
    }
}

fn strs(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| c.to_string()).collect()
}

const MODEL_LINKS: &str = "source_type IN ('RUN_INPUT', 'RUN_OUTPUT')";

/// The plans in dependency order (parents before children), so that a partial import reads
/// sensibly even though mlox declares no foreign keys.
pub(crate) fn plans(src: &Source) -> Vec<TablePlan> {
    let col = |table: &str, column: &'static str, fallback: &'static str| {
        src.column_or(table, column, fallback).to_string()
    };
    let status_names = [
        LoggedModelStatus::Pending,
        LoggedModelStatus::Ready,
        LoggedModelStatus::UploadFailed,
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| format!(" WHEN {} THEN '{}'", i + 1, s.as_str()))
    .collect::<String>();
    let logged_model_status = format!(
        "CASE {}{status_names} ELSE '{}' END",
        int("status"),
        LoggedModelStatus::Unspecified.as_str()
    );
    vec![
        plan(
            "experiments",
            ImportTable::Experiments,
            "experiments",
            &[
                int("experiment_id"),
                "name".into(),
                "COALESCE(artifact_location, '')".into(),
                "COALESCE(lifecycle_stage, 'active')".into(),
                int(&format!(
                    "COALESCE({}, 0)",
                    col("experiments", "creation_time", "NULL")
                )),
                int(&format!(
                    "COALESCE({}, {}, 0)",
                    col("experiments", "last_update_time", "NULL"),
                    col("experiments", "creation_time", "NULL")
                )),
            ],
            "",
        ),
        plan(
            "experiment_tags",
            ImportTable::ExperimentTags,
            "experiment_tags",
            &[
                int("experiment_id"),
                "key".into(),
                "COALESCE(value, '')".into(),
            ],
            "",
        ),
        plan(
            "runs",
            ImportTable::Runs,
            "runs",
            &[
                "run_uuid".into(),
                format!("COALESCE({}, '')", col("runs", "name", "NULL")),
                int("COALESCE(experiment_id, 0)"),
                "COALESCE(user_id, '')".into(),
                "COALESCE(status, 'RUNNING')".into(),
                int("COALESCE(start_time, 0)"),
                int("end_time"),
                "COALESCE(lifecycle_stage, 'active')".into(),
                "COALESCE(artifact_uri, '')".into(),
                int(&col("runs", "deleted_time", "NULL")),
            ],
            "",
        ),
        plan(
            "params",
            ImportTable::Params,
            "params",
            &strs(&["run_uuid", "key", "COALESCE(value, '')"]),
            "",
        ),
        plan(
            "tags",
            ImportTable::Tags,
            "tags",
            &strs(&["run_uuid", "key", "COALESCE(value, '')"]),
            "",
        ),
        plan(
            "metrics",
            ImportTable::Metrics,
            "metrics",
            &[
                "run_uuid".into(),
                "key".into(),
                int(&format!("COALESCE({}, 0)", col("metrics", "step", "NULL"))),
                int("COALESCE(timestamp, 0)"),
                real("COALESCE(value, 0)"),
                if src.has_column("metrics", "is_nan") {
                    flag("is_nan")
                } else {
                    int("0")
                },
            ],
            "",
        ),
        plan(
            "latest_metrics",
            ImportTable::LatestMetrics,
            "latest_metrics",
            &[
                "run_uuid".into(),
                "key".into(),
                real("COALESCE(value, 0)"),
                flag("is_nan"),
                int("COALESCE(timestamp, 0)"),
                int("COALESCE(step, 0)"),
            ],
            "",
        ),
        plan(
            "datasets",
            ImportTable::Datasets,
            "datasets",
            &[
                "dataset_uuid".into(),
                int("experiment_id"),
                "name".into(),
                "digest".into(),
                "dataset_source_type".into(),
                "dataset_source".into(),
                "dataset_schema".into(),
                "dataset_profile".into(),
            ],
            "",
        ),
        plan(
            "inputs",
            ImportTable::Inputs,
            "inputs",
            &strs(&[
                "input_uuid",
                "source_type",
                "source_id",
                "destination_type",
                "destination_id",
            ]),
            &format!(" WHERE NOT ({MODEL_LINKS})"),
        ),
        // MLflow records a run's model inputs and outputs as `inputs` rows; mlox keeps them
        // in their own table.
        plan(
            "inputs",
            ImportTable::RunModels,
            "run_models",
            &[
                "source_id".into(),
                "destination_id".into(),
                "CASE WHEN source_type = 'RUN_INPUT' THEN 'input' ELSE 'output' END".into(),
                int(&format!("COALESCE({}, 0)", col("inputs", "step", "NULL"))),
            ],
            &format!(" WHERE {MODEL_LINKS}"),
        ),
        plan(
            "input_tags",
            ImportTable::InputTags,
            "input_tags",
            &strs(&["input_uuid", "name", "value"]),
            "",
        ),
        plan(
            "logged_models",
            ImportTable::LoggedModels,
            "logged_models",
            &[
                "model_id".into(),
                int("experiment_id"),
                "name".into(),
                "artifact_location".into(),
                int("creation_timestamp_ms"),
                int("last_updated_timestamp_ms"),
                logged_model_status,
                "COALESCE(lifecycle_stage, 'active')".into(),
                "COALESCE(model_type, '')".into(),
                "source_run_id".into(),
                "status_message".into(),
            ],
            "",
        ),
        plan(
            "logged_model_params",
            ImportTable::LoggedModelParams,
            "logged_model_params",
            &strs(&["model_id", "param_key", "param_value"]),
            "",
        ),
        plan(
            "logged_model_tags",
            ImportTable::LoggedModelTags,
            "logged_model_tags",
            &strs(&["model_id", "tag_key", "tag_value"]),
            "",
        ),
        plan(
            "logged_model_metrics",
            ImportTable::LoggedModelMetrics,
            "logged_model_metrics",
            &[
                "model_id".into(),
                "metric_name".into(),
                int("metric_step"),
                int("metric_timestamp_ms"),
                real("COALESCE(metric_value, 0)"),
                int("CASE WHEN metric_value IS NULL THEN 1 ELSE 0 END"),
                "run_id".into(),
                "dataset_name".into(),
                "dataset_digest".into(),
            ],
            "",
        ),
        plan(
            "registered_models",
            ImportTable::RegisteredModels,
            "registered_models",
            &[
                "name".into(),
                int("COALESCE(creation_time, 0)"),
                int("COALESCE(last_updated_time, creation_time, 0)"),
                "description".into(),
            ],
            "",
        ),
        plan(
            "registered_model_tags",
            ImportTable::RegisteredModelTags,
            "registered_model_tags",
            &strs(&["name", "key", "COALESCE(value, '')"]),
            "",
        ),
        plan(
            "model_versions",
            ImportTable::ModelVersions,
            "model_versions",
            &[
                "name".into(),
                int("version"),
                int("COALESCE(creation_time, 0)"),
                int("COALESCE(last_updated_time, creation_time, 0)"),
                "description".into(),
                "user_id".into(),
                "COALESCE(current_stage, 'None')".into(),
                "COALESCE(source, '')".into(),
                "run_id".into(),
                col("model_versions", "run_link", "NULL"),
                "COALESCE(status, 'READY')".into(),
                "status_message".into(),
                col("model_versions", "storage_location", "NULL"),
                // MLflow does not store the logged model a version was made from; mlox does,
                // and derives it from a `models:/m-…` source the same way on registration.
                "CASE WHEN source LIKE 'models:/m-%' AND source NOT LIKE 'models:/m-%/%' \
                 THEN SUBSTR(source, 9) END"
                    .into(),
            ],
            "",
        ),
        plan(
            "model_version_tags",
            ImportTable::ModelVersionTags,
            "model_version_tags",
            &[
                "name".into(),
                int("version"),
                "key".into(),
                "COALESCE(value, '')".into(),
            ],
            "",
        ),
        plan(
            "registered_model_aliases",
            ImportTable::RegisteredModelAliases,
            "registered_model_aliases",
            &["name".into(), "alias".into(), int("version")],
            "",
        ),
        webhooks(src),
        plan(
            "evaluation_datasets",
            ImportTable::EvaluationDatasets,
            "evaluation_datasets",
            &[
                "dataset_id".into(),
                "name".into(),
                text("schema"),
                text("profile"),
                "COALESCE(digest, '')".into(),
                int("COALESCE(created_time, 0)"),
                int("COALESCE(last_update_time, created_time, 0)"),
                "created_by".into(),
                "last_updated_by".into(),
            ],
            "",
        ),
        plan(
            "evaluation_dataset_tags",
            ImportTable::EvaluationDatasetTags,
            "evaluation_dataset_tags",
            &strs(&["dataset_id", "key", "COALESCE(value, '')"]),
            "",
        ),
        plan(
            "evaluation_dataset_records",
            ImportTable::EvaluationDatasetRecords,
            "evaluation_dataset_records",
            &[
                "dataset_record_id".into(),
                "dataset_id".into(),
                "input_hash".into(),
                text("inputs"),
                if src.has_column("evaluation_dataset_records", "outputs") {
                    text("outputs")
                } else {
                    "NULL".into()
                },
                text("expectations"),
                format!("COALESCE({}, '{{}}')", text("tags")),
                text("source"),
                "source_id".into(),
                "source_type".into(),
                int("COALESCE(created_time, 0)"),
                int("COALESCE(last_update_time, created_time, 0)"),
                "created_by".into(),
                "last_updated_by".into(),
            ],
            "",
        ),
        // MLflow links a dataset to its experiments in its generic association table.
        plan(
            "entity_associations",
            ImportTable::EvaluationDatasetExperiments,
            "evaluation_dataset_experiments",
            &[
                "source_id".into(),
                int("destination_id"),
                int(&format!(
                    "COALESCE({}, 0)",
                    col("entity_associations", "created_time", "NULL")
                )),
            ],
            " WHERE source_type = 'evaluation_dataset' AND destination_type = 'experiment'",
        ),
    ]
}

/// A JSON column as its text (PostgreSQL keeps MLflow's JSON columns as `json`).
fn text(column: &str) -> String {
    format!("CAST({column} AS TEXT)")
}

/// Live webhooks with their subscribed events folded into mlox's one column; the secret is
/// still MLflow's Fernet token here and is sealed again before it is written.
fn webhooks(src: &Source) -> TablePlan {
    let event = "e.entity || '.' || e.action";
    let fold = match src.engine {
        Engine::Sqlite => format!("group_concat({event}, ',')"),
        Engine::Postgres => format!("string_agg({event}, ',')"),
    };
    let events = if src.has_table("webhook_events") {
        format!(
            "COALESCE((SELECT {fold} FROM webhook_events e \
             WHERE e.webhook_id = webhooks.webhook_id), '')"
        )
    } else {
        "''".into()
    };
    let live = if src.has_column("webhooks", "deleted_timestamp") {
        " WHERE deleted_timestamp IS NULL"
    } else {
        ""
    };
    plan(
        "webhooks",
        ImportTable::Webhooks,
        "webhooks",
        &[
            "webhook_id".into(),
            "name".into(),
            "description".into(),
            "url".into(),
            events,
            "secret".into(),
            "COALESCE(status, 'ACTIVE')".into(),
            int("creation_timestamp"),
            int("COALESCE(last_updated_timestamp, creation_timestamp)"),
        ],
        live,
    )
}

/// MLflow tables holding data mlox does not take over, with why; reported with their row
/// counts so nothing is left behind unnoticed.
pub(crate) const NOT_IMPORTED: &[(&str, &str, &str)] = &[
    (
        "scorers",
        "",
        "registered scorers are not imported: register them again",
    ),
    (
        "endpoints",
        "",
        "AI gateway endpoints, model definitions and secrets are not imported: create them \
         again (secrets are sealed with the MLflow server's passphrase)",
    ),
    (
        "budget_policies",
        "",
        "AI gateway budget policies are not imported",
    ),
    ("issues", "", "issues are not imported"),
];
