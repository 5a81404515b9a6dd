//! MLServer's configuration files, accepted as users already write them: `settings.json` for
//! the server and one `model-settings.json` per model directory. MLServer reads them with
//! pydantic, which turns `"8000"` into a port and `"true"` into a boolean; people rely on that,
//! so do we. Documentation copies of these files often carry `//` comments and trailing commas;
//! those are accepted as well rather than failing the start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mlox_core::{Error, Result};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;

/// `settings.json`. Fields mlox does not act on are kept in `other` and reported at start-up.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ServerSettings {
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub debug: Option<bool>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_u16")]
    pub http_port: Option<u16>,
    #[serde(default, deserialize_with = "lenient_opt_u16")]
    pub grpc_port: Option<u16>,
    #[serde(default, deserialize_with = "lenient_opt_u16")]
    pub metrics_port: Option<u16>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub server_version: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub parallel_workers: Option<u64>,
    #[serde(default)]
    pub root_path: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_bool")]
    pub load_models_at_startup: Option<bool>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `model-settings.json`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelSettings {
    /// Defaults to the name of the directory holding the file, as in MLServer.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub implementation: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default)]
    pub parameters: ModelParameters,
    #[serde(default, deserialize_with = "lenient_opt_u64")]
    pub max_batch_size: Option<u64>,
    /// Seconds, as MLServer has it.
    #[serde(default, deserialize_with = "lenient_opt_f64")]
    pub max_batch_time: Option<f64>,
    /// Declared input and output tensors; when absent they come from the model's signature.
    #[serde(default)]
    pub inputs: Vec<Value>,
    #[serde(default)]
    pub outputs: Vec<Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ModelParameters {
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default, deserialize_with = "lenient_opt_string")]
    pub version: Option<String>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub environment_tarball: Option<String>,
    #[serde(default)]
    pub environment_path: Option<String>,
    #[serde(default)]
    pub extra: Option<Value>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// What an `implementation` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// `mlserver_mlflow.MLflowRuntime`: any MLflow model.
    Mlflow,
    /// MLServer's own sklearn / xgboost / lightgbm runtimes: a model file of that library.
    Sklearn,
    Xgboost,
    Lightgbm,
    /// A user's `MLModel` subclass, named by its import path.
    Custom(String),
}

impl Implementation {
    pub fn parse(name: &str) -> Self {
        match name.trim() {
            "mlserver_mlflow.MLflowRuntime" | "mlserver_mlflow.runtime.MLflowRuntime" => {
                Implementation::Mlflow
            }
            "mlserver_sklearn.SKLearnModel" | "mlserver_sklearn.sklearn.SKLearnModel" => {
                Implementation::Sklearn
            }
            "mlserver_xgboost.XGBoostModel" | "mlserver_xgboost.xgboost.XGBoostModel" => {
                Implementation::Xgboost
            }
            "mlserver_lightgbm.LightGBMModel" | "mlserver_lightgbm.lightgbm.LightGBMModel" => {
                Implementation::Lightgbm
            }
            other => Implementation::Custom(other.to_string()),
        }
    }
}

impl ModelSettings {
    /// The implementation; a missing one means an MLflow model, the only kind mlox loads
    /// without being told.
    pub fn implementation(&self) -> Implementation {
        self.implementation
            .as_deref()
            .map(Implementation::parse)
            .unwrap_or(Implementation::Mlflow)
    }
}

/// A `model-settings.json` found in a model repository, with what it resolves to.
#[derive(Clone, Debug)]
pub struct DiscoveredModel {
    pub settings_file: PathBuf,
    pub name: String,
    pub version: Option<String>,
    pub settings: ModelSettings,
    /// `parameters.uri` with a relative path made relative to the settings file's directory
    /// (MLServer's rule); other URIs as written. `None` means the directory itself.
    pub uri: Option<String>,
}

/// Removes `//` and `/* */` comments outside strings and commas before `}` or `]`.
pub fn strip_json_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = '\0';
                for n in chars.by_ref() {
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
            }
            _ => out.push(c),
        }
    }
    remove_trailing_commas(&out)
}

