//! The gateway's budget policies (`/api/3.0/mlflow/gateway/budgets/*`): create, get, update,
//! delete and list them as MLflow's API does, with its checks and words, and list each
//! policy's current window with what was spent in it. Spend is counted from the calls the
//! stored endpoints answer (see [`crate::gateway::StoreEndpoints`]).

use axum::Json;
use axum::extract::State;
use axum::routing::{delete, get, post};
use mlox_core::Error;
use mlox_core::auth::User;
use mlox_core::budget::{
    BudgetAction, BudgetDuration, BudgetUnit, DurationUnit, TargetScope, check_amount,
    check_duration_value, check_target, check_user_scope_enforceable,
};
use mlox_core::validation::missing_request_parameter;
use mlox_store::budgets::{BudgetPolicyUpdate, NewBudgetPolicy};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::request::Msg;
use crate::state::AppState;

type JsonResult = ApiResult<Json<Value>>;
type SignedIn = Option<axum::Extension<User>>;

/// MLflow's default page size.
const DEFAULT_MAX_RESULTS: i64 = 1000;

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/gateway/budgets/create", post(create))
        .route("/gateway/budgets/get", get(get_one))
        .route("/gateway/budgets/update", post(update))
        .route("/gateway/budgets/delete", delete(remove))
        .route("/gateway/budgets/list", get(list))
        .route("/gateway/budgets/windows", get(windows))
}

#[derive(Deserialize)]
pub struct BudgetMsg {
    budget_policy_id: Option<String>,
    budget_unit: Option<Value>,
    budget_amount: Option<f64>,
    duration: Option<DurationMsg>,
    target_scope: Option<Value>,
    budget_action: Option<Value>,
    target_value: Option<String>,
    created_by: Option<String>,
    updated_by: Option<String>,
    #[serde(default, deserialize_with = "mlox_core::wire::de_opt_i64")]
    max_results: Option<i64>,
    page_token: Option<String>,
}

#[derive(Deserialize)]
pub struct DurationMsg {
    unit: Option<Value>,
    value: Option<i64>,
}

/// A proto enum given by name or number; MLflow answers `Invalid <name>: <value>` for one it
/// does not know, the unset value included.
fn wire<T>(
    value: &Value,
    parameter: &str,
    from_name: impl Fn(&str) -> Option<T>,
    from_number: impl Fn(i64) -> Option<T>,
) -> ApiResult<T> {
    let parsed = match value {
        Value::String(name) => from_name(name),
        Value::Number(n) => n.as_i64().and_then(from_number),
        _ => None,
    };
    let shown = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    parsed.ok_or_else(|| ApiError(Error::invalid(format!("Invalid {parameter}: {shown}"))))
}

fn unit(v: &Value) -> ApiResult<BudgetUnit> {
    wire(
        v,
        "budget_unit",
        BudgetUnit::from_name,
        BudgetUnit::from_number,
    )
}

fn scope(v: &Value) -> ApiResult<TargetScope> {
    wire(
        v,
        "target_scope",
        TargetScope::from_name,
        TargetScope::from_number,
    )
}

fn action(v: &Value) -> ApiResult<BudgetAction> {
    wire(
        v,
        "budget_action",
        BudgetAction::from_name,
        BudgetAction::from_number,
    )
}

fn duration(d: &DurationMsg) -> ApiResult<BudgetDuration> {
    let unit = wire(
        d.unit.as_ref().unwrap_or(&Value::from(0)),
        "duration.unit",
        DurationUnit::from_name,
        DurationUnit::from_number,
    )?;
    let value = d.value.unwrap_or(0);
    check_duration_value(value)?;
    Ok(BudgetDuration { unit, value })
}

fn required<T>(value: Option<T>, name: &str) -> ApiResult<T> {
    value.ok_or_else(|| ApiError(missing_request_parameter(name)))
}

fn id(m: &BudgetMsg) -> ApiResult<String> {
    m.budget_policy_id
        .clone()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError(missing_request_parameter("budget_policy_id")))
}

