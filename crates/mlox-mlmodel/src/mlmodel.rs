//! The `MLmodel` document at the root of every MLflow model directory, and the
//! `python_env.yaml` it points at for the model's Python environment.

use std::collections::BTreeMap;
use std::path::Path;

use mlox_core::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::signature::Signature;

/// The flavor every MLflow model that can be served through `mlflow.pyfunc` carries.
pub const PYFUNC_FLAVOR: &str = "python_function";

#[derive(Clone, Debug, Deserialize)]
pub struct MlModel {
    #[serde(default)]
    pub artifact_path: Option<String>,
    /// Flavor name → its settings, kept as JSON because each flavor has its own keys.
    #[serde(default)]
    pub flavors: BTreeMap<String, Value>,
    #[serde(default)]
    pub mlflow_version: Option<String>,
    #[serde(default)]
    pub model_id: Option<String>,
    #[serde(default)]
    pub model_uuid: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub signature: Option<Value>,
    #[serde(default)]
    pub saved_input_example_info: Option<Value>,
    #[serde(default)]
    pub utc_time_created: Option<String>,
}

impl MlModel {
    pub fn from_yaml(text: &str) -> Result<Self> {
        let model: MlModel = serde_saphyr::from_str(text)
            .map_err(|e| Error::invalid(format!("the MLmodel file is not valid: {e}")))?;
        if model.flavors.is_empty() {
            return Err(Error::invalid("the MLmodel file lists no flavors"));
        }
        Ok(model)
    }

    /// Reads `<dir>/MLmodel`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("MLmodel");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!(
                    "{} is not an MLflow model: it has no MLmodel file",
                    dir.display()
                ))
            } else {
                Error::invalid(format!("cannot read {}: {e}", path.display()))
            }
        })?;
        Self::from_yaml(&text)
    }

    /// The parsed signature; `None` when the model was logged without one.
    pub fn parsed_signature(&self) -> Result<Option<Signature>> {
        match &self.signature {
            None | Some(Value::Null) => Ok(None),
            Some(v) => Signature::from_mlmodel_value(v).map(Some),
        }
    }

    pub fn flavor(&self, name: &str) -> Option<&Value> {
        self.flavors.get(name)
    }

    /// The `python_function` flavor's `loader_module` (e.g. `mlflow.sklearn`,
    /// `mlflow.pyfunc.model` for a custom `PythonModel`).
    pub fn loader_module(&self) -> Option<&str> {
        self.flavor(PYFUNC_FLAVOR)?
            .get("loader_module")
            .and_then(Value::as_str)
    }

    /// The file holding the model's Python environment, relative to the model directory.
    pub fn python_env_file(&self) -> Option<&str> {
        self.flavor(PYFUNC_FLAVOR)?
            .get("env")?
            .get("virtualenv")
            .and_then(Value::as_str)
    }

    /// The Python version the model was saved with.
    pub fn python_version(&self) -> Option<&str> {
        self.flavor(PYFUNC_FLAVOR)?
            .get("python_version")
            .and_then(Value::as_str)
    }
}

/// `python_env.yaml`: the interpreter version and the pip requirements of a model.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PythonEnv {
    #[serde(default)]
    pub python: Option<String>,
    #[serde(default)]
    pub build_dependencies: Vec<String>,
    #[serde(default)]
    pub dependencies: Vec<String>,
}

