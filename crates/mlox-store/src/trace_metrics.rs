//! The rows trace metrics are computed from: one fact per trace, span or valid assessment of
//! the experiments, inside the time range and matching the filters (all in SQL), with the
//! metric's value and the requested dimensions read out of the row. Grouping and aggregation
//! are mlox-core's [`mlox_core::trace_metrics::aggregate`].

use crate::db::{Bind, Sql, SqlStore, db_err, get_i64, get_opt_i64, get_opt_str, get_str};
use mlox_core::Result;
use mlox_core::ids::parse_experiment_id;
use mlox_core::trace_metrics::{Fact, MetricFilter, ViewType, assessment_number};
use serde_json::Value;
use sqlx::any::AnyRow;

/// What a metrics query asks the store for.
pub struct MetricFacts<'a> {
    pub experiment_ids: &'a [String],
    pub view: ViewType,
    pub metric: &'a str,
    pub dimensions: &'a [String],
    pub filters: &'a [MetricFilter],
    pub start_time_ms: Option<i64>,
    pub end_time_ms: Option<i64>,
}

/// A JSON-text attribute of a span's content, decoded.
fn span_attribute(content: &Value, key: &str) -> Option<Value> {
    let text = content.get("attributes")?.get(key)?.as_str()?;
    serde_json::from_str(text).ok()
}

fn text_of(value: Option<Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl SqlStore {
    pub async fn trace_metric_facts(&self, query: &MetricFacts<'_>) -> Result<Vec<Fact>> {
        let mut ids = Vec::with_capacity(query.experiment_ids.len());
        for id in query.experiment_ids {
            ids.push(Bind::I64(parse_experiment_id(id)?));
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = self.sql(match query.view {
            ViewType::Traces => {
                "SELECT t.trace_id, t.request_time_ms AS ts, t.state, t.execution_time_ms, \
                 (SELECT n.value FROM trace_tags n WHERE n.trace_id = t.trace_id \
                  AND n.key = 'mlflow.traceName') AS trace_name, \
                 (SELECT u.value FROM trace_metadata u WHERE u.trace_id = t.trace_id \
                  AND u.key = 'mlflow.trace.tokenUsage') AS token_usage, \
                 (SELECT s.value FROM trace_metadata s WHERE s.trace_id = t.trace_id \
                  AND s.key = 'mlflow.trace.session') AS session \
                 FROM traces t WHERE t.experiment_id IN "
            }
            // A span's document is read only when the metric or a dimension is inside it.
            ViewType::Spans if needs_span_content(query) => {
                "SELECT t.request_time_ms AS ts, s.name, s.span_type, s.status, \
                 s.start_time_unix_nano, s.end_time_unix_nano, s.content \
                 FROM spans s JOIN traces t ON t.trace_id = s.trace_id WHERE t.experiment_id IN "
            }
            ViewType::Spans => {
                "SELECT t.request_time_ms AS ts, s.name, s.span_type, s.status, \
                 s.start_time_unix_nano, s.end_time_unix_nano, NULL AS content \
                 FROM spans s JOIN traces t ON t.trace_id = s.trace_id WHERE t.experiment_id IN "
            }
            ViewType::Assessments => {
                "SELECT t.request_time_ms AS ts, a.name, a.kind, a.value_json \
                 FROM assessments a JOIN traces t ON t.trace_id = a.trace_id \
                 WHERE (a.is_valid IS NULL OR a.is_valid = 1) AND a.kind <> 'issue' \
                 AND t.experiment_id IN "
            }
        });
        sql.bind_list(ids);
        // Span costs are placed in time by the span; everything else by its trace.
        let span_time = query.view == ViewType::Spans && query.metric.ends_with("_cost");
        let time_column = if span_time {
            "s.start_time_unix_nano"
        } else {
            "t.request_time_ms"
        };
        let scale = if span_time { 1_000_000 } else { 1 };
        if let Some(start) = query.start_time_ms {
            sql.push(" AND ")
                .push(time_column)
                .push(" >= ")
                .bind_i64(start.saturating_mul(scale));
        }
        if let Some(end) = query.end_time_ms {
            sql.push(" AND ")
                .push(time_column)
                .push(" < ")
                .bind_i64(end.saturating_add(1).saturating_mul(scale));
        }
        for filter in query.filters {
            push_filter(&mut sql, filter);
        }
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|row| match query.view {
                ViewType::Traces => trace_fact(row, query),
                ViewType::Spans => span_fact(row, query),
                ViewType::Assessments => assessment_fact(row, query),
            })
            .collect())
    }
}

/// Costs, models and providers are attributes inside a span's stored document.
fn needs_span_content(query: &MetricFacts) -> bool {
    query.metric.ends_with("_cost")
        || query
            .dimensions
            .iter()
            .any(|d| d == "span_model_name" || d == "span_model_provider")
}

