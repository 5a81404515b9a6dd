//! Runtime selection: a model directory with its `MLmodel` read once, the interface a native
//! backend offers, and the choice of the backend that serves a model by its pyfunc flavor's
//! loader module. The caller (which knows the backends it was built with) passes them in;
//! a model none of them takes comes back as [`Load::Fallback`] with the reason, for the
//! Python runtime to serve.

use std::path::{Component, Path, PathBuf};

use mlox_core::Result;
use mlox_mlmodel::MlModel;
use mlox_mlmodel::mlmodel::PYFUNC_FLAVOR;
use serde_json::Value;

use crate::LoadedModel;

/// The outcome of offering a model to a native backend.
// Built once per model load and matched right away; boxing the model would only add a step.
#[allow(clippy::large_enum_variant)]
pub enum Load {
    /// The model is served natively; `description` says what was loaded, for logs.
    Native {
        model: LoadedModel,
        description: String,
    },
    /// Not a model this backend serves (another flavor, or a feature it does not reproduce);
    /// `reason` is meant for logs. The Python runtime serves it instead.
    Fallback { reason: String },
}

/// A [`Load::Fallback`] with `reason`.
pub fn fallback(reason: impl Into<String>) -> Result<Load> {
    Ok(Load::Fallback {
        reason: reason.into(),
    })
}

/// A model directory and its parsed `MLmodel`, read once and handed to every backend.
#[derive(Clone, Debug)]
pub struct ModelDir {
    pub path: PathBuf,
    pub mlmodel: MlModel,
}

impl ModelDir {
    /// Reads `dir/MLmodel`.
    pub fn open(dir: &Path) -> Result<ModelDir> {
        Ok(ModelDir {
            path: dir.to_path_buf(),
            mlmodel: MlModel::from_dir(dir)?,
        })
    }

    /// The module MLflow's pyfunc flavor loads the model with (`mlflow.sklearn`, …).
    pub fn loader_module(&self) -> Option<&str> {
        self.mlmodel
            .flavor(PYFUNC_FLAVOR)?
            .get("loader_module")?
            .as_str()
    }

    /// The file a flavor names under `key` (`data`, `pickled_model`) inside this directory;
    /// `None` when the flavor names none or the name would leave the directory.
    pub fn flavor_file(&self, flavor: &Value, key: &str) -> Option<PathBuf> {
        self.file(flavor.get(key).and_then(Value::as_str)?)
    }

    /// `relative` inside this directory; `None` when it would leave it (an absolute path,
    /// `..`), so a crafted `MLmodel` can never make a backend read another file. Every
    /// backend opens the files `MLmodel` names through this one check.
    pub fn file(&self, relative: &str) -> Option<PathBuf> {
        let relative = Path::new(relative);
        let inside = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        inside.then(|| self.path.join(relative))
    }
}

/// A runtime that serves some models without Python. Loading reads model files and may take
/// a while; callers run it off the async reactor.
pub trait NativeBackend: Send + Sync {
    /// The pyfunc loader modules whose models this backend may take.
    fn loader_modules(&self) -> &'static [&'static str];

    /// Loads `model` natively, or says why not; only a model file the flavor claims but that
    /// cannot be read is an error.
    fn load(&self, model: &ModelDir) -> Result<Load>;
}

/// Offers `model` to the backend of its pyfunc loader module among `backends`, or says why
/// none takes it.
pub fn select(backends: &[&dyn NativeBackend], model: &ModelDir) -> Result<Load> {
    let Some(loader) = model.loader_module() else {
        return fallback("the model names no python_function loader module");
    };
    match backends
        .iter()
        .find(|b| b.loader_modules().contains(&loader))
    {
        Some(backend) => backend.load(model),
        None => fallback(format!("{loader} models have no native runtime")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn model_dir(yaml: &str) -> ModelDir {
        ModelDir {
            path: PathBuf::from("/models/m"),
            mlmodel: MlModel::from_yaml(yaml).unwrap(),
        }
    }

    #[test]
    fn flavor_files_stay_inside_the_model_directory() {
        let m = model_dir("flavors:\n  python_function: {}\n");
        let file = |name: &str| m.flavor_file(&json!({ "data": name }), "data");
        assert_eq!(
            file("model.ubj"),
            Some(PathBuf::from("/models/m/model.ubj"))
        );
        assert_eq!(
            file("./sub/model.onnx"),
            Some(PathBuf::from("/models/m/./sub/model.onnx"))
        );
        for escaping in ["../model.ubj", "sub/../../x", "/etc/passwd"] {
            assert_eq!(file(escaping), None, "{escaping}");
        }
        assert_eq!(m.flavor_file(&json!({}), "data"), None);
    }

    struct Taker;

    impl NativeBackend for Taker {
        fn loader_modules(&self) -> &'static [&'static str] {
            &["mlflow.sklearn"]
        }
        fn load(&self, _: &ModelDir) -> Result<Load> {
            fallback("taken")
        }
    }

    fn reason(load: Load) -> String {
        match load {
            Load::Fallback { reason } => reason,
            Load::Native { .. } => panic!("loaded"),
        }
    }

    #[test]
    fn the_loader_module_picks_the_backend() {
        let sklearn =
            model_dir("flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n");
        let other = model_dir("flavors:\n  python_function:\n    loader_module: mlflow.pytorch\n");
        let none = model_dir("flavors:\n  sklearn: {}\n");
        assert_eq!(reason(select(&[&Taker], &sklearn).unwrap()), "taken");
        assert_eq!(
            reason(select(&[], &sklearn).unwrap()),
            "mlflow.sklearn models have no native runtime"
        );
        assert_eq!(
            reason(select(&[&Taker], &other).unwrap()),
            "mlflow.pytorch models have no native runtime"
        );
        assert_eq!(
            reason(select(&[&Taker], &none).unwrap()),
            "the model names no python_function loader module"
        );
    }
}
