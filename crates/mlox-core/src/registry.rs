//! The model registry's rules: what a model name, an alias and a version number may be, and
//! which sources a new model version may be made from. The store applies them; the only thing
//! they may need from it is the artifact location of the run or logged model a source must lie
//! in (see [`SourceRule`]).

use crate::location::{Location, UriParts, models_reference};
use crate::{Error, Result, validation};
use std::path::{Component, PathBuf};

/// A version number as clients send it (a string holding an integer).
pub fn parse_version(version: &str) -> Result<i64> {
    version.trim().parse::<i64>().map_err(|_| {
        Error::invalid(format!(
            "Parameter 'version' must be an integer, got '{version}'."
        ))
    })
}

pub fn validate_model_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(validation::missing_value("name"));
    }
    Ok(())
}

/// The tag that makes a registered model, or one of its versions, a prompt.
pub const IS_PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

/// The tag holding a prompt version's template.
pub const PROMPT_TEXT_TAG: &str = "mlflow.prompt.text";
/// The tag saying whether a prompt is text or chat.
pub const PROMPT_TYPE_TAG: &str = "_mlflow_prompt_type";

/// A prompt's or prompt version's tags as its webhook events show them: without the tags that
/// make it a prompt, its type and its template.
pub fn user_prompt_tags(
    tags: &[crate::entities::KeyValue],
) -> std::collections::BTreeMap<&str, &str> {
    tags.iter()
        .filter(|t| ![IS_PROMPT_TAG, PROMPT_TYPE_TAG, PROMPT_TEXT_TAG].contains(&t.key.as_str()))
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect()
}

/// The placeholder sources prompt versions are created with (the client's and the store's):
/// a prompt's template lives in its tags, not in an artifact.
pub const PROMPT_SOURCE_PLACEHOLDERS: [&str; 2] = ["dummy-source", "prompt-template"];

/// Whether a new model version's tags make it a prompt version: the last `mlflow.prompt.is_prompt`
/// tag says `true` (in any case), as MLflow reads them.
pub fn is_prompt_version(tags: &[crate::entities::KeyValue]) -> bool {
    tags.iter()
        .rev()
        .find(|tag| tag.key == IS_PROMPT_TAG)
        .is_some_and(|tag| tag.value.eq_ignore_ascii_case("true"))
}

/// A prompt version's source must be one of MLflow's placeholders.
pub fn check_prompt_source(source: &str) -> Result<()> {
    if PROMPT_SOURCE_PLACEHOLDERS.contains(&source) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid prompt source: '{source}'. Prompt sources must use an MLflow placeholder."
        )))
    }
}

/// Longest alias MLflow accepts.
const MAX_ALIAS_CHARS: usize = 255;

/// Aliases are names of letters, digits, `_` and `-`; `latest` and version-like names (`v3`)
/// are reserved because `models:/name@…` and `models:/name/…` would read them otherwise.
pub fn validate_alias(alias: &str) -> Result<()> {
    let bad = alias.is_empty()
        || alias.len() > MAX_ALIAS_CHARS
        || !alias
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if bad {
        return Err(Error::invalid(format!(
            "Invalid alias name: '{alias}'. Aliases may only contain alphanumerics, underscores and dashes, up to 255 characters."
        )));
    }
    let lower = alias.to_ascii_lowercase();
    let version_like =
        lower.len() > 1 && lower.starts_with('v') && lower[1..].chars().all(|c| c.is_ascii_digit());
    if lower == "latest" || version_like {
        return Err(Error::invalid(format!(
            "'{alias}' alias name (case insensitive) is reserved."
        )));
    }
    Ok(())
}

/// The logged-model tag listing the registry versions made from the model.
pub const MODEL_VERSIONS_TAG: &str = "mlflow.modelVersions";

/// The [`MODEL_VERSIONS_TAG`] value once version `version` of `name` was made from the model:
/// the entries of `existing` (a JSON list) with `{"name", "version"}` appended unless it is
/// there already, written as Python's `json.dumps` writes it, since MLflow's clients and UI
/// read the tag as MLflow's server writes it. An unreadable `existing` is replaced.
pub fn model_versions_tag(existing: Option<&str>, name: &str, version: i64) -> String {
    let entry = serde_json::json!({ "name": name, "version": version });
    let mut entries = existing
        .and_then(|text| serde_json::from_str::<Vec<serde_json::Value>>(text).ok())
        .unwrap_or_default();
    if !entries.contains(&entry) {
        entries.push(entry);
    }
    let mut out = String::new();
    write_python_json(&serde_json::Value::Array(entries), &mut out);
    out
}

