//! MLflow 3 evaluation datasets (`mlflow.genai.datasets`) under `/datasets/…`: create, get,
//! search and delete datasets, set and delete their tags, upsert, list and delete their records,
//! and add them to or remove them from experiments. Tags, records, schema and profile travel as
//! JSON text inside the messages, as MLflow's do; the rules are mlox-core's.

use crate::error::{ApiError, ApiResult};
use crate::request::{Msg, de_string_list};
use crate::state::AppState;
use crate::tracking::required_str;
use axum::Json;
use axum::extract::{Path, State};
use mlox_core::Error;
use mlox_core::evaluation_datasets::{self as rules, EvaluationDataset};
use mlox_core::spans::python_json_dumps_ascii;
use mlox_core::wire::de_opt_i64;
use serde::Deserialize;
use serde_json::{Value, json};

type JsonResult = ApiResult<Json<Value>>;

fn dataset_answer(dataset: &EvaluationDataset) -> JsonResult {
    Ok(Json(json!({ "dataset": dataset.to_json() })))
}

#[derive(Deserialize)]
pub struct CreateDatasetMsg {
    name: Option<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    experiment_ids: Vec<String>,
    tags: Option<String>,
}

pub async fn create_dataset(
    State(s): State<AppState>,
    Msg(m): Msg<CreateDatasetMsg>,
) -> JsonResult {
    let name = required_str(m.name, "name")?;
    let tags = match m.tags.as_deref().filter(|t| !t.is_empty()) {
        Some(text) => rules::parse_tags(text)?,
        None => Vec::new(),
    };
    let dataset = s
        .store
        .create_evaluation_dataset(&name, &tags, &m.experiment_ids)
        .await?;
    dataset_answer(&dataset)
}

pub async fn get_dataset(State(s): State<AppState>, Path(dataset_id): Path<String>) -> JsonResult {
    dataset_answer(&s.store.get_evaluation_dataset(&dataset_id).await?)
}

pub async fn delete_dataset(
    State(s): State<AppState>,
    Path(dataset_id): Path<String>,
) -> JsonResult {
    s.store.delete_evaluation_dataset(&dataset_id).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct SearchDatasetsMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    experiment_ids: Vec<String>,
    filter_string: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de_string_list")]
    order_by: Vec<String>,
    page_token: Option<String>,
}

pub async fn search_datasets(
    State(s): State<AppState>,
    Msg(m): Msg<SearchDatasetsMsg>,
) -> JsonResult {
    let page = s
        .store
        .search_evaluation_datasets(
            &m.experiment_ids,
            m.filter_string.as_deref(),
            m.max_results,
            &m.order_by,
            m.page_token.as_deref(),
        )
        .await?;
    let mut body = json!({});
    if !page.items.is_empty() {
        let datasets: Vec<Value> = page.items.iter().map(EvaluationDataset::to_json).collect();
        body["datasets"] = json!(datasets);
    }
    if let Some(token) = page.next_page_token {
        body["next_page_token"] = json!(token);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
pub struct SetDatasetTagsMsg {
    tags: Option<String>,
}

pub async fn set_dataset_tags(
    State(s): State<AppState>,
    Path(dataset_id): Path<String>,
    Msg(m): Msg<SetDatasetTagsMsg>,
) -> JsonResult {
    let tags = rules::parse_tags(&required_str(m.tags, "tags")?)?;
    s.store
        .set_evaluation_dataset_tags(&dataset_id, &tags)
        .await?;
    Ok(Json(json!({})))
}

pub async fn delete_dataset_tag(
    State(s): State<AppState>,
    Path((dataset_id, key)): Path<(String, String)>,
) -> JsonResult {
    s.store
        .delete_evaluation_dataset_tag(&dataset_id, &key)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub struct UpsertRecordsMsg {
    records: Option<String>,
}

pub async fn upsert_records(
    State(s): State<AppState>,
    Path(dataset_id): Path<String>,
    Msg(m): Msg<UpsertRecordsMsg>,
) -> JsonResult {
    let records = rules::parse_records(&required_str(m.records, "records")?)?;
    let (inserted, updated) = s
        .store
        .upsert_evaluation_dataset_records(&dataset_id, &records)
        .await?;
    Ok(Json(
        json!({ "inserted_count": inserted, "updated_count": updated }),
    ))
}

#[derive(Deserialize)]
pub struct GetRecordsMsg {
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

pub async fn get_records(
    State(s): State<AppState>,
    Path(dataset_id): Path<String>,
    Msg(m): Msg<GetRecordsMsg>,
) -> JsonResult {
    // MLflow reads an unset or zero size as its default of 1000.
    let max_results = match m.max_results.unwrap_or(0) {
        0 => 1000,
        size if size > 0 => size,
        size => {
            return Err(ApiError(Error::invalid(format!(
                "Invalid value {size} for parameter 'max_results' supplied. It must be a \
                 positive integer"
            ))));
        }
    };
    let cursor = rules::parse_records_page_token(m.page_token.as_deref())?;
    let (records, next) = s
        .store
        .evaluation_dataset_records(&dataset_id, max_results, &cursor)
        .await?;
    let records: Vec<Value> = records.iter().map(|r| r.to_dict()).collect();
    let mut body = json!({ "records": python_json_dumps_ascii(&records) });
    if let Some(token) = next {
        body["next_page_token"] = json!(token);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
pub struct DeleteRecordsMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    dataset_record_ids: Vec<String>,
}

pub async fn delete_records(
    State(s): State<AppState>,
    Path(dataset_id): Path<String>,
    Msg(m): Msg<DeleteRecordsMsg>,
) -> JsonResult {
    let deleted = s
        .store
        .delete_evaluation_dataset_records(&dataset_id, &m.dataset_record_ids)
        .await?;
    Ok(Json(json!({ "deleted_count": deleted })))
}

pub async fn get_experiment_ids(
    State(s): State<AppState>,
    Path(dataset_id): Path<String>,
) -> JsonResult {
    let ids = s
        .store
        .evaluation_dataset_experiment_ids(&dataset_id)
        .await?;
    Ok(Json(if ids.is_empty() {
        json!({})
    } else {
        json!({ "experiment_ids": ids })
    }))
}

#[derive(Deserialize)]
pub struct ExperimentIdsMsg {
    #[serde(default, deserialize_with = "de_string_list")]
    experiment_ids: Vec<String>,
}

pub async fn add_experiments(
    State(s): State<AppState>,
    Path(dataset_id): Path<String>,
    Msg(m): Msg<ExperimentIdsMsg>,
) -> JsonResult {
    let dataset = s
        .store
        .add_evaluation_dataset_to_experiments(&dataset_id, &m.experiment_ids)
        .await?;
    dataset_answer(&dataset)
}

pub async fn remove_experiments(
    State(s): State<AppState>,
    Path(dataset_id): Path<String>,
    Msg(m): Msg<ExperimentIdsMsg>,
) -> JsonResult {
    let dataset = s
        .store
        .remove_evaluation_dataset_from_experiments(&dataset_id, &m.experiment_ids)
        .await?;
    dataset_answer(&dataset)
}
