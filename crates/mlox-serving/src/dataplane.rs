//! The operations both skins expose, on the protocol-neutral types of [`crate::protocol`]:
//! health, metadata, readiness, inference, the repository index and MLflow scoring. REST and
//! gRPC only translate their wire formats into these calls and the [`mlox_core::Error`]s back
//! into statuses.

use std::sync::Arc;
use std::time::Instant;

use mlox_core::{Error, Result};
use serde_json::Value;

use crate::deployment::Deployer;
use crate::metrics::Metrics;
use crate::protocol::{
    InferRequest, InferResponse, ModelMetadata, Parameters, ServerInfo, ServerMetadata,
};
use crate::repository::{ModelRepository, RepositoryEntry, RequestContract, ServedModel};
use crate::scoring::{self, ScoringFormat};
use crate::{MLFLOW_PLATFORM, codec, handover};

/// The operations core: one per server, shared by the REST and gRPC skins.
/// What `/invocations` answers: MLflow's `{"predictions": …}`, or for MLflow's unified LLM
/// input the model's answer as it is.
pub enum Scoring {
    Predictions(scoring::Predictions),
    Unwrapped(Box<serde_json::value::RawValue>),
}

pub struct Dataplane {
    repository: ModelRepository,
    info: ServerInfo,
    /// What loads and unloads models on request; without one the model set is fixed and
    /// the repository API's load and unload answer 501.
    deployer: Option<Arc<Deployer>>,
    metrics: Metrics,
    /// Who may call the models (`mlox serve --auth-tracking-uri`); unset, anyone may.
    gate: std::sync::OnceLock<Arc<dyn mlox_core::auth::AccessGate>>,
}

impl Dataplane {
    /// A dataplane over a fixed set of models.
    pub fn new(repository: ModelRepository, info: ServerInfo) -> Arc<Self> {
        Arc::new(Dataplane {
            repository,
            info,
            deployer: None,
            metrics: Metrics::default(),
            gate: Default::default(),
        })
    }

    /// A dataplane whose models `deployer` loads, unloads and follows.
    pub fn with_deployer(deployer: Arc<Deployer>, info: ServerInfo) -> Arc<Self> {
        Arc::new(Dataplane {
            repository: deployer.repository().clone(),
            info,
            deployer: Some(deployer),
            metrics: Metrics::default(),
            gate: Default::default(),
        })
    }

    /// Puts every model behind `gate`: requests then need credentials it accepts.
    pub fn require(&self, gate: Arc<dyn mlox_core::auth::AccessGate>) {
        let _ = self.gate.set(gate);
    }

    /// Whether a request carrying `authorization` may use `model` (or, with `None`, is
    /// signed in); always yes without a gate.
    pub async fn admit(
        &self,
        authorization: Option<&str>,
        model: Option<&str>,
    ) -> std::result::Result<(), mlox_core::auth::Refusal> {
        match self.gate.get() {
            Some(gate) => gate.admit(authorization, model).await,
            None => Ok(()),
        }
    }

    /// Whether a gate guards the models.
    pub fn gated(&self) -> bool {
        self.gate.get().is_some()
    }

    /// The model a request without a model in its path is for, when there is only one.
    pub fn only_model(&self) -> Option<String> {
        let index = self.repository.index();
        match index.as_slice() {
            [only] => Some(only.name.clone()),
            _ => None,
        }
    }

    /// The Prometheus text for `GET /metrics`.
    pub fn metrics_text(&self) -> String {
        self.metrics.render(
            &self.repository.index(),
            &self.repository.batch_stats(),
            &self.repository.generation_stats(),
        )
    }

    fn deployer(&self) -> Result<&Arc<Deployer>> {
        self.deployer.as_ref().ok_or_else(|| {
            Error::not_implemented("this server was started with a fixed set of models")
        })
    }

    /// Loads (or reloads) the model called `name` from the repository it was configured in.
    /// Only an unknown name is the caller's mistake (404); a known model that fails to start
    /// (a broken artifact, an edited settings file) is the server's state: 503 with the reason.
    pub async fn load_model(&self, name: &str) -> Result<()> {
        self.deployer()?.load(name).await.map_err(|e| {
            if e.code != mlox_core::Code::ResourceDoesNotExist {
                Error::unavailable(format!("Model {name} could not be loaded: {}", e.message))
            } else {
                e
            }
        })
    }

    /// Stops serving the model called `name`.
    pub fn unload_model(&self, name: &str) -> Result<()> {
        self.deployer()?.unload(name)
    }

