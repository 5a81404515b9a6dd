//! Trace records (MLflow 3 `TraceInfo`), kept as the JSON document the client sent plus an
//! indexed experiment and time, with tags in their own table so they can change. Spans live
//! in the artifact store, where the client uploads them.

use crate::db::{Bind, IN_LIST_CHUNK, SqlStore, append_to_uri_path, db_err, get_str, now_ms};
use mlox_core::ids::{new_assessment_id, parse_experiment_id};
use mlox_core::{Error, Result, page_token};
use serde_json::{Map, Value, json};

pub const ARTIFACT_LOCATION_TAG: &str = "mlflow.artifactLocation";

fn parse_request_time_ms(info: &Value) -> i64 {
    // proto3 JSON timestamps: "2026-11-22T03:49:52.021Z"; fall back to now when absent or odd.
    info.get("request_time")
        .and_then(Value::as_str)
        .and_then(rfc3339_to_ms)
        .unwrap_or_else(now_ms)
}

fn rfc3339_to_ms(s: &str) -> Option<i64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    // Days from civil date (proleptic Gregorian), valid for all years we will meet.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(((days * 86400 + h * 3600 + min * 60) as f64 * 1000.0 + sec * 1000.0).round() as i64)
}

impl SqlStore {
    /// Stores a trace's info and returns it as the client should see it, with the artifact
    /// location tag the client needs to upload spans.
    pub async fn start_trace(&self, mut info: Value) -> Result<Value> {
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
        let experiment = self.active_experiment(&experiment_id).await?;
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
        let state = info
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("STATE_UNSPECIFIED")
            .to_string();
        let request_time = parse_request_time_ms(&info);
        let mut tx = self.write.begin().await.map_err(db_err)?;
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
        if let Some(Value::Object(tags)) = info.get("tags") {
            for (k, v) in tags {
                let mut sql = self.sql("INSERT INTO trace_tags (trace_id, key, value) VALUES (");
                sql.bind_str(&trace_id)
                    .push(", ")
                    .bind_str(k)
                    .push(", ")
                    .bind_str(v.as_str().unwrap_or_default());
                sql.push(") ON CONFLICT (trace_id, key) DO UPDATE SET value = excluded.value");
                sql.query().execute(&mut *tx).await.map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        self.get_trace_info(&trace_id).await
    }

    async fn trace_tags(&self, trace_id: &str) -> Result<Map<String, Value>> {
        let mut sql = self.sql("SELECT key, value FROM trace_tags WHERE trace_id = ");
        sql.bind_str(trace_id);
        Ok(sql
            .query()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| (get_str(r, "key"), Value::String(get_str(r, "value"))))
            .collect())
    }

    async fn trace_assessments(&self, trace_id: &str) -> Result<Vec<Value>> {
        let mut sql = self.sql("SELECT body FROM assessments WHERE trace_id = ");
        sql.bind_str(trace_id);
        Ok(sql
            .query()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?
            .iter()
            .filter_map(|r| serde_json::from_str(&get_str(r, "body")).ok())
            .collect())
    }

    pub async fn get_trace_info(&self, trace_id: &str) -> Result<Value> {
        let mut sql = self.sql("SELECT info FROM traces WHERE trace_id = ");
        sql.bind_str(trace_id);
        let Some(row) = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
        else {
            return Err(Error::not_found(format!(
                "Trace with ID {trace_id} is not found."
            )));
        };
        let mut info: Value =
            serde_json::from_str(&get_str(&row, "info")).unwrap_or_else(|_| json!({}));
        let tags = self.trace_tags(trace_id).await?;
        let assessments = self.trace_assessments(trace_id).await?;
        if let Some(obj) = info.as_object_mut() {
            obj.insert("tags".into(), Value::Object(tags));
            if !assessments.is_empty() {
                obj.insert("assessments".into(), Value::Array(assessments));
            }
        }
        Ok(info)
    }

    pub async fn search_traces(
        &self,
        experiment_ids: &[String],
        max_results: i64,
        token: Option<&str>,
    ) -> Result<(Vec<Value>, Option<String>)> {
        let ids: Vec<i64> = experiment_ids
            .iter()
            .map(|e| parse_experiment_id(e))
            .collect::<Result<_>>()?;
        if ids.is_empty() {
            return Ok((Vec::new(), None));
        }
        let offset = page_token::decode(token)?;
        let mut sql = self.sql("SELECT trace_id FROM traces WHERE experiment_id IN ");
        sql.bind_list(ids.into_iter().map(Bind::I64));
        sql.push(" ORDER BY request_time_ms DESC, trace_id LIMIT ")
            .bind_i64(max_results + 1);
        sql.push(" OFFSET ").bind_i64(offset as i64);
        let mut trace_ids: Vec<String> = sql
            .query()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| get_str(r, "trace_id"))
            .collect();
        let next = if trace_ids.len() as i64 > max_results {
            trace_ids.truncate(max_results as usize);
            Some(page_token::encode(offset + max_results as u64))
        } else {
            None
        };
        let mut out = Vec::with_capacity(trace_ids.len());
        for id in trace_ids {
            out.push(self.get_trace_info(&id).await?);
        }
        Ok((out, next))
    }

    pub async fn set_trace_tag(&self, trace_id: &str, key: &str, value: &str) -> Result<()> {
        self.get_trace_info(trace_id).await?;
        let mut sql = self.sql("INSERT INTO trace_tags (trace_id, key, value) VALUES (");
        sql.bind_str(trace_id)
            .push(", ")
            .bind_str(key)
            .push(", ")
            .bind_str(value);
        sql.push(") ON CONFLICT (trace_id, key) DO UPDATE SET value = excluded.value");
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
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

    pub async fn create_assessment(&self, trace_id: &str, mut assessment: Value) -> Result<Value> {
        self.get_trace_info(trace_id).await?;
        let id = new_assessment_id();
        if let Some(obj) = assessment.as_object_mut() {
            obj.insert("assessment_id".into(), Value::String(id.clone()));
            obj.insert("trace_id".into(), Value::String(trace_id.to_string()));
        }
        let mut sql = self.sql("INSERT INTO assessments (assessment_id, trace_id, body) VALUES (");
        sql.bind_str(&id)
            .push(", ")
            .bind_str(trace_id)
            .push(", ")
            .bind_str(assessment.to_string())
            .push(")");
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(assessment)
    }

    /// Trace ids and the experiments they belong to, for deleting traces in bulk.
    pub async fn delete_traces(&self, experiment_id: &str, trace_ids: &[String]) -> Result<i64> {
        let exp = parse_experiment_id(experiment_id)?;
        let mut deleted = 0;
        for chunk in trace_ids.chunks(IN_LIST_CHUNK) {
            let mut tx = self.write.begin().await.map_err(db_err)?;
            for table in ["trace_tags", "assessments"] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps_convert_to_epoch_ms() {
        assert_eq!(rfc3339_to_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_to_ms("2026-11-22T03:49:52.021Z"),
            Some(1795319392021)
        );
        assert_eq!(rfc3339_to_ms("garbage"), None);
    }
}
