//! MLflow pyfunc models served by a pool of Python worker processes: the Python backend of
//! mlox's runtimes, and the one every model no native backend takes falls back to. It owns
//! the worker pool, the worker script and the model's Python environment; it implements
//! mlox-runtime's `Predictor` and imports no other backend and no transport.
//!
//! Any model MLflow can load (custom `PythonModel`s, sklearn, xgboost, transformers, …) runs
//! here through `mlflow.pyfunc.load_model` in the model's own interpreter, so its predictions
//! are exactly those of MLflow. Python stays out of the server process: a worker that segfaults,
//! leaks or hangs is killed and replaced without touching other models or requests, and each
//! model can have its own venv (see [`EnvManager`]).
//!
//! # Transport: the worker's stdin/stdout
//!
//! Each worker is `python mlox_worker.py MODEL_DIR` (the script is embedded in this crate and
//! written to the cache dir on first use). Requests and answers travel over the child's stdin
//! and stdout rather than a Unix socket because a pipe is private to the pair (no socket path to
//! name, secure, clean up, or keep under the 108-byte `sun_path` limit), its end of file is the
//! most reliable crash signal there is, and a worker orphaned by a killed server sees EOF and
//! exits. The one hazard of stdout — model code that prints — is removed by the worker, which
//! moves the protocol to private descriptors and points fd 1 at stderr before importing
//! anything. Stderr is forwarded line by line to `tracing` with the model's name.
//!
//! # Wire protocol
//!
//! A message is `u32 LE header length | JSON header | parts`; the header lists each part's
//! byte length and every part is one Arrow IPC stream holding one record batch.
//! - worker → server, once: `{"status":"ready","protocol":1,"pid",..}` or
//!   `{"status":"load_error","error_type","message","location"}` (the innermost frame of the
//!   traceback, not the whole dump).
//! - server → worker: `{"id","input":"frame"|"tensors","params":{..},"parts":[{"name","shape","nbytes"}]}`.
//!   A frame is one part (its columns become a pandas DataFrame with pandas' own default
//!   dtypes: strings come out as `pd.DataFrame` would make them); tensors are one part each,
//!   a one-column batch of the flat row-major values, reshaped to `shape` in numpy. A single
//!   tensor with an empty name reaches the model as a bare ndarray, anything else as a dict.
//! - server → worker, for [`Predictor::predict_request`]: `{"id","input":"request","settings",
//!   "binary_inputs","parts":[{"nbytes"}]}` with one part, the V2 request's JSON; the worker
//!   decodes it with MLServer's own codecs (`mlserver` must be importable there) and answers
//!   `{"status":"ok","id","output":"response","parts":[..]}`, one part: the JSON of the outputs
//!   and parameters MLServer's codecs made of what `predict` returned.
//! - worker → server: `{"status":"ok","id","output":"frame"|"tensors","parts":[..]}` or
//!   `{"status":"error","id","error_kind":"bad_input"|"internal"|"missing_package",
//!   "error_type","message"}` (`missing_package` → [`Code::TemporarilyUnavailable`] naming it).
//!
//! Outputs: a DataFrame is a frame; a Series, a list, a 1-D array or a scalar is a one-column
//! frame named `predictions` (the key MLflow's scoring server wraps them in; the V2 transport
//! may rename it, MLServer says `output-1`); an N-D array is one tensor named `predictions`;
//! a dict is one tensor per key. Strings are `Utf8` columns.
//!
//! Errors: MLflow's schema enforcement (`MlflowException` with `INVALID_PARAMETER_VALUE`) and
//! any `ValueError` are the caller's fault → [`Code::InvalidParameterValue`] with the Python
//! message; any other exception → `InternalError` "Type: message". A worker that exits or
//! overruns `request_timeout` is killed and restarted, and only the request it held fails, with
//! [`Code::TemporarilyUnavailable`]; a full queue answers the same ("server busy").
//!
//! [`Code::InvalidParameterValue`]: mlox_core::Code::InvalidParameterValue
//! [`Code::TemporarilyUnavailable`]: mlox_core::Code::TemporarilyUnavailable