    /// Looks up every alias, stage and `latest` again and swaps in the versions that moved;
    /// returns how many did.
    pub async fn refresh(&self) -> Result<usize> {
        Ok(self.deployer()?.refresh().await)
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

    /// Every model the server knows, unloaded ones included (as `UNAVAILABLE`, reason
    /// `unloaded`, the way Triton lists them), or only the ready ones.
    pub fn repository_index(&self, ready_only: bool) -> Vec<RepositoryEntry> {
        let mut entries = self.repository.index();
        if let Some(deployer) = &self.deployer {
            for spec in deployer.unloaded() {
                entries.push(RepositoryEntry {
                    name: spec.name,
                    version: spec.version,
                    state: crate::ModelState::Unavailable,
                    reason: "unloaded".into(),
                });
            }
        }
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
        let started = Instant::now();
        let id = request
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let requested = request.outputs.clone();
        let answer = async {
            if let RequestContract::InferenceRequest { settings } = &model.contract
                && handover::applies_to(&request)
            {
                let handed = handover::protocol_request(
                    request,
                    &id,
                    &model.name,
                    &self.info.name,
                    settings,
                );
                let response = model.model.predictor.predict_request(handed).await?;
                return handover::response_outputs(response);
            }
            let predict = codec::decode_request(&model.schema, request)?;
            let output = model.model.predictor.predict(predict).await?;
            codec::encode_response(&model.schema, output, &requested)
        }
        .await;
        self.observe(&model, started, answer.is_ok());
        let (outputs, parameters) = answer?;
        Ok(InferResponse {
            model_name: model.name.clone(),
            model_version: model.version.clone(),
            id,
            parameters,
            outputs,
        })
    }

    fn observe(&self, model: &ServedModel, started: Instant, ok: bool) {
        self.metrics
            .observe(&model.name, model.version.as_deref(), started.elapsed(), ok);
    }

    /// MLflow's scoring protocol (`POST /invocations`): the body in one of MLflow's input
    /// formats, the answer as the JSON value that goes under `"predictions"`. Without a
    /// model name the server must hold exactly one model, as `mlflow models serve` does.
    pub async fn invocations(
        &self,
        model: Option<(&str, Option<&str>)>,
        body: &[u8],
        format: ScoringFormat,
    ) -> Result<Scoring> {
        let model = self.scoring_target(model)?;
        let started = Instant::now();
        let answer = async {
            // A language model answers MLflow's LLM forms itself; the body is read once here
            // and, for any other form, again by the tabular parser below.
            if let (Some(language), ScoringFormat::Json) = (&model.model.language, format)
                && let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(body)
            {
                if crate::language::is_unified_llm_input(&object) {
                    return crate::language::mlflow_invocation(language.as_ref(), object)
                        .await
                        .map(Scoring::Unwrapped);
                }
                if crate::language::logged_as_embeddings_task(&model.model.mlmodel)
                    && let Some(inputs) = object.remove("inputs")
                {
                    let value =
                        crate::language::mlflow_inputs_embeddings(language.as_ref(), inputs)
                            .await?;
                    return Ok(Scoring::Predictions(scoring::Predictions::Raw(
                        scoring::RawJson(value),
                    )));
                }
            }
            let predict = scoring::parse(&model.schema, body, format)?;
            let output = model.model.predictor.predict(predict).await?;
            scoring::predictions(output).map(Scoring::Predictions)
        }
        .await;
        self.observe(&model, started, answer.is_ok());
        answer
    }

    /// The names of the ready models that are language models (OpenAI's `/v1/models`).
    pub fn language_models(&self) -> Vec<String> {
        self.repository
            .names()
            .into_iter()
            .filter(|name| {
                self.repository
                    .resolve(name, None)
                    .is_ok_and(|m| m.model.language.is_some())
            })
            .collect()
    }

    /// The language model OpenAI's `model` field names, or the only model of the server when
    /// it names none.
    pub fn language_model(
        &self,
        name: Option<&str>,
    ) -> Result<(String, Arc<dyn mlox_runtime::language::LanguageModel>)> {
        let served = match name {
            Some(name) => self
                .repository
                .resolve(name, None)
                .map_err(|e| match e.code {
                    mlox_core::Code::ResourceDoesNotExist => Error::not_found(format!(
                        "The model `{name}` does not exist (models: {}).",
                        self.language_models().join(", ")
                    )),
                    _ => e,
                })?,
            None => self.scoring_target(None)?,
        };
        let language = served.model.language.clone().ok_or_else(|| {
            Error::invalid(format!(
                "model {} is not a language model; use /invocations or the V2 routes",
                served.name
            ))
        })?;
        Ok((served.name.clone(), language))
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
