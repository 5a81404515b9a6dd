//! Which runtime backend serves a model. This is the one place that sees every backend the
//! build enabled (mlox-serving's features `gbdt`, `sklearn`, `onnx`, `llm`, `python`, chosen by
//! mlox-cli's): the model's `MLmodel` is read once, offered to the native backends through
//! `mlox_runtime::select`, and a model none of them reproduces exactly goes to the Python
//! worker pool, with the reason logged.

use std::path::Path;

use mlox_core::{Error, Result};
use mlox_runtime::{Load, LoadedModel, ModelDir, NativeBackend};
#[cfg(feature = "python")]
use mlox_runtime_python::{PythonOptions, PythonRuntime};

/// The native backends of this build, in the order they are offered a model.
fn native_backends() -> Vec<&'static dyn NativeBackend> {
    vec![
        #[cfg(feature = "gbdt")]
        &mlox_runtime_gbdt::Gbdt,
        #[cfg(feature = "sklearn")]
        &mlox_runtime_sklearn::Sklearn,
        #[cfg(feature = "onnx")]
        &mlox_runtime_onnx::Onnx,
        #[cfg(feature = "llm")]
        &mlox_runtime_llm::Llm,
    ]
}

/// A started model and whether it runs in Python workers.
pub(crate) struct Started {
    pub model: LoadedModel,
    pub python: bool,
}

/// Starts the model in `dir`, named `name` in logs: natively when a backend of this build
/// reproduces it, else in Python workers.
pub(crate) async fn start(
    dir: &Path,
    name: &str,
    #[cfg(feature = "python")] python: &PythonOptions,
) -> Result<Started> {
    let (model_dir, load) = load_native(dir).await?;
    match load {
        Load::Native { model, description } => {
            tracing::info!(model = %name, runtime = "native", "{description}");
            Ok(Started {
                model,
                python: false,
            })
        }
        Load::Fallback { reason } => start_python(
            &model_dir,
            name,
            reason,
            #[cfg(feature = "python")]
            python,
        )
        .await
        .map(|model| Started {
            model,
            python: true,
        }),
    }
}

/// Reads `MLmodel` and offers the model to the native backends; reading a large tree model
/// is blocking work, so it runs off the reactor.
async fn load_native(dir: &Path) -> Result<(ModelDir, Load)> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let model = ModelDir::open(&dir)?;
        let load = mlox_runtime::select(&native_backends(), &model)?;
        Ok((model, load))
    })
    .await
    .map_err(|e| Error::internal(format!("the model reader stopped: {e}")))?
}

#[cfg(feature = "python")]
async fn start_python(
    model: &ModelDir,
    name: &str,
    reason: String,
    python: &PythonOptions,
) -> Result<LoadedModel> {
    tracing::info!(model = %name, runtime = "python", "{reason}");
    let options = PythonOptions {
        name: Some(name.to_owned()),
        ..python.clone()
    };
    PythonRuntime::load_model(model, options).await
}

#[cfg(not(feature = "python"))]
async fn start_python(_: &ModelDir, name: &str, reason: String) -> Result<LoadedModel> {
    Err(Error::invalid(format!(
        "model {name} needs the Python runtime, which this build of mlox leaves out \
         (no native runtime takes it: {reason})"
    )))
}
