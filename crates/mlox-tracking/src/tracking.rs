//! Handlers for MLflow's TrackingService: experiments, runs, metrics, inputs/outputs, logged
//! models. Each decodes its message, checks what MLflow's handler checks before the store is
//! reached, calls the store, and renders MLflow's response shape.

use crate::error::{ApiError, ApiResult};
use crate::request::{Msg, de_opt_bool, de_string_list};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use mlox_core::entities::{
    DatasetInput, KeyValue, LoggedModelStatus, Metric, ModelInput, ModelOutput, RunStatus, ViewType,
};
use mlox_core::wire::{de_opt_f64, de_opt_i64, de_opt_id};
use mlox_core::{Error, validation};
use mlox_store::{CreateRun, MetricHistoryRequest};
use serde::Deserialize;
use serde_json::{Value, json};

type JsonResult = ApiResult<Json<Value>>;

fn required<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError(validation::missing_request_parameter(name)))
}

pub(crate) fn required_str(value: Option<String>, name: &str) -> Result<String, ApiError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError(validation::missing_request_parameter(name))),
    }
}

fn parse_view(view: Option<String>) -> Result<ViewType, ApiError> {
    match view {
        None => Ok(ViewType::ActiveOnly),
        Some(v) => ViewType::parse(&v).ok_or_else(|| {
            ApiError(Error::invalid(format!(
                "Invalid view type '{v}'. Expected one of ACTIVE_ONLY, DELETED_ONLY, ALL."
            )))
        }),
    }
}

fn ok() -> JsonResult {
    Ok(Json(json!({})))
}

/// Either spelling of a run id; the client sends both.
#[derive(Deserialize)]
pub struct RunRef {
    run_id: Option<String>,
    run_uuid: Option<String>,
}

/// The run a message names, from the two fields every run message spells out itself rather
/// than flattening a [`RunRef`] into it: flattening makes serde buffer the message and check
/// the run last, so a bad run id would be reported after fields that follow it, unlike MLflow,
/// which checks the run first.
fn run_ref(run_id: Option<String>, run_uuid: Option<String>) -> RunRef {
    RunRef { run_id, run_uuid }
}

impl RunRef {
    fn id(self) -> Result<String, ApiError> {
        required_str(
            self.run_id.filter(|s| !s.is_empty()).or(self.run_uuid),
            "run_id",
        )
    }
}

// ---------------------------------------------------------------- experiments

#[derive(Deserialize)]
pub struct CreateExperimentMsg {
    name: Option<String>,
    artifact_location: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create_experiment(
    State(s): State<AppState>,
    Msg(m): Msg<CreateExperimentMsg>,
) -> JsonResult {
    let name = required_str(m.name, "name")?;
    let artifact_location = match m.artifact_location.filter(|l| !l.is_empty()) {
        Some(location) => {
            s.settings
                .artifact_host_policy
                .check("artifact_location", &location)?;
            Some(crate::state::resolve_artifact_location(&location)?)
        }
        None => None,
    };
    let id = s
        .store
        .create_experiment(&name, artifact_location.as_deref(), &m.tags)
        .await?;
    Ok(Json(json!({ "experiment_id": id })))
}

#[derive(Deserialize)]
pub struct ExperimentIdMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
}

pub async fn get_experiment(State(s): State<AppState>, Msg(m): Msg<ExperimentIdMsg>) -> JsonResult {
    let id = required_str(m.experiment_id, "experiment_id")?;
    let exp = s.store.get_experiment(&id).await?;
    Ok(Json(json!({ "experiment": exp })))
}

#[derive(Deserialize)]
pub struct ExperimentNameMsg {
    experiment_name: Option<String>,
}

pub async fn get_experiment_by_name(
    State(s): State<AppState>,
    Msg(m): Msg<ExperimentNameMsg>,
) -> JsonResult {
    let name = required_str(m.experiment_name, "experiment_name")?;
    let exp = s.store.get_experiment_by_name(&name).await?;
    Ok(Json(json!({ "experiment": exp })))
}

