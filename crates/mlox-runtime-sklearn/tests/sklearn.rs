//! The native scikit-learn runtime against real models: `fixtures/make_sklearn_models.py` fits
//! them with scikit-learn, saves them with MLflow (skops, its default format) and records what
//! `mlflow.pyfunc.load_model(dir).predict(df)` answers; every model here must load natively and
//! answer the same (linear values within 1e-9 relative, tree values and all labels exactly,
//! same dtype and shape), and the models the runtime does not reproduce must fall back.
//!
//! The interpreter is `$MLOX_PYTHON`, else `$MLOX_VENV/bin/python`; it needs mlflow,
//! scikit-learn and skops. Without one these tests print a note and pass, unless
//! `MLOX_REQUIRE_PYTHON=1` makes that a failure.

#![allow(clippy::unwrap_used)]

#[path = "../../mlox-runtime/tests/support/mod.rs"]
mod support;

use support::downcast;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use mlox_runtime::{Load, ModelDir};
use mlox_runtime::{LoadedModel, ModelInput, ModelOutput, PredictRequest, Tensor};
use mlox_runtime_sklearn as sklearn;
use serde_json::{Map, Value};

struct Fixture {
    dir: PathBuf,
    expected: Value,
}

impl Fixture {
    fn get() -> Option<Fixture> {
        let python = support::python("mlflow, sklearn, skops", "native scikit-learn runtime")?;
        let dir = support::models(&python, "make_sklearn_models.py", "sklearn-models");
        let expected = support::expected(&dir);
        Some(Fixture { dir, expected })
    }

    fn names(&self, prefix: &str) -> Vec<String> {
        support::names(&self.expected, &[prefix])
    }

    fn load(&self, name: &str) -> LoadedModel {
        support::native(
            name,
            sklearn::load(&ModelDir::open(&self.dir.join(name)).unwrap()).unwrap(),
        )
    }

    fn rows(&self, name: &str) -> usize {
        self.expected["models"][name]["input"]["rows"]
            .as_array()
            .unwrap()
            .len()
    }

    /// The recorded rows at `indices` as the frame MLflow's scoring server would decode.
    fn input(&self, name: &str, indices: impl IntoIterator<Item = usize>) -> ModelInput {
        let input = &self.expected["models"][name]["input"];
        let all = input["rows"].as_array().unwrap();
        let rows: Vec<&Vec<Value>> = indices
            .into_iter()
            .map(|i| all[i].as_array().unwrap())
            .collect();
        let columns = input["columns"].as_array().unwrap();
        let types = input["types"].as_array().unwrap();
        let arrays = columns.iter().zip(types).enumerate().map(|(j, (c, t))| {
            let array: ArrayRef = match t.as_str().unwrap() {
                "str" => Arc::new(
                    rows.iter()
                        .map(|r| r[j].as_str().map(str::to_owned))
                        .collect::<StringArray>(),
                ),
                "int64" => Arc::new(rows.iter().map(|r| r[j].as_i64()).collect::<Int64Array>()),
                _ => Arc::new(
                    rows.iter()
                        .map(|r| Some(r[j].as_f64().unwrap_or(f64::NAN)))
                        .collect::<Float64Array>(),
                ),
            };
            (c.as_str().unwrap(), array)
        });
        ModelInput::Frame(RecordBatch::try_from_iter(arrays).unwrap())
    }

    async fn predict(&self, model: &LoadedModel, input: ModelInput) -> ModelOutput {
        model
            .predictor
            .predict(PredictRequest {
                input,
                params: Map::new(),
            })
            .await
            .unwrap()
    }

    /// Loads each model, predicts its recorded rows, and compares with MLflow's answer.
    async fn check_all(&self, prefix: &str) {
        let (mut exact, mut total) = (0, 0);
        for name in self.names(prefix) {
            let model = self.load(&name);
            let output = self
                .predict(&model, self.input(&name, 0..self.rows(&name)))
                .await;
            let linear = self.expected["models"][&name]["linear"].as_bool().unwrap();
            let (e, t) = compare(
                &name,
                output,
                &self.expected["models"][&name]["output"],
                linear,
            );
            exact += e;
            total += t;
        }
        eprintln!("{exact} of {total} values are bit-for-bit MLflow's");
    }
}

