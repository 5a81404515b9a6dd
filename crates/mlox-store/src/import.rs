//! Bulk writes that keep the ids they are given, for taking over another server's data
//! (`mlox import`). Normal writes allocate ids, validate and emit webhook events; an import
//! must instead reproduce rows exactly, so existing `runs:/`, `models:/` and artifact URIs keep
//! resolving. Every table has a fixed column list here, so callers pass only values and the SQL
//! text stays this crate's own.
//!
//! Re-importing is safe: a row whose key (or any unique column set) already exists is left as
//! it is, except the two cases documented on [`ImportTable`].

use crate::db::{Bind, Sql, SqlStore, db_err};
use mlox_core::{Error, Result};

/// How a value of one import column is typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportKind {
    Text,
    OptText,
    Int,
    OptInt,
    Real,
}

/// One value of an imported row, in the order of [`ImportTable::columns`].
#[derive(Clone, Debug, PartialEq)]
pub enum ImportValue {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Real(f64),
}

impl ImportValue {
    fn kind(&self) -> ImportKind {
        match self {
            ImportValue::Text(_) => ImportKind::Text,
            ImportValue::OptText(_) => ImportKind::OptText,
            ImportValue::Int(_) => ImportKind::Int,
            ImportValue::OptInt(_) => ImportKind::OptInt,
            ImportValue::Real(_) => ImportKind::Real,
        }
    }

    fn into_bind(self) -> Bind {
        match self {
            ImportValue::Text(s) => Bind::Str(s),
            ImportValue::OptText(s) => Bind::OptStr(s),
            ImportValue::Int(v) => Bind::I64(v),
            ImportValue::OptInt(v) => Bind::OptI64(v),
            ImportValue::Real(v) => Bind::F64(v),
        }
    }
}

/// The tables an import writes.
///
/// Conflicts are skipped (`ON CONFLICT DO NOTHING`) with two exceptions:
/// * `LatestMetrics` keeps whichever point is newer by step, then timestamp, then value, the
///   rule every metric write follows, so a re-import never moves a run's latest value back.
/// * `Experiments` overwrites experiment 0: a store creates its own "Default" experiment when
///   it is opened, and the source's (its name and artifact location) must take its place.
///   Any other experiment whose name is already taken under a different id is an error rather
///   than a silent skip, since the runs that follow would otherwise land in the wrong place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImportTable {
    Experiments,
    ExperimentTags,
    Runs,
    Params,
    Tags,
    Metrics,
    LatestMetrics,
    Datasets,
    Inputs,
    InputTags,
    RunModels,
    LoggedModels,
    LoggedModelParams,
    LoggedModelTags,
    LoggedModelMetrics,
    RegisteredModels,
    RegisteredModelTags,
    ModelVersions,
    ModelVersionTags,
    RegisteredModelAliases,
    Webhooks,
    EvaluationDatasets,
    EvaluationDatasetTags,
    EvaluationDatasetRecords,
    EvaluationDatasetExperiments,
}

use ImportKind::{Int, OptInt, OptText, Real, Text};

const KEY_VALUE: &[(&str, ImportKind)] = &[("key", Text), ("value", Text)];