mod env;
mod pool;
mod protocol;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mlox_core::{Error, Result};
use mlox_mlmodel::mlmodel::PYFUNC_FLAVOR;
use mlox_mlmodel::{MlModel, Signature};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use env::EnvManager;

use mlox_runtime::{
    LoadedModel, ModelDir, ModelOutput, PredictRequest, Predictor, ProtocolRequest,
    ProtocolResponse,
};
use pool::{Job, Slots, Worker, WorkerConfig};
use protocol::{Answer, EncodedRequest};

/// The worker program every Python model runs in.
const WORKER_SCRIPT: &str = include_str!("../python/mlox_worker.py");

/// How a Python model's workers are run.
#[derive(Clone, Debug)]
pub struct PythonOptions {
    /// The interpreter (for `Virtualenv`, the one venvs are built on). Default: `$MLOX_PYTHON`,
    /// else `python3` from `PATH`.
    pub python: PathBuf,
    /// Worker processes, each answering one request at a time. Default 1.
    pub workers: usize,
    /// How long one prediction may run before its worker is killed. Default 60 s, MLflow's
    /// scoring-server default.
    pub request_timeout: Duration,
    /// How long a worker may take to import MLflow and load the model. Default 300 s.
    pub startup_timeout: Duration,
    /// Requests that may wait for a free worker; beyond that callers get "server busy".
    /// Default 256.
    pub queue_capacity: usize,
    /// How long a request may wait in the queue (e.g. behind restarting workers) before it
    /// fails with `TemporarilyUnavailable`. Default 30 s.
    pub queue_timeout: Duration,
    pub env_manager: EnvManager,
    /// Root of mlox's caches (venvs under `envs/`, the worker script under `worker/`).
    /// Default: `$MLOX_CACHE_DIR`, else `~/.cache/mlox`.
    pub cache_dir: Option<PathBuf>,
    /// Threads each worker's numeric libraries may use (`OMP_NUM_THREADS` and friends, unless
    /// already set in mlox's environment); `None` leaves them alone. Default 1: parallelism
    /// comes from workers, and multi-threaded small predictions cost more CPU than they save.
    pub threads_per_worker: Option<usize>,
    /// The model's name in logs and errors. Default: the model directory's name.
    pub name: Option<String>,
}

impl Default for PythonOptions {
    fn default() -> Self {
        PythonOptions {
            python: std::env::var_os("MLOX_PYTHON")
                .filter(|v| !v.is_empty())
                .map_or_else(|| PathBuf::from("python3"), PathBuf::from),
            workers: 1,
            request_timeout: Duration::from_secs(60),
            startup_timeout: Duration::from_secs(300),
            queue_capacity: 256,
            queue_timeout: Duration::from_secs(30),
            env_manager: EnvManager::Local,
            cache_dir: None,
            threads_per_worker: Some(1),
            name: None,
        }
    }
}

/// Loads MLflow pyfunc models into Python worker pools.
pub struct PythonRuntime;

impl PythonRuntime {
    /// Starts `options.workers` workers on the model in `model_dir` and returns once all have
    /// loaded it; a model that fails to load is an error here, never at the first request.
    pub async fn load(model_dir: &Path, options: PythonOptions) -> Result<LoadedModel> {
        PythonRuntime::load_model(&ModelDir::open(model_dir)?, options).await
    }

    /// [`PythonRuntime::load`] for a model whose `MLmodel` runtime selection already read.
    pub async fn load_model(model: &ModelDir, options: PythonOptions) -> Result<LoadedModel> {
        let pool = PythonPool::start_model(model, options).await?;
        Ok(LoadedModel {
            mlmodel: pool.mlmodel.clone(),
            signature: pool.signature.clone(),
            predictor: Arc::new(pool),
            language: None,
        })
    }
}

