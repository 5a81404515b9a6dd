//! Trace records (MLflow 3 `TraceInfo`), kept as the JSON document the client sent plus the
//! fields searches compare (experiment, time, state, execution time, client request id), with
//! tags and request metadata in their own tables so filters run in SQL. Spans are either in the
//! artifact store, where older clients upload them, or in the `spans` table when they came
//! over OTLP (see `spans.rs`). Assessments are kept as the JSON the client
//! sent, completed with their ids, times and validity, with the fields assessment filters
//! compare copied into columns.

use crate::db::{
    Bind, IN_LIST_CHUNK, PageWindow, Sql, SqlStore, append_to_uri_path, db_err, get_str, now_ms,
    positive_page_size,
};
use crate::search::{SearchSpec, push_filter, push_order_by};
use mlox_core::ids::{new_assessment_id, parse_experiment_id};
use mlox_core::search::SearchEntity;
use mlox_core::trace_info::{duration_to_ms, ms_to_rfc3339, rfc3339_to_ms};
use mlox_core::{Error, Result};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub const ARTIFACT_LOCATION_TAG: &str = "mlflow.artifactLocation";

fn parse_request_time_ms(info: &Value) -> i64 {
    // proto3 JSON timestamps: "2026-11-22T03:49:52.021Z"; fall back to now when absent or odd.
    info.get("request_time")
        .and_then(Value::as_str)
        .and_then(rfc3339_to_ms)
        .unwrap_or_else(now_ms)
}

/// The fields of an assessment that trace filters compare, read from its document.
struct AssessmentFields {
    kind: Option<&'static str>,
    name: Option<String>,
    valid: bool,
    value_json: Option<String>,
    numeric_value: Option<f64>,
}

impl AssessmentFields {
    fn of(body: &Value) -> AssessmentFields {
        let kind = ["feedback", "expectation", "issue"]
            .into_iter()
            .find(|kind| body.get(*kind).is_some());
        let value = match kind {
            Some("feedback") => body.pointer("/feedback/value").cloned(),
            // An expectation holds its value as a JSON value or as serialized JSON text.
            Some("expectation") => body.pointer("/expectation/value").cloned().or_else(|| {
                body.pointer("/expectation/serialized_value/value")
                    .and_then(Value::as_str)
                    .and_then(|text| serde_json::from_str(text).ok())
            }),
            _ => None,
        };
        AssessmentFields {
            kind,
            name: body
                .get("assessment_name")
                .and_then(Value::as_str)
                .map(str::to_string),
            valid: body.get("valid").and_then(Value::as_bool) != Some(false),
            numeric_value: value
                .as_ref()
                .and_then(Value::as_f64)
                .filter(|n| n.is_finite() && !matches!(value, Some(Value::Bool(_)))),
            value_json: value.map(|v| v.to_string()),
        }
    }

    /// `, kind = …, name = …, …` for an UPDATE of the assessment's row.
    fn push_assignments(&self, sql: &mut crate::db::Sql) {
        sql.push(", kind = ");
        match self.kind {
            Some(kind) => sql.bind_str(kind),
            None => sql.push("NULL"),
        };
        sql.push(", name = ");
        match &self.name {
            Some(name) => sql.bind_str(name.clone()),
            None => sql.push("NULL"),
        };
        sql.push(", is_valid = ").bind_i64(i64::from(self.valid));
        sql.push(", value_json = ");
        match &self.value_json {
            Some(json) => sql.bind_str(json.clone()),
            None => sql.push("NULL"),
        };
        sql.push(", numeric_value = ");
        match self.numeric_value {
            Some(n) => sql.bind_f64(n),
            None => sql.push("NULL"),
        };
    }
}

fn set_valid(assessment: &mut Value, valid: bool) {
    if let Some(fields) = assessment.as_object_mut() {
        fields.insert("valid".into(), Value::Bool(valid));
    }
}

