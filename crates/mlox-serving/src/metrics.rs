//! The model server's Prometheus metrics: per model and version, how many inference requests
//! succeeded and failed and how long they took, plus whether each model is ready; rendered in
//! the Prometheus text format for `GET /metrics`.
//!
//! Names follow MLServer's (`model_infer_request_success_total`, …) so existing dashboards keep
//! working, with the `model_name` / `model_version` labels its documentation promises. Only
//! models that exist get series: a request for an unknown name is not counted, so a scan of
//! random names cannot grow the label set without bound.
//!
//! Counting is a handful of relaxed atomic adds on a per-series struct found through a read
//! lock; a Prometheus client library would add a global recorder and its own dependencies for
//! no more than this.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use mlox_runtime::BatchStats;

use crate::{ModelState, RepositoryEntry};

/// Upper bounds (seconds) of the latency histogram's buckets: from a native model's tens of
/// microseconds to a slow Python model's seconds.
const DURATION_BUCKETS_S: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    series: RwLock<BTreeMap<(String, String), Arc<ModelSeries>>>,
}

/// A counter's name, help text and how to read it from a series.
type Counter = (&'static str, &'static str, fn(&ModelSeries) -> u64);

#[derive(Default)]
struct ModelSeries {
    success: AtomicU64,
    failure: AtomicU64,
    /// Cumulative counts are computed when rendering; each slot counts its own bucket only,
    /// the last one everything above the largest bound.
    buckets: [AtomicU64; DURATION_BUCKETS_S.len() + 1],
    sum_nanos: AtomicU64,
}

impl Metrics {
    /// Records one inference request of `model` at `version` that took `took`.
    pub fn observe(&self, model: &str, version: Option<&str>, took: Duration, ok: bool) {
        let series = self.series(model, version.unwrap_or_default());
        if ok {
            series.success.fetch_add(1, Ordering::Relaxed);
        } else {
            series.failure.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = took.as_secs_f64();
        let slot = DURATION_BUCKETS_S
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS_S.len());
        series.buckets[slot].fetch_add(1, Ordering::Relaxed);
        series.sum_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn series(&self, model: &str, version: &str) -> Arc<ModelSeries> {
        let key = (model.to_string(), version.to_string());
        if let Some(s) = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return s.clone();
        }
        self.series
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default()
            .clone()
    }

    /// Everything in the Prometheus text exposition format, with the readiness of every
    /// model in `index` and the counters of those that batch.
    pub fn render(&self, index: &[RepositoryEntry], batching: &[BatchSeries]) -> String {
        let series = self
            .series
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut out = String::new();
        let counters: [Counter; 2] = [
            (
                "model_infer_request_success_total",
                "Inference requests answered successfully.",
                |s| s.success.load(Ordering::Relaxed),
            ),
            (
                "model_infer_request_failure_total",
                "Inference requests that failed (bad input, model errors, timeouts).",
                |s| s.failure.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((model, version), s) in &series {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(model, version), value(s));
            }
        }

        let name = "model_infer_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from a decoded request to its encoded answer.\n# TYPE {name} histogram"
        );
        for ((model, version), s) in &series {
            let labels = labels(model, version);
            let mut cumulative = 0;
            for (slot, bound) in DURATION_BUCKETS_S.iter().enumerate() {
                cumulative += s.buckets[slot].load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            cumulative += s.buckets[DURATION_BUCKETS_S.len()].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cumulative}");
            let sum = s.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
        }

        let name = "model_ready";
        let _ = writeln!(
            out,
            "# HELP {name} 1 when the model version answers requests, 0 while it loads or is unavailable.\n# TYPE {name} gauge"
        );
        for entry in index {
            let ready = u8::from(entry.state == ModelState::Ready);
            let _ = writeln!(
                out,
                "{name}{{{}}} {ready}",
                labels(&entry.name, entry.version.as_deref().unwrap_or_default())
            );
        }
        let batch_metrics: [BatchMetric; 3] = [
            (
                "model_batches_total",
                "counter",
                "Runtime calls made for adaptive batches.",
                |b| b.batches,
            ),
            (
                "model_batched_requests_total",
                "counter",
                "Requests answered by those calls; divided by the batches, the mean batch size.",
                |b| b.batched_requests,
            ),
            (
                "model_batch_queue_depth",
                "gauge",
                "Requests waiting for a batch now.",
                |b| b.queued as u64,
            ),
        ];
        if !batching.is_empty() {
            for (name, kind, help, value) in batch_metrics {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (model, version, stats) in batching {
                    let labels = labels(model, version.as_deref().unwrap_or_default());
                    let _ = writeln!(out, "{name}{{{labels}}} {}", value(stats));
                }
            }
        }
        out
    }
}

/// A batching metric's name, type, help text and how to read it.
type BatchMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&BatchStats) -> u64,
);

/// One batching model's counters: name, version, stats.
pub type BatchSeries = (String, Option<String>, BatchStats);

fn labels(model: &str, version: &str) -> String {
    format!(
        "model_name=\"{}\",model_version=\"{}\"",
        escape(model),
        escape(version)
    )
}

/// Label values escape backslash, double quote and newline; nothing else.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
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
        );
        let lines: Vec<&str> = text.lines().collect();
        for expected in [
            r#"model_infer_request_success_total{model_name="wine",model_version="1"} 2"#,
            r#"model_infer_request_failure_total{model_name="wine",model_version="1"} 1"#,
            r#"model_infer_request_success_total{model_name="wine",model_version="2"} 1"#,
            r#"model_infer_request_duration_seconds_bucket{model_name="wine",model_version="1",le="0.0001"} 1"#,
            r#"model_infer_request_duration_seconds_bucket{model_name="wine",model_version="1",le="0.0025"} 1"#,
            r#"model_infer_request_duration_seconds_bucket{model_name="wine",model_version="1",le="0.005"} 2"#,
            r#"model_infer_request_duration_seconds_bucket{model_name="wine",model_version="1",le="10"} 2"#,
            r#"model_infer_request_duration_seconds_bucket{model_name="wine",model_version="1",le="+Inf"} 3"#,
            r#"model_infer_request_duration_seconds_count{model_name="wine",model_version="1"} 3"#,
            r#"model_infer_request_duration_seconds_sum{model_name="wine",model_version="1"} 30.00308"#,
            r#"model_ready{model_name="wine",model_version="2"} 1"#,
            r#"model_ready{model_name="cancer",model_version=""} 0"#,
            "# TYPE model_infer_request_duration_seconds histogram",
            r#"model_batches_total{model_name="wine",model_version="2"} 4"#,
            r#"model_batched_requests_total{model_name="wine",model_version="2"} 10"#,
            r#"model_batch_queue_depth{model_name="wine",model_version="2"} 2"#,
            "# TYPE model_batch_queue_depth gauge",
        ] {
            assert!(lines.contains(&expected), "missing {expected}\n{text}");
        }
    }

    #[test]
    fn every_sample_line_is_a_name_labels_and_a_number() {
        let m = Metrics::default();
        m.observe("a \"quoted\"\\name\n", None, Duration::from_millis(1), true);
        let text = m.render(&[], &[]);
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
