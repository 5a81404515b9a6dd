//! What the native backends (gradient-boosted trees, scikit-learn) share: how a reader
//! declines a model file ([`Refusal`]), the flat tree evaluator ([`forest`]), the
//! Arrow-to-feature-matrix conversion ([`input`]), the skops archive reader ([`skops`]), and
//! the shaping of results the way the Python runtime shapes them (a 1-D result is a
//! one-column frame named `predictions`, an N-D one a tensor of that name).
//!
//! This is a support crate, not a backend: it implements no `NativeBackend` and is never
//! imported by mlox-runtime or a transport; the backends built on it never import each other.
//! It depends only on mlox-core and mlox-runtime's data types.

pub mod forest;
pub mod input;
pub mod skops;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use mlox_core::{Error, Result};
use mlox_runtime::{Load, ModelOutput, Tensor};

/// The name of the single output column or tensor, as the Python runtime names it.
pub const PREDICTIONS: &str = "predictions";

/// Why a model file was not turned into a model.
#[derive(Debug)]
pub enum Refusal {
    /// Valid, but uses something this runtime does not implement.
    Unsupported(String),
    /// Not a valid model file.
    Corrupt(String),
}

/// The bytes of a model file the flavor names.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))
}

/// Maps a reader's refusal to the outcome of a load.
pub fn refused<T>(
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
pub fn column(array: ArrayRef) -> ModelOutput {
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
pub fn tensor(values: ArrayRef, rows: usize, width: usize) -> ModelOutput {
    ModelOutput::Tensors(vec![Tensor {
        name: PREDICTIONS.to_owned(),
        shape: vec![rows, width],
        data: values,
    }])
}

/// `rows × width` values: a column when each row has one, else a `[rows, width]` tensor.
pub fn values_output(values: ArrayRef, rows: usize, width: usize) -> ModelOutput {
    if width == 1 {
        column(values)
    } else {
        tensor(values, rows, width)
    }
}