/// Sets one tag of a trace inside a transaction.
pub(crate) async fn upsert_trace_tag(
    store: &SqlStore,
    conn: &mut sqlx::AnyConnection,
    trace_id: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    let mut sql = store.sql("INSERT INTO trace_tags (trace_id, key, value) VALUES (");
    sql.bind_str(trace_id)
        .push(", ")
        .bind_str(key)
        .push(", ")
        .bind_str(value);
    sql.push(") ON CONFLICT (trace_id, key) DO UPDATE SET value = excluded.value");
    sql.query().execute(&mut *conn).await.map_err(db_err)?;
    Ok(())
}

/// The fields of a trace's info that searches compare, read from the document the client sent.
pub(crate) struct SearchFields {
    execution_time_ms: Option<i64>,
    client_request_id: Option<String>,
    metadata: Vec<(String, String)>,
}

impl SearchFields {
    pub(crate) fn of(info: &Value) -> SearchFields {
        let metadata = mlox_core::trace_info::string_entries(info.get("trace_metadata"));
        SearchFields {
            execution_time_ms: info
                .get("execution_duration")
                .and_then(Value::as_str)
                .and_then(duration_to_ms),
            client_request_id: info
                .get("client_request_id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty())
                .map(str::to_string),
            metadata,
        }
    }

    /// Writes the fields of `trace_id`, replacing what an earlier write of the trace left.
    pub(crate) async fn write(
        &self,
        store: &SqlStore,
        conn: &mut sqlx::AnyConnection,
        trace_id: &str,
    ) -> Result<()> {
        let mut sql = store.sql("UPDATE traces SET execution_time_ms = ");
        match self.execution_time_ms {
            Some(ms) => sql.bind_i64(ms),
            None => sql.push("NULL"),
        };
        sql.push(", client_request_id = ");
        match &self.client_request_id {
            Some(id) => sql.bind_str(id.clone()),
            None => sql.push("NULL"),
        };
        sql.push(" WHERE trace_id = ").bind_str(trace_id);
        sql.query().execute(&mut *conn).await.map_err(db_err)?;
        let mut sql = store.sql("DELETE FROM trace_metadata WHERE trace_id = ");
        sql.bind_str(trace_id);
        sql.query().execute(&mut *conn).await.map_err(db_err)?;
        for (key, value) in &self.metadata {
            let mut sql = store.sql("INSERT INTO trace_metadata (trace_id, key, value) VALUES (");
            sql.bind_str(trace_id)
                .push(", ")
                .bind_str(key.clone())
                .push(", ")
                .bind_str(value.clone())
                .push(")");
            sql.query().execute(&mut *conn).await.map_err(db_err)?;
        }
        Ok(())
    }
}

/// Microseconds since the epoch, strictly increasing within this process, recorded with each
/// assessment so a trace lists its assessments in the order they were logged.
fn logging_order_us() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default();
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(previous + 1)
}

