//! MLflow 3 tracing endpoints: trace info (stored as sent), searches with MLflow's trace filter
//! grammar, tags, assessments and links to runs, and whole traces with their spans when the
//! spans came over OTLP ([`crate::otlp`]) and are kept in the database; spans a client uploads
//! to the artifact store stay there for it to read.

use crate::error::{ApiError, ApiResult};
use crate::request::{Msg, de_string_list};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use mlox_core::Error;
use mlox_core::spans::{otel_span_json, trace_key};
use mlox_core::trace_info;
use mlox_core::wire::{de_opt_i64, de_opt_id};
use mlox_store::traces::TraceSearch;
use serde::Deserialize;
use serde_json::{Value, json};

type JsonResult = ApiResult<Json<Value>>;

#[derive(Deserialize)]
pub struct StartTraceMsg {
    /// The v3 request.
    trace: Option<Value>,
    // The deprecated v2 request.
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    timestamp_ms: Option<i64>,
    #[serde(default)]
    request_metadata: Vec<Value>,
    #[serde(default)]
    tags: Vec<Value>,
}

/// `POST /traces`: the v3 request (`trace.trace_info`), or the deprecated v2 one
/// (`experiment_id`, `timestamp_ms`, metadata and tags), answered in its own version.
pub async fn start_trace(State(s): State<AppState>, Msg(m): Msg<StartTraceMsg>) -> JsonResult {
    if m.trace.is_none()
        && let Some(experiment_id) = m.experiment_id
    {
        let info = trace_info::started_v2(
            &uuid::Uuid::new_v4().simple().to_string(),
            &experiment_id,
            m.timestamp_ms.unwrap_or_else(mlox_store::now_ms),
            trace_info::map_of_key_values(&m.request_metadata),
            trace_info::map_of_key_values(&m.tags),
        );
        let info = s.store.write_trace_info(info, false).await?;
        return Ok(Json(json!({ "trace_info": trace_info::v2_of(&info) })));
    }
    let info = m
        .trace
        .and_then(|t| t.get("trace_info").cloned())
        .ok_or_else(|| {
            ApiError(Error::invalid(
                "Missing value for required parameter 'trace.trace_info'.",
            ))
        })?;
    let info = s.store.start_trace(info).await?;
    Ok(Json(json!({ "trace": { "trace_info": info } })))
}

#[derive(Deserialize)]
pub struct EndTraceV2Msg {
    #[serde(default, deserialize_with = "de_opt_i64")]
    timestamp_ms: Option<i64>,
    status: Option<String>,
    #[serde(default)]
    request_metadata: Vec<Value>,
    #[serde(default)]
    tags: Vec<Value>,
}

/// `PATCH /traces/{request_id}` (deprecated v2): the trace ends at `timestamp_ms` with
/// `status`; metadata and tags are merged into what it has.
pub async fn end_trace_v2(
    State(s): State<AppState>,
    Path(request_id): Path<String>,
    Msg(m): Msg<EndTraceV2Msg>,
) -> JsonResult {
    let info = s.store.get_trace_info(&request_id).await?;
    let ended = trace_info::ended_v2(
        info,
        m.timestamp_ms.unwrap_or_else(mlox_store::now_ms),
        m.status.as_deref().unwrap_or("TRACE_STATUS_UNSPECIFIED"),
        trace_info::map_of_key_values(&m.request_metadata),
        trace_info::map_of_key_values(&m.tags),
    );
    let info = s.store.write_trace_info(ended, false).await?;
    Ok(Json(json!({ "trace_info": trace_info::v2_of(&info) })))
}

/// `GET /traces/{request_id}/info` (deprecated v2).
pub async fn get_trace_info_v2(
    State(s): State<AppState>,
    Path(request_id): Path<String>,
) -> JsonResult {
    let info = s.store.get_trace_info(&request_id).await?;
    Ok(Json(json!({ "trace_info": trace_info::v2_of(&info) })))
}

pub async fn get_trace_info(State(s): State<AppState>, Path(trace_id): Path<String>) -> JsonResult {
    let info = s.store.get_trace_info(&trace_id).await?;
    Ok(Json(json!({ "trace": { "trace_info": info } })))
}