fn push_filter(sql: &mut Sql, filter: &MetricFilter) {
    let exists = |sql: &mut Sql, table: &str, key: &str, value: &str| {
        sql.push(" AND EXISTS (SELECT 1 FROM ")
            .push(table)
            .push(" f WHERE f.trace_id = t.trace_id AND f.key = ")
            .bind_str(key)
            .push(" AND f.value = ")
            .bind_str(value)
            .push(")");
    };
    match filter {
        MetricFilter::TraceStatus(status) => {
            sql.push(" AND t.state = ").bind_str(status);
        }
        MetricFilter::TraceTag(key, value) => exists(sql, "trace_tags", key, value),
        MetricFilter::TraceMetadata(key, value) if key == "mlflow.sourceRun" => {
            // Traces linked to a run after they were recorded carry the link in its own table.
            sql.push(
                " AND (EXISTS (SELECT 1 FROM trace_metadata f WHERE f.trace_id = t.trace_id \
                 AND f.key = 'mlflow.sourceRun' AND f.value = ",
            )
            .bind_str(value)
            .push(
                ") OR EXISTS (SELECT 1 FROM trace_run_links l WHERE l.trace_id = t.trace_id \
                 AND l.run_id = ",
            )
            .bind_str(value)
            .push("))");
        }
        MetricFilter::TraceMetadata(key, value) => exists(sql, "trace_metadata", key, value),
        MetricFilter::SpanName(name) => {
            sql.push(" AND s.name = ").bind_str(name);
        }
        MetricFilter::SpanStatus(status) => {
            sql.push(" AND s.status = ").bind_str(status);
        }
        MetricFilter::SpanType(kind) => {
            sql.push(" AND s.span_type = ").bind_str(kind);
        }
        MetricFilter::AssessmentName(name) => {
            sql.push(" AND a.name = ").bind_str(name);
        }
        MetricFilter::AssessmentType(kind) => {
            sql.push(" AND a.kind = ").bind_str(kind);
        }
    }
}

fn trace_fact(row: &AnyRow, query: &MetricFacts) -> Fact {
    let value = match query.metric {
        "trace_count" => Some(1.0),
        "session_count" => None,
        "latency" => get_opt_i64(row, "execution_time_ms").map(|ms| ms as f64),
        tokens => get_opt_str(row, "token_usage")
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|usage| usage.get(tokens).and_then(Value::as_f64)),
    };
    let dimensions = query
        .dimensions
        .iter()
        .map(|d| match d.as_str() {
            "trace_name" => get_opt_str(row, "trace_name"),
            "trace_status" => Some(get_str(row, "state")),
            _ => None,
        })
        .collect();
    Fact {
        timestamp_ms: get_i64(row, "ts"),
        value,
        distinct: get_opt_str(row, "session"),
        dimensions,
    }
}

fn span_fact(row: &AnyRow, query: &MetricFacts) -> Fact {
    let content: Value = get_opt_str(row, "content")
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    let start = get_i64(row, "start_time_unix_nano");
    let value = match query.metric {
        "span_count" => Some(1.0),
        "latency" => get_opt_i64(row, "end_time_unix_nano")
            .map(|end| (end - start).div_euclid(1_000_000) as f64),
        cost => span_attribute(&content, "mlflow.llm.cost")
            .and_then(|c| c.get(cost).and_then(Value::as_f64)),
    };
    let dimensions = query
        .dimensions
        .iter()
        .map(|d| match d.as_str() {
            "span_name" => Some(get_str(row, "name")),
            "span_type" => get_opt_str(row, "span_type"),
            "span_status" => Some(get_str(row, "status")),
            "span_model_name" => text_of(span_attribute(&content, "mlflow.llm.model")),
            "span_model_provider" => text_of(span_attribute(&content, "mlflow.llm.provider")),
            _ => None,
        })
        .collect();
    Fact {
        timestamp_ms: if query.metric.ends_with("_cost") {
            start.div_euclid(1_000_000)
        } else {
            get_i64(row, "ts")
        },
        value,
        distinct: None,
        dimensions,
    }
}

fn assessment_fact(row: &AnyRow, query: &MetricFacts) -> Fact {
    let value_json = get_opt_str(row, "value_json");
    let value = match query.metric {
        "assessment_count" => Some(1.0),
        _ => value_json
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|v| assessment_number(&v)),
    };
    let dimensions = query
        .dimensions
        .iter()
        .map(|d| match d.as_str() {
            "assessment_name" => get_opt_str(row, "name"),
            "assessment_value" => value_json.clone(),
            _ => None,
        })
        .collect();
    Fact {
        timestamp_ms: get_i64(row, "ts"),
        value,
        distinct: None,
        dimensions,
    }
}
