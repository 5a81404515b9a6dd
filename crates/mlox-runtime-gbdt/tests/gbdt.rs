//! The native tree runtime against real XGBoost and LightGBM models: `fixtures/make_gbdt_models.py`
//! trains and saves them with the real libraries and MLflow and records what
//! `mlflow.pyfunc.load_model(dir).predict(...)` answers; every model here must load natively and
//! answer the same (values within 1e-6 relative, labels exactly, same dtype and shape), and the
//! models the runtime does not reproduce must fall back.
//!
//! The interpreter is `$MLOX_PYTHON`, else `$MLOX_VENV/bin/python`; it needs mlflow, xgboost,
//! lightgbm and scikit-learn. Without one these tests print a note and pass, unless
//! `MLOX_REQUIRE_PYTHON=1` makes that a failure.

#![allow(clippy::unwrap_used)]

#[path = "../../mlox-runtime/tests/support/mod.rs"]
mod support;

use support::downcast;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Float64Array, RecordBatch};
use mlox_runtime::{Load, ModelDir};
use mlox_runtime::{LoadedModel, ModelInput, ModelOutput, PredictRequest, Tensor};
use mlox_runtime_gbdt as gbdt;
use serde_json::{Map, Value};

fn python() -> Option<PathBuf> {
    support::python("mlflow, sklearn, xgboost, lightgbm", "native tree runtime")
}

fn models(python: &Path) -> PathBuf {
    support::models(python, "make_gbdt_models.py", "gbdt-models")
}

struct Fixture {
    dir: PathBuf,
    expected: Value,
}

impl Fixture {
    fn get() -> Option<Fixture> {
        let python = python()?;
        let dir = models(&python);
        let expected = support::expected(&dir);
        Some(Fixture { dir, expected })
    }

    fn names(&self, prefixes: &[&str]) -> Vec<String> {
        support::names(&self.expected, prefixes)
    }

    fn load(&self, name: &str) -> LoadedModel {
        support::native(
            name,
            gbdt::load(&ModelDir::open(&self.dir.join(name)).unwrap()).unwrap(),
        )
    }

    /// The model's recorded test rows as the request MLflow's scoring server would decode.
    fn input(&self, name: &str, rows: std::ops::Range<usize>) -> ModelInput {
        self.input_rows(name, rows)
    }

    /// The recorded rows at `indices`, in that order (repeats allowed).
    fn input_rows(&self, name: &str, indices: impl IntoIterator<Item = usize>) -> ModelInput {
        let input = &self.expected["models"][name]["input"];
        let all = input["rows"].as_array().unwrap();
        let data: Vec<Vec<Option<f64>>> = indices
            .into_iter()
            .map(|i| {
                all[i]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(Value::as_f64)
                    .collect()
            })
            .collect();
        match input["kind"].as_str().unwrap() {
            "frame" => {
                let columns = input["columns"].as_array().unwrap();
                let arrays = columns.iter().enumerate().map(|(j, c)| {
                    let values: Float64Array = data.iter().map(|r| r[j]).collect();
                    (c.as_str().unwrap(), Arc::new(values) as ArrayRef)
                });
                ModelInput::Frame(RecordBatch::try_from_iter(arrays).unwrap())
            }
            "tensor" => {
                let width = data.first().map_or(0, Vec::len);
                let flat: Float64Array = data.iter().flatten().copied().collect();
                ModelInput::Tensors(vec![Tensor {
                    name: String::new(),
                    shape: vec![data.len(), width],
                    data: Arc::new(flat),
                }])
            }
            other => panic!("unknown input kind {other}"),
        }
    }

    fn rows(&self, name: &str) -> usize {
        self.expected["models"][name]["input"]["rows"]
            .as_array()
            .unwrap()
            .len()
    }

    /// Loads each model, predicts every recorded case, and compares with MLflow's answer.
    async fn check_all(&self, prefixes: &[&str]) {
        let mut exact = 0;
        let mut total = 0;
        for name in self.names(prefixes) {
            let model = self.load(&name);
            let cases = self.expected["models"][&name]["cases"].as_array().unwrap();
            for case in cases {
                let request = PredictRequest {
                    input: self.input(&name, 0..self.rows(&name)),
                    params: case["params"].as_object().cloned().unwrap_or_default(),
                };
                let output = model.predictor.predict(request).await.unwrap();
                let (e, t) = compare(
                    &format!("{name} {}", case["params"]),
                    output,
                    &case["output"],
                );
                if e < t {
                    eprintln!("{name}: {} of {t} values differ in the last bits", t - e);
                }
                exact += e;
                total += t;
            }
        }
        eprintln!("{exact} of {total} values are bit-for-bit MLflow's");
    }
}

fn compare(what: &str, output: ModelOutput, expected: &Value) -> (usize, usize) {
    support::compare(what, output, expected, support::Tolerance::Relative(1e-6))
}

