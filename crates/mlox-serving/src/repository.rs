//! The models a server answers for: named, optionally versioned [`LoadedModel`]s with their
//! state. A version is swapped by inserting its replacement, so requests already holding the
//! old model finish on it and no request ever sees the name missing (MLServer fails 5–7 % of
//! traffic during a reload because it unloads first).

use std::sync::{Arc, PoisonError, RwLock};

use mlox_core::{Error, Result};
use mlox_runtime::LoadedModel;

use crate::schema::ModelSchema;

/// Where a model is in its life; only `Ready` models answer inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelState {
    Loading,
    Ready,
    /// Failed to load, or its runtime is down; the repository keeps the reason.
    Unavailable,
}

impl ModelState {
    /// The state names of the model repository extension (`POST /v2/repository/index`).
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Loading => "LOADING",
            ModelState::Ready => "READY",
            ModelState::Unavailable => "UNAVAILABLE",
        }
    }
}

/// A ready model with what the codecs derived from its signature, computed once at insert so
/// requests do not redo it.
pub struct ServedModel {
    pub name: String,
    pub version: Option<String>,
    pub model: LoadedModel,
    pub(crate) schema: ModelSchema,
    pub(crate) contract: RequestContract,
}

/// How the V2 routes give a model its request.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum RequestContract {
    /// Decoded by MLServer's codecs into the DataFrame or arrays the model predicts on.
    #[default]
    Decoded,
    /// MLServer's MLflow runtime for a model without a signature: MLServer's own codecs, in
    /// the worker, decode the request where a content type names one (request, input or
    /// settings) and hand `predict` the `InferenceRequest` itself where none does.
    InferenceRequest {
        /// `name`, `version`, `content_type` and `inputs` of the model's settings.
        settings: serde_json::Value,
    },
}

/// One line of the repository index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositoryEntry {
    pub name: String,
    pub version: Option<String>,
    pub state: ModelState,
    pub reason: String,
}

struct Slot {
    name: String,
    version: Option<String>,
    state: ModelState,
    reason: String,
    model: Option<Arc<ServedModel>>,
}

/// Shared, cheaply cloneable registry of served models. Locks are held only to look up or
/// swap an `Arc`, never across a prediction.
#[derive(Clone, Default)]
pub struct ModelRepository {
    // Insertion order matters: a request without a version goes to the newest ready slot.
    slots: Arc<RwLock<Vec<Slot>>>,
}

impl ModelRepository {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `model` the ready `version` of `name`, replacing that version if it was there.
    pub fn insert(&self, name: impl Into<String>, version: Option<String>, model: LoadedModel) {
        self.insert_with_contract(name, version, model, RequestContract::Decoded);
    }

    /// Serves `model`, handing it V2 requests as `contract` says.
    pub fn insert_with_contract(
        &self,
        name: impl Into<String>,
        version: Option<String>,
        model: LoadedModel,
        contract: RequestContract,
    ) {
        let name = name.into();
        let schema = ModelSchema::new(model.signature.as_ref());
        let served = Arc::new(ServedModel {
            name: name.clone(),
            version: version.clone(),
            model,
            schema,
            contract,
        });
        self.put(
            name,
            version,
            ModelState::Ready,
            String::new(),
            Some(served),
        );
    }

    /// Announces a model that is still loading, so requests for it get 503 rather than 404.
    pub fn set_loading(&self, name: impl Into<String>, version: Option<String>) {
        let name = name.into();
        let kept = self.model_of(&name, version.as_deref());
        self.put(name, version, ModelState::Loading, String::new(), kept);
    }

    /// Marks a model that failed to load or whose runtime went away; requests get 503 with
    /// `reason` until it is inserted again.
    pub fn set_unavailable(
        &self,
        name: impl Into<String>,
        version: Option<String>,
        reason: impl Into<String>,
    ) {
        let name = name.into();
        let kept = self.model_of(&name, version.as_deref());
        self.put(name, version, ModelState::Unavailable, reason.into(), kept);
    }

    /// Forgets a version (or every version when `version` is `None`); true if any was there.
    pub fn remove(&self, name: &str, version: Option<&str>) -> bool {
        let mut slots = self.write();
        let before = slots.len();
        slots.retain(|s| {
            !(s.name == name && (version.is_none() || s.version.as_deref() == version))
        });
        slots.len() != before
    }

