//! The tracking server's Prometheus metrics (`mlox server --expose-prometheus`), served at
//! `GET /metrics` on the server's own port.
//!
//! Request metrics carry the names and labels of MLflow's exporter (`mlflow_http_request_total`,
//! `mlflow_http_request_duration_seconds` with `mlflow_version`, …), so dashboards built for an
//! MLflow server keep working; each also has a `route` label, the route's template
//! (`/api/2.0/mlflow/runs/get`, `/api/2.0/mlflow-artifacts/artifacts/{*path}`), never the raw
//! path, so the label set stays bounded. As in MLflow, `/health` and `/version` are not counted.
//! Beyond MLflow: every error answer by its `error_code`, how long database statements and
//! artifact-store operations take, the SQLite log writer's queue and group sizes, and how
//! webhook deliveries end.
//!
//! Everything is read or recorded through `prometheus-client`. Database statements are timed
//! by the statement logger of the database library, whose events the binary's logging set-up
//! hands to [`TrackingMetrics::observe_statement`]; the writer and webhook counters live in
//! their own crates and are read at each scrape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use mlox_artifacts::{
    ArtifactPath, ArtifactRepository, ByteStream, CompletedPart, Download, FileInfo,
    MultipartCreated,
};
use mlox_store::{GROUP_SIZE_BOUNDS, SqlStore};
use mlox_webhooks::DeliveryCounters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::access_log::LoggedError;

/// Upper bounds (seconds) of the latency buckets: from a cached read's tens of microseconds
/// to a large artifact's seconds (prometheus_flask_exporter's defaults start at 5 ms, too
/// coarse for a server that answers most calls faster).
const DURATION_BUCKETS_S: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Paths MLflow's exporter leaves out (probes would drown the API's figures), and the
/// scrape itself.
const NOT_COUNTED: [&str; 3] = ["/health", "/version", "/metrics"];

/// What the route label says for a request no route matched (a 404 for an unknown path).
const UNMATCHED_ROUTE: &str = "unmatched";

fn histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS_S)
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    status: u16,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    method: String,
    status: u16,
    route: String,
    mlflow_version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    route: String,
    error_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatementLabels {
    statement: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArtifactLabels {
    operation: &'static str,
    outcome: &'static str,
}

/// The metrics of one tracking server process.
pub struct TrackingMetrics {
    mlflow_version: String,
    requests: Family<RequestLabels, Counter>,
    exceptions: Family<RequestLabels, Counter>,
    durations: HistogramFamily<DurationLabels>,
    errors: Family<ErrorLabels, Counter>,
    statements: HistogramFamily<StatementLabels>,
    artifacts: HistogramFamily<ArtifactLabels>,
    sources: std::sync::Mutex<Sources>,
}

/// Counters other crates keep, read at each scrape.
#[derive(Clone, Default)]
struct Sources {
    store: Option<SqlStore>,
    webhooks: Option<Arc<DeliveryCounters>>,
}

impl TrackingMetrics {
    /// `mlflow_version` is the version the server reports, the label MLflow groups by.
    pub fn new(mlflow_version: &str) -> Self {
        TrackingMetrics {
            mlflow_version: mlflow_version.to_owned(),
            requests: Family::default(),
            exceptions: Family::default(),
            durations: Family::new_with_constructor(histogram),
            errors: Family::default(),
            statements: Family::new_with_constructor(histogram),
            artifacts: Family::new_with_constructor(histogram),
            sources: Default::default(),
        }
    }

    /// Reads the log writer's counters from `store` at each scrape.
    pub fn watch_store(&self, store: SqlStore) {
        self.sources().store = Some(store);
    }

    /// Reads the webhook dispatcher's counters at each scrape.
    pub fn watch_webhooks(&self, counters: Arc<DeliveryCounters>) {
        self.sources().webhooks = Some(counters);
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, Sources> {
        // A panic while holding this lock cannot leave the two handles half-written.
        self.sources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records one answered request. `route` is the matched route's template.
    pub fn observe_request(
        &self,
        method: &str,
        route: Option<&str>,
        status: u16,
        error_code: Option<&str>,
        took: Duration,
    ) {
        let route = route.unwrap_or(UNMATCHED_ROUTE).to_owned();
        let labels = RequestLabels {
            method: method.to_owned(),
            status,
            route: route.clone(),
        };
        self.requests.get_or_create(&labels).inc();
        if status >= 500 {
            self.exceptions.get_or_create(&labels).inc();
        }
        if let Some(error_code) = error_code {
            self.errors
                .get_or_create(&ErrorLabels {
                    route: route.clone(),
                    error_code: error_code.to_owned(),
                })
                .inc();
        }
        self.durations
            .get_or_create(&DurationLabels {
                method: labels.method,
                status,
                route,
                mlflow_version: self.mlflow_version.clone(),
            })
            .observe(took.as_secs_f64());
    }

    /// Records one database statement from the summary the database library logs for it
    /// (its first words) and how long it ran.
    pub fn observe_statement(&self, summary: &str, took_s: f64) {
        let statement = statement_kind(summary);
        self.statements
            .get_or_create(&StatementLabels { statement })
            .observe(took_s);
    }

    fn observe_artifact(&self, operation: &'static str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.artifacts
            .get_or_create(&ArtifactLabels { operation, outcome })
            .observe(took.as_secs_f64());
    }

    /// Everything in Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let mut registry = Registry::default();
        registry.register(
            "mlflow_http_request",
            "Total number of HTTP requests",
            self.requests.clone(),
        );
        registry.register(
            "mlflow_http_request_exceptions",
            "Total number of HTTP requests which resulted in an exception (5xx)",
            self.exceptions.clone(),
        );
        registry.register(
            "mlflow_http_request_duration_seconds",
            "HTTP request duration in seconds",
            self.durations.clone(),
        );
        registry.register(
            "mlox_http_request_errors",
            "Error answers by MLflow error code",
            self.errors.clone(),
        );
        registry.register(
            "mlox_db_statement_duration_seconds",
            "Time database statements took, by kind of statement",
            self.statements.clone(),
        );
        registry.register(
            "mlox_artifact_operation_duration_seconds",
            "Time artifact-store operations of the artifact proxy took (for downloads, until \
             the first byte)",
            self.artifacts.clone(),
        );
        let sources = self.sources().clone();
        registry.register_collector(Box::new(SourcesCollector(sources)));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Wraps the artifact proxy's repository so its operations are timed.
    pub fn timed_repository(
        self: &Arc<Self>,
        inner: Arc<dyn ArtifactRepository>,
    ) -> Arc<dyn ArtifactRepository> {
        Arc::new(TimedRepository {
            inner,
            metrics: self.clone(),
        })
    }
}

/// The first keyword of a statement, from a fixed set so the label stays bounded.
fn statement_kind(summary: &str) -> &'static str {
    let first = summary
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    const KINDS: [&str; 10] = [
        "select",
        "insert",
        "update",
        "delete",
        "with",
        "begin",
        "commit",
        "rollback",
        "pragma",
        "savepoint",
    ];
    KINDS
        .into_iter()
        .find(|kind| first.eq_ignore_ascii_case(kind))
        .unwrap_or("other")
}

#[derive(Debug)]
struct SourcesCollector(Sources);

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources")
            .field("store", &self.store.is_some())
            .field("webhooks", &self.webhooks.is_some())
            .finish()
    }
}

