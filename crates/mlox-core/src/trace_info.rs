//! MLflow's trace info documents as they travel: proto3-JSON timestamps and durations, and
//! the deprecated v2 shape (`request_id`, `timestamp_ms`, `status`, key/value lists) that
//! older clients still send and read, converted to and from the v3 document mlox stores.

use serde_json::{Map, Value, json};

pub fn rfc3339_to_ms(s: &str) -> Option<i64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec: f64 = t.next()?.parse().ok()?;
    let days = days_from_civil(y, m, day);
    Some(((days * 86400 + h * 3600 + min * 60) as f64 * 1000.0 + sec * 1000.0).round() as i64)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the inverse of [`civil_date`]).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
pub fn civil_date(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Epoch milliseconds as a proto3-JSON timestamp (`"2026-11-22T03:49:52.021Z"`).
pub fn ms_to_rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// A proto3-JSON duration (`"1.5s"`) in whole milliseconds.
pub fn duration_to_ms(text: &str) -> Option<i64> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    seconds
        .is_finite()
        .then(|| (seconds * 1000.0).round() as i64)
}

/// Milliseconds as a proto3-JSON duration (`"1.500s"`, `"2s"`).
pub fn duration_text(ms: i64) -> String {
    let ms = ms.max(0);
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// A v2 trace status (`OK`, `ERROR`, `IN_PROGRESS`, `TRACE_STATUS_UNSPECIFIED`) as the v3
/// state it stands for.
pub fn state_of_v2_status(status: &str) -> &'static str {
    match status {
        "OK" => "OK",
        "ERROR" => "ERROR",
        "IN_PROGRESS" => "IN_PROGRESS",
        _ => "STATE_UNSPECIFIED",
    }
}

/// The entries of a string map of a trace info (tags, metadata), values that are not text
/// written as JSON.
pub fn string_entries(map: Option<&Value>) -> Vec<(String, String)> {
    map.and_then(Value::as_object)
        .map(|entries| {
            entries
                .iter()
                .map(|(key, value)| {
                    let value = match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    (key.clone(), value)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn key_value_list(map: Option<&Value>) -> Value {
    Value::Array(
        string_entries(map)
            .into_iter()
            .map(|(key, value)| json!({"key": key, "value": value}))
            .collect(),
    )
}

/// The `{key, value}` list of a v2 message as a map (the last of repeated keys wins).
pub fn map_of_key_values(list: &[Value]) -> Map<String, Value> {
    list.iter()
        .filter_map(|entry| {
            let key = entry.get("key")?.as_str()?.to_string();
            let value = match entry.get("value") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            Some((key, Value::String(value)))
        })
        .collect()
}

/// A stored (v3) trace info in the v2 shape.
pub fn v2_of(info: &Value) -> Value {
    let request_time = info
        .get("request_time")
        .and_then(Value::as_str)
        .and_then(rfc3339_to_ms)
        .unwrap_or(0);
    let execution_time = info
        .get("execution_duration")
        .and_then(Value::as_str)
        .and_then(duration_to_ms)
        .unwrap_or(0);
    let status = info
        .get("state")
        .and_then(Value::as_str)
        .filter(|state| matches!(*state, "OK" | "ERROR" | "IN_PROGRESS"))
        .unwrap_or("TRACE_STATUS_UNSPECIFIED");
    json!({
        "request_id": info.get("trace_id").cloned().unwrap_or(Value::Null),
        "experiment_id": info
            .pointer("/trace_location/mlflow_experiment/experiment_id")
            .cloned()
            .unwrap_or(Value::Null),
        "timestamp_ms": request_time,
        "execution_time_ms": execution_time,
        "status": status,
        "request_metadata": key_value_list(info.get("trace_metadata")),
        "tags": key_value_list(info.get("tags")),
    })
}

/// The v3 info of a trace started through the v2 API.
pub fn started_v2(
    request_id: &str,
    experiment_id: &str,
    timestamp_ms: i64,
    metadata: Map<String, Value>,
    tags: Map<String, Value>,
) -> Value {
    json!({
        "trace_id": request_id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": experiment_id},
        },
        "request_time": ms_to_rfc3339(timestamp_ms),
        "execution_duration": duration_text(0),
        "state": "IN_PROGRESS",
        "trace_metadata": metadata,
        "tags": tags,
    })
}

/// A stored info ended through the v2 API at `end_ms` with `status`, its metadata and tags
/// merged with the ones given.
pub fn ended_v2(
    mut info: Value,
    end_ms: i64,
    status: &str,
    metadata: Map<String, Value>,
    tags: Map<String, Value>,
) -> Value {
    let start = info
        .get("request_time")
        .and_then(Value::as_str)
        .and_then(rfc3339_to_ms)
        .unwrap_or(end_ms);
    info["execution_duration"] = json!(duration_text(end_ms - start));
    info["state"] = json!(state_of_v2_status(status));
    for (field, added) in [("trace_metadata", metadata), ("tags", tags)] {
        let mut merged = info
            .get(field)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        merged.extend(added);
        info[field] = Value::Object(merged);
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_ms_render_as_rfc3339_and_read_back() {
        assert_eq!(ms_to_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(ms_to_rfc3339(1795319392021), "2026-11-22T03:49:52.021Z");
        for ms in [-86_400_001, 951_782_400_000, 4_102_444_800_999] {
            assert_eq!(rfc3339_to_ms(&ms_to_rfc3339(ms)), Some(ms));
        }
    }

    #[test]
    fn durations_read_as_milliseconds() {
        assert_eq!(duration_to_ms("1.5s"), Some(1500));
        assert_eq!(duration_to_ms("0.000340s"), Some(0));
        assert_eq!(duration_to_ms("12s"), Some(12000));
        assert_eq!(duration_to_ms("12"), None);
        assert_eq!(duration_to_ms("NaNs"), None);
    }

    #[test]
    fn rfc3339_timestamps_convert_to_epoch_ms() {
        assert_eq!(rfc3339_to_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_to_ms("2026-11-22T03:49:52.021Z"),
            Some(1795319392021)
        );
        assert_eq!(rfc3339_to_ms("garbage"), None);
    }

    #[test]
    fn a_trace_started_and_ended_through_v2_reads_back_in_v2() {
        let started = started_v2(
            "abc",
            "7",
            1000,
            map_of_key_values(&[json!({"key": "meta1", "value": "apple"})]),
            map_of_key_values(&[json!({"key": "tag1", "value": "football"})]),
        );
        let ended = ended_v2(
            started,
            3000,
            "OK",
            map_of_key_values(&[json!({"key": "meta2", "value": "grape"})]),
            Map::new(),
        );
        assert_eq!(
            v2_of(&ended),
            json!({
                "request_id": "abc",
                "experiment_id": "7",
                "timestamp_ms": 1000,
                "execution_time_ms": 2000,
                "status": "OK",
                "request_metadata": [
                    {"key": "meta1", "value": "apple"},
                    {"key": "meta2", "value": "grape"},
                ],
                "tags": [{"key": "tag1", "value": "football"}],
            })
        );
    }
}
