//! What a server is asked to serve and how each model gets from its URI into the repository:
//! MLServer's model repository (`settings.json` + `model-settings.json` files) or one model
//! URI as `mlflow models serve -m` takes it, fetched through the tracking server or storage,
//! then loaded by the runtime that fits it. Loads run in the background so health probes
//! answer from the first millisecond and report each model's state while it loads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlox_core::{Error, Result};
use mlox_fetch::ModelFetcher;
use mlox_mlmodel::mlserver::{Implementation, ModelSettings, discover_models};
use mlox_mlmodel::{ModelUri, ServerSettings};
use mlox_runtime::LoadedModel;
use mlox_runtime::batching::{BatchOptions, Batching};
#[cfg(feature = "python")]
pub use mlox_runtime_python::{EnvManager, PythonOptions};

use crate::repository::RequestContract;
use crate::{ModelRepository, runtimes};

/// One model to serve.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub name: String,
    pub version: Option<String>,
    /// Where the model is: a local directory, `runs:/`, `models:/`, `s3://`, `mlflow-artifacts:/`.
    pub uri: String,
    /// Where the spec came from, for messages (a settings file, or the command line).
    pub origin: String,
    /// MLServer's adaptive batching settings (`max_batch_size`, `max_batch_time` seconds).
    pub max_batch_size: Option<u64>,
    pub max_batch_time: Option<f64>,
    /// Set for a model declared with MLServer's MLflow runtime: the model-settings fields that
    /// runtime's codecs read, for models that take the request itself (see
    /// [`RequestContract`]). `None` for `mlox serve -m`, which follows `mlflow models serve`.
    pub mlserver: Option<MlserverSettings>,
}

/// The fields of a `model-settings.json` MLServer's codecs consult when they decode a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MlserverSettings {
    /// `parameters.content_type`: the codec for requests that name none.
    pub content_type: Option<String>,
    /// `inputs`: metadata whose `parameters.content_type` decodes the input of that name.
    pub inputs: Vec<serde_json::Value>,
}

/// The models of an MLServer model repository rooted at `root`, with its server settings.
/// Every `model-settings.json` below `root` is one model; a model whose `implementation` mlox
/// cannot run is an error naming the file, so a typo never silently drops a model.
pub fn specs_from_repository(root: &Path) -> Result<(ServerSettings, Vec<ModelSpec>)> {
    let settings = ServerSettings::from_dir(root)?;
    let discovered = discover_models(root)?;
    let mut specs = Vec::with_capacity(discovered.len());
    for model in discovered {
        check_implementation(&model.settings, &model.settings_file)?;
        let uri = model.uri.unwrap_or_else(|| {
            model
                .settings_file
                .parent()
                .unwrap_or(root)
                .to_string_lossy()
                .into_owned()
        });
        specs.push(ModelSpec {
            name: model.name,
            version: model.version,
            uri,
            origin: model.settings_file.display().to_string(),
            max_batch_size: model.settings.max_batch_size,
            max_batch_time: model.settings.max_batch_time,
            mlserver: Some(MlserverSettings {
                content_type: model.settings.parameters.content_type.clone(),
                inputs: model.settings.inputs.clone(),
            }),
        });
    }
    Ok((settings, specs))
}

fn check_implementation(settings: &ModelSettings, file: &Path) -> Result<()> {
    match settings.implementation() {
        Implementation::Mlflow => Ok(()),
        // MLServer's sklearn/xgboost runtimes load a bare model file; an MLflow model of
        // those libraries is served the same way by the MLflow implementation.
        Implementation::Sklearn | Implementation::Xgboost | Implementation::Lightgbm => {
            Err(Error::invalid(format!(
                "{}: implementation '{}' loads a bare model file, which mlox does not serve; log the \
                 model with MLflow and use \"implementation\": \"mlserver_mlflow.MLflowRuntime\"",
                file.display(),
                settings.implementation.as_deref().unwrap_or_default()
            )))
        }
        Implementation::Custom(path) => Err(Error::invalid(format!(
            "{}: implementation '{path}' is a custom MLServer runtime, which mlox does not run; \
             wrap the model as an MLflow pyfunc model and use \"mlserver_mlflow.MLflowRuntime\"",
            file.display()
        ))),
    }
}

