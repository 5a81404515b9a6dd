//! Model URIs as MLflow clients and MLServer configs write them.
//!
//! | form | meaning |
//! |---|---|
//! | `runs:/<run_id>/<path>` | a path inside a run's artifacts (MLflow 3 resolves `runs:/<run>/<name>` to the logged model of that name first) |
//! | `models:/<name>/<version>` | a registered model version |
//! | `models:/<name>/<stage>`, `models:/<name>/latest` | the newest version in a stage, or overall |
//! | `models:/<name>@<alias>` | the version an alias points at |
//! | `models:/m-<id>` | an MLflow 3 logged model |
//! | `mlflow-artifacts:/<path>` | a path behind a tracking server's artifact proxy |
//! | `s3://bucket/key`, `file:///path`, a plain path, `http(s)://…` | storage locations |

use std::fmt;
use std::path::PathBuf;

use mlox_core::location::{Location, MODELS_URI_SHAPE};
use mlox_core::{Error, Result};

/// Stages the registry knows, in MLflow's spelling; `models:/name/<stage>` matches them
/// case-insensitively.
pub const STAGES: [&str; 4] = ["None", "Staging", "Production", "Archived"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelUri {
    Run {
        run_id: String,
        path: String,
    },
    RegisteredVersion {
        name: String,
        version: u64,
    },
    RegisteredStage {
        name: String,
        stage: &'static str,
    },
    RegisteredLatest {
        name: String,
    },
    RegisteredAlias {
        name: String,
        alias: String,
    },
    LoggedModel {
        model_id: String,
    },
    MlflowArtifacts {
        /// `host:port` when the URI names a tracking server; `None` means "the one configured".
        authority: Option<String>,
        path: String,
    },
    S3 {
        bucket: String,
        key: String,
    },
    Local(PathBuf),
    Http(String),
}

fn bad(uri: &str, why: &str) -> Error {
    Error::invalid(format!("Not a valid model URI '{uri}': {why}"))
}

impl ModelUri {
    /// Reads a model URI; every location in it is read by `mlox_core::location`.
    pub fn parse(uri: &str) -> Result<Self> {
        let uri = uri.trim();
        if uri.is_empty() {
            return Err(Error::invalid("A model URI must not be empty"));
        }
        let location = Location::parse(uri).map_err(|e| bad(uri, &e.to_string()))?;
        Ok(match location {
            Location::Run { run_id, path } => ModelUri::Run {
                run_id,
                path: path.to_string(),
            },
            Location::Models(reference) => parse_models(uri, &reference)?,
            Location::MlflowArtifacts { authority, path } => ModelUri::MlflowArtifacts {
                authority,
                path: path.to_string(),
            },
            Location::S3 { bucket, key } => ModelUri::S3 {
                bucket,
                key: key.to_string(),
            },
            Location::Local(path) => ModelUri::Local(path),
            Location::Http(url) => ModelUri::Http(url),
        })
    }

    /// Whether resolving this URI needs a tracking server.
    pub fn needs_tracking_server(&self) -> bool {
        matches!(
            self,
            ModelUri::Run { .. }
                | ModelUri::RegisteredVersion { .. }
                | ModelUri::RegisteredStage { .. }
                | ModelUri::RegisteredLatest { .. }
                | ModelUri::RegisteredAlias { .. }
                | ModelUri::LoggedModel { .. }
                | ModelUri::MlflowArtifacts { .. }
        )
    }
}

/// The registry grammar of what follows `models:/`.
fn parse_models(uri: &str, reference: &str) -> Result<ModelUri> {
    let rest = reference.trim_start_matches('/').trim_end_matches('/');
    if rest.is_empty() {
        return Err(bad(uri, MODELS_URI_SHAPE));
    }
    if !rest.contains('/') {
        if let Some((name, alias)) = rest.split_once('@') {
            if name.is_empty() || alias.is_empty() {
                return Err(bad(uri, MODELS_URI_SHAPE));
            }
            return Ok(ModelUri::RegisteredAlias {
                name: name.to_string(),
                alias: alias.to_string(),
            });
        }
        if rest.starts_with("m-") && rest.len() > 2 {
            return Ok(ModelUri::LoggedModel {
                model_id: rest.to_string(),
            });
        }
        return Err(bad(uri, MODELS_URI_SHAPE));
    }
    let (name, selector) = rest
        .rsplit_once('/')
        .ok_or_else(|| bad(uri, MODELS_URI_SHAPE))?;
    if name.is_empty() || name.contains('/') || selector.is_empty() {
        return Err(bad(uri, MODELS_URI_SHAPE));
    }
    let name = name.to_string();
    if selector.bytes().all(|b| b.is_ascii_digit()) {
        let version = selector
            .parse::<u64>()
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| bad(uri, "versions are whole numbers from 1"))?;
        return Ok(ModelUri::RegisteredVersion { name, version });
    }
    if selector.eq_ignore_ascii_case("latest") {
        return Ok(ModelUri::RegisteredLatest { name });
    }
    if let Some(stage) = STAGES.iter().find(|s| s.eq_ignore_ascii_case(selector)) {
        return Ok(ModelUri::RegisteredStage { name, stage });
    }
    Err(bad(
        uri,
        &format!(
            "'{selector}' is neither a version number, 'latest' nor a stage ({})",
            STAGES.join(", ")
        ),
    ))
}