pub async fn delete_experiment(
    State(s): State<AppState>,
    Msg(m): Msg<ExperimentIdMsg>,
) -> JsonResult {
    s.store
        .delete_experiment(&required_str(m.experiment_id, "experiment_id")?)
        .await?;
    ok()
}

pub async fn restore_experiment(
    State(s): State<AppState>,
    Msg(m): Msg<ExperimentIdMsg>,
) -> JsonResult {
    s.store
        .restore_experiment(&required_str(m.experiment_id, "experiment_id")?)
        .await?;
    ok()
}

#[derive(Deserialize)]
pub struct UpdateExperimentMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    new_name: Option<String>,
}

pub async fn update_experiment(
    State(s): State<AppState>,
    Msg(m): Msg<UpdateExperimentMsg>,
) -> JsonResult {
    let id = required_str(m.experiment_id, "experiment_id")?;
    if let Some(name) = m.new_name.filter(|n| !n.is_empty()) {
        s.store.rename_experiment(&id, &name).await?;
    } else {
        s.store.get_experiment(&id).await?;
    }
    ok()
}

#[derive(Deserialize)]
pub struct ExperimentTagMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn set_experiment_tag(
    State(s): State<AppState>,
    Msg(m): Msg<ExperimentTagMsg>,
) -> JsonResult {
    let id = required_str(m.experiment_id, "experiment_id")?;
    let key = required_str(m.key, "key")?;
    s.store
        .set_experiment_tag(&id, &KeyValue::new(key, m.value.unwrap_or_default()))
        .await?;
    ok()
}

pub async fn delete_experiment_tag(
    State(s): State<AppState>,
    Msg(m): Msg<ExperimentTagMsg>,
) -> JsonResult {
    let id = required_str(m.experiment_id, "experiment_id")?;
    let key = required_str(m.key, "key")?;
    s.store.delete_experiment_tag(&id, &key).await?;
    ok()
}

#[derive(Deserialize)]
pub struct SearchExperimentsMsg {
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    order_by: Vec<String>,
    view_type: Option<String>,
}

pub async fn search_experiments(
    State(s): State<AppState>,
    Msg(m): Msg<SearchExperimentsMsg>,
) -> JsonResult {
    let view = parse_view(m.view_type)?;
    let page = s
        .store
        .search_experiments(
            view,
            m.filter.as_deref(),
            &m.order_by,
            m.max_results,
            m.page_token.as_deref(),
        )
        .await?;
    let mut body = json!({ "experiments": page.items });
    if let Some(t) = page.next_page_token {
        body["next_page_token"] = json!(t);
    }
    Ok(Json(body))
}

// ---------------------------------------------------------------- runs

#[derive(Deserialize)]
pub struct CreateRunMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    user_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time: Option<i64>,
    run_name: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create_run(State(s): State<AppState>, Msg(m): Msg<CreateRunMsg>) -> JsonResult {
    let run = s
        .store
        .create_run(CreateRun {
            experiment_id: m.experiment_id,
            user_id: m.user_id,
            start_time: m.start_time,
            run_name: m.run_name,
            tags: m.tags,
        })
        .await?;
    Ok(Json(json!({ "run": run })))
}

pub async fn get_run(State(s): State<AppState>, Msg(m): Msg<RunRef>) -> JsonResult {
    let run = s.store.get_run(&m.id()?).await?;
    Ok(Json(json!({ "run": run })))
}

#[derive(Deserialize)]
pub struct UpdateRunMsg {
    run_id: Option<String>,
    run_uuid: Option<String>,
    status: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_time: Option<i64>,
    run_name: Option<String>,
}