const XGB_BOOSTERS: &[&str] = &[
    "xgb_booster_",
    "xgb_objective_",
    "xgb_dart",
    "xgb_two_targets",
];
const XGB_SKLEARN: &[&str] = &["xgb_classifier_", "xgb_regressor_", "xgb_rf_"];
const LGB_BOOSTERS: &[&str] = &[
    "lgb_booster_",
    "lgb_objective_",
    "lgb_zero_as_missing",
    "lgb_no_missing",
    "lgb_random_forest",
];
const LGB_SKLEARN: &[&str] = &["lgb_classifier_", "lgb_regressor"];
const SEED_003: &[&str] = &["xgb_cancer_"];

#[tokio::test]
async fn seed_003_cancer_classifier_in_every_format_answers_like_mlflow() {
    let Some(fx) = Fixture::get() else { return };
    let names = fx.names(SEED_003);
    assert_eq!(names.len(), 3, "ubj, json and xgb: {names:?}");
    fx.check_all(SEED_003).await;

    // The model keeps MLflow's signature, and answers a V2-style [rows, 30] tensor alike.
    let model = fx.load("xgb_cancer_ubj");
    assert_eq!(model.signature.as_ref().unwrap().inputs.len(), 30);
    let ModelInput::Frame(frame) = fx.input("xgb_cancer_ubj", 0..fx.rows("xgb_cancer_ubj")) else {
        panic!()
    };
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
    let output = model
        .predictor
        .predict(PredictRequest {
            input: tensor,
            params: Map::new(),
        })
        .await
        .unwrap();
    compare(
        "cancer as a tensor",
        output,
        &fx.expected["models"]["xgb_cancer_ubj"]["cases"][0]["output"],
    );

    // Parameters the signature does not declare are ignored, as MLflow ignores them.
    let mut params = Map::new();
    params.insert("method".into(), Value::from("proba"));
    let output = model
        .predictor
        .predict(PredictRequest {
            input: fx.input("xgb_cancer_ubj", 0..fx.rows("xgb_cancer_ubj")),
            params,
        })
        .await
        .unwrap();
    compare(
        "cancer with an undeclared param",
        output,
        &fx.expected["models"]["xgb_cancer_ubj"]["cases"][0]["output"],
    );
}

#[tokio::test]
async fn one_row_requests_answer_like_the_batch() {
    let Some(fx) = Fixture::get() else { return };
    for name in [
        "xgb_cancer_ubj",
        "xgb_booster_softprob",
        "lgb_booster_multiclass",
        "lgb_classifier_labels",
    ] {
        let model = fx.load(name);
        let whole = model
            .predictor
            .predict(PredictRequest {
                input: fx.input(name, 0..fx.rows(name)),
                params: Map::new(),
            })
            .await
            .unwrap();
        let whole = support::flat_values(whole);
        let per_row = whole.len() / fx.rows(name);
        for r in 0..fx.rows(name).min(25) {
            let one = model
                .predictor
                .predict(PredictRequest {
                    input: fx.input(name, r..r + 1),
                    params: Map::new(),
                })
                .await
                .unwrap();
            assert_eq!(
                support::flat_values(one),
                whole[r * per_row..(r + 1) * per_row],
                "{name} row {r}"
            );
        }
    }
}

#[tokio::test]
async fn large_batches_answer_the_same_off_the_reactor() {
    let Some(fx) = Fixture::get() else { return };
    // 100 copies of the test rows: far beyond the work a request does inline.
    for name in ["xgb_cancer_ubj", "lgb_booster_multiclass"] {
        let model = fx.load(name);
        let n = fx.rows(name);
        let request = PredictRequest {
            input: fx.input_rows(name, (0..100).flat_map(|_| 0..n)),
            params: Map::new(),
        };
        let big = support::flat_values(model.predictor.predict(request).await.unwrap());
        let once = support::flat_values(
            model
                .predictor
                .predict(PredictRequest {
                    input: fx.input(name, 0..n),
                    params: Map::new(),
                })
                .await
                .unwrap(),
        );
        assert_eq!(big.len(), once.len() * 100, "{name}");
        for chunk in big.chunks(once.len()) {
            assert_eq!(chunk, once, "{name}");
        }
    }
}

#[tokio::test]
async fn xgboost_boosters_answer_like_mlflow() {
    let Some(fx) = Fixture::get() else { return };
    fx.check_all(XGB_BOOSTERS).await;
}

#[tokio::test]
async fn xgboost_sklearn_models_answer_like_mlflow() {
    let Some(fx) = Fixture::get() else { return };
    fx.check_all(XGB_SKLEARN).await;
}

#[tokio::test]
async fn lightgbm_boosters_answer_like_mlflow() {
    let Some(fx) = Fixture::get() else { return };
    fx.check_all(LGB_BOOSTERS).await;
}

