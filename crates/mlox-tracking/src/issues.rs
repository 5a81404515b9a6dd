//! MLflow 3's issues API (`/issues`, `/issues/{issue_id}`, `/issues/search`).

use crate::error::{ApiError, ApiResult};
use crate::request::{Msg, de_opt_bool, de_string_list};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use mlox_core::validation::missing_request_parameter;
use mlox_core::wire::{de_opt_i64, de_opt_id};
use mlox_store::issues::{IssueSearch, IssueUpdate, NewIssue};
use serde::Deserialize;
use serde_json::{Value, json};

type JsonResult = ApiResult<Json<Value>>;

#[derive(Deserialize)]
pub struct CreateIssueMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    status: Option<String>,
    severity: Option<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    root_causes: Vec<String>,
    source_run_id: Option<String>,
    #[serde(default, deserialize_with = "de_string_list")]
    categories: Vec<String>,
    created_by: Option<String>,
}

fn required(value: Option<String>, name: &str) -> ApiResult<String> {
    value.ok_or_else(|| ApiError(missing_request_parameter(name)))
}

pub async fn create_issue(State(s): State<AppState>, Msg(m): Msg<CreateIssueMsg>) -> JsonResult {
    let issue = s
        .store
        .create_issue(NewIssue {
            name: required(m.name, "name")?,
            description: required(m.description, "description")?,
            experiment_id: required(m.experiment_id, "experiment_id")?,
            status: m.status.filter(|s| !s.is_empty()),
            severity: m.severity.filter(|s| !s.is_empty()),
            root_causes: m.root_causes,
            source_run_id: m.source_run_id,
            categories: m.categories,
            created_by: m.created_by,
        })
        .await?;
    Ok(Json(json!({ "issue": issue })))
}

pub async fn get_issue(State(s): State<AppState>, Path(issue_id): Path<String>) -> JsonResult {
    Ok(Json(
        json!({ "issue": s.store.get_issue(&issue_id).await? }),
    ))
}

#[derive(Deserialize)]
pub struct UpdateIssueMsg {
    name: Option<String>,
    description: Option<String>,
    status: Option<String>,
    severity: Option<String>,
}

/// `PATCH /issues/{issue_id}`: empty fields leave what they name unchanged, as in MLflow.
pub async fn update_issue(
    State(s): State<AppState>,
    Path(issue_id): Path<String>,
    Msg(m): Msg<UpdateIssueMsg>,
) -> JsonResult {
    let given = |v: Option<String>| v.filter(|v| !v.is_empty());
    let issue = s
        .store
        .update_issue(
            &issue_id,
            IssueUpdate {
                name: given(m.name),
                description: given(m.description),
                status: given(m.status),
                severity: given(m.severity),
            },
        )
        .await?;
    Ok(Json(json!({ "issue": issue })))
}

#[derive(Deserialize)]
pub struct SearchIssuesMsg {
    #[serde(default, deserialize_with = "de_opt_id")]
    experiment_id: Option<String>,
    filter_string: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
    #[serde(default, deserialize_with = "de_opt_bool")]
    include_trace_count: Option<bool>,
}

/// `POST /issues/search`; the answer always carries `next_page_token`, empty on the last page.
pub async fn search_issues(State(s): State<AppState>, Msg(m): Msg<SearchIssuesMsg>) -> JsonResult {
    let (issues, next) = s
        .store
        .search_issues(IssueSearch {
            experiment_id: m.experiment_id.as_deref(),
            filter: m.filter_string.as_deref(),
            max_results: m.max_results,
            page_token: m.page_token.as_deref(),
            include_trace_count: m.include_trace_count.unwrap_or(false),
        })
        .await?;
    Ok(Json(
        json!({ "issues": issues, "next_page_token": next.unwrap_or_default() }),
    ))
}