pub async fn update_run(State(s): State<AppState>, Msg(m): Msg<UpdateRunMsg>) -> JsonResult {
    let status = match m.status {
        None => None,
        Some(st) => Some(RunStatus::parse(&st).ok_or_else(|| {
            ApiError(Error::invalid(format!("Invalid run status '{st}'. Expected one of RUNNING, SCHEDULED, FINISHED, FAILED, KILLED.")))
        })?),
    };
    let info = s
        .store
        .update_run(
            &run_ref(m.run_id, m.run_uuid).id()?,
            status,
            m.end_time,
            m.run_name,
        )
        .await?;
    Ok(Json(json!({ "run_info": info })))
}

pub async fn delete_run(State(s): State<AppState>, Msg(m): Msg<RunRef>) -> JsonResult {
    s.store.delete_run(&m.id()?).await?;
    ok()
}

pub async fn restore_run(State(s): State<AppState>, Msg(m): Msg<RunRef>) -> JsonResult {
    s.store.restore_run(&m.id()?).await?;
    ok()
}

#[derive(Deserialize)]
pub struct LogMetricMsg {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_f64")]
    value: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    step: Option<i64>,
    model_id: Option<String>,
    dataset_name: Option<String>,
    dataset_digest: Option<String>,
}

pub async fn log_metric(State(s): State<AppState>, Msg(m): Msg<LogMetricMsg>) -> JsonResult {
    let run_id = run_ref(m.run_id, m.run_uuid).id()?;
    let metric = Metric {
        key: required_str(m.key, "key")?,
        value: required(m.value, "value")?,
        timestamp: required(m.timestamp, "timestamp")?,
        step: m.step.unwrap_or(0),
        model_id: m.model_id.filter(|s| !s.is_empty()),
        dataset_name: m.dataset_name.filter(|s| !s.is_empty()),
        dataset_digest: m.dataset_digest.filter(|s| !s.is_empty()),
        run_id: None,
    };
    s.store.log_metric(&run_id, &metric).await?;
    ok()
}

#[derive(Deserialize)]
pub struct KeyValueMsg {
    run_id: Option<String>,
    run_uuid: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn log_param(State(s): State<AppState>, Msg(m): Msg<KeyValueMsg>) -> JsonResult {
    let run_id = run_ref(m.run_id, m.run_uuid).id()?;
    let key = required_str(m.key, "key")?;
    let param = KeyValue::new(key, m.value.unwrap_or_default());
    s.store.log_param(&run_id, &param).await?;
    ok()
}

pub async fn set_tag(State(s): State<AppState>, Msg(m): Msg<KeyValueMsg>) -> JsonResult {
    let run_id = run_ref(m.run_id, m.run_uuid).id()?;
    let key = required_str(m.key, "key")?;
    let tag = KeyValue::new(key, m.value.unwrap_or_default());
    s.store.set_tag(&run_id, &tag).await?;
    ok()
}

pub async fn delete_tag(State(s): State<AppState>, Msg(m): Msg<KeyValueMsg>) -> JsonResult {
    let run_id = run_ref(m.run_id, m.run_uuid).id()?;
    let key = required_str(m.key, "key")?;
    s.store.delete_run_tag(&run_id, &key).await?;
    ok()
}

/// Spelled out rather than flattened from [`RunRef`]: flattening would also make serde buffer
/// the whole body, and this is the hottest request there is.
#[derive(Deserialize)]
pub struct LogBatchMsg {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    metrics: Vec<Metric>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn log_batch(State(s): State<AppState>, Msg(m): Msg<LogBatchMsg>) -> JsonResult {
    let run_id = run_ref(m.run_id, m.run_uuid).id()?;
    s.store
        .log_batch(&run_id, &m.metrics, &m.params, &m.tags)
        .await?;
    ok()
}

#[derive(Deserialize)]
pub struct LogInputsMsg {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    datasets: Vec<DatasetInput>,
    #[serde(default)]
    models: Vec<ModelInput>,
}

pub async fn log_inputs(State(s): State<AppState>, Msg(m): Msg<LogInputsMsg>) -> JsonResult {
    let run_id = run_ref(m.run_id, m.run_uuid).id()?;
    s.store.log_inputs(&run_id, &m.datasets, &m.models).await?;
    ok()
}

#[derive(Deserialize)]
pub struct SearchDatasetsMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    experiment_ids: Vec<String>,
}

/// The web UI's `experiments/search-datasets`.
pub async fn search_datasets(
    State(s): State<AppState>,
    Msg(m): Msg<SearchDatasetsMsg>,
) -> ApiResult<Response> {
    let summaries = s.store.search_dataset_summaries(&m.experiment_ids).await?;
    // A proto answer: an empty list is left out.
    Ok(Json(PageBody {
        key: "dataset_summaries",
        items: summaries,
        next_page_token: None,
        omit_empty: true,
    })
    .into_response())
}

#[derive(Deserialize)]
pub struct LogOutputsMsg {
    run_id: Option<String>,
    run_uuid: Option<String>,
    #[serde(default)]
    models: Vec<ModelOutput>,
}

pub async fn log_outputs(State(s): State<AppState>, Msg(m): Msg<LogOutputsMsg>) -> JsonResult {
    let run_id = run_ref(m.run_id, m.run_uuid).id()?;
    s.store.log_outputs(&run_id, &m.models).await?;
    ok()
}

/// The pre-MLflow-3 `log-model` call only recorded a history tag; accept it so old clients work.
pub async fn log_model_legacy(State(s): State<AppState>, Msg(m): Msg<RunRef>) -> JsonResult {
    s.store.get_run(&m.id()?).await?;
    ok()
}

#[derive(Deserialize)]
pub struct SearchRunsMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    run_view_type: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de_string_list")]
    order_by: Vec<String>,
    page_token: Option<String>,
}