/// A running pool of workers for one model. Dropping it stops the workers.
pub struct PythonPool {
    name: Arc<str>,
    mlmodel: MlModel,
    signature: Option<Signature>,
    jobs: mpsc::Sender<Job>,
    slots: Arc<Slots>,
    queue_capacity: usize,
    /// The caller-side bound on one request, queue wait included; the worker-side timeout is
    /// inside it so its more precise error normally wins.
    max_wait: Duration,
    cancel: CancellationToken,
}

impl PythonPool {
    pub async fn start(model_dir: &Path, options: PythonOptions) -> Result<PythonPool> {
        PythonPool::start_model(&ModelDir::open(model_dir)?, options).await
    }

    /// [`PythonPool::start`] for a model whose `MLmodel` is already read.
    pub async fn start_model(model: &ModelDir, options: PythonOptions) -> Result<PythonPool> {
        let model_dir = std::path::absolute(&model.path).map_err(|e| {
            Error::invalid(format!(
                "invalid model directory {}: {e}",
                model.path.display()
            ))
        })?;
        let mlmodel = model.mlmodel.clone();
        if mlmodel.flavor(PYFUNC_FLAVOR).is_none() {
            return Err(Error::invalid(format!(
                "{} has no {PYFUNC_FLAVOR} flavor, so MLflow cannot load it as a pyfunc model",
                model_dir.display()
            )));
        }
        let signature = mlmodel.parsed_signature()?;
        if options.workers == 0 {
            return Err(Error::invalid("a Python model needs at least one worker"));
        }
        let name: Arc<str> = options
            .name
            .clone()
            .or_else(|| {
                model_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "model".to_owned())
            .into();
        let cache = options
            .cache_dir
            .clone()
            .unwrap_or_else(env::default_cache_root);
        let python = match options.env_manager {
            EnvManager::Local => options.python.clone(),
            EnvManager::Virtualenv => {
                env::ensure_virtualenv(&model_dir, &mlmodel, &options.python, &cache.join("envs"))
                    .await?
            }
        };
        let script = install_worker_script(&cache)?;
        let config = Arc::new(WorkerConfig {
            name: name.clone(),
            python,
            script,
            model_dir,
            request_timeout: options.request_timeout,
            startup_timeout: options.startup_timeout,
            threads: options.threads_per_worker,
        });

        let mut starting = tokio::task::JoinSet::new();
        for slot in 0..options.workers {
            starting.spawn(Worker::spawn(config.clone(), slot));
        }
        let mut workers = Vec::with_capacity(options.workers);
        while let Some(started) = starting.join_next().await {
            let worker = started
                .map_err(|e| Error::internal(format!("starting a Python worker failed: {e}")))??;
            workers.push(worker);
        }

        let queue_capacity = options.queue_capacity.max(1);
        let (jobs, queue) = mpsc::channel(queue_capacity);
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let slots = Arc::new(Slots::new(options.workers));
        let cancel = CancellationToken::new();
        for worker in workers {
            slots.set(worker.slot, Some(worker.pid));
            tokio::spawn(pool::supervise(
                config.clone(),
                worker.slot,
                worker,
                queue.clone(),
                slots.clone(),
                cancel.clone(),
            ));
        }
        Ok(PythonPool {
            name,
            mlmodel,
            signature,
            jobs,
            slots,
            queue_capacity,
            max_wait: options.queue_timeout + options.request_timeout + Duration::from_secs(1),
            cancel,
        })
    }

    pub fn mlmodel(&self) -> &MlModel {
        &self.mlmodel
    }

    pub fn signature(&self) -> Option<&Signature> {
        self.signature.as_ref()
    }

    /// Process ids of the workers currently running (restarting slots are absent).
    pub fn worker_pids(&self) -> Vec<u32> {
        self.slots.pids()
    }
}

impl Drop for PythonPool {
    fn drop(&mut self) {
        // Supervisors drop their `Child`, whose kill_on_drop ends the process.
        self.cancel.cancel();
    }
}

#[async_trait]
impl Predictor for PythonPool {
    async fn predict(&self, request: PredictRequest) -> Result<ModelOutput> {
        match self.run(EncodedRequest::encode(&request)?).await? {
            Answer::Model(output) => Ok(output),
            Answer::Response(_) => Err(Error::internal(
                "the Python worker answered an inference response to a prediction",
            )),
        }
    }