/// The name `mlox serve -m <uri>` gives its one model when none is given: the registered
/// model's name, else the last path segment (`runs:/<id>/model` → `model`).
pub fn default_model_name(uri: &str) -> String {
    let from_registry = match ModelUri::parse(uri) {
        Ok(
            ModelUri::RegisteredVersion { name, .. }
            | ModelUri::RegisteredAlias { name, .. }
            | ModelUri::RegisteredStage { name, .. }
            | ModelUri::RegisteredLatest { name },
        ) => Some(name),
        _ => None,
    };
    from_registry.unwrap_or_else(|| {
        uri.trim_end_matches('/')
            .rsplit(['/', ':'])
            .find(|s| !s.is_empty())
            .unwrap_or("model")
            .to_string()
    })
}

/// Turns specs into loaded models: fetch, then the runtime — the native one when it
/// reproduces the model's flavor exactly, else the Python worker pool.
pub struct ModelLoader {
    fetcher: ModelFetcher,
    #[cfg(feature = "python")]
    python: PythonOptions,
    /// Python workers per model, which is also how many batches a batching model keeps in
    /// flight.
    workers: usize,
    merge_waiting: usize,
}

/// Requests of a Python model merged into one call when they queue behind busy workers.
pub const DEFAULT_MERGE_WAITING: usize = 32;

/// What a spec stands for at one moment: the URI to fetch and the version to serve it as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// A fixed URI: `models:/name@alias` becomes `models:/name/<version>`, so a moved alias
    /// is a new download and a new cache entry, never an overwrite of the one serving.
    pub uri: ModelUri,
    /// The V2 version: `parameters.version` when the settings name one, else the registry
    /// version of a `models:/` URI, else none.
    pub version: Option<String>,
}

impl ModelLoader {
    #[cfg(feature = "python")]
    pub fn new(fetcher: ModelFetcher, python: PythonOptions) -> Self {
        ModelLoader {
            fetcher,
            workers: python.workers,
            python,
            merge_waiting: DEFAULT_MERGE_WAITING,
        }
    }

    /// A loader of a build without the Python runtime; `workers` bounds the batches a
    /// batching model runs at once.
    #[cfg(not(feature = "python"))]
    pub fn new(fetcher: ModelFetcher, workers: usize) -> Self {
        ModelLoader {
            fetcher,
            workers,
            merge_waiting: DEFAULT_MERGE_WAITING,
        }
    }

    /// How many requests of a Python model that wait for a busy worker may share one call;
    /// 1 sends every request on its own.
    pub fn merge_waiting(mut self, requests: usize) -> Self {
        self.merge_waiting = requests;
        self
    }

    /// Looks up what `spec` names now (one registry call for an alias, stage or `latest`).
    pub async fn target(&self, spec: &ModelSpec) -> Result<Target> {
        let parsed = ModelUri::parse(&spec.uri)?;
        Ok(match self.fetcher.registered_version(&parsed).await? {
            Some((name, version)) => Target {
                uri: ModelUri::RegisteredVersion {
                    name,
                    version: version.parse().map_err(|_| {
                        Error::internal(format!("the registry answered version '{version}'"))
                    })?,
                },
                version: spec.version.clone().or(Some(version)),
            },
            None => Target {
                uri: parsed,
                version: spec.version.clone(),
            },
        })
    }

    /// Fetches `uri` and starts the runtime for `spec`'s model, batching requests when its
    /// settings ask for it; says how the V2 routes hand the model its requests.
    pub async fn load(
        &self,
        spec: &ModelSpec,
        uri: &ModelUri,
    ) -> Result<(LoadedModel, RequestContract)> {
        let fetched = self.fetcher.fetch(uri).await?;
        let runtimes::Started { mut model, python } = runtimes::start(
            &fetched.dir,
            &spec.name,
            #[cfg(feature = "python")]
            &self.python,
        )
        .await?;
        if let Some(batching) =
            BatchOptions::from_settings(spec.max_batch_size, spec.max_batch_time, self.workers)
        {
            tracing::info!(
                model = %spec.name,
                max_batch_size = batching.max_batch_size,
                max_batch_time_ms = batching.max_batch_time.as_millis() as u64,
                "adaptive batching on"
            );
            model.predictor = Batching::wrap(model.predictor, batching);
        } else if python
            && let Some(merging) = BatchOptions::merge_waiting(
                merge_limit(spec.max_batch_size, self.merge_waiting),
                self.workers,
            )
        {
            // A Python worker's fixed cost per call (pyfunc's schema checks, frame
            // conversions) dwarfs a small request's rows; pyfunc models score rows
            // independently, as batch scoring with MLflow's spark_udf already assumes.
            tracing::info!(
                model = %spec.name,
                max_merged_requests = merging.max_batch_size,
                "requests waiting for a busy worker are merged into one call"
            );
            model.predictor = Batching::wrap(model.predictor, merging);
        }
        let contract = request_contract(spec, &model, python);
        if let RequestContract::InferenceRequest { .. } = contract {
            tracing::info!(
                model = %spec.name,
                "no signature: requests are decoded by MLServer's codecs, and predict receives the InferenceRequest itself where no content type names one"
            );
        }
        Ok((model, contract))
    }
}

