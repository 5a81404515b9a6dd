//! The scenarios the benchmark times, the request bodies they send, and the untimed fixtures they
//! need (an experiment of runs to search, a long metric history to read back, an experiment of
//! tagged traces to search). Fixtures are built through the same APIs the scenarios use, so both
//! servers under comparison start from data they stored themselves.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use hyper::Method;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::http::{Conn, Reply, Target, snippet};
use crate::otlp;

pub const API: &str = "/api/2.0/mlflow";
/// MLflow 3's trace API (search, get); the client still sets trace tags through 2.0.
pub const API_V3: &str = "/api/3.0/mlflow";
pub const OTLP_PATH: &str = "/v1/traces";
pub const OTLP_CONTENT_TYPE: &str = "application/x-protobuf";
pub const EXPERIMENT_ID_HEADER: &str = "x-mlflow-experiment-id";

/// The filter and ordering of the search scenario; kept in one place so the sanity check after
/// setup verifies exactly what is timed.
pub const SEARCH_FILTER: &str = "metrics.m1 > 0.5 and params.p1 = 'a'";
pub const SEARCH_ORDER_BY: &str = "metrics.m1 DESC";
pub const SEARCH_MAX_RESULTS: u64 = 100;
pub const HISTORY_KEY: &str = "loss";
/// The largest batch MLflow accepts (1000 metrics per log-batch).
const SETUP_BATCH: u64 = 1000;
/// A page count far above any real history, so a server that keeps sending `next_page_token`
/// cannot keep a worker busy forever.
const MAX_HISTORY_PAGES: usize = 100_000;

/// The filter and ordering of the trace search scenario, checked after setup like the run search.
/// Every fixture trace carries the tag `bucket` = `b0`…`b9`, so the filter keeps about a tenth of
/// them and the server still has to order those by time to find the newest hundred.
pub const TRACE_SEARCH_FILTER: &str = "tags.bucket = 'b3'";
pub const TRACE_SEARCH_ORDER_BY: &str = "timestamp_ms DESC";
pub const TRACE_SEARCH_MAX_RESULTS: u64 = 100;
const TRACE_TAG_KEY: &str = "bucket";
const TRACE_BUCKETS: u64 = 10;
const SEARCHED_BUCKET: u64 = 3;
/// Fixture traces per OTLP export: one request per trace would make MLflow's fixture take
/// most of an hour; a few hundred single-span traces stay a small body.
const TRACE_SETUP_BATCH: u64 = 500;
/// The largest `max_results` MLflow accepts for a trace search, used when reading back.
const TRACE_READ_PAGE: u64 = 500;
const MAX_TRACE_PAGES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    LogBatch10,
    LogBatch1000,
    LogMetric,
    CreateRun,
    SearchRuns,
    GetHistory,
    SearchTraces,
    IngestSpans,
    /// One fixed body POSTed to one fixed path, both given on the command line: how the serving
    /// benchmark drives inference endpoints, which have no fixtures to build.
    PostBody,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::LogBatch10,
        Scenario::LogBatch1000,
        Scenario::LogMetric,
        Scenario::CreateRun,
        Scenario::SearchRuns,
        Scenario::GetHistory,
        Scenario::SearchTraces,
        Scenario::IngestSpans,
        Scenario::PostBody,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::LogBatch10 => "log-batch-10",
            Scenario::LogBatch1000 => "log-batch-1000",
            Scenario::LogMetric => "log-metric",
            Scenario::CreateRun => "create-run",
            Scenario::SearchRuns => "search-runs",
            Scenario::GetHistory => "get-history",
            Scenario::SearchTraces => "search-traces",
            Scenario::IngestSpans => "ingest-spans",
            Scenario::PostBody => "post-body",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                let known: Vec<_> = Self::ALL.iter().map(|s| s.name()).collect();
                anyhow!("unknown scenario {name:?}; known: {}", known.join(", "))
            })
    }

    /// Whether every worker logs into a run of its own, created before timing starts.
    fn needs_own_run(self) -> bool {
        matches!(
            self,
            Scenario::LogBatch10 | Scenario::LogBatch1000 | Scenario::LogMetric
        )
    }

    pub fn needs_search_fixture(self) -> bool {
        self == Scenario::SearchRuns
    }

    pub fn needs_history_fixture(self) -> bool {
        self == Scenario::GetHistory
    }

    pub fn needs_trace_fixture(self) -> bool {
        self == Scenario::SearchTraces
    }

    pub fn needs_ingest_experiment(self) -> bool {
        self == Scenario::IngestSpans
    }

    /// Spans each operation sends, for scenarios whose throughput is counted in spans.
    pub fn spans_per_op(self) -> Option<u64> {
        (self == Scenario::IngestSpans).then_some(otlp::SPANS_PER_INGEST_TRACE)
    }

    /// Whether the scenario talks to the tracking API at all; a model server has none, so setup
    /// must not try to create experiments on it.
    pub fn needs_tracking_server(self) -> bool {
        self != Scenario::PostBody
    }
}

