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
use mlox_runtime::python::{PythonOptions, PythonRuntime};

use crate::ModelRepository;

/// One model to serve.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub name: String,
    pub version: Option<String>,
    /// Where the model is: a local directory, `runs:/`, `models:/`, `s3://`, `mlflow-artifacts:/`.
    pub uri: String,
    /// Where the spec came from, for messages (a settings file, or the command line).
    pub origin: String,
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

/// Turns specs into loaded models: fetch, then the runtime.
pub struct ModelLoader {
    fetcher: ModelFetcher,
    python: PythonOptions,
}

impl ModelLoader {
    pub fn new(fetcher: ModelFetcher, python: PythonOptions) -> Self {
        ModelLoader { fetcher, python }
    }

    pub async fn load(&self, spec: &ModelSpec) -> Result<LoadedModel> {
        let fetched = self.fetcher.fetch(&spec.uri).await?;
        let dir = model_root(&fetched.dir)?;
        let options = PythonOptions {
            name: Some(spec.name.clone()),
            ..self.python.clone()
        };
        PythonRuntime::load(&dir, options).await
    }
}

/// The directory holding `MLmodel`: `dir` itself, or its one subdirectory that does. Seed
/// configurations point at a run's `artifacts/` folder with the model one level down, which
/// MLServer rejects; one unambiguous candidate is what the user meant.
fn model_root(dir: &Path) -> Result<PathBuf> {
    if dir.join("MLmodel").is_file() {
        return Ok(dir.to_path_buf());
    }
    let candidates: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::not_found(format!("cannot read {}: {e}", dir.display())))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.join("MLmodel").is_file())
        .collect();
    match candidates.as_slice() {
        [one] => {
            tracing::info!(dir = %one.display(), "using the one model below the given location");
            Ok(one.clone())
        }
        [] => Err(Error::not_found(format!(
            "no MLmodel file in {} or its subdirectories",
            dir.display()
        ))),
        many => Err(Error::invalid(format!(
            "{} holds no MLmodel file but {} models below it ({}); point the URI at one",
            dir.display(),
            many.len(),
            many.iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Announces every spec as loading, then loads them all concurrently; each finished model
/// becomes ready on its own, a failed one unavailable with its reason. Returns how many
/// loaded, once all have finished.
pub async fn load_all(
    repository: &ModelRepository,
    loader: Arc<ModelLoader>,
    specs: Vec<ModelSpec>,
) -> usize {
    for spec in &specs {
        repository.set_loading(spec.name.clone(), spec.version.clone());
    }
    let mut loads = tokio::task::JoinSet::new();
    for spec in specs {
        let loader = loader.clone();
        let repository = repository.clone();
        loads.spawn(async move {
            let started = std::time::Instant::now();
            match loader.load(&spec).await {
                Ok(model) => {
                    tracing::info!(
                        model = %spec.name,
                        version = spec.version.as_deref().unwrap_or("-"),
                        uri = %spec.uri,
                        ms = started.elapsed().as_millis() as u64,
                        "model ready"
                    );
                    repository.insert(spec.name, spec.version, model);
                    true
                }
                Err(e) => {
                    tracing::error!(
                        model = %spec.name,
                        uri = %spec.uri,
                        origin = %spec.origin,
                        error = %e.message,
                        "model failed to load"
                    );
                    repository.set_unavailable(spec.name, spec.version, e.message);
                    false
                }
            }
        });
    }
    let mut loaded = 0;
    while let Some(done) = loads.join_next().await {
        if matches!(done, Ok(true)) {
            loaded += 1;
        }
    }
    loaded
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

    #[test]
    fn the_model_root_is_the_directory_or_its_single_model_child() {
        let root = tempfile::tempdir().unwrap();
        let artifacts = root.path().join("artifacts");
        write(&artifacts.join("path_test_model1/MLmodel"), "flavors: {}\n");
        write(&artifacts.join("notes.txt"), "x");
        assert_eq!(
            model_root(&artifacts).unwrap(),
            artifacts.join("path_test_model1")
        );
        assert_eq!(
            model_root(&artifacts.join("path_test_model1")).unwrap(),
            artifacts.join("path_test_model1")
        );
        write(&artifacts.join("other/MLmodel"), "flavors: {}\n");
        let err = model_root(&artifacts).unwrap_err();
        assert!(err.message.contains("2 models"), "{}", err.message);
        let empty = root.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert_eq!(
            model_root(&empty).unwrap_err().code,
            mlox_core::Code::ResourceDoesNotExist
        );
    }
}
