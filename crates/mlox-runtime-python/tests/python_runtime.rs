//! The Python runtime against real MLflow models, built and checked with the real `mlflow`.
//!
//! The interpreter is `$MLOX_PYTHON`, else `$MLOX_VENV/bin/python`; it needs mlflow 3.17.2,
//! scikit-learn and pyarrow (the compatibility suite's venv has them). Without one these tests
//! print a note and pass, unless `MLOX_REQUIRE_PYTHON=1` makes that a failure.

#![allow(clippy::unwrap_used)]

#[path = "../../mlox-runtime/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use mlox_core::Code;
use mlox_runtime::{ModelInput, ModelOutput, PredictRequest, Predictor, Tensor};
use mlox_runtime_python::{PythonOptions, PythonPool, PythonRuntime};
use serde_json::{Map, Value};

fn python() -> Option<PathBuf> {
    support::python("mlflow, sklearn, pyarrow", "Python runtime")
}

fn models(python: &Path) -> PathBuf {
    support::models(python, "make_models.py", "python-models")
}

struct Fixture {
    dir: PathBuf,
    python: PathBuf,
    expected: Value,
}

impl Fixture {
    fn get() -> Option<Fixture> {
        let python = python()?;
        let dir = models(&python);
        let expected = support::expected(&dir);
        Some(Fixture {
            dir,
            python,
            expected,
        })
    }

    fn options(&self) -> PythonOptions {
        PythonOptions {
            python: self.python.clone(),
            cache_dir: Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mlox-cache")),
            ..PythonOptions::default()
        }
    }

    async fn start(&self, model: &str, options: PythonOptions) -> PythonPool {
        PythonPool::start(&self.dir.join(model), options)
            .await
            .unwrap()
    }
}

fn frame(columns: Vec<(&str, ArrayRef)>) -> PredictRequest {
    PredictRequest {
        input: ModelInput::Frame(RecordBatch::try_from_iter(columns).unwrap()),
        params: Map::new(),
    }
}

fn trap_input(xs: &[i64]) -> PredictRequest {
    frame(vec![(
        "x",
        Arc::new(Int64Array::from(xs.to_vec())) as ArrayRef,
    )])
}