    async fn predict_request(&self, request: ProtocolRequest) -> Result<ProtocolResponse> {
        match self.run(EncodedRequest::encode_protocol(request)?).await? {
            Answer::Response(response) => Ok(response),
            Answer::Model(_) => Err(Error::internal(
                "the Python worker answered model output to an inference request",
            )),
        }
    }
}

impl PythonPool {
    /// Queues one request for the next free worker and waits for its answer.
    async fn run(&self, request: EncodedRequest) -> Result<Answer> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(Job { request, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => Error::unavailable(format!(
                    "server busy: {} requests are already waiting for model '{}'",
                    self.queue_capacity, self.name
                )),
                mpsc::error::TrySendError::Closed(_) => {
                    Error::unavailable(format!("model '{}' is shutting down", self.name))
                }
            })?;
        match tokio::time::timeout(self.max_wait, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::unavailable(format!(
                "model '{}' is shutting down",
                self.name
            ))),
            Err(_) => Err(Error::unavailable(format!(
                "model '{}' found no free worker within {}s",
                self.name,
                self.max_wait.as_secs_f64()
            ))),
        }
    }
}

/// Writes the embedded worker script under the cache root, named by its digest so mlox builds
/// with different scripts never overwrite each other's, and returns its path.
fn install_worker_script(cache_root: &Path) -> Result<PathBuf> {
    let digest = Sha256::digest(WORKER_SCRIPT.as_bytes());
    let tag: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let file_name = format!("mlox_worker-{tag}.py");
    let mut last_error = None;
    // The temp dir is the fallback for a read-only or unset home.
    for dir in [
        cache_root.join("worker"),
        std::env::temp_dir().join("mlox-worker"),
    ] {
        let path = dir.join(&file_name);
        if std::fs::read(&path).is_ok_and(|existing| existing == WORKER_SCRIPT.as_bytes()) {
            return Ok(path);
        }
        // Written aside and renamed so a concurrent start never runs a half-written file.
        let staging = dir.join(format!(".{file_name}.{}", std::process::id()));
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&staging, WORKER_SCRIPT))
            .and_then(|()| std::fs::rename(&staging, &path));
        match written {
            Ok(()) => return Ok(path),
            Err(e) => {
                let _ = std::fs::remove_file(&staging);
                last_error = Some(format!("{}: {e}", path.display()));
            }
        }
    }
    Err(Error::internal(format!(
        "cannot write the Python worker script ({})",
        last_error.unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worker_script_is_installed_once_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = install_worker_script(dir.path()).unwrap();
        assert!(
            path.starts_with(dir.path().join("worker")),
            "{}",
            path.display()
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), WORKER_SCRIPT);
        assert_eq!(install_worker_script(dir.path()).unwrap(), path);
    }

    #[test]
    fn the_script_and_the_server_agree_on_the_protocol_version() {
        let line = format!("PROTOCOL_VERSION = {}", protocol::PROTOCOL_VERSION);
        assert!(WORKER_SCRIPT.contains(&line));
    }

    #[tokio::test]
    async fn a_directory_without_a_pyfunc_flavor_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("MLmodel"),
            "flavors:\n  onnx:\n    onnx_version: 1.17\n",
        )
        .unwrap();
        let err = PythonPool::start(dir.path(), PythonOptions::default())
            .await
            .err()
            .unwrap();
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
        assert!(err.message.contains("python_function"), "{}", err.message);
    }
}