    /// Forgets exactly the slot `(name, version)`, where `None` is the unversioned slot.
    pub fn remove_slot(&self, name: &str, version: Option<&str>) -> bool {
        let mut slots = self.write();
        let before = slots.len();
        slots.retain(|s| !(s.name == name && s.version.as_deref() == version));
        slots.len() != before
    }

    /// The model a request addresses: 404 for an unknown name or version, 503 when it is
    /// known but not ready. Without a version, the newest ready version answers.
    pub fn resolve(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>> {
        let slots = self.read();
        let mut known = slots.iter().filter(|s| s.name == name).peekable();
        if known.peek().is_none() {
            return Err(Error::not_found(format!("Model {name} not found")));
        }
        let slot = match version {
            Some(v) => known
                .find(|s| s.version.as_deref() == Some(v))
                .ok_or_else(|| {
                    Error::not_found(format!("Model {name} with version {v} not found"))
                })?,
            None => {
                let candidates: Vec<&Slot> = known.collect();
                match candidates
                    .iter()
                    .rev()
                    .find(|s| s.state == ModelState::Ready)
                {
                    Some(s) => s,
                    None => candidates
                        .last()
                        .copied()
                        .ok_or_else(|| Error::not_found(format!("Model {name} not found")))?,
                }
            }
        };
        match (&slot.model, slot.state) {
            (Some(model), ModelState::Ready) => Ok(model.clone()),
            (_, state) => {
                let which = match &slot.version {
                    Some(v) => format!("Model {name} version {v}"),
                    None => format!("Model {name}"),
                };
                let why = match state {
                    ModelState::Loading => "it is still loading".to_string(),
                    _ if slot.reason.is_empty() => "it is unavailable".to_string(),
                    _ => format!("it is unavailable: {}", slot.reason),
                };
                Err(Error::unavailable(format!("{which} is not ready: {why}")))
            }
        }
    }

    /// Whether the addressed model can answer now; 404 when it does not exist.
    pub fn is_ready(&self, name: &str, version: Option<&str>) -> Result<bool> {
        match self.resolve(name, version) {
            Ok(_) => Ok(true),
            Err(e) if e.code == mlox_core::Code::TemporarilyUnavailable => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Ready means every announced model is ready, and there is at least one: a server with
    /// nothing to serve must not pass a readiness probe (MLServer's #2056).
    pub fn all_ready(&self) -> bool {
        let slots = self.read();
        !slots.is_empty() && slots.iter().all(|s| s.state == ModelState::Ready)
    }

    /// Versions of `name`, oldest first (unversioned slots are not listed).
    pub fn versions(&self, name: &str) -> Vec<String> {
        self.read()
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| s.version.clone())
            .collect()
    }

    /// Distinct model names in the order they were first announced.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for s in self.read().iter() {
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
        names
    }

    /// The batching counters of every loaded model that batches, by name and version.
    pub fn batch_stats(&self) -> Vec<(String, Option<String>, mlox_runtime::BatchStats)> {
        self.read()
            .iter()
            .filter_map(|s| {
                let stats = s.model.as_ref()?.model.predictor.batch_stats()?;
                Some((s.name.clone(), s.version.clone(), stats))
            })
            .collect()
    }

    /// The generation counters of every loaded language model that generates text.
    pub fn generation_stats(
        &self,
    ) -> Vec<(
        String,
        Option<String>,
        mlox_runtime::language::GenerationStats,
    )> {
        self.read()
            .iter()
            .filter_map(|s| {
                let stats = s
                    .model
                    .as_ref()?
                    .model
                    .language
                    .as_ref()?
                    .generation_stats()?;
                Some((s.name.clone(), s.version.clone(), stats))
            })
            .collect()
    }

    pub fn index(&self) -> Vec<RepositoryEntry> {
        self.read()
            .iter()
            .map(|s| RepositoryEntry {
                name: s.name.clone(),
                version: s.version.clone(),
                state: s.state,
                reason: s.reason.clone(),
            })
            .collect()
    }

    fn model_of(&self, name: &str, version: Option<&str>) -> Option<Arc<ServedModel>> {
        self.read()
            .iter()
            .find(|s| s.name == name && s.version.as_deref() == version)
            .and_then(|s| s.model.clone())
    }

    fn put(
        &self,
        name: String,
        version: Option<String>,
        state: ModelState,
        reason: String,
        model: Option<Arc<ServedModel>>,
    ) {
        let mut slots = self.write();
        let slot = Slot {
            name,
            version,
            state,
            reason,
            model,
        };
        match slots
            .iter_mut()
            .find(|s| s.name == slot.name && s.version == slot.version)
        {
            Some(existing) => *existing = slot,
            None => slots.push(slot),
        }
    }

    // A panic while holding the lock cannot leave the Vec half-updated (every write is one
    // assignment or retain), so a poisoned lock is safe to keep using.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Slot>> {
        self.slots.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Slot>> {
        self.slots.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use async_trait::async_trait;
    use mlox_core::Code;
    use mlox_mlmodel::MlModel;
    use mlox_runtime::{ModelOutput, PredictRequest, Predictor};

    struct Nothing;
    #[async_trait]
    impl Predictor for Nothing {
        async fn predict(&self, _: PredictRequest) -> Result<ModelOutput> {
            Ok(ModelOutput::Tensors(vec![]))
        }
    }

    fn model() -> LoadedModel {
        LoadedModel {
            mlmodel: MlModel::from_yaml("flavors:\n  python_function: {}\n").unwrap(),
            signature: None,
            predictor: Arc::new(Nothing),
            language: None,
        }
    }

    #[test]
    fn unknown_names_and_versions_are_404_with_mlserver_wording() {
        let repo = ModelRepository::new();
        repo.insert("wine", Some("v1".into()), model());
        let e = repo.resolve("nope", None).err().unwrap();
        assert_eq!(
            (e.code, e.message.as_str()),
            (Code::ResourceDoesNotExist, "Model nope not found")
        );
        let e = repo.resolve("wine", Some("v9")).err().unwrap();
        assert_eq!(e.message, "Model wine with version v9 not found");
        assert!(repo.resolve("wine", Some("v1")).is_ok());
    }

    #[test]
    fn loading_and_unavailable_models_are_503_not_404() {
        let repo = ModelRepository::new();
        repo.set_loading("wine", None);
        assert!(!repo.all_ready());
        let e = repo.resolve("wine", None).err().unwrap();
        assert_eq!(e.code, Code::TemporarilyUnavailable);
        assert_eq!(e.message, "Model wine is not ready: it is still loading");
        assert!(!repo.is_ready("wine", None).unwrap());
        repo.set_unavailable("wine", None, "worker exited");
        let e = repo.resolve("wine", None).err().unwrap();
        assert!(
            e.message.ends_with("unavailable: worker exited"),
            "{}",
            e.message
        );
        repo.insert("wine", None, model());
        assert!(repo.all_ready());
    }

    #[test]
    fn the_newest_ready_version_answers_requests_without_a_version() {
        let repo = ModelRepository::new();
        repo.insert("wine", Some("v1".into()), model());
        repo.insert("wine", Some("v2".into()), model());
        assert_eq!(
            repo.resolve("wine", None).unwrap().version.as_deref(),
            Some("v2")
        );
        repo.set_loading("wine", Some("v3".into()));
        assert_eq!(
            repo.resolve("wine", None).unwrap().version.as_deref(),
            Some("v2")
        );
        assert_eq!(repo.versions("wine"), ["v1", "v2", "v3"]);
        assert!(repo.remove("wine", Some("v2")));
        assert_eq!(
            repo.resolve("wine", None).unwrap().version.as_deref(),
            Some("v1")
        );
    }

    #[test]
    fn removing_a_slot_touches_only_that_exact_version() {
        let repo = ModelRepository::new();
        repo.set_loading("wine", None);
        repo.insert("wine", Some("3".into()), model());
        assert!(
            !repo.all_ready(),
            "the unversioned placeholder is still loading"
        );
        assert!(repo.remove_slot("wine", None));
        assert!(!repo.remove_slot("wine", None));
        assert!(repo.all_ready());
        assert_eq!(repo.versions("wine"), ["3"]);
        assert!(!repo.remove_slot("wine", Some("2")));
        assert!(repo.remove_slot("wine", Some("3")));
        assert!(repo.names().is_empty());
    }

    #[test]
    fn an_empty_repository_is_not_ready() {
        assert!(!ModelRepository::new().all_ready());
    }
}
