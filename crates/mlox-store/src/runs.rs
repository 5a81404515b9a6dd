//! Runs and everything logged into them: params (immutable once set), tags, metric history
//! with its latest-value table, dataset and model inputs, model outputs; and run search.

use crate::Dialect;
use crate::db::{
    Bind, PageWindow, Script, Sql, SqlStore, append_to_uri_path, db_err, get_f64, get_i64,
    get_opt_i64, get_opt_str, get_str, now_ms, page_size,
};
use crate::logging::LogShape;
use crate::metric_history::{HistoryPage, MetricPoint};
use crate::search::{self, SearchSpec};
use mlox_core::entities::{
    Dataset, DatasetInput, DatasetSummary, KeyValue, LifecycleStage, Metric, ModelInput,
    ModelOutput, Page, Run, RunData, RunInfo, RunInputs, RunOutputs, RunStatus, ViewType,
};
use mlox_core::ids::{new_run_id, parse_experiment_id};
use mlox_core::search::SearchEntity;
use mlox_core::{Error, Result, validation};
use sqlx::any::AnyRow;
use std::collections::HashMap;

pub const RUN_NAME_TAG: &str = "mlflow.runName";
pub const MAX_RUNS_PER_SEARCH: i64 = 50_000;
pub const MAX_RESULTS_PER_RUN: i64 = 2500;
pub const MAX_RUNS_PER_BULK_HISTORY: usize = 100;
/// Most dataset summaries one `experiments/search-datasets` call returns, as in MLflow.
pub const MAX_DATASET_SUMMARIES: i64 = 1000;
pub(crate) const ROWS_PER_INSERT: usize = 400;
#[derive(Clone, Debug, Default)]
pub struct CreateRun {
    pub experiment_id: Option<String>,
    pub user_id: Option<String>,
    pub start_time: Option<i64>,
    pub run_name: Option<String>,
    pub tags: Vec<KeyValue>,
}

#[derive(Clone, Debug, Default)]
pub struct MetricHistoryRequest {
    pub run_id: String,
    pub metric_key: String,
    pub max_results: Option<i64>,
    pub page_token: Option<String>,
}

const RUN_COLUMNS: &str = "r.run_uuid, r.name, r.experiment_id, r.user_id, r.status, r.start_time, r.end_time, r.lifecycle_stage, r.artifact_uri";

fn run_info_from_row(row: &AnyRow) -> RunInfo {
    let id = get_str(row, "run_uuid");
    RunInfo {
        run_uuid: id.clone(),
        experiment_id: get_i64(row, "experiment_id").to_string(),
        run_name: get_str(row, "name"),
        user_id: get_str(row, "user_id"),
        status: RunStatus::parse(&get_str(row, "status")).unwrap_or(RunStatus::Running),
        start_time: get_i64(row, "start_time"),
        end_time: get_opt_i64(row, "end_time"),
        artifact_uri: get_str(row, "artifact_uri"),
        lifecycle_stage: get_str(row, "lifecycle_stage"),
        run_id: id,
    }
}

fn point_metric(key: &str, point: &MetricPoint) -> Metric {
    Metric {
        key: key.to_string(),
        value: point.value(),
        timestamp: point.timestamp,
        step: point.step,
        dataset_name: None,
        dataset_digest: None,
        model_id: None,
        run_id: None,
    }
}

/// Names for runs created without one, in MLflow's adjective-noun-number style.
fn random_run_name() -> String {
    const ADJECTIVES: &[&str] = &[
        "amber", "brave", "bright", "calm", "clever", "crisp", "daring", "eager", "fancy",
        "gentle", "glossy", "happy", "honest", "jolly", "keen", "lively", "lucky", "merry",
        "nimble", "polite", "quick", "quiet", "rare", "rustic", "shiny", "silent", "smooth",
        "steady", "sunny", "swift", "tidy", "vivid", "warm", "wise", "witty", "zesty",
    ];
    const NOUNS: &[&str] = &[
        "ant", "bass", "bear", "bee", "bird", "carp", "cat", "crab", "crow", "deer", "doe", "dove",
        "eel", "elk", "finch", "fox", "frog", "goat", "hare", "hawk", "hen", "lamb", "lark",
        "lynx", "mole", "moth", "mouse", "newt", "owl", "panda", "seal", "shark", "sloth", "snail",
        "swan", "toad", "trout", "wasp", "whale", "wolf", "wren", "yak",
    ];
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let pick = |i: usize, n: usize| (u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize) % n;
    format!(
        "{}-{}-{}",
        ADJECTIVES[pick(0, ADJECTIVES.len())],
        NOUNS[pick(2, NOUNS.len())],
        pick(4, 1000)
    )
}