pub async fn search_runs(
    State(s): State<AppState>,
    Msg(m): Msg<SearchRunsMsg>,
) -> ApiResult<Response> {
    let view = parse_view(m.run_view_type)?;
    let page = s
        .store
        .search_runs(
            &m.experiment_ids,
            m.filter.as_deref(),
            view,
            m.max_results,
            &m.order_by,
            m.page_token.as_deref(),
        )
        .await?;
    Ok(Json(PageBody {
        key: "runs",
        items: page.items,
        next_page_token: page.next_page_token,
        omit_empty: true,
    })
    .into_response())
}

#[derive(Deserialize)]
pub struct MetricHistoryMsg {
    run_id: Option<String>,
    run_uuid: Option<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

pub async fn get_metric_history(
    State(s): State<AppState>,
    Msg(m): Msg<MetricHistoryMsg>,
) -> ApiResult<Response> {
    let req = MetricHistoryRequest {
        run_id: run_ref(m.run_id, m.run_uuid).id()?,
        metric_key: required_str(m.metric_key, "metric_key")?,
        max_results: m.max_results,
        page_token: m.page_token,
    };
    let page = s.store.get_metric_history_page(&req).await?;
    Ok(history_response(req.metric_key, page))
}

/// Points per chunk of a streamed history body: about 64 KiB of JSON.
const HISTORY_POINTS_PER_CHUNK: usize = 1024;

/// A history page as `{"metrics": [...], "next_page_token": ...}`, the same bytes the
/// entities would serialise to, written a chunk at a time as the body is sent: a 100,000-point
/// page never exists as one JSON text, nor as 100,000 metric entities.
fn history_response(key: String, page: mlox_store::HistoryPage) -> Response {
    #[derive(serde::Serialize)]
    struct PointJson<'a> {
        key: &'a str,
        #[serde(serialize_with = "mlox_core::wire::ser_f64")]
        value: f64,
        timestamp: i64,
        step: i64,
    }
    let mlox_store::HistoryPage {
        points,
        next_page_token,
    } = page;
    let chunks = points.len().div_ceil(HISTORY_POINTS_PER_CHUNK).max(1);
    let body = (0..=chunks).map(move |chunk| {
        let mut out = Vec::with_capacity(HISTORY_POINTS_PER_CHUNK * 64);
        if chunk == chunks {
            out.push(b']');
            if let Some(token) = &next_page_token {
                out.extend_from_slice(b",\"next_page_token\":");
                // Writing a string into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut out, token);
            }
            out.push(b'}');
        } else {
            if chunk == 0 {
                out.extend_from_slice(b"{\"metrics\":[");
            }
            let start = chunk * HISTORY_POINTS_PER_CHUNK;
            let end = (start + HISTORY_POINTS_PER_CHUNK).min(points.len());
            for (i, p) in points[start..end].iter().enumerate() {
                if start + i > 0 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(
                    &mut out,
                    &PointJson {
                        key: &key,
                        value: p.value(),
                        timestamp: p.timestamp,
                        step: p.step,
                    },
                );
            }
        }
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from(out))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(futures::stream::iter(body)),
    )
        .into_response()
}

