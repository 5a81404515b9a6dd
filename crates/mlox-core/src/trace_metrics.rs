//! Metrics over an experiment's traces, spans and assessments (MLflow 3's
//! `/api/3.0/mlflow/traces/metrics`): which metrics, aggregations and dimensions each view
//! offers (MLflow's table, with its messages), the filter grammar
//! (`trace.status = 'OK'`, `trace.tag.<key> = '…'`, `span.type = 'LLM'`, …), and the
//! aggregation of the facts a store found into data points: grouped by time bucket and
//! dimensions in that order, null groups dropped, percentiles interpolated linearly as
//! PostgreSQL's `PERCENTILE_CONT` does.

use std::collections::BTreeMap;

use crate::{Error, Result};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewType {
    Traces,
    Spans,
    Assessments,
}

impl ViewType {
    pub fn parse(value: &serde_json::Value) -> Result<ViewType> {
        match value {
            serde_json::Value::String(s) if s == "TRACES" => Ok(ViewType::Traces),
            serde_json::Value::String(s) if s == "SPANS" => Ok(ViewType::Spans),
            serde_json::Value::String(s) if s == "ASSESSMENTS" => Ok(ViewType::Assessments),
            serde_json::Value::Number(n) if n.as_i64() == Some(1) => Ok(ViewType::Traces),
            serde_json::Value::Number(n) if n.as_i64() == Some(2) => Ok(ViewType::Spans),
            serde_json::Value::Number(n) if n.as_i64() == Some(3) => Ok(ViewType::Assessments),
            other => Err(Error::invalid(format!(
                "view_type must be one of ['TRACES', 'SPANS', 'ASSESSMENTS'], got {other}"
            ))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AggregationType {
    Count,
    Sum,
    Avg,
    Percentile,
    Min,
    Max,
}

impl AggregationType {
    const NAMES: [(&'static str, AggregationType); 6] = [
        ("COUNT", AggregationType::Count),
        ("SUM", AggregationType::Sum),
        ("AVG", AggregationType::Avg),
        ("PERCENTILE", AggregationType::Percentile),
        ("MIN", AggregationType::Min),
        ("MAX", AggregationType::Max),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("COUNT", |(n, _)| n)
    }

    /// The proto enum by name or number (`COUNT` is 1).
    pub fn parse(value: &serde_json::Value) -> Result<AggregationType> {
        let found = match value {
            serde_json::Value::String(s) => Self::NAMES.iter().find(|(n, _)| n == s),
            serde_json::Value::Number(n) => n
                .as_u64()
                .and_then(|i| Self::NAMES.get((i as usize).wrapping_sub(1))),
            _ => None,
        };
        found.map(|(_, t)| *t).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid aggregation_type {value}: expected one of COUNT, SUM, AVG, PERCENTILE, MIN, MAX"
            ))
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Aggregation {
    pub kind: AggregationType,
    pub percentile: Option<f64>,
}

impl Aggregation {
    pub fn new(kind: AggregationType, percentile: Option<f64>) -> Result<Aggregation> {
        match (kind, percentile) {
            (AggregationType::Percentile, None) => Err(Error::invalid(
                "Percentile value is required for PERCENTILE aggregation",
            )),
            (AggregationType::Percentile, Some(p)) if !(0.0..=100.0).contains(&p) => {
                Err(Error::invalid(format!(
                    "Percentile value must be between 0 and 100, got {p}"
                )))
            }
            (AggregationType::Percentile, Some(_)) | (_, None) => {
                Ok(Aggregation { kind, percentile })
            }
            (other, Some(_)) => Err(Error::invalid(format!(
                "Percentile value is only allowed for PERCENTILE aggregation type, got {}",
                other.name()
            ))),
        }
    }

    /// The key of the aggregation's value in a data point: `COUNT`, …, `P50.0`, `P99.9`.
    pub fn label(&self) -> String {
        match (self.kind, self.percentile) {
            (AggregationType::Percentile, Some(p)) if p.fract() == 0.0 => format!("P{p:.1}"),
            (AggregationType::Percentile, Some(p)) => format!("P{p}"),
            (kind, _) => kind.name().to_string(),
        }
    }
}

use AggregationType::{Avg, Count, Max, Min, Percentile, Sum};

const STATS: &[AggregationType] = &[Avg, Min, Max, Percentile];
const TOTALS: &[AggregationType] = &[Sum, Avg, Min, Max, Percentile];

/// The metrics of a view: (name, aggregations, dimensions), as MLflow offers them.
fn metrics_of(
    view: ViewType,
) -> &'static [(
    &'static str,
    &'static [AggregationType],
    &'static [&'static str],
)] {
    match view {
        ViewType::Traces => &[
            ("trace_count", &[Count], &["trace_name", "trace_status"]),
            ("session_count", &[Count], &[]),
            ("latency", STATS, &["trace_name"]),
            ("input_tokens", TOTALS, &["trace_name"]),
            ("output_tokens", TOTALS, &["trace_name"]),
            ("total_tokens", TOTALS, &["trace_name"]),
            ("cache_read_input_tokens", TOTALS, &["trace_name"]),
            ("cache_creation_input_tokens", TOTALS, &["trace_name"]),
        ],
        ViewType::Spans => &[
            (
                "span_count",
                &[Count],
                &[
                    "span_name",
                    "span_type",
                    "span_status",
                    "span_model_name",
                    "span_model_provider",
                ],
            ),
            ("latency", STATS, &["span_name", "span_status"]),
            (
                "input_cost",
                TOTALS,
                &["span_model_name", "span_model_provider"],
            ),
            (
                "output_cost",
                TOTALS,
                &["span_model_name", "span_model_provider"],
            ),
            (
                "total_cost",
                TOTALS,
                &["span_model_name", "span_model_provider"],
            ),
        ],
        ViewType::Assessments => &[
            (
                "assessment_count",
                &[Count],
                &["assessment_name", "assessment_value"],
            ),
            ("assessment_value", STATS, &["assessment_name"]),
        ],
    }
}

fn quoted_list(items: impl IntoIterator<Item = String>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", items.join(", "))
}

/// MLflow's checks of a query: the metric belongs to the view, and its aggregations and
/// dimensions are the metric's.
pub fn validate(
    view: ViewType,
    metric: &str,
    aggregations: &[Aggregation],
    dimensions: &[String],
) -> Result<()> {
    let metrics = metrics_of(view);
    let Some((_, allowed_aggregations, allowed_dimensions)) =
        metrics.iter().find(|(name, _, _)| *name == metric)
    else {
        return Err(Error::invalid(format!(
            "metric_name must be one of {}, got '{metric}'",
            quoted_list(metrics.iter().map(|(n, _, _)| n.to_string()))
        )));
    };
    let mut invalid: Vec<&str> = aggregations
        .iter()
        .map(|a| a.kind)
        .filter(|k| !allowed_aggregations.contains(k))
        .map(AggregationType::name)
        .collect();
    if !invalid.is_empty() {
        invalid.sort_unstable();
        invalid.dedup();
        let mut supported: Vec<&str> = allowed_aggregations.iter().map(|a| a.name()).collect();
        supported.sort_unstable();
        return Err(Error::invalid(format!(
            "Found invalid aggregation_type(s): {}. Supported aggregation types: {}",
            quoted_list(invalid.into_iter().map(String::from)),
            quoted_list(supported.into_iter().map(String::from))
        )));
    }
    let mut invalid: Vec<&String> = dimensions
        .iter()
        .filter(|d| !allowed_dimensions.contains(&d.as_str()))
        .collect();
    if !invalid.is_empty() {
        invalid.sort_unstable();
        invalid.dedup();
        let mut supported: Vec<&str> = allowed_dimensions.to_vec();
        supported.sort_unstable();
        return Err(Error::invalid(format!(
            "Found invalid dimension(s): {}. Supported dimensions: {}",
            quoted_list(invalid.into_iter().cloned()),
            quoted_list(supported.into_iter().map(String::from))
        )));
    }
    Ok(())
}

/// One filter: `<view>.<entity>[.<key>] = '<value>'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricFilter {
    TraceStatus(String),
    TraceTag(String, String),
    TraceMetadata(String, String),
    SpanName(String),
    SpanStatus(String),
    SpanType(String),
    AssessmentName(String),
    AssessmentType(String),
}

fn unquote(text: &str) -> Option<&str> {
    let text = text.trim();
    ["'", "\""].iter().find_map(|q| {
        text.strip_prefix(q)
            .and_then(|t| t.strip_suffix(q))
            .filter(|t| !t.contains(q))
    })
}

fn strip_backticks(text: &str) -> &str {
    text.strip_prefix('`')
        .and_then(|t| t.strip_suffix('`'))
        .unwrap_or(text)
}

/// Parses one filter clause; only `=` is a metrics filter's comparator, as in MLflow.
pub fn parse_filter(filter: &str) -> Result<MetricFilter> {
    let Some((identifier, value)) = filter.split_once('=') else {
        return Err(Error::invalid(format!(
            "Invalid filter: '{filter}'. Expected one filter clause."
        )));
    };
    let identifier = identifier.trim();
    if identifier.ends_with(['!', '<', '>']) {
        return Err(Error::invalid(format!(
            "Invalid filter: '{filter}'. Only '=' is supported."
        )));
    }
    let value = unquote(value)
        .ok_or_else(|| {
            Error::invalid(format!(
                "Expected a quoted string value (e.g. 'my-value'). Got value {}",
                value.trim()
            ))
        })?
        .to_string();
    let parts: Vec<&str> = identifier.splitn(3, '.').collect();
    let invalid_identifier = || {
        Error::invalid(format!(
            "Invalid identifier '{identifier}'. Columns should be specified as 'trace.<key>', \
             'span.<key>', 'assessment.<key>'."
        ))
    };
    let (view, entity, key) = match parts.as_slice() {
        [view, entity] => (strip_backticks(view), *entity, None),
        [view, entity, key] => {
            let key = strip_backticks(unquote(key).unwrap_or(key)).to_string();
            (strip_backticks(view), *entity, Some(key))
        }
        _ => return Err(invalid_identifier()),
    };
    let needs_key = |entity: &str| matches!(entity, "tag" | "metadata");
    let entities: &[&str] = match view {
        "trace" => &["status", "tag", "metadata"],
        "span" => &["name", "status", "type"],
        "assessment" => &["name", "type"],
        other => {
            return Err(Error::invalid(format!(
                "Invalid view type '{other}'. Valid values are ['trace', 'span', 'assessment']"
            )));
        }
    };
    if !entities.contains(&entity) {
        return Err(Error::invalid(format!(
            "Invalid entity '{entity}' specified for view type '{view}'. Valid entities are {}",
            quoted_list(entities.iter().map(|e| e.to_string()))
        )));
    }
    match (needs_key(entity), &key) {
        (true, None) => {
            return Err(Error::invalid(format!(
                "Filtering by {entity} requires a key, e.g. '{view}.{entity}.<key> = <value>'"
            )));
        }
        (false, Some(_)) => {
            return Err(Error::invalid(format!(
                "Filtering by {entity} does not require a key, use '{view}.{entity}' instead"
            )));
        }
        _ => {}
    }
    let key = key.unwrap_or_default();
    Ok(match (view, entity) {
        ("trace", "status") => MetricFilter::TraceStatus(value),
        ("trace", "tag") => MetricFilter::TraceTag(key, value),
        ("trace", "metadata") => MetricFilter::TraceMetadata(key, value),
        ("span", "name") => MetricFilter::SpanName(value),
        ("span", "status") => MetricFilter::SpanStatus(value),
        ("span", "type") => MetricFilter::SpanType(value),
        ("assessment", "name") => MetricFilter::AssessmentName(value),
        _ => MetricFilter::AssessmentType(value),
    })
}

/// Span filters on another view, and assessment filters on another view, are refused.
pub fn check_filter_view(filter: &MetricFilter, view: ViewType) -> Result<()> {
    let span = matches!(
        filter,
        MetricFilter::SpanName(_) | MetricFilter::SpanStatus(_) | MetricFilter::SpanType(_)
    );
    let assessment = matches!(
        filter,
        MetricFilter::AssessmentName(_) | MetricFilter::AssessmentType(_)
    );
    if span && view != ViewType::Spans {
        return Err(Error::invalid(format!(
            "Filtering by span is only supported for SPANS view type, got {}",
            view_name(view)
        )));
    }
    if assessment && view != ViewType::Assessments {
        return Err(Error::invalid(format!(
            "Filtering by assessment is only supported for ASSESSMENTS view type, got {}",
            view_name(view)
        )));
    }
    Ok(())
}

fn view_name(view: ViewType) -> &'static str {
    match view {
        ViewType::Traces => "TRACES",
        ViewType::Spans => "SPANS",
        ViewType::Assessments => "ASSESSMENTS",
    }
}

