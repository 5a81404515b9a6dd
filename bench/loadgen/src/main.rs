//! `mlox-bench`: the load generator behind `bench/tracking` and `bench/serving`. It owns driving
//! one server (or several replicas of one): for tracking, through the MLflow REST API and
//! OTLP/HTTP trace export, with untimed setup of the data the read scenarios need; for serving,
//! one fixed request body POSTed over and over (`post-body`). Each scenario runs with N
//! concurrent keep-alive workers for a fixed duration or request count, and a JSON report of
//! throughput and latency percentiles goes to stdout. Starting and stopping servers, measuring their memory and CPU and comparing two
//! servers is the driver's job, not this binary's.

mod http;
mod otlp;
mod scenario;
mod stats;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde::Serialize;
use tokio::sync::Barrier;

use crate::http::{Conn, Target};
use crate::scenario::{Checks, Fixture, Scenario, SetupOptions, WorkerState};
use crate::stats::{Latency, Recorder, summarize};

#[derive(Parser, Debug)]
#[command(
    name = "mlox-bench",
    about = "Drive an MLflow-compatible tracking server, or POST one body to any HTTP endpoint, and report req/s and latency percentiles as JSON"
)]
struct Args {
    /// Base URL of the server; repeat or comma-separate for replicas (workers are spread
    /// round-robin over them).
    #[arg(long, required = true, value_delimiter = ',')]
    url: Vec<String>,
    /// Name recorded in the report, e.g. "mlox" or "mlflow".
    #[arg(long, default_value = "server")]
    label: String,
    /// Scenarios to run, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "log-batch-10,log-batch-1000,log-metric,create-run,search-runs,get-history,search-traces,ingest-spans"
    )]
    scenarios: Vec<String>,
    /// Concurrent workers, each with its own keep-alive connection.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Measured time per scenario.
    #[arg(long, default_value_t = 5.0)]
    duration_secs: f64,
    /// Stop a scenario after this many measured operations (whichever of this and the duration
    /// comes first).
    #[arg(long)]
    requests: Option<u64>,
    /// Unmeasured traffic before each scenario's clock starts.
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Per-request timeout; a request over it counts as an error.
    #[arg(long, default_value_t = 120.0)]
    timeout_secs: f64,
    /// Runs created for the search scenario.
    #[arg(long, default_value_t = 10_000)]
    search_runs: u64,
    /// Points of the metric read back by the get-history scenario.
    #[arg(long, default_value_t = 100_000)]
    history_points: u64,
    /// Traces exported and tagged for the search-traces scenario.
    #[arg(long, default_value_t = 60_000)]
    search_traces: u64,
    /// `max_results` per get-history page (the MLflow client uses 25000).
    #[arg(long, default_value_t = 25_000)]
    history_page_size: u64,
    /// Request path of the `post-body` scenario, e.g. `/v2/models/wine/infer`.
    #[arg(long)]
    path: Option<String>,
    /// File whose bytes the `post-body` scenario sends (as `application/json`) with every request.
    #[arg(long)]
    body_file: Option<std::path::PathBuf>,
    /// Workers used for the untimed setup (default: --concurrency).
    #[arg(long)]
    setup_concurrency: Option<usize>,
    /// Client runtime threads. One is plenty for 8 connections and leaves the other cores to
    /// the server under test.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Serialize)]
struct ScenarioResult {
    name: &'static str,
    concurrency: usize,
    /// Successful operations inside the measured window.
    ops: u64,
    errors: u64,
    /// HTTP requests behind those operations (get-history reads several pages per operation).
    http_requests: u64,
    /// Requests sent during the warm-up: whoever measures the server's CPU over the whole run
    /// divides by these plus `http_requests`.
    warmup_requests: u64,
    /// Warm-up operations that succeeded and failed: what the server stored beyond `ops`.
    warmup_ops: u64,
    warmup_errors: u64,
    elapsed_s: f64,
    ops_per_s: f64,
    /// For scenarios that send spans (ingest-spans): spans per operation, and the throughput
    /// in spans, the figure such a scenario is judged by.
    #[serde(skip_serializing_if = "Option::is_none")]
    spans_per_op: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spans_per_s: Option<f64>,
    latency_us: Option<Latency>,
    error_samples: Vec<String>,
}

#[derive(Serialize)]
struct Settings {
    concurrency: usize,
    duration_secs: f64,
    requests: Option<u64>,
    warmup_secs: f64,
    search_runs: u64,
    history_points: u64,
    history_page_size: u64,
    search_traces: u64,
    client_threads: usize,
}

