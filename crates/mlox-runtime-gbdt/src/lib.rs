//! A native runtime for gradient-boosted tree models: MLflow models of the `xgboost` and
//! `lightgbm` flavors served without Python, answering exactly what
//! `mlflow.pyfunc.load_model(dir).predict(df)` answers.
//!
//! [`load`] reads the `MLmodel`, decides whether the model is one this runtime reproduces
//! faithfully, and either returns a [`LoadedModel`] or a [`Load::Fallback`] saying why not, so
//! the caller can hand the directory to the Python runtime instead. Only a model file that its
//! flavor claims but that cannot be read is an error.
//!
//! What a prediction returns follows the pyfunc flavors, shaped as the Python runtime shapes
//! them (a 1-D result is a one-column frame named `predictions`, a 2-D one a tensor of that
//! name):
//! - `xgboost`, saved `Booster`: `Booster.predict` — probabilities, class probabilities,
//!   values or margins as `f32`. `XGBClassifier`: class indices (`i64`; `i32` for
//!   multi:softmax). `XGBRegressor`: values. The sklearn wrappers stop at `best_iteration`.
//!   An `output_margin` parameter is honoured when the signature declares it, as MLflow only
//!   passes declared parameters.
//! - `lightgbm`, saved `Booster`: `Booster.predict` as `f64`. An `LGBMClassifier` or
//!   `LGBMRegressor` stored with skops (MLflow's default): its labels, in their numpy type,
//!   or its values. Parameters are ignored, as MLflow's wrapper ignores them.
//!
//! Predictions are plain CPU work on the caller's thread; batches big enough to take more
//! than about a millisecond move to tokio's blocking pool so they never stall the reactor.

mod lightgbm;
mod skops;
mod ubjson;
mod xgboost;

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use async_trait::async_trait;
use mlox_core::{Error, Result};
use mlox_mlmodel::mlmodel::PYFUNC_FLAVOR;
use mlox_mlmodel::{MlModel, Signature};
use serde_json::Value;

pub use mlox_runtime::{Load, ModelDir};
use mlox_runtime::{
    LoadedModel, ModelInput, ModelOutput, NativeBackend, PredictRequest, Predictor, fallback,
};
use mlox_runtime_native::skops::Labels;
pub(crate) use mlox_runtime_native::{Refusal, input};
use mlox_runtime_native::{column, read_file, refused, values_output};

/// Above this many row × tree visits a prediction runs on the blocking pool (roughly a
/// millisecond of work); below, hopping threads would cost more than it saves.
const BLOCKING_WORK: usize = 200_000;

/// Parameters of XGBoost's `predict` that change what it returns in ways this runtime does
/// not reproduce; a signature declaring one means callers may send it.
const XGBOOST_FOREIGN_PARAMS: &[&str] = &[
    "pred_leaf",
    "pred_contribs",
    "approx_contribs",
    "pred_interactions",
    "training",
    "iteration_range",
    "strict_shape",
    "base_margin",
    "validate_features",
];

/// The backend for `mlflow.xgboost` and `mlflow.lightgbm` models.
pub struct Gbdt;

impl NativeBackend for Gbdt {
    fn loader_modules(&self) -> &'static [&'static str] {
        &["mlflow.xgboost", "mlflow.lightgbm"]
    }

    fn load(&self, model: &ModelDir) -> Result<Load> {
        load(model)
    }
}

/// Loads `model` natively if it is an XGBoost or LightGBM model this runtime reproduces; see
/// the module documentation.
pub fn load(model: &ModelDir) -> Result<Load> {
    let mlmodel = model.mlmodel.clone();
    let Some(pyfunc) = mlmodel.flavor(PYFUNC_FLAVOR) else {
        return fallback("the model has no python_function flavor");
    };
    let loader = pyfunc.get("loader_module").and_then(Value::as_str);
    let signature = match mlmodel.parsed_signature() {
        Ok(s) => s,
        Err(e) => return fallback(format!("its signature is unreadable: {}", e.message)),
    };
    match loader {
        Some("mlflow.xgboost") => load_xgboost(model, mlmodel, signature),
        Some("mlflow.lightgbm") => load_lightgbm(model, mlmodel, signature),
        Some(other) => fallback(format!("{other} models have no native runtime")),
        None => fallback("the python_function flavor names no loader_module"),
    }
}

