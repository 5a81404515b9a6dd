//! MLflow 3's scorer registry (`/scorers/register`, `list`, `versions`, `get`, `delete`).

use crate::error::{ApiError, ApiResult};
use crate::request::Msg;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use mlox_core::validation::missing_request_parameter;
use mlox_core::wire::{de_opt_i64, de_opt_id};
use serde::Deserialize;
use serde_json::{Value, json};

type JsonResult = ApiResult<Json<Value>>;

#[derive(Deserialize)]
pub struct ScorerMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    name: Option<String>,
    serialized_scorer: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    version: Option<i64>,
}

fn required(value: Option<String>, name: &str) -> ApiResult<String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError(missing_request_parameter(name)))
}

pub async fn register_scorer(State(s): State<AppState>, Msg(m): Msg<ScorerMsg>) -> JsonResult {
    let experiment_id = required(m.experiment_id, "experiment_id")?;
    let name = required(m.name, "name")?;
    let serialized = required(m.serialized_scorer, "serialized_scorer")?;
    let version = s
        .store
        .register_scorer(&experiment_id, &name, &serialized)
        .await?;
    Ok(Json(json!({
        "version": version.scorer_version,
        "scorer_id": version.scorer_id,
        "experiment_id": version.experiment_id.to_string(),
        "name": version.scorer_name,
        "serialized_scorer": version.serialized_scorer,
        "creation_time": version.creation_time,
    })))
}

pub async fn list_scorers(State(s): State<AppState>, Msg(m): Msg<ScorerMsg>) -> JsonResult {
    let experiment_id = required(m.experiment_id, "experiment_id")?;
    let scorers = s.store.list_scorers(&experiment_id).await?;
    Ok(Json(json!({ "scorers": scorers })))
}

pub async fn list_scorer_versions(State(s): State<AppState>, Msg(m): Msg<ScorerMsg>) -> JsonResult {
    let experiment_id = required(m.experiment_id, "experiment_id")?;
    let name = required(m.name, "name")?;
    let scorers = s.store.list_scorer_versions(&experiment_id, &name).await?;
    Ok(Json(json!({ "scorers": scorers })))
}

pub async fn get_scorer(State(s): State<AppState>, Msg(m): Msg<ScorerMsg>) -> JsonResult {
    let experiment_id = required(m.experiment_id, "experiment_id")?;
    let name = required(m.name, "name")?;
    let scorer = s.store.get_scorer(&experiment_id, &name, m.version).await?;
    Ok(Json(json!({ "scorer": scorer })))
}

pub async fn delete_scorer(State(s): State<AppState>, Msg(m): Msg<ScorerMsg>) -> JsonResult {
    let experiment_id = required(m.experiment_id, "experiment_id")?;
    let name = required(m.name, "name")?;
    s.store
        .delete_scorer(&experiment_id, &name, m.version)
        .await?;
    Ok(Json(json!({})))
}
