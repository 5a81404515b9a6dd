//! Handlers for MLflow's ModelRegistryService: registered models, versions, stages, aliases
//! and tags, in the request and response shapes the client uses.

use crate::error::{ApiError, ApiResult};
use crate::request::{Msg, de_opt_bool, de_string_list};
use crate::state::AppState;
use crate::tracking::PageBody;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use mlox_core::entities::KeyValue;
use mlox_core::validation;
use mlox_core::wire::{de_opt_i64, de_opt_id};
use mlox_store::NewModelVersion;
use serde::Deserialize;
use serde_json::{Value, json};

type JsonResult = ApiResult<Json<Value>>;

fn required(value: Option<String>, name: &str) -> Result<String, ApiError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ApiError(validation::missing_request_parameter(name))),
    }
}

#[derive(Deserialize)]
pub struct ModelMsg {
    name: Option<String>,
    new_name: Option<String>,
    description: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    key: Option<String>,
    value: Option<String>,
    alias: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    version: Option<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    stages: Vec<String>,
}

pub async fn create_registered_model(
    State(s): State<AppState>,
    Msg(m): Msg<ModelMsg>,
) -> JsonResult {
    let name = required(m.name, "name")?;
    let model = s
        .store
        .create_registered_model(&name, &m.tags, m.description.as_deref())
        .await?;
    Ok(Json(json!({ "registered_model": model })))
}

pub async fn get_registered_model(State(s): State<AppState>, Msg(m): Msg<ModelMsg>) -> JsonResult {
    let model = s
        .store
        .get_registered_model(&required(m.name, "name")?)
        .await?;
    Ok(Json(json!({ "registered_model": model })))
}

pub async fn rename_registered_model(
    State(s): State<AppState>,
    Msg(m): Msg<ModelMsg>,
) -> JsonResult {
    let name = required(m.name, "name")?;
    let new_name = required(m.new_name, "new_name")?;
    let model = s.store.rename_registered_model(&name, &new_name).await?;
    Ok(Json(json!({ "registered_model": model })))
}

pub async fn update_registered_model(
    State(s): State<AppState>,
    Msg(m): Msg<ModelMsg>,
) -> JsonResult {
    let name = required(m.name, "name")?;
    let model = s
        .store
        .update_registered_model(&name, m.description.as_deref())
        .await?;
    Ok(Json(json!({ "registered_model": model })))
}

pub async fn delete_registered_model(
    State(s): State<AppState>,
    Msg(m): Msg<ModelMsg>,
) -> JsonResult {
    s.store
        .delete_registered_model(&required(m.name, "name")?)
        .await?;
    Ok(Json(json!({})))
}