fn native(
    mlmodel: MlModel,
    signature: Option<Signature>,
    runtime: Runtime,
    description: String,
) -> Result<Load> {
    Ok(Load::Native {
        model: LoadedModel {
            mlmodel,
            signature,
            predictor: Arc::new(GbdtPredictor {
                runtime: Arc::new(runtime),
            }),
            language: None,
        },
        description,
    })
}

/// What the sklearn-or-not class of a saved XGBoost model makes `predict` return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XgbOutput {
    /// `Booster.predict`, `XGBRegressor.predict`.
    Values,
    /// `XGBClassifier.predict`: class indices.
    Labels,
}

/// A flavor's settings and the Python class it saved (`default` when it does not say).
fn flavor_and_class<'m>(
    mlmodel: &'m MlModel,
    name: &str,
    default: &'m str,
) -> Option<(&'m Value, &'m str)> {
    let flavor = mlmodel.flavor(name)?;
    let class = flavor
        .get("model_class")
        .and_then(Value::as_str)
        .unwrap_or(default);
    Some((flavor, class))
}

fn load_xgboost(model: &ModelDir, mlmodel: MlModel, signature: Option<Signature>) -> Result<Load> {
    let Some((flavor, class)) = flavor_and_class(&mlmodel, "xgboost", "xgboost.core.Booster")
    else {
        return fallback("the model has no xgboost flavor");
    };
    let (output, rounds, short) = match class {
        "xgboost.core.Booster" => (XgbOutput::Values, xgboost::RoundLimit::All, "Booster"),
        "xgboost.sklearn.XGBRegressor" | "xgboost.sklearn.XGBRFRegressor" => (
            XgbOutput::Values,
            xgboost::RoundLimit::BestIteration,
            class.trim_start_matches("xgboost.sklearn."),
        ),
        "xgboost.sklearn.XGBClassifier" | "xgboost.sklearn.XGBRFClassifier" => (
            XgbOutput::Labels,
            xgboost::RoundLimit::BestIteration,
            class.trim_start_matches("xgboost.sklearn."),
        ),
        other => return fallback(format!("XGBoost model class {other}")),
    };
    let declared: Vec<&str> = signature
        .as_ref()
        .map(|s| s.params.iter().map(|p| p.name.as_str()).collect())
        .unwrap_or_default();
    if let Some(p) = declared.iter().find(|p| XGBOOST_FOREIGN_PARAMS.contains(p)) {
        return fallback(format!(
            "the signature declares the predict parameter '{p}'"
        ));
    }
    let margin_default = match signature
        .as_ref()
        .and_then(|s| s.params.iter().find(|p| p.name == "output_margin"))
    {
        None => None,
        Some(spec) => match &spec.default {
            Value::Bool(b) => Some(*b),
            Value::Null => Some(false),
            other => return fallback(format!("output_margin defaults to {other}")),
        },
    };
    let Some(path) = model.flavor_file(flavor, "data") else {
        return fallback("the xgboost flavor's data path is missing or leaves the model directory");
    };
    let bytes = read_file(&path)?;
    let model = match refused(&path, xgboost::read(&bytes, rounds))? {
        Ok(m) => m,
        Err(load) => return Ok(load),
    };
    if output == XgbOutput::Labels {
        if model.num_class == 0 && model.n_groups() > 1 {
            return fallback("multi-label XGBClassifier models");
        }
        // With two classes, XGBClassifier reads a probability matrix as multi-label output.
        if model.num_class == 2 && model.objective == xgboost::Objective::Softprob {
            return fallback("an XGBClassifier with a two-class multi:softprob objective");
        }
    }
    let finite_only = class == "xgboost.core.Booster";
    let stop = match (rounds, model.best_iteration) {
        (xgboost::RoundLimit::BestIteration, Some(best)) => format!(" up to best_iteration {best}"),
        _ => String::new(),
    };
    let description = format!(
        "XGBoost {short} ({}), {} trees{stop} over {} features, from {} ({})",
        model.objective_name,
        model.forest.n_trees(),
        model.features.count(),
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        model.format,
    );
    native(
        mlmodel,
        signature,
        Runtime::Xgboost {
            model,
            output,
            margin_default,
            finite_only,
        },
        description,
    )
}

