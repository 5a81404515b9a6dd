//! Worker processes and the supervisors that keep them alive.
//!
//! Each worker slot has one supervisor task owning one process at a time. Supervisors take
//! jobs from a queue they share, so a request goes to whichever worker is free; a worker that
//! dies or overruns its deadline fails only the request it held, and its supervisor starts a
//! replacement while the other slots keep serving.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mlox_core::{Error, Result};
use tokio::io::{AsyncBufReadExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, Answer, EncodedRequest, ErrorKind, PROTOCOL_VERSION, WorkerMessage};

/// Thread-pool variables of the numeric libraries models use (OpenMP for XGBoost, LightGBM
/// and torch, BLAS for numpy and sklearn).
const THREAD_VARS: &[&str] = &[
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
];

/// Stderr lines kept per worker to explain a worker that dies before its handshake.
const STDERR_TAIL_LINES: usize = 20;

/// How long a worker that closed its output gets to report its exit status before being killed.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// What every worker of one model is started with.
#[derive(Debug)]
pub(crate) struct WorkerConfig {
    pub name: Arc<str>,
    pub python: PathBuf,
    pub script: PathBuf,
    pub model_dir: PathBuf,
    pub request_timeout: Duration,
    pub startup_timeout: Duration,
    pub threads: Option<usize>,
}

pub(crate) struct Job {
    pub request: EncodedRequest,
    pub reply: oneshot::Sender<Result<Answer>>,
}

pub(crate) type JobQueue = Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>;

/// Live worker pids by slot, for observability and for tests that kill workers.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    pids: Mutex<Vec<Option<u32>>>,
}

impl Slots {
    pub(crate) fn new(n: usize) -> Self {
        Slots {
            pids: Mutex::new(vec![None; n]),
        }
    }

    pub(crate) fn set(&self, slot: usize, pid: Option<u32>) {
        let mut pids = self.pids.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = pids.get_mut(slot) {
            *entry = pid;
        }
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        let pids = self.pids.lock().unwrap_or_else(PoisonError::into_inner);
        pids.iter().flatten().copied().collect()
    }
}

/// One running worker process that has loaded the model.
pub(crate) struct Worker {
    name: Arc<str>,
    pub slot: usize,
    pub pid: u32,
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

/// Why a call left the worker unusable.
enum CallFailure {
    TimedOut,
    /// The pipe closed or broke: the process is exiting or gone.
    Gone,
    /// The worker wrote something that is not the protocol; its stream cannot be trusted.
    Protocol(String),
}

impl Worker {
    /// Starts a worker and waits for it to load the model.
    pub(crate) async fn spawn(config: Arc<WorkerConfig>, slot: usize) -> Result<Worker> {
        let started = Instant::now();
        let mut command = Command::new(&config.python);
        command
            .arg(&config.script)
            .arg(&config.model_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONUNBUFFERED", "1")
            .kill_on_drop(true);
        if let Some(threads) = config.threads {
            for var in THREAD_VARS {
                // An operator's explicit setting wins over mlox's default.
                if std::env::var_os(var).is_none() {
                    command.env(var, threads.to_string());
                }
            }
        }
        let mut child = command.spawn().map_err(|e| {
            Error::internal(format!(
                "cannot start the Python interpreter {} for model '{}': {e}",
                config.python.display(),
                config.name
            ))
        })?;
        let pid = child.id().unwrap_or_default();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(Error::internal(
                "the worker process was started without pipes",
            ));
        };
        let (tail, forwarder) = forward_stderr(stderr, config.name.clone(), slot, pid);
        let mut stdout = BufReader::with_capacity(1 << 16, stdout);

        let handshake =
            tokio::time::timeout(config.startup_timeout, protocol::read_message(&mut stdout)).await;
        let failure = match handshake {
            Ok(Ok(Some((
                WorkerMessage::Ready {
                    protocol,
                    pid: reported_pid,
                    python_version,
                    mlflow_version,
                },
                _,
            )))) => {
                if protocol != PROTOCOL_VERSION {
                    return Err(Error::internal(format!(
                        "the Python worker speaks protocol {protocol}, mlox expects {PROTOCOL_VERSION}"
                    )));
                }
                tracing::info!(
                    model = %config.name,
                    worker = slot,
                    pid = reported_pid,
                    python = %python_version,
                    mlflow = %mlflow_version,
                    seconds = started.elapsed().as_secs_f64(),
                    "Python worker loaded the model"
                );
                return Ok(Worker {
                    name: config.name.clone(),
                    slot,
                    pid,
                    child,
                    stdin: BufWriter::with_capacity(1 << 16, stdin),
                    stdout,
                    next_id: 0,
                });
            }
            Ok(Ok(Some((
                WorkerMessage::LoadError {
                    error_type,
                    message,
                    location,
                },
                _,
            )))) => {
                let at = location.map(|l| format!(" (at {l})")).unwrap_or_default();
                return Err(Error::invalid(format!(
                    "model '{}' cannot be loaded by mlflow.pyfunc.load_model: {error_type}: {message}{at}",
                    config.name
                )));
            }
            Ok(Ok(Some((other, _)))) => format!("sent {other:?} instead of its handshake"),
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status = exit_status(&mut child).await;
                format!("exited ({status}) before loading the model")
            }
            Err(_) => format!(
                "did not load the model within {}s",
                config.startup_timeout.as_secs_f64()
            ),
        };
        // Once the process is gone its stderr ends; wait for the forwarder to have read the
        // last lines, which usually say why.
        let _ = child.start_kill();
        let _ = child.wait().await;
        let _ = tokio::time::timeout(Duration::from_secs(1), forwarder).await;
        let tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
        let output = if tail.is_empty() {
            String::new()
        } else {
            format!("; its last output:\n{}", Vec::from(tail.clone()).join("\n"))
        };
        Err(Error::internal(format!(
            "the Python worker for model '{}' ({}) {failure}{output}",
            config.name,
            config.python.display()
        )))
    }