/// `value` as Python's `json.dumps` writes it by default: `", "` and `": "` separators and
/// every non-ASCII character escaped.
fn write_python_json(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_json(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (key, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_python_json_string(key, out);
                out.push_str(": ");
                write_python_json(item, out);
            }
            out.push('}');
        }
        Value::String(text) => write_python_json_string(text, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_python_json_string(text: &str, out: &mut String) {
    let quoted = serde_json::Value::String(text.to_owned()).to_string();
    for c in quoted.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
}

/// The logged model id of a `models:/m-<id>` source.
pub fn logged_model_source(source: &str) -> Option<&str> {
    models_reference(source).filter(|rest| rest.starts_with("m-") && !rest.contains('/'))
}

/// The registered model and version of a `models:/<name>/<version>` source (the version
/// unchecked).
pub fn registered_version_source(source: &str) -> Option<(&str, &str)> {
    models_reference(source)?.rsplit_once('/')
}

/// Whose artifacts a source must lie in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceOwner<'a> {
    Run(&'a str),
    LoggedModel(&'a str),
}

/// A source that is acceptable only inside the artifact location of its owner: check it with
/// that location once it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct SourceRule<'a> {
    source: &'a str,
    owner: Option<SourceOwner<'a>>,
    /// A local path: the owner's location must be local too, and the refusal explains that.
    local: bool,
}

impl<'a> SourceRule<'a> {
    /// Whose artifact location [`SourceRule::check`] needs; `None` when the request names no
    /// owner, so the source is refused whatever the location.
    pub fn owner(&self) -> Option<SourceOwner<'a>> {
        self.owner
    }

    /// Accepts the source if it lies inside `owner_location` (the owner's artifact URI, `None`
    /// when the owner does not exist).
    pub fn check(&self, owner_location: Option<&str>) -> Result<()> {
        let inside = if self.local {
            // As files, the way MLflow compares them: a plain path and a `file:` URI name the
            // same place, and `.` and `..` are resolved before the comparison.
            match (local_file(self.source), owner_location.and_then(local_file)) {
                (Some(source), Some(root)) => source.starts_with(root),
                _ => false,
            }
        } else {
            let source = UriParts::split(self.source);
            owner_location
                .map(UriParts::split)
                .is_some_and(|root| source.is_within(&root))
        };
        if inside {
            return Ok(());
        }
        let which = match self.owner {
            Some(SourceOwner::LoggedModel(_)) => "model_id",
            _ => "run_id",
        };
        if self.local {
            return Err(Error::invalid(format!(
                "Invalid model version source: '{}'. To use a local path as a model version source, the {which} request parameter has to be specified and the local path has to be contained within the artifact directory of the run specified by the {which}.",
                self.source
            )));
        }
        Err(invalid_source(self.source, which))
    }
}

/// Whether a `file:` URI's authority names a host other than this one, as MLflow tells: its
/// host name is neither `.` nor starts with `localhost` or `127.0.0.1`.
fn names_another_host(authority: &str) -> bool {
    let host = authority.rsplit('@').next().unwrap_or_default();
    let host = host.split(':').next().unwrap_or_default();
    !(host.is_empty()
        || host == "."
        || host.starts_with("localhost")
        || host.starts_with("127.0.0.1"))
}

/// The absolute file a local location names, `.` and `..` resolved; `None` for anything else
/// (a relative path, a `file:` URI of another host, another scheme).
fn local_file(location: &str) -> Option<PathBuf> {
    let Ok(Location::Local(path)) = Location::parse(location) else {
        return None;
    };
    if !path.is_absolute() {
        return None;
    }
    let mut resolved = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    Some(resolved)
}

fn invalid_source(source: &str, id_name: &str) -> Error {
    Error::invalid(format!(
        "Invalid model version source: '{source}'. The {id_name} request parameter must identify the resource that contains the source."
    ))
}

/// Checks a new model version's source as MLflow does, so a client cannot register files it
/// could not otherwise read: relative references are refused, and run or model artifacts must
/// belong to the run or logged model named in the request. `Ok(None)` accepts the source;
/// `Ok(Some(rule))` accepts it only inside its owner's artifacts.
pub fn check_model_version_source<'a>(
    source: &'a str,
    run_id: Option<&'a str>,
    model_id: Option<&'a str>,
) -> Result<Option<SourceRule<'a>>> {
    let parts = UriParts::split(source);
    if parts.is_local() {
        if parts.scheme == "file" && names_another_host(&parts.authority) {
            return Err(Error::invalid(format!(
                "{source} is not a valid remote uri. For remote access on windows, please \
                 consider using a different scheme such as SMB (e.g. smb://<hostname>/<path>)."
            )));
        }
        let owner = match (model_id, run_id) {
            (Some(model), _) => Some(SourceOwner::LoggedModel(model)),
            (None, Some(run)) => Some(SourceOwner::Run(run)),
            (None, None) => None,
        };
        return Ok(Some(SourceRule {
            source,
            owner,
            local: true,
        }));
    }
    check_relative_references(source)?;
    let contained = |owner| {
        Ok(Some(SourceRule {
            source,
            owner,
            local: false,
        }))
    };
    if let Some(model_id) = model_id {
        if parts.scheme == "models" {
            if !parts.authority.is_empty() {
                return Err(invalid_source(source, "model_id"));
            }
            if let Some(source_model) = logged_model_source(source) {
                return if source_model == model_id {
                    Ok(None)
                } else {
                    Err(invalid_source(source, "model_id"))
                };
            }
        }
        if parts.scheme == "runs" {
            return Err(invalid_source(source, "model_id"));
        }
        if parts.is_proxied() {
            return contained(Some(SourceOwner::LoggedModel(model_id)));
        }
        return Ok(None);
    }
    match parts.scheme.as_str() {
        "runs" => {
            let names_the_run = match Location::parse(source) {
                Ok(Location::Run {
                    run_id: source_run, ..
                }) => run_id == Some(source_run.as_str()),
                _ => false,
            };
            if parts.authority.is_empty() && names_the_run {
                Ok(None)
            } else {
                Err(invalid_source(source, "run_id"))
            }
        }
        "models" if !parts.authority.is_empty() || logged_model_source(source).is_some() => {
            Err(invalid_source(source, "model_id"))
        }
        _ if parts.is_proxied() => contained(run_id.map(SourceOwner::Run)),
        _ => Ok(None),
    }
}