impl SqlStore {
    pub async fn create_run(&self, req: CreateRun) -> Result<Run> {
        let experiment_id = req.experiment_id.clone().unwrap_or_else(|| "0".to_string());
        let experiment = self.active_experiment(&experiment_id).await?;
        let mut tags = Vec::with_capacity(req.tags.len() + 1);
        for (i, t) in req.tags.iter().enumerate() {
            tags.push(validation::validate_run_tag(t, &format!("tags[{i}]"))?);
        }
        let tag_name = tags
            .iter()
            .find(|t| t.key == RUN_NAME_TAG)
            .map(|t| t.value.clone());
        let run_name = match (req.run_name.filter(|n| !n.is_empty()), tag_name) {
            (Some(name), Some(tag)) if name != tag => {
                return Err(Error::invalid(format!(
                    "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with \
                     different values (run_name='{name}', mlflow.runName='{tag}')."
                )));
            }
            (Some(name), _) => name,
            (None, Some(tag)) => tag,
            (None, None) => random_run_name(),
        };
        if !tags.iter().any(|t| t.key == RUN_NAME_TAG) {
            tags.push(KeyValue::new(RUN_NAME_TAG, run_name.clone()));
        }
        let run_id = new_run_id();
        let artifact_uri = append_to_uri_path(
            &experiment.artifact_location,
            &format!("{run_id}/artifacts"),
        );
        let info = RunInfo {
            run_uuid: run_id.clone(),
            experiment_id: experiment.experiment_id.clone(),
            run_name,
            user_id: req.user_id.unwrap_or_default(),
            status: RunStatus::Running,
            start_time: req.start_time.unwrap_or_else(now_ms),
            end_time: None,
            artifact_uri,
            lifecycle_stage: "active".into(),
            run_id: run_id.clone(),
        };
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql(
            "INSERT INTO runs (run_uuid, name, experiment_id, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri) VALUES (",
        );
        sql.bind_str(&run_id)
            .push(", ")
            .bind_str(&info.run_name)
            .push(", ");
        sql.bind_i64(parse_experiment_id(&info.experiment_id)?)
            .push(", ");
        sql.bind_str(&info.user_id)
            .push(", ")
            .bind_str(info.status.as_str())
            .push(", ");
        sql.bind_i64(info.start_time)
            .push(", NULL, 'active', ")
            .bind_str(&info.artifact_uri)
            .push(")");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        upsert_tags(self.dialect, &mut tx, &run_id, &tags).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(Run {
            info,
            data: RunData {
                metrics: Vec::new(),
                params: Vec::new(),
                tags,
            },
            inputs: RunInputs::default(),
            outputs: None,
        })
    }