impl ImportTable {
    pub fn name(self) -> &'static str {
        match self {
            ImportTable::Experiments => "experiments",
            ImportTable::ExperimentTags => "experiment_tags",
            ImportTable::Runs => "runs",
            ImportTable::Params => "params",
            ImportTable::Tags => "tags",
            ImportTable::Metrics => "metrics",
            ImportTable::LatestMetrics => "latest_metrics",
            ImportTable::Datasets => "datasets",
            ImportTable::Inputs => "inputs",
            ImportTable::InputTags => "input_tags",
            ImportTable::RunModels => "run_models",
            ImportTable::LoggedModels => "logged_models",
            ImportTable::LoggedModelParams => "logged_model_params",
            ImportTable::LoggedModelTags => "logged_model_tags",
            ImportTable::LoggedModelMetrics => "logged_model_metrics",
            ImportTable::RegisteredModels => "registered_models",
            ImportTable::RegisteredModelTags => "registered_model_tags",
            ImportTable::ModelVersions => "model_versions",
            ImportTable::ModelVersionTags => "model_version_tags",
            ImportTable::RegisteredModelAliases => "registered_model_aliases",
            ImportTable::Webhooks => "webhooks",
            ImportTable::EvaluationDatasets => "evaluation_datasets",
            ImportTable::EvaluationDatasetTags => "evaluation_dataset_tags",
            ImportTable::EvaluationDatasetRecords => "evaluation_dataset_records",
            ImportTable::EvaluationDatasetExperiments => "evaluation_dataset_experiments",
        }
    }

    /// The columns a row must carry, in order.
    pub fn columns(self) -> Vec<(&'static str, ImportKind)> {
        let owned_kv = |owner: &'static str| {
            let mut c = vec![(owner, Text)];
            c.extend_from_slice(KEY_VALUE);
            c
        };
        match self {
            ImportTable::Experiments => vec![
                ("experiment_id", Int),
                ("name", Text),
                ("artifact_location", Text),
                ("lifecycle_stage", Text),
                ("creation_time", Int),
                ("last_update_time", Int),
            ],
            ImportTable::ExperimentTags => {
                vec![("experiment_id", Int), ("key", Text), ("value", Text)]
            }
            ImportTable::Runs => vec![
                ("run_uuid", Text),
                ("name", Text),
                ("experiment_id", Int),
                ("user_id", Text),
                ("status", Text),
                ("start_time", Int),
                ("end_time", OptInt),
                ("lifecycle_stage", Text),
                ("artifact_uri", Text),
                ("deleted_time", OptInt),
            ],
            ImportTable::Params | ImportTable::Tags => owned_kv("run_uuid"),
            ImportTable::Metrics => vec![
                ("run_uuid", Text),
                ("key", Text),
                ("step", Int),
                ("timestamp", Int),
                ("value", Real),
                ("is_nan", Int),
            ],
            ImportTable::LatestMetrics => vec![
                ("run_uuid", Text),
                ("key", Text),
                ("value", Real),
                ("is_nan", Int),
                ("timestamp", Int),
                ("step", Int),
            ],
            ImportTable::Datasets => vec![
                ("dataset_uuid", Text),
                ("experiment_id", Int),
                ("name", Text),
                ("digest", Text),
                ("source_type", Text),
                ("source", Text),
                ("dataset_schema", OptText),
                ("profile", OptText),
            ],
            ImportTable::Inputs => vec![
                ("input_uuid", Text),
                ("source_type", Text),
                ("source_id", Text),
                ("destination_type", Text),
                ("destination_id", Text),
            ],
            ImportTable::InputTags => vec![("input_uuid", Text), ("name", Text), ("value", Text)],
            ImportTable::RunModels => vec![
                ("run_uuid", Text),
                ("model_id", Text),
                ("direction", Text),
                ("step", Int),
            ],
            ImportTable::LoggedModels => vec![
                ("model_id", Text),
                ("experiment_id", Int),
                ("name", Text),
                ("artifact_location", Text),
                ("creation_timestamp_ms", Int),
                ("last_updated_timestamp_ms", Int),
                ("status", Text),
                ("lifecycle_stage", Text),
                ("model_type", Text),
                ("source_run_id", OptText),
                ("status_message", OptText),
            ],
            ImportTable::LoggedModelParams | ImportTable::LoggedModelTags => owned_kv("model_id"),
            ImportTable::LoggedModelMetrics => vec![
                ("model_id", Text),
                ("key", Text),
                ("step", Int),
                ("timestamp", Int),
                ("value", Real),
                ("is_nan", Int),
                ("run_uuid", Text),
                ("dataset_name", OptText),
                ("dataset_digest", OptText),
            ],
            ImportTable::RegisteredModels => vec![
                ("name", Text),
                ("creation_time", Int),
                ("last_updated_time", Int),
                ("description", OptText),
            ],
            ImportTable::RegisteredModelTags => owned_kv("name"),
            ImportTable::ModelVersions => vec![
                ("name", Text),
                ("version", Int),
                ("creation_time", Int),
                ("last_updated_time", Int),
                ("description", OptText),
                ("user_id", OptText),
                ("current_stage", Text),
                ("source", Text),
                ("run_id", OptText),
                ("run_link", OptText),
                ("status", Text),
                ("status_message", OptText),
                ("storage_location", OptText),
                ("model_id", OptText),
            ],
            ImportTable::ModelVersionTags => vec![
                ("name", Text),
                ("version", Int),
                ("key", Text),
                ("value", Text),
            ],
            ImportTable::RegisteredModelAliases => {
                vec![("name", Text), ("alias", Text), ("version", Int)]
            }
            // `events` as mlox keeps them ("entity.action", comma-separated); `secret` already
            // sealed with this installation's key.
            ImportTable::Webhooks => vec![
                ("webhook_id", Text),
                ("name", Text),
                ("description", OptText),
                ("url", Text),
                ("events", Text),
                ("secret", OptText),
                ("status", Text),
                ("creation_timestamp", Int),
                ("last_updated_timestamp", Int),
            ],
            ImportTable::EvaluationDatasets => vec![
                ("dataset_id", Text),
                ("name", Text),
                ("schema_json", OptText),
                ("profile_json", OptText),
                ("digest", Text),
                ("created_time", Int),
                ("last_update_time", Int),
                ("created_by", OptText),
                ("last_updated_by", OptText),
            ],
            ImportTable::EvaluationDatasetTags => owned_kv("dataset_id"),
            // JSON text as MLflow keeps it; `tags` is never NULL here.
            ImportTable::EvaluationDatasetRecords => vec![
                ("dataset_record_id", Text),
                ("dataset_id", Text),
                ("input_hash", Text),
                ("inputs", Text),
                ("outputs", OptText),
                ("expectations", OptText),
                ("tags", Text),
                ("source", OptText),
                ("source_id", OptText),
                ("source_type", OptText),
                ("created_time", Int),
                ("last_update_time", Int),
                ("created_by", OptText),
                ("last_updated_by", OptText),
            ],
            ImportTable::EvaluationDatasetExperiments => vec![
                ("dataset_id", Text),
                ("experiment_id", Int),
                ("created_time", Int),
            ],
        }
    }

    fn on_conflict(self) -> &'static str {
        match self {
            ImportTable::Experiments => {
                " ON CONFLICT (experiment_id) DO UPDATE SET name = excluded.name, \
                 artifact_location = excluded.artifact_location, \
                 lifecycle_stage = excluded.lifecycle_stage, \
                 creation_time = excluded.creation_time, last_update_time = excluded.last_update_time \
                 WHERE experiments.experiment_id = 0 AND (experiments.name <> excluded.name \
                 OR experiments.artifact_location <> excluded.artifact_location \
                 OR experiments.lifecycle_stage <> excluded.lifecycle_stage \
                 OR experiments.creation_time <> excluded.creation_time \
                 OR experiments.last_update_time <> excluded.last_update_time)"
            }
            ImportTable::LatestMetrics => {
                " ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value, \
                 is_nan = excluded.is_nan, timestamp = excluded.timestamp, step = excluded.step \
                 WHERE excluded.step > latest_metrics.step \
                 OR (excluded.step = latest_metrics.step AND excluded.timestamp > latest_metrics.timestamp) \
                 OR (excluded.step = latest_metrics.step AND excluded.timestamp = latest_metrics.timestamp \
                 AND excluded.value > latest_metrics.value)"
            }
            _ => " ON CONFLICT DO NOTHING",
        }
    }
}

