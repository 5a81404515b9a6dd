//! The input rules MLflow enforces on what clients log, with its limits and its messages, so a
//! script that fails against MLflow fails the same way here (and one that passes, passes).

use crate::entities::{KeyValue, Metric};
use crate::{Error, Result};

pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
pub const MAX_METRICS_PER_BATCH: usize = 1000;
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
pub const MAX_BATCH_LOG_REQUEST_SIZE: usize = 1_000_000;
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
pub const MAX_EXPERIMENT_TAG_KEY_LENGTH: usize = 250;
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
pub const MAX_REGISTRY_TAG_KEY_LENGTH: usize = 250;
pub const MAX_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
pub const MAX_DATASET_NAME_SIZE: usize = 500;
pub const MAX_DATASET_DIGEST_SIZE: usize = 36;
pub const MAX_DATASET_SCHEMA_SIZE: usize = 1_048_575;
pub const MAX_DATASET_SOURCE_SIZE: usize = 65_535;
pub const MAX_DATASET_PROFILE_SIZE: usize = 16_777_215;
pub const MAX_INPUT_TAG_KEY_SIZE: usize = 255;
pub const MAX_INPUT_TAG_VALUE_SIZE: usize = 500;

fn json_str(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

pub fn invalid_value(path: &str, value: &str, message: Option<&str>) -> Error {
    let shown = json_str(value);
    Error::invalid(match message {
        Some(m) => format!("Invalid value {shown} for parameter '{path}' supplied: {m}"),
        None => format!("Invalid value {shown} for parameter '{path}' supplied."),
    })
}

pub fn missing_value(path: &str) -> Error {
    Error::invalid(format!("Missing value for required parameter '{path}'."))
}

/// A required field absent from an API request, worded as MLflow's request validation does.
pub fn missing_request_parameter(path: &str) -> Error {
    Error::invalid(format!(
        "Missing value for required parameter '{path}'. See the API docs for more information \
         about request parameters."
    ))
}

fn exceeds_maximum_length(path: &str, limit: usize) -> Error {
    Error::invalid(format!(
        "'{path}' exceeds the maximum length of {limit} characters"
    ))
}

fn join_path(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

const BAD_CHARACTERS: &str = "Names may only contain alphanumerics, underscores (_), dashes (-), \
                              periods (.), spaces ( ), colon(:) and slashes (/).";

/// Keys become file names in some stores, so MLflow keeps them to a safe alphabet and refuses
/// names that a path normalisation would change.
fn validate_key_name(name: &str, path: &str) -> Result<()> {
    let good_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':'));
    if !good_chars {
        return Err(invalid_value(path, name, Some(BAD_CHARACTERS)));
    }
    if !is_normalised_relative_path(name) {
        let message = format!(
            "Names may be treated as files in certain cases, and must not resolve to other names \
             when treated as such. This name would resolve to '{}'",
            normalise_posix(name)
        );
        return Err(invalid_value(path, name, Some(&message)));
    }
    Ok(())
}