/// Ids of what setup created on one server.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Fixture {
    pub logging_experiment: String,
    pub create_experiment: String,
    pub search_experiment: Option<String>,
    pub search_runs: u64,
    pub history_run: Option<String>,
    pub history_points: u64,
    pub history_page_size: u64,
    /// High half of every trace id this run writes (the setup's clock in ms).
    pub trace_stamp: u64,
    pub trace_experiment: Option<String>,
    pub search_traces: u64,
    /// Seconds spent exporting the trace fixture, then tagging it.
    pub trace_ingest_s: Option<f64>,
    pub trace_tag_s: Option<f64>,
    /// Fixture requests the server asked to repeat (busy database) while building the traces.
    pub trace_setup_retries: u64,
    pub ingest_experiment: Option<String>,
    pub post_path: Option<String>,
    pub post_body_bytes: usize,
    #[serde(skip)]
    pub post_body: Bytes,
}

/// Per-worker mutable state carried from one operation to the next.
pub struct WorkerState {
    pub worker: usize,
    pub run_id: Option<String>,
    pub iteration: u64,
    rng: XorShift,
}

impl WorkerState {
    pub fn new(worker: usize) -> Self {
        Self {
            worker,
            run_id: None,
            iteration: 0,
            rng: XorShift::new(0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1)),
        }
    }
}