impl Collector for SourcesCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(store) = &self.0.store {
            let stats = store.log_writer_stats();
            let queued = encoder.encode_descriptor(
                "mlox_log_writer_queued_calls",
                "Log calls (log-metric, log-batch, set-tag, …) waiting for the SQLite writer now",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(stats.queued).unwrap_or(i64::MAX)).encode(queued)?;
            let calls = encoder.encode_descriptor(
                "mlox_log_writer_calls",
                "Log calls the SQLite writer has taken",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(stats.calls).encode(calls)?;
            let mut groups = encoder.encode_descriptor(
                "mlox_log_writer_group_size",
                "Log calls the SQLite writer committed in one transaction",
                None,
                MetricType::Histogram,
            )?;
            let mut buckets: Vec<(f64, u64)> = Vec::with_capacity(GROUP_SIZE_BOUNDS.len() + 1);
            let mut cumulative = 0;
            for (&bound, count) in GROUP_SIZE_BOUNDS.iter().zip(stats.group_sizes) {
                cumulative += count;
                buckets.push((bound as f64, cumulative));
            }
            buckets.push((f64::INFINITY, cumulative));
            groups.encode_histogram::<Vec<(String, String)>>(
                stats.calls as f64,
                stats.groups(),
                &buckets,
                None,
            )?;
        }
        if let Some(webhooks) = &self.0.webhooks {
            let mut deliveries = encoder.encode_descriptor(
                "mlox_webhook_delivery_attempts",
                "Webhook delivery attempts of this server, by how they ended",
                None,
                MetricType::Counter,
            )?;
            for (outcome, value) in [
                ("delivered", webhooks.delivered()),
                ("retry", webhooks.retried()),
                ("failed", webhooks.failed()),
            ] {
                let labels = [("outcome", outcome)];
                ConstCounter::new(value).encode(deliveries.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The route template a request matched, carried from inside the router to the middleware
/// around it.
#[derive(Clone, Debug)]
struct MatchedRoute(String);

/// Inside the router (`Router::route_layer`): notes which route answered.
pub async fn mark_route(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| MatchedRoute(m.as_str().to_owned()));
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// Around the router (`Router::layer`, with the metrics as state): times and counts every
/// request.
pub async fn record_request(
    State(metrics): State<Arc<TrackingMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    if NOT_COUNTED.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let started = Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    let route = response.extensions().get::<MatchedRoute>();
    let error = response.extensions().get::<LoggedError>();
    metrics.observe_request(
        method.as_str(),
        route.map(|r| r.0.as_str()),
        response.status().as_u16(),
        error.map(|e| e.error_code),
        started.elapsed(),
    );
    response
}

/// `GET /metrics`.
pub async fn scrape(State(metrics): State<Arc<TrackingMetrics>>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics.render(),
    )
        .into_response()
}

/// An artifact repository whose operations are timed.
struct TimedRepository {
    inner: Arc<dyn ArtifactRepository>,
    metrics: Arc<TrackingMetrics>,
}

impl TimedRepository {
    async fn timed<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = mlox_core::Result<T>>,
    ) -> mlox_core::Result<T> {
        let started = Instant::now();
        let result = work.await;
        self.metrics
            .observe_artifact(operation, result.is_ok(), started.elapsed());
        result
    }
}

#[mlox_artifacts::async_trait]
impl ArtifactRepository for TimedRepository {
    async fn put(&self, path: &ArtifactPath, body: ByteStream) -> mlox_core::Result<u64> {
        self.timed("put", self.inner.put(path, body)).await
    }

    async fn get(&self, path: &ArtifactPath) -> mlox_core::Result<Download> {
        self.timed("get", self.inner.get(path)).await
    }

    async fn list(&self, path: &ArtifactPath) -> mlox_core::Result<Vec<FileInfo>> {
        self.timed("list", self.inner.list(path)).await
    }

    async fn delete(&self, path: &ArtifactPath) -> mlox_core::Result<()> {
        self.timed("delete", self.inner.delete(path)).await
    }

    fn supports_multipart(&self) -> bool {
        self.inner.supports_multipart()
    }

    async fn create_multipart(
        &self,
        path: &ArtifactPath,
        num_parts: u32,
    ) -> mlox_core::Result<MultipartCreated> {
        self.timed(
            "create_multipart",
            self.inner.create_multipart(path, num_parts),
        )
        .await
    }

    async fn upload_part(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        part_number: u32,
        body: ByteStream,
    ) -> mlox_core::Result<String> {
        self.timed(
            "upload_part",
            self.inner.upload_part(path, upload_id, part_number, body),
        )
        .await
    }

    async fn complete_multipart(
        &self,
        path: &ArtifactPath,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> mlox_core::Result<()> {
        self.timed(
            "complete_multipart",
            self.inner.complete_multipart(path, upload_id, parts),
        )
        .await
    }

    async fn abort_multipart(&self, path: &ArtifactPath, upload_id: &str) -> mlox_core::Result<()> {
        self.timed(
            "abort_multipart",
            self.inner.abort_multipart(path, upload_id),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_labelled_by_their_first_keyword_from_a_fixed_set() {
        for (summary, kind) in [
            ("SELECT run_uuid, …", "select"),
            ("insert into metrics …", "insert"),
            ("  with latest as …", "with"),
            ("BEGIN", "begin"),
            ("PRAGMA wal_checkpoint(TRUNCATE)", "pragma"),
            ("vacuum into 'x'", "other"),
            ("", "other"),
            ("select\tx", "select"),
        ] {
            assert_eq!(statement_kind(summary), kind, "{summary:?}");
        }
    }

    #[test]
    fn requests_are_counted_with_mlflow_names_and_labels_plus_the_route() {
        let metrics = TrackingMetrics::new("3.5.0");
        metrics.observe_request(
            "GET",
            Some("/api/2.0/mlflow/runs/get"),
            200,
            None,
            Duration::from_micros(300),
        );
        metrics.observe_request(
            "GET",
            Some("/api/2.0/mlflow/runs/get"),
            404,
            Some("RESOURCE_DOES_NOT_EXIST"),
            Duration::from_micros(200),
        );
        metrics.observe_request(
            "POST",
            None,
            500,
            Some("INTERNAL_ERROR"),
            Duration::from_millis(20),
        );
        metrics.observe_statement("SELECT x …", 0.0003);
        let text = metrics.render();
        for expected in [
            r#"mlflow_http_request_total{method="GET",status="200",route="/api/2.0/mlflow/runs/get"} 1"#,
            r#"mlflow_http_request_total{method="GET",status="404",route="/api/2.0/mlflow/runs/get"} 1"#,
            r#"mlflow_http_request_exceptions_total{method="POST",status="500",route="unmatched"} 1"#,
            r#"mlflow_http_request_duration_seconds_bucket{le="0.00025",method="GET",status="404",route="/api/2.0/mlflow/runs/get",mlflow_version="3.5.0"} 1"#,
            r#"mlox_http_request_errors_total{route="/api/2.0/mlflow/runs/get",error_code="RESOURCE_DOES_NOT_EXIST"} 1"#,
            r#"mlox_db_statement_duration_seconds_count{statement="select"} 1"#,
        ] {
            assert!(
                text.lines().any(|line| line == expected),
                "missing {expected}\n{text}"
            );
        }
        assert!(
            !text.contains(r#"exceptions_total{method="GET""#),
            "a 4xx is no exception"
        );
    }
}
