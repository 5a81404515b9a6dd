//! The protocol-neutral messages both skins speak: V2 inference requests and responses,
//! metadata and the server's identity. The REST and gRPC skins translate their wire formats
//! into these types, the codecs turn them into runtime inputs, and the [`crate::Dataplane`]
//! takes and returns them; this module imports none of those, so each can depend on it.

use serde_json::{Map, Value};

use crate::tensor::{Datatype, TensorData};

/// Free-form protocol parameters (`parameters` objects in REST, `InferParameter` maps in gRPC).
pub type Parameters = Map<String, Value>;

/// One input tensor of a request, or one output tensor of a response.
#[derive(Clone, Debug, PartialEq)]
pub struct InferTensor {
    pub name: String,
    pub datatype: Datatype,
    /// As sent: the codecs check it against `data` and the model.
    pub shape: Vec<i64>,
    pub parameters: Parameters,
    pub data: TensorData,
}

/// An output the client asked for by name, with its parameters (e.g. `binary_data`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestedOutput {
    pub name: String,
    pub parameters: Parameters,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct InferRequest {
    pub id: Option<String>,
    pub parameters: Parameters,
    pub inputs: Vec<InferTensor>,
    /// Empty: every output the model returns.
    pub outputs: Vec<RequestedOutput>,
    /// The HTTP headers (REST) or metadata (gRPC) the request came with, names lowercase;
    /// models served under MLServer's contract see them in `parameters.headers`.
    pub headers: Vec<(String, String)>,
    /// Inputs whose elements arrived as binary (gRPC contents, Triton's binary extension)
    /// rather than as JSON values; MLServer hands such BYTES to models as `bytes`.
    pub binary_inputs: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: Option<String>,
    pub id: String,
    pub parameters: Parameters,
    pub outputs: Vec<InferTensor>,
}

/// How metadata describes one input or output; -1 marks a dimension of any size.
#[derive(Clone, Debug, PartialEq)]
pub struct MetadataTensor {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<i64>,
    pub parameters: Parameters,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelMetadata {
    pub name: String,
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<MetadataTensor>,
    pub outputs: Vec<MetadataTensor>,
    pub parameters: Parameters,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    pub extensions: Vec<String>,
}

/// The identity a server reports in `GET /v2` and `ServerMetadata`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
}

impl Default for ServerInfo {
    fn default() -> Self {
        ServerInfo {
            name: "mlox".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}
