//! Deterministic stand-ins for real runtimes, shared by the integration tests and the
//! `serve_fixture` example: a linear model over the wine-quality columns (y = b + Σ wᵢ·xᵢ with
//! wᵢ = (i+1)/10) and an echo model that returns its strings, with an optional `suffix`
//! parameter. Their answers are easy to compute by hand, so tests can state them exactly.

#![allow(dead_code)]

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use async_trait::async_trait;
use mlox_core::{Error, Result};
use mlox_mlmodel::{MlModel, Signature};
use mlox_runtime::{LoadedModel, ModelInput, ModelOutput, PredictRequest, Predictor, Tensor};
use mlox_serving::ModelRepository;
use serde_json::json;

pub const WINE_COLUMNS: [&str; 11] = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
];

/// The two wine rows of the MLServer reference captures.
pub const WINE_ROWS: [[f64; 11]; 2] = [
    [
        7.718, 0.1528, 0.4626, 9.1623, -0.0416, 7.8629, 120.3693, 0.9941, 3.1975, 0.4362, 11.5553,
    ],
    [
        8.5222, 0.3519, 0.5342, 7.27, 0.013, 36.2688, 74.7269, 0.9976, 3.1925, 0.5097, 9.6829,
    ],
];

pub fn wine_weight(i: usize) -> f64 {
    (i + 1) as f64 / 10.0
}

/// What the linear model answers for a row, summed in column order as the model does.
pub fn wine_prediction(row: &[f64], intercept: f64) -> f64 {
    row.iter()
        .enumerate()
        .fold(intercept, |acc, (i, x)| acc + wine_weight(i) * x)
}

/// y = intercept + Σ wᵢ·xᵢ over named double columns; returns one FP64 tensor.
pub struct Linear {
    pub columns: Vec<String>,
    pub intercept: f64,
}

#[async_trait]
impl Predictor for Linear {
    async fn predict(&self, request: PredictRequest) -> Result<ModelOutput> {
        let ModelInput::Frame(frame) = request.input else {
            return Err(Error::invalid("the linear model takes a DataFrame"));
        };
        let mut y = vec![self.intercept; frame.num_rows()];
        for (i, name) in self.columns.iter().enumerate() {
            let column = frame
                .column_by_name(name)
                .ok_or_else(|| Error::invalid(format!("missing column {name}")))?;
            let values = column
                .as_primitive_opt::<Float64Type>()
                .ok_or_else(|| Error::invalid(format!("column {name} is not double")))?;
            for (acc, x) in y.iter_mut().zip(values.values().iter()) {
                *acc += wine_weight(i) * x;
            }
        }
        let n = y.len();
        Ok(ModelOutput::Tensors(vec![Tensor {
            name: "predictions".into(),
            shape: vec![n],
            data: Arc::new(Float64Array::from(y)),
        }]))
    }
}

/// Returns its string input as a one-column frame named `output`, each value followed by
/// the `suffix` parameter when one is given.
pub struct Echo;

#[async_trait]
impl Predictor for Echo {
    async fn predict(&self, request: PredictRequest) -> Result<ModelOutput> {
        let column: ArrayRef = match &request.input {
            ModelInput::Frame(f) if f.num_columns() > 0 => f.column(0).clone(),
            ModelInput::Tensors(t) if !t.is_empty() => t[0].data.clone(),
            _ => return Err(Error::invalid("the echo model needs one input")),
        };
        let strings = column
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::invalid("the echo model takes strings"))?;
        let suffix = request
            .params
            .get("suffix")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let out: StringArray = (0..strings.len())
            .map(|i| Some(format!("{}{suffix}", strings.value(i))))
            .collect();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "output",
            DataType::Utf8,
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(out)])
            .map_err(|e| Error::internal(e.to_string()))?;
        Ok(ModelOutput::Frame(batch))
    }
}

/// Always fails the way a crashed Python worker does.
pub struct Unavailable;

#[async_trait]
impl Predictor for Unavailable {
    async fn predict(&self, _: PredictRequest) -> Result<ModelOutput> {
        Err(Error::unavailable(
            "the model's worker exited; it is being restarted",
        ))
    }
}

fn mlmodel() -> MlModel {
    MlModel::from_yaml("flavors:\n  python_function:\n    loader_module: tests\n")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn signature(value: serde_json::Value) -> Signature {
    Signature::from_mlmodel_value(&value).unwrap_or_else(|e| panic!("{e}"))
}

pub fn wine_model(intercept: f64) -> LoadedModel {
    let inputs: Vec<_> = WINE_COLUMNS
        .iter()
        .map(|c| json!({"type": "double", "name": c, "required": true}))
        .collect();
    LoadedModel {
        mlmodel: mlmodel(),
        signature: Some(signature(json!({
            "inputs": serde_json::to_string(&inputs).unwrap_or_default(),
            "outputs": r#"[{"type": "double"}]"#,
        }))),
        predictor: Arc::new(Linear {
            columns: WINE_COLUMNS.iter().map(|c| c.to_string()).collect(),
            intercept,
        }),
        language: None,
    }
}

pub fn echo_model() -> LoadedModel {
    LoadedModel {
        mlmodel: mlmodel(),
        signature: Some(signature(json!({
            "inputs": r#"[{"type": "string", "name": "text", "required": true}]"#,
            "outputs": r#"[{"type": "string", "name": "output"}]"#,
            "params": r#"[{"name": "suffix", "type": "string", "default": ""}]"#,
        }))),
        predictor: Arc::new(Echo),
        language: None,
    }
}

/// An echo model logged without a signature, like seed 000's pyfunc.
pub fn echo_without_signature() -> LoadedModel {
    LoadedModel {
        mlmodel: mlmodel(),
        signature: None,
        predictor: Arc::new(Echo),
        language: None,
    }
}

pub fn unavailable_model() -> LoadedModel {
    LoadedModel {
        mlmodel: mlmodel(),
        signature: None,
        predictor: Arc::new(Unavailable),
        language: None,
    }
}

/// wine v1 (intercept 0) and v2 (intercept 1), echo v1, and the signature-less `echo-raw`.
pub fn repository() -> ModelRepository {
    let repo = ModelRepository::new();
    repo.insert("wine", Some("v1".into()), wine_model(0.0));
    repo.insert("wine", Some("v2".into()), wine_model(1.0));
    repo.insert("echo", Some("v1".into()), echo_model());
    repo.insert("echo-raw", None, echo_without_signature());
    repo
}