/// One row a store found: when it happened, the metric's value (`None` counts as absent, as
/// SQL's aggregates skip NULL), an optional distinct key (sessions are counted distinct), and
/// the requested dimensions' values in their order.
#[derive(Clone, Debug, PartialEq)]
pub struct Fact {
    pub timestamp_ms: i64,
    pub value: Option<f64>,
    pub distinct: Option<String>,
    pub dimensions: Vec<Option<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataPoint {
    pub metric_name: String,
    pub dimensions: BTreeMap<String, String>,
    pub values: BTreeMap<String, f64>,
}

/// What a query asks of the facts.
pub struct Query<'a> {
    pub metric: &'a str,
    pub aggregations: &'a [Aggregation],
    pub dimensions: &'a [String],
    pub time_interval_seconds: Option<i64>,
    pub max_results: usize,
    /// Count distinct `Fact::distinct` keys instead of values (session counts).
    pub count_distinct: bool,
}

/// Data points grouped by time bucket (ISO 8601) and the dimensions, ordered by them.
pub fn aggregate(query: &Query, facts: Vec<Fact>) -> Vec<DataPoint> {
    let bucketed = query.time_interval_seconds.filter(|s| *s > 0);
    let grouped = bucketed.is_some() || !query.dimensions.is_empty();
    let mut groups: BTreeMap<(Option<i64>, Vec<String>), Vec<Fact>> = BTreeMap::new();
    if !grouped {
        // SQL without GROUP BY answers one row even over nothing (COUNT is 0).
        groups.insert((None, Vec::new()), Vec::new());
    }
    for fact in facts {
        if fact.value.is_none() && !query.count_distinct {
            continue;
        }
        if query.count_distinct && fact.distinct.is_none() {
            continue;
        }
        let Some(dims) = fact
            .dimensions
            .iter()
            .cloned()
            .collect::<Option<Vec<String>>>()
        else {
            continue;
        };
        let bucket = bucketed.map(|seconds| {
            let size = seconds.saturating_mul(1000);
            fact.timestamp_ms.div_euclid(size) * size
        });
        groups.entry((bucket, dims)).or_default().push(fact);
    }
    let mut points = Vec::new();
    for ((bucket, dims), facts) in groups {
        if points.len() >= query.max_results {
            break;
        }
        let mut dimensions = BTreeMap::new();
        if let Some(bucket) = bucket {
            dimensions.insert("time_bucket".to_string(), iso_utc(bucket));
        }
        for (name, value) in query.dimensions.iter().zip(dims) {
            dimensions.insert(name.clone(), value);
        }
        let values: Vec<f64> = facts.iter().filter_map(|f| f.value).collect();
        let mut out = BTreeMap::new();
        for aggregation in query.aggregations {
            let value = if query.count_distinct {
                let mut keys: Vec<&String> =
                    facts.iter().filter_map(|f| f.distinct.as_ref()).collect();
                keys.sort_unstable();
                keys.dedup();
                Some(keys.len() as f64)
            } else {
                compute(aggregation, &values)
            };
            if let Some(value) = value {
                out.insert(aggregation.label(), value);
            }
        }
        if out.is_empty() {
            continue;
        }
        points.push(DataPoint {
            metric_name: query.metric.to_string(),
            dimensions,
            values: out,
        });
    }
    points
}

