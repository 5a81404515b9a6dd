//! Garbage collection with `mlflow gc`'s semantics: what is in the `deleted` stage (runs,
//! experiments, logged models), optionally only what was deleted long enough ago or what the
//! operator names, is removed for good. Each removal is one transaction that re-checks the
//! stage, so a run a live server restores meanwhile is kept, and a removal either happens
//! whole or not at all. Artifacts are the caller's: the plan says where each entity's are.

use mlox_core::{Error, Result};

use crate::db::{Bind, SqlStore, db_err, get_i64, get_opt_i64, get_str, now_ms};

/// What to collect. `None` lists mean "everything deleted" (within `older_than_ms`).
#[derive(Clone, Debug, Default)]
pub struct GcRequest {
    /// Only what was deleted at least this long ago (runs by their deletion time,
    /// experiments and logged models by their last update).
    pub older_than_ms: Option<i64>,
    pub run_ids: Option<Vec<String>>,
    pub experiment_ids: Option<Vec<String>>,
    pub logged_model_ids: Option<Vec<String>>,
}

/// One entity to remove and where its artifacts are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcItem {
    pub id: String,
    pub artifact_location: String,
    /// A run or logged model taken with an experiment being removed: it goes whatever its
    /// own stage, as its experiment does.
    pub with_experiment: bool,
}

/// Everything a collection will remove, checked as `mlflow gc` checks it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcPlan {
    pub runs: Vec<GcItem>,
    pub logged_models: Vec<GcItem>,
    pub experiments: Vec<GcItem>,
}