fn load_lightgbm(model: &ModelDir, mlmodel: MlModel, signature: Option<Signature>) -> Result<Load> {
    let Some((flavor, class)) = flavor_and_class(&mlmodel, "lightgbm", "lightgbm.basic.Booster")
    else {
        return fallback("the model has no lightgbm flavor");
    };
    let Some(path) = model.flavor_file(flavor, "data") else {
        return fallback(
            "the lightgbm flavor's data path is missing or leaves the model directory",
        );
    };
    let (text, iterations, labels, short) = match class {
        "lightgbm.basic.Booster" => {
            let text = String::from_utf8(read_file(&path)?).map_err(|_| {
                Error::invalid(format!("{} is not a LightGBM text model", path.display()))
            })?;
            (text, None, None, "Booster")
        }
        "lightgbm.sklearn.LGBMClassifier" | "lightgbm.sklearn.LGBMRegressor" => {
            let format = flavor
                .get("serialization_format")
                .and_then(Value::as_str)
                .unwrap_or("cloudpickle");
            if format != "skops" {
                return fallback(format!(
                    "LightGBM estimators serialized with {format} are only loaded by Python"
                ));
            }
            let bytes = read_file(&path)?;
            let estimator = match refused(&path, skops::read(&bytes))? {
                Ok(e) => e,
                Err(load) => return Ok(load),
            };
            if !class.ends_with(&format!(".{}", estimator.class)) {
                return Err(Error::invalid(format!(
                    "{} holds an {} but the flavor says {class}",
                    path.display(),
                    estimator.class
                )));
            }
            let iterations = usize::try_from(estimator.best_iteration).ok();
            let short = if estimator.classes.is_some() {
                "LGBMClassifier"
            } else {
                "LGBMRegressor"
            };
            (estimator.model, iterations, estimator.classes, short)
        }
        other => return fallback(format!("LightGBM model class {other}")),
    };
    let model = match refused(&path, lightgbm::read(&text, iterations))? {
        Ok(m) => m,
        Err(load) => return Ok(load),
    };
    if let Some(labels) = &labels {
        let classifying = matches!(
            model.objective,
            lightgbm::Objective::Sigmoid(_)
                | lightgbm::Objective::Softmax
                | lightgbm::Objective::SigmoidPerClass(_)
        );
        if !classifying {
            return fallback(format!(
                "an LGBMClassifier with objective '{}'",
                model.objective_name
            ));
        }
        let expected = model.n_outputs().max(2);
        if labels.len() != expected {
            return Err(Error::invalid(format!(
                "{} has {} class labels for {expected} classes",
                path.display(),
                labels.len()
            )));
        }
    }
    let description = format!(
        "LightGBM {short} ({}), {} trees over {} features, from {}",
        model.objective_name,
        model.forest.n_trees(),
        model.features.count(),
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
    );
    native(
        mlmodel,
        signature,
        Runtime::Lightgbm { model, labels },
        description,
    )
}

enum Runtime {
    Xgboost {
        model: xgboost::Model,
        output: XgbOutput,
        /// `Some` when the signature declares `output_margin`, holding its default.
        margin_default: Option<bool>,
        /// MLflow feeds a bare Booster through a `DMatrix`, which refuses infinite values; the
        /// sklearn wrappers predict in place and accept them.
        finite_only: bool,
    },
    Lightgbm {
        model: lightgbm::Model,
        /// The class labels of an `LGBMClassifier`.
        labels: Option<Labels>,
    },
}

struct GbdtPredictor {
    runtime: Arc<Runtime>,
}

#[async_trait]
impl Predictor for GbdtPredictor {
    async fn predict(&self, request: PredictRequest) -> Result<ModelOutput> {
        if self.runtime.work(&request.input) <= BLOCKING_WORK {
            return self.runtime.predict(&request);
        }
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.predict(&request))
            .await
            .map_err(|e| Error::internal(format!("a prediction task failed: {e}")))?
    }
}

impl Runtime {
    /// Row × tree visits a request costs.
    fn work(&self, input: &ModelInput) -> usize {
        let rows = match input {
            ModelInput::Frame(batch) => batch.num_rows(),
            ModelInput::Tensors(tensors) => tensors
                .iter()
                .map(|t| t.shape.first().copied().unwrap_or(1))
                .max()
                .unwrap_or(0),
        };
        let trees = match self {
            Runtime::Xgboost { model, .. } => model.forest.n_trees(),
            Runtime::Lightgbm { model, .. } => model.forest.n_trees(),
        };
        rows.saturating_mul(trees)
    }