impl PythonEnv {
    pub fn from_yaml(text: &str) -> Result<Self> {
        serde_saphyr::from_str(text)
            .map_err(|e| Error::invalid(format!("python_env.yaml is not valid: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::signature::Schema;

    // The shape `mlflow.sklearn.log_model` writes (MLflow 3.17), signature included.
    const SKLEARN: &str = r#"artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.skops
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.skops
    serialization_format: skops
    sklearn_version: 1.9.1
mlflow_version: 3.17.2
model_id: m-2f4c1a0c5e6d4a0f9d3b8e7a6c5b4a39
model_size_bytes: 1463
model_uuid: m-2f4c1a0c5e6d4a0f9d3b8e7a6c5b4a39
prompts: null
run_id: 84eb95eae9c4428283ef3afd5976c14b
signature:
  inputs: '[{"type": "double", "name": "fixed acidity", "required": true}, {"type":
    "double", "name": "volatile acidity", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]'
  params: null
utc_time_created: '2026-11-22 08:00:00.000000'
"#;

    #[test]
    fn an_sklearn_mlmodel_yields_its_flavors_and_signature() {
        let m = MlModel::from_yaml(SKLEARN).unwrap();
        assert_eq!(m.loader_module(), Some("mlflow.sklearn"));
        assert_eq!(m.python_env_file(), Some("python_env.yaml"));
        assert_eq!(m.python_version(), Some("3.11.7"));
        assert_eq!(
            m.run_id.as_deref(),
            Some("84eb95eae9c4428283ef3afd5976c14b")
        );
        assert!(m.flavor("sklearn").is_some());
        let sig = m.parsed_signature().unwrap().unwrap();
        let Schema::Columns(cols) = &sig.inputs else {
            panic!()
        };
        assert_eq!(
            cols.iter()
                .map(|c| c.name.clone().unwrap())
                .collect::<Vec<_>>(),
            ["fixed acidity", "volatile acidity"]
        );
        assert!(matches!(sig.outputs, Some(Schema::Tensors(_))));
    }

    #[test]
    fn a_model_without_signature_has_none() {
        let m = MlModel::from_yaml(
            "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n",
        )
        .unwrap();
        assert!(m.parsed_signature().unwrap().is_none());
        assert_eq!(m.loader_module(), Some("mlflow.pyfunc.model"));
    }

    #[test]
    fn broken_mlmodel_files_are_refused() {
        assert!(
            MlModel::from_yaml("flavors: {}\n")
                .unwrap_err()
                .message
                .contains("no flavors")
        );
        assert!(
            MlModel::from_yaml(": : :")
                .unwrap_err()
                .message
                .contains("not valid")
        );
        let dir = tempfile::tempdir().unwrap();
        let e = MlModel::from_dir(dir.path()).unwrap_err();
        assert_eq!(e.code, mlox_core::Code::ResourceDoesNotExist);
        assert!(e.message.contains("no MLmodel file"));
    }

    #[test]
    fn alias_bombs_are_refused_instead_of_expanded() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            bomb.push_str(&format!(
                "l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        bomb.push_str("flavors: {python_function: {}}\n");
        assert!(MlModel::from_yaml(&bomb).is_err());
    }

    #[test]
    fn python_env_lists_interpreter_and_requirements() {
        let env = PythonEnv::from_yaml(
            "python: 3.11.7\nbuild_dependencies:\n- pip==23.2.1\ndependencies:\n- -r requirements.txt\n",
        )
        .unwrap();
        assert_eq!(env.python.as_deref(), Some("3.11.7"));
        assert_eq!(env.build_dependencies, ["pip==23.2.1"]);
        assert_eq!(env.dependencies, ["-r requirements.txt"]);
    }

    mod fuzz {
        //! Any MLmodel or python_env.yaml text, however broken, reads as a model or as an
        //! error, never a panic; documents are drawn from MLmodel's own keys, YAML's
        //! punctuation (anchors, tags, flow collections) and fragments of a real file.
        use super::*;
        use proptest::prelude::*;

        fn fragment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("flavors:".to_string()),
                Just("  python_function:".to_string()),
                Just("    loader_module: mlflow.sklearn".to_string()),
                Just("signature:".to_string()),
                Just("  inputs: '[{\"type\": \"double\", \"name\": \"x\"}]'".to_string()),
                Just("  outputs: '[{\"type\": \"tensor\"}]'".to_string()),
                Just("model_uuid: &a abc".to_string()),
                Just("run_id: *a".to_string()),
                Just("- !!binary aGk=".to_string()),
                Just("{[: ]}".to_string()),
                Just("<<: *a".to_string()),
                "\\PC{0,20}",
                "[ -~]{0,20}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn mlmodel_texts_never_panic(lines in prop::collection::vec(fragment(), 0..12)) {
                let text = lines.join("\n");
                if let Ok(model) = MlModel::from_yaml(&text) {
                    let _ = model.parsed_signature();
                }
                let _ = PythonEnv::from_yaml(&text);
            }

            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
                let _ = MlModel::from_yaml(&text);
            }
        }
    }
}
