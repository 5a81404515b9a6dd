//! Scorers registered with an experiment (MLflow 3's `/scorers` API): a name, versions counted
//! from 1, and each version's serialized scorer (JSON the client wrote). The server stores
//! scorers and never runs them; like MLflow's server it refuses custom `@scorer` code (a
//! `call_source` anywhere in the document), which a server that did run them would execute.

use crate::{Error, Result};
use serde::Serialize;
use serde_json::Value;

/// MLflow's refusal of custom scorer code.
pub const CUSTOM_SCORER_REFUSED: &str = "Custom scorer registration (using @scorer decorator) \
     is disabled by default outside of Databricks tracking environments due to security \
     concerns. Custom scorers require arbitrary code execution during deserialization.";

/// One version of a scorer as MLflow's API carries it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ScorerVersion {
    pub experiment_id: i64,
    pub scorer_name: String,
    pub scorer_version: i64,
    pub serialized_scorer: String,
    pub creation_time: i64,
    pub scorer_id: String,
}

/// A scorer name MLflow accepts: not empty or blank.
pub fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(
            "Scorer name cannot be empty or contain only whitespace.",
        ));
    }
    Ok(())
}

/// A serialized scorer MLflow's server accepts: JSON without custom code.
pub fn check_serialized(serialized: &str) -> Result<()> {
    let document: Value = serde_json::from_str(serialized)
        .map_err(|_| Error::invalid("serialized_scorer must be valid JSON"))?;
    if has_call_source(&document) {
        return Err(Error::invalid(CUSTOM_SCORER_REFUSED));
    }
    Ok(())
}

fn has_call_source(value: &Value) -> bool {
    match value {
        Value::Object(fields) => {
            fields.get("call_source").is_some_and(|v| !v.is_null())
                || fields.values().any(has_call_source)
        }
        Value::Array(items) => items.iter().any(has_call_source),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_scorers_are_json_without_custom_code() {
        assert!(check_serialized(r#"{"name": "s", "builtin_scorer_class": "Safety"}"#).is_ok());
        assert!(check_serialized(r#"{"name": "s", "call_source": null}"#).is_ok());
        for refused in [
            "not json",
            r#"{"call_source": "def f(): ..."}"#,
            r#"{"ensemble": {"scorers": [{"call_source": "x"}]}}"#,
        ] {
            assert_eq!(
                check_serialized(refused).unwrap_err().code,
                crate::Code::InvalidParameterValue,
                "{refused}"
            );
        }
    }

    #[test]
    fn blank_names_are_refused() {
        assert!(check_name("relevance").is_ok());
        assert!(check_name("  ").is_err());
    }
}
