//! The model server's Prometheus metrics: per model and version, how many inference requests
//! succeeded and failed and how long they took, plus whether each model is ready and what its
//! adaptive batcher has done; exposed at `GET /metrics`.
//!
//! Names follow MLServer's (`model_infer_request_success_total`, …) so existing dashboards keep
//! working. Each series carries the model twice: as `model_name` / `model_version`, the labels
//! MLServer's documentation promises, and as `model` / `version`, the ones its code writes, so
//! queries written against either work. Only
//! models that exist get series: a request for an unknown name is not counted, so a scan of
//! random names cannot grow the label set without bound.
//!
//! Every metric goes through `prometheus-client`, the library the tracking server and the
//! gateway use too: request metrics are families registered with [`Metrics::register`], and
//! the state of the repository (readiness, batch counters) is read at each scrape by a
//! collector, so nothing has to be kept in step with the models as they come and go.

use std::time::Duration;

use mlox_runtime::BatchStats;
use mlox_runtime::language::GenerationStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::{ModelState, RepositoryEntry};

/// Upper bounds (seconds) of the latency histogram's buckets: from a native model's tens of
/// microseconds to a slow Python model's seconds.
const DURATION_BUCKETS_S: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The labels of every series: which model, at which version (empty when it has none).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model_name: String,
    model_version: String,
    model: String,
    version: String,
}

impl ModelLabels {
    fn new(model: &str, version: Option<&str>) -> Self {
        let version = version.unwrap_or_default();
        ModelLabels {
            model_name: model.to_owned(),
            model_version: version.to_owned(),
            model: model.to_owned(),
            version: version.to_owned(),
        }
    }
}

type DurationFamily = Family<ModelLabels, Histogram, fn() -> Histogram>;

/// The inference request metrics of one server.
pub struct Metrics {
    success: Family<ModelLabels, Counter>,
    failure: Family<ModelLabels, Counter>,
    duration: DurationFamily,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            success: Family::default(),
            failure: Family::default(),
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS_S)),
        }
    }
}

impl Metrics {
    /// Records one inference request of `model` at `version` that took `took`.
    pub fn observe(&self, model: &str, version: Option<&str>, took: Duration, ok: bool) {
        let labels = ModelLabels::new(model, version);
        // Both counters exist from a series' first request, so a rate of failures reads 0
        // rather than nothing.
        let success = self.success.get_or_create(&labels);
        let failure = self.failure.get_or_create(&labels);
        if ok {
            success.inc();
        } else {
            failure.inc();
        }
        self.duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Adds the request metrics to `registry` (the library appends `_total` to counters and
    /// a period to help texts).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "model_infer_request_success",
            "Inference requests answered successfully",
            self.success.clone(),
        );
        registry.register(
            "model_infer_request_failure",
            "Inference requests that failed (bad input, model errors, timeouts)",
            self.failure.clone(),
        );
        registry.register(
            "model_infer_request_duration_seconds",
            "Time from a decoded request to its encoded answer",
            self.duration.clone(),
        );
    }

    /// Everything in the text exposition format, with the readiness of every model in `index`,
    /// the counters of those that batch and of those that generate text.
    pub fn render(
        &self,
        index: &[RepositoryEntry],
        batching: &[BatchSeries],
        generating: &[GenerationSeries],
    ) -> String {
        let mut registry = Registry::default();
        self.register(&mut registry);
        registry.register_collector(Box::new(RepositoryState {
            index: index.to_vec(),
            batching: batching.to_vec(),
            generating: generating.to_vec(),
        }));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

/// One batching model's counters: name, version, stats.
pub type BatchSeries = (String, Option<String>, BatchStats);

/// One generating (language) model's counters: name, version, stats.
pub type GenerationSeries = (String, Option<String>, GenerationStats);

/// The repository as one scrape sees it.
#[derive(Debug)]
struct RepositoryState {
    index: Vec<RepositoryEntry>,
    batching: Vec<BatchSeries>,
    generating: Vec<GenerationSeries>,
}

/// A per-model metric's name (counters without `_total`), type, help text and how to read it.
type ModelMetric<T> = (&'static str, MetricType, &'static str, fn(&T) -> u64);

/// Writes each metric of `metrics` with one sample per model of `series`.
fn encode_per_model<T>(
    encoder: &mut DescriptorEncoder,
    metrics: &[ModelMetric<T>],
    series: &[(String, Option<String>, T)],
) -> Result<(), std::fmt::Error> {
    if series.is_empty() {
        return Ok(());
    }
    for (name, metric_type, help, value) in metrics {
        let mut family = encoder.encode_descriptor(name, help, None, *metric_type)?;
        for (model, version, stats) in series {
            let labels = ModelLabels::new(model, version.as_deref());
            let sample = family.encode_family(&labels)?;
            let value = value(stats);
            match metric_type {
                MetricType::Counter => ConstCounter::new(value).encode(sample)?,
                _ => ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(sample)?,
            }
        }
    }
    Ok(())
}

impl Collector for RepositoryState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut ready = encoder.encode_descriptor(
            "model_ready",
            "1 when the model version answers requests, 0 while it loads or is unavailable.",
            None,
            MetricType::Gauge,
        )?;
        for entry in &self.index {
            let labels = ModelLabels::new(&entry.name, entry.version.as_deref());
            let value = i64::from(entry.state == ModelState::Ready);
            ConstGauge::new(value).encode(ready.encode_family(&labels)?)?;
        }
        let batch_metrics: [ModelMetric<BatchStats>; 3] = [
            (
                "model_batches",
                MetricType::Counter,
                "Runtime calls made for adaptive batches.",
                |b| b.batches,
            ),
            (
                "model_batched_requests",
                MetricType::Counter,
                "Requests answered by those calls; divided by the batches, the mean batch size.",
                |b| b.batched_requests,
            ),
            (
                "model_batch_queue_depth",
                MetricType::Gauge,
                "Requests waiting for a batch now.",
                |b| b.queued as u64,
            ),
        ];
        encode_per_model(&mut encoder, &batch_metrics, &self.batching)?;
        let generation_metrics: [ModelMetric<GenerationStats>; 3] = [
            (
                "model_generations_running",
                MetricType::Gauge,
                "Generations in the continuous batch now.",
                |g| g.running as u64,
            ),
            (
                "model_generations_waiting",
                MetricType::Gauge,
                "Generations waiting to join the batch.",
                |g| g.waiting as u64,
            ),
            (
                "model_generated_tokens",
                MetricType::Counter,
                "Tokens generated since the model loaded.",
                |g| g.generated_tokens,
            ),
        ];
        encode_per_model(&mut encoder, &generation_metrics, &self.generating)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, version: Option<&str>, state: ModelState) -> RepositoryEntry {
        RepositoryEntry {
            name: name.into(),
            version: version.map(Into::into),
            state,
            reason: String::new(),
        }
    }