pub async fn set_registered_model_tag(
    State(s): State<AppState>,
    Msg(m): Msg<ModelMsg>,
) -> JsonResult {
    let name = required(m.name, "name")?;
    let key = required(m.key, "key")?;
    s.store
        .set_registered_model_tag(&name, &KeyValue::new(key, m.value.unwrap_or_default()))
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_registered_model_tag(
    State(s): State<AppState>,
    Msg(m): Msg<ModelMsg>,
) -> JsonResult {
    let name = required(m.name, "name")?;
    let key = required(m.key, "key")?;
    s.store.delete_registered_model_tag(&name, &key).await?;
    Ok(Json(json!({})))
}

pub async fn get_latest_versions(State(s): State<AppState>, Msg(m): Msg<ModelMsg>) -> JsonResult {
    let name = required(m.name, "name")?;
    let versions = s.store.get_latest_versions(&name, &m.stages).await?;
    Ok(Json(json!({ "model_versions": versions })))
}

pub async fn set_alias(State(s): State<AppState>, Msg(m): Msg<ModelMsg>) -> JsonResult {
    let name = required(m.name, "name")?;
    let alias = required(m.alias, "alias")?;
    let version = required(m.version, "version")?;
    s.store
        .set_registered_model_alias(&name, &alias, &version)
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_alias(State(s): State<AppState>, Msg(m): Msg<ModelMsg>) -> JsonResult {
    let name = required(m.name, "name")?;
    let alias = required(m.alias, "alias")?;
    s.store.delete_registered_model_alias(&name, &alias).await?;
    Ok(Json(json!({})))
}

pub async fn get_by_alias(State(s): State<AppState>, Msg(m): Msg<ModelMsg>) -> JsonResult {
    let name = required(m.name, "name")?;
    let alias = required(m.alias, "alias")?;
    let version = s.store.get_model_version_by_alias(&name, &alias).await?;
    Ok(Json(json!({ "model_version": version })))
}

#[derive(Deserialize)]
pub struct SearchMsg {
    filter: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de_string_list")]
    order_by: Vec<String>,
    page_token: Option<String>,
}

pub async fn search_registered_models(
    State(s): State<AppState>,
    Msg(m): Msg<SearchMsg>,
) -> ApiResult<Response> {
    let page = s
        .store
        .search_registered_models(
            m.filter.as_deref(),
            m.max_results,
            &m.order_by,
            m.page_token.as_deref(),
        )
        .await?;
    Ok(Json(PageBody {
        key: "registered_models",
        items: page.items,
        next_page_token: page.next_page_token,
        omit_empty: false,
    })
    .into_response())
}

pub async fn search_model_versions(
    State(s): State<AppState>,
    Msg(m): Msg<SearchMsg>,
) -> ApiResult<Response> {
    let page = s
        .store
        .search_model_versions(
            m.filter.as_deref(),
            m.max_results,
            &m.order_by,
            m.page_token.as_deref(),
        )
        .await?;
    Ok(Json(PageBody {
        key: "model_versions",
        items: page.items,
        next_page_token: page.next_page_token,
        omit_empty: false,
    })
    .into_response())
}

#[derive(Deserialize)]
pub struct VersionMsg {
    name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    version: Option<String>,
    source: Option<String>,
    run_id: Option<String>,
    #[serde(default)]
    tags: Vec<KeyValue>,
    run_link: Option<String>,
    description: Option<String>,
    model_id: Option<String>,
    stage: Option<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    archive_existing_versions: Option<bool>,
    key: Option<String>,
    value: Option<String>,
}

pub async fn create_model_version(
    State(s): State<AppState>,
    Msg(m): Msg<VersionMsg>,
) -> JsonResult {
    let name = required(m.name, "name")?;
    let source = required(m.source, "source")?;
    s.settings.artifact_host_policy.check("source", &source)?;
    let version = s
        .store
        .create_model_version(NewModelVersion {
            name,
            source,
            run_id: m.run_id,
            tags: m.tags,
            run_link: m.run_link,
            description: m.description,
            model_id: m.model_id.filter(|id| !id.is_empty()),
        })
        .await?;
    Ok(Json(json!({ "model_version": version })))
}

pub async fn get_model_version(State(s): State<AppState>, Msg(m): Msg<VersionMsg>) -> JsonResult {
    let v = s
        .store
        .get_model_version(&required(m.name, "name")?, &required(m.version, "version")?)
        .await?;
    Ok(Json(json!({ "model_version": v })))
}

pub async fn update_model_version(
    State(s): State<AppState>,
    Msg(m): Msg<VersionMsg>,
) -> JsonResult {
    let name = required(m.name, "name")?;
    let version = required(m.version, "version")?;
    let v = s
        .store
        .update_model_version(&name, &version, m.description.as_deref())
        .await?;
    Ok(Json(json!({ "model_version": v })))
}

pub async fn delete_model_version(
    State(s): State<AppState>,
    Msg(m): Msg<VersionMsg>,
) -> JsonResult {
    s.store
        .delete_model_version(&required(m.name, "name")?, &required(m.version, "version")?)
        .await?;
    Ok(Json(json!({})))
}

pub async fn transition_stage(State(s): State<AppState>, Msg(m): Msg<VersionMsg>) -> JsonResult {
    let name = required(m.name, "name")?;
    let version = required(m.version, "version")?;
    let stage = required(m.stage, "stage")?;
    let v = s
        .store
        .transition_model_version_stage(
            &name,
            &version,
            &stage,
            m.archive_existing_versions.unwrap_or(false),
        )
        .await?;
    Ok(Json(json!({ "model_version": v })))
}

pub async fn get_download_uri(State(s): State<AppState>, Msg(m): Msg<VersionMsg>) -> JsonResult {
    let uri = s
        .store
        .get_model_version_download_uri(
            &required(m.name, "name")?,
            &required(m.version, "version")?,
        )
        .await?;
    Ok(Json(json!({ "artifact_uri": uri })))
}

pub async fn set_model_version_tag(
    State(s): State<AppState>,
    Msg(m): Msg<VersionMsg>,
) -> JsonResult {
    let name = required(m.name, "name")?;
    let version = required(m.version, "version")?;
    let key = required(m.key, "key")?;
    s.store
        .set_model_version_tag(
            &name,
            &version,
            &KeyValue::new(key, m.value.unwrap_or_default()),
        )
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_model_version_tag(
    State(s): State<AppState>,
    Msg(m): Msg<VersionMsg>,
) -> JsonResult {
    let name = required(m.name, "name")?;
    let version = required(m.version, "version")?;
    let key = required(m.key, "key")?;
    s.store
        .delete_model_version_tag(&name, &version, &key)
        .await?;
    Ok(Json(json!({})))
}
