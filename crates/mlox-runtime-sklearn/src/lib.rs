//! A native runtime for scikit-learn models: MLflow models of the `sklearn` flavor saved with
//! skops (MLflow's default format) served without Python, answering what
//! `mlflow.pyfunc.load_model(dir).predict(df)` — the estimator's `predict` — answers.
//!
//! [`load`] reads the `MLmodel`, decides whether the estimator is one this runtime reproduces
//! faithfully, and either returns a [`LoadedModel`] or a [`Load::Fallback`] saying why not, so
//! the caller can hand the directory to the Python runtime instead. Only a model file that the
//! flavor claims but that cannot be read is an error.
//!
//! Understood: linear models (LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor,
//! LogisticRegression, SGDClassifier), decision trees, random forests, extra trees and
//! gradient boosting (classifiers and regressors), alone or at the end of a Pipeline of
//! StandardScaler, MinMaxScaler, RobustScaler, SimpleImputer (numeric), OneHotEncoder,
//! OrdinalEncoder and ColumnTransformer. Regressors return `f64` values (a `[rows, k]` tensor
//! when `coef_` is 2-D), classifiers their labels in the numpy type of `classes_`. Pickled
//! models, other estimators and settings outside that list fall back. Tree structures are
//! checked on load, so a crafted file cannot make evaluation index out of bounds — which is
//! why skops leaves scikit-learn's `Tree` untrusted and this runtime need not.

mod model;
mod read;

use std::sync::Arc;

use async_trait::async_trait;
use mlox_core::{Error, Result};
use mlox_mlmodel::Signature;
use mlox_mlmodel::mlmodel::PYFUNC_FLAVOR;
use mlox_mlmodel::signature::{DataType, Schema};
pub use mlox_runtime::{Load, ModelDir};
use mlox_runtime::{
    LoadedModel, ModelInput, ModelOutput, NativeBackend, PredictRequest, Predictor, fallback,
};
use mlox_runtime_native::{read_file, refused};
use serde_json::Value;

use model::Model;

/// Above this much work (row × feature or tree visits) a prediction runs on the blocking pool;
/// below, hopping threads would cost more than it saves.
const BLOCKING_WORK: usize = 400_000;

/// The backend for `mlflow.sklearn` models.
pub struct Sklearn;

impl NativeBackend for Sklearn {
    fn loader_modules(&self) -> &'static [&'static str] {
        &["mlflow.sklearn"]
    }

    fn load(&self, model: &ModelDir) -> Result<Load> {
        load(model)
    }
}

/// Loads `model` natively if it is a scikit-learn model this runtime reproduces; see the
/// module documentation.
pub fn load(model: &ModelDir) -> Result<Load> {
    let mlmodel = model.mlmodel.clone();
    let Some(pyfunc) = mlmodel.flavor(PYFUNC_FLAVOR) else {
        return fallback("the model has no python_function flavor");
    };
    match pyfunc.get("loader_module").and_then(Value::as_str) {
        Some("mlflow.sklearn") => {}
        Some(other) => return fallback(format!("{other} models are not scikit-learn models")),
        None => return fallback("the python_function flavor names no loader_module"),
    }
    if let Some(f) = pyfunc.get("predict_fn").and_then(Value::as_str)
        && f != "predict"
    {
        return fallback(format!("the model predicts with {f}"));
    }
    let Some(flavor) = mlmodel.flavor("sklearn") else {
        return fallback("the model has no sklearn flavor");
    };
    let format = flavor
        .get("serialization_format")
        .and_then(Value::as_str)
        .unwrap_or("cloudpickle");
    if format != "skops" {
        return fallback(format!(
            "scikit-learn models serialized with {format} are only loaded by Python"
        ));
    }
    if flavor.get("code").is_some_and(|c| !c.is_null()) {
        return fallback("the model ships code of its own");
    }
    let signature = match mlmodel.parsed_signature() {
        Ok(s) => s,
        Err(e) => return fallback(format!("its signature is unreadable: {}", e.message)),
    };
    let Some(path) = model.flavor_file(flavor, "pickled_model") else {
        return fallback(
            "the sklearn flavor's model path is missing or leaves the model directory",
        );
    };
    let bytes = read_file(&path)?;
    let (model, description) = match refused(&path, read::read(&bytes))? {
        Ok(m) => m,
        Err(load) => return Ok(load),
    };
    if let Some(reason) = float32_inputs(signature.as_ref(), &model) {
        return fallback(reason);
    }
    Ok(Load::Native {
        model: LoadedModel {
            mlmodel,
            signature,
            predictor: Arc::new(SklearnPredictor {
                model: Arc::new(model),
            }),
            language: None,
        },
        description,
    })
}