    fn predict(&self, request: &PredictRequest) -> Result<ModelOutput> {
        match self {
            Runtime::Xgboost {
                model,
                output,
                margin_default,
                finite_only,
            } => {
                let margin = match margin_default {
                    None => false,
                    Some(default) => match request.params.get("output_margin") {
                        None | Some(Value::Null) => *default,
                        Some(Value::Bool(b)) => *b,
                        Some(other) => {
                            return Err(Error::invalid(format!(
                                "output_margin must be a boolean, got {other}"
                            )));
                        }
                    },
                };
                predict_xgboost(model, *output, margin, *finite_only, &request.input)
            }
            Runtime::Lightgbm { model, labels } => {
                predict_lightgbm(model, labels.as_ref(), &request.input)
            }
        }
    }
}

fn predict_xgboost(
    model: &xgboost::Model,
    output: XgbOutput,
    margin: bool,
    finite_only: bool,
    input: &ModelInput,
) -> Result<ModelOutput> {
    let matrix = input::matrix::<f32>(input, &model.features)?;
    if finite_only && matrix.values.iter().any(|v| v.is_infinite()) {
        return Err(Error::invalid(
            "the input contains an infinite value (or one beyond 32-bit float range), which \
             XGBoost refuses",
        ));
    }
    let rows = matrix.rows;
    let groups = model.n_groups();
    let mut values = model.margins(rows, &matrix.values);
    if margin {
        return Ok(values_output(
            Arc::new(Float32Array::from(values)),
            rows,
            groups,
        ));
    }
    let softmax = model.objective == xgboost::Objective::Softmax;
    model.transform(&mut values);
    let width = if softmax { 1 } else { groups };
    if output == XgbOutput::Values {
        return Ok(values_output(
            Arc::new(Float32Array::from(values)),
            rows,
            width,
        ));
    }
    // XGBClassifier.predict: softmax class indices as int32; probabilities of several
    // classes by argmax, one probability by `> 0.5`, both as int64.
    let labels: ArrayRef = if softmax {
        Arc::new(Int32Array::from_iter_values(
            values.iter().map(|&v| v as i32),
        ))
    } else if width > 1 {
        Arc::new(Int64Array::from_iter_values(
            values.chunks(width).map(|row| xgboost::argmax(row) as i64),
        ))
    } else {
        Arc::new(Int64Array::from_iter_values(
            values.iter().map(|&p| i64::from(p > 0.5)),
        ))
    };
    Ok(column(labels))
}

fn predict_lightgbm(
    model: &lightgbm::Model,
    labels: Option<&Labels>,
    input: &ModelInput,
) -> Result<ModelOutput> {
    let mut matrix = input::matrix::<f64>(input, &model.features)?;
    lightgbm::zero_small(&mut matrix.values);
    let rows = matrix.rows;
    let k = model.n_outputs();
    let values = model.predict(rows, &matrix.values);
    let Some(labels) = labels else {
        return Ok(values_output(Arc::new(Float64Array::from(values)), rows, k));
    };
    // LGBMClassifier.predict: argmax of predict_proba, whose binary form is [1 - p, p].
    let classes: Vec<usize> = if k == 1 {
        values.iter().map(|&p| usize::from(p > 1.0 - p)).collect()
    } else {
        values.chunks(k).map(xgboost::argmax).collect()
    };
    let array: ArrayRef = match labels {
        Labels::Int64(l) => Arc::new(Int64Array::from_iter_values(classes.iter().map(|&c| l[c]))),
        Labels::Int32(l) => Arc::new(Int32Array::from_iter_values(classes.iter().map(|&c| l[c]))),
        Labels::Float64(l) => Arc::new(Float64Array::from_iter_values(
            classes.iter().map(|&c| l[c]),
        )),
        Labels::Bool(l) => Arc::new(BooleanArray::from_iter(classes.iter().map(|&c| Some(l[c])))),
        Labels::Str(l) => Arc::new(StringArray::from_iter_values(
            classes.iter().map(|&c| l[c].as_str()),
        )),
    };
    Ok(column(array))
}

#[cfg(test)]
mod tests {
    use arrow_array::RecordBatch;

    use std::path::Path;

    use super::*;
    use mlox_runtime_native::PREDICTIONS;

    /// Reads `dir`'s MLmodel and offers it to this backend, as selection does.
    fn load_dir(dir: &Path) -> Result<Load> {
        load(&ModelDir::open(dir)?)
    }

    fn write_model(dir: &Path, mlmodel: &str, files: &[(&str, &[u8])]) {
        std::fs::write(dir.join("MLmodel"), mlmodel).unwrap();
        for (name, data) in files {
            std::fs::write(dir.join(name), data).unwrap();
        }
    }

