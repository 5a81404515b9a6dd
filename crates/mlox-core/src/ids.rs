//! Identifier formats: run ids are 32 lowercase hex digits, logged-model ids `m-` + 32 hex,
//! trace ids `tr-` + 32 hex, as MLflow generates them, so URIs copied between MLflow and mlox
//! keep their shape.

use crate::{Error, Result};

pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub fn new_logged_model_id() -> String {
    format!("m-{}", uuid::Uuid::new_v4().simple())
}

pub fn new_trace_id() -> String {
    format!("tr-{}", uuid::Uuid::new_v4().simple())
}

pub fn new_assessment_id() -> String {
    format!("a-{}", uuid::Uuid::new_v4().simple())
}

/// Run ids arrive from clients; MLflow accepts an alphanumeric start then word chars or dashes,
/// up to 256 characters.
pub fn validate_run_id(run_id: &str) -> Result<()> {
    let mut chars = run_id.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            run_id.len() <= 256 && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid value {} for parameter 'run_id' supplied.",
            serde_json::Value::String(run_id.to_string())
        )))
    }
}

/// Experiment ids are decimal integers in storage; anything else is refused the way MLflow does.
pub fn parse_experiment_id(id: &str) -> Result<i64> {
    id.trim().parse::<i64>().map_err(|_| {
        Error::invalid(format!(
            "Invalid experiment ID '{id}'. Experiment ID must be a valid integer."
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_mlflow_shapes() {
        let run = new_run_id();
        assert_eq!(run.len(), 32);
        assert!(
            run.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert!(new_logged_model_id().starts_with("m-"));
        assert_eq!(new_logged_model_id().len(), 34);
        assert!(new_trace_id().starts_with("tr-"));
        validate_run_id(&run).unwrap();
    }

    #[test]
    fn run_ids_with_path_characters_are_refused() {
        for bad in ["", "../x", "a/b", "-abc", "a b", &"a".repeat(300)] {
            assert!(validate_run_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn experiment_ids_must_be_integers() {
        assert_eq!(parse_experiment_id("12").unwrap(), 12);
        let err = parse_experiment_id("abc").unwrap_err();
        assert_eq!(err.code, crate::Code::InvalidParameterValue);
        assert!(err.message.contains("must be a valid integer"));
    }
}
