//! Traces taken over from MLflow: each trace's info (tags and metadata included) written as
//! final, its spans (MLflow keeps them as the same `Span.to_dict` documents mlox keeps), its
//! assessments with their ids and times, and its links to runs. Unlike the other tables these
//! go through the store's trace operations, which keep mlox's search columns in step; a trace
//! already in the target is skipped whole, so running the import again adds only new traces.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use mlox_core::spans::{SpanStatusCode, StoredSpan};
use mlox_core::trace_info::{duration_text, ms_to_rfc3339};
use mlox_store::SqlStore;
use serde_json::{Map, Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::source::Source;
use crate::{ImportError, TableReport};

/// Traces read and written per round.
const TRACES_PER_ROUND: usize = 200;
/// The store links at most this many traces to a run per call.
const LINKS_PER_CALL: usize = 100;

#[derive(Default)]
struct Counts {
    read: u64,
    written: u64,
}

/// Reads rows of `select` whose `key_column` is one of `ids`.
async fn rows_for(
    src: &Source,
    table: &'static str,
    select: &str,
    key_column: &str,
    ids: &[String],
) -> Result<Vec<AnyRow>, ImportError> {
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let connector = if select.contains(" WHERE ") {
        "AND"
    } else {
        "WHERE"
    };
    let sql = format!(
        "{select} {connector} {key_column} IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id.clone());
    }
    query
        .fetch_all(&src.pool)
        .await
        .map_err(|source| ImportError::Read { table, source })
}

fn text(row: &AnyRow, i: usize) -> Option<String> {
    row.try_get::<Option<String>, _>(i).ok().flatten()
}

fn int(row: &AnyRow, i: usize) -> Option<i64> {
    row.try_get::<Option<i64>, _>(i).ok().flatten()
}

/// MLflow's V2 status names and V3 state names, as mlox keeps states.
fn state(status: &str) -> &str {
    match status {
        "OK" | "ERROR" | "IN_PROGRESS" => status,
        _ => "STATE_UNSPECIFIED",
    }
}

fn span_status(status: &str) -> SpanStatusCode {
    match status {
        "OK" | "STATUS_CODE_OK" => SpanStatusCode::Ok,
        "ERROR" | "STATUS_CODE_ERROR" => SpanStatusCode::Error,
        _ => SpanStatusCode::Unset,
    }
}

/// Key/value rows (`request_id`, `key`, `value`) by trace.
fn by_trace(rows: &[AnyRow]) -> HashMap<String, Map<String, Value>> {
    let mut found: HashMap<String, Map<String, Value>> = HashMap::new();
    for row in rows {
        if let (Some(trace), Some(key)) = (text(row, 0), text(row, 1)) {
            found
                .entry(trace)
                .or_default()
                .insert(key, Value::String(text(row, 2).unwrap_or_default()));
        }
    }
    found
}

/// One assessment row as the Assessment message MLflow's API carries.
fn assessment(row: &AnyRow) -> Option<(String, Value)> {
    let id = text(row, 0)?;
    let trace_id = text(row, 1)?;
    let kind = text(row, 3)?;
    let value: Value = text(row, 4)
        .and_then(|v| serde_json::from_str(&v).ok())
        .unwrap_or(Value::Null);
    let mut body = json!({
        "assessment_id": id,
        "assessment_name": text(row, 2)?,
        "trace_id": trace_id,
        "source": {"source_type": text(row, 8)?, "source_id": text(row, 9).unwrap_or_default()},
        "create_time": ms_to_rfc3339(int(row, 6).unwrap_or_default()),
        "last_update_time": ms_to_rfc3339(int(row, 7).unwrap_or_default()),
        "valid": int(row, 13).is_none_or(|v| v != 0),
    });
    match kind.as_str() {
        "feedback" => {
            let mut feedback = json!({ "value": value });
            if let Some(error) = text(row, 5).and_then(|e| serde_json::from_str::<Value>(&e).ok()) {
                feedback["error"] = error;
            }
            body["feedback"] = feedback;
        }
        "expectation" => body["expectation"] = json!({ "value": value }),
        "issue" => {
            body["issue"] = json!({
                "issue_name": value.get("issue_name").cloned().unwrap_or(Value::Null)
            })
        }
        _ => return None,
    }
    for (field, i) in [("span_id", 10), ("rationale", 11), ("overrides", 12)] {
        if let Some(v) = text(row, i).filter(|v| !v.is_empty()) {
            body[field] = Value::String(v);
        }
    }
    // The API carries metadata values as text.
    if let Some(Value::Object(metadata)) = text(row, 14).and_then(|m| serde_json::from_str(&m).ok())
    {
        let metadata: Map<String, Value> = metadata
            .into_iter()
            .map(|(k, v)| {
                let shown = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, Value::String(shown))
            })
            .collect();
        if !metadata.is_empty() {
            body["metadata"] = Value::Object(metadata);
        }
    }
    Some((trace_id, body))
}