    fn reason(load: Load) -> String {
        match load {
            Load::Fallback { reason } => reason,
            Load::Native { description, .. } => panic!("loaded natively: {description}"),
        }
    }

    #[test]
    fn other_flavors_and_non_models_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            ModelDir::open(dir.path())
                .unwrap_err()
                .message
                .contains("MLmodel")
        );
        write_model(
            dir.path(),
            "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n",
            &[],
        );
        assert!(reason(load_dir(dir.path()).unwrap()).contains("mlflow.sklearn"));
        write_model(
            dir.path(),
            "flavors:\n  onnx:\n    onnx_version: 1.17\n",
            &[],
        );
        assert!(reason(load_dir(dir.path()).unwrap()).contains("python_function"));
    }

    const XGB_MLMODEL: &str = "flavors:
  python_function:
    data: model.json
    loader_module: mlflow.xgboost
  xgboost:
    data: model.json
    model_class: xgboost.core.Booster
    model_format: json
";

    const STUMP: &str = r#"{"learner":{"feature_names":[],"feature_types":[],
      "gradient_booster":{"name":"gbtree","model":{"tree_info":[0],"trees":[
        {"tree_param":{"num_nodes":"3","size_leaf_vector":"1"},
         "left_children":[1,-1,-1],"right_children":[2,-1,-1],"split_indices":[0,0,0],
         "split_conditions":[0.5,-1.0,1.0],"default_left":[1,0,0]}]}},
      "learner_model_param":{"base_score":"[0E0]","num_class":"0","num_feature":"1"},
      "objective":{"name":"reg:squarederror"}}}"#;

    #[test]
    fn data_outside_the_model_directory_is_never_read() {
        let dir = tempfile::tempdir().unwrap();
        write_model(
            dir.path(),
            &XGB_MLMODEL.replace(
                "data: model.json\n    model_class",
                "data: ../model.json\n    model_class",
            ),
            &[],
        );
        assert!(reason(load_dir(dir.path()).unwrap()).contains("data path"));
    }

    #[test]
    fn a_missing_or_corrupt_model_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_model(dir.path(), XGB_MLMODEL, &[]);
        assert!(load_dir(dir.path()).is_err());
        write_model(
            dir.path(),
            XGB_MLMODEL,
            &[("model.json", b"{\"learner\": 3")],
        );
        let err = load_dir(dir.path()).err().unwrap();
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
        assert!(err.message.contains("model.json"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_booster_predicts_and_declared_margins_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let mlmodel = format!(
            "{XGB_MLMODEL}signature:\n  inputs: '[{{\"type\": \"double\", \"name\": \"x\"}}]'\n  \
             params: '[{{\"name\": \"output_margin\", \"type\": \"boolean\", \"default\": false, \
             \"shape\": null}}]'\n"
        );
        write_model(dir.path(), &mlmodel, &[("model.json", STUMP.as_bytes())]);
        let Load::Native { model, description } = load_dir(dir.path()).unwrap() else {
            panic!("fell back")
        };
        assert!(description.contains("reg:squarederror"), "{description}");
        let request = |params: serde_json::Map<String, Value>| PredictRequest {
            input: ModelInput::Frame(
                RecordBatch::try_from_iter([(
                    "x",
                    Arc::new(Float64Array::from(vec![Some(0.0), Some(1.0), None])) as ArrayRef,
                )])
                .unwrap(),
            ),
            params,
        };
        let ModelOutput::Frame(out) = model
            .predictor
            .predict(request(Default::default()))
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(out.schema().field(0).name(), PREDICTIONS);
        let values = out
            .column(0)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        assert_eq!(values.values().to_vec(), vec![-1.0, 1.0, -1.0]);

        let mut bad = serde_json::Map::new();
        bad.insert("output_margin".into(), Value::from("yes"));
        let err = model.predictor.predict(request(bad)).await.unwrap_err();
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
    }

    #[test]
    fn foreign_predict_parameters_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        let mlmodel = format!(
            "{XGB_MLMODEL}signature:\n  inputs: '[{{\"type\": \"double\", \"name\": \"x\"}}]'\n  \
             params: '[{{\"name\": \"pred_contribs\", \"type\": \"boolean\", \"default\": false, \
             \"shape\": null}}]'\n"
        );
        write_model(dir.path(), &mlmodel, &[("model.json", STUMP.as_bytes())]);
        assert!(reason(load_dir(dir.path()).unwrap()).contains("pred_contribs"));
    }
}
