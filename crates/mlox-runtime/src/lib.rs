//! Model runtimes for mlox: what it means to load a model and ask it for predictions,
//! independent of how requests arrive. This crate owns the [`Predictor`] trait every runtime
//! implements, the data that crosses it ([`ModelInput`] / [`ModelOutput`], Arrow columns so a
//! batch can go to a Python worker over Arrow IPC without conversion), and the runtimes
//! themselves. Transports (V2 REST/gRPC, MLflow's `/invocations`) decode their wire formats
//! into these types and never see a runtime's internals.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use async_trait::async_trait;
use mlox_core::Result;
use mlox_mlmodel::{MlModel, Signature};
use serde_json::{Map, Value};

#[cfg(feature = "batching")]
pub mod batching;
#[cfg(feature = "gbdt")]
pub mod gbdt;
#[cfg(any(feature = "gbdt", feature = "sklearn", feature = "onnx"))]
mod native;
#[cfg(any(feature = "gbdt", feature = "sklearn", feature = "onnx"))]
pub use native::{Load, load as load_native};
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "python")]
pub mod python;
#[cfg(feature = "sklearn")]
pub mod sklearn;

/// A named n-dimensional array: `data` holds the elements flat, row-major, and its length is
/// the product of `shape`.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: ArrayRef,
}

/// What one prediction call receives.
#[derive(Clone, Debug)]
pub enum ModelInput {
    /// Named columns of equal length: a pandas DataFrame to an MLflow model.
    Frame(RecordBatch),
    /// Named arrays of any shape, for tensor-signature models and the `np` content type;
    /// one unnamed tensor reaches the model as a plain ndarray.
    Tensors(Vec<Tensor>),
}

/// What a prediction call returns.
#[derive(Clone, Debug)]
pub enum ModelOutput {
    /// A DataFrame, a Series (one column) or a list of scalars (one column).
    Frame(RecordBatch),
    /// One or more arrays (an N-D ndarray result, N ≥ 2, is one tensor named `predictions`;
    /// a 1-D one is a one-column frame).
    Tensors(Vec<Tensor>),
}

/// One prediction call: the inputs and the inference parameters (`params` in MLflow's
/// scoring protocol, `parameters` in V2) the model's signature allows.
#[derive(Clone, Debug)]
pub struct PredictRequest {
    pub input: ModelInput,
    pub params: Map<String, Value>,
}

/// A loaded model that answers predictions. Implementations are shared across requests and
/// must be safe to call concurrently; batching and back-pressure are theirs to decide.
///
/// Errors use [`mlox_core::Code`]: bad input is `InvalidParameterValue` (never an internal
/// error), a crashed or restarting worker is `TemporarilyUnavailable`.
#[async_trait]
pub trait Predictor: Send + Sync + 'static {
    async fn predict(&self, request: PredictRequest) -> Result<ModelOutput>;

    /// Counters of a predictor that batches requests, for metrics; `None` when it does not.
    fn batch_stats(&self) -> Option<BatchStats> {
        None
    }
}

/// What a batching predictor has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Calls of the runtime made for batches.
    pub batches: u64,
    /// Requests those calls answered (batches × their sizes).
    pub batched_requests: u64,
    /// Requests waiting for a batch now.
    pub queued: usize,
}

/// A model ready to serve: its description and the runtime that predicts for it.
#[derive(Clone)]
pub struct LoadedModel {
    pub mlmodel: MlModel,
    pub signature: Option<Signature>,
    pub predictor: Arc<dyn Predictor>,
}