fn is_normalised_relative_path(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn normalise_posix(name: &str) -> String {
    let absolute = name.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in name.split('/') {
        match seg {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

fn check_length(path: &str, limit: usize, value: &str) -> Result<()> {
    if value.chars().count() > limit {
        Err(exceeds_maximum_length(path, limit))
    } else {
        Ok(())
    }
}

/// MLflow truncates over-long param and tag values (with a warning) rather than failing.
fn truncate_chars(value: &str, limit: usize) -> String {
    match value.char_indices().nth(limit) {
        Some((idx, _)) => value[..idx].to_string(),
        None => value.to_string(),
    }
}

pub fn validate_metric(metric: &Metric, path: &str) -> Result<()> {
    validate_key_name(&metric.key, &join_path(path, "name"))?;
    if metric.timestamp < 0 {
        return Err(invalid_value(
            &join_path(path, "timestamp"),
            &metric.timestamp.to_string(),
            Some(&format!(
                "metric '{}' (value={}). Timestamp must be a nonnegative long (64-bit integer) ",
                metric.key, metric.value
            )),
        ));
    }
    check_length("Metric name", MAX_ENTITY_KEY_LENGTH, &metric.key)
}

/// Validates a param and returns it with its value cut to MLflow's limit.
pub fn validate_param(param: &KeyValue, path: &str) -> Result<KeyValue> {
    validate_key_name(&param.key, &join_path(path, "key"))?;
    check_length("Param key", MAX_ENTITY_KEY_LENGTH, &param.key)?;
    Ok(KeyValue::new(
        param.key.clone(),
        truncate_chars(&param.value, MAX_PARAM_VAL_LENGTH),
    ))
}

/// Validates a run tag and returns it with its value cut to MLflow's limit.
pub fn validate_run_tag(tag: &KeyValue, path: &str) -> Result<KeyValue> {
    validate_key_name(&tag.key, &join_path(path, "key"))?;
    check_length(&join_path(path, "key"), MAX_ENTITY_KEY_LENGTH, &tag.key)?;
    Ok(KeyValue::new(
        tag.key.clone(),
        truncate_chars(&tag.value, MAX_TAG_VAL_LENGTH),
    ))
}

pub fn validate_experiment_tag(tag: &KeyValue) -> Result<()> {
    validate_key_name(&tag.key, "key")?;
    check_length("key", MAX_EXPERIMENT_TAG_KEY_LENGTH, &tag.key)?;
    check_length("value", MAX_EXPERIMENT_TAG_VAL_LENGTH, &tag.value)
}

pub fn validate_registry_tag(tag: &KeyValue) -> Result<()> {
    validate_key_name(&tag.key, "key")?;
    check_length("key", MAX_REGISTRY_TAG_KEY_LENGTH, &tag.key)?;
    check_length("value", MAX_REGISTRY_TAG_VALUE_LENGTH, &tag.value)
}

/// Logged-model tags follow the run-tag alphabet; their values are not truncated.
pub fn validate_logged_model_tag(tag: &KeyValue) -> Result<()> {
    validate_key_name(&tag.key, "key")?;
    check_length("key", MAX_ENTITY_KEY_LENGTH, &tag.key)?;
    check_length("value", MAX_TAG_VAL_LENGTH, &tag.value)
}

pub fn validate_experiment_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("Invalid experiment name: '{name}'")));
    }
    check_length("name", MAX_EXPERIMENT_NAME_LENGTH, name)
}

fn check_batch_limit(entity: &str, limit: usize, len: usize) -> Result<()> {
    if len > limit {
        return Err(Error::invalid(format!(
            "A batch logging request can contain at most {limit} {entity}. Got {len} {entity}. \
             Please split up {entity} across multiple requests and try again."
        )));
    }
    Ok(())
}

pub fn validate_batch_limits(metrics: usize, params: usize, tags: usize) -> Result<()> {
    check_batch_limit("metrics", MAX_METRICS_PER_BATCH, metrics)?;
    check_batch_limit("params", MAX_PARAMS_TAGS_PER_BATCH, params)?;
    check_batch_limit("tags", MAX_PARAMS_TAGS_PER_BATCH, tags)?;
    check_batch_limit(
        "metrics, params, and tags",
        MAX_ENTITIES_PER_BATCH,
        metrics + params + tags,
    )
}

/// Most runs one `metrics/get-history-bulk` call may name, as in MLflow's handler.
pub const MAX_RUNS_PER_HISTORY_BULK: usize = 100;
/// Most points one `metrics/get-history-bulk` call returns; a larger `max_results` is lowered.
pub const MAX_POINTS_PER_HISTORY_BULK: i64 = 25_000;