async fn create(State(s): State<AppState>, user: SignedIn, Msg(m): Msg<BudgetMsg>) -> JsonResult {
    let budget_unit = required(m.budget_unit.as_ref(), "budget_unit")?;
    let amount = required(m.budget_amount, "budget_amount")?;
    let window = required(m.duration.as_ref(), "duration")?;
    let target_scope = required(m.target_scope.as_ref(), "target_scope")?;
    let budget_action = required(m.budget_action.as_ref(), "budget_action")?;
    let budget_unit = unit(budget_unit)?;
    let window = duration(window)?;
    let target_scope = scope(target_scope)?;
    let budget_action = action(budget_action)?;
    check_amount(amount)?;
    let target_value = check_target(target_scope, m.target_value.as_deref())?;
    check_user_scope_enforceable(target_scope, user.is_some())?;
    let policy = s
        .store
        .create_budget_policy(NewBudgetPolicy {
            budget_unit,
            budget_amount: amount,
            duration: window,
            target_scope,
            target_value,
            budget_action,
            created_by: m.created_by.filter(|c| !c.is_empty()),
        })
        .await?;
    Ok(Json(json!({ "budget_policy": policy })))
}

async fn get_one(State(s): State<AppState>, Msg(m): Msg<BudgetMsg>) -> JsonResult {
    let policy = s.store.get_budget_policy(&id(&m)?).await?;
    Ok(Json(json!({ "budget_policy": policy })))
}

async fn update(State(s): State<AppState>, user: SignedIn, Msg(m): Msg<BudgetMsg>) -> JsonResult {
    let id = id(&m)?;
    let budget_amount = m.budget_amount;
    if let Some(amount) = budget_amount {
        check_amount(amount)?;
    }
    let update = BudgetPolicyUpdate {
        budget_unit: m.budget_unit.as_ref().map(unit).transpose()?,
        budget_amount,
        duration: m.duration.as_ref().map(duration).transpose()?,
        target_scope: m.target_scope.as_ref().map(scope).transpose()?,
        target_value: m.target_value.filter(|t| !t.is_empty()),
        budget_action: m.budget_action.as_ref().map(action).transpose()?,
        updated_by: m.updated_by.filter(|u| !u.is_empty()),
    };
    if update.target_scope.is_some() || update.target_value.is_some() {
        let current = s.store.get_budget_policy(&id).await?;
        let effective = update.target_scope.unwrap_or(current.target_scope);
        check_user_scope_enforceable(effective, user.is_some())?;
    }
    let policy = s.store.update_budget_policy(&id, update).await?;
    Ok(Json(json!({ "budget_policy": policy })))
}

async fn remove(State(s): State<AppState>, Msg(m): Msg<BudgetMsg>) -> JsonResult {
    s.store.delete_budget_policy(&id(&m)?).await?;
    Ok(Json(json!({})))
}

async fn list(State(s): State<AppState>, Msg(m): Msg<BudgetMsg>) -> JsonResult {
    let max_results = m
        .max_results
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_RESULTS);
    if max_results > 50_000 {
        return Err(ApiError(Error::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be at \
             most 50000."
        ))));
    }
    let (policies, next) = s
        .store
        .list_budget_policies(
            max_results,
            m.page_token.as_deref().filter(|t| !t.is_empty()),
        )
        .await?;
    let mut body = json!({ "budget_policies": policies });
    if let Some(next) = next {
        body["next_page_token"] = Value::String(next);
    }
    Ok(Json(body))
}

/// Every policy's current window and what was spent in it.
async fn windows(State(s): State<AppState>) -> JsonResult {
    let now = mlox_store::now_ms();
    let mut windows = Vec::new();
    for policy in s.store.all_budget_policies().await? {
        let window = policy.window_at(now);
        let spend = s.store.budget_spend(&policy, window).await?;
        windows.push(json!({
            "budget_policy_id": policy.budget_policy_id,
            "window_start_ms": window.start_ms,
            "window_end_ms": window.end_ms,
            "current_spend": spend,
        }));
    }
    Ok(Json(json!({ "windows": windows })))
}