impl SqlStore {
    /// What `request` removes; named entities that are not deleted, or not old enough, are an
    /// error naming them, as in MLflow (nothing is removed then).
    pub async fn gc_plan(&self, request: &GcRequest) -> Result<GcPlan> {
        let now = now_ms();
        let threshold = request.older_than_ms.map(|age| now - age);
        let old_enough = |time: Option<i64>| match threshold {
            None => true,
            Some(limit) => time.is_some_and(|t| t < limit),
        };
        let mut plan = GcPlan::default();

        let experiments: Vec<GcItem> = match &request.experiment_ids {
            Some(ids) => {
                let mut found = Vec::new();
                for id in ids {
                    let experiment = self.get_experiment(id).await?;
                    found.push(experiment);
                }
                let active: Vec<&str> = found
                    .iter()
                    .filter(|e| e.lifecycle_stage != "deleted")
                    .map(|e| e.experiment_id.as_str())
                    .collect();
                if !active.is_empty() {
                    return Err(Error::invalid(format!(
                        "Experiments {active:?} are not in the deleted lifecycle stage. Only \
                         experiments in the deleted lifecycle stage can be hard-deleted."
                    )));
                }
                let young: Vec<&str> = found
                    .iter()
                    .filter(|e| !old_enough(Some(e.last_update_time)))
                    .map(|e| e.experiment_id.as_str())
                    .collect();
                if !young.is_empty() {
                    return Err(Error::invalid(format!(
                        "Experiments {young:?} are not older than the required age."
                    )));
                }
                found
                    .into_iter()
                    .map(|e| GcItem {
                        id: e.experiment_id,
                        artifact_location: e.artifact_location,
                        with_experiment: false,
                    })
                    .collect()
            }
            None => {
                let mut sql = self.sql(
                    "SELECT experiment_id, artifact_location, last_update_time FROM experiments \
                     WHERE lifecycle_stage = 'deleted' ORDER BY experiment_id",
                );
                let rows = sql_fetch(self, &mut sql).await?;
                rows.iter()
                    .filter(|row| old_enough(Some(get_i64(row, "last_update_time"))))
                    .map(|row| GcItem {
                        id: get_i64(row, "experiment_id").to_string(),
                        artifact_location: get_str(row, "artifact_location"),
                        with_experiment: false,
                    })
                    .collect()
            }
        };

        let mut runs: Vec<GcItem> = match &request.run_ids {
            Some(ids) => {
                let mut chosen = Vec::new();
                for id in ids {
                    let mut sql = self.sql(
                        "SELECT run_uuid, artifact_uri, lifecycle_stage, deleted_time FROM runs \
                         WHERE run_uuid = ",
                    );
                    sql.bind_str(id.clone());
                    let rows = sql_fetch(self, &mut sql).await?;
                    let row = rows
                        .first()
                        .ok_or_else(|| Error::not_found(format!("Run with id={id} not found")))?;
                    if get_str(row, "lifecycle_stage") != "deleted" {
                        return Err(Error::invalid(format!(
                            "Run {id} is not in `deleted` lifecycle stage. Only runs in \
                             `deleted` lifecycle stage can be deleted."
                        )));
                    }
                    if !old_enough(get_opt_i64(row, "deleted_time")) {
                        return Err(Error::invalid(format!(
                            "Run {id} is not older than the required age."
                        )));
                    }
                    chosen.push(GcItem {
                        id: id.clone(),
                        artifact_location: get_str(row, "artifact_uri"),
                        with_experiment: false,
                    });
                }
                chosen
            }
            None if request.experiment_ids.is_some() => Vec::new(),
            None => {
                let mut sql = self.sql(
                    "SELECT run_uuid, artifact_uri, deleted_time FROM runs \
                     WHERE lifecycle_stage = 'deleted' ORDER BY run_uuid",
                );
                sql_fetch(self, &mut sql)
                    .await?
                    .iter()
                    .filter(|row| old_enough(get_opt_i64(row, "deleted_time")))
                    .map(|row| GcItem {
                        id: get_str(row, "run_uuid"),
                        artifact_location: get_str(row, "artifact_uri"),
                        with_experiment: false,
                    })
                    .collect()
            }
        };
        // The runs of experiments being removed go with them, whatever their age.
        for experiment in &experiments {
            let mut sql =
                self.sql("SELECT run_uuid, artifact_uri FROM runs WHERE experiment_id = ");
            sql.bind_i64(experiment_number(&experiment.id)?);
            sql.push(" ORDER BY run_uuid");
            for row in sql_fetch(self, &mut sql).await? {
                let id = get_str(&row, "run_uuid");
                if !runs.iter().any(|r| r.id == id) {
                    runs.push(GcItem {
                        id,
                        artifact_location: get_str(&row, "artifact_uri"),
                        with_experiment: true,
                    });
                }
            }
        }
        plan.runs = runs;

        plan.logged_models = match &request.logged_model_ids {
            Some(ids) => {
                let mut chosen = Vec::new();
                for id in ids {
                    let model = self.get_logged_model(id).await?;
                    let mut sql = self.sql(
                        "SELECT lifecycle_stage, last_updated_timestamp_ms FROM logged_models \
                         WHERE model_id = ",
                    );
                    sql.bind_str(id.clone());
                    let rows = sql_fetch(self, &mut sql).await?;
                    let Some(row) = rows.first() else { continue };
                    if get_str(row, "lifecycle_stage") != "deleted" {
                        return Err(Error::invalid(format!(
                            "Logged model {id} is not in `deleted` lifecycle stage. Only logged \
                             models in `deleted` lifecycle stage can be deleted."
                        )));
                    }
                    if !old_enough(Some(get_i64(row, "last_updated_timestamp_ms"))) {
                        return Err(Error::invalid(format!(
                            "Logged model {id} is not older than the required age."
                        )));
                    }
                    chosen.push(GcItem {
                        id: id.clone(),
                        artifact_location: model.info.artifact_uri,
                        with_experiment: false,
                    });
                }
                chosen
            }
            None => {
                let mut sql = self.sql(
                    "SELECT model_id, artifact_location, experiment_id, \
                     last_updated_timestamp_ms, lifecycle_stage FROM logged_models \
                     ORDER BY model_id",
                );
                sql_fetch(self, &mut sql)
                    .await?
                    .iter()
                    .filter_map(|row| {
                        let with_experiment = experiments
                            .iter()
                            .any(|e| e.id == get_i64(row, "experiment_id").to_string());
                        let deleted_long_enough = get_str(row, "lifecycle_stage") == "deleted"
                            && old_enough(Some(get_i64(row, "last_updated_timestamp_ms")));
                        (with_experiment || deleted_long_enough).then(|| GcItem {
                            id: get_str(row, "model_id"),
                            artifact_location: get_str(row, "artifact_location"),
                            with_experiment,
                        })
                    })
                    .collect()
            }
        };
        plan.experiments = experiments;
        Ok(plan)
    }

    /// Removes a run and everything recorded under it, if it is still deleted; `false` when
    /// it is gone already or was restored meanwhile. A run of an experiment being removed
    /// goes whatever its stage.
    pub async fn hard_delete_run(&self, run_id: &str, in_removed_experiment: bool) -> Result<bool> {
        self.hard_delete(
            "DELETE FROM runs WHERE run_uuid = ",
            Bind::Str(run_id.to_owned()),
            !in_removed_experiment,
            &[
                "DELETE FROM params WHERE run_uuid = ",
                "DELETE FROM tags WHERE run_uuid = ",
                "DELETE FROM metrics WHERE run_uuid = ",
                "DELETE FROM metric_blocks WHERE run_uuid = ",
                "DELETE FROM latest_metrics WHERE run_uuid = ",
                "DELETE FROM run_models WHERE run_uuid = ",
                "DELETE FROM input_tags WHERE input_uuid IN (SELECT input_uuid FROM inputs \
                 WHERE destination_type = 'RUN' AND destination_id = ",
                "DELETE FROM inputs WHERE destination_type = 'RUN' AND destination_id = ",
            ],
        )
        .await
    }