/// Keeps what spans stored earlier derived that the client's info leaves out (the previews,
/// metadata keys it did not send) and, when `finalized`, marks the info as final so spans
/// that arrive later no longer change its figures.
fn merge_stored_info(info: &mut Value, stored: Option<&Value>, finalized: bool) {
    let Some(fields) = info.as_object_mut() else {
        return;
    };
    if let Some(stored) = stored {
        for key in ["request_preview", "response_preview"] {
            if fields.get(key).is_none_or(Value::is_null)
                && let Some(preview) = stored.get(key).filter(|p| !p.is_null())
            {
                fields.insert(key.into(), preview.clone());
            }
        }
    }
    let metadata = fields.entry("trace_metadata").or_insert_with(|| json!({}));
    if !metadata.is_object() {
        *metadata = json!({});
    }
    if let Some(metadata) = metadata.as_object_mut() {
        if let Some(Value::Object(earlier)) = stored.and_then(|s| s.get("trace_metadata")) {
            for (key, value) in earlier {
                metadata.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        if finalized {
            metadata.insert(
                mlox_core::spans::trace_key::INFO_FINALIZED.into(),
                json!("true"),
            );
        }
    }
}

/// Copies the searchable fields of every stored trace out of its info document (schema
/// migration 3, which added the columns and tables they go to).
pub(crate) async fn backfill_search_fields(
    store: &SqlStore,
    conn: &mut sqlx::AnyConnection,
) -> Result<()> {
    let rows = store
        .sql("SELECT trace_id, info FROM traces")
        .query()
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        let info: Value = serde_json::from_str(&get_str(&row, "info")).unwrap_or(Value::Null);
        SearchFields::of(&info)
            .write(store, conn, &get_str(&row, "trace_id"))
            .await?;
    }
    let rows = store
        .sql("SELECT trace_id, assessment_id, body FROM assessments")
        .query()
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    for row in rows {
        let body: Value = serde_json::from_str(&get_str(&row, "body")).unwrap_or(Value::Null);
        store
            .write_assessment_body(
                conn,
                &get_str(&row, "trace_id"),
                &get_str(&row, "assessment_id"),
                &body,
            )
            .await?;
    }
    Ok(())
}

/// A trace search: the experiments searched, the filter and ordering as the client wrote them,
/// and the page wanted.
pub struct TraceSearch<'a> {
    pub experiment_ids: &'a [String],
    pub filter: Option<&'a str>,
    pub order_by: &'a [String],
    pub max_results: Option<i64>,
    pub page_token: Option<&'a str>,
}

/// MLflow's cap on `max_results` for trace searches.
const MAX_TRACE_RESULTS: i64 = 50_000;
/// MLflow's cap on trace ids per link-to-run request.
const MAX_TRACE_LINKS_PER_REQUEST: usize = 100;

impl SqlStore {
    /// Stores a trace's info and returns it as the client should see it, with the artifact
    /// location tag the client needs to upload spans.
    pub async fn start_trace(&self, info: Value) -> Result<Value> {
        self.write_trace_info(info, true).await
    }

    /// Stores a trace's info as given; `finalized` marks it as the client's final word (the
    /// v3 API), which spans arriving later no longer change. The deprecated v2 API writes
    /// infos that are not final.
    pub async fn write_trace_info(&self, info: Value, finalized: bool) -> Result<Value> {
        self.write_trace_info_into(info, finalized, true).await
    }

    /// Takes over a trace info from another MLflow store as final, into its experiment
    /// whatever that experiment's lifecycle stage (an import keeps the traces of deleted
    /// experiments too).
    pub async fn import_trace_info(&self, info: Value) -> Result<Value> {
        self.write_trace_info_into(info, true, false).await
    }