/// scikit-learn's scalers and imputers keep 32-bit float columns in 32-bit arithmetic, which
/// this runtime (always 64-bit) would not reproduce; MLflow hands a `float` column of the
/// signature to the model as `float32`.
fn float32_inputs(signature: Option<&Signature>, model: &Model) -> Option<String> {
    let signature = signature?;
    let numeric_steps = model
        .steps
        .iter()
        .any(|s| s.numeric() || matches!(s, model::Step::Columns { .. }));
    if !numeric_steps {
        return None;
    }
    let has_float = match &signature.inputs {
        Schema::Columns(cols) => cols.iter().any(|c| c.dtype == DataType::Float),
        Schema::Tensors(tensors) => tensors.iter().any(|t| t.dtype == "float32"),
    };
    has_float.then(|| "the signature declares 32-bit float inputs, which scikit-learn scales in 32-bit arithmetic".to_owned())
}

struct SklearnPredictor {
    model: Arc<Model>,
}

fn rows(input: &ModelInput) -> usize {
    match input {
        ModelInput::Frame(batch) => batch.num_rows(),
        ModelInput::Tensors(tensors) => tensors
            .iter()
            .map(|t| t.shape.first().copied().unwrap_or(1))
            .max()
            .unwrap_or(0),
    }
}

#[async_trait]
impl Predictor for SklearnPredictor {
    async fn predict(&self, request: PredictRequest) -> Result<ModelOutput> {
        if self.model.work(rows(&request.input)) <= BLOCKING_WORK {
            return self.model.predict(&request.input);
        }
        let model = self.model.clone();
        tokio::task::spawn_blocking(move || model.predict(&request.input))
            .await
            .map_err(|e| Error::internal(format!("a prediction task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Reads `dir`'s MLmodel and offers it to this backend, as selection does.
    fn load_dir(dir: &Path) -> Result<Load> {
        load(&ModelDir::open(dir)?)
    }

    fn reason(load: Load) -> String {
        match load {
            Load::Fallback { reason } => reason,
            Load::Native { description, .. } => panic!("loaded natively: {description}"),
        }
    }

    const MLMODEL: &str = "flavors:
  python_function:
    loader_module: mlflow.sklearn
    model_path: model.skops
    predict_fn: predict
  sklearn:
    pickled_model: model.skops
    serialization_format: skops
";

    #[test]
    fn foreign_and_pickled_models_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            ModelDir::open(dir.path())
                .unwrap_err()
                .message
                .contains("MLmodel")
        );
        let write = |text: &str| std::fs::write(dir.path().join("MLmodel"), text).unwrap();
        write("flavors:\n  python_function:\n    loader_module: mlflow.xgboost\n");
        assert!(reason(load_dir(dir.path()).unwrap()).contains("mlflow.xgboost"));
        write(&MLMODEL.replace(
            "serialization_format: skops",
            "serialization_format: pickle",
        ));
        assert!(reason(load_dir(dir.path()).unwrap()).contains("pickle"));
        write(&MLMODEL.replace("serialization_format: skops\n", ""));
        assert!(reason(load_dir(dir.path()).unwrap()).contains("cloudpickle"));
        write(&MLMODEL.replace(
            "pickled_model: model.skops",
            "pickled_model: ../model.skops",
        ));
        assert!(reason(load_dir(dir.path()).unwrap()).contains("leaves the model directory"));
        write(&MLMODEL.replace("predict_fn: predict", "predict_fn: predict_proba"));
        assert!(reason(load_dir(dir.path()).unwrap()).contains("predict_proba"));
    }

    #[test]
    fn a_missing_or_corrupt_archive_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("MLmodel"), MLMODEL).unwrap();
        assert!(load_dir(dir.path()).is_err());
        std::fs::write(dir.path().join("model.skops"), b"PK not really").unwrap();
        let err = load_dir(dir.path()).err().unwrap();
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
        assert!(err.message.contains("model.skops"), "{}", err.message);
    }
}