#[derive(Deserialize)]
pub struct GetTraceMsg {
    trace_id: Option<String>,
    #[serde(default, deserialize_with = "crate::request::de_opt_bool")]
    allow_partial: Option<bool>,
}

/// Where a trace's spans are, as far as this server can serve them.
enum Spans {
    /// In the database (they came over OTLP): the OpenTelemetry messages, and whether all the
    /// spans the client counted have arrived.
    Stored { spans: Vec<Value>, complete: bool },
    /// In the artifact store, where the client reads them itself.
    Artifacts,
}

fn spans_in_store(info: &Value) -> bool {
    info.pointer("/tags")
        .and_then(|tags| tags.get(trace_key::SPANS_LOCATION))
        .and_then(Value::as_str)
        == Some(trace_key::SPANS_IN_TRACKING_STORE)
}

/// How many spans the client says the trace has (`mlflow.trace.sizeStats`), when it said.
fn expected_span_count(info: &Value) -> Option<usize> {
    let stats = info
        .pointer("/trace_metadata")?
        .get(trace_key::SIZE_STATS)?
        .as_str()?;
    let stats: Value = serde_json::from_str(stats).ok()?;
    stats.get("num_spans")?.as_u64().map(|n| n as usize)
}

async fn spans_of(s: &AppState, infos: &[Value]) -> ApiResult<Vec<Spans>> {
    let stored_ids: Vec<String> = infos
        .iter()
        .filter(|info| spans_in_store(info))
        .filter_map(|info| {
            info.get("trace_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    let mut stored = if stored_ids.is_empty() {
        Default::default()
    } else {
        s.store.load_spans(&stored_ids).await?
    };
    Ok(infos
        .iter()
        .map(|info| {
            if !spans_in_store(info) {
                return Spans::Artifacts;
            }
            let id = info.get("trace_id").and_then(Value::as_str).unwrap_or("");
            let spans: Vec<Value> = stored
                .remove(id)
                .unwrap_or_default()
                .iter()
                .map(otel_span_json)
                .collect();
            let complete =
                !spans.is_empty() && expected_span_count(info).is_none_or(|n| spans.len() >= n);
            Spans::Stored { spans, complete }
        })
        .collect())
}

/// The full trace. Spans kept in the database come with it; a trace whose spans are still
/// arriving is waited for a few seconds (as MLflow does) unless `allow_partial` is set.
/// Spans in the artifact store are the client's to read, so the trace comes with its info
/// only (MLflow's `allow_partial`).
pub async fn get_trace(State(s): State<AppState>, Msg(m): Msg<GetTraceMsg>) -> JsonResult {
    let trace_id = m
        .trace_id
        .ok_or_else(|| ApiError(mlox_core::validation::missing_request_parameter("trace_id")))?;
    let allow_partial = m.allow_partial.unwrap_or(false);
    for attempt in 0..PARTIAL_TRACE_RETRIES {
        let info = s.store.get_trace_info(&trace_id).await?;
        let spans = spans_of(&s, std::slice::from_ref(&info)).await?.pop();
        match spans {
            Some(Spans::Stored { spans, complete }) if complete || allow_partial => {
                return Ok(Json(
                    json!({ "trace": { "trace_info": info, "spans": spans } }),
                ));
            }
            Some(Spans::Stored { .. }) => {}
            _ => {
                return Ok(Json(
                    json!({ "trace": { "trace_info": info, "spans": [] } }),
                ));
            }
        }
        if attempt + 1 < PARTIAL_TRACE_RETRIES {
            tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
        }
    }
    Err(ApiError(Error::not_found(format!(
        "Trace with ID {trace_id} is not fully exported yet, please try again later."
    ))))
}

/// Reads of a trace whose spans are still arriving: one now, then after 1 s and 2 s more.
const PARTIAL_TRACE_RETRIES: u32 = 3;

#[derive(Deserialize)]
pub struct BatchGetMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    trace_ids: Vec<String>,
}

/// Traces with their spans; a trace whose spans are in the database but not all there yet
/// is left out, as MLflow leaves it out.
pub async fn batch_get_traces(State(s): State<AppState>, Msg(m): Msg<BatchGetMsg>) -> JsonResult {
    let infos = s.store.get_trace_infos(&m.trace_ids).await?;
    let spans = spans_of(&s, &infos).await?;
    let traces: Vec<Value> = infos
        .into_iter()
        .zip(spans)
        .filter_map(|(info, spans)| match spans {
            Spans::Stored { spans, complete } => {
                complete.then(|| json!({ "trace_info": info, "spans": spans }))
            }
            Spans::Artifacts => Some(json!({ "trace_info": info, "spans": [] })),
        })
        .collect();
    Ok(Json(json!({ "traces": traces })))
}

#[derive(Deserialize)]
pub struct SearchTracesMsg {
    #[serde(default)]
    locations: Vec<Value>,
    #[serde(default, deserialize_with = "de_string_list")]
    experiment_ids: Vec<String>,
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    order_by: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

/// `search` for V3 (`locations`) and V2 (`experiment_ids`) clients alike.
pub async fn search_traces(State(s): State<AppState>, Msg(m): Msg<SearchTracesMsg>) -> JsonResult {
    let mut ids = m.experiment_ids;
    for loc in &m.locations {
        match loc.pointer("/mlflow_experiment/experiment_id") {
            Some(Value::String(id)) => ids.push(id.clone()),
            Some(Value::Number(id)) => ids.push(id.to_string()),
            _ => {
                return Err(ApiError(Error::invalid(
                    "Only MLflow experiment locations are supported for searching traces.",
                )));
            }
        }
    }
    let (traces, next) = s
        .store
        .search_traces(TraceSearch {
            experiment_ids: &ids,
            filter: m.filter.as_deref(),
            order_by: &m.order_by,
            max_results: m.max_results,
            page_token: m.page_token.as_deref(),
        })
        .await?;
    let mut body = json!({ "traces": traces });
    if let Some(t) = next {
        body["next_page_token"] = json!(t);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
pub struct TraceTagMsg {
    key: Option<String>,
    value: Option<String>,
}

pub async fn set_trace_tag(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    Msg(m): Msg<TraceTagMsg>,
) -> JsonResult {
    let key = m
        .key
        .ok_or_else(|| ApiError(mlox_core::validation::missing_request_parameter("key")))?;
    s.store
        .set_trace_tag(&trace_id, &key, &m.value.unwrap_or_default())
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_trace_tag(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    Msg(m): Msg<TraceTagMsg>,
) -> JsonResult {
    let key = m
        .key
        .ok_or_else(|| ApiError(mlox_core::validation::missing_request_parameter("key")))?;
    s.store.delete_trace_tag(&trace_id, &key).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct AssessmentMsg {
    assessment: Option<Value>,
}

pub async fn create_assessment(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    Msg(m): Msg<AssessmentMsg>,
) -> JsonResult {
    let body = m.assessment.ok_or_else(|| {
        ApiError(mlox_core::validation::missing_request_parameter(
            "assessment",
        ))
    })?;
    let a = s.store.create_assessment(&trace_id, body).await?;
    Ok(Json(json!({ "assessment": a })))
}

pub async fn get_assessment(
    State(s): State<AppState>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
) -> JsonResult {
    let a = s.store.get_assessment(&trace_id, &assessment_id).await?;
    Ok(Json(json!({ "assessment": a })))
}

#[derive(Deserialize)]
pub struct UpdateAssessmentMsg {
    assessment: Option<Value>,
    update_mask: Option<Value>,
}

/// A proto3-JSON field mask: one string of comma-separated camelCase paths (a list of paths is
/// read too); each path comes back in the proto's snake_case.
fn field_mask_paths(mask: &Value) -> Vec<String> {
    let parts: Vec<&str> = match mask {
        Value::String(text) => text.split(',').collect(),
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        Value::Object(fields) => fields
            .get("paths")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    parts
        .into_iter()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut snake = String::with_capacity(part.len() + 4);
            for c in part.chars() {
                if c.is_ascii_uppercase() {
                    snake.push('_');
                    snake.push(c.to_ascii_lowercase());
                } else {
                    snake.push(c);
                }
            }
            snake
        })
        .collect()
}

pub async fn update_assessment(
    State(s): State<AppState>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
    Msg(m): Msg<UpdateAssessmentMsg>,
) -> JsonResult {
    let update = m.assessment.ok_or_else(|| {
        ApiError(mlox_core::validation::missing_request_parameter(
            "assessment",
        ))
    })?;
    let mask = m.update_mask.ok_or_else(|| {
        ApiError(mlox_core::validation::missing_request_parameter(
            "update_mask",
        ))
    })?;
    let a = s
        .store
        .update_assessment(&trace_id, &assessment_id, &update, &field_mask_paths(&mask))
        .await?;
    Ok(Json(json!({ "assessment": a })))
}

pub async fn delete_assessment(
    State(s): State<AppState>,
    Path((trace_id, assessment_id)): Path<(String, String)>,
) -> JsonResult {
    s.store.delete_assessment(&trace_id, &assessment_id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct LinkTracesToRunMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    trace_ids: Vec<String>,
    run_id: Option<String>,
}

pub async fn link_traces_to_run(
    State(s): State<AppState>,
    Msg(m): Msg<LinkTracesToRunMsg>,
) -> JsonResult {
    let run_id = m
        .run_id
        .ok_or_else(|| ApiError(mlox_core::validation::missing_request_parameter("run_id")))?;
    s.store.link_traces_to_run(&m.trace_ids, &run_id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct FilterCorrelationMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    experiment_ids: Vec<String>,
    filter_string1: Option<String>,
    filter_string2: Option<String>,
    base_filter: Option<String>,
}

/// A float as proto3 JSON writes it: NaN and infinities as strings.
fn proto_double(value: f64) -> Value {
    if value.is_nan() {
        json!("NaN")
    } else if value.is_infinite() {
        json!(if value > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(value)
    }
}

/// `POST /traces/calculate-filter-correlation`: how strongly two filters go together among
/// the traces of some experiments (NPMI), with the four counts behind it.
pub async fn calculate_filter_correlation(
    State(s): State<AppState>,
    Msg(m): Msg<FilterCorrelationMsg>,
) -> JsonResult {
    use mlox_core::correlation::{Counts, npmi};
    let missing = |name: &str| ApiError(mlox_core::validation::missing_request_parameter(name));
    if m.experiment_ids.is_empty() {
        return Err(missing("experiment_ids"));
    }
    let first = m.filter_string1.ok_or_else(|| missing("filter_string1"))?;
    let second = m.filter_string2.ok_or_else(|| missing("filter_string2"))?;
    let base = m.base_filter.as_deref();
    let ids = &m.experiment_ids;
    let counts = Counts {
        total: s.store.count_traces(ids, &[base]).await?,
        filter1: s.store.count_traces(ids, &[base, Some(&first)]).await?,
        filter2: s.store.count_traces(ids, &[base, Some(&second)]).await?,
        joint: s
            .store
            .count_traces(ids, &[base, Some(&first), Some(&second)])
            .await?,
    };
    let (raw, smoothed) = npmi(counts);
    Ok(Json(json!({
        "npmi": proto_double(raw),
        "npmi_smoothed": proto_double(smoothed),
        "filter1_count": counts.filter1,
        "filter2_count": counts.filter2,
        "joint_count": counts.joint,
        "total_count": counts.total,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_masks_read_as_snake_case_paths() {
        assert_eq!(
            field_mask_paths(&json!("assessmentName,feedback")),
            ["assessment_name", "feedback"]
        );
        assert_eq!(field_mask_paths(&json!(["rationale"])), ["rationale"]);
        assert_eq!(
            field_mask_paths(&json!({"paths": ["metadata"]})),
            ["metadata"]
        );
        assert!(field_mask_paths(&json!(3)).is_empty());
    }
}

#[derive(Deserialize)]
pub struct DeleteTracesMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    request_ids: Vec<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    trace_ids: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_timestamp_millis: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_traces: Option<i64>,
}

/// Deletes traces by id, or the oldest ones recorded before a time.
pub async fn delete_traces(State(s): State<AppState>, Msg(m): Msg<DeleteTracesMsg>) -> JsonResult {
    let exp = m.experiment_id.ok_or_else(|| {
        ApiError(mlox_core::validation::missing_request_parameter(
            "experiment_id",
        ))
    })?;
    let mut ids = m.request_ids;
    ids.extend(m.trace_ids);
    mlox_core::validation::validate_trace_deletion(
        m.max_timestamp_millis,
        m.max_traces,
        !ids.is_empty(),
    )?;
    if let Some(max_timestamp) = m.max_timestamp_millis {
        ids = s
            .store
            .traces_recorded_before(&exp, max_timestamp, m.max_traces)
            .await?;
    }
    let n = s.store.delete_traces(&exp, &ids).await?;
    Ok(Json(json!({ "traces_deleted": n })))
}

#[derive(Deserialize)]
pub struct TraceMetricsMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    experiment_ids: Vec<String>,
    view_type: Option<Value>,
    metric_name: Option<String>,
    #[serde(default)]
    aggregations: Vec<Value>,
    #[serde(default, deserialize_with = "de_string_list")]
    dimensions: Vec<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    filters: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    time_interval_seconds: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    start_time_ms: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    end_time_ms: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
}

/// Most data points one metrics query answers, as MLflow caps them.
const MAX_METRIC_POINTS: i64 = 1000;

/// `POST /api/3.0/mlflow/traces/metrics`: counts, latencies, tokens, costs and assessment
/// values of an experiment's traces, grouped by time bucket and dimensions.
pub async fn query_trace_metrics(
    State(s): State<AppState>,
    Msg(m): Msg<TraceMetricsMsg>,
) -> ApiResult<Json<Value>> {
    use mlox_core::trace_metrics as metrics;
    use mlox_core::validation::missing_request_parameter;
    if m.experiment_ids.is_empty() {
        return Err(ApiError(missing_request_parameter("experiment_ids")));
    }
    let view = metrics::ViewType::parse(
        m.view_type
            .as_ref()
            .ok_or_else(|| ApiError(missing_request_parameter("view_type")))?,
    )?;
    let metric = m
        .metric_name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError(missing_request_parameter("metric_name")))?;
    if m.aggregations.is_empty() {
        return Err(ApiError(missing_request_parameter("aggregations")));
    }
    let mut aggregations = Vec::with_capacity(m.aggregations.len());
    for aggregation in &m.aggregations {
        let kind = metrics::AggregationType::parse(
            aggregation.get("aggregation_type").unwrap_or(&Value::Null),
        )?;
        let percentile = aggregation.get("percentile_value").and_then(Value::as_f64);
        aggregations.push(metrics::Aggregation::new(kind, percentile)?);
    }
    metrics::validate(view, &metric, &aggregations, &m.dimensions)?;
    let interval = m.time_interval_seconds.filter(|s| *s != 0);
    if let Some(seconds) = interval {
        if seconds < 0 {
            return Err(ApiError(Error::invalid(format!(
                "time_interval_seconds must be positive, got {seconds}"
            ))));
        }
        if m.start_time_ms.is_none() || m.end_time_ms.is_none() {
            return Err(ApiError(Error::invalid(
                "start_time_ms and end_time_ms are required if time_interval_seconds is set",
            )));
        }
    }
    let mut filters = Vec::with_capacity(m.filters.len());
    for filter in &m.filters {
        let parsed = metrics::parse_filter(filter)?;
        metrics::check_filter_view(&parsed, view)?;
        filters.push(parsed);
    }
    let facts = s
        .store
        .trace_metric_facts(&mlox_store::trace_metrics::MetricFacts {
            experiment_ids: &m.experiment_ids,
            view,
            metric: &metric,
            dimensions: &m.dimensions,
            filters: &filters,
            start_time_ms: m.start_time_ms,
            end_time_ms: m.end_time_ms,
        })
        .await?;
    let max_results = m
        .max_results
        .filter(|n| *n > 0)
        .unwrap_or(MAX_METRIC_POINTS)
        .min(MAX_METRIC_POINTS) as usize;
    let points = metrics::aggregate(
        &metrics::Query {
            metric: &metric,
            aggregations: &aggregations,
            dimensions: &m.dimensions,
            time_interval_seconds: interval,
            max_results,
            count_distinct: view == metrics::ViewType::Traces && metric == "session_count",
        },
        facts,
    );
    Ok(Json(json!({ "data_points": points })))
}