    async fn run_info(&self, run_id: &str) -> Result<RunInfo> {
        self.find_run_info(run_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("Run with id={run_id} not found")))
    }

    /// The run's info, or `None` when there is no such run.
    pub(crate) async fn find_run_info(&self, run_id: &str) -> Result<Option<RunInfo>> {
        let mut sql = self.sql(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_uuid = "
        ));
        sql.bind_str(run_id);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        Ok(row.as_ref().map(run_info_from_row))
    }

    /// Reads the run inside a write transaction and checks it accepts writes.
    async fn lock_active_run(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run_id: &str,
    ) -> Result<RunInfo> {
        let mut sql = self.sql(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r WHERE r.run_uuid = "
        ));
        sql.bind_str(run_id);
        if self.dialect == crate::Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        let row = sql
            .query()
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Err(Error::not_found(format!("Run with id={run_id} not found")));
        };
        let info = run_info_from_row(&row);
        if info.lifecycle_stage != LifecycleStage::Active.as_str() {
            return Err(Error::invalid(format!(
                "The run {run_id} must be in the 'active' state. Current state is {}.",
                info.lifecycle_stage
            )));
        }
        Ok(info)
    }

    /// The run's info alone, for callers that need its artifact location but not its data.
    pub async fn get_run_info(&self, run_id: &str) -> Result<RunInfo> {
        self.run_info(run_id).await
    }

    pub async fn get_run(&self, run_id: &str) -> Result<Run> {
        let info = self.run_info(run_id).await?;
        Ok(self.assemble_runs(vec![info]).await?.remove(0))
    }

    /// Fills data, inputs and outputs for many runs with one query per side table.
    async fn assemble_runs(&self, infos: Vec<RunInfo>) -> Result<Vec<Run>> {
        let ids: Vec<String> = infos.iter().map(|i| i.run_uuid.clone()).collect();
        let mut metrics: HashMap<String, Vec<Metric>> = HashMap::new();
        let mut params: HashMap<String, Vec<KeyValue>> = HashMap::new();
        let mut tags: HashMap<String, Vec<KeyValue>> = HashMap::new();
        let mut datasets: HashMap<String, Vec<DatasetInput>> = HashMap::new();
        let mut model_inputs: HashMap<String, Vec<ModelInput>> = HashMap::new();
        let mut model_outputs: HashMap<String, Vec<ModelOutput>> = HashMap::new();
        let rows = self
            .load_children(
                "SELECT run_uuid, key, value, is_nan, timestamp, step FROM latest_metrics WHERE run_uuid IN ",
                &ids,
                "",
            )
            .await?;
        for row in rows {
            metrics
                .entry(get_str(&row, "run_uuid"))
                .or_default()
                .push(point_metric(
                    &get_str(&row, "key"),
                    &MetricPoint::stored(
                        get_i64(&row, "timestamp"),
                        get_i64(&row, "step"),
                        get_f64(&row, "value"),
                        get_i64(&row, "is_nan") != 0,
                    ),
                ));
        }
        self.collect_key_values("params", "run_uuid", &ids, &mut params)
            .await?;
        self.collect_key_values("tags", "run_uuid", &ids, &mut tags)
            .await?;
        let rows = self
            .load_children(
                "SELECT i.destination_id, i.input_uuid, d.name, d.digest, d.source_type, d.source, d.dataset_schema, d.profile \
                 FROM inputs i JOIN datasets d ON d.dataset_uuid = i.source_id \
                 WHERE i.source_type = 'DATASET' AND i.destination_type = 'RUN' AND i.destination_id IN ",
                &ids,
                "",
            )
            .await?;
        let input_ids: Vec<String> = rows.iter().map(|r| get_str(r, "input_uuid")).collect();
        let mut input_tags: HashMap<String, Vec<KeyValue>> = HashMap::new();
        let tag_rows = self
            .load_children(
                "SELECT input_uuid, name, value FROM input_tags WHERE input_uuid IN ",
                &input_ids,
                "",
            )
            .await?;
        for row in tag_rows {
            input_tags
                .entry(get_str(&row, "input_uuid"))
                .or_default()
                .push(KeyValue::new(get_str(&row, "name"), get_str(&row, "value")));
        }
        for row in rows {
            datasets
                .entry(get_str(&row, "destination_id"))
                .or_default()
                .push(DatasetInput {
                    tags: input_tags
                        .remove(&get_str(&row, "input_uuid"))
                        .unwrap_or_default(),
                    dataset: Dataset {
                        name: get_str(&row, "name"),
                        digest: get_str(&row, "digest"),
                        source_type: get_str(&row, "source_type"),
                        source: get_str(&row, "source"),
                        schema: get_opt_str(&row, "dataset_schema"),
                        profile: get_opt_str(&row, "profile"),
                    },
                });
        }
        let rows = self
            .load_children(
                "SELECT run_uuid, model_id, direction, step FROM run_models WHERE run_uuid IN ",
                &ids,
                "",
            )
            .await?;
        for row in rows {
            let run = get_str(&row, "run_uuid");
            let model_id = get_str(&row, "model_id");
            if get_str(&row, "direction") == "output" {
                model_outputs.entry(run).or_default().push(ModelOutput {
                    model_id,
                    step: get_i64(&row, "step"),
                });
            } else {
                model_inputs
                    .entry(run)
                    .or_default()
                    .push(ModelInput { model_id });
            }
        }
        Ok(infos
            .into_iter()
            .map(|info| {
                let id = &info.run_uuid;
                let outputs = model_outputs.remove(id);
                Run {
                    data: RunData {
                        metrics: metrics.remove(id).unwrap_or_default(),
                        params: params.remove(id).unwrap_or_default(),
                        tags: tags.remove(id).unwrap_or_default(),
                    },
                    inputs: RunInputs {
                        dataset_inputs: datasets.remove(id).unwrap_or_default(),
                        model_inputs: model_inputs.remove(id).unwrap_or_default(),
                    },
                    outputs: outputs.map(|model_outputs| RunOutputs { model_outputs }),
                    info,
                }
            })
            .collect())
    }

    pub async fn update_run(
        &self,
        run_id: &str,
        status: Option<RunStatus>,
        end_time: Option<i64>,
        run_name: Option<String>,
    ) -> Result<RunInfo> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut info = self.lock_active_run(&mut tx, run_id).await?;
        if let Some(status) = status {
            info.status = status;
        }
        if end_time.is_some() {
            info.end_time = end_time;
        }
        let mut sql = self.sql("UPDATE runs SET status = ");
        sql.bind_str(info.status.as_str())
            .push(", end_time = ")
            .bind(Bind::OptI64(info.end_time));
        if let Some(name) = run_name.filter(|n| !n.is_empty()) {
            sql.push(", name = ").bind_str(&name);
            upsert_tags(
                self.dialect,
                &mut tx,
                run_id,
                &[KeyValue::new(RUN_NAME_TAG, name.clone())],
            )
            .await?;
            info.run_name = name;
        }
        sql.push(" WHERE run_uuid = ").bind_str(run_id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(info)
    }

    async fn set_run_stage(&self, run_id: &str, stage: LifecycleStage) -> Result<()> {
        let info = self.run_info(run_id).await?;
        if stage == LifecycleStage::Active {
            // MLflow refuses to restore a run whose experiment is deleted.
            self.active_experiment(&info.experiment_id).await?;
        }
        let mut sql = self.sql("UPDATE runs SET lifecycle_stage = ");
        sql.bind_str(stage.as_str()).push(", deleted_time = ");
        sql.bind(Bind::OptI64(
            (stage == LifecycleStage::Deleted).then(now_ms),
        ));
        sql.push(" WHERE run_uuid = ").bind_str(run_id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    pub async fn delete_run(&self, run_id: &str) -> Result<()> {
        self.set_run_stage(run_id, LifecycleStage::Deleted).await
    }

    pub async fn restore_run(&self, run_id: &str) -> Result<()> {
        self.set_run_stage(run_id, LifecycleStage::Active).await
    }

    /// Logs metrics, params and tags atomically.
    pub async fn log_batch(
        &self,
        run_id: &str,
        metrics: &[Metric],
        params: &[KeyValue],
        tags: &[KeyValue],
    ) -> Result<()> {
        validation::validate_batch_limits(metrics.len(), params.len(), tags.len())?;
        validation::validate_param_keys_unique(params)?;
        self.log_entities(run_id, metrics, params, tags, LogShape::Batch)
            .await
    }

    pub async fn log_metric(&self, run_id: &str, metric: &Metric) -> Result<()> {
        self.log_entities(
            run_id,
            std::slice::from_ref(metric),
            &[],
            &[],
            LogShape::Single,
        )
        .await
    }

    pub async fn log_param(&self, run_id: &str, param: &KeyValue) -> Result<()> {
        self.log_entities(
            run_id,
            &[],
            std::slice::from_ref(param),
            &[],
            LogShape::Single,
        )
        .await
    }

    pub async fn set_tag(&self, run_id: &str, tag: &KeyValue) -> Result<()> {
        self.log_entities(
            run_id,
            &[],
            &[],
            std::slice::from_ref(tag),
            LogShape::Single,
        )
        .await
    }

    pub async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        self.lock_active_run(&mut tx, run_id).await?;
        let mut sql = self.sql("DELETE FROM tags WHERE run_uuid = ");
        sql.bind_str(run_id).push(" AND key = ").bind_str(key);
        let done = sql.query().execute(&mut *tx).await.map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in run with id {run_id}"
            )));
        }
        tx.commit().await.map_err(db_err)
    }

    /// A page of one metric's history in MLflow's order (timestamp, step, value): the whole
    /// history without `max_results`, as MLflow answers.
    pub async fn get_metric_history_page(&self, req: &MetricHistoryRequest) -> Result<HistoryPage> {
        if let Some(max) = req.max_results
            && max < 1
        {
            return Err(Error::invalid(format!(
                "Invalid value {max} for parameter 'max_results': it must be positive."
            )));
        }
        self.run_info(&req.run_id).await?;
        self.history_page(
            &req.run_id,
            &req.metric_key,
            req.max_results,
            req.page_token.as_deref(),
        )
        .await
    }

    /// [`Self::get_metric_history_page`] as metric entities.
    pub async fn get_metric_history(&self, req: &MetricHistoryRequest) -> Result<Page<Metric>> {
        let page = self.get_metric_history_page(req).await?;
        Ok(Page {
            items: page
                .points
                .iter()
                .map(|p| point_metric(&req.metric_key, p))
                .collect(),
            next_page_token: page.next_page_token,
        })
    }

    /// Every point of one metric in several runs, ordered by run id, then timestamp, step and
    /// value, as MLflow's `get-history-bulk` answers: at most `max_results` points in all
    /// (capped at [`validation::MAX_POINTS_PER_HISTORY_BULK`]); unknown runs have no points.
    pub async fn get_metric_history_bulk(
        &self,
        run_ids: &[String],
        metric_key: Option<&str>,
        max_results: Option<i64>,
    ) -> Result<Vec<Metric>> {
        validation::validate_metric_history_bulk(run_ids, metric_key)?;
        let metric_key = metric_key.unwrap_or_default();
        let mut left = max_results
            .unwrap_or(validation::MAX_POINTS_PER_HISTORY_BULK)
            .clamp(0, validation::MAX_POINTS_PER_HISTORY_BULK) as usize;
        let mut runs: Vec<&String> = run_ids.iter().collect();
        runs.sort();
        runs.dedup();
        let mut out = Vec::new();
        for run_id in runs {
            if left == 0 {
                break;
            }
            let points = self
                .read_series(run_id, metric_key, None, Some(left))
                .await?;
            left -= points.len();
            out.extend(points.iter().map(|p| Metric {
                run_id: Some(run_id.clone()),
                ..point_metric(metric_key, p)
            }));
        }
        Ok(out)
    }

    /// Up to `max_results` evenly spread steps per run, always keeping the first and last, so a
    /// chart of a long history stays cheap; MLflow's UI asks for this.
    pub async fn get_metric_history_bulk_interval(
        &self,
        run_ids: &[String],
        metric_key: &str,
        start_step: Option<i64>,
        end_step: Option<i64>,
        max_results: i64,
    ) -> Result<Vec<Metric>> {
        if run_ids.is_empty() {
            return Err(Error::invalid(
                "GetMetricHistoryBulkInterval request must specify at least one run_id.",
            ));
        }
        if run_ids.len() > MAX_RUNS_PER_BULK_HISTORY {
            return Err(Error::invalid(format!(
                "GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS_PER_BULK_HISTORY} run_ids. Received {} run_ids.",
                run_ids.len()
            )));
        }
        if !(1..=MAX_RESULTS_PER_RUN).contains(&max_results) {
            return Err(Error::invalid(format!(
                "max_results must be between 1 and {MAX_RESULTS_PER_RUN}."
            )));
        }
        let mut out = Vec::new();
        for run_id in run_ids {
            let mut points = self.read_series(run_id, metric_key, None, None).await?;
            if let (Some(s), Some(e)) = (start_step, end_step) {
                points.retain(|p| (s..=e).contains(&p.step));
            }
            let mut steps: Vec<i64> = points.iter().map(|p| p.step).collect();
            steps.sort_unstable();
            steps.dedup();
            if steps.len() > max_results as usize {
                let chosen: std::collections::HashSet<i64> =
                    sample_indices(steps.len(), max_results as usize)
                        .into_iter()
                        .map(|i| steps[i])
                        .collect();
                points.retain(|p| chosen.contains(&p.step));
            }
            // Stable: points of one step and time keep their value order.
            points.sort_by_key(|p| (p.step, p.timestamp));
            out.extend(points.iter().map(|p| Metric {
                run_id: Some(run_id.clone()),
                ..point_metric(metric_key, p)
            }));
        }
        Ok(out)
    }

    /// Each distinct (dataset, context) that runs of the experiments used, at most
    /// [`MAX_DATASET_SUMMARIES`], as MLflow's `experiments/search-datasets` answers.
    pub async fn search_dataset_summaries(
        &self,
        experiment_ids: &[String],
    ) -> Result<Vec<DatasetSummary>> {
        validation::validate_dataset_search(experiment_ids)?;
        let ids = experiment_ids
            .iter()
            .map(|id| parse_experiment_id(id).map(Bind::I64))
            .collect::<Result<Vec<_>>>()?;
        let mut sql = self.sql(
            "SELECT DISTINCT d.experiment_id, d.name, d.digest, t.value AS context \
             FROM datasets d JOIN inputs i ON i.source_id = d.dataset_uuid \
             LEFT JOIN input_tags t ON t.input_uuid = i.input_uuid \
             AND t.name = 'mlflow.data.context' WHERE d.experiment_id IN ",
        );
        sql.bind_list(ids);
        sql.push(" ORDER BY d.experiment_id, d.name, d.digest, context LIMIT ")
            .bind_i64(MAX_DATASET_SUMMARIES);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|row| DatasetSummary {
                experiment_id: get_i64(row, "experiment_id").to_string(),
                name: get_str(row, "name"),
                digest: get_str(row, "digest"),
                context: get_opt_str(row, "context"),
            })
            .collect())
    }

    pub async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
        models: &[ModelInput],
    ) -> Result<()> {
        for d in datasets {
            validation::validate_dataset(&d.dataset)?;
            for t in &d.tags {
                validation::validate_input_tag(t)?;
            }
        }
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let info = self.lock_active_run(&mut tx, run_id).await?;
        let experiment_id = parse_experiment_id(&info.experiment_id)?;
        for d in datasets {
            let mut sql = self.sql("SELECT dataset_uuid FROM datasets WHERE experiment_id = ");
            sql.bind_i64(experiment_id)
                .push(" AND name = ")
                .bind_str(&d.dataset.name);
            sql.push(" AND digest = ").bind_str(&d.dataset.digest);
            let dataset_uuid = match sql.query().fetch_optional(&mut *tx).await.map_err(db_err)? {
                Some(row) => get_str(&row, "dataset_uuid"),
                None => {
                    let id = uuid::Uuid::new_v4().simple().to_string();
                    let mut sql = self.sql("INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, source_type, source, dataset_schema, profile) VALUES (");
                    sql.bind_str(&id)
                        .push(", ")
                        .bind_i64(experiment_id)
                        .push(", ");
                    sql.bind_str(&d.dataset.name)
                        .push(", ")
                        .bind_str(&d.dataset.digest)
                        .push(", ");
                    sql.bind_str(&d.dataset.source_type)
                        .push(", ")
                        .bind_str(&d.dataset.source)
                        .push(", ");
                    sql.bind(Bind::OptStr(d.dataset.schema.clone())).push(", ");
                    sql.bind(Bind::OptStr(d.dataset.profile.clone())).push(")");
                    sql.query().execute(&mut *tx).await.map_err(db_err)?;
                    id
                }
            };
            let mut sql = self.sql(
                "SELECT input_uuid FROM inputs WHERE source_type = 'DATASET' AND source_id = ",
            );
            sql.bind_str(&dataset_uuid)
                .push(" AND destination_type = 'RUN' AND destination_id = ")
                .bind_str(run_id);
            if sql
                .query()
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .is_some()
            {
                continue;
            }
            let input_uuid = uuid::Uuid::new_v4().simple().to_string();
            let mut sql = self.sql("INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, destination_id) VALUES (");
            sql.bind_str(&input_uuid)
                .push(", 'DATASET', ")
                .bind_str(&dataset_uuid)
                .push(", 'RUN', ")
                .bind_str(run_id)
                .push(")");
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
            for t in &d.tags {
                let mut sql = self.sql("INSERT INTO input_tags (input_uuid, name, value) VALUES (");
                sql.bind_str(&input_uuid)
                    .push(", ")
                    .bind_str(&t.key)
                    .push(", ")
                    .bind_str(&t.value);
                sql.push(") ON CONFLICT (input_uuid, name) DO UPDATE SET value = excluded.value");
                sql.query().execute(&mut *tx).await.map_err(db_err)?;
            }
        }
        for m in models {
            link_model(self.dialect, &mut tx, run_id, &m.model_id, "input", 0).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    pub async fn log_outputs(&self, run_id: &str, models: &[ModelOutput]) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        self.lock_active_run(&mut tx, run_id).await?;
        for m in models {
            let mut sql = self.sql("SELECT 1 AS one FROM logged_models WHERE model_id = ");
            sql.bind_str(&m.model_id);
            if sql
                .query()
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .is_none()
            {
                return Err(Error::not_found(format!(
                    "Logged model with ID '{}' not found.",
                    m.model_id
                )));
            }
            link_model(self.dialect, &mut tx, run_id, &m.model_id, "output", m.step).await?;
        }
        tx.commit().await.map_err(db_err)
    }

    pub async fn search_runs(
        &self,
        experiment_ids: &[String],
        filter: Option<&str>,
        view: ViewType,
        max_results: Option<i64>,
        order_by: &[String],
        token: Option<&str>,
    ) -> Result<Page<Run>> {
        let Some(query) =
            self.search_runs_query(experiment_ids, filter, view, max_results, order_by, token)?
        else {
            return Ok(Page {
                items: Vec::new(),
                next_page_token: None,
            });
        };
        let ordered_walk = query.ordered_walk && self.planner_has_statistics().await;
        let rows = self.fetch_search_rows(query.sql, ordered_walk).await?;
        let infos: Vec<RunInfo> = rows.iter().map(run_info_from_row).collect();
        let (infos, next_page_token) = query.window.finish(infos);
        Ok(Page {
            items: self.assemble_runs(infos).await?,
            next_page_token,
        })
    }

    /// How PostgreSQL runs a run search, as `EXPLAIN ANALYZE` reports it after running it
    /// (one line per plan line): what shows whether a search stops at its page's end. `None`
    /// on SQLite, whose plans do not count rows.
    pub async fn explain_search_runs(
        &self,
        experiment_ids: &[String],
        filter: Option<&str>,
        max_results: Option<i64>,
        order_by: &[String],
    ) -> Result<Option<Vec<String>>> {
        if self.dialect != Dialect::Postgres {
            return Ok(None);
        }
        let Some(query) = self.search_runs_query(
            experiment_ids,
            filter,
            ViewType::ActiveOnly,
            max_results,
            order_by,
            None,
        )?
        else {
            return Ok(None);
        };
        let mut sql = self.sql("EXPLAIN ANALYZE ");
        sql.push(&query.sql.text);
        sql.binds = query.sql.binds;
        let ordered_walk = query.ordered_walk && self.planner_has_statistics().await;
        let rows = self.fetch_search_rows(sql, ordered_walk).await?;
        Ok(Some(
            rows.iter().map(|row| get_str(row, "QUERY PLAN")).collect(),
        ))
    }

    /// Whether PostgreSQL has statistics on the tables a run search joins (ANALYZE, by hand or
    /// by autovacuum), read at most once a minute. Without them its estimates are guesses, and
    /// an ordered walk forced on guesses can pick a join that reads every param per metric
    /// row; the planner's own choice is then the safer one.
    async fn planner_has_statistics(&self) -> bool {
        const RECHECK: std::time::Duration = std::time::Duration::from_secs(60);
        if let Ok(seen) = self.planner_statistics.lock()
            && let Some((at, analysed)) = *seen
            && at.elapsed() < RECHECK
        {
            return analysed;
        }
        let sql = self.sql(
            "SELECT COUNT(*) AS n FROM pg_stat_user_tables WHERE relname IN \
             ('runs', 'latest_metrics', 'params', 'tags') \
             AND COALESCE(last_analyze, last_autoanalyze) IS NOT NULL",
        );
        let analysed = match sql.query().fetch_one(&self.read).await {
            Ok(row) => get_i64(&row, "n") == 4,
            Err(_) => false,
        };
        if let Ok(mut seen) = self.planner_statistics.lock() {
            *seen = Some((std::time::Instant::now(), analysed));
        }
        analysed
    }

    /// Runs a run search's statement (or its `EXPLAIN`). An ordered walk runs with sorting
    /// priced out: PostgreSQL's planner, costing from averages, often prefers joining every
    /// match and sorting them, where walking the ordered index stops after about a page's
    /// worth of matches, whatever the experiment's size.
    async fn fetch_search_rows(&self, sql: Sql, ordered_walk: bool) -> Result<Vec<AnyRow>> {
        if !ordered_walk {
            return sql.query().fetch_all(&self.read).await.map_err(db_err);
        }
        let mut tx = self.read.begin().await.map_err(db_err)?;
        sqlx::query("SET LOCAL enable_sort = off")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let rows = sql.query().fetch_all(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(rows)
    }

    /// The statement of a run search's page and its window; `None` when it cannot match.
    fn search_runs_query(
        &self,
        experiment_ids: &[String],
        filter: Option<&str>,
        view: ViewType,
        max_results: Option<i64>,
        order_by: &[String],
        token: Option<&str>,
    ) -> Result<Option<RunSearchQuery>> {
        let max_results = page_size(max_results, 1000, 0..=MAX_RUNS_PER_SEARCH, |size| {
            format!(
                "Invalid value {size} for parameter 'max_results' supplied. It must be at most {MAX_RUNS_PER_SEARCH}"
            )
        })?;
        let window = PageWindow::new(token, max_results)?;
        let ids: Vec<i64> = experiment_ids
            .iter()
            .map(|e| parse_experiment_id(e))
            .collect::<Result<_>>()?;
        if ids.is_empty() || max_results == 0 {
            return Ok(None);
        }
        let spec = SearchSpec::for_entity(SearchEntity::Runs, self.dialect);
        let mut sql = self.sql(&format!("SELECT {RUN_COLUMNS} FROM runs r"));
        let (rest, filter_joins) = search::push_filter_joins(&spec, &mut sql, filter)?;
        let orders = search::push_order_joins(&spec, &mut sql, order_by, &filter_joins)?;
        sql.push(" WHERE r.experiment_id IN ");
        sql.bind_list(ids.into_iter().map(Bind::I64));
        sql.push(" AND r.lifecycle_stage IN ");
        sql.bind_list(view.stages().iter().map(|s| Bind::Str((*s).to_string())));
        search::push_parsed_filter(&spec, &mut sql, &rest)?;
        search::push_joined_order_by(&spec, &mut sql, &orders)?;
        window.push_limit(&mut sql);
        Ok(Some(RunSearchQuery {
            sql,
            window,
            ordered_walk: self.dialect == Dialect::Postgres
                && orders.first().is_some_and(|o| o.reads_filter_join()),
        }))
    }
}

/// A run search's page statement.
struct RunSearchQuery {
    sql: Sql,
    window: PageWindow,
    /// Whether the first order is on a key the filter joined, whose index the search should
    /// walk in order (see `SqlStore::fetch_search_rows`).
    ordered_walk: bool,
}

/// Positions of `max` evenly spread items among `len` (more than `max`), first and last
/// included: the steps MLflow's sampling keeps.
fn sample_indices(len: usize, max: usize) -> Vec<usize> {
    if max <= 1 {
        return vec![0];
    }
    let last = len - 1;
    let mut out: Vec<usize> = (0..max).map(|i| i * last / (max - 1)).collect();
    out.dedup();
    out
}

async fn link_model(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: &str,
    model_id: &str,
    direction: &str,
    step: i64,
) -> Result<()> {
    let mut sql = Sql::for_dialect(
        dialect,
        "INSERT INTO run_models (run_uuid, model_id, direction, step) VALUES (",
    );
    sql.bind_str(run_id)
        .push(", ")
        .bind_str(model_id)
        .push(", ")
        .bind_str(direction)
        .push(", ")
        .bind_i64(step);
    sql.push(") ON CONFLICT (run_uuid, direction, model_id) DO UPDATE SET step = excluded.step");
    sql.query().execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

pub(crate) async fn upsert_tags(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: &str,
    tags: &[KeyValue],
) -> Result<()> {
    let mut script = Script::default();
    push_tag_upserts(&mut script, dialect, run_id, tags);
    script.execute(dialect, tx).await
}

/// The statements that set `tags` on a run; the last value for a key within one call wins,
/// as a statement may not touch a row twice.
pub(crate) fn push_tag_upserts(
    script: &mut Script,
    dialect: Dialect,
    run_id: &str,
    tags: &[KeyValue],
) {
    let mut last: Vec<&KeyValue> = Vec::new();
    for t in tags.iter().rev() {
        if !last.iter().any(|k| k.key == t.key) {
            last.push(t);
        }
    }
    for chunk in last.chunks(ROWS_PER_INSERT) {
        let mut sql = Sql::for_dialect(dialect, "INSERT INTO tags (run_uuid, key, value) VALUES ");
        sql.bind_rows(chunk, |t| {
            [
                Bind::Str(run_id.to_string()),
                Bind::Str(t.key.clone()),
                Bind::Str(t.value.clone()),
            ]
        });
        sql.push(" ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value");
        script.push(sql);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_ends_and_spreads_evenly() {
        assert_eq!(sample_indices(100, 5), vec![0, 24, 49, 74, 99]);
        assert_eq!(sample_indices(3, 2), vec![0, 2]);
        assert_eq!(sample_indices(10, 1), vec![0]);
    }

    proptest::proptest! {
        #[test]
        fn sampling_picks_max_distinct_positions_in_order(len in 2usize..5000, max in 2usize..2600) {
            proptest::prop_assume!(len > max);
            let s = sample_indices(len, max);
            proptest::prop_assert_eq!(s.len(), max);
            proptest::prop_assert_eq!(s[0], 0);
            proptest::prop_assert_eq!(*s.last().unwrap(), len - 1);
            proptest::prop_assert!(s.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn random_names_have_three_parts() {
        let name = random_run_name();
        assert_eq!(name.split('-').count(), 3, "{name}");
    }
}