#[tokio::test]
async fn lightgbm_sklearn_models_answer_like_mlflow() {
    let Some(fx) = Fixture::get() else { return };
    fx.check_all(LGB_SKLEARN).await;
}

#[test]
fn every_fixture_model_is_checked() {
    let Some(fx) = Fixture::get() else { return };
    let all: Vec<&[&str]> = vec![
        SEED_003,
        XGB_BOOSTERS,
        XGB_SKLEARN,
        LGB_BOOSTERS,
        LGB_SKLEARN,
    ];
    let prefixes: Vec<&str> = all.iter().flat_map(|p| p.iter().copied()).collect();
    support::assert_every_model_covered(&fx.expected, &prefixes);
}

#[test]
fn unsupported_models_fall_back_with_a_reason() {
    let Some(fx) = Fixture::get() else { return };
    let fallbacks = fx.expected["fallbacks"].as_array().unwrap();
    assert!(fallbacks.len() >= 8);
    for name in fallbacks {
        let name = name.as_str().unwrap();
        match gbdt::load(&ModelDir::open(&fx.dir.join(name)).unwrap()).unwrap() {
            Load::Fallback { reason } => {
                assert!(!reason.is_empty(), "{name}");
                eprintln!("{name}: {reason}");
            }
            Load::Native { description, .. } => panic!("{name} loaded natively: {description}"),
        }
    }
    let reason =
        |name: &str| match gbdt::load(&ModelDir::open(&fx.dir.join(name)).unwrap()).unwrap() {
            Load::Fallback { reason } => reason,
            Load::Native { .. } => unreachable!(),
        };
    assert!(reason("sklearn_logistic").contains("mlflow.sklearn"));
    assert!(reason("xgb_gblinear").contains("gblinear"));
    assert!(reason("xgb_categorical").contains("categorical"));
    assert!(reason("lgb_linear_tree").contains("linear"));
    assert!(reason("lgb_categorical").contains("categorical"));
    assert!(reason("lgb_pickled").contains("cloudpickle"));
}

#[tokio::test]
async fn missing_feature_columns_are_bad_input() {
    let Some(fx) = Fixture::get() else { return };
    let model = fx.load("xgb_cancer_ubj");
    let ModelInput::Frame(frame) = fx.input("xgb_cancer_ubj", 0..2) else {
        panic!()
    };
    let short = frame
        .project(&(1..frame.num_columns()).collect::<Vec<_>>())
        .unwrap();
    let err = model
        .predictor
        .predict(PredictRequest {
            input: ModelInput::Frame(short),
            params: Map::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
    assert!(err.message.contains("mean radius"), "{}", err.message);
}

#[tokio::test]
async fn infinite_values_are_refused_only_where_xgboost_refuses_them() {
    let Some(fx) = Fixture::get() else { return };
    let infinite = |name: &str, value: f64| {
        let ModelInput::Frame(frame) = fx.input(name, 0..1) else {
            panic!()
        };
        let columns: Vec<ArrayRef> = frame
            .columns()
            .iter()
            .map(|_| Arc::new(Float64Array::from(vec![value])) as ArrayRef)
            .collect();
        PredictRequest {
            input: ModelInput::Frame(RecordBatch::try_new(frame.schema(), columns).unwrap()),
            params: Map::new(),
        }
    };
    for value in [f64::INFINITY, f64::NEG_INFINITY, 1e39] {
        let booster = fx.load("xgb_booster_logistic_nan");
        let err = booster
            .predictor
            .predict(infinite("xgb_booster_logistic_nan", value))
            .await
            .unwrap_err();
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue, "{value}");
        for name in ["xgb_cancer_ubj", "lgb_booster_binary"] {
            let model = fx.load(name);
            let out = model.predictor.predict(infinite(name, value)).await;
            assert!(out.is_ok(), "{name} {value}: {out:?}");
        }
    }
}

/// Per-request latency on seed 003's model; run with `--ignored --nocapture` (and `--release`
/// for production numbers).
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn predict_latency_on_the_cancer_model() {
    let Some(fx) = Fixture::get() else { return };
    let model = fx.load("xgb_cancer_ubj");
    for rows in [1, 100] {
        let input = fx.input("xgb_cancer_ubj", 0..rows);
        let request = PredictRequest {
            input,
            params: Map::new(),
        };
        for _ in 0..200 {
            model.predictor.predict(request.clone()).await.unwrap();
        }
        let n = 20_000 / rows.max(1) as u32 + 200;
        let start = Instant::now();
        for _ in 0..n {
            model.predictor.predict(request.clone()).await.unwrap();
        }
        let each: Duration = start.elapsed() / n;
        eprintln!(
            "{rows:>4} rows: {:.2} µs per request",
            each.as_secs_f64() * 1e6
        );
    }
}