/// A deterministic, dependency-free generator: metric values only need to vary, not be good
/// random numbers.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A log-batch body of `keys * steps` metrics; `first_step` makes every batch of a run distinct
/// so no server can collapse repeated rows.
pub fn log_batch_body(
    run_id: &str,
    keys: u64,
    steps: u64,
    first_step: u64,
    timestamp: u64,
    rng: &mut XorShift,
) -> Bytes {
    let mut s = String::with_capacity((keys * steps * 72 + 64) as usize);
    let _ = write!(s, r#"{{"run_id":"{run_id}","metrics":["#);
    let mut first = true;
    for step in first_step..first_step + steps {
        for k in 0..keys {
            if !first {
                s.push(',');
            }
            first = false;
            let _ = write!(
                s,
                r#"{{"key":"m{k:03}","value":{},"timestamp":{timestamp},"step":{step}}}"#,
                rng.unit()
            );
        }
    }
    s.push_str("]}");
    Bytes::from(s)
}

/// A history chunk for the get-history fixture: one key, consecutive steps.
fn history_chunk_body(run_id: &str, first_step: u64, count: u64, base_ts: u64) -> Bytes {
    let mut s = String::with_capacity((count * 64 + 64) as usize);
    let _ = write!(s, r#"{{"run_id":"{run_id}","metrics":["#);
    for step in first_step..first_step + count {
        if step != first_step {
            s.push(',');
        }
        // A decaying loss curve with wiggle, so values look like training output.
        let value = 2.0 / (1.0 + step as f64 / 500.0) + ((step % 97) as f64) * 1e-4;
        let _ = write!(
            s,
            r#"{{"key":"{HISTORY_KEY}","value":{value},"timestamp":{},"step":{step}}}"#,
            base_ts + step
        );
    }
    s.push_str("]}");
    Bytes::from(s)
}

pub fn log_metric_body(run_id: &str, step: u64, timestamp: u64, value: f64) -> Bytes {
    Bytes::from(
        json!({
            "run_id": run_id,
            "run_uuid": run_id,
            "key": "loss",
            "value": value,
            "timestamp": timestamp,
            "step": step,
        })
        .to_string(),
    )
}

pub fn create_run_body(experiment_id: &str, run_name: &str, start_time: u64) -> Bytes {
    Bytes::from(
        json!({
            "experiment_id": experiment_id,
            "user_id": "bench",
            "run_name": run_name,
            "start_time": start_time,
            "tags": [
                {"key": "mlflow.user", "value": "bench"},
                {"key": "mlflow.source.name", "value": "train.py"},
                {"key": "mlflow.source.type", "value": "LOCAL"},
                {"key": "mlflow.runName", "value": run_name},
            ],
        })
        .to_string(),
    )
}

pub fn search_body(experiment_id: &str) -> Bytes {
    Bytes::from(
        json!({
            "experiment_ids": [experiment_id],
            "filter": SEARCH_FILTER,
            "run_view_type": "ACTIVE_ONLY",
            "max_results": SEARCH_MAX_RESULTS,
            "order_by": [SEARCH_ORDER_BY],
        })
        .to_string(),
    )
}

/// A `traces/search` body as the MLflow client writes it (`SearchTracesV3`).
pub fn trace_search_body(
    experiment_id: &str,
    filter: Option<&str>,
    max_results: u64,
    page_token: Option<&str>,
) -> Bytes {
    let mut body = json!({
        "locations": [{
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": experiment_id},
        }],
        "max_results": max_results,
        "order_by": [TRACE_SEARCH_ORDER_BY],
    });
    if let Some(filter) = filter {
        body["filter"] = json!(filter);
    }
    if let Some(token) = page_token {
        body["page_token"] = json!(token);
    }
    Bytes::from(body.to_string())
}

/// The `bucket` tag of fixture trace `index`: a hash, not `index % 10`, so the searched bucket
/// is spread over the whole time range the way a real tag would be.
pub fn trace_bucket(index: u64) -> u64 {
    let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) % TRACE_BUCKETS
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Percent-encodes a query value (page tokens are base64 and carry `+`, `/` and `=`).
pub fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn history_path(run_id: &str, page_size: u64, token: Option<&str>) -> String {
    let mut path = format!(
        "{API}/metrics/get-history?run_id={run_id}&run_uuid={run_id}&metric_key={HISTORY_KEY}&max_results={page_size}"
    );
    if let Some(token) = token {
        let _ = write!(path, "&page_token={}", encode_query(token));
    }
    path
}

async fn post(conn: &mut Conn, path: &str, body: Bytes) -> Result<Value> {
    conn.send(Method::POST, &format!("{API}{path}"), Some(body))
        .await
        .with_context(|| format!("POST {path}"))?
        .ok_json()
        .with_context(|| format!("POST {path}"))
}

async fn create_experiment(conn: &mut Conn, name: &str) -> Result<String> {
    let reply = post(
        conn,
        "/experiments/create",
        Bytes::from(json!({ "name": name }).to_string()),
    )
    .await?;
    reply["experiment_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("experiments/create answered without experiment_id: {reply}"))
}

async fn create_run(conn: &mut Conn, experiment_id: &str, name: &str) -> Result<String> {
    let reply = post(
        conn,
        "/runs/create",
        create_run_body(experiment_id, name, now_ms()),
    )
    .await?;
    reply["run"]["info"]["run_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("runs/create answered without run.info.run_id: {reply}"))
}

/// Attempts of one setup request answered "try again" before giving up, as many as the MLflow
/// client makes by default.
const SETUP_RETRIES: u32 = 7;

/// One setup request, sent again after a growing pause while the server answers 429 or 5xx
/// "unavailable": MLflow on SQLite answers 503 when concurrent writers keep its database
/// locked, and its own client retries those. Each retry is counted in `retries`; only the
/// untimed setup retries, a timed request that fails is an error.
async fn send_setup(
    conn: &mut Conn,
    method: Method,
    path: &str,
    body: Bytes,
    content_type: &str,
    header: Option<(&str, &str)>,
    retries: &AtomicU64,
) -> Result<Reply> {
    let mut attempt = 0;
    loop {
        let reply = conn
            .send_with(
                method.clone(),
                path,
                Some(body.clone()),
                content_type,
                header,
            )
            .await
            .with_context(|| format!("{method} {path}"))?;
        let again = matches!(reply.status.as_u16(), 429 | 502 | 503 | 504);
        if reply.status.is_success() || !again || attempt == SETUP_RETRIES {
            if !reply.status.is_success() {
                bail!(
                    "{method} {path}: status {}: {}",
                    reply.status,
                    snippet(&reply.body)
                );
            }
            return Ok(reply);
        }
        retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
        attempt += 1;
    }
}

/// Work items of the untimed setup, spread over the setup workers.
enum SetupJob {
    /// One search run: create, then one log-batch with its metrics, params and tags.
    SearchRun { experiment_id: String },
    /// One log-batch chunk of the long history.
    HistoryChunk {
        run_id: String,
        total: u64,
        base_ts: u64,
    },
    /// One OTLP export of fixture traces.
    TraceBatch {
        experiment_id: String,
        stamp: u64,
        total: u64,
        base_ms: u64,
    },
    /// The `bucket` tag of one fixture trace, set the way the client sets it. MLflow makes
    /// root-span attributes named `mlflow.traceTag.<key>` into tags on ingest, but that is not
    /// part of OTLP and not every server does it; a tag set through the API is on both.
    TraceTag { stamp: u64 },
}

impl SetupJob {
    async fn run(&self, conn: &mut Conn, index: u64, retries: &AtomicU64) -> Result<()> {
        match self {
            SetupJob::SearchRun { experiment_id } => {
                let name = format!("search-{index:05}");
                let run_id = create_run(conn, experiment_id, &name).await?;
                // Seeded by index so both servers hold the same data set.
                let mut rng = XorShift::new(0xA5A5_0000 + index);
                let p1 = ["a", "b", "c", "d"][(rng.next_u64() % 4) as usize];
                let body = json!({
                    "run_id": run_id,
                    "metrics": [
                        {"key": "m1", "value": rng.unit(), "timestamp": now_ms(), "step": 0},
                        {"key": "m2", "value": rng.unit() * 10.0, "timestamp": now_ms(), "step": 0},
                    ],
                    "params": [
                        {"key": "p1", "value": p1},
                        {"key": "p2", "value": format!("{}", 10u64.pow((index % 4) as u32))},
                    ],
                    "tags": [{"key": "t1", "value": format!("group-{}", index % 10)}],
                });
                post(conn, "/runs/log-batch", Bytes::from(body.to_string())).await?;
            }
            SetupJob::HistoryChunk {
                run_id,
                total,
                base_ts,
            } => {
                let first = index * SETUP_BATCH;
                let count = SETUP_BATCH.min(total - first);
                post(
                    conn,
                    "/runs/log-batch",
                    history_chunk_body(run_id, first, count, *base_ts),
                )
                .await?;
            }
            SetupJob::TraceBatch {
                experiment_id,
                stamp,
                total,
                base_ms,
            } => {
                let first = index * TRACE_SETUP_BATCH;
                let count = TRACE_SETUP_BATCH.min(total - first);
                let body = otlp::fixture_batch(*stamp, first, count, *base_ms);
                send_setup(
                    conn,
                    Method::POST,
                    OTLP_PATH,
                    body,
                    OTLP_CONTENT_TYPE,
                    Some((EXPERIMENT_ID_HEADER, experiment_id)),
                    retries,
                )
                .await?;
            }
            SetupJob::TraceTag { stamp } => {
                let trace_id = otlp::mlflow_trace_id(*stamp, index);
                let path = format!("{API}/traces/{trace_id}/tags");
                let body = json!({
                    "key": TRACE_TAG_KEY,
                    "value": format!("b{}", trace_bucket(index)),
                });
                send_setup(
                    conn,
                    Method::PATCH,
                    &path,
                    Bytes::from(body.to_string()),
                    "application/json",
                    None,
                    retries,
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// Runs `items` jobs over `concurrency` workers; returns how many requests had to be retried.
async fn run_setup(
    targets: &[Target],
    concurrency: usize,
    timeout: Duration,
    job: SetupJob,
    items: u64,
) -> Result<u64> {
    let job = Arc::new(job);
    let next = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1) {
        let (job, next, retries) = (job.clone(), next.clone(), retries.clone());
        let mut conn = Conn::new(targets[w % targets.len()].clone(), timeout);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items {
                    return Ok::<_, anyhow::Error>(());
                }
                if let Err(e) = job.run(&mut conn, i, &retries).await {
                    // Stop the other workers too: a broken setup is not worth finishing.
                    next.fetch_max(items, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(retries.load(Ordering::Relaxed))
}

/// What the sanity checks after setup found; a benchmark of wrong answers is worthless, so the
/// driver shows these next to the figures.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Checks {
    pub search_returned: Option<usize>,
    pub search_ok: Option<bool>,
    pub history_points_read: Option<u64>,
    pub history_ok: Option<bool>,
    pub trace_search_returned: Option<usize>,
    pub trace_search_ok: Option<bool>,
    /// Fixture traces the trace search filter finds when read to the last page, against how
    /// many were tagged into that bucket.
    pub traces_in_bucket_read: Option<u64>,
    pub traces_in_bucket_expected: Option<u64>,
    /// After ingest-spans: traces acknowledged with a 2xx, how many the experiment holds, and
    /// the spans read back of one of them.
    pub ingest_traces_acknowledged: Option<u64>,
    pub ingest_traces_read: Option<u64>,
    pub ingest_spans_read: Option<u64>,
    pub ingest_ok: Option<bool>,
    pub problems: Vec<String>,
}

pub struct SetupOptions {
    pub concurrency: usize,
    pub timeout: Duration,
    pub search_runs: u64,
    pub history_points: u64,
    pub history_page_size: u64,
    pub search_traces: u64,
    pub need_search: bool,
    pub need_history: bool,
    pub need_traces: bool,
    pub need_ingest: bool,
}

pub async fn setup(targets: &[Target], opts: &SetupOptions) -> Result<(Fixture, Checks)> {
    let stamp = now_ms();
    let mut conn = Conn::new(targets[0].clone(), opts.timeout);
    let mut fixture = Fixture {
        logging_experiment: create_experiment(&mut conn, &format!("bench-logging-{stamp}")).await?,
        create_experiment: create_experiment(&mut conn, &format!("bench-create-{stamp}")).await?,
        history_page_size: opts.history_page_size,
        trace_stamp: stamp,
        ..Fixture::default()
    };
    let mut checks = Checks::default();

    if opts.need_search {
        let experiment_id = create_experiment(&mut conn, &format!("bench-search-{stamp}")).await?;
        let started = std::time::Instant::now();
        run_setup(
            targets,
            opts.concurrency,
            opts.timeout,
            SetupJob::SearchRun {
                experiment_id: experiment_id.clone(),
            },
            opts.search_runs,
        )
        .await
        .context("setting up the runs to search")?;
        eprintln!(
            "  setup: {} runs for search in {:.1}s",
            opts.search_runs,
            started.elapsed().as_secs_f64()
        );
        check_search(&mut conn, &experiment_id, &mut checks).await?;
        fixture.search_experiment = Some(experiment_id);
        fixture.search_runs = opts.search_runs;
    }

    if opts.need_history {
        let experiment_id = create_experiment(&mut conn, &format!("bench-history-{stamp}")).await?;
        let run_id = create_run(&mut conn, &experiment_id, "history").await?;
        let started = std::time::Instant::now();
        let chunks = opts.history_points.div_ceil(SETUP_BATCH);
        run_setup(
            targets,
            opts.concurrency,
            opts.timeout,
            SetupJob::HistoryChunk {
                run_id: run_id.clone(),
                total: opts.history_points,
                base_ts: stamp,
            },
            chunks,
        )
        .await
        .context("setting up the long metric history")?;
        eprintln!(
            "  setup: {} history points in {:.1}s",
            opts.history_points,
            started.elapsed().as_secs_f64()
        );
        let read = read_history(&mut conn, &run_id, opts.history_page_size).await?;
        checks.history_points_read = Some(read.points);
        let ok = read.points == opts.history_points;
        if !ok {
            checks.problems.push(format!(
                "get-history returned {} points, expected {}",
                read.points, opts.history_points
            ));
        }
        checks.history_ok = Some(ok);
        fixture.history_run = Some(run_id);
        fixture.history_points = opts.history_points;
    }

    if opts.need_traces {
        let experiment_id = create_experiment(&mut conn, &format!("bench-traces-{stamp}")).await?;
        let total = opts.search_traces;
        let started = std::time::Instant::now();
        let mut retries = run_setup(
            targets,
            opts.concurrency,
            opts.timeout,
            SetupJob::TraceBatch {
                experiment_id: experiment_id.clone(),
                stamp,
                total,
                // Every trace a millisecond after the previous, the newest one a second ago.
                base_ms: stamp.saturating_sub(total + 1000),
            },
            total.div_ceil(TRACE_SETUP_BATCH),
        )
        .await
        .context("exporting the traces to search")?;
        let ingest_s = started.elapsed().as_secs_f64();
        eprintln!("  setup: {total} traces exported over OTLP in {ingest_s:.1}s");
        let started = std::time::Instant::now();
        retries += run_setup(
            targets,
            opts.concurrency,
            opts.timeout,
            SetupJob::TraceTag { stamp },
            total,
        )
        .await
        .context("tagging the traces to search")?;
        let tag_s = started.elapsed().as_secs_f64();
        eprintln!("  setup: {total} traces tagged in {tag_s:.1}s ({retries} requests retried)");
        check_trace_search(&mut conn, &experiment_id, stamp, total, &mut checks).await?;
        fixture.trace_experiment = Some(experiment_id);
        fixture.search_traces = total;
        fixture.trace_ingest_s = Some(ingest_s);
        fixture.trace_tag_s = Some(tag_s);
        fixture.trace_setup_retries = retries;
    }

    if opts.need_ingest {
        fixture.ingest_experiment =
            Some(create_experiment(&mut conn, &format!("bench-ingest-{stamp}")).await?);
    }
    for problem in &checks.problems {
        eprintln!("  WARNING: {problem}");
    }
    Ok((fixture, checks))
}

/// Runs the timed search once and verifies the answer obeys the filter and the ordering.
async fn check_search(conn: &mut Conn, experiment_id: &str, checks: &mut Checks) -> Result<()> {
    let reply = post(conn, "/runs/search", search_body(experiment_id)).await?;
    let runs = reply["runs"].as_array().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    let mut previous = f64::INFINITY;
    for run in &runs {
        let m1 = run["data"]["metrics"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["key"] == "m1"))
            .and_then(|m| m["value"].as_f64());
        let p1 = run["data"]["params"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["key"] == "p1"))
            .and_then(|p| p["value"].as_str());
        match (m1, p1) {
            (Some(m1), Some("a")) if m1 > 0.5 => {
                if m1 > previous {
                    problems.push("search results are not ordered by metrics.m1 DESC".to_owned());
                    break;
                }
                previous = m1;
            }
            _ => {
                problems.push(format!(
                    "search returned a run outside the filter (m1={m1:?}, p1={p1:?})"
                ));
                break;
            }
        }
    }
    if runs.is_empty() {
        problems.push("search returned no runs".to_owned());
    }
    checks.search_returned = Some(runs.len());
    checks.search_ok = Some(problems.is_empty());
    checks.problems.extend(problems);
    Ok(())
}

async fn search_traces_page(conn: &mut Conn, body: Bytes) -> Result<(Vec<Value>, Option<String>)> {
    let path = format!("{API_V3}/traces/search");
    let reply = conn
        .send(Method::POST, &path, Some(body))
        .await
        .with_context(|| format!("POST {path}"))?
        .ok_json()
        .with_context(|| format!("POST {path}"))?;
    let traces = match &reply["traces"] {
        Value::Array(traces) => traces.clone(),
        Value::Null => Vec::new(),
        other => bail!("traces/search answered with traces = {other}"),
    };
    let token = reply["next_page_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    Ok((traces, token))
}

/// Every trace of an experiment the search finds, read in the largest pages MLflow allows.
async fn read_all_traces(
    conn: &mut Conn,
    experiment_id: &str,
    filter: Option<&str>,
) -> Result<Vec<Value>> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_TRACE_PAGES {
        let body = trace_search_body(experiment_id, filter, TRACE_READ_PAGE, token.as_deref());
        let (traces, next) = search_traces_page(conn, body).await?;
        all.extend(traces);
        match next {
            Some(next) => token = Some(next),
            None => return Ok(all),
        }
    }
    bail!("traces/search did not finish within {MAX_TRACE_PAGES} pages")
}

/// Runs the timed trace search once and verifies the answer is exactly the newest
/// [`TRACE_SEARCH_MAX_RESULTS`] traces of the searched bucket, newest first; then reads the
/// whole bucket back to see that every trace of it was stored and tagged.
async fn check_trace_search(
    conn: &mut Conn,
    experiment_id: &str,
    stamp: u64,
    total: u64,
    checks: &mut Checks,
) -> Result<()> {
    let in_bucket: Vec<u64> = (0..total)
        .rev()
        .filter(|&i| trace_bucket(i) == SEARCHED_BUCKET)
        .collect();
    let expected: Vec<u64> = in_bucket
        .iter()
        .copied()
        .take(TRACE_SEARCH_MAX_RESULTS as usize)
        .collect();
    let body = trace_search_body(
        experiment_id,
        Some(TRACE_SEARCH_FILTER),
        TRACE_SEARCH_MAX_RESULTS,
        None,
    );
    let (traces, _) = search_traces_page(conn, body).await?;
    let wanted_tag = format!("b{SEARCHED_BUCKET}");
    let mut problems = Vec::new();
    let mut got = Vec::with_capacity(traces.len());
    for trace in &traces {
        let id = trace["trace_id"].as_str().unwrap_or("");
        let tag = trace["tags"][TRACE_TAG_KEY].as_str();
        match otlp::parse_trace_id(id, stamp) {
            Some(index) if tag == Some(wanted_tag.as_str()) => got.push(index),
            _ => {
                problems.push(format!(
                    "trace search returned a trace outside the filter ({id}, {TRACE_TAG_KEY}={tag:?})"
                ));
                break;
            }
        }
    }
    if problems.is_empty() && got.windows(2).any(|w| w[0] <= w[1]) {
        problems.push(format!(
            "trace search results are not ordered by {TRACE_SEARCH_ORDER_BY}"
        ));
    }
    if problems.is_empty() && got != expected {
        problems.push(format!(
            "trace search returned {} traces, not the newest {} of bucket {wanted_tag}",
            got.len(),
            expected.len()
        ));
    }
    checks.trace_search_returned = Some(traces.len());
    checks.trace_search_ok = Some(problems.is_empty());

    let read = read_all_traces(conn, experiment_id, Some(TRACE_SEARCH_FILTER))
        .await?
        .len() as u64;
    checks.traces_in_bucket_read = Some(read);
    checks.traces_in_bucket_expected = Some(in_bucket.len() as u64);
    if read != in_bucket.len() as u64 {
        problems.push(format!(
            "reading bucket {wanted_tag} back found {read} traces, expected {}",
            in_bucket.len()
        ));
    }
    checks.problems.extend(problems);
    Ok(())
}

/// After ingest-spans: every acknowledged trace must be in the experiment (a request that timed
/// out may have been stored too, hence the upper bound), and one of them must read back whole.
pub async fn check_ingest(
    target: &Target,
    timeout: Duration,
    fixture: &Fixture,
    acknowledged: u64,
    failed: u64,
    checks: &mut Checks,
) -> Result<()> {
    let experiment_id = fixture
        .ingest_experiment
        .as_deref()
        .ok_or_else(|| anyhow!("ingest experiment missing"))?;
    let mut conn = Conn::new(target.clone(), timeout);
    let traces = read_all_traces(&mut conn, experiment_id, None).await?;
    let read = traces.len() as u64;
    let mut problems = Vec::new();
    if read < acknowledged || read > acknowledged + failed {
        problems.push(format!(
            "ingest-spans: the experiment holds {read} traces, {acknowledged} were acknowledged"
        ));
    }
    let mut spans_read = None;
    if let Some(trace_id) = traces.first().and_then(|t| t["trace_id"].as_str()) {
        let path = format!("{API_V3}/traces/get?trace_id={}", encode_query(trace_id));
        let reply = conn
            .send(Method::GET, &path, None)
            .await
            .with_context(|| format!("GET {path}"))?
            .ok_json()
            .with_context(|| format!("GET {path}"))?;
        let spans = reply["trace"]["spans"].as_array().map_or(0, Vec::len) as u64;
        spans_read = Some(spans);
        if spans != otlp::SPANS_PER_INGEST_TRACE {
            problems.push(format!(
                "ingest-spans: trace {trace_id} reads back with {spans} spans, sent {}",
                otlp::SPANS_PER_INGEST_TRACE
            ));
        }
    }
    checks.ingest_traces_acknowledged = Some(acknowledged);
    checks.ingest_traces_read = Some(read);
    checks.ingest_spans_read = spans_read;
    checks.ingest_ok = Some(problems.is_empty());
    for problem in &problems {
        eprintln!("  WARNING: {problem}");
    }
    checks.problems.extend(problems);
    Ok(())
}

/// A history page, parsed only as far as counting points and finding the next token: building a
/// full JSON tree of 25000 points would put the client's parsing time into the server's latency.
#[derive(Deserialize)]
struct HistoryPage {
    #[serde(default)]
    metrics: Vec<IgnoredAny>,
    next_page_token: Option<String>,
}

pub struct HistoryRead {
    pub points: u64,
    pub pages: u64,
}

/// Reads a whole history the way the MLflow client does: pages of `page_size`, following
/// `next_page_token` until the server stops sending one.
pub async fn read_history(conn: &mut Conn, run_id: &str, page_size: u64) -> Result<HistoryRead> {
    let mut token: Option<String> = None;
    let mut read = HistoryRead {
        points: 0,
        pages: 0,
    };
    for _ in 0..MAX_HISTORY_PAGES {
        let path = history_path(run_id, page_size, token.as_deref());
        let reply = conn.send(Method::GET, &path, None).await?;
        read.pages += 1;
        if !reply.status.is_success() {
            bail!("status {}: {}", reply.status, snippet(&reply.body));
        }
        let page: HistoryPage = serde_json::from_slice(&reply.body).with_context(|| {
            format!(
                "get-history answered with a body that is not a page: {}",
                snippet(&reply.body)
            )
        })?;
        read.points += page.metrics.len() as u64;
        match page.next_page_token {
            Some(next) if !next.is_empty() => token = Some(next),
            _ => return Ok(read),
        }
    }
    bail!("get-history did not finish within {MAX_HISTORY_PAGES} pages")
}

/// Done before the timed loop starts: a run of the worker's own for the logging scenarios.
pub async fn prepare_worker(
    scenario: Scenario,
    conn: &mut Conn,
    fixture: &Fixture,
    state: &mut WorkerState,
) -> Result<()> {
    if scenario.needs_own_run() {
        let name = format!("{}-w{}", scenario.name(), state.worker);
        state.run_id = Some(create_run(conn, &fixture.logging_experiment, &name).await?);
    }
    Ok(())
}

/// A ready-to-send request; built before the clock starts so body generation is not measured.
pub enum Prepared {
    Post {
        path: String,
        body: Bytes,
    },
    History {
        run_id: String,
        page_size: u64,
    },
    /// An OTLP/HTTP export in protobuf into one experiment.
    Otlp {
        experiment_id: String,
        body: Bytes,
    },
}

pub fn prepare_op(
    scenario: Scenario,
    fixture: &Fixture,
    state: &mut WorkerState,
) -> Result<Prepared> {
    state.iteration += 1;
    let i = state.iteration;
    let own_run = || {
        state
            .run_id
            .clone()
            .ok_or_else(|| anyhow!("worker has no run"))
    };
    Ok(match scenario {
        Scenario::LogBatch10 | Scenario::LogBatch1000 => {
            let run_id = own_run()?;
            // 10 keys at one step, or 100 keys over 10 steps: per-layer stats of a training loop.
            let (keys, steps) = if scenario == Scenario::LogBatch10 {
                (10, 1)
            } else {
                (100, 10)
            };
            Prepared::Post {
                path: format!("{API}/runs/log-batch"),
                body: log_batch_body(&run_id, keys, steps, i * steps, now_ms(), &mut state.rng),
            }
        }
        Scenario::LogMetric => {
            let run_id = own_run()?;
            let value = state.rng.unit();
            Prepared::Post {
                path: format!("{API}/runs/log-metric"),
                body: log_metric_body(&run_id, i, now_ms(), value),
            }
        }
        Scenario::CreateRun => Prepared::Post {
            path: format!("{API}/runs/create"),
            body: create_run_body(
                &fixture.create_experiment,
                &format!("run-w{}-{i}", state.worker),
                now_ms(),
            ),
        },
        Scenario::SearchRuns => {
            let experiment_id = fixture
                .search_experiment
                .as_deref()
                .ok_or_else(|| anyhow!("search fixture missing"))?;
            Prepared::Post {
                path: format!("{API}/runs/search"),
                body: search_body(experiment_id),
            }
        }
        Scenario::GetHistory => Prepared::History {
            run_id: fixture
                .history_run
                .clone()
                .ok_or_else(|| anyhow!("history fixture missing"))?,
            page_size: fixture.history_page_size,
        },
        Scenario::SearchTraces => {
            let experiment_id = fixture
                .trace_experiment
                .as_deref()
                .ok_or_else(|| anyhow!("trace fixture missing"))?;
            Prepared::Post {
                path: format!("{API_V3}/traces/search"),
                body: trace_search_body(
                    experiment_id,
                    Some(TRACE_SEARCH_FILTER),
                    TRACE_SEARCH_MAX_RESULTS,
                    None,
                ),
            }
        }
        Scenario::IngestSpans => Prepared::Otlp {
            experiment_id: fixture
                .ingest_experiment
                .clone()
                .ok_or_else(|| anyhow!("ingest experiment missing"))?,
            body: otlp::ingest_trace(
                fixture.trace_stamp,
                otlp::ingest_trace_low(state.worker, i),
                now_ns(),
            ),
        },
        Scenario::PostBody => Prepared::Post {
            path: fixture
                .post_path
                .clone()
                .ok_or_else(|| anyhow!("post-body needs --path and --body-file"))?,
            // A reference-counted handle: every request sends the same bytes without a copy.
            body: fixture.post_body.clone(),
        },
    })
}

/// Sends one prepared operation; returns the number of HTTP requests it took.
pub async fn execute(conn: &mut Conn, op: Prepared) -> Result<u64> {
    match op {
        Prepared::Post { path, body } => {
            let reply: Reply = conn.send(Method::POST, &path, Some(body)).await?;
            if !reply.status.is_success() {
                bail!("status {}: {}", reply.status, snippet(&reply.body));
            }
            Ok(1)
        }
        Prepared::History { run_id, page_size } => {
            Ok(read_history(conn, &run_id, page_size).await?.pages)
        }
        Prepared::Otlp {
            experiment_id,
            body,
        } => {
            let reply = conn
                .send_with(
                    Method::POST,
                    OTLP_PATH,
                    Some(body),
                    OTLP_CONTENT_TYPE,
                    Some((EXPERIMENT_ID_HEADER, &experiment_id)),
                )
                .await?;
            if !reply.status.is_success() {
                bail!("status {}: {}", reply.status, snippet(&reply.body));
            }
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.name()).unwrap(), s);
        }
        assert!(Scenario::parse("nope").is_err());
    }

    #[test]
    fn log_batch_bodies_are_valid_and_distinct() {
        let mut rng = XorShift::new(1);
        let a: Value =
            serde_json::from_slice(&log_batch_body("r", 100, 10, 10, 5, &mut rng)).unwrap();
        let b: Value =
            serde_json::from_slice(&log_batch_body("r", 100, 10, 20, 5, &mut rng)).unwrap();
        let metrics = a["metrics"].as_array().unwrap();
        assert_eq!(metrics.len(), 1000);
        let mut seen = std::collections::HashSet::new();
        for m in metrics.iter().chain(b["metrics"].as_array().unwrap()) {
            assert!(seen.insert((m["key"].to_string(), m["step"].as_u64().unwrap())));
        }
        let ten: Value =
            serde_json::from_slice(&log_batch_body("r", 10, 1, 3, 5, &mut rng)).unwrap();
        assert_eq!(ten["metrics"].as_array().unwrap().len(), 10);
        assert_eq!(ten["run_id"], "r");
    }

    #[test]
    fn history_chunks_are_valid_json() {
        let v: Value = serde_json::from_slice(&history_chunk_body("r", 1000, 3, 7)).unwrap();
        let steps: Vec<u64> = v["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, vec![1000, 1001, 1002]);
    }

    #[test]
    fn history_pages_are_counted_without_a_tree() {
        let page: HistoryPage = serde_json::from_str(
            r#"{"metrics":[{"key":"loss","value":1.0,"timestamp":1,"step":0},{"key":"loss","value":0.5,"timestamp":2,"step":1}],"next_page_token":"eyJ"}"#,
        )
        .unwrap();
        assert_eq!(page.metrics.len(), 2);
        assert_eq!(page.next_page_token.as_deref(), Some("eyJ"));
        let empty: HistoryPage = serde_json::from_str("{}").unwrap();
        assert!(empty.metrics.is_empty() && empty.next_page_token.is_none());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query("eyJ+/="), "eyJ%2B%2F%3D");
        assert!(history_path("abc", 25000, Some("a=b")).ends_with("&page_token=a%3Db"));
    }

    #[test]
    fn trace_search_bodies_match_the_clients() {
        let body: Value = serde_json::from_slice(&trace_search_body(
            "7",
            Some(TRACE_SEARCH_FILTER),
            100,
            None,
        ))
        .unwrap();
        assert_eq!(
            body,
            json!({
                "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "7"}}],
                "filter": "tags.bucket = 'b3'",
                "max_results": 100,
                "order_by": ["timestamp_ms DESC"],
            })
        );
        let paged: Value =
            serde_json::from_slice(&trace_search_body("7", None, 500, Some("tok"))).unwrap();
        assert_eq!(paged["page_token"], "tok");
        assert!(paged.get("filter").is_none());
    }

    #[test]
    fn trace_buckets_are_spread_evenly() {
        let mut counts = [0u64; TRACE_BUCKETS as usize];
        for i in 0..100_000 {
            counts[trace_bucket(i) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn unit_values_stay_in_range() {
        let mut rng = XorShift::new(42);
        for _ in 0..10_000 {
            let v = rng.unit();
            assert!((0.0..1.0).contains(&v));
        }
    }
}