    #[test]
    fn requests_are_counted_per_model_and_version_with_a_cumulative_histogram() {
        let m = Metrics::default();
        m.observe("wine", Some("1"), Duration::from_micros(80), true);
        m.observe("wine", Some("1"), Duration::from_millis(3), true);
        m.observe("wine", Some("1"), Duration::from_secs(30), false);
        m.observe("wine", Some("2"), Duration::from_micros(300), true);
        let batching = BatchStats {
            batches: 4,
            batched_requests: 10,
            queued: 2,
        };
        let text = m.render(
            &[
                entry("wine", Some("2"), ModelState::Ready),
                entry("cancer", None, ModelState::Loading),
            ],
            &[("wine".into(), Some("2".into()), batching)],
            &[(
                "chat".into(),
                None,
                GenerationStats {
                    running: 3,
                    waiting: 1,
                    generated_tokens: 77,
                },
            )],
        );
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            r#"model_infer_request_success_total{model_name="wine",model_version="1",model="wine",version="1"} 2"#,
            r#"model_infer_request_failure_total{model_name="wine",model_version="1",model="wine",version="1"} 1"#,
            r#"model_infer_request_success_total{model_name="wine",model_version="2",model="wine",version="2"} 1"#,
            r#"model_infer_request_duration_seconds_bucket{le="0.0001",model_name="wine",model_version="1",model="wine",version="1"} 1"#,
            r#"model_infer_request_duration_seconds_bucket{le="0.0025",model_name="wine",model_version="1",model="wine",version="1"} 1"#,
            r#"model_infer_request_duration_seconds_bucket{le="0.005",model_name="wine",model_version="1",model="wine",version="1"} 2"#,
            r#"model_infer_request_duration_seconds_bucket{le="10.0",model_name="wine",model_version="1",model="wine",version="1"} 2"#,
            r#"model_infer_request_duration_seconds_bucket{le="+Inf",model_name="wine",model_version="1",model="wine",version="1"} 3"#,
            r#"model_infer_request_duration_seconds_count{model_name="wine",model_version="1",model="wine",version="1"} 3"#,
            r#"model_infer_request_duration_seconds_sum{model_name="wine",model_version="1",model="wine",version="1"} 30.00308"#,
            r#"model_ready{model_name="wine",model_version="2",model="wine",version="2"} 1"#,
            r#"model_ready{model_name="cancer",model_version="",model="cancer",version=""} 0"#,
            "# TYPE model_infer_request_duration_seconds histogram",
            r#"model_batches_total{model_name="wine",model_version="2",model="wine",version="2"} 4"#,
            r#"model_batched_requests_total{model_name="wine",model_version="2",model="wine",version="2"} 10"#,
            r#"model_batch_queue_depth{model_name="wine",model_version="2",model="wine",version="2"} 2"#,
            "# TYPE model_batch_queue_depth gauge",
            r#"model_generations_running{model_name="chat",model_version="",model="chat",version=""} 3"#,
            r#"model_generations_waiting{model_name="chat",model_version="",model="chat",version=""} 1"#,
            r#"model_generated_tokens_total{model_name="chat",model_version="",model="chat",version=""} 77"#,
        ] {
            assert!(lines.contains(&expected), "missing {expected}\n{text}");
        }
    }

    #[test]
    fn every_sample_line_is_a_name_labels_and_a_number() {
        let m = Metrics::default();
        m.observe("a \"quoted\"\\name\n", None, Duration::from_millis(1), true);
        let text = m.render(&[], &[], &[]);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(
                line.contains(r#"model_name="a \"quoted\"\\name\n""#),
                "{line}"
            );
        }
    }
}
