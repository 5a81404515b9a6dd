//! What it means to load a model and ask it for predictions, independent of how requests
//! arrive and of which backend runs the model. This crate owns the [`Predictor`] trait every
//! runtime backend implements, the data that crosses it ([`ModelInput`] / [`ModelOutput`],
//! Arrow columns so a batch can go to a Python worker over Arrow IPC without conversion), the
//! adaptive batcher ([`batching`]) and runtime selection ([`select`]): a model directory's
//! `MLmodel` is read once ([`ModelDir`]) and offered to the native backends the caller
//! enabled, each answering with a [`Load`].
//!
//! The backends are crates of their own (`mlox-runtime-python`, `-gbdt`, `-sklearn`, `-onnx`)
//! that depend on this one; this crate imports none of them, nor any transport. Transports
//! (V2 REST/gRPC, MLflow's `/invocations`) decode their wire formats into these types and
//! never see a backend's internals.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use async_trait::async_trait;
use mlox_core::Result;
use mlox_mlmodel::{MlModel, Signature};
use serde_json::{Map, Value};

pub mod batching;
pub mod language;
mod select;

pub use select::{Load, ModelDir, NativeBackend, fallback, select};

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

    /// Hands a V2 inference request to the model's own code as the protocol object itself,
    /// the contract of MLServer's MLflow runtime for requests no codec applies to. Only
    /// runtimes that run user code can; the others refuse.
    async fn predict_request(&self, request: ProtocolRequest) -> Result<ProtocolResponse> {
        let _ = request;
        Err(mlox_core::Error::invalid(
            "this model's runtime cannot take the inference request itself; send \
             parameters.content_type to have the request decoded",
        ))
    }

    /// Counters of a predictor that batches requests, for metrics; `None` when it does not.
    fn batch_stats(&self) -> Option<BatchStats> {
        None
    }
}

/// A V2 inference request as MLServer hands it to a model (`mlserver.types.InferenceRequest`),
/// with the model settings MLServer's codecs consult.
#[derive(Clone, Debug)]
pub struct ProtocolRequest {
    /// The request in the V2 JSON shape: `id`, `parameters` (with `headers`), `inputs`
    /// (`name`, `shape`, `datatype`, `parameters`, `data`) and `outputs`. The data of the
    /// inputs listed in `binary_inputs` is base64 of raw BYTES elements.
    pub body: Value,
    /// Inputs whose BYTES elements arrived as binary (gRPC, the binary extension) rather than
    /// as JSON strings; the model sees them as `bytes`, the others as `str`.
    pub binary_inputs: Vec<usize>,
    /// `name`, `version`, `content_type` and `inputs` of the model's settings.
    pub settings: Value,
}

/// The model's answer encoded by MLServer's codecs: `outputs` in the V2 JSON shape (the data of
/// the outputs listed in `binary_outputs` is base64 of raw BYTES elements) and the response's
/// `parameters`.
#[derive(Clone, Debug)]
pub struct ProtocolResponse {
    pub outputs: Vec<Value>,
    pub parameters: Map<String, Value>,
    pub binary_outputs: Vec<usize>,
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
    /// Set for a language model: generation and embeddings through their own calls (MLflow's
    /// LLM JSON, OpenAI's API), besides `predictor` for the tabular and V2 forms.
    pub language: Option<Arc<dyn language::LanguageModel>>,
}
