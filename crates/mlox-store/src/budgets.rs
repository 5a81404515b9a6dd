//! The AI gateway's budget policies and what its calls cost. Spend is kept per minute, per
//! endpoint and per caller, so the spend of any policy's window is one sum that every replica
//! reads alike; a policy's `budget_policy.exceeded` alert is queued in the same transaction
//! as the spend that crossed its limit, once per window across all replicas.

use crate::db::{
    Bind, PageWindow, SqlStore, db_err, execute_one, get_f64, get_i64, get_opt_str, get_str, now_ms,
};
use mlox_core::budget::{
    BudgetAction, BudgetDuration, BudgetPolicy, BudgetUnit, CallScope, DEFAULT_WORKSPACE,
    DurationUnit, TargetScope, Window, new_budget_policy_id,
};
use mlox_core::{Error, Result};
use serde_json::json;
use sqlx::any::AnyRow;

const MINUTE_MS: i64 = 60_000;
const COLUMNS: &str = "budget_policy_id, budget_unit, budget_amount, duration_unit, \
    duration_value, target_scope, target_value, budget_action, workspace, created_at, \
    last_updated_at, created_by, last_updated_by";

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// A new policy's fields, checked by the caller.
pub struct NewBudgetPolicy {
    pub budget_unit: BudgetUnit,
    pub budget_amount: f64,
    pub duration: BudgetDuration,
    pub target_scope: TargetScope,
    pub target_value: Option<String>,
    pub budget_action: BudgetAction,
    pub created_by: Option<String>,
}

/// The fields an update sets; `None` keeps the stored value.
#[derive(Default)]
pub struct BudgetPolicyUpdate {
    pub budget_unit: Option<BudgetUnit>,
    pub budget_amount: Option<f64>,
    pub duration: Option<BudgetDuration>,
    pub target_scope: Option<TargetScope>,
    pub target_value: Option<String>,
    pub budget_action: Option<BudgetAction>,
    pub updated_by: Option<String>,
}

fn not_found(id: &str) -> Error {
    Error::not_found(format!("BudgetPolicy not found (budget_policy_id='{id}')"))
}

fn policy_of(row: &AnyRow) -> Result<BudgetPolicy> {
    let corrupt = |column: &str| {
        Error::internal(format!(
            "budget policy '{}' holds an unknown {column}",
            get_str(row, "budget_policy_id")
        ))
    };
    Ok(BudgetPolicy {
        budget_policy_id: get_str(row, "budget_policy_id"),
        budget_unit: BudgetUnit::from_name(&get_str(row, "budget_unit"))
            .ok_or_else(|| corrupt("budget_unit"))?,
        budget_amount: get_f64(row, "budget_amount"),
        duration: BudgetDuration {
            unit: DurationUnit::from_name(&get_str(row, "duration_unit"))
                .ok_or_else(|| corrupt("duration_unit"))?,
            value: get_i64(row, "duration_value"),
        },
        target_scope: TargetScope::from_name(&get_str(row, "target_scope"))
            .ok_or_else(|| corrupt("target_scope"))?,
        target_value: get_opt_str(row, "target_value"),
        budget_action: BudgetAction::from_name(&get_str(row, "budget_action"))
            .ok_or_else(|| corrupt("budget_action"))?,
        workspace: get_str(row, "workspace"),
        created_at: get_i64(row, "created_at"),
        last_updated_at: get_i64(row, "last_updated_at"),
        created_by: get_opt_str(row, "created_by"),
        last_updated_by: get_opt_str(row, "last_updated_by"),
    })
}

impl SqlStore {
    /// An ENDPOINT policy must name an endpoint that exists: one that names none would never
    /// count a call.
    async fn check_budget_target(&self, scope: TargetScope, target: Option<&str>) -> Result<()> {
        if scope == TargetScope::Endpoint
            && let Some(endpoint_id) = target
        {
            self.get_gateway_endpoint(Some(endpoint_id), None).await?;
        }
        Ok(())
    }

    pub async fn create_budget_policy(&self, new: NewBudgetPolicy) -> Result<BudgetPolicy> {
        self.check_budget_target(new.target_scope, new.target_value.as_deref())
            .await?;
        let id = new_budget_policy_id();
        let now = now_ms();
        let mut sql = self.sql(&format!(
            "INSERT INTO gateway_budget_policies ({COLUMNS}) VALUES ("
        ));
        sql.bind_str(&id)
            .push(", ")
            .bind_str(new.budget_unit.as_str())
            .push(", ")
            .bind_f64(new.budget_amount)
            .push(", ")
            .bind_str(new.duration.unit.as_str())
            .push(", ")
            .bind_i64(new.duration.value)
            .push(", ")
            .bind_str(new.target_scope.as_str())
            .push(", ")
            .bind(Bind::OptStr(new.target_value))
            .push(", ")
            .bind_str(new.budget_action.as_str())
            .push(", ")
            .bind_str(DEFAULT_WORKSPACE)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind(Bind::OptStr(new.created_by.clone()))
            .push(", ")
            .bind(Bind::OptStr(new.created_by))
            .push(")");
        sql.query().execute(&self.write).await.map_err(db_err)?;
        self.get_budget_policy(&id).await
    }

