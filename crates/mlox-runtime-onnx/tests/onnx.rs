//! The native ONNX runtime against real MLflow `onnx` models: `fixtures/make_onnx_models.py`
//! converts scikit-learn models with skl2onnx and writes small graphs with onnx.helper, saves
//! them with `mlflow.onnx.save_model`, and records what `mlflow.pyfunc.load_model(dir).predict`
//! (onnxruntime underneath) answers for DataFrames and arrays. Every model listed there must load
//! natively and answer the same (floats within 1e-5 relative, integers exactly, same names,
//! dtypes and shapes) or refuse what MLflow refuses; the models it lists as fallbacks must be
//! declined.
//!
//! The interpreter is `$MLOX_ONNX_PYTHON`, else `$MLOX_VENV/bin/python` (the test suite's venv
//! has the packages); it needs mlflow, onnx, onnxruntime, skl2onnx and scikit-learn (the
//! script's docstring names the versions it was made with). Without one these tests print a
//! note and pass, unless `MLOX_REQUIRE_ONNX=1` makes that a failure.

#![allow(clippy::unwrap_used)]

#[path = "../../mlox-runtime/tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch};
use arrow_schema::DataType;
use mlox_runtime::{Load, ModelDir};
use mlox_runtime::{LoadedModel, ModelInput, ModelOutput, PredictRequest, Tensor};
use mlox_runtime_onnx as onnx;
use serde_json::Value;

struct Fixture {
    dir: PathBuf,
    expected: Value,
}

impl Fixture {
    fn get() -> Option<Fixture> {
        let python = support::python_from(
            "MLOX_ONNX_PYTHON",
            "MLOX_REQUIRE_ONNX",
            "mlflow, onnx, onnxruntime, skl2onnx, sklearn",
            "native ONNX runtime",
        )?;
        let dir = support::models(&python, "make_onnx_models.py", "onnx-models");
        let expected = support::expected(&dir);
        Some(Fixture { dir, expected })
    }

    fn load(&self, name: &str) -> LoadedModel {
        support::native(
            name,
            onnx::load(&ModelDir::open(&self.dir.join(name)).unwrap()).unwrap(),
        )
    }
}

/// A recorded array as Arrow values.
fn arrow(array: &Value) -> ArrayRef {
    let values = array["values"].as_array().unwrap();
    match array["dtype"].as_str().unwrap() {
        "float64" => Arc::new(values.iter().map(Value::as_f64).collect::<Float64Array>()),
        "float32" => Arc::new(
            values
                .iter()
                .map(|v| v.as_f64().map(|f| f as f32))
                .collect::<Float32Array>(),
        ),
        "int64" => Arc::new(values.iter().map(Value::as_i64).collect::<Int64Array>()),
        other => panic!("no fixture input of dtype {other}"),
    }
}

fn shape(array: &Value) -> Vec<usize> {
    array["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap() as usize)
        .collect()
}

fn input(recorded: &Value) -> ModelInput {
    match recorded["kind"].as_str().unwrap() {
        "frame" => {
            let columns = recorded["columns"].as_array().unwrap();
            ModelInput::Frame(
                RecordBatch::try_from_iter(
                    columns
                        .iter()
                        .map(|c| (c["name"].as_str().unwrap().to_owned(), arrow(c))),
                )
                .unwrap(),
            )
        }
        "tensors" => ModelInput::Tensors(
            recorded["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| Tensor {
                    name: t["name"].as_str().unwrap().to_owned(),
                    shape: shape(t),
                    data: arrow(t),
                })
                .collect(),
        ),
        other => panic!("unknown input kind {other}"),
    }
}

/// Asserts one answered array is the recorded one; returns how many values are bit-identical.
fn compare_array(what: &str, got: &ArrayRef, want: &Value) -> usize {
    let values = want["values"].as_array().unwrap();
    assert_eq!(got.len(), values.len(), "{what}");
    assert_eq!(got.null_count(), 0, "{what}");
    let floats: Vec<f64> = match (want["dtype"].as_str().unwrap(), got.data_type()) {
        ("float32", DataType::Float32) => got
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        ("float64", DataType::Float64) => got.as_primitive::<Float64Type>().values().to_vec(),
        ("int64", DataType::Int64) => {
            let got = got.as_primitive::<Int64Type>().values();
            for (g, w) in got.iter().zip(values) {
                assert_eq!(Some(*g), w.as_i64(), "{what}");
            }
            return got.len();
        }
        ("int32", DataType::Int32) => {
            let got = got.as_primitive::<Int32Type>().values();
            for (g, w) in got.iter().zip(values) {
                assert_eq!(Some(i64::from(*g)), w.as_i64(), "{what}");
            }
            return got.len();
        }
        (dtype, arrow) => panic!("{what}: MLflow answered {dtype}, mlox {arrow}"),
    };
    let mut exact = 0;
    for (i, (g, w)) in floats.iter().zip(values).enumerate() {
        let w = w.as_f64().unwrap_or(f64::NAN);
        if w.is_nan() {
            assert!(g.is_nan(), "{what}[{i}]: {g} vs NaN");
            exact += 1;
            continue;
        }
        let tolerance = 1e-5 * w.abs().max(1e-3);
        assert!(
            (g - w).abs() <= tolerance,
            "{what}[{i}]: mlox {g}, MLflow {w}"
        );
        exact += usize::from(g == &w);
    }
    exact
}