    /// Removes a logged model and its tags, params and metrics.
    pub async fn hard_delete_logged_model(
        &self,
        model_id: &str,
        in_removed_experiment: bool,
    ) -> Result<bool> {
        self.hard_delete(
            "DELETE FROM logged_models WHERE model_id = ",
            Bind::Str(model_id.to_owned()),
            !in_removed_experiment,
            &[
                "DELETE FROM logged_model_tags WHERE model_id = ",
                "DELETE FROM logged_model_params WHERE model_id = ",
                "DELETE FROM logged_model_metrics WHERE model_id = ",
            ],
        )
        .await
    }

    /// Removes a deleted experiment with its tags, datasets, traces, scorers and the links
    /// evaluation datasets and gateway endpoints have to it (the datasets and endpoints
    /// themselves stay); its runs and logged models are removed first, one by one.
    pub async fn hard_delete_experiment(&self, experiment_id: &str) -> Result<bool> {
        self.hard_delete(
            "DELETE FROM experiments WHERE experiment_id = ",
            Bind::I64(experiment_number(experiment_id)?),
            true,
            &[
                "DELETE FROM experiment_tags WHERE experiment_id = ",
                "DELETE FROM evaluation_dataset_experiments WHERE experiment_id = ",
                "DELETE FROM trace_tags WHERE trace_id IN \
                 (SELECT trace_id FROM traces WHERE experiment_id = ",
                "DELETE FROM assessments WHERE trace_id IN \
                 (SELECT trace_id FROM traces WHERE experiment_id = ",
                "DELETE FROM trace_metadata WHERE trace_id IN \
                 (SELECT trace_id FROM traces WHERE experiment_id = ",
                "DELETE FROM trace_run_links WHERE trace_id IN \
                 (SELECT trace_id FROM traces WHERE experiment_id = ",
                "DELETE FROM spans WHERE experiment_id = ",
                "DELETE FROM issues WHERE experiment_id = ",
                "DELETE FROM gateway_endpoint_bindings WHERE resource_type = 'scorer' AND \
                 resource_id IN (SELECT scorer_id FROM scorers WHERE experiment_id = ",
                "DELETE FROM online_scoring_configs WHERE experiment_id = ",
                "UPDATE gateway_endpoints SET experiment_id = NULL WHERE experiment_id = ",
                "DELETE FROM scorer_versions WHERE scorer_id IN \
                 (SELECT scorer_id FROM scorers WHERE experiment_id = ",
                "DELETE FROM scorers WHERE experiment_id = ",
                "DELETE FROM traces WHERE experiment_id = ",
                "DELETE FROM input_tags WHERE input_uuid IN (SELECT i.input_uuid FROM inputs i \
                 JOIN datasets d ON i.source_id = d.dataset_uuid WHERE d.experiment_id = ",
                "DELETE FROM inputs WHERE source_id IN \
                 (SELECT dataset_uuid FROM datasets WHERE experiment_id = ",
                "DELETE FROM datasets WHERE experiment_id = ",
            ],
        )
        .await
    }

    /// One removal in one transaction: the entity's row (only while it is still deleted, when
    /// `only_if_deleted`), then, if that row was there, the rows recorded under it.
    async fn hard_delete(
        &self,
        entity: &str,
        id: Bind,
        only_if_deleted: bool,
        children: &[&str],
    ) -> Result<bool> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql(entity);
        sql.bind(id.clone());
        if only_if_deleted {
            sql.push(" AND lifecycle_stage = 'deleted'");
        }
        let removed = sql.query().execute(&mut *tx).await.map_err(db_err)?;
        if removed.rows_affected() == 0 {
            return Ok(false);
        }
        for statement in children {
            let mut sql = self.sql(statement);
            sql.bind(id.clone());
            if statement.contains("IN (") {
                sql.push(")");
            }
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }
}

fn experiment_number(id: &str) -> Result<i64> {
    id.parse()
        .map_err(|_| Error::invalid(format!("invalid experiment id '{id}'")))
}

async fn sql_fetch(store: &SqlStore, sql: &mut crate::db::Sql) -> Result<Vec<sqlx::any::AnyRow>> {
    std::mem::replace(sql, store.sql(""))
        .query()
        .fetch_all(&store.read)
        .await
        .map_err(db_err)
}