/// Binds per statement: far below SQLite's and PostgreSQL's limits, large enough that the
/// per-statement overhead stops mattering.
const BINDS_PER_STATEMENT: usize = 12_000;

impl SqlStore {
    /// Writes `rows` into `table` in one transaction, as multi-row inserts, keeping every value
    /// as given. Returns how many rows were written (new or, for the upserting tables, changed);
    /// rows already present count as not written.
    pub async fn import_rows(
        &self,
        table: ImportTable,
        rows: Vec<Vec<ImportValue>>,
    ) -> Result<u64> {
        if rows.is_empty() {
            return Ok(0);
        }
        let columns = table.columns();
        for row in &rows {
            let shape_ok = row.len() == columns.len()
                && row.iter().zip(&columns).all(|(v, (_, k))| v.kind() == *k);
            if !shape_ok {
                return Err(Error::invalid(format!(
                    "import row for {} does not match its columns: {row:?}",
                    table.name()
                )));
            }
        }
        let head = format!(
            "INSERT INTO {} ({}) VALUES ",
            table.name(),
            columns
                .iter()
                .map(|(c, _)| *c)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let per_statement = (BINDS_PER_STATEMENT / columns.len()).max(1);
        let mut written = 0;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let mut sql = Sql::for_dialect(self.dialect, &head);
            sql.bind_rows(rows.by_ref().take(per_statement), |row| {
                row.into_iter().map(|value| value.into_bind())
            });
            sql.push(table.on_conflict());
            let done = sql.query().execute(&mut *tx).await.map_err(|e| {
                let err = db_err(e);
                Error::new(
                    err.code,
                    format!("importing into {}: {}", table.name(), err.message),
                )
            })?;
            written += done.rows_affected();
        }
        tx.commit().await.map_err(db_err)?;
        Ok(written)
    }
}
