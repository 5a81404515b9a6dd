//! Spans stored in the database (they arrive over OTLP), and what they change in their
//! trace's info: a trace that does not exist yet is created from its first spans, and until
//! the client writes its own trace info ([`trace_key::INFO_FINALIZED`]) the spans extend the
//! trace's time range, settle its state from the root span, sum its token usage and fill its
//! previews. Every trace that has spans here carries the tag saying so, which is how clients
//! know to read them from the tracking store instead of the artifact store.

use crate::db::{Dialect, SqlStore, db_err, get_str};
use crate::traces::{ARTIFACT_LOCATION_TAG, SearchFields, upsert_trace_tag};
use mlox_core::ids::parse_experiment_id;
use mlox_core::spans::{
    StoredSpan, TraceSummary, add_cost, add_token_usage, python_json_dumps, trace_key,
};
use mlox_core::trace_info::{duration_text, duration_to_ms, ms_to_rfc3339, rfc3339_to_ms};
use mlox_core::{Error, Result};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

impl SqlStore {
    /// Stores `spans` (of any number of traces) for the experiment `experiment_id` and updates
    /// their traces, all in one transaction: either every span is kept or none is.
    pub async fn log_spans(&self, experiment_id: &str, spans: Vec<StoredSpan>) -> Result<()> {
        if spans.is_empty() {
            return Ok(());
        }
        let experiment = self.get_experiment(experiment_id).await?;
        let experiment_number = parse_experiment_id(&experiment.experiment_id)?;
        let mut by_trace: Vec<(String, Vec<StoredSpan>)> = Vec::new();
        let mut slot: HashMap<String, usize> = HashMap::new();
        for span in spans {
            let index = *slot.entry(span.trace_id.clone()).or_insert_with(|| {
                by_trace.push((span.trace_id.clone(), Vec::new()));
                by_trace.len() - 1
            });
            by_trace[index].1.push(span);
        }
        let mut tx = self.write.begin().await.map_err(db_err)?;
        for (trace_id, spans) in by_trace {
            let summary = TraceSummary::of(&spans);
            let created = new_trace_info(&trace_id, &experiment.experiment_id, &summary);
            let mut sql = self.sql(
                "INSERT INTO traces (trace_id, experiment_id, request_time_ms, state, info) VALUES (",
            );
            sql.bind_str(&trace_id)
                .push(", ")
                .bind_i64(experiment_number)
                .push(", ")
                .bind_i64(summary.start_ms)
                .push(", ")
                .bind_str(created["state"].as_str().unwrap_or("IN_PROGRESS"))
                .push(", ")
                .bind_str(created.to_string())
                .push(") ON CONFLICT (trace_id) DO NOTHING");
            let inserted = sql.query().execute(&mut *tx).await.map_err(db_err)?;
            if inserted.rows_affected() > 0 {
                let location = crate::db::append_to_uri_path(
                    &experiment.artifact_location,
                    &format!("traces/{trace_id}/artifacts"),
                );
                upsert_trace_tag(self, &mut tx, &trace_id, ARTIFACT_LOCATION_TAG, &location)
                    .await?;
            }
            // Concurrent exports of one trace (several replicas on PostgreSQL) each read and
            // rewrite the info; the row lock makes them take turns.
            let mut sql = self.sql("SELECT experiment_id, info FROM traces WHERE trace_id = ");
            sql.bind_str(&trace_id);
            if self.dialect == Dialect::Postgres {
                sql.push(" FOR UPDATE");
            }
            let row = sql.query().fetch_one(&mut *tx).await.map_err(db_err)?;
            let trace_experiment: i64 = sqlx::Row::try_get(&row, "experiment_id").unwrap_or(0);
            if trace_experiment != experiment_number {
                return Err(Error::invalid(format!(
                    "Trace {trace_id} belongs to experiment {trace_experiment}, not to \
                     experiment {experiment_number} named in the request."
                )));
            }
            let mut info: Value =
                serde_json::from_str(&get_str(&row, "info")).unwrap_or_else(|_| json!({}));
            apply_summary(&mut info, &summary);
            let mut sql = self.sql("UPDATE traces SET request_time_ms = ");
            sql.bind_i64(
                info.get("request_time")
                    .and_then(Value::as_str)
                    .and_then(rfc3339_to_ms)
                    .unwrap_or(summary.start_ms),
            )
            .push(", state = ")
            .bind_str(info["state"].as_str().unwrap_or("IN_PROGRESS"))
            .push(", info = ")
            .bind_str(info.to_string())
            .push(" WHERE trace_id = ")
            .bind_str(&trace_id);
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
            SearchFields::of(&info)
                .write(self, &mut tx, &trace_id)
                .await?;
            for span in &spans {
                let mut sql = self.sql(
                    "INSERT INTO spans (trace_id, span_id, experiment_id, parent_span_id, name, \
                     span_type, status, start_time_unix_nano, end_time_unix_nano, content) VALUES (",
                );
                sql.bind_str(&span.trace_id)
                    .push(", ")
                    .bind_str(&span.span_id)
                    .push(", ")
                    .bind_i64(experiment_number)
                    .push(", ");
                match &span.parent_span_id {
                    Some(parent) => sql.bind_str(parent),
                    None => sql.push("NULL"),
                };
                sql.push(", ").bind_str(&span.name).push(", ");
                match &span.span_type {
                    Some(kind) => sql.bind_str(kind),
                    None => sql.push("NULL"),
                };
                sql.push(", ")
                    .bind_str(span.status.mlflow_name())
                    .push(", ")
                    .bind_i64(span.start_time_unix_nano)
                    .push(", ");
                match span.end_time_unix_nano {
                    Some(end) => sql.bind_i64(end),
                    None => sql.push("NULL"),
                };
                // Written as MLflow writes it (Python's JSON spacing), so `trace.text` and span attribute
                // patterns written against MLflow's documents match here too.
                sql.push(", ")
                    .bind_str(python_json_dumps(&span.content))
                    .push(
                        ") ON CONFLICT (trace_id, span_id) DO UPDATE SET \
                     parent_span_id = excluded.parent_span_id, name = excluded.name, \
                     span_type = excluded.span_type, status = excluded.status, \
                     start_time_unix_nano = excluded.start_time_unix_nano, \
                     end_time_unix_nano = excluded.end_time_unix_nano, content = excluded.content",
                    );
                sql.query().execute(&mut *tx).await.map_err(db_err)?;
            }
            upsert_trace_tag(
                self,
                &mut tx,
                &trace_id,
                trace_key::SPANS_LOCATION,
                trace_key::SPANS_IN_TRACKING_STORE,
            )
            .await?;
            for (key, value) in &summary.tags {
                upsert_trace_tag(self, &mut tx, &trace_id, key, value).await?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    /// The stored span documents of each of `trace_ids` that has any: root spans first, then
    /// by start time.
    pub async fn load_spans(&self, trace_ids: &[String]) -> Result<HashMap<String, Vec<Value>>> {
        let mut spans: HashMap<String, Vec<Value>> = HashMap::new();
        for row in self
            .load_children(
                "SELECT trace_id, content FROM spans WHERE trace_id IN ",
                trace_ids,
                " ORDER BY trace_id, CASE WHEN parent_span_id IS NULL THEN 0 ELSE 1 END, \
                 start_time_unix_nano, span_id",
            )
            .await?
        {
            if let Ok(content) = serde_json::from_str(&get_str(&row, "content")) {
                spans
                    .entry(get_str(&row, "trace_id"))
                    .or_default()
                    .push(content);
            }
        }
        Ok(spans)
    }
}

/// The info of a trace first seen through its spans.
fn new_trace_info(trace_id: &str, experiment_id: &str, summary: &TraceSummary) -> Value {
    let mut info = json!({
        "trace_id": trace_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": experiment_id},
        },
        "request_time": ms_to_rfc3339(summary.start_ms),
        "state": summary.root_state.unwrap_or("IN_PROGRESS"),
        "trace_metadata": {},
        "tags": {},
    });
    if let Some(end) = summary.end_ms {
        info["execution_duration"] = json!(duration_text(end - summary.start_ms));
    }
    info
}

/// Adds one batch's figures (token usage, cost) to a trace's.
type AddFigures = fn(&mut Map<String, Value>, &Map<String, Value>);

/// Folds what a batch of spans says into a stored trace info, leaving alone whatever the
/// client's own trace info already settled.
fn apply_summary(info: &mut Value, summary: &TraceSummary) {
    if !info.is_object() {
        *info = json!({});
    }
    let metadata_value = info
        .as_object_mut()
        .map(|fields| {
            fields
                .entry("trace_metadata")
                .or_insert_with(|| json!({}))
                .clone()
        })
        .unwrap_or_default();
    let mut metadata: Map<String, Value> = metadata_value.as_object().cloned().unwrap_or_default();
    let finalized = metadata
        .get(trace_key::INFO_FINALIZED)
        .and_then(Value::as_str)
        == Some("true");
    if !finalized {
        let start = info
            .get("request_time")
            .and_then(Value::as_str)
            .and_then(rfc3339_to_ms);
        let duration = info
            .get("execution_duration")
            .and_then(Value::as_str)
            .and_then(duration_to_ms);
        let new_start = start.map_or(summary.start_ms, |s| s.min(summary.start_ms));
        let old_end = start.zip(duration).map(|(s, d)| s + d);
        let new_end = match (old_end, summary.end_ms) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        info["request_time"] = json!(ms_to_rfc3339(new_start));
        if let Some(end) = new_end {
            info["execution_duration"] = json!(duration_text(end - new_start));
        }
    }
    let state = info.get("state").and_then(Value::as_str).unwrap_or("");
    if matches!(state, "" | "IN_PROGRESS" | "STATE_UNSPECIFIED")
        && let Some(root_state) = summary.root_state
    {
        info["state"] = json!(root_state);
    }
    for (key, preview) in [
        ("request_preview", &summary.request_preview),
        ("response_preview", &summary.response_preview),
    ] {
        if info.get(key).is_none_or(Value::is_null)
            && let Some(preview) = preview
        {
            info[key] = json!(preview);
        }
    }
    let sums: [(&str, &Map<String, Value>, AddFigures); 2] = [
        (
            trace_key::TOKEN_USAGE,
            &summary.token_usage,
            add_token_usage,
        ),
        (trace_key::COST, &summary.cost, add_cost),
    ];
    for (key, more, add) in sums {
        // The client's own figure, once written, wins over sums of spans.
        if more.is_empty() || (finalized && metadata.contains_key(key)) {
            continue;
        }
        let mut total: Map<String, Value> = metadata
            .get(key)
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        add(&mut total, more);
        metadata.insert(key.into(), json!(python_json_dumps(&Value::Object(total))));
    }
    if !finalized
        && !metadata.contains_key(trace_key::SESSION)
        && let Some(session) = &summary.session_id
    {
        metadata.insert(trace_key::SESSION.into(), json!(session));
    }
    if !metadata.contains_key(trace_key::USER)
        && let Some(user) = &summary.user_id
    {
        metadata.insert(trace_key::USER.into(), json!(user));
    }
    info["trace_metadata"] = Value::Object(metadata);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> TraceSummary {
        TraceSummary {
            start_ms: 1_000,
            end_ms: Some(1_500),
            root_state: Some("OK"),
            token_usage: json!({"input_tokens": 10, "output_tokens": 5, "total_tokens": 15})
                .as_object()
                .cloned()
                .unwrap(),
            cost: json!({"input_cost": 0.5, "output_cost": 0.25, "total_cost": 0.75})
                .as_object()
                .cloned()
                .unwrap(),
            tags: Vec::new(),
            session_id: Some("s-1".into()),
            user_id: None,
            request_preview: Some("question".into()),
            response_preview: None,
        }
    }

    #[test]
    fn spans_extend_an_open_trace_and_settle_its_state() {
        let mut info = json!({
            "request_time": ms_to_rfc3339(1_200),
            "execution_duration": "0.100s",
            "state": "IN_PROGRESS",
            "trace_metadata": {"mlflow.trace.tokenUsage": "{\"input_tokens\": 1}"},
        });
        apply_summary(&mut info, &summary());
        assert_eq!(info["request_time"], json!(ms_to_rfc3339(1_000)));
        assert_eq!(info["execution_duration"], json!("0.500s"));
        assert_eq!(info["state"], json!("OK"));
        assert_eq!(info["request_preview"], json!("question"));
        assert_eq!(
            info["trace_metadata"]["mlflow.trace.tokenUsage"],
            json!(r#"{"input_tokens": 11, "output_tokens": 5, "total_tokens": 15}"#)
        );
        assert_eq!(info["trace_metadata"]["mlflow.trace.session"], json!("s-1"));
        assert_eq!(
            info["trace_metadata"]["mlflow.trace.cost"],
            json!(r#"{"input_cost": 0.5, "output_cost": 0.25, "total_cost": 0.75}"#)
        );
        // A later batch adds its spans' costs.
        apply_summary(&mut info, &summary());
        assert_eq!(
            info["trace_metadata"]["mlflow.trace.cost"],
            json!(r#"{"input_cost": 1.0, "output_cost": 0.5, "total_cost": 1.5}"#)
        );
    }

    #[test]
    fn a_finalized_trace_keeps_the_clients_figures() {
        let mut info = json!({
            "request_time": ms_to_rfc3339(1_200),
            "execution_duration": "0.100s",
            "state": "ERROR",
            "request_preview": "client's",
            "trace_metadata": {
                "mlflow.trace.infoFinalized": "true",
                "mlflow.trace.tokenUsage": "{\"input_tokens\": 1}",
            },
        });
        apply_summary(&mut info, &summary());
        assert_eq!(info["request_time"], json!(ms_to_rfc3339(1_200)));
        assert_eq!(info["execution_duration"], json!("0.100s"));
        assert_eq!(info["state"], json!("ERROR"));
        assert_eq!(info["request_preview"], json!("client's"));
        assert_eq!(
            info["trace_metadata"]["mlflow.trace.tokenUsage"],
            json!("{\"input_tokens\": 1}")
        );
        assert!(info["trace_metadata"].get("mlflow.trace.session").is_none());
    }

    #[test]
    fn a_trace_first_seen_through_spans_is_in_progress_until_its_root_arrives() {
        let mut partial = summary();
        partial.root_state = None;
        let info = new_trace_info("tr-1", "7", &partial);
        assert_eq!(info["state"], json!("IN_PROGRESS"));
        assert_eq!(
            info["trace_location"]["mlflow_experiment"]["experiment_id"],
            json!("7")
        );
        assert_eq!(info["execution_duration"], json!("0.500s"));
    }
}