/// The checks MLflow's `get-history-bulk` handler makes, in its order and words.
pub fn validate_metric_history_bulk(run_ids: &[String], metric_key: Option<&str>) -> Result<()> {
    if run_ids.is_empty() {
        return Err(Error::invalid(
            "GetMetricHistoryBulk request must specify at least one run_id.",
        ));
    }
    if run_ids.len() > MAX_RUNS_PER_HISTORY_BULK {
        return Err(Error::invalid(format!(
            "GetMetricHistoryBulk request cannot specify more than {MAX_RUNS_PER_HISTORY_BULK} \
             run_ids. Received {} run_ids.",
            run_ids.len()
        )));
    }
    if metric_key.is_none() {
        return Err(Error::invalid(
            "GetMetricHistoryBulk request must specify a metric_key.",
        ));
    }
    Ok(())
}

/// Most experiments one `experiments/search-datasets` call may name, as in MLflow's handler.
pub const MAX_EXPERIMENTS_PER_DATASET_SEARCH: usize = 20;

pub fn validate_dataset_search(experiment_ids: &[String]) -> Result<()> {
    if experiment_ids.is_empty() {
        return Err(Error::invalid(
            "SearchDatasets request must specify at least one experiment_id.",
        ));
    }
    if experiment_ids.len() > MAX_EXPERIMENTS_PER_DATASET_SEARCH {
        return Err(Error::invalid(format!(
            "SearchDatasets request cannot specify more than \
             {MAX_EXPERIMENTS_PER_DATASET_SEARCH} experiment_ids. Received {} experiment_ids.",
            experiment_ids.len()
        )));
    }
    Ok(())
}

pub fn validate_param_keys_unique(params: &[KeyValue]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    let dupes: Vec<&str> = params
        .iter()
        .filter(|p| !seen.insert(p.key.as_str()))
        .map(|p| p.key.as_str())
        .collect();
    if dupes.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Duplicate parameter keys have been submitted: {dupes:?}. Please ensure the request \
         contains only one param value per param key."
    )))
}

pub fn validate_dataset(dataset: &crate::entities::Dataset) -> Result<()> {
    check_length("name", MAX_DATASET_NAME_SIZE, &dataset.name)?;
    check_length("digest", MAX_DATASET_DIGEST_SIZE, &dataset.digest)?;
    check_length("source", MAX_DATASET_SOURCE_SIZE, &dataset.source)?;
    if let Some(schema) = &dataset.schema {
        check_length("schema", MAX_DATASET_SCHEMA_SIZE, schema)?;
    }
    if let Some(profile) = &dataset.profile {
        check_length("profile", MAX_DATASET_PROFILE_SIZE, profile)?;
    }
    Ok(())
}