fn compare(what: &str, output: ModelOutput, expected: &Value, linear: bool) -> (usize, usize) {
    let tolerance = if linear {
        support::Tolerance::Relative(1e-9)
    } else {
        support::Tolerance::Exact
    };
    support::compare(what, output, expected, tolerance)
}

#[tokio::test]
async fn seed_001_elasticnet_on_wine_answers_like_mlflow() {
    let Some(fx) = Fixture::get() else { return };
    fx.check_all("seed001").await;
    let model = fx.load("seed001_elasticnet_wine");
    assert_eq!(model.signature.as_ref().unwrap().inputs.len(), 11);

    // Columns are matched by name, whatever order they arrive in.
    let ModelInput::Frame(frame) = fx.input("seed001_elasticnet_wine", 0..10) else {
        panic!()
    };
    let reversed: Vec<usize> = (0..frame.num_columns()).rev().collect();
    let output = fx
        .predict(&model, ModelInput::Frame(frame.project(&reversed).unwrap()))
        .await;
    let mut expected = fx.expected["models"]["seed001_elasticnet_wine"]["output"].clone();
    expected["shape"] = serde_json::json!([10]);
    expected["values"] = Value::from(expected["values"].as_array().unwrap()[..10].to_vec());
    compare("reordered columns", output, &expected, true);

    // A V2-style [rows, 11] tensor answers alike.
    let mut flat = Vec::new();
    for r in 0..frame.num_rows() {
        for c in frame.columns() {
            flat.push(downcast::<Float64Array>(c).value(r));
        }
    }
    let tensor = ModelInput::Tensors(vec![Tensor {
        name: "input-0".into(),
        shape: vec![frame.num_rows(), frame.num_columns()],
        data: Arc::new(Float64Array::from(flat)),
    }]);
    compare(
        "a tensor",
        fx.predict(&model, tensor).await,
        &expected,
        true,
    );
}

#[tokio::test]
async fn linear_models_answer_like_mlflow() {
    let Some(fx) = Fixture::get() else { return };
    fx.check_all("linear_").await;
}

#[tokio::test]
async fn trees_forests_and_boosting_answer_like_mlflow() {
    let Some(fx) = Fixture::get() else { return };
    fx.check_all("tree_").await;
}

#[tokio::test]
async fn pipelines_answer_like_mlflow() {
    let Some(fx) = Fixture::get() else { return };
    fx.check_all("pipeline_").await;
}

#[test]
fn every_fixture_model_is_checked() {
    let Some(fx) = Fixture::get() else { return };
    support::assert_every_model_covered(
        &fx.expected,
        &["seed001", "linear_", "tree_", "pipeline_"],
    );
}

#[test]
fn unsupported_models_fall_back_with_a_reason() {
    let Some(fx) = Fixture::get() else { return };
    let fallbacks = fx.expected["fallbacks"].as_array().unwrap();
    assert!(fallbacks.len() >= 5);
    let reason =
        |name: &str| match sklearn::load(&ModelDir::open(&fx.dir.join(name)).unwrap()).unwrap() {
            Load::Fallback { reason } => {
                eprintln!("{name}: {reason}");
                reason
            }
            Load::Native { description, .. } => panic!("{name} loaded natively: {description}"),
        };
    for name in fallbacks {
        assert!(!reason(name.as_str().unwrap()).is_empty());
    }
    assert!(reason("unsupported_svc").contains("SVC"));
    assert!(reason("unsupported_knn").contains("KNeighborsClassifier"));
    assert!(reason("unsupported_hist_gb").contains("HistGradientBoosting"));
    assert!(reason("unsupported_cloudpickle").contains("cloudpickle"));
    assert!(reason("unsupported_predict_proba").contains("predict_proba"));
}