    async fn call(
        &mut self,
        request: &EncodedRequest,
        timeout: Duration,
    ) -> std::result::Result<Result<Answer>, CallFailure> {
        self.next_id += 1;
        let id = self.next_id;
        let exchange = async {
            request.write(id, &mut self.stdin).await?;
            protocol::read_message(&mut self.stdout).await
        };
        let answer = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => return Err(CallFailure::TimedOut),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(CallFailure::Protocol(e.to_string()));
            }
            Ok(Err(_)) | Ok(Ok(None)) => return Err(CallFailure::Gone),
            Ok(Ok(Some(answer))) => answer,
        };
        match answer {
            (
                WorkerMessage::Ok {
                    id: answered,
                    output,
                    parts: metas,
                },
                parts,
            ) if answered == id => Ok(protocol::decode_answer(output, &metas, parts)),
            (
                WorkerMessage::Error {
                    id: answered,
                    error_kind,
                    error_type,
                    message,
                    location,
                },
                _,
            ) if answered == id => Ok(Err(match error_kind {
                ErrorKind::BadInput => Error::invalid(message),
                ErrorKind::MissingPackage => Error::unavailable(message),
                ErrorKind::Internal => {
                    tracing::warn!(
                        model = %self.name,
                        worker = self.slot,
                        pid = self.pid,
                        location = location.as_deref().unwrap_or("?"),
                        "the model raised {error_type}: {message}"
                    );
                    Error::internal(format!("{error_type}: {message}"))
                }
            })),
            (other, _) => Err(CallFailure::Protocol(format!(
                "answered request {id} with {other:?}"
            ))),
        }
    }

    /// Stops the process and says how it ended.
    async fn stop(mut self) -> String {
        exit_status(&mut self.child).await
    }
}

/// The exit status of a process that is exiting, or kills it if it does not exit promptly.
async fn exit_status(child: &mut Child) -> String {
    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(Ok(status)) => describe(status),
        Ok(Err(e)) => format!("status unknown: {e}"),
        Err(_) => {
            let _ = child.start_kill();
            match child.wait().await {
                Ok(status) => format!("stopped answering; killed: {}", describe(status)),
                Err(e) => format!("stopped answering; kill failed: {e}"),
            }
        }
    }
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => status.to_string(),
    }
}

/// Forwards a worker's stderr to the log line by line, keeping the last lines for error reports.
fn forward_stderr(
    stderr: ChildStderr,
    name: Arc<str>,
    slot: usize,
    pid: u32,
) -> (Arc<Mutex<VecDeque<String>>>, JoinHandle<()>) {
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
    let keep = tail.clone();
    let forwarder = tokio::spawn(async move {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        loop {
            line.clear();
            // Bytes, not `lines()`: invalid UTF-8 must not stop the draining, or a chatty
            // worker would block on a full pipe.
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if text.is_empty() {
                continue;
            }
            tracing::info!(
                target: "mlox_runtime::python::worker",
                model = %name,
                worker = slot,
                pid,
                "{text}"
            );
            let mut tail = keep.lock().unwrap_or_else(PoisonError::into_inner);
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text.to_owned());
        }
    });
    (tail, forwarder)
}