fn remove_trailing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if c == ',' {
            let next = chars[i + 1..].iter().find(|n| !n.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn parse_json<T: for<'de> Deserialize<'de>>(text: &str, what: &Path) -> Result<T> {
    serde_json::from_str(&strip_json_comments(text))
        .map_err(|e| Error::invalid(format!("{} is not valid: {e}", what.display())))
}

impl ServerSettings {
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        parse_json(text, path)
    }

    /// Reads `<dir>/settings.json`; a directory without one gets the defaults.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("settings.json");
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_json(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::invalid(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }
}

impl ModelSettings {
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        parse_json(text, path)
    }
}

/// Finds every `model-settings.json` under `root` (MLServer's model repository layout),
/// sorted by path. Two files declaring the same name and version are an error.
pub fn discover_models(root: &Path) -> Result<Vec<DiscoveredModel>> {
    let mut files = Vec::new();
    collect_settings_files(root, &mut files, 0)?;
    files.sort();
    let mut found: Vec<DiscoveredModel> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| Error::invalid(format!("cannot read {}: {e}", file.display())))?;
        let settings = ModelSettings::from_json(&text, &file)?;
        let dir = file.parent().unwrap_or(root);
        let name = match settings.name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| Error::invalid(format!("{} names no model", file.display())))?,
        };
        let version = settings.parameters.version.clone();
        if let Some(prev) = found
            .iter()
            .find(|m| m.name == name && m.version == version)
        {
            return Err(Error::invalid(format!(
                "model '{name}'{} is declared twice: {} and {}",
                version
                    .as_deref()
                    .map(|v| format!(" version {v}"))
                    .unwrap_or_default(),
                prev.settings_file.display(),
                file.display()
            )));
        }
        let uri = settings.parameters.uri.as_deref().map(|u| {
            let is_relative_path = !u.contains(":/") && !Path::new(u).is_absolute();
            if is_relative_path {
                dir.join(u).to_string_lossy().into_owned()
            } else {
                u.to_string()
            }
        });
        found.push(DiscoveredModel {
            settings_file: file,
            name,
            version,
            settings,
            uri,
        });
    }
    Ok(found)
}

fn collect_settings_files(dir: &Path, into: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    // Deep trees are model artifacts, not a repository; stop before walking a whole disk.
    if depth > 8 {
        return Ok(());
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if !hidden {
                collect_settings_files(&path, into, depth + 1)?;
            }
        } else if entry.file_name() == "model-settings.json" {
            into.push(path);
        }
    }
    Ok(())
}

// ------------------------------------------------------------------ pydantic-style coercion

fn lenient_opt_u16<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u16>, D::Error> {
    lenient_opt_u64(d)?
        .map(|v| u16::try_from(v).map_err(|_| de::Error::custom(format!("{v} is not a port"))))
        .transpose()
}

fn lenient_opt_u64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("{n} is not a whole number"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("'{s}' is not a whole number"))),
        Some(other) => Err(de::Error::custom(format!("{other} is not a whole number"))),
    }
}

fn lenient_opt_f64<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<f64>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("'{s}' is not a number"))),
        Some(other) => Err(de::Error::custom(format!("{other} is not a number"))),
    }
}

fn lenient_opt_bool<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<bool>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
        Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "y" | "t" => Ok(Some(true)),
            "false" | "0" | "no" | "off" | "n" | "f" => Ok(Some(false)),
            _ => Err(de::Error::custom(format!("'{s}' is not a boolean"))),
        },
        Some(other) => Err(de::Error::custom(format!("{other} is not a boolean"))),
    }
}

