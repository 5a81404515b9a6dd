//! MLflow-3 logged models: the record every `log_model` creates before uploading files, its
//! tags, params and linked metrics, finalisation, and search.

use crate::Dialect;
use crate::db::{
    Bind, PageWindow, Sql, SqlStore, append_to_uri_path, db_err, get_f64, get_i64, get_opt_str,
    get_str, now_ms, page_size,
};
use crate::search::{self, SearchSpec};
use mlox_core::entities::{
    KeyValue, LoggedModel, LoggedModelData, LoggedModelInfo, LoggedModelStatus, Metric, Page,
};
use mlox_core::ids::{new_logged_model_id, parse_experiment_id};
use mlox_core::{Error, Result, validation};
use sqlx::any::AnyRow;
use std::collections::HashMap;

pub const MAX_LOGGED_MODELS_PER_PAGE: i64 = 50;

const MODEL_COLUMNS: &str = "lm.model_id, lm.experiment_id, lm.name, lm.artifact_location, lm.creation_timestamp_ms, lm.last_updated_timestamp_ms, lm.status, lm.lifecycle_stage, lm.model_type, lm.source_run_id, lm.status_message";

/// An ordering request for logged-model search, as the API sends it.
#[derive(Clone, Debug)]
pub struct LoggedModelOrder {
    pub field_name: String,
    pub ascending: bool,
}

/// One dataset a logged-model search is restricted to: its metrics logged on that dataset
/// (any digest when none is given).
#[derive(Clone, Debug)]
pub struct LoggedModelDataset {
    pub name: String,
    pub digest: Option<String>,
}

/// `(<alias>.dataset_name = … [AND <alias>.dataset_digest = …] OR …)` over a
/// `logged_model_metrics` row; `datasets` is not empty.
pub(crate) fn push_dataset_match(sql: &mut Sql, alias: &str, datasets: &[LoggedModelDataset]) {
    sql.push("(");
    for (i, dataset) in datasets.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push(&format!("({alias}.dataset_name = "))
            .bind_str(&dataset.name);
        if let Some(digest) = &dataset.digest {
            sql.push(&format!(" AND {alias}.dataset_digest = "))
                .bind_str(digest);
        }
        sql.push(")");
    }
    sql.push(")");
}

fn info_from_row(row: &AnyRow) -> LoggedModelInfo {
    LoggedModelInfo {
        model_id: get_str(row, "model_id"),
        experiment_id: get_i64(row, "experiment_id").to_string(),
        name: get_str(row, "name"),
        creation_timestamp_ms: get_i64(row, "creation_timestamp_ms"),
        last_updated_timestamp_ms: get_i64(row, "last_updated_timestamp_ms"),
        artifact_uri: get_str(row, "artifact_location"),
        status: LoggedModelStatus::parse(&get_str(row, "status"))
            .unwrap_or(LoggedModelStatus::Unspecified),
        model_type: get_str(row, "model_type"),
        source_run_id: get_opt_str(row, "source_run_id").filter(|s| !s.is_empty()),
        status_message: get_opt_str(row, "status_message").filter(|s| !s.is_empty()),
        tags: Vec::new(),
        registrations: Vec::new(),
    }
}