#[derive(Serialize)]
struct Report {
    label: String,
    urls: Vec<String>,
    settings: Settings,
    setup_s: f64,
    fixture: Fixture,
    checks: Checks,
    scenarios: Vec<ScenarioResult>,
}

struct RunOptions {
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    requests: Option<u64>,
    timeout: Duration,
}

/// How one worker's measured phase ended.
struct WorkerOutcome {
    recorder: Recorder,
    finished: Instant,
}

async fn run_scenario(
    scenario: Scenario,
    targets: &[Target],
    fixture: Arc<Fixture>,
    opts: &RunOptions,
) -> Result<ScenarioResult> {
    let workers = opts.concurrency.max(1);
    // Everyone prepares, then everyone starts together, so connection set-up and per-worker runs
    // stay out of the window.
    let barrier = Arc::new(Barrier::new(workers + 1));
    let budget = Arc::new(AtomicU64::new(opts.requests.unwrap_or(u64::MAX)));
    let (start_tx, _) = tokio::sync::watch::channel(None::<(Instant, Instant)>);
    let start_tx = Arc::new(start_tx);

    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let mut conn = Conn::new(targets[w % targets.len()].clone(), opts.timeout);
        let (fixture, barrier, budget) = (fixture.clone(), barrier.clone(), budget.clone());
        let mut start_rx = start_tx.subscribe();
        tasks.push(tokio::spawn(async move {
            let mut state = WorkerState::new(w);
            let prepared =
                scenario::prepare_worker(scenario, &mut conn, &fixture, &mut state).await;
            barrier.wait().await;
            prepared?;
            let (measure_from, deadline) = loop {
                if let Some(window) = *start_rx.borrow_and_update() {
                    break window;
                }
                start_rx.changed().await?;
            };
            let mut recorder = Recorder::default();
            loop {
                let now = Instant::now();
                // An operation slower than the whole window (a long history read on a slow
                // server) would otherwise leave the scenario without a single sample: every
                // worker gets one measured operation even if it starts past the deadline.
                let has_sample = !recorder.latencies_us.is_empty() || recorder.errors > 0;
                if now >= deadline && has_sample {
                    break;
                }
                let measured = now >= measure_from;
                if measured
                    && budget
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                        .is_err()
                {
                    break;
                }
                let op = scenario::prepare_op(scenario, &fixture, &mut state)?;
                let sent = Instant::now();
                let result = scenario::execute(&mut conn, op).await;
                if !measured {
                    recorder.warmup_requests += result.as_ref().map_or(1, |&n| n);
                    match result {
                        Ok(_) => recorder.warmup_ops += 1,
                        Err(_) => recorder.warmup_errors += 1,
                    }
                    continue;
                }
                match result {
                    Ok(requests) => {
                        recorder
                            .latencies_us
                            .push(sent.elapsed().as_micros() as u64);
                        recorder.http_requests += requests;
                    }
                    Err(e) => {
                        recorder.http_requests += 1;
                        recorder.error(format!("{e:#}"));
                    }
                }
            }
            Ok::<_, anyhow::Error>(WorkerOutcome {
                recorder,
                finished: Instant::now(),
            })
        }));
    }

    barrier.wait().await;
    let measure_from = Instant::now() + opts.warmup;
    let window = (measure_from, measure_from + opts.duration);
    start_tx.send_replace(Some(window));

    let mut total = Recorder::default();
    let mut last_finish = measure_from;
    for task in tasks {
        let outcome = task
            .await?
            .with_context(|| format!("scenario {}", scenario.name()))?;
        last_finish = last_finish.max(outcome.finished);
        total.merge(outcome.recorder);
    }
    // Operations still in flight at the deadline finish late; the window stretches to cover them
    // rather than counting work it did not time.
    let elapsed = last_finish
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    total.latencies_us.sort_unstable();
    let ops = total.latencies_us.len() as u64;
    let ops_per_s = if elapsed > 0.0 {
        ops as f64 / elapsed
    } else {
        0.0
    };
    let spans_per_op = scenario.spans_per_op();
    Ok(ScenarioResult {
        name: scenario.name(),
        concurrency: workers,
        ops,
        errors: total.errors,
        http_requests: total.http_requests,
        warmup_requests: total.warmup_requests,
        warmup_ops: total.warmup_ops,
        warmup_errors: total.warmup_errors,
        elapsed_s: elapsed,
        ops_per_s,
        spans_per_op,
        spans_per_s: spans_per_op.map(|n| n as f64 * ops_per_s),
        latency_us: summarize(&total.latencies_us),
        error_samples: total.error_samples,
    })
}