#[tokio::test]
async fn one_row_requests_answer_like_the_batch() {
    let Some(fx) = Fixture::get() else { return };
    for name in [
        "seed001_elasticnet_wine",
        "pipeline_random_forest",
        "pipeline_logistic_passthrough",
        "tree_gb_multiclass",
    ] {
        let model = fx.load(name);
        let whole =
            support::flat_values(fx.predict(&model, fx.input(name, 0..fx.rows(name))).await);
        for r in 0..fx.rows(name).min(20) {
            let one = support::flat_values(fx.predict(&model, fx.input(name, r..r + 1)).await);
            assert_eq!(one, whole[r..r + 1], "{name} row {r}");
        }
    }
}

#[tokio::test]
async fn large_batches_answer_the_same_off_the_reactor() {
    let Some(fx) = Fixture::get() else { return };
    let name = "pipeline_random_forest";
    let model = fx.load(name);
    let n = fx.rows(name);
    let big = support::flat_values(
        fx.predict(&model, fx.input(name, (0..60).flat_map(|_| 0..n)))
            .await,
    );
    let once = support::flat_values(fx.predict(&model, fx.input(name, 0..n)).await);
    for chunk in big.chunks(once.len()) {
        assert_eq!(chunk, once);
    }
}

#[tokio::test]
async fn bad_input_is_refused_as_scikit_learn_refuses_it() {
    let Some(fx) = Fixture::get() else { return };
    let invalid = |e: mlox_core::Error| {
        assert_eq!(
            e.code,
            mlox_core::Code::InvalidParameterValue,
            "{}",
            e.message
        );
        e.message
    };
    // A missing column.
    let model = fx.load("seed001_elasticnet_wine");
    let ModelInput::Frame(frame) = fx.input("seed001_elasticnet_wine", 0..2) else {
        panic!()
    };
    let short = frame
        .project(&(1..frame.num_columns()).collect::<Vec<_>>())
        .unwrap();
    let request = |input| PredictRequest {
        input,
        params: Map::new(),
    };
    let err = model
        .predictor
        .predict(request(ModelInput::Frame(short)))
        .await
        .unwrap_err();
    assert!(invalid(err).contains("fixed acidity"));

    // NaN reaches a linear model.
    let mut columns = frame.columns().to_vec();
    columns[0] = Arc::new(Float64Array::from(vec![f64::NAN, 1.0]));
    let nan = RecordBatch::try_new(frame.schema(), columns).unwrap();
    let err = model
        .predictor
        .predict(request(ModelInput::Frame(nan)))
        .await
        .unwrap_err();
    assert!(invalid(err).contains("NaN"));

    // An unseen category where the encoder was told to refuse them.
    let model = fx.load("pipeline_onehot_error");
    let batch = RecordBatch::try_from_iter([
        (
            "city",
            Arc::new(StringArray::from(vec!["atlantis"])) as ArrayRef,
        ),
        ("plan", Arc::new(StringArray::from(vec!["pro"])) as ArrayRef),
    ])
    .unwrap();
    let err = model
        .predictor
        .predict(request(ModelInput::Frame(batch)))
        .await
        .unwrap_err();
    assert!(invalid(err).contains("unknown categories"));
}

/// Per-request latency on seed 001's model and the random forest pipeline; run with
/// `--ignored --nocapture` (and `--release` for production numbers).
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn predict_latency() {
    let Some(fx) = Fixture::get() else { return };
    for name in ["seed001_elasticnet_wine", "pipeline_random_forest"] {
        let model = fx.load(name);
        for rows in [1, 100] {
            let request = PredictRequest {
                input: fx.input(name, 0..rows),
                params: Map::new(),
            };
            for _ in 0..200 {
                model.predictor.predict(request.clone()).await.unwrap();
            }
            let n = 20_000 / rows as u32 + 200;
            let start = Instant::now();
            for _ in 0..n {
                model.predictor.predict(request.clone()).await.unwrap();
            }
            let each: Duration = start.elapsed() / n;
            eprintln!(
                "{name} {rows:>4} rows: {:.2} µs per request",
                each.as_secs_f64() * 1e6
            );
        }
    }
}