fn compute(aggregation: &Aggregation, values: &[f64]) -> Option<f64> {
    if aggregation.kind == Count {
        return Some(values.len() as f64);
    }
    if values.is_empty() {
        return None;
    }
    Some(match aggregation.kind {
        Sum => values.iter().sum(),
        Avg => values.iter().sum::<f64>() / values.len() as f64,
        Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        _ => percentile(values, aggregation.percentile.unwrap_or(50.0)),
    })
}

/// `PERCENTILE_CONT(p / 100)`: linear interpolation between the two nearest ranks.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0) * (sorted.len() - 1) as f64;
    let low = rank.floor() as usize;
    let high = rank.ceil() as usize;
    let fraction = rank - low as f64;
    sorted[low] + (sorted[high] - sorted[low]) * fraction
}

/// `2026-12-07T10:00:00+00:00`, as Python's `datetime.isoformat()` writes a UTC bucket start.
fn iso_utc(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = crate::trace_info::civil_date(days);
    let fraction = in_day % 1000;
    let base = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
    );
    if fraction == 0 {
        format!("{base}+00:00")
    } else {
        format!("{base}.{:06}+00:00", fraction * 1000)
    }
}

/// What MLflow aggregates of an assessment's value: numbers, booleans as 1/0 and `yes`/`no`.
pub fn assessment_number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
        serde_json::Value::Number(n) => n.as_f64().filter(|v| v.is_finite()),
        serde_json::Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" => Some(1.0),
            "no" => Some(0.0),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(kind: AggregationType, p: Option<f64>) -> Aggregation {
        Aggregation::new(kind, p).unwrap()
    }

    fn fact(ts: i64, value: f64, dims: &[&str]) -> Fact {
        Fact {
            timestamp_ms: ts,
            value: Some(value),
            distinct: None,
            dimensions: dims.iter().map(|d| Some(d.to_string())).collect(),
        }
    }

    #[test]
    fn counts_by_status_come_out_ordered_by_the_dimension() {
        let dims = vec!["trace_status".to_string()];
        let query = Query {
            metric: "trace_count",
            aggregations: &[agg(Count, None)],
            dimensions: &dims,
            time_interval_seconds: None,
            max_results: 1000,
            count_distinct: false,
        };
        let points = aggregate(
            &query,
            vec![
                fact(1, 1.0, &["OK"]),
                fact(2, 1.0, &["ERROR"]),
                fact(3, 1.0, &["OK"]),
            ],
        );
        let summary: Vec<(String, f64)> = points
            .iter()
            .map(|p| (p.dimensions["trace_status"].clone(), p.values["COUNT"]))
            .collect();
        assert_eq!(
            summary,
            [("ERROR".to_string(), 1.0), ("OK".to_string(), 2.0)]
        );
    }

    #[test]
    fn buckets_percentiles_and_null_dimensions() {
        let dims = vec!["trace_name".to_string()];
        let aggregations = [agg(Percentile, Some(50.0)), agg(Avg, None), agg(Max, None)];
        let query = Query {
            metric: "latency",
            aggregations: &aggregations,
            dimensions: &dims,
            time_interval_seconds: Some(60),
            max_results: 10,
            count_distinct: false,
        };
        let mut unnamed = fact(5, 1.0, &[]);
        unnamed.dimensions = vec![None];
        let points = aggregate(
            &query,
            vec![
                fact(61_000, 10.0, &["a"]),
                fact(1_000, 10.0, &["a"]),
                fact(2_000, 20.0, &["a"]),
                fact(3_000, 40.0, &["a"]),
                unnamed,
            ],
        );
        assert_eq!(points.len(), 2);
        assert_eq!(
            points[0].dimensions["time_bucket"],
            "1970-01-01T00:00:00+00:00"
        );
        assert_eq!(
            points[0].values,
            BTreeMap::from([
                ("P50.0".into(), 20.0),
                ("AVG".into(), 70.0 / 3.0),
                ("MAX".into(), 40.0)
            ])
        );
        assert_eq!(
            points[1].dimensions["time_bucket"],
            "1970-01-01T00:01:00+00:00"
        );
    }

    #[test]
    fn an_ungrouped_count_over_nothing_is_zero() {
        let query = Query {
            metric: "trace_count",
            aggregations: &[agg(Count, None)],
            dimensions: &[],
            time_interval_seconds: None,
            max_results: 10,
            count_distinct: false,
        };
        let points = aggregate(&query, vec![]);
        assert_eq!(points[0].values["COUNT"], 0.0);
        let latency = Query {
            metric: "latency",
            aggregations: &[agg(Avg, None)],
            ..query
        };
        assert!(aggregate(&latency, vec![]).is_empty());
    }

    #[test]
    fn percentiles_interpolate_like_percentile_cont() {
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
        assert!((percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 90.0) - 4.6).abs() < 1e-9);
        assert_eq!(agg(Percentile, Some(99.9)).label(), "P99.9");
    }

    #[test]
    fn queries_are_checked_with_mlflows_messages() {
        let err = validate(ViewType::Traces, "latency", &[agg(Count, None)], &[]).unwrap_err();
        assert_eq!(
            err.message,
            "Found invalid aggregation_type(s): ['COUNT']. Supported aggregation types: ['AVG', 'MAX', 'MIN', 'PERCENTILE']"
        );
        let err = validate(
            ViewType::Traces,
            "trace_count",
            &[agg(Count, None)],
            &["span_name".into()],
        )
        .unwrap_err();
        assert!(
            err.message
                .starts_with("Found invalid dimension(s): ['span_name']")
        );
        assert!(
            validate(ViewType::Spans, "trace_count", &[], &[])
                .unwrap_err()
                .message
                .starts_with("metric_name must be one of ['span_count'")
        );
        assert!(Aggregation::new(Percentile, None).is_err());
        assert!(Aggregation::new(Avg, Some(5.0)).is_err());
    }

    #[test]
    fn filters_follow_mlflows_grammar() {
        assert_eq!(
            parse_filter("trace.status = 'OK'").unwrap(),
            MetricFilter::TraceStatus("OK".into())
        );
        assert_eq!(
            parse_filter("trace.tag.`my.key` = \"v\"").unwrap(),
            MetricFilter::TraceTag("my.key".into(), "v".into())
        );
        assert_eq!(
            parse_filter("span.type = 'LLM'").unwrap(),
            MetricFilter::SpanType("LLM".into())
        );
        for (bad, message) in [
            ("trace.tag = 'x'", "requires a key"),
            ("trace.status.x = 'OK'", "does not require a key"),
            ("run.status = 'x'", "Invalid view type"),
            ("trace.name = 'x'", "Invalid entity"),
            ("trace.status = OK", "quoted string"),
            ("trace.status != 'OK'", "Only '='"),
        ] {
            let err = parse_filter(bad).unwrap_err();
            assert!(err.message.contains(message), "{bad}: {}", err.message);
        }
        assert!(check_filter_view(&MetricFilter::SpanName("a".into()), ViewType::Traces).is_err());
    }

    #[test]
    fn assessment_values_count_as_numbers_where_mlflow_counts_them() {
        use serde_json::json;
        assert_eq!(assessment_number(&json!(true)), Some(1.0));
        assert_eq!(assessment_number(&json!(0.25)), Some(0.25));
        assert_eq!(assessment_number(&json!(" Yes ")), Some(1.0));
        assert_eq!(assessment_number(&json!("maybe")), None);
    }
}