/// A page of results serialised straight from the entities: large histories and run lists
/// never pass through an intermediate JSON tree.
pub(crate) struct PageBody<T> {
    pub key: &'static str,
    pub items: Vec<T>,
    pub next_page_token: Option<String>,
    /// MLflow leaves the list out entirely when it is empty for some searches.
    pub omit_empty: bool,
}

impl<T: serde::Serialize> serde::Serialize for PageBody<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        if !(self.omit_empty && self.items.is_empty()) {
            map.serialize_entry(self.key, &self.items)?;
        }
        if let Some(token) = &self.next_page_token {
            map.serialize_entry("next_page_token", token)?;
        }
        map.end()
    }
}

/// The web UI's `get-history-bulk`: run ids as repeated `run_id` keys.
#[derive(Deserialize)]
pub struct HistoryBulkMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    run_id: Vec<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
}

pub async fn get_metric_history_bulk(
    State(s): State<AppState>,
    Msg(m): Msg<HistoryBulkMsg>,
) -> JsonResult {
    let metrics = s
        .store
        .get_metric_history_bulk(&m.run_id, m.metric_key.as_deref(), m.max_results)
        .await?;
    Ok(Json(json!({ "metrics": metrics })))
}

#[derive(Deserialize)]
pub struct BulkIntervalMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    run_ids: Vec<String>,
    metric_key: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_step: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_step: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
}

pub async fn get_metric_history_bulk_interval(
    State(s): State<AppState>,
    Msg(m): Msg<BulkIntervalMsg>,
) -> JsonResult {
    // MLflow's schema checks come first, in its order: run ids, then the key.
    if m.run_ids.is_empty() {
        return Err(ApiError(validation::missing_request_parameter("run_ids")));
    }
    let key = required_str(m.metric_key, "metric_key")?;
    match (m.start_step, m.end_step) {
        (Some(a), Some(b)) if a > b => {
            return Err(ApiError(Error::invalid(format!(
                "end_step must be greater than start_step. Found start_step={a} and end_step={b}."
            ))));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError(Error::invalid(
                "If either start step or end step are specified, both must be specified.",
            )));
        }
        _ => {}
    }
    let metrics = s
        .store
        .get_metric_history_bulk_interval(
            &m.run_ids,
            &key,
            m.start_step,
            m.end_step,
            m.max_results.unwrap_or(mlox_store::MAX_RESULTS_PER_RUN),
        )
        .await?;
    Ok(Json(json!({ "metrics": metrics })))
}

// ---------------------------------------------------------------- logged models

#[derive(Deserialize)]
pub struct CreateLoggedModelMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    name: Option<String>,
    model_type: Option<String>,
    source_run_id: Option<String>,
    #[serde(default)]
    params: Vec<KeyValue>,
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn create_logged_model(
    State(s): State<AppState>,
    Msg(m): Msg<CreateLoggedModelMsg>,
) -> JsonResult {
    let experiment_id = required_str(m.experiment_id, "experiment_id")?;
    let model = s
        .store
        .create_logged_model(
            &experiment_id,
            m.name.as_deref(),
            m.model_type.as_deref(),
            m.source_run_id.as_deref(),
            &m.params,
            &m.tags,
        )
        .await?;
    Ok(Json(json!({ "model": model })))
}