/// MLServer's MLflow runtime decodes a request only when a content type names a codec: the
/// model's signature sets one, else its settings may. A model without either gets MLServer's
/// `InferenceRequest` object itself, which models written for MLServer decode in `predict`.
/// That only makes sense for user code (a `PythonModel`, or a custom loader module): the
/// library flavors' own `predict` cannot read such an object under MLServer either, so mlox
/// keeps decoding requests for them as `mlflow models serve` does.
fn request_contract(spec: &ModelSpec, model: &LoadedModel, python: bool) -> RequestContract {
    let Some(mlserver) = &spec.mlserver else {
        return RequestContract::Decoded;
    };
    let user_code = model
        .mlmodel
        .loader_module()
        .is_none_or(|module| module == "mlflow.pyfunc.model" || !module.starts_with("mlflow."));
    if !python || !user_code || model.signature.is_some() {
        return RequestContract::Decoded;
    }
    RequestContract::InferenceRequest {
        settings: serde_json::json!({
            "name": spec.name,
            "version": spec.version,
            "content_type": mlserver.content_type,
            "inputs": mlserver.inputs,
        }),
    }
}

/// Requests a Python model may merge: model-settings' `max_batch_size` when set (1 turns
/// merging off for that model; MLServer's 0 means unset), else the server-wide limit.
fn merge_limit(max_batch_size: Option<u64>, server_limit: usize) -> usize {
    match max_batch_size {
        Some(0) | None => server_limit,
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

/// Keeps a repository serving what it was asked to: loads every spec at start, follows
/// aliases, stages and `latest` as they move, and loads or unloads on demand (the V2
/// repository API). A new version is loaded beside the one serving and swapped in only once
/// ready; requests already running finish on the old one, whose runtime stops when the last
/// of them lets go of it.
pub struct Deployer {
    repository: ModelRepository,
    loader: ModelLoader,
    specs: std::sync::Mutex<Vec<ModelSpec>>,
    /// Where specs were read from, re-read by `load` so an edited or new
    /// `model-settings.json` is picked up as MLServer does.
    root: Option<PathBuf>,
    /// The target each model name is served at now.
    serving: std::sync::Mutex<std::collections::HashMap<String, Target>>,
    /// One deployment per model at a time: a poll and an explicit load of the same model must
    /// not both download and start it, while different models load side by side.
    deploying: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What one deployment did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deployed {
    /// The serving version is already the target.
    Unchanged,
    /// A new version now answers.
    Swapped,
}

impl Deployer {
    pub fn new(
        repository: ModelRepository,
        loader: ModelLoader,
        specs: Vec<ModelSpec>,
        root: Option<PathBuf>,
    ) -> Arc<Self> {
        Arc::new(Deployer {
            repository,
            loader,
            specs: std::sync::Mutex::new(specs),
            root,
            serving: Default::default(),
            deploying: Default::default(),
        })
    }

    pub fn repository(&self) -> &ModelRepository {
        &self.repository
    }

    fn specs(&self) -> Vec<ModelSpec> {
        self.specs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn serving(&self, name: &str) -> Option<Target> {
        self.serving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn set_serving(&self, name: &str, target: Option<Target>) {
        let mut serving = self
            .serving
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match target {
            Some(t) => serving.insert(name.to_string(), t),
            None => serving.remove(name),
        };
    }

    /// Marks every spec as loading. Done before the server answers, so no probe or
    /// repository index can see a model that is about to load as unloaded.
    pub fn announce_all(&self) {
        for spec in self.specs() {
            self.repository.set_loading(spec.name, spec.version);
        }
    }

    /// Announces every spec as loading, then loads them all concurrently; each model becomes
    /// ready on its own, a failed one unavailable with its reason. Returns how many loaded.
    pub async fn deploy_all(self: &Arc<Self>) -> usize {
        self.announce_all();
        let specs = self.specs();
        let mut loads = tokio::task::JoinSet::new();
        for spec in specs {
            let deployer = self.clone();
            loads.spawn(async move { deployer.deploy(&spec).await });
        }
        let mut loaded = 0;
        while let Some(done) = loads.join_next().await {
            if matches!(done, Ok(Ok(_))) {
                loaded += 1;
            }
        }
        loaded
    }

    /// Brings `spec` to what it names now. A model that is not serving yet is marked
    /// unavailable when this fails; one that is keeps serving its current version.
    pub async fn deploy(&self, spec: &ModelSpec) -> Result<Deployed> {
        self.deploy_with(spec, false).await
    }

    /// `deploy`, where `reload` starts the model afresh even when its version is unchanged.
    async fn deploy_with(&self, spec: &ModelSpec, reload: bool) -> Result<Deployed> {
        let turn = self
            .deploying
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(spec.name.clone())
            .or_default()
            .clone();
        let _one_at_a_time = turn.lock().await;
        let started = std::time::Instant::now();
        let current = self.serving(&spec.name);
        let outcome = async {
            let target = self.loader.target(spec).await?;
            if !reload
                && current.as_ref() == Some(&target)
                && self
                    .repository
                    .is_ready(&spec.name, target.version.as_deref())
                    .unwrap_or(false)
            {
                return Ok((target, None));
            }
            let loaded = self.loader.load(spec, &target.uri).await?;
            Ok::<_, Error>((target, Some(loaded)))
        }
        .await;
        match outcome {
            Ok((_, None)) => Ok(Deployed::Unchanged),
            Ok((target, Some((model, contract)))) => {
                self.repository.insert_with_contract(
                    spec.name.clone(),
                    target.version.clone(),
                    model,
                    contract,
                );
                let old_version = current.as_ref().map(|c| c.version.clone());
                // A spec announced without a version but served as registry version N leaves
                // its placeholder behind; the old version goes too once the new one answers.
                for stale in [Some(spec.version.clone()), old_version]
                    .into_iter()
                    .flatten()
                {
                    if stale != target.version {
                        self.repository.remove_slot(&spec.name, stale.as_deref());
                    }
                }
                tracing::info!(
                    model = %spec.name,
                    version = target.version.as_deref().unwrap_or("-"),
                    previous = current.as_ref().and_then(|c| c.version.as_deref()).unwrap_or("-"),
                    uri = %target.uri,
                    ms = started.elapsed().as_millis() as u64,
                    "model ready"
                );
                self.set_serving(&spec.name, Some(target));
                Ok(Deployed::Swapped)
            }
            Err(e) => {
                tracing::error!(
                    model = %spec.name,
                    uri = %spec.uri,
                    origin = %spec.origin,
                    error = %e.message,
                    "model failed to load"
                );
                if current.is_none() {
                    self.repository.set_unavailable(
                        spec.name.clone(),
                        spec.version.clone(),
                        e.message.clone(),
                    );
                }
                Err(e)
            }
        }
    }

    /// Re-checks every model whose URI can move (an alias, a stage, `latest`) and swaps in
    /// the versions that changed; returns how many did.
    pub async fn refresh(&self) -> usize {
        let mut swapped = 0;
        for spec in self.specs() {
            if !follows_the_registry(&spec.uri) {
                continue;
            }
            if let Ok(Deployed::Swapped) = self.deploy(&spec).await {
                swapped += 1;
            }
        }
        swapped
    }

    /// Refreshes every `every` until `stop` is cancelled.
    pub fn follow(
        self: &Arc<Self>,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let deployer = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = ticks.tick() => { deployer.refresh().await; }
                }
            }
        })
    }

    /// (Re)loads the model called `name` (the V2 repository API's load): its spec is read
    /// again from the repository directory, so a changed `model-settings.json` applies.
    pub async fn load(&self, name: &str) -> Result<()> {
        if let Some(root) = &self.root {
            let (_, fresh) = specs_from_repository(root)?;
            *self
                .specs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        }
        let spec = self
            .specs()
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| Error::not_found(format!("Model {name} not found")))?;
        if self.repository.names().iter().all(|n| n != name) {
            self.repository.set_loading(name, spec.version.clone());
        }
        // An explicit load always starts the model afresh, as MLServer's does.
        self.deploy_with(&spec, true).await.map(|_| ())
    }

    /// The configured models that are not in the repository now (unloaded on request).
    pub fn unloaded(&self) -> Vec<ModelSpec> {
        let present = self.repository.names();
        self.specs()
            .into_iter()
            .filter(|s| !present.contains(&s.name))
            .collect()
    }

    /// Stops serving `name` (the V2 repository API's unload); 404 when it is not served.
    pub fn unload(&self, name: &str) -> Result<()> {
        if !self.repository.remove(name, None) {
            return Err(Error::not_found(format!("Model {name} not found")));
        }
        self.set_serving(name, None);
        tracing::info!(model = %name, "model unloaded");
        Ok(())
    }
}