/// Asserts `output` is what MLflow answered; returns (bit-identical values, values).
fn compare(what: &str, output: ModelOutput, expected: &Value) -> (usize, usize) {
    let mut exact = 0;
    let mut total = 0;
    match (expected["kind"].as_str().unwrap(), output) {
        ("frame", ModelOutput::Frame(batch)) => {
            let columns = expected["columns"].as_array().unwrap();
            let names: Vec<&str> = batch
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            let want: Vec<&str> = columns
                .iter()
                .map(|c| c["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, want, "{what}");
            for (column, recorded) in batch.columns().iter().zip(columns) {
                let name = recorded["name"].as_str().unwrap();
                exact += compare_array(&format!("{what} column {name}"), column, recorded);
                total += column.len();
            }
        }
        ("tensors", ModelOutput::Tensors(tensors)) => {
            let recorded = expected["tensors"].as_array().unwrap();
            let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
            let want: Vec<&str> = recorded
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, want, "{what}");
            for (tensor, recorded) in tensors.iter().zip(recorded) {
                let name = &tensor.name;
                assert_eq!(tensor.shape, shape(recorded), "{what} tensor {name}");
                exact += compare_array(&format!("{what} tensor {name}"), &tensor.data, recorded);
                total += tensor.data.len();
            }
        }
        (kind, other) => panic!("{what}: MLflow answered a {kind}, mlox {other:?}"),
    }
    (exact, total)
}

#[tokio::test]
async fn onnx_models_answer_what_mlflow_answers() {
    let Some(fixture) = Fixture::get() else {
        return;
    };
    let models = fixture.expected["models"].as_object().unwrap();
    assert!(models.len() >= 6, "{:?}", models.keys());
    let (mut exact, mut total) = (0, 0);
    for (name, cases) in models {
        let model = fixture.load(name);
        for (i, case) in cases.as_array().unwrap().iter().enumerate() {
            let what = format!("{name} case {i}");
            let request = PredictRequest {
                input: input(&case["input"]),
                params: Default::default(),
            };
            let answer = model.predictor.predict(request).await;
            if let Some(error) = case.get("error") {
                let err = answer.err().unwrap_or_else(|| {
                    panic!("{what}: MLflow refused ({error}) but mlox answered")
                });
                assert_eq!(err.code, mlox_core::Code::InvalidParameterValue, "{what}");
                eprintln!("{what}: refused as MLflow does: {}", err.message);
                continue;
            }
            let output = answer.unwrap_or_else(|e| panic!("{what}: {}", e.message));
            let (e, t) = compare(&what, output, &case["output"]);
            exact += e;
            total += t;
        }
    }
    eprintln!("{exact} of {total} values are bit-for-bit MLflow's");
}

#[test]
fn zipmaps_unsupported_operators_and_text_fall_back() {
    let Some(fixture) = Fixture::get() else {
        return;
    };
    let fallbacks = fixture.expected["fallbacks"].as_array().unwrap();
    assert_eq!(fallbacks.len(), 3);
    for name in fallbacks {
        let name = name.as_str().unwrap();
        match onnx::load(&ModelDir::open(&fixture.dir.join(name)).unwrap()).unwrap() {
            Load::Fallback { reason } => {
                eprintln!("{name}: {reason}");
                let expected = match name {
                    "logreg_iris_zipmap" => "ZipMap",
                    "det_unsupported_op" => "tract",
                    "string_identity" => "string",
                    other => panic!("no expectation for {other}"),
                };
                assert!(reason.contains(expected), "{name}: {reason}");
            }
            Load::Native { description, .. } => panic!("{name} loaded natively: {description}"),
        }
    }
}

#[tokio::test]
async fn big_batches_and_concurrent_requests_agree_with_single_rows() {
    let Some(fixture) = Fixture::get() else {
        return;
    };
    let model = fixture.load("linreg_wine");
    let case = &fixture.expected["models"]["linreg_wine"][2];
    let ModelInput::Tensors(tensors) = input(&case["input"]) else {
        panic!("the third linreg case is an array")
    };
    let rows = tensors[0].shape[0];
    let row_values: Vec<f32> = tensors[0]
        .data
        .as_primitive::<Float32Type>()
        .values()
        .to_vec();
    // Enough rows to run on the blocking pool.
    let repeat = 400;
    let big: Vec<f32> = (0..repeat)
        .flat_map(|_| row_values.iter().copied())
        .collect();
    let request = PredictRequest {
        input: ModelInput::Tensors(vec![Tensor {
            name: String::new(),
            shape: vec![rows * repeat, 11],
            data: Arc::new(Float32Array::from(big)),
        }]),
        params: Default::default(),
    };
    let answers = futures_join(
        (0..4)
            .map(|_| {
                let predictor = model.predictor.clone();
                let request = request.clone();
                tokio::spawn(async move { predictor.predict(request).await.unwrap() })
            })
            .collect(),
    )
    .await;
    let want = &case["output"]["tensors"][0];
    for answer in answers {
        let ModelOutput::Tensors(t) = answer else {
            panic!()
        };
        assert_eq!(t[0].shape, vec![rows * repeat, 1]);
        let got = t[0].data.as_primitive::<Float32Type>().values();
        for (i, chunk) in got.chunks(rows).enumerate() {
            let chunk: ArrayRef = Arc::new(Float32Array::from(chunk.to_vec()));
            let recorded = serde_json::json!({
                "dtype": "float32",
                "values": want["values"],
            });
            compare_array(&format!("repeat {i}"), &chunk, &recorded);
        }
    }
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