fn report(table: &'static str, counts: &Counts, started: Instant, absent: bool) -> TableReport {
    TableReport {
        table,
        read: counts.read,
        written: counts.written,
        absent,
        elapsed: if absent {
            Duration::ZERO
        } else {
            started.elapsed()
        },
    }
}

/// Copies every trace the target lacks, with its spans, assessments and run links.
pub(crate) async fn import_traces(
    src: &Source,
    target: &SqlStore,
    progress: bool,
) -> Result<Vec<TableReport>, ImportError> {
    let started = Instant::now();
    let names = ["traces", "spans", "assessments", "trace_run_links"];
    if !src.has_table("trace_info") {
        return Ok(names
            .iter()
            .map(|n| report(n, &Counts::default(), started, true))
            .collect());
    }
    let read_err = |table: &'static str| move |source| ImportError::Read { table, source };
    let ids: Vec<String> = sqlx::query("SELECT request_id FROM trace_info ORDER BY request_id")
        .fetch(&src.pool)
        .map_ok(|row: AnyRow| text(&row, 0).unwrap_or_default())
        .try_collect()
        .await
        .map_err(read_err("trace_info"))?;
    let bar = crate::progress_bar(progress, "traces", ids.len() as u64);
    let (mut traces, mut spans, mut assessments, mut links) = (
        Counts::default(),
        Counts::default(),
        Counts::default(),
        Counts::default(),
    );
    let has_spans = src.has_table("spans");
    let has_assessments = src.has_table("assessments");
    let has_links = src.has_table("entity_associations");
    for round in ids.chunks(TRACES_PER_ROUND) {
        traces.read += round.len() as u64;
        bar.inc(round.len() as u64);
        let present: HashSet<String> = target
            .get_trace_infos(round)
            .await?
            .iter()
            .filter_map(|info| info.get("trace_id").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        let new: Vec<String> = round
            .iter()
            .filter(|id| !present.contains(*id))
            .cloned()
            .collect();
        if new.is_empty() {
            continue;
        }
        let tags = by_trace(
            &rows_for(
                src,
                "trace_tags",
                "SELECT request_id, key, value FROM trace_tags",
                "request_id",
                &new,
            )
            .await?,
        );
        let metadata = by_trace(
            &rows_for(
                src,
                "trace_request_metadata",
                "SELECT request_id, key, value FROM trace_request_metadata",
                "request_id",
                &new,
            )
            .await?,
        );
        let infos = rows_for(
            src,
            "trace_info",
            "SELECT request_id, CAST(experiment_id AS BIGINT), CAST(timestamp_ms AS BIGINT), \
             CAST(execution_time_ms AS BIGINT), status, client_request_id, request_preview, \
             response_preview FROM trace_info",
            "request_id",
            &new,
        )
        .await?;
        let mut experiment_of: HashMap<String, String> = HashMap::new();
        for row in &infos {
            let (Some(trace_id), Some(experiment)) = (text(row, 0), int(row, 1)) else {
                continue;
            };
            let mut info = json!({
                "trace_id": trace_id,
                "trace_location": {
                    "type": "MLFLOW_EXPERIMENT",
                    "mlflow_experiment": {"experiment_id": experiment.to_string()},
                },
                "request_time": ms_to_rfc3339(int(row, 2).unwrap_or_default()),
                "state": state(&text(row, 4).unwrap_or_default()),
                "trace_metadata": metadata.get(&trace_id).cloned().unwrap_or_default(),
                "tags": tags.get(&trace_id).cloned().unwrap_or_default(),
            });
            if let Some(ms) = int(row, 3) {
                info["execution_duration"] = json!(duration_text(ms));
            }
            for (field, i) in [
                ("client_request_id", 5),
                ("request_preview", 6),
                ("response_preview", 7),
            ] {
                if let Some(v) = text(row, i) {
                    info[field] = Value::String(v);
                }
            }
            target.import_trace_info(info).await?;
            traces.written += 1;
            experiment_of.insert(trace_id, experiment.to_string());
        }
        if has_spans {
            let rows = rows_for(
                src,
                "spans",
                "SELECT trace_id, span_id, parent_span_id, name, type, status, \
                 CAST(start_time_unix_nano AS BIGINT), CAST(end_time_unix_nano AS BIGINT), \
                 content FROM spans",
                "trace_id",
                &new,
            )
            .await?;
            let mut by_experiment: HashMap<String, Vec<StoredSpan>> = HashMap::new();
            for row in &rows {
                spans.read += 1;
                let (Some(trace_id), Some(span_id)) = (text(row, 0), text(row, 1)) else {
                    continue;
                };
                let Some(experiment) = experiment_of.get(&trace_id) else {
                    continue;
                };
                let Some(content) = text(row, 8).and_then(|c| serde_json::from_str(&c).ok()) else {
                    continue;
                };
                by_experiment
                    .entry(experiment.clone())
                    .or_default()
                    .push(StoredSpan {
                        trace_id,
                        span_id,
                        parent_span_id: text(row, 2).filter(|p| !p.is_empty()),
                        name: text(row, 3).unwrap_or_default(),
                        span_type: text(row, 4),
                        status: span_status(&text(row, 5).unwrap_or_default()),
                        start_time_unix_nano: int(row, 6).unwrap_or_default(),
                        end_time_unix_nano: int(row, 7),
                        content,
                    });
            }
            for (experiment, batch) in by_experiment {
                spans.written += batch.len() as u64;
                target.log_spans(&experiment, batch).await?;
            }
        }
        if has_assessments {
            let rows = rows_for(
                src,
                "assessments",
                "SELECT assessment_id, trace_id, name, assessment_type, value, error, \
                 CAST(created_timestamp AS BIGINT), CAST(last_updated_timestamp AS BIGINT), \
                 source_type, source_id, span_id, rationale, overrides, \
                 CAST(CASE WHEN valid THEN 1 ELSE 0 END AS BIGINT), assessment_metadata \
                 FROM assessments",
                "trace_id",
                &new,
            )
            .await?;
            for row in &rows {
                assessments.read += 1;
                if let Some((trace_id, body)) = assessment(row)
                    && target.import_assessment(&trace_id, body).await?
                {
                    assessments.written += 1;
                }
            }
        }
        if has_links {
            let rows = rows_for(
                src,
                "entity_associations",
                "SELECT source_id, destination_id FROM entity_associations \
                 WHERE source_type = 'trace' AND destination_type = 'run'",
                "source_id",
                &new,
            )
            .await?;
            let mut by_run: HashMap<String, Vec<String>> = HashMap::new();
            for row in &rows {
                if let (Some(trace), Some(run)) = (text(row, 0), text(row, 1)) {
                    by_run.entry(run).or_default().push(trace);
                }
            }
            for (run, traces_of_run) in by_run {
                links.read += traces_of_run.len() as u64;
                for chunk in traces_of_run.chunks(LINKS_PER_CALL) {
                    match target.link_traces_to_run(chunk, &run).await {
                        Ok(()) => links.written += chunk.len() as u64,
                        // A link to a run the source no longer has is left behind.
                        Err(e) if e.code == mlox_core::Code::ResourceDoesNotExist => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    bar.finish_and_clear();
    let reports = vec![
        report("traces", &traces, started, false),
        report("spans", &spans, started, false),
        report("assessments", &assessments, started, false),
        report("trace_run_links", &links, started, false),
    ];
    if progress {
        for r in &reports {
            eprintln!("{r}");
        }
    }
    Ok(reports)
}
