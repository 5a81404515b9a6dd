//! MLflow 3 tracing endpoints: trace info (stored as sent), searches with MLflow's trace filter
//! grammar, tags, assessments and links to runs; spans stay in the artifact store where the
//! client puts them.

use crate::error::{ApiError, ApiResult};
use crate::request::{Msg, de_string_list};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use mlox_core::Error;
use mlox_core::wire::{de_opt_i64, de_opt_id};
use mlox_store::traces::TraceSearch;
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
    let traces: Vec<Value> = s
        .store
        .get_trace_infos(&m.trace_ids)
        .await?
        .into_iter()
        .map(|info| json!({ "trace_info": info, "spans": [] }))
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

/// OTLP span export is not stored yet, so it is refused rather than acknowledged: an exporter
/// that sees success would believe its spans are kept. The MLflow client also uploads every
/// trace through the v3 API, which is unaffected.
pub async fn otlp_traces() -> ApiError {
    ApiError(Error::not_implemented(
        "OTLP trace ingest (/v1/traces) is not implemented by this server yet; MLflow clients \
         record traces through the v3 trace API.",
    ))
}