pub async fn get_logged_model(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
) -> JsonResult {
    let model = s.store.get_logged_model(&model_id).await?;
    Ok(Json(json!({ "model": model })))
}

#[derive(Deserialize)]
pub struct FinalizeMsg {
    status: Option<Value>,
}

pub async fn finalize_logged_model(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    Msg(m): Msg<FinalizeMsg>,
) -> JsonResult {
    let status = match m.status {
        Some(Value::String(st)) => LoggedModelStatus::parse(&st),
        Some(Value::Number(n)) => LoggedModelStatus::parse(&n.to_string()),
        _ => None,
    }
    .ok_or_else(|| ApiError(validation::missing_request_parameter("status")))?;
    let model = s.store.finalize_logged_model(&model_id, status).await?;
    Ok(Json(json!({ "model": model })))
}

pub async fn delete_logged_model(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
) -> JsonResult {
    s.store.delete_logged_model(&model_id).await?;
    ok()
}

#[derive(Deserialize)]
pub struct ModelTagsMsg {
    #[serde(default)]
    tags: Vec<KeyValue>,
}

pub async fn set_logged_model_tags(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    Msg(m): Msg<ModelTagsMsg>,
) -> JsonResult {
    let model = s.store.set_logged_model_tags(&model_id, &m.tags).await?;
    Ok(Json(json!({ "model": model })))
}

pub async fn delete_logged_model_tag(
    State(s): State<AppState>,
    Path((model_id, key)): Path<(String, String)>,
) -> JsonResult {
    s.store.delete_logged_model_tag(&model_id, &key).await?;
    ok()
}

#[derive(Deserialize)]
pub struct ModelParamsMsg {
    #[serde(default)]
    params: Vec<KeyValue>,
}

pub async fn log_logged_model_params(
    State(s): State<AppState>,
    Path(model_id): Path<String>,
    Msg(m): Msg<ModelParamsMsg>,
) -> JsonResult {
    s.store
        .log_logged_model_params(&model_id, &m.params)
        .await?;
    ok()
}

#[derive(Deserialize)]
pub struct ModelOrderMsg {
    field_name: String,
    #[serde(default, deserialize_with = "de_opt_bool")]
    ascending: Option<bool>,
}

#[derive(Deserialize)]
pub struct ModelDatasetMsg {
    #[serde(default)]
    dataset_name: String,
    dataset_digest: Option<String>,
}

#[derive(Deserialize)]
pub struct SearchLoggedModelsMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default)]
    datasets: Vec<ModelDatasetMsg>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default)]
    order_by: Vec<ModelOrderMsg>,
    page_token: Option<String>,
}

pub async fn search_logged_models(
    State(s): State<AppState>,
    Msg(m): Msg<SearchLoggedModelsMsg>,
) -> JsonResult {
    let orders: Vec<mlox_store::LoggedModelOrder> = m
        .order_by
        .into_iter()
        .map(|o| mlox_store::LoggedModelOrder {
            field_name: o.field_name,
            ascending: o.ascending.unwrap_or(true),
        })
        .collect();
    let datasets: Vec<mlox_store::LoggedModelDataset> = m
        .datasets
        .into_iter()
        .map(|d| mlox_store::LoggedModelDataset {
            name: d.dataset_name,
            digest: d.dataset_digest,
        })
        .collect();
    let page = s
        .store
        .search_logged_models(
            &m.experiment_ids,
            m.filter.as_deref(),
            &datasets,
            m.max_results,
            &orders,
            m.page_token.as_deref(),
        )
        .await?;
    let mut body = json!({ "models": page.items });
    if let Some(t) = page.next_page_token {
        body["next_page_token"] = json!(t);
    }
    Ok(Json(body))
}