async fn run(args: Args) -> Result<Report> {
    let targets = args
        .url
        .iter()
        .map(|u| Target::parse(u))
        .collect::<Result<Vec<_>>>()?;
    let scenarios = args
        .scenarios
        .iter()
        .map(|s| Scenario::parse(s.trim()))
        .collect::<Result<Vec<_>>>()?;
    if args.duration_secs <= 0.0 && args.requests.is_none() {
        bail!("give a positive --duration-secs or a --requests count");
    }
    let timeout = Duration::from_secs_f64(args.timeout_secs);
    let setup_opts = SetupOptions {
        concurrency: args.setup_concurrency.unwrap_or(args.concurrency),
        timeout,
        search_runs: args.search_runs,
        history_points: args.history_points,
        history_page_size: args.history_page_size,
        search_traces: args.search_traces,
        need_search: scenarios.iter().any(|s| s.needs_search_fixture()),
        need_history: scenarios.iter().any(|s| s.needs_history_fixture()),
        need_traces: scenarios.iter().any(|s| s.needs_trace_fixture()),
        need_ingest: scenarios.iter().any(|s| s.needs_ingest_experiment()),
    };
    let started = Instant::now();
    let (mut fixture, mut checks) = if scenarios.iter().any(|s| s.needs_tracking_server()) {
        eprintln!("[{}] setup on {}", args.label, args.url.join(","));
        scenario::setup(&targets, &setup_opts).await?
    } else {
        Default::default()
    };
    let setup_s = started.elapsed().as_secs_f64();
    if scenarios.contains(&Scenario::PostBody) {
        let (Some(path), Some(file)) = (&args.path, &args.body_file) else {
            bail!("the post-body scenario needs --path and --body-file");
        };
        if !path.starts_with('/') {
            bail!("--path must start with '/', got {path:?}");
        }
        let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        fixture.post_path = Some(path.clone());
        fixture.post_body_bytes = body.len();
        fixture.post_body = body.into();
    }
    let fixture = Arc::new(fixture);

    let run_opts = RunOptions {
        concurrency: args.concurrency,
        warmup: Duration::from_secs_f64(args.warmup_secs.max(0.0)),
        // A request count alone still gets a (generous) bound so the run always ends.
        duration: if args.duration_secs > 0.0 {
            Duration::from_secs_f64(args.duration_secs)
        } else {
            Duration::from_secs(3600)
        },
        requests: args.requests,
        timeout,
    };
    let mut results = Vec::new();
    for scenario in scenarios {
        let result = run_scenario(scenario, &targets, fixture.clone(), &run_opts).await?;
        if scenario.needs_ingest_experiment() {
            // Warm-up exports were stored too; a server that dropped any of them is as wrong
            // as one that dropped a measured one.
            scenario::check_ingest(
                &targets[0],
                timeout,
                &fixture,
                result.ops + result.warmup_ops,
                result.errors + result.warmup_errors,
                &mut checks,
            )
            .await
            .context("checking the ingested traces")?;
        }
        let spans = result
            .spans_per_s
            .map_or(String::new(), |v| format!("  ({v:.1} spans/s)"));
        eprintln!(
            "[{}] {:<15} {:>10.1} ops/s{spans}  p50 {:>9.2} ms  p99 {:>9.2} ms  ops {}  errors {}",
            args.label,
            result.name,
            result.ops_per_s,
            result
                .latency_us
                .as_ref()
                .map_or(0.0, |l| l.p50 as f64 / 1e3),
            result
                .latency_us
                .as_ref()
                .map_or(0.0, |l| l.p99 as f64 / 1e3),
            result.ops,
            result.errors,
        );
        results.push(result);
    }

    Ok(Report {
        label: args.label,
        urls: args.url,
        settings: Settings {
            concurrency: args.concurrency,
            duration_secs: args.duration_secs,
            requests: args.requests,
            warmup_secs: args.warmup_secs,
            search_runs: args.search_runs,
            history_points: args.history_points,
            history_page_size: args.history_page_size,
            search_traces: args.search_traces,
            client_threads: args.threads,
        },
        setup_s,
        fixture: (*fixture).clone(),
        checks,
        scenarios: results,
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(args))?;
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &report)?;
    writeln!(stdout)?;
    Ok(())
}