    pub async fn get_budget_policy(&self, id: &str) -> Result<BudgetPolicy> {
        let mut sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM gateway_budget_policies WHERE budget_policy_id = "
        ));
        sql.bind_str(id);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
            .ok_or_else(|| not_found(id))?;
        policy_of(&row)
    }

    /// Sets the given fields. A new scope drops a target written for the old one (an endpoint
    /// id is no username); the result must still carry a target exactly when its scope needs
    /// one.
    pub async fn update_budget_policy(
        &self,
        id: &str,
        update: BudgetPolicyUpdate,
    ) -> Result<BudgetPolicy> {
        let current = self.get_budget_policy(id).await?;
        let scope = update.target_scope.unwrap_or(current.target_scope);
        let target = match (&update.target_value, scope == current.target_scope) {
            (Some(t), _) => Some(t.clone()),
            (None, true) => current.target_value.clone(),
            (None, false) => None,
        };
        let target = mlox_core::budget::check_target(scope, target.as_deref())?;
        if update.target_value.is_some() {
            self.check_budget_target(scope, target.as_deref()).await?;
        }
        let duration = update.duration.unwrap_or(current.duration);
        let mut sql = self.sql("UPDATE gateway_budget_policies SET budget_unit = ");
        sql.bind_str(update.budget_unit.unwrap_or(current.budget_unit).as_str())
            .push(", budget_amount = ")
            .bind_f64(update.budget_amount.unwrap_or(current.budget_amount))
            .push(", duration_unit = ")
            .bind_str(duration.unit.as_str())
            .push(", duration_value = ")
            .bind_i64(duration.value)
            .push(", target_scope = ")
            .bind_str(scope.as_str())
            .push(", target_value = ")
            .bind(Bind::OptStr(target))
            .push(", budget_action = ")
            .bind_str(
                update
                    .budget_action
                    .unwrap_or(current.budget_action)
                    .as_str(),
            )
            .push(", last_updated_at = ")
            .bind_i64(now_ms().max(current.last_updated_at))
            .push(", last_updated_by = ")
            .bind(Bind::OptStr(update.updated_by.or(current.last_updated_by)))
            .push(" WHERE budget_policy_id = ")
            .bind_str(id);
        execute_one(sql, &self.write, || not_found(id)).await?;
        self.get_budget_policy(id).await
    }

    pub async fn delete_budget_policy(&self, id: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM gateway_budget_policies WHERE budget_policy_id = ");
        sql.bind_str(id);
        execute_one(sql, &mut *tx, || not_found(id)).await?;
        let mut sql = self.sql("DELETE FROM gateway_budget_alerts WHERE budget_policy_id = ");
        sql.bind_str(id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    /// One page of the policies, by id (MLflow's order).
    pub async fn list_budget_policies(
        &self,
        max_results: i64,
        page_token: Option<&str>,
    ) -> Result<(Vec<BudgetPolicy>, Option<String>)> {
        let page = PageWindow::new(page_token, max_results)?;
        let mut sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM gateway_budget_policies ORDER BY budget_policy_id"
        ));
        page.push_limit(&mut sql);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let policies = rows.iter().map(policy_of).collect::<Result<Vec<_>>>()?;
        Ok(page.finish(policies))
    }

    /// Every policy, by id.
    pub async fn all_budget_policies(&self) -> Result<Vec<BudgetPolicy>> {
        let sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM gateway_budget_policies ORDER BY budget_policy_id"
        ));
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        rows.iter().map(policy_of).collect()
    }

    /// What the calls `policy` counts spent in `window`, in USD.
    pub async fn budget_spend(&self, policy: &BudgetPolicy, window: Window) -> Result<f64> {
        let mut sql = self.sql("SELECT COALESCE(SUM(cost_usd), 0.0) AS spend FROM gateway_spend");
        self.push_spend_filter(&mut sql, policy, window);
        let row = sql.query().fetch_one(&self.read).await.map_err(db_err)?;
        Ok(get_f64(&row, "spend"))
    }

    async fn budget_spend_in(
        &self,
        tx: &mut Tx<'_>,
        policy: &BudgetPolicy,
        window: Window,
    ) -> Result<f64> {
        let mut sql = self.sql("SELECT COALESCE(SUM(cost_usd), 0.0) AS spend FROM gateway_spend");
        self.push_spend_filter(&mut sql, policy, window);
        let row = sql.query().fetch_one(&mut **tx).await.map_err(db_err)?;
        Ok(get_f64(&row, "spend"))
    }

    fn push_spend_filter(&self, sql: &mut crate::db::Sql, policy: &BudgetPolicy, window: Window) {
        sql.push(" WHERE minute_ms >= ")
            .bind_i64(window.start_ms)
            .push(" AND minute_ms < ")
            .bind_i64(window.end_ms);
        let target = policy.target_value.clone().unwrap_or_default();
        match policy.target_scope {
            TargetScope::Endpoint => {
                sql.push(" AND endpoint_id = ").bind_str(target);
            }
            TargetScope::User => {
                sql.push(" AND username = ").bind_str(target);
            }
            TargetScope::Global | TargetScope::Workspace => {}
        }
    }

    /// Adds one call's cost at `at_ms`, and queues the `budget_policy.exceeded` event of every
    /// ALERT policy whose window this cost took to its limit (once per window).
    pub async fn record_gateway_spend(
        &self,
        call: CallScope<'_>,
        cost_usd: f64,
        at_ms: i64,
    ) -> Result<()> {
        if !cost_usd.is_finite() || cost_usd <= 0.0 {
            return Ok(());
        }
        let policies = self.all_budget_policies().await?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self
            .sql("INSERT INTO gateway_spend (minute_ms, endpoint_id, username, cost_usd) VALUES (");
        sql.bind_i64(at_ms.div_euclid(MINUTE_MS) * MINUTE_MS)
            .push(", ")
            .bind_str(call.endpoint_id.unwrap_or_default())
            .push(", ")
            .bind_str(call.username.unwrap_or_default())
            .push(", ")
            .bind_f64(cost_usd)
            .push(
                ") ON CONFLICT (minute_ms, endpoint_id, username) DO UPDATE SET \
                 cost_usd = gateway_spend.cost_usd + excluded.cost_usd",
            );
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        let mut queued = false;
        for policy in policies
            .iter()
            .filter(|p| p.budget_action == BudgetAction::Alert && p.applies_to(call))
        {
            let window = policy.window_at(at_ms);
            let spend = self.budget_spend_in(&mut tx, policy, window).await?;
            if spend < policy.budget_amount {
                continue;
            }
            let mut sql = self.sql(
                "INSERT INTO gateway_budget_alerts (budget_policy_id, window_start_ms, alerted_at) \
                 VALUES (",
            );
            sql.bind_str(&policy.budget_policy_id)
                .push(", ")
                .bind_i64(window.start_ms)
                .push(", ")
                .bind_i64(at_ms)
                .push(") ON CONFLICT (budget_policy_id, window_start_ms) DO NOTHING");
            let inserted = sql.query().execute(&mut *tx).await.map_err(db_err)?;
            if inserted.rows_affected() == 0 {
                continue;
            }
            let payload = json!({
                "budget_policy_id": policy.budget_policy_id,
                "budget_unit": policy.budget_unit.as_str(),
                "budget_amount": policy.budget_amount,
                "current_spend": spend,
                "duration_unit": policy.duration.unit.as_str(),
                "duration_value": policy.duration.value,
                "target_scope": policy.target_scope.as_str(),
                "workspace": policy.workspace,
                "target_value": policy.target_value,
                "window_start": window.start_ms,
            });
            queued |= self
                .enqueue_webhook_event(&mut tx, "budget_policy", "exceeded", &payload)
                .await?
                > 0;
        }
        tx.commit().await.map_err(db_err)?;
        if queued {
            self.outbox_signal.notify_waiters();
        }
        Ok(())
    }

    /// Counts one call to `endpoint` in the fixed window starting at `window_start_ms` and
    /// returns the window's count so far, this call included: one statement, so replicas
    /// counting at once never lose a call. Windows that ended before `forget_before_ms` are
    /// dropped now and then.
    pub async fn count_gateway_call(
        &self,
        endpoint: &str,
        window_start_ms: i64,
        forget_before_ms: i64,
    ) -> Result<u64> {
        let mut sql = self
            .sql("INSERT INTO gateway_rate_windows (endpoint, window_start_ms, calls) VALUES (");
        sql.bind_str(endpoint)
            .push(", ")
            .bind_i64(window_start_ms)
            .push(
                ", 1) ON CONFLICT (endpoint, window_start_ms) DO UPDATE SET \
                 calls = gateway_rate_windows.calls + 1 RETURNING calls",
            );
        let row = sql.query().fetch_one(&self.write).await.map_err(db_err)?;
        let calls = get_i64(&row, "calls");
        // The first call of a window tidies the old ones: cheap, and bounded by the number of
        // endpoints times the windows since the last tidy.
        if calls == 1 {
            let mut sql = self.sql("DELETE FROM gateway_rate_windows WHERE window_start_ms < ");
            sql.bind_i64(forget_before_ms);
            sql.query().execute(&self.write).await.map_err(db_err)?;
        }
        Ok(calls.max(0) as u64)
    }
}