impl fmt::Display for ModelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelUri::Run { run_id, path } if path.is_empty() => write!(f, "runs:/{run_id}"),
            ModelUri::Run { run_id, path } => write!(f, "runs:/{run_id}/{path}"),
            ModelUri::RegisteredVersion { name, version } => write!(f, "models:/{name}/{version}"),
            ModelUri::RegisteredStage { name, stage } => write!(f, "models:/{name}/{stage}"),
            ModelUri::RegisteredLatest { name } => write!(f, "models:/{name}/latest"),
            ModelUri::RegisteredAlias { name, alias } => write!(f, "models:/{name}@{alias}"),
            ModelUri::LoggedModel { model_id } => write!(f, "models:/{model_id}"),
            ModelUri::MlflowArtifacts {
                authority: Some(a),
                path,
            } => write!(f, "mlflow-artifacts://{a}/{path}"),
            ModelUri::MlflowArtifacts {
                authority: None,
                path,
            } => write!(f, "mlflow-artifacts:/{path}"),
            ModelUri::S3 { bucket, key } if key.is_empty() => write!(f, "s3://{bucket}"),
            ModelUri::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            ModelUri::Local(path) => write!(f, "{}", path.display()),
            ModelUri::Http(url) => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn parse(uri: &str) -> ModelUri {
        ModelUri::parse(uri).unwrap()
    }

    fn refused(uri: &str) -> String {
        let e = ModelUri::parse(uri).unwrap_err();
        assert_eq!(e.code, mlox_core::Code::InvalidParameterValue, "{uri}");
        e.message
    }

    #[test]
    fn run_uris_name_a_run_and_a_path_inside_it() {
        assert_eq!(
            parse("runs:/0123abcd/model"),
            ModelUri::Run {
                run_id: "0123abcd".into(),
                path: "model".into()
            }
        );
        assert_eq!(
            parse("runs:/0123abcd/models/inner/"),
            ModelUri::Run {
                run_id: "0123abcd".into(),
                path: "models/inner".into()
            }
        );
        assert_eq!(
            parse("runs:/0123abcd"),
            ModelUri::Run {
                run_id: "0123abcd".into(),
                path: String::new()
            }
        );
        assert!(refused("runs:").contains("runs:/<run_id>"));
        assert!(refused("runs:/").contains("run id is missing"));
        assert!(refused("runs:/bad id/model").contains("malformed"));
    }

    #[test]
    fn registry_uris_select_a_version_stage_latest_or_alias() {
        assert_eq!(
            parse("models:/wine/3"),
            ModelUri::RegisteredVersion {
                name: "wine".into(),
                version: 3
            }
        );
        assert_eq!(
            parse("models:/wine/production"),
            ModelUri::RegisteredStage {
                name: "wine".into(),
                stage: "Production"
            }
        );
        assert_eq!(
            parse("models:/wine/Latest"),
            ModelUri::RegisteredLatest {
                name: "wine".into()
            }
        );
        assert_eq!(
            parse("models:/wine@champion"),
            ModelUri::RegisteredAlias {
                name: "wine".into(),
                alias: "champion".into()
            }
        );
        assert_eq!(
            parse("models:/name with spaces/1"),
            ModelUri::RegisteredVersion {
                name: "name with spaces".into(),
                version: 1
            }
        );
    }

    #[test]
    fn logged_model_uris_carry_the_model_id() {
        assert_eq!(
            parse("models:/m-0123456789abcdef0123456789abcdef"),
            ModelUri::LoggedModel {
                model_id: "m-0123456789abcdef0123456789abcdef".into()
            }
        );
    }

    #[test]
    fn malformed_registry_uris_explain_the_expected_shape() {
        for uri in [
            "models:",
            "models:/",
            "models:/wine",
            "models:/@a",
            "models:/w@",
        ] {
            assert!(refused(uri).contains("models:/<name>/<version>"), "{uri}");
        }
        assert!(refused("models:/wine/0").contains("whole numbers from 1"));
        assert!(refused("models:/wine/99999999999999999999999").contains("whole numbers"));
        assert!(refused("models:/wine/Prod").contains("neither a version number"));
        assert!(refused("models:/a/b/1").contains("models:/<name>/<version>"));
    }

    #[test]
    fn storage_uris_keep_their_location() {
        assert_eq!(
            parse("s3://project1/0/84eb95eae9c4428283ef3afd5976c14b/artifacts/"),
            ModelUri::S3 {
                bucket: "project1".into(),
                key: "0/84eb95eae9c4428283ef3afd5976c14b/artifacts".into()
            }
        );
        assert_eq!(
            parse("mlflow-artifacts:/1/models/m-1/artifacts"),
            ModelUri::MlflowArtifacts {
                authority: None,
                path: "1/models/m-1/artifacts".into()
            }
        );
        assert_eq!(
            parse("mlflow-artifacts://tracking:5000/1/x"),
            ModelUri::MlflowArtifacts {
                authority: Some("tracking:5000".into()),
                path: "1/x".into()
            }
        );
        assert_eq!(
            parse("file:///srv/model"),
            ModelUri::Local("/srv/model".into())
        );
        assert_eq!(
            parse("file:/srv/model"),
            ModelUri::Local("/srv/model".into())
        );
        assert_eq!(parse("./model"), ModelUri::Local("./model".into()));
        assert_eq!(
            parse("https://example.com/m.tar"),
            ModelUri::Http("https://example.com/m.tar".into())
        );
        assert!(refused("gs://bucket/x").contains("'gs' is not supported"));
        assert!(refused("s3://").contains("needs a bucket"));
        assert!(refused("  ").contains("must not be empty"));
    }

    #[test]
    fn only_storage_uris_resolve_without_a_tracking_server() {
        assert!(parse("runs:/abc/model").needs_tracking_server());
        assert!(parse("models:/w@a").needs_tracking_server());
        assert!(parse("mlflow-artifacts:/x").needs_tracking_server());
        assert!(!parse("s3://b/k").needs_tracking_server());
        assert!(!parse("/srv/model").needs_tracking_server());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,60}") {
            let _ = ModelUri::parse(&s);
        }

        #[test]
        fn parsed_uris_print_back_to_an_equivalent_uri(
            s in prop_oneof![
                "runs:/[a-f0-9]{8}(/[a-z]{1,5}){0,3}",
                "models:/[a-zA-Z][a-zA-Z0-9 _.-]{0,10}/([1-9][0-9]{0,3}|latest|staging|None)",
                "models:/[a-zA-Z][a-z0-9_]{0,10}@[a-z][a-z0-9_]{0,8}",
                "models:/m-[a-f0-9]{32}",
                "s3://[a-z]{3,8}(/[a-z0-9]{1,5}){0,3}",
                "mlflow-artifacts:/[0-9]{1,3}(/[a-z]{1,5}){0,2}",
            ]
        ) {
            let parsed = ModelUri::parse(&s).unwrap();
            prop_assert_eq!(ModelUri::parse(&parsed.to_string()).unwrap(), parsed);
        }
    }
}
