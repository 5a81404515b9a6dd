//! What the native runtimes (gradient-boosted trees, scikit-learn) share: the outcome of
//! loading a model natively ([`Load`]), how a reader declines a model file ([`Refusal`]), the
//! model directory helpers, the flat tree evaluator, the Arrow-to-feature-matrix conversion,
//! the skops archive reader, and the shaping of results the way the Python runtime shapes
//! them (a 1-D result is a one-column frame named `predictions`, an N-D one a tensor of that
//! name).

// Each runtime uses its own subset of these helpers; with one of them compiled out the rest
// would warn.
#![cfg_attr(not(all(feature = "gbdt", feature = "sklearn")), allow(dead_code))]

pub(crate) mod forest;
pub(crate) mod input;
pub(crate) mod skops;

use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use mlox_core::{Error, Result};
use serde_json::Value;

use crate::{LoadedModel, ModelOutput, Tensor};

/// The name of the single output column or tensor, as the Python runtime names it.
pub(crate) const PREDICTIONS: &str = "predictions";

/// The outcome of loading a model with a native runtime.
// Built once per model load and matched right away; boxing the model would only add a step.
#[allow(clippy::large_enum_variant)]
pub enum Load {
    /// The model is served natively; `description` says what was loaded, for logs.
    Native {
        model: LoadedModel,
        description: String,
    },
    /// Not a model this runtime serves (another flavor, or a feature it does not reproduce);
    /// `reason` is meant for logs. The Python runtime serves it instead.
    Fallback { reason: String },
}

/// Loads the model in `dir` with the native runtime for its pyfunc flavor's loader module
/// (`mlflow.xgboost`, `mlflow.lightgbm`, `mlflow.sklearn`, and `mlflow.onnx` when built with
/// the `onnx` feature), or says why none takes it.
pub fn load(dir: &Path) -> Result<Load> {
    let loader = mlox_mlmodel::MlModel::from_dir(dir).ok().and_then(|m| {
        m.flavor(mlox_mlmodel::mlmodel::PYFUNC_FLAVOR)?
            .get("loader_module")?
            .as_str()
            .map(str::to_string)
    });
    match loader.as_deref() {
        #[cfg(feature = "gbdt")]
        Some("mlflow.xgboost" | "mlflow.lightgbm") => crate::gbdt::load(dir),
        #[cfg(feature = "sklearn")]
        Some("mlflow.sklearn") => crate::sklearn::load(dir),
        #[cfg(feature = "onnx")]
        Some("mlflow.onnx") => crate::onnx::load(dir),
        Some(other) => fallback(format!("{other} models have no native runtime")),
        None => fallback("the model names no python_function loader module"),
    }
}

/// Why a model file was not turned into a model.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Valid, but uses something this runtime does not implement.
    Unsupported(String),
    /// Not a valid model file.
    Corrupt(String),
}

pub(crate) fn fallback(reason: impl Into<String>) -> Result<Load> {
    Ok(Load::Fallback {
        reason: reason.into(),
    })
}

/// The flavor's `key` file (`data`, `pickled_model`) inside `dir`; `None` when it is missing
/// or would leave the directory.
pub(crate) fn flavor_file(dir: &Path, flavor: &Value, key: &str) -> Option<PathBuf> {
    let data = flavor.get(key).and_then(Value::as_str)?;
    let relative = Path::new(data);
    let inside = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    inside.then(|| dir.join(relative))
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))
}

/// Maps a reader's refusal to the outcome of a load.
pub(crate) fn refused<T>(
    path: &Path,
    result: std::result::Result<T, Refusal>,
) -> Result<std::result::Result<T, Load>> {
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(Refusal::Unsupported(reason)) => Ok(Err(Load::Fallback { reason })),
        Err(Refusal::Corrupt(message)) => Err(Error::invalid(format!(
            "{} is not a valid model file: {message}",
            path.display()
        ))),
    }
}

/// A 1-D result as the Python runtime returns it: a one-column frame.
pub(crate) fn column(array: ArrayRef) -> ModelOutput {
    let batch = RecordBatch::try_new(predictions_schema(array.data_type()), vec![array]);
    ModelOutput::Frame(batch.expect("one column is a valid record batch"))
}

/// The one-column schema of a 1-D result, built once per type rather than per request.
fn predictions_schema(data_type: &DataType) -> SchemaRef {
    static SCHEMAS: OnceLock<Vec<SchemaRef>> = OnceLock::new();
    let build = |t: DataType| Arc::new(Schema::new(vec![Field::new(PREDICTIONS, t, true)]));
    SCHEMAS
        .get_or_init(|| {
            [
                DataType::Float32,
                DataType::Float64,
                DataType::Int32,
                DataType::Int64,
                DataType::Boolean,
                DataType::Utf8,
            ]
            .into_iter()
            .map(build)
            .collect()
        })
        .iter()
        .find(|s| s.field(0).data_type() == data_type)
        .cloned()
        .unwrap_or_else(|| build(data_type.clone()))
}

/// A `[rows, width]` result as one tensor.
pub(crate) fn tensor(values: ArrayRef, rows: usize, width: usize) -> ModelOutput {
    ModelOutput::Tensors(vec![Tensor {
        name: PREDICTIONS.to_owned(),
        shape: vec![rows, width],
        data: values,
    }])
}

/// `rows × width` values: a column when each row has one, else a `[rows, width]` tensor.
pub(crate) fn values_output(values: ArrayRef, rows: usize, width: usize) -> ModelOutput {
    if width == 1 {
        column(values)
    } else {
        tensor(values, rows, width)
    }
}