/// The delay before the next start after `failures` consecutive failures: the first restart is
/// immediate (one bad input should not cost the slot seconds), then exponential up to 30 s so a
/// model that cannot start does not spin.
pub(crate) fn restart_delay(failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let exponent = (failures - 2).min(7);
    Duration::from_millis(250u64 << exponent).min(Duration::from_secs(30))
}

/// Keeps one slot's worker running and feeds it jobs until the pool is dropped.
pub(crate) async fn supervise(
    config: Arc<WorkerConfig>,
    slot: usize,
    first: Worker,
    queue: JobQueue,
    slots: Arc<Slots>,
    cancel: CancellationToken,
) {
    tokio::select! {
        () = cancel.cancelled() => {}
        () = run_slot(&config, slot, first, &queue, &slots) => {}
    }
    slots.set(slot, None);
}

async fn run_slot(
    config: &Arc<WorkerConfig>,
    slot: usize,
    first: Worker,
    queue: &JobQueue,
    slots: &Slots,
) {
    let mut next = Some(first);
    let mut failures = 0u32;
    loop {
        let worker = match next.take() {
            Some(worker) => worker,
            None => {
                tokio::time::sleep(restart_delay(failures)).await;
                match Worker::spawn(config.clone(), slot).await {
                    Ok(worker) => worker,
                    Err(e) => {
                        failures += 1;
                        tracing::error!(
                            model = %config.name,
                            worker = slot,
                            retry_in_seconds = restart_delay(failures).as_secs_f64(),
                            "cannot restart the Python worker: {}",
                            e.message
                        );
                        continue;
                    }
                }
            }
        };
        slots.set(slot, Some(worker.pid));
        match serve(config, worker, queue, &mut failures).await {
            Served::QueueClosed => return,
            Served::WorkerLost => slots.set(slot, None),
        }
    }
}

enum Served {
    QueueClosed,
    WorkerLost,
}

async fn serve(
    config: &WorkerConfig,
    mut worker: Worker,
    queue: &JobQueue,
    failures: &mut u32,
) -> Served {
    loop {
        let job = tokio::select! {
            job = async { queue.lock().await.recv().await } => job,
            // A worker that dies while idle is replaced before a request can meet its corpse.
            status = worker.child.wait() => {
                let status = status.map(describe).unwrap_or_else(|e| e.to_string());
                *failures += 1;
                tracing::warn!(
                    model = %config.name,
                    worker = worker.slot,
                    pid = worker.pid,
                    "the idle Python worker exited ({status}); restarting it"
                );
                return Served::WorkerLost;
            }
        };
        let Some(job) = job else {
            return Served::QueueClosed;
        };
        if job.reply.is_closed() {
            continue; // the caller gave up while the job was queued
        }
        let failure = match worker.call(&job.request, config.request_timeout).await {
            Ok(result) => {
                *failures = 0;
                let _ = job.reply.send(result);
                continue;
            }
            Err(failure) => failure,
        };
        *failures += 1;
        let (slot, pid) = (worker.slot, worker.pid);
        let message = match failure {
            CallFailure::TimedOut => {
                let _ = worker.child.start_kill();
                let status = worker.stop().await;
                tracing::warn!(model = %config.name, worker = slot, pid, "the Python worker overran the request timeout; killed ({status})");
                format!(
                    "model '{}' did not answer within {}s; its worker process was stopped and is being restarted",
                    config.name,
                    config.request_timeout.as_secs_f64()
                )
            }
            CallFailure::Gone => {
                let status = worker.stop().await;
                tracing::warn!(model = %config.name, worker = slot, pid, "the Python worker exited ({status}) while predicting");
                format!(
                    "model '{}': the worker process exited ({status}) while predicting; it is being restarted",
                    config.name
                )
            }
            CallFailure::Protocol(what) => {
                let _ = worker.child.start_kill();
                let status = worker.stop().await;
                tracing::error!(model = %config.name, worker = slot, pid, "{what}; killed ({status})");
                format!(
                    "model '{}': the worker process broke the protocol while predicting; it is being restarted",
                    config.name
                )
            }
        };
        let _ = job.reply.send(Err(Error::unavailable(message)));
        return Served::WorkerLost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_after_the_first() {
        assert_eq!(restart_delay(0), Duration::ZERO);
        assert_eq!(restart_delay(1), Duration::ZERO);
        assert_eq!(restart_delay(2), Duration::from_millis(250));
        assert_eq!(restart_delay(3), Duration::from_millis(500));
        assert_eq!(restart_delay(9), Duration::from_secs(30));
        assert_eq!(restart_delay(1000), Duration::from_secs(30));
    }
}