pub fn validate_input_tag(tag: &KeyValue) -> Result<()> {
    check_length("key", MAX_INPUT_TAG_KEY_SIZE, &tag.key)?;
    check_length("value", MAX_INPUT_TAG_VALUE_SIZE, &tag.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(key: &str, ts: i64) -> Metric {
        Metric {
            key: key.into(),
            value: 1.0,
            timestamp: ts,
            step: 0,
            dataset_name: None,
            dataset_digest: None,
            model_id: None,
            run_id: None,
        }
    }

    #[test]
    fn ordinary_keys_are_accepted() {
        for key in [
            "rmse",
            "system/cpu_utilization_percentage",
            "a b:c-d.e_f",
            "ключ",
        ] {
            validate_metric(&metric(key, 0), "").unwrap();
            validate_param(&KeyValue::new(key, "v"), "").unwrap();
        }
    }

    #[test]
    fn keys_that_would_resolve_to_other_paths_are_refused() {
        for key in ["../x", "a//b", "/abs", "a/", "./a", "a/./b", ".", ""] {
            let err = validate_param(&KeyValue::new(key, "v"), "").unwrap_err();
            assert_eq!(err.code, crate::Code::InvalidParameterValue, "{key:?}");
        }
        let err = validate_param(&KeyValue::new("a//b", "v"), "").unwrap_err();
        assert!(
            err.message.contains("would resolve to 'a/b'"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_characters_name_the_alphabet() {
        let err = validate_metric(&metric("a*b", 0), "metrics[3]").unwrap_err();
        assert_eq!(
            err.message,
            "Invalid value \"a*b\" for parameter 'metrics[3].name' supplied: Names may only \
             contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), \
             colon(:) and slashes (/)."
        );
    }

    #[test]
    fn negative_timestamps_are_refused() {
        assert!(validate_metric(&metric("m", -1), "").is_err());
    }

    #[test]
    fn long_values_are_truncated_and_long_keys_refused() {
        let p = validate_param(&KeyValue::new("k", "x".repeat(7000)), "").unwrap();
        assert_eq!(p.value.len(), MAX_PARAM_VAL_LENGTH);
        let t = validate_run_tag(&KeyValue::new("k", "é".repeat(9000)), "").unwrap();
        assert_eq!(t.value.chars().count(), MAX_TAG_VAL_LENGTH);
        let err = validate_param(&KeyValue::new("k".repeat(251), "v"), "").unwrap_err();
        assert_eq!(
            err.message,
            "'Param key' exceeds the maximum length of 250 characters"
        );
    }

    #[test]
    fn batch_limits_match_mlflow() {
        validate_batch_limits(1000, 0, 0).unwrap();
        let err = validate_batch_limits(1001, 0, 0).unwrap_err();
        assert!(
            err.message
                .starts_with("A batch logging request can contain at most 1000 metrics")
        );
        assert!(validate_batch_limits(0, 101, 0).is_err());
        assert!(validate_batch_limits(900, 100, 1).is_err());
    }

    #[test]
    fn duplicate_param_keys_in_one_batch_are_refused() {
        let params = [KeyValue::new("a", "1"), KeyValue::new("a", "2")];
        assert!(validate_param_keys_unique(&params).is_err());
    }

    #[test]
    fn posix_normalisation_matches_python() {
        assert_eq!(normalise_posix("a//b/"), "a/b");
        assert_eq!(normalise_posix("../x"), "../x");
        assert_eq!(normalise_posix("a/../.."), "..");
        assert_eq!(normalise_posix("/a/../../b"), "/b");
        assert_eq!(normalise_posix(""), ".");
    }
}

/// What a delete-traces request names: traces older than a time (optionally only the oldest
/// `max_traces`) or a list of ids, never both; MLflow's rules and wording.
pub fn validate_trace_deletion(
    max_timestamp_millis: Option<i64>,
    max_traces: Option<i64>,
    names_trace_ids: bool,
) -> Result<()> {
    if max_timestamp_millis.is_none() && !names_trace_ids {
        return Err(Error::invalid(
            "Either `max_timestamp_millis` or `trace_ids` must be specified.",
        ));
    }
    if max_timestamp_millis.is_some() && names_trace_ids {
        return Err(Error::invalid(
            "Only one of `max_timestamp_millis` and `trace_ids` can be specified.",
        ));
    }
    if names_trace_ids && max_traces.is_some() {
        return Err(Error::invalid(
            "`max_traces` can't be specified if `trace_ids` is specified.",
        ));
    }
    if let Some(n) = max_traces.filter(|n| *n <= 0) {
        return Err(Error::invalid(format!(
            "`max_traces` must be a positive integer, received {n}."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod trace_deletion_tests {
    use super::validate_trace_deletion;

    #[test]
    fn a_deletion_names_either_an_age_or_ids() {
        assert!(validate_trace_deletion(Some(1), None, false).is_ok());
        assert!(validate_trace_deletion(Some(1), Some(2), false).is_ok());
        assert!(validate_trace_deletion(None, None, true).is_ok());
        for (max_ts, max_traces, ids, message) in [
            (
                None,
                None,
                false,
                "Either `max_timestamp_millis` or `trace_ids` must be specified.",
            ),
            (
                Some(1),
                None,
                true,
                "Only one of `max_timestamp_millis` and `trace_ids` can be specified.",
            ),
            (
                None,
                Some(1),
                true,
                "`max_traces` can't be specified if `trace_ids` is specified.",
            ),
            (
                Some(1),
                Some(0),
                false,
                "`max_traces` must be a positive integer, received 0.",
            ),
        ] {
            assert_eq!(
                validate_trace_deletion(max_ts, max_traces, ids)
                    .unwrap_err()
                    .message,
                message
            );
        }
    }
}
