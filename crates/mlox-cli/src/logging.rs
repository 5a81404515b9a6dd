//! Where the process's log events go: to stderr for people (colours only on a terminal, never
//! escape codes in a log file; one JSON object per line with `MLOX_LOG_FORMAT=json`; filtered
//! by `MLOX_LOG`, default `info`), and, when the tracking server exposes Prometheus metrics, the
//! database library's per-statement events to those metrics. The second path has a filter of
//! its own, so timing statements never makes them appear in the log.

use std::sync::Arc;

use mlox_tracking::metrics::TrackingMetrics;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// The target sqlx logs every statement under, with its summary and duration.
const STATEMENT_TARGET: &str = "sqlx::query";

pub fn init(statement_metrics: Option<Arc<TrackingMetrics>>) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MLOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let stderr = match std::env::var("MLOX_LOG_FORMAT").as_deref() {
        Ok("json") => stderr.json().with_current_span(false).boxed(),
        _ => stderr.with_ansi(std::io::stderr().is_terminal()).boxed(),
    };
    let statements = statement_metrics.map(|metrics| {
        // sqlx logs statements at DEBUG and slow ones at WARN; both are timed.
        StatementTimer { metrics }
            .with_filter(Targets::new().with_target(STATEMENT_TARGET, Level::DEBUG))
    });
    tracing_subscriber::registry()
        .with(stderr.with_filter(filter))
        .with(statements)
        .init();
}

/// Feeds each statement event's duration to the metrics.
struct StatementTimer {
    metrics: Arc<TrackingMetrics>,
}

impl<S: Subscriber> Layer<S> for StatementTimer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = StatementFields::default();
        event.record(&mut fields);
        if let Some(took_s) = fields.elapsed_secs {
            self.metrics.observe_statement(&fields.summary, took_s);
        }
    }
}

#[derive(Default)]
struct StatementFields {
    summary: String,
    elapsed_secs: Option<f64>,
}

impl Visit for StatementFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = Some(value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.summary = value.to_owned();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.summary = format!("{value:?}").trim_matches('"').to_owned();
        }
    }
}