    async fn write_trace_info_into(
        &self,
        mut info: Value,
        finalized: bool,
        active_only: bool,
    ) -> Result<Value> {
        let trace_id = info
            .get("trace_id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::invalid("Missing value for required parameter 'trace.trace_info.trace_id'.")
            })?;
        let experiment_id = info
            .pointer("/trace_location/mlflow_experiment/experiment_id")
            .and_then(|v| v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())))
            .ok_or_else(|| Error::invalid("A trace must name its experiment in trace_location.mlflow_experiment.experiment_id."))?;
        let experiment = if active_only {
            self.active_experiment(&experiment_id).await?
        } else {
            self.get_experiment(&experiment_id).await?
        };
        let location = append_to_uri_path(
            &experiment.artifact_location,
            &format!("traces/{trace_id}/artifacts"),
        );
        let tags = info
            .as_object_mut()
            .map(|o| o.entry("tags").or_insert_with(|| json!({})));
        if let Some(Value::Object(tags)) = tags {
            tags.insert(ARTIFACT_LOCATION_TAG.into(), Value::String(location));
        }
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql("SELECT info FROM traces WHERE trace_id = ");
        sql.bind_str(&trace_id);
        if self.dialect == crate::db::Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        let stored = sql
            .query()
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .and_then(|row| serde_json::from_str::<Value>(&get_str(&row, "info")).ok());
        merge_stored_info(&mut info, stored.as_ref(), finalized);
        let state = info
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("STATE_UNSPECIFIED")
            .to_string();
        let request_time = parse_request_time_ms(&info);
        let mut sql = self.sql(
            "INSERT INTO traces (trace_id, experiment_id, request_time_ms, state, info) VALUES (",
        );
        sql.bind_str(&trace_id)
            .push(", ")
            .bind_i64(parse_experiment_id(&experiment_id)?)
            .push(", ");
        sql.bind_i64(request_time)
            .push(", ")
            .bind_str(&state)
            .push(", ")
            .bind_str(info.to_string());
        sql.push(") ON CONFLICT (trace_id) DO UPDATE SET state = excluded.state, info = excluded.info, request_time_ms = excluded.request_time_ms");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        SearchFields::of(&info)
            .write(self, &mut tx, &trace_id)
            .await?;
        if let Some(Value::Object(tags)) = info.get("tags") {
            for (k, v) in tags {
                upsert_trace_tag(self, &mut tx, &trace_id, k, v.as_str().unwrap_or_default())
                    .await?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        self.get_trace_info(&trace_id).await
    }

    pub async fn get_trace_info(&self, trace_id: &str) -> Result<Value> {
        let mut infos = self.get_trace_infos(&[trace_id.to_string()]).await?;
        infos
            .pop()
            .ok_or_else(|| Error::not_found(format!("Trace with ID {trace_id} is not found.")))
    }

    /// The infos of the traces that exist among `trace_ids`, in that order, each with its
    /// current tags and its assessments (oldest first); a few queries for the whole list.
    pub async fn get_trace_infos(&self, trace_ids: &[String]) -> Result<Vec<Value>> {
        let mut infos: HashMap<String, Value> = HashMap::with_capacity(trace_ids.len());
        for row in self
            .load_children(
                "SELECT trace_id, info FROM traces WHERE trace_id IN ",
                trace_ids,
                "",
            )
            .await?
        {
            let info = serde_json::from_str(&get_str(&row, "info")).unwrap_or_else(|_| json!({}));
            infos.insert(get_str(&row, "trace_id"), info);
        }
        let mut tags: HashMap<String, Map<String, Value>> = HashMap::new();
        for row in self
            .load_children(
                "SELECT trace_id, key, value FROM trace_tags WHERE trace_id IN ",
                trace_ids,
                "",
            )
            .await?
        {
            tags.entry(get_str(&row, "trace_id"))
                .or_default()
                .insert(get_str(&row, "key"), Value::String(get_str(&row, "value")));
        }
        let mut assessments: HashMap<String, Vec<Value>> = HashMap::new();
        for row in self
            .load_children(
                "SELECT trace_id, body FROM assessments WHERE trace_id IN ",
                trace_ids,
                " ORDER BY COALESCE(created_us, 0), assessment_id",
            )
            .await?
        {
            if let Ok(body) = serde_json::from_str(&get_str(&row, "body")) {
                assessments
                    .entry(get_str(&row, "trace_id"))
                    .or_default()
                    .push(body);
            }
        }
        let created = |a: &Value| {
            a.get("create_time")
                .and_then(Value::as_str)
                .and_then(rfc3339_to_ms)
                .unwrap_or(0)
        };
        let mut out = Vec::with_capacity(trace_ids.len());
        for id in trace_ids {
            let Some(mut info) = infos.remove(id) else {
                continue;
            };
            if let Some(obj) = info.as_object_mut() {
                obj.insert(
                    "tags".into(),
                    Value::Object(tags.remove(id).unwrap_or_default()),
                );
                if let Some(mut list) = assessments.remove(id) {
                    // Stable: assessments of one millisecond keep the order they were logged in.
                    list.sort_by_cached_key(created);
                    obj.insert("assessments".into(), Value::Array(list));
                }
            }
            out.push(info);
        }
        Ok(out)
    }

    /// One page of the traces of some experiments that match a filter, in the order asked
    /// (newest first, then by id, when none is).
    pub async fn search_traces(
        &self,
        search: TraceSearch<'_>,
    ) -> Result<(Vec<Value>, Option<String>)> {
        let size = positive_page_size(search.max_results, 100, MAX_TRACE_RESULTS, false)?;
        let spec = SearchSpec::for_entity(SearchEntity::Traces, self.dialect);
        let mut sql = self.traces_of_experiments("t.trace_id", search.experiment_ids)?;
        // The filter and ordering are checked even when no experiment is searched, so a bad
        // filter is an error whatever the locations.
        push_filter(&spec, &mut sql, search.filter)?;
        push_order_by(&spec, &mut sql, search.order_by)?;
        let window = PageWindow::new(search.page_token, size)?;
        window.push_limit(&mut sql);
        let trace_ids: Vec<String> = sql
            .query()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| get_str(r, "trace_id"))
            .collect();
        let (trace_ids, next) = window.finish(trace_ids);
        Ok((self.get_trace_infos(&trace_ids).await?, next))
    }

    /// `SELECT <columns> FROM traces t WHERE` the trace is in one of the experiments (none
    /// when no experiment is named), ready for filter clauses.
    fn traces_of_experiments(&self, columns: &str, experiment_ids: &[String]) -> Result<Sql> {
        let ids: Vec<i64> = experiment_ids
            .iter()
            .map(|e| parse_experiment_id(e))
            .collect::<Result<_>>()?;
        let mut sql = self.sql(&format!("SELECT {columns} FROM traces t WHERE "));
        if ids.is_empty() {
            sql.push("1 = 0");
        } else {
            sql.push("t.experiment_id IN ");
            sql.bind_list(ids.into_iter().map(Bind::I64));
        }
        Ok(sql)
    }

    /// How many traces of the experiments match every one of `filters` (MLflow's trace filter
    /// grammar; `None` matches all).
    pub async fn count_traces(
        &self,
        experiment_ids: &[String],
        filters: &[Option<&str>],
    ) -> Result<i64> {
        let spec = SearchSpec::for_entity(SearchEntity::Traces, self.dialect);
        let mut sql = self.traces_of_experiments("COUNT(*) AS n", experiment_ids)?;
        for filter in filters {
            push_filter(&spec, &mut sql, *filter)?;
        }
        let row = sql.query().fetch_one(&self.read).await.map_err(db_err)?;
        Ok(crate::db::get_i64(&row, "n"))
    }

    pub async fn set_trace_tag(&self, trace_id: &str, key: &str, value: &str) -> Result<()> {
        self.get_trace_info(trace_id).await?;
        let mut conn = self.write.acquire().await.map_err(db_err)?;
        upsert_trace_tag(self, &mut conn, trace_id, key, value).await
    }

    pub async fn delete_trace_tag(&self, trace_id: &str, key: &str) -> Result<()> {
        self.get_trace_info(trace_id).await?;
        let mut sql = self.sql("DELETE FROM trace_tags WHERE trace_id = ");
        sql.bind_str(trace_id).push(" AND key = ").bind_str(key);
        let done = sql.query().execute(&self.write).await.map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No trace tag with key '{key}' for trace with ID '{trace_id}'"
            )));
        }
        Ok(())
    }

    /// Records an assessment of a trace. One that overrides another (`overrides`, as
    /// `override_feedback` sends) makes the other invalid in the same transaction.
    pub async fn create_assessment(&self, trace_id: &str, mut assessment: Value) -> Result<Value> {
        self.get_trace_info(trace_id).await?;
        let Some(fields) = assessment.as_object_mut() else {
            return Err(Error::invalid("An assessment must be a JSON object."));
        };
        let has_value = ["feedback", "expectation", "issue"]
            .iter()
            .any(|kind| fields.contains_key(*kind));
        if !has_value {
            return Err(Error::invalid(
                "An assessment must have either an expectation or a feedback.",
            ));
        }
        mlox_core::assessments::serialize_expectation_value(&mut assessment);
        let Some(fields) = assessment.as_object_mut() else {
            return Err(Error::invalid("An assessment must be a JSON object."));
        };
        let id = new_assessment_id();
        let now = ms_to_rfc3339(now_ms());
        fields.insert("assessment_id".into(), Value::String(id.clone()));
        fields.insert("trace_id".into(), Value::String(trace_id.to_string()));
        fields
            .entry("create_time")
            .or_insert_with(|| Value::String(now.clone()));
        fields
            .entry("last_update_time")
            .or_insert_with(|| Value::String(now));
        fields.entry("valid").or_insert(Value::Bool(true));
        let overrides = fields
            .get("overrides")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string);
        let mut tx = self.write.begin().await.map_err(db_err)?;
        if let Some(old_id) = overrides {
            let Some(mut old) = self.assessment_body(&mut tx, trace_id, &old_id).await? else {
                return Err(Error::not_found(format!(
                    "Assessment with ID '{old_id}' not found for trace '{trace_id}'"
                )));
            };
            set_valid(&mut old, false);
            self.write_assessment_body(&mut tx, trace_id, &old_id, &old)
                .await?;
        }
        self.insert_assessment(&mut tx, &id, trace_id, &assessment, logging_order_us())
            .await?;
        self.write_assessment_body(&mut tx, trace_id, &id, &assessment)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(assessment)
    }

    /// Takes over an assessment from another MLflow store with its id and times; one whose id
    /// is already here is left as it is. Returns whether it was written.
    pub async fn import_assessment(&self, trace_id: &str, mut assessment: Value) -> Result<bool> {
        mlox_core::assessments::serialize_expectation_value(&mut assessment);
        let id = assessment
            .get("assessment_id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::invalid("An imported assessment must have its id."))?;
        // Listed in their creation order, as the source listed them.
        let created_us = assessment
            .get("create_time")
            .and_then(Value::as_str)
            .and_then(rfc3339_to_ms)
            .map_or_else(logging_order_us, |ms| ms * 1000);
        let mut tx = self.write.begin().await.map_err(db_err)?;
        if !self
            .insert_assessment(&mut tx, &id, trace_id, &assessment, created_us)
            .await?
        {
            return Ok(false);
        }
        self.write_assessment_body(&mut tx, trace_id, &id, &assessment)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(true)
    }

    /// Inserts an assessment row unless its id is taken; returns whether it was inserted.
    async fn insert_assessment(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: &str,
        trace_id: &str,
        assessment: &Value,
        created_us: i64,
    ) -> Result<bool> {
        let mut sql = self
            .sql("INSERT INTO assessments (assessment_id, trace_id, body, created_us) VALUES (");
        sql.bind_str(id)
            .push(", ")
            .bind_str(trace_id)
            .push(", ")
            .bind_str(assessment.to_string())
            .push(", ")
            .bind_i64(created_us)
            .push(") ON CONFLICT (assessment_id) DO NOTHING");
        let inserted = sql.query().execute(&mut *conn).await.map_err(db_err)?;
        Ok(inserted.rows_affected() > 0)
    }

    async fn assessment_body(
        &self,
        conn: &mut sqlx::AnyConnection,
        trace_id: &str,
        assessment_id: &str,
    ) -> Result<Option<Value>> {
        let mut sql = self.sql("SELECT body FROM assessments WHERE trace_id = ");
        sql.bind_str(trace_id)
            .push(" AND assessment_id = ")
            .bind_str(assessment_id);
        let row = sql
            .query()
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        Ok(row.map(|row| serde_json::from_str(&get_str(&row, "body")).unwrap_or(Value::Null)))
    }

    async fn write_assessment_body(
        &self,
        conn: &mut sqlx::AnyConnection,
        trace_id: &str,
        assessment_id: &str,
        body: &Value,
    ) -> Result<()> {
        let mut sql = self.sql("UPDATE assessments SET body = ");
        sql.bind_str(body.to_string());
        AssessmentFields::of(body).push_assignments(&mut sql);
        sql.push(" WHERE trace_id = ")
            .bind_str(trace_id)
            .push(" AND assessment_id = ")
            .bind_str(assessment_id);
        sql.query().execute(&mut *conn).await.map_err(db_err)?;
        Ok(())
    }

    /// The assessment, or MLflow's not-found error naming the trace or the assessment.
    async fn existing_assessment(
        &self,
        conn: &mut sqlx::AnyConnection,
        trace_id: &str,
        assessment_id: &str,
    ) -> Result<Value> {
        if let Some(body) = self.assessment_body(conn, trace_id, assessment_id).await? {
            return Ok(body);
        }
        if self.get_trace_info(trace_id).await.is_err() {
            return Err(Error::not_found(format!(
                "Trace with request_id '{trace_id}' not found"
            )));
        }
        Err(Error::not_found(format!(
            "Assessment with ID '{assessment_id}' not found for trace '{trace_id}'"
        )))
    }

    pub async fn get_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<Value> {
        let mut conn = self.read.acquire().await.map_err(db_err)?;
        self.existing_assessment(&mut conn, trace_id, assessment_id)
            .await
    }

    /// Changes the fields of an assessment named by `paths` (the request's field mask) to
    /// those of `update`, as MLflow does: the name, the feedback or expectation value (of the
    /// same kind only), the rationale, and metadata merged into the old. Source, span and
    /// validity stay; the update time is now.
    pub async fn update_assessment(
        &self,
        trace_id: &str,
        assessment_id: &str,
        update: &Value,
        paths: &[String],
    ) -> Result<Value> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut body = self
            .existing_assessment(&mut tx, trace_id, assessment_id)
            .await?;
        let wants = |path: &str| paths.iter().any(|p| p == path);
        if wants("feedback") && wants("expectation") {
            return Err(Error::invalid(
                "Cannot specify both `expectation` and `feedback` parameters.",
            ));
        }
        let Some(fields) = body.as_object_mut() else {
            return Err(Error::internal("stored assessment is not a JSON object"));
        };
        for path in paths {
            match path.as_str() {
                "assessment_name" | "rationale" | "feedback" | "expectation" | "metadata"
                | "valid" => {}
                other => {
                    return Err(Error::invalid(format!(
                        "Invalid field mask path '{other}' for an assessment update."
                    )));
                }
            }
        }
        if wants("expectation") && !fields.contains_key("expectation") {
            return Err(Error::invalid(
                "Cannot update expectation value on a Feedback assessment.",
            ));
        }
        if wants("feedback") && !fields.contains_key("feedback") {
            return Err(Error::invalid(
                "Cannot update feedback value on an Expectation assessment.",
            ));
        }
        for path in ["assessment_name", "feedback", "expectation", "valid"] {
            if wants(path)
                && let Some(value) = update.get(path)
            {
                fields.insert(path.into(), value.clone());
            }
        }
        // Expectations have no rationale in MLflow.
        if wants("rationale") && !fields.contains_key("expectation") {
            match update.get("rationale") {
                Some(value) => fields.insert("rationale".into(), value.clone()),
                None => fields.remove("rationale"),
            };
        }
        if wants("metadata")
            && let Some(Value::Object(new)) = update.get("metadata")
        {
            let merged = fields
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(merged) = merged {
                for (key, value) in new {
                    merged.insert(key.clone(), value.clone());
                }
            }
        }
        fields.insert(
            "last_update_time".into(),
            Value::String(ms_to_rfc3339(now_ms())),
        );
        mlox_core::assessments::serialize_expectation_value(&mut body);
        self.write_assessment_body(&mut tx, trace_id, assessment_id, &body)
            .await?;
        tx.commit().await.map_err(db_err)?;
        Ok(body)
    }

    /// Deletes an assessment (nothing to do if it is gone); the one it overrode, if any, is
    /// valid again.
    pub async fn delete_assessment(&self, trace_id: &str, assessment_id: &str) -> Result<()> {
        self.get_trace_info(trace_id).await?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let Some(body) = self
            .assessment_body(&mut tx, trace_id, assessment_id)
            .await?
        else {
            return Ok(());
        };
        if let Some(old_id) = body.get("overrides").and_then(Value::as_str)
            && let Some(mut old) = self.assessment_body(&mut tx, trace_id, old_id).await?
        {
            set_valid(&mut old, true);
            self.write_assessment_body(&mut tx, trace_id, old_id, &old)
                .await?;
        }
        let mut sql = self.sql("DELETE FROM assessments WHERE trace_id = ");
        sql.bind_str(trace_id)
            .push(" AND assessment_id = ")
            .bind_str(assessment_id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    /// Links traces to a run after they were recorded (`mlflow.genai.evaluate` does this), so
    /// a search by `run_id` finds them. Ids of traces that do not exist are passed over; the
    /// run is not looked up, as MLflow does not look it up either.
    pub async fn link_traces_to_run(&self, trace_ids: &[String], run_id: &str) -> Result<()> {
        if trace_ids.is_empty() {
            return Ok(());
        }
        if trace_ids.len() > MAX_TRACE_LINKS_PER_REQUEST {
            return Err(Error::invalid(format!(
                "Cannot link more than {MAX_TRACE_LINKS_PER_REQUEST} traces to a run in a single \
                 request. Provided {} traces.",
                trace_ids.len()
            )));
        }
        // Neither the run nor the traces are looked up, as in MLflow: a client links a trace it
        // just finished, whose export may still be on its way.
        let mut sql = self.sql("INSERT INTO trace_run_links (trace_id, run_id) VALUES ");
        sql.bind_rows(trace_ids, |id| {
            [Bind::Str(id.clone()), Bind::Str(run_id.to_string())]
        });
        sql.push(" ON CONFLICT (trace_id, run_id) DO NOTHING");
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    /// The oldest traces of an experiment recorded at or before `max_timestamp_ms`, at most
    /// `max_traces` of them (all when `None`): what a delete by age removes.
    pub async fn traces_recorded_before(
        &self,
        experiment_id: &str,
        max_timestamp_ms: i64,
        max_traces: Option<i64>,
    ) -> Result<Vec<String>> {
        let exp = parse_experiment_id(experiment_id)?;
        let mut sql = self.sql("SELECT trace_id FROM traces WHERE experiment_id = ");
        sql.bind_i64(exp)
            .push(" AND request_time_ms <= ")
            .bind_i64(max_timestamp_ms)
            .push(" ORDER BY request_time_ms, trace_id");
        if let Some(limit) = max_traces {
            sql.push(" LIMIT ").bind_i64(limit);
        }
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows.iter().map(|row| get_str(row, "trace_id")).collect())
    }

    /// Deletes the given traces of an experiment with everything recorded under them, and
    /// says how many there were.
    pub async fn delete_traces(&self, experiment_id: &str, trace_ids: &[String]) -> Result<i64> {
        let exp = parse_experiment_id(experiment_id)?;
        let mut deleted = 0;
        for chunk in trace_ids.chunks(IN_LIST_CHUNK) {
            let mut tx = self.write.begin().await.map_err(db_err)?;
            for table in [
                "trace_tags",
                "assessments",
                "trace_metadata",
                "trace_run_links",
                "spans",
            ] {
                let mut sql = self.sql(&format!("DELETE FROM {table} WHERE trace_id IN "));
                sql.bind_list(chunk.iter().map(|s| Bind::Str(s.clone())));
                sql.query().execute(&mut *tx).await.map_err(db_err)?;
            }
            let mut sql = self.sql("DELETE FROM traces WHERE experiment_id = ");
            sql.bind_i64(exp).push(" AND trace_id IN ");
            sql.bind_list(chunk.iter().map(|s| Bind::Str(s.clone())));
            deleted += sql
                .query()
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected() as i64;
            tx.commit().await.map_err(db_err)?;
        }
        Ok(deleted)
    }
}