/// Refuses `.` and `..` segments and NUL in a source's path, however deeply encoded.
fn check_relative_references(source: &str) -> Result<()> {
    let decoded = crate::location::fully_unquote(source);
    let path = match decoded.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or(""),
        None => decoded
            .split_once(':')
            .map_or(decoded.as_str(), |(_, rest)| rest),
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let relative =
        path.contains('\0') || path.split(['/', '\\']).any(|seg| seg == ".." || seg == ".");
    if relative {
        return Err(Error::invalid(format!(
            "Invalid model version source: '{source}'. If supplying a source as an http, https, local file path, ftp, objectstore, or mlflow-artifacts uri, an absolute path must be provided without relative path references present. Please provide an absolute path."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_versions_are_told_by_their_tag_and_need_a_placeholder_source() {
        use crate::entities::KeyValue;
        let tag = |value: &str| KeyValue::new(IS_PROMPT_TAG, value);
        assert!(is_prompt_version(&[tag("true")]));
        assert!(is_prompt_version(&[tag("false"), tag("TRUE")]));
        assert!(!is_prompt_version(&[tag("true"), tag("false")]));
        assert!(!is_prompt_version(&[]));
        assert!(check_prompt_source("dummy-source").is_ok());
        assert!(check_prompt_source("prompt-template").is_ok());
        assert!(check_prompt_source("s3://bucket/x").is_err());
    }

    #[test]
    fn the_model_versions_tag_grows_as_mlflow_writes_it() {
        let first = model_versions_tag(None, "model", 1);
        assert_eq!(first, r#"[{"name": "model", "version": 1}]"#);
        let second = model_versions_tag(Some(&first), "model", 2);
        assert_eq!(
            second,
            r#"[{"name": "model", "version": 1}, {"name": "model", "version": 2}]"#
        );
        assert_eq!(model_versions_tag(Some(&second), "model", 2), second);
        assert_eq!(
            model_versions_tag(Some("not json"), "mödel😀", 3),
            r#"[{"name": "m\u00f6del\ud83d\ude00", "version": 3}]"#
        );
    }

    #[test]
    fn reserved_and_malformed_aliases_are_refused() {
        for bad in ["latest", "LATEST", "v1", "V22", "", "a b", "a/b"] {
            assert!(validate_alias(bad).is_err(), "{bad:?}");
        }
        for good in ["champion", "v", "vx1", "prod-2024_a"] {
            validate_alias(good).unwrap();
        }
    }

    #[test]
    fn relative_references_are_refused_in_any_encoding() {
        assert!(check_relative_references("s3://b/models/../../etc").is_err());
        assert!(check_relative_references("mlflow-artifacts:/1/..%2f..%2fx").is_err());
        assert!(check_relative_references("mlflow-artifacts:/1/%252e%252e/x").is_err());
        assert!(check_relative_references("s3://b/models/m").is_ok());
    }

    #[test]
    fn sources_are_checked_against_their_owner() {
        let run = Some("abc");
        // Local sources must lie in the run's local artifact directory.
        let rule = check_model_version_source("/srv/a/1/abc/artifacts/m", run, None)
            .unwrap()
            .unwrap();
        assert_eq!(rule.owner(), Some(SourceOwner::Run("abc")));
        assert!(rule.check(Some("/srv/a/1/abc/artifacts")).is_ok());
        assert!(rule.check(Some("/srv/a/1/other")).is_err());
        // A path and a file URI name the same files, compared once `.` and `..` are resolved.
        assert!(rule.check(Some("file:///srv/a/1/abc/artifacts")).is_ok());
        let check = |source: &str, root: &str| {
            check_model_version_source(source, run, None)
                .unwrap()
                .unwrap()
                .check(Some(root))
        };
        let root = "file:///srv/a/1/abc/artifacts";
        assert!(check("file:///srv/a/1/abc/artifacts/.", root).is_ok());
        assert!(check("file:///srv/a/1/abc/artifacts/model/..", root).is_ok());
        assert!(check("file:///srv/a/1/abc/artifacts/../../other", root).is_err());
        let err = check_model_version_source("file://10.0.0.1/srv/a/1/abc", run, None).unwrap_err();
        assert!(
            err.message
                .starts_with("file://10.0.0.1/srv/a/1/abc is not a valid remote uri."),
            "{err}"
        );
        assert!(check("file://localhost/srv/a/1/abc/artifacts/m", root).is_ok());
        assert!(check("relative/artifacts", root).is_err());
        assert!(
            rule.check(None)
                .unwrap_err()
                .message
                .contains("To use a local path")
        );
        // runs:/ sources must name the request's run.
        assert!(
            check_model_version_source("runs:/abc/model", run, None)
                .unwrap()
                .is_none()
        );
        assert!(check_model_version_source("runs:/other/model", run, None).is_err());
        // Proxied artifacts must lie in the owner's artifacts.
        let rule = check_model_version_source("mlflow-artifacts:/1/abc/artifacts/m", run, None)
            .unwrap()
            .unwrap();
        assert!(
            rule.check(Some("mlflow-artifacts:/1/abc/artifacts"))
                .is_ok()
        );
        let err = rule.check(Some("mlflow-artifacts:/1/zzz")).unwrap_err();
        assert!(
            err.message.contains("The run_id request parameter"),
            "{err}"
        );
        let rule = check_model_version_source("mlflow-artifacts:/1/m", None, Some("m-1"))
            .unwrap()
            .unwrap();
        assert_eq!(rule.owner(), Some(SourceOwner::LoggedModel("m-1")));
        // Logged model sources must name the request's model.
        assert!(
            check_model_version_source("models:/m-1", None, Some("m-1"))
                .unwrap()
                .is_none()
        );
        assert!(check_model_version_source("models:/m-2", None, Some("m-1")).is_err());
        assert!(check_model_version_source("models:/m-2", run, None).is_err());
        // Anything else is the client's business.
        assert!(
            check_model_version_source("s3://b/k", run, None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn versions_must_be_integers() {
        assert_eq!(parse_version("3").unwrap(), 3);
        assert!(
            parse_version("latest")
                .unwrap_err()
                .message
                .contains("must be an integer")
        );
    }

    #[test]
    fn model_sources_name_a_logged_model_or_a_version() {
        assert_eq!(logged_model_source("models:/m-12"), Some("m-12"));
        assert_eq!(logged_model_source("models:/m-12/x"), None);
        assert_eq!(
            registered_version_source("models:/wine/3"),
            Some(("wine", "3"))
        );
        assert_eq!(registered_version_source("runs:/a/b"), None);
    }
}
