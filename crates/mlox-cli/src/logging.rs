//! Where the process's log events go: to stderr for people (colours only on a terminal, never
//! escape codes in a log file; one JSON object per line with `MLOX_LOG_FORMAT=json`; filtered
//! by `MLOX_LOG`, default `info`), and, when the tracking server exposes Prometheus metrics, the
//! database library's per-statement events to those metrics. The second path has a filter of
//! its own, so timing statements never makes them appear in the log.
//!
//! Lines are written by a thread of their own: a request's task formats its line and queues it,
//! so the write itself (a system call per line, under the stderr lock) leaves the request path,
//! and lines that arrive together go out in one write. The queue is flushed after every batch;
//! a full queue, or a writer that is gone, makes the line be written directly rather than lost.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use mlox_tracking::metrics::TrackingMetrics;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

/// The target sqlx logs every statement under, with its summary and duration.
const STATEMENT_TARGET: &str = "sqlx::query";

/// Lines waiting for the writer thread; past this a line is written by its own task.
const QUEUED_LINES: usize = 16 * 1024;
/// How long the end of `main` waits for queued lines to be written.
const FLUSH_AT_EXIT: Duration = Duration::from_secs(2);

/// Keep this until `main` returns: dropping it writes out the lines still queued.
pub struct FlushOnExit {
    queue: mpsc::SyncSender<Queued>,
}

impl Drop for FlushOnExit {
    fn drop(&mut self) {
        let (done, flushed) = mpsc::sync_channel(1);
        if self.queue.send(Queued::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(FLUSH_AT_EXIT);
        }
    }
}

enum Queued {
    Line(Vec<u8>),
    Flush(mpsc::SyncSender<()>),
}

/// The subscriber's writer: each event's bytes are collected, then queued as one line.
#[derive(Clone)]
struct QueuedStderr {
    queue: mpsc::SyncSender<Queued>,
}

impl QueuedStderr {
    fn start() -> QueuedStderr {
        let (queue, lines) = mpsc::sync_channel::<Queued>(QUEUED_LINES);
        let started = std::thread::Builder::new()
            .name("mlox-log".into())
            .spawn(move || write_queued(lines));
        if let Err(e) = started {
            eprintln!("log lines are written directly: no writer thread ({e})");
        }
        QueuedStderr { queue }
    }
}

fn write_queued(lines: mpsc::Receiver<Queued>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    while let Ok(first) = lines.recv() {
        let mut acks = Vec::new();
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Queued::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Queued::Flush(ack) => acks.push(ack),
            }
            next = lines.try_recv().ok();
        }
        let _ = out.flush();
        for ack in acks {
            let _ = ack.send(());
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QueuedStderr {
    type Writer = QueuedLine;

    fn make_writer(&'a self) -> QueuedLine {
        QueuedLine {
            line: Vec::with_capacity(256),
            queue: self.queue.clone(),
        }
    }
}

struct QueuedLine {
    line: Vec<u8>,
    queue: mpsc::SyncSender<Queued>,
}

impl std::io::Write for QueuedLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine {
    fn drop(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.line);
        if let Err(mpsc::TrySendError::Full(Queued::Line(line)))
        | Err(mpsc::TrySendError::Disconnected(Queued::Line(line))) =
            self.queue.try_send(Queued::Line(line))
        {
            let _ = std::io::stderr().write_all(&line);
        }
    }
}

pub fn init(statement_metrics: Option<Arc<TrackingMetrics>>) -> FlushOnExit {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("MLOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = QueuedStderr::start();
    let flush = FlushOnExit {
        queue: writer.queue.clone(),
    };
    let stderr = tracing_subscriber::fmt::layer().with_writer(writer);
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
    flush
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