fn output_frame(output: ModelOutput) -> RecordBatch {
    match output {
        ModelOutput::Frame(batch) => batch,
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<String> {
    let array = batch.column_by_name(column).unwrap();
    let array = array
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap_or_else(|| panic!("{column} is {:?}, not Utf8", array.data_type()));
    array.iter().map(|s| s.unwrap().to_owned()).collect()
}

fn floats(array: &ArrayRef) -> Vec<f64> {
    array
        .as_any()
        .downcast_ref::<Float64Array>()
        .unwrap_or_else(|| panic!("{:?} is not Float64", array.data_type()))
        .values()
        .to_vec()
}

fn ints(array: &ArrayRef) -> Vec<i64> {
    array
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap_or_else(|| panic!("{:?} is not Int64", array.data_type()))
        .values()
        .to_vec()
}

fn json_f64s(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn json_i64s(value: &Value) -> Vec<i64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

fn json_strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

fn wine_request(
    fixture: &Fixture,
    rows: std::ops::Range<usize>,
    skip: Option<&str>,
) -> PredictRequest {
    let wine = &fixture.expected["wine"];
    let columns = wine["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .filter(|c| Some(*c) != skip)
        .map(|c| {
            let values = json_f64s(&wine["rows"][c])[rows.clone()].to_vec();
            (c, Arc::new(Float64Array::from(values)) as ArrayRef)
        })
        .collect();
    frame(columns)
}

#[tokio::test]
async fn seed_000_custom_model_answers_like_mlflow() {
    let Some(fx) = Fixture::get() else { return };
    let expected = &fx.expected["seed000"];
    let pool = fx.start("seed000", fx.options()).await;

    // `loaded_model.predict(100)` from the seed: one unnamed 0-d tensor.
    let scalar = PredictRequest {
        input: ModelInput::Tensors(vec![Tensor {
            name: String::new(),
            shape: vec![],
            data: Arc::new(Int64Array::from(vec![100])),
        }]),
        params: Map::new(),
    };
    let out = output_frame(pool.predict(scalar).await.unwrap());
    assert_eq!(
        strings(&out, "predictions"),
        [expected["scalar_100"].as_str().unwrap()]
    );
    assert_eq!(expected["scalar_100"], "This is your input: 100");

    // The seed's MLServer request: one BYTES input holding a JSON string.
    let bytes = PredictRequest {
        input: ModelInput::Tensors(vec![Tensor {
            name: String::new(),
            shape: vec![1],
            data: Arc::new(StringArray::from(vec![r#"{"a": 10}"#])),
        }]),
        params: Map::new(),
    };
    let out = output_frame(pool.predict(bytes).await.unwrap());
    assert_eq!(
        strings(&out, "predictions"),
        [expected["bytes_json"].as_str().unwrap()]
    );

    let df = frame(vec![(
        "a",
        Arc::new(Int64Array::from(vec![10])) as ArrayRef,
    )]);
    let out = output_frame(pool.predict(df).await.unwrap());
    assert_eq!(
        strings(&out, "predictions"),
        [expected["frame_a_10"].as_str().unwrap()]
    );

    // A list of strings comes back as a string column.
    let echo = fx.start("echo", fx.options()).await;
    let texts = json_strings(&fx.expected["echo"]["text"]);
    let out = output_frame(
        echo.predict(frame(vec![(
            "text",
            Arc::new(StringArray::from(texts)) as ArrayRef,
        )]))
        .await
        .unwrap(),
    );
    assert_eq!(
        strings(&out, "predictions"),
        json_strings(&fx.expected["echo"]["predictions"])
    );
}

#[tokio::test]
async fn tensors_go_in_as_ndarrays_and_come_back_with_their_shapes() {
    let Some(fx) = Fixture::get() else { return };
    let expected = &fx.expected["tensors"];
    let pool = fx.start("tensors", fx.options()).await;

    let matrix = Tensor {
        name: String::new(),
        shape: vec![2, 3],
        data: Arc::new(Float64Array::from(json_f64s(&expected["matrix"]))),
    };
    let ModelOutput::Tensors(out) = pool
        .predict(PredictRequest {
            input: ModelInput::Tensors(vec![matrix.clone()]),
            params: Map::new(),
        })
        .await
        .unwrap()
    else {
        panic!("an N-D result is a tensor")
    };
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].name, "predictions");
    assert_eq!(out[0].shape, [2, 3, 2]);
    assert_eq!(floats(&out[0].data), json_f64s(&expected["stacked"]));

    // Named tensors reach the model as a dict; a dict result is one tensor per key.
    let a = Tensor {
        name: "a".into(),
        shape: vec![2],
        data: Arc::new(Int64Array::from(vec![1, 2])),
    };
    let b = Tensor {
        name: "b".into(),
        ..matrix
    };
    let ModelOutput::Tensors(out) = pool
        .predict(PredictRequest {
            input: ModelInput::Tensors(vec![a, b]),
            params: Map::new(),
        })
        .await
        .unwrap()
    else {
        panic!("a dict result is tensors")
    };
    let by_name: HashMap<_, _> = out.iter().map(|t| (t.name.as_str(), t)).collect();
    assert_eq!(by_name["a"].shape, [2]);
    assert_eq!(ints(&by_name["a"].data), json_i64s(&expected["dict_a"]));
    assert_eq!(by_name["b"].shape, [2, 3]);
    assert_eq!(floats(&by_name["b"].data), json_f64s(&expected["dict_b"]));
}

#[tokio::test]
async fn sklearn_elasticnet_matches_mlflow_and_enforces_its_signature() {
    let Some(fx) = Fixture::get() else { return };
    let wine = &fx.expected["wine"];
    let pool = fx.start("wine", fx.options()).await;

    let out = output_frame(pool.predict(wine_request(&fx, 0..20, None)).await.unwrap());
    assert_eq!(out.num_columns(), 1);
    assert_eq!(
        floats(out.column_by_name("predictions").unwrap()),
        json_f64s(&wine["predictions"])
    );

    // Signature enforcement: MLflow's own message, as a client error.
    let err = pool
        .predict(wine_request(&fx, 0..2, Some("alcohol")))
        .await
        .unwrap_err();
    assert_eq!(err.code, Code::InvalidParameterValue, "{}", err.message);
    assert!(
        err.message.contains("Model is missing inputs"),
        "{}",
        err.message
    );
    assert!(err.message.contains("alcohol"), "{}", err.message);

    // A string where a double is required.
    let mut bad = wine_request(&fx, 0..1, Some("pH"));
    if let ModelInput::Frame(batch) = &mut bad.input {
        let mut columns: Vec<(String, ArrayRef)> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, c)| (f.name().clone(), c.clone()))
            .collect();
        columns.push(("pH".into(), Arc::new(StringArray::from(vec!["acidic"]))));
        *batch = RecordBatch::try_from_iter(columns).unwrap();
    }
    let err = pool.predict(bad).await.unwrap_err();
    assert_eq!(err.code, Code::InvalidParameterValue, "{}", err.message);
    assert!(err.message.contains("pH"), "{}", err.message);

    // Per-call latency of a 1-row predict, as a transport would see it.
    let one_row = json_f64s(&wine["one_row_predictions"]);
    let mut took = Vec::with_capacity(200);
    for i in 0..200 {
        let row = i % 20;
        let request = wine_request(&fx, row..row + 1, None);
        let started = Instant::now();
        let out = output_frame(pool.predict(request).await.unwrap());
        took.push(started.elapsed());
        assert_eq!(floats(out.column(0)), [one_row[row]]);
    }
    took.sort();
    eprintln!(
        "1-row ElasticNet predict through the Python worker: median {:.3} ms, p90 {:.3} ms, min {:.3} ms",
        took[100].as_secs_f64() * 1e3,
        took[180].as_secs_f64() * 1e3,
        took[0].as_secs_f64() * 1e3
    );
}

#[tokio::test]
async fn sixteen_concurrent_callers_on_two_workers_all_get_their_own_answers() {
    let Some(fx) = Fixture::get() else { return };
    let fx = Arc::new(fx);
    let pool = Arc::new(
        fx.start(
            "wine",
            PythonOptions {
                workers: 2,
                ..fx.options()
            },
        )
        .await,
    );
    assert_eq!(pool.worker_pids().len(), 2);
    let one_row = Arc::new(json_f64s(&fx.expected["wine"]["one_row_predictions"]));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16 {
        let (pool, fx, one_row) = (pool.clone(), fx.clone(), one_row.clone());
        tasks.spawn(async move {
            for i in 0..10 {
                let row = (task * 7 + i) % 20;
                let out = output_frame(
                    pool.predict(wine_request(&fx, row..row + 1, None))
                        .await
                        .unwrap(),
                );
                assert_eq!(
                    floats(out.column(0)),
                    [one_row[row]],
                    "task {task} row {row}"
                );
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test]
async fn a_crashing_worker_fails_only_its_request_and_is_replaced() {
    let Some(fx) = Fixture::get() else { return };
    let expected = &fx.expected["trap"];
    let pool = fx.start("trap", fx.options()).await;
    let xs = json_i64s(&expected["x"]);

    let out = output_frame(pool.predict(trap_input(&xs)).await.unwrap());
    assert_eq!(
        ints(out.column_by_name("scaled").unwrap()),
        json_i64s(&expected["default"]["scaled"])
    );
    assert_eq!(
        strings(&out, "label"),
        json_strings(&expected["default"]["label"])
    );

    // Inference parameters reach predict(params=...).
    let mut with_params = trap_input(&xs);
    with_params.params.insert("factor".into(), Value::from(3));
    let out = output_frame(pool.predict(with_params).await.unwrap());
    assert_eq!(
        ints(out.column_by_name("scaled").unwrap()),
        json_i64s(&expected["factor_3"]["scaled"])
    );

    // os._exit(1) in predict.
    let first_pid = pool.worker_pids()[0];
    let err = pool.predict(trap_input(&[-2])).await.unwrap_err();
    assert_eq!(err.code, Code::TemporarilyUnavailable, "{}", err.message);
    assert!(
        err.message
            .contains("exited (exit code 1) while predicting"),
        "{}",
        err.message
    );
    assert!(err.message.contains("being restarted"), "{}", err.message);
    let out = output_frame(pool.predict(trap_input(&xs)).await.unwrap());
    assert_eq!(
        ints(out.column_by_name("scaled").unwrap()),
        json_i64s(&expected["default"]["scaled"])
    );
    let second_pid = pool.worker_pids()[0];
    assert_ne!(first_pid, second_pid);

    // Exceptions leave the worker alive: a ValueError is the caller's, anything else ours.
    let err = pool.predict(trap_input(&[-3])).await.unwrap_err();
    assert_eq!(err.code, Code::InternalError);
    assert_eq!(err.message, "RuntimeError: trap -3 sprung");
    let err = pool.predict(trap_input(&[-4])).await.unwrap_err();
    assert_eq!(err.code, Code::InvalidParameterValue);
    assert_eq!(err.message, "x must not be -4");
    assert_eq!(pool.worker_pids(), [second_pid]);

    // SIGKILL from outside while predicting (the OOM killer's way).
    let hung = {
        let request = pool.predict(trap_input(&[-1]));
        let killer = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let status = std::process::Command::new("kill")
                .args(["-9", &second_pid.to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        };
        let (result, ()) = tokio::join!(request, killer);
        result.unwrap_err()
    };
    assert_eq!(hung.code, Code::TemporarilyUnavailable);
    assert!(
        hung.message.contains("exited (signal 9) while predicting"),
        "{}",
        hung.message
    );
    pool.predict(trap_input(&xs)).await.unwrap();

    // Killed while idle: replaced before the next request needs it.
    let third_pid = pool.worker_pids()[0];
    std::process::Command::new("kill")
        .args(["-9", &third_pid.to_string()])
        .status()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    pool.predict(trap_input(&xs)).await.unwrap();
    assert_ne!(pool.worker_pids()[0], third_pid);
}

#[tokio::test]
async fn a_hanging_request_times_out_while_the_other_worker_keeps_serving() {
    let Some(fx) = Fixture::get() else { return };
    let pool = Arc::new(
        fx.start(
            "trap",
            PythonOptions {
                workers: 2,
                request_timeout: Duration::from_secs(3),
                ..fx.options()
            },
        )
        .await,
    );
    let hanging = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (pool.predict(trap_input(&[-1])).await, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut served = 0;
    while !hanging.is_finished() {
        pool.predict(trap_input(&[1, 2])).await.unwrap();
        served += 1;
    }
    let (result, took) = hanging.await.unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.code, Code::TemporarilyUnavailable, "{}", err.message);
    assert!(
        err.message.contains("did not answer within 3s"),
        "{}",
        err.message
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        served > 10,
        "only {served} requests were answered beside the hanging one"
    );

    // The killed worker comes back; both serve again.
    for _ in 0..20 {
        pool.predict(trap_input(&[5])).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while pool.worker_pids().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the timed-out worker was not restarted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_full_queue_answers_server_busy() {
    let Some(fx) = Fixture::get() else { return };
    let pool = Arc::new(
        fx.start(
            "trap",
            PythonOptions {
                queue_capacity: 1,
                request_timeout: Duration::from_secs(2),
                ..fx.options()
            },
        )
        .await,
    );
    let hanging = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.predict(trap_input(&[-1])).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.predict(trap_input(&[1])).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = pool.predict(trap_input(&[2])).await.unwrap_err();
    assert_eq!(err.code, Code::TemporarilyUnavailable);
    assert!(err.message.starts_with("server busy"), "{}", err.message);

    assert_eq!(
        hanging.await.unwrap().unwrap_err().code,
        Code::TemporarilyUnavailable
    );
    // The queued request waits for the replacement worker and is answered.
    queued.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_model_that_cannot_load_reports_the_python_error() {
    let Some(fx) = Fixture::get() else { return };
    let err = PythonRuntime::load(&fx.dir.join("broken"), fx.options())
        .await
        .err()
        .unwrap();
    assert_eq!(err.code, Code::InvalidParameterValue);
    assert!(
        err.message
            .contains("RuntimeError: the weights file is missing"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("Traceback"), "{}", err.message);

    let err = PythonRuntime::load(
        &fx.dir.join("wine"),
        PythonOptions {
            python: PathBuf::from("/nonexistent/python3"),
            ..fx.options()
        },
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.code, Code::InternalError);
    assert!(
        err.message.contains("/nonexistent/python3"),
        "{}",
        err.message
    );

    // An interpreter that dies before its handshake: its last words are in the error.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("python");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'Fatal Python error: boom' >&2\nexit 3\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let err = PythonRuntime::load(
        &fx.dir.join("wine"),
        PythonOptions {
            python: fake,
            ..fx.options()
        },
    )
    .await
    .err()
    .unwrap();
    assert_eq!(err.code, Code::InternalError);
    assert!(
        err.message
            .contains("exited (exit code 3) before loading the model"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("Fatal Python error: boom"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn dropping_the_pool_stops_its_workers() {
    let Some(fx) = Fixture::get() else { return };
    let loaded = PythonRuntime::load(&fx.dir.join("echo"), fx.options())
        .await
        .unwrap();
    assert!(loaded.signature.is_none());
    let pool = fx.start("echo", fx.options()).await;
    let pid = pool.worker_pids()[0];
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(pool);
    drop(loaded);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A killed child may linger as a zombie until tokio reaps it; either way it is not running.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let running = state
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X");
        if !running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "worker {pid} still runs after the pool was dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `virtualenv` environment manager for real: pip installs the wine model's requirements
/// (mlflow, scikit-learn, …) from the package index into a fresh venv, which takes minutes and
/// half a gigabyte, hence opt-in: `cargo nextest run -p mlox-runtime --run-ignored only`.
#[tokio::test]
#[ignore = "builds a virtualenv from the package index: minutes and ~500 MB"]
async fn the_virtualenv_manager_builds_the_models_env_once_and_serves_from_it() {
    let Some(fx) = Fixture::get() else { return };
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mlox-venv-cache");
    let options = PythonOptions {
        env_manager: mlox_runtime_python::EnvManager::Virtualenv,
        cache_dir: Some(cache.clone()),
        startup_timeout: Duration::from_secs(1800),
        ..fx.options()
    };
    let started = Instant::now();
    let pool = PythonPool::start(&fx.dir.join("wine"), options.clone())
        .await
        .unwrap();
    eprintln!(
        "first start (env build included): {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let out = output_frame(pool.predict(wine_request(&fx, 0..20, None)).await.unwrap());
    assert_eq!(
        floats(out.column(0)),
        json_f64s(&fx.expected["wine"]["predictions"])
    );
    let envs: Vec<_> = std::fs::read_dir(cache.join("envs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(envs.len(), 1);
    let env_python = envs[0].path().join("bin/python");
    let pid = pool.worker_pids()[0];
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap();
    assert_eq!(Path::new(std::str::from_utf8(argv0).unwrap()), env_python);
    let imports = std::process::Command::new(&env_python)
        .args(["-c", "import mlflow, sklearn, pyarrow"])
        .status()
        .unwrap();
    assert!(imports.success());
    drop(pool);

    // The second start finds the env ready.
    let started = Instant::now();
    let pool = PythonPool::start(&fx.dir.join("wine"), options)
        .await
        .unwrap();
    let restart = started.elapsed();
    pool.predict(wine_request(&fx, 0..1, None)).await.unwrap();
    assert!(
        restart < Duration::from_secs(60),
        "second start took {restart:?}"
    );
}