fn lenient_opt_string<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(de::Error::custom(format!("{other} is not a version"))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn p() -> &'static Path {
        Path::new("settings.json")
    }

    #[test]
    fn the_seed_settings_file_is_accepted_as_written() {
        // Ports and booleans as strings, and the comments the seed's documentation carries.
        let text = r#"{
    "debug": "true",  // write output of starting process
    "http_port": "8000", // port for swagger, allowed by http://ip:8000/v2/docs
    "grpc_port": "8001", // API порт
    "server_name":" mlserver" // name of server
}"#;
        let s = ServerSettings::from_json(text, p()).unwrap();
        assert_eq!(s.debug, Some(true));
        assert_eq!(s.http_port, Some(8000));
        assert_eq!(s.grpc_port, Some(8001));
        assert_eq!(s.server_name.as_deref(), Some(" mlserver"));
        assert!(s.other.is_empty());
    }

    #[test]
    fn the_seed_model_settings_file_names_an_mlflow_model() {
        let text = r#"{
    "name": "name_test_model1", //  model name (how you registered it in mlflow)
    "implementation": "mlserver_mlflow.MLflowRuntime", // tell mlserver type of model
    "parameters": {
        "uri": "s3://project1/0/84eb95eae9c4428283ef3afd5976c14b/artifacts/" // path to s3 where model saved
    }
}"#;
        let m = ModelSettings::from_json(text, p()).unwrap();
        assert_eq!(m.name.as_deref(), Some("name_test_model1"));
        assert_eq!(m.implementation(), Implementation::Mlflow);
        assert_eq!(
            m.parameters.uri.as_deref(),
            Some("s3://project1/0/84eb95eae9c4428283ef3afd5976c14b/artifacts/")
        );
    }

    #[test]
    fn numbers_and_flags_coerce_like_pydantic_and_refuse_nonsense() {
        let m = ModelSettings::from_json(
            r#"{"name": "m", "max_batch_size": "32", "max_batch_time": "0.5", "parameters": {"version": 2}}"#,
            p(),
        )
        .unwrap();
        assert_eq!(m.max_batch_size, Some(32));
        assert_eq!(m.max_batch_time, Some(0.5));
        assert_eq!(m.parameters.version.as_deref(), Some("2"));
        for bad in [
            r#"{"http_port": "eighty"}"#,
            r#"{"http_port": 70000}"#,
            r#"{"debug": "maybe"}"#,
            r#"{"parallel_workers": -1}"#,
        ] {
            let e = ServerSettings::from_json(bad, p()).unwrap_err();
            assert!(
                e.message.starts_with("settings.json is not valid"),
                "{bad}: {}",
                e.message
            );
        }
        let s = ServerSettings::from_json(r#"{"debug": 0, "gzip_enabled": false}"#, p()).unwrap();
        assert_eq!(s.debug, Some(false));
        assert!(
            s.other.contains_key("gzip_enabled"),
            "unknown settings are kept to report"
        );
    }

    #[test]
    fn implementations_are_recognised_by_their_import_path() {
        assert_eq!(
            Implementation::parse("mlserver_sklearn.SKLearnModel"),
            Implementation::Sklearn
        );
        assert_eq!(
            Implementation::parse("mlserver_xgboost.XGBoostModel"),
            Implementation::Xgboost
        );
        assert_eq!(
            Implementation::parse("models.MyRuntime"),
            Implementation::Custom("models.MyRuntime".into())
        );
        assert_eq!(
            ModelSettings::default().implementation(),
            Implementation::Mlflow
        );
    }

    #[test]
    fn comments_and_trailing_commas_never_touch_strings() {
        let text = r#"{"a": "http://x//y", "b": "/* not a comment */", "c": [1, 2,], /* c */ "d": "\"//\"",}"#;
        let v: Value = serde_json::from_str(&strip_json_comments(text)).unwrap();
        assert_eq!(v["a"], "http://x//y");
        assert_eq!(v["b"], "/* not a comment */");
        assert_eq!(v["c"], serde_json::json!([1, 2]));
        assert_eq!(v["d"], "\"//\"");
        assert_eq!(strip_json_comments("[\"a,]\"]"), "[\"a,]\"]");
    }

    #[test]
    fn a_repository_is_every_model_settings_file_below_the_root() {
        let root = tempfile::tempdir().unwrap();
        let wine = root.path().join("wine");
        let nested = root.path().join("group").join("echo");
        std::fs::create_dir_all(&wine).unwrap();
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::create_dir_all(root.path().join(".hidden")).unwrap();
        std::fs::write(
            root.path().join("settings.json"),
            r#"{"http_port": "8000"}"#,
        )
        .unwrap();
        std::fs::write(
            wine.join("model-settings.json"),
            r#"{"implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": "./model"}}"#,
        )
        .unwrap();
        std::fs::write(
            nested.join("model-settings.json"),
            r#"{"name": "echo", "parameters": {"uri": "models:/echo@prod", "version": "v1"}}"#,
        )
        .unwrap();
        std::fs::write(root.path().join(".hidden").join("model-settings.json"), "{").unwrap();

        let models = discover_models(root.path()).unwrap();
        let names: Vec<_> = models.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["echo", "wine"]);
        assert_eq!(
            models[1].uri.as_deref(),
            Some(wine.join("./model").to_str().unwrap())
        );
        assert_eq!(models[0].uri.as_deref(), Some("models:/echo@prod"));
        assert_eq!(models[0].version.as_deref(), Some("v1"));
        assert_eq!(
            ServerSettings::from_dir(root.path()).unwrap().http_port,
            Some(8000)
        );
        assert!(ServerSettings::from_dir(&wine).unwrap().http_port.is_none());

        // A second declaration of the same model and version names both files.
        let dup = root.path().join("dup");
        std::fs::create_dir_all(&dup).unwrap();
        std::fs::write(dup.join("model-settings.json"), r#"{"name": "wine"}"#).unwrap();
        let e = discover_models(root.path()).unwrap_err();
        assert!(e.message.contains("declared twice"), "{}", e.message);
    }

    proptest! {
        #[test]
        fn comment_stripping_never_panics_and_keeps_plain_json(s in "\\PC{0,80}") {
            let _ = strip_json_comments(&s);
            let plain = serde_json::json!({"k": s}).to_string();
            prop_assert_eq!(
                serde_json::from_str::<Value>(&strip_json_comments(&plain)).unwrap(),
                serde_json::from_str::<Value>(&plain).unwrap()
            );
        }
    }
}