impl SqlStore {
    #[allow(clippy::too_many_arguments)]
    pub async fn create_logged_model(
        &self,
        experiment_id: &str,
        name: Option<&str>,
        model_type: Option<&str>,
        source_run_id: Option<&str>,
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<LoggedModel> {
        let experiment = self.active_experiment(experiment_id).await?;
        for t in tags {
            validation::validate_logged_model_tag(t)?;
        }
        let params: Vec<KeyValue> = params
            .iter()
            .map(|p| validation::validate_param(p, ""))
            .collect::<Result<_>>()?;
        // MLflow records the source run as given, without looking it up, so a run this server
        // does not know (logged elsewhere, or since removed) is kept as a plain id; a run it
        // knows must be one of the model's experiment.
        if let Some(run_id) = source_run_id.filter(|r| !r.is_empty())
            && let Some(run) = self.find_run_info(run_id).await?
            && run.experiment_id != experiment.experiment_id
        {
            return Err(Error::invalid(format!(
                "Run '{run_id}' belongs to experiment '{}', not to experiment '{}'.",
                run.experiment_id, experiment.experiment_id
            )));
        }
        let model_id = new_logged_model_id();
        let name = name
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| format!("model-{}", &model_id[2..10]));
        let location = append_to_uri_path(
            &experiment.artifact_location,
            &format!("models/{model_id}/artifacts"),
        );
        let now = now_ms();
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql("INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, source_run_id, status_message) VALUES (");
        sql.bind_str(&model_id)
            .push(", ")
            .bind_i64(parse_experiment_id(&experiment.experiment_id)?)
            .push(", ");
        sql.bind_str(&name)
            .push(", ")
            .bind_str(&location)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(", ");
        sql.bind_str(LoggedModelStatus::Pending.as_str())
            .push(", 'active', ");
        sql.bind_str(model_type.unwrap_or_default()).push(", ");
        sql.bind(Bind::OptStr(
            source_run_id.filter(|r| !r.is_empty()).map(str::to_string),
        ))
        .push(", NULL)");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        upsert_kv(
            self.dialect,
            &mut tx,
            "logged_model_tags",
            &model_id,
            tags,
            true,
        )
        .await?;
        upsert_kv(
            self.dialect,
            &mut tx,
            "logged_model_params",
            &model_id,
            &params,
            false,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.get_logged_model(&model_id).await
    }

    pub async fn get_logged_model(&self, model_id: &str) -> Result<LoggedModel> {
        let mut sql = self.sql(&format!("SELECT {MODEL_COLUMNS} FROM logged_models lm WHERE lm.lifecycle_stage = 'active' AND lm.model_id = "));
        sql.bind_str(model_id);
        let Some(row) = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
        else {
            return Err(Error::not_found(format!(
                "Logged model with ID '{model_id}' not found."
            )));
        };
        Ok(self
            .assemble_models(vec![info_from_row(&row)])
            .await?
            .remove(0))
    }

    async fn assemble_models(&self, infos: Vec<LoggedModelInfo>) -> Result<Vec<LoggedModel>> {
        let ids: Vec<String> = infos.iter().map(|i| i.model_id.clone()).collect();
        let mut tags: HashMap<String, Vec<KeyValue>> = HashMap::new();
        let mut params: HashMap<String, Vec<KeyValue>> = HashMap::new();
        let mut metrics: HashMap<String, Vec<Metric>> = HashMap::new();
        self.collect_key_values("logged_model_tags", "model_id", &ids, &mut tags)
            .await?;
        self.collect_key_values("logged_model_params", "model_id", &ids, &mut params)
            .await?;
        let rows = self
            .load_children(
                "SELECT model_id, key, value, is_nan, timestamp, step, run_uuid, dataset_name, dataset_digest FROM logged_model_metrics WHERE model_id IN ",
                &ids,
                " ORDER BY key, timestamp, step",
            )
            .await?;
        for row in rows {
            let model_id = get_str(&row, "model_id");
            let is_nan = get_i64(&row, "is_nan") != 0;
            metrics.entry(model_id.clone()).or_default().push(Metric {
                key: get_str(&row, "key"),
                value: if is_nan {
                    f64::NAN
                } else {
                    get_f64(&row, "value")
                },
                timestamp: get_i64(&row, "timestamp"),
                step: get_i64(&row, "step"),
                dataset_name: get_opt_str(&row, "dataset_name"),
                dataset_digest: get_opt_str(&row, "dataset_digest"),
                model_id: Some(model_id),
                run_id: Some(get_str(&row, "run_uuid")),
            });
        }
        let mut registrations = self.registrations_for_models(&ids).await?;
        Ok(infos
            .into_iter()
            .map(|mut info| {
                let id = info.model_id.clone();
                info.tags = tags.remove(&id).unwrap_or_default();
                info.registrations = registrations.remove(&id).unwrap_or_default();
                LoggedModel {
                    info,
                    data: LoggedModelData {
                        params: params.remove(&id).unwrap_or_default(),
                        metrics: metrics.remove(&id).unwrap_or_default(),
                    },
                }
            })
            .collect())
    }

    pub async fn finalize_logged_model(
        &self,
        model_id: &str,
        status: LoggedModelStatus,
    ) -> Result<LoggedModel> {
        if !matches!(
            status,
            LoggedModelStatus::Ready | LoggedModelStatus::UploadFailed
        ) {
            return Err(Error::invalid(format!(
                "Invalid status '{}': a logged model can only be finalized as LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED.",
                status.as_str()
            )));
        }
        self.get_logged_model(model_id).await?;
        let mut sql = self.sql("UPDATE logged_models SET status = ");
        sql.bind_str(status.as_str())
            .push(", last_updated_timestamp_ms = ")
            .bind_i64(now_ms());
        sql.push(" WHERE model_id = ").bind_str(model_id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        self.get_logged_model(model_id).await
    }

    pub async fn set_logged_model_tags(
        &self,
        model_id: &str,
        tags: &[KeyValue],
    ) -> Result<LoggedModel> {
        for t in tags {
            validation::validate_logged_model_tag(t)?;
        }
        self.get_logged_model(model_id).await?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        upsert_kv(
            self.dialect,
            &mut tx,
            "logged_model_tags",
            model_id,
            tags,
            true,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.get_logged_model(model_id).await
    }

    pub async fn delete_logged_model_tag(&self, model_id: &str, key: &str) -> Result<()> {
        self.get_logged_model(model_id).await?;
        let mut sql = self.sql("DELETE FROM logged_model_tags WHERE model_id = ");
        sql.bind_str(model_id).push(" AND key = ").bind_str(key);
        let done = sql.query().execute(&self.write).await.map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with key '{key}' found for logged model with ID '{model_id}'."
            )));
        }
        Ok(())
    }

    pub async fn log_logged_model_params(&self, model_id: &str, params: &[KeyValue]) -> Result<()> {
        let params: Vec<KeyValue> = params
            .iter()
            .map(|p| validation::validate_param(p, ""))
            .collect::<Result<_>>()?;
        self.get_logged_model(model_id).await?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        upsert_kv(
            self.dialect,
            &mut tx,
            "logged_model_params",
            model_id,
            &params,
            false,
        )
        .await?;
        tx.commit().await.map_err(db_err)
    }

    pub async fn delete_logged_model(&self, model_id: &str) -> Result<()> {
        self.get_logged_model(model_id).await?;
        let mut sql = self.sql(
            "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_timestamp_ms = ",
        );
        sql.bind_i64(now_ms())
            .push(" WHERE model_id = ")
            .bind_str(model_id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    pub async fn search_logged_models(
        &self,
        experiment_ids: &[String],
        filter: Option<&str>,
        datasets: &[LoggedModelDataset],
        max_results: Option<i64>,
        order_by: &[LoggedModelOrder],
        token: Option<&str>,
    ) -> Result<Page<LoggedModel>> {
        if datasets.iter().any(|d| d.name.is_empty()) {
            return Err(Error::invalid(
                "`dataset_name` in the `datasets` clause must be specified.",
            ));
        }
        let max_results = page_size(
            max_results,
            MAX_LOGGED_MODELS_PER_PAGE,
            1..=MAX_LOGGED_MODELS_PER_PAGE,
            |size| {
                format!(
                    "Invalid value for 'max_results': it must be between 1 and {MAX_LOGGED_MODELS_PER_PAGE}, got {size}."
                )
            },
        )?;
        if experiment_ids.is_empty() {
            return Err(Error::invalid(
                "At least one experiment ID must be specified to search logged models.",
            ));
        }
        let ids: Vec<i64> = experiment_ids
            .iter()
            .map(|e| parse_experiment_id(e))
            .collect::<Result<_>>()?;
        let window = PageWindow::new(token, max_results)?;
        let mut sql = self.sql(&format!("SELECT {MODEL_COLUMNS} FROM logged_models lm WHERE lm.lifecycle_stage = 'active' AND lm.experiment_id IN "));
        sql.bind_list(ids.into_iter().map(Bind::I64));
        // Only models with metrics on one of the datasets; metric clauses below compare those
        // metrics only.
        if !datasets.is_empty() {
            sql.push(" AND EXISTS (SELECT 1 FROM logged_model_metrics dm WHERE dm.model_id = lm.model_id AND ");
            push_dataset_match(&mut sql, "dm", datasets);
            sql.push(")");
        }
        let spec = SearchSpec::for_logged_models(self.dialect, datasets);
        search::push_filter(&spec, &mut sql, filter)?;
        let orders: Vec<String> = order_by
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o.field_name,
                    if o.ascending { "ASC" } else { "DESC" }
                )
            })
            .collect();
        search::push_order_by(&spec, &mut sql, &orders)?;
        window.push_limit(&mut sql);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let infos: Vec<LoggedModelInfo> = rows.iter().map(info_from_row).collect();
        let (infos, next_page_token) = window.finish(infos);
        Ok(Page {
            items: self.assemble_models(infos).await?,
            next_page_token,
        })
    }
}

async fn upsert_kv(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    table: &str,
    model_id: &str,
    pairs: &[KeyValue],
    overwrite: bool,
) -> Result<()> {
    for pair in pairs {
        let mut sql = Sql::for_dialect(
            dialect,
            &format!("INSERT INTO {table} (model_id, key, value) VALUES ("),
        );
        sql.bind_str(model_id)
            .push(", ")
            .bind_str(&pair.key)
            .push(", ")
            .bind_str(&pair.value);
        sql.push(if overwrite {
            ") ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value"
        } else {
            ") ON CONFLICT (model_id, key) DO NOTHING"
        });
        sql.query().execute(&mut **tx).await.map_err(db_err)?;
    }
    Ok(())
}