/// Whether what a URI names can change without the URI changing.
pub fn follows_the_registry(uri: &str) -> bool {
    matches!(
        ModelUri::parse(uri),
        Ok(ModelUri::RegisteredAlias { .. }
            | ModelUri::RegisteredStage { .. }
            | ModelUri::RegisteredLatest { .. })
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_model_is_named_after_its_registered_name_or_last_segment() {
        assert_eq!(default_model_name("models:/CancerModel/1"), "CancerModel");
        assert_eq!(
            default_model_name("models:/CancerModel@champion"),
            "CancerModel"
        );
        assert_eq!(
            default_model_name("models:/CancerModel/Production"),
            "CancerModel"
        );
        assert_eq!(default_model_name("runs:/0a1b2c/model"), "model");
        assert_eq!(default_model_name("/srv/models/wine/"), "wine");
        assert_eq!(
            default_model_name("s3://bucket/0/abc/artifacts/"),
            "artifacts"
        );
    }

    #[test]
    fn a_model_settings_batch_size_overrides_the_server_wide_merge_limit() {
        assert_eq!(merge_limit(None, 32), 32);
        assert_eq!(
            merge_limit(Some(0), 32),
            32,
            "MLServer's default 0 means unset"
        );
        assert_eq!(merge_limit(Some(1), 32), 1, "1 turns merging off");
        assert_eq!(merge_limit(Some(8), 32), 8);
        assert_eq!(merge_limit(Some(4), 1), 4);
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn a_repository_yields_one_spec_per_settings_file_with_relative_uris_resolved() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("settings.json"),
            r#"{"debug": "true", "http_port": "8000", "grpc_port": "8001"}"#,
        );
        write(
            &root.path().join("wine/model-settings.json"),
            r#"{"name": "wine", "implementation": "mlserver_mlflow.MLflowRuntime",
                "parameters": {"uri": "./model", "version": "v2"}}"#,
        );
        write(
            &root.path().join("cancer/model-settings.json"),
            r#"{"name": "cancer-model", "implementation": "mlserver_mlflow.MLflowRuntime",
                "parameters": {"uri": "models:/CancerModel/1"}}"#,
        );
        write(&root.path().join("bare/model-settings.json"), "{}");
        let (settings, specs) = specs_from_repository(root.path()).unwrap();
        assert_eq!(settings.http_port, Some(8000));
        assert_eq!(settings.grpc_port, Some(8001));
        let summary: Vec<(String, Option<String>, String)> = specs
            .iter()
            .map(|s| (s.name.clone(), s.version.clone(), s.uri.clone()))
            .collect();
        let root_str = root.path().to_string_lossy();
        assert_eq!(
            summary,
            vec![
                ("bare".into(), None, format!("{root_str}/bare")),
                ("cancer-model".into(), None, "models:/CancerModel/1".into()),
                (
                    "wine".into(),
                    Some("v2".into()),
                    format!("{root_str}/wine/./model")
                ),
            ]
        );
    }

    #[test]
    fn an_implementation_mlox_cannot_run_is_refused_naming_the_file() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("m/model-settings.json"),
            r#"{"name": "m", "implementation": "models.MyCustomRuntime"}"#,
        );
        let err = specs_from_repository(root.path()).unwrap_err();
        assert_eq!(err.code, mlox_core::Code::InvalidParameterValue);
        assert!(
            err.message.contains("m/model-settings.json"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("models.MyCustomRuntime"),
            "{}",
            err.message
        );
    }
}
