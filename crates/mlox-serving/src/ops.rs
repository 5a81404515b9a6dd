//! The operations both skins expose, on protocol-neutral types: health, metadata, readiness,
//! inference, the repository index and MLflow scoring. REST and gRPC only translate their wire
//! formats into these calls and the [`mlox_core::Error`]s back into statuses.

use std::sync::Arc;

use mlox_core::{Error, Result};
use serde_json::{Map, Value};

use crate::repository::{ModelRepository, RepositoryEntry, ServedModel};
use crate::scoring::{self, ScoringFormat};
use crate::tensor::{Datatype, TensorData};
use crate::{MLFLOW_PLATFORM, codec};

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

/// The operations core: one per server, shared by the REST and gRPC skins.
pub struct Dataplane {
    repository: ModelRepository,
    info: ServerInfo,
}

impl Dataplane {
    pub fn new(repository: ModelRepository, info: ServerInfo) -> Arc<Self> {
        Arc::new(Dataplane { repository, info })
    }

    pub fn repository(&self) -> &ModelRepository {
        &self.repository
    }

    /// The process answers; there is nothing else to check.
    pub fn live(&self) -> bool {
        true
    }

    pub fn ready(&self) -> bool {
        self.repository.all_ready()
    }

    pub fn server_metadata(&self) -> ServerMetadata {
        ServerMetadata {
            name: self.info.name.clone(),
            version: self.info.version.clone(),
            extensions: vec!["binary_tensor_data".into()],
        }
    }

    pub fn model_metadata(&self, name: &str, version: Option<&str>) -> Result<ModelMetadata> {
        let model = self.repository.resolve(name, version)?;
        let mut parameters = Parameters::new();
        parameters.insert(
            "content_type".into(),
            Value::String(model.schema.content_type.as_str().into()),
        );
        Ok(ModelMetadata {
            name: model.name.clone(),
            versions: self.repository.versions(name),
            platform: MLFLOW_PLATFORM.into(),
            inputs: model.schema.inputs.clone(),
            outputs: model.schema.outputs.clone(),
            parameters,
        })
    }

    pub fn model_ready(&self, name: &str, version: Option<&str>) -> Result<bool> {
        self.repository.is_ready(name, version)
    }

    pub fn repository_index(&self, ready_only: bool) -> Vec<RepositoryEntry> {
        let mut entries = self.repository.index();
        if ready_only {
            entries.retain(|e| e.state == crate::ModelState::Ready);
        }
        entries
    }

    pub async fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        request: InferRequest,
    ) -> Result<InferResponse> {
        let model = self.repository.resolve(name, version)?;
        let id = request
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let requested = request.outputs.clone();
        let predict = codec::decode_request(&model.schema, request)?;
        let output = model.model.predictor.predict(predict).await?;
        let (outputs, parameters) = codec::encode_response(&model.schema, output, &requested)?;
        Ok(InferResponse {
            model_name: model.name.clone(),
            model_version: model.version.clone(),
            id,
            parameters,
            outputs,
        })
    }

    /// MLflow's scoring protocol (`POST /invocations`): the body in one of MLflow's input
    /// formats, the answer as the JSON value that goes under `"predictions"`. Without a
    /// model name the server must hold exactly one model, as `mlflow models serve` does.
    pub async fn invocations(
        &self,
        model: Option<(&str, Option<&str>)>,
        body: &[u8],
        format: ScoringFormat,
    ) -> Result<Value> {
        let model = self.scoring_target(model)?;
        let predict = scoring::parse(&model.schema, body, format)?;
        let output = model.model.predictor.predict(predict).await?;
        scoring::predictions(output)
    }

    fn scoring_target(&self, model: Option<(&str, Option<&str>)>) -> Result<Arc<ServedModel>> {
        if let Some((name, version)) = model {
            return self.repository.resolve(name, version);
        }
        let names = self.repository.names();
        match names.as_slice() {
            [] => Err(Error::unavailable("no model is loaded yet")),
            [only] => self.repository.resolve(only, None),
            many => Err(Error::bad_request(format!(
                "this server holds {} models, so /invocations cannot tell which one to call; \
                 POST to /models/<name>/invocations instead (models: {})",
                many.len(),
                many.join(", ")
            ))),
        }
    }
}
