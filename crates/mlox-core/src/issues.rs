//! MLflow 3's issues: named quality or operational problems found in an experiment's traces
//! (linked to traces by issue assessments whose name is the issue id), with a status, an
//! optional severity, root causes and categories. This module holds their vocabulary, the
//! checks MLflow applies to them; the filter grammar of their search is
//! [`crate::search::issues`].

use crate::{Error, Result};
use serde::Serialize;

pub const STATUSES: [&str; 3] = ["pending", "rejected", "resolved"];
/// Severities from the lowest to the highest; searches list the most severe first.
pub const SEVERITIES: [&str; 4] = ["not_an_issue", "low", "medium", "high"];
/// Issues per search page when the request names no `max_results`.
pub const DEFAULT_PAGE_SIZE: i64 = 100;
/// Most issues one search page may ask for.
pub const MAX_PAGE_SIZE: i64 = 50_000;

/// An issue as MLflow's API carries it; absent optional fields are left out.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Issue {
    pub issue_id: String,
    pub experiment_id: String,
    pub name: String,
    pub description: String,
    pub status: String,
    pub created_timestamp: i64,
    pub last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub root_causes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// How many traces carry an assessment naming this issue; only when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_count: Option<i64>,
}

/// A new issue id (`iss-` and 32 hex digits), as MLflow makes them.
pub fn new_issue_id() -> String {
    format!("iss-{}", uuid::Uuid::new_v4().simple())
}

/// `status` if it is one of MLflow's issue statuses.
pub fn check_status(status: &str) -> Result<()> {
    if STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid issue status '{status}'. Valid statuses: {}",
            STATUSES.join(", ")
        )))
    }
}

/// `severity` if it is one of MLflow's issue severities.
pub fn check_severity(severity: &str) -> Result<()> {
    if SEVERITIES.contains(&severity) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid issue severity '{severity}'. Valid severities: {}",
            SEVERITIES.join(", ")
        )))
    }
}

/// The rank of a severity, higher for more severe; -1 when there is none.
pub fn severity_rank(severity: Option<&str>) -> i64 {
    severity
        .and_then(|s| SEVERITIES.iter().position(|known| *known == s))
        .map_or(-1, |rank| rank as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_severities_are_mlflows() {
        assert!(check_status("pending").is_ok());
        assert!(check_status("open").is_err());
        assert!(check_severity("high").is_ok());
        assert!(check_severity("critical").is_err());
        assert!(severity_rank(Some("high")) > severity_rank(Some("low")));
        assert_eq!(severity_rank(None), -1);
        assert!(new_issue_id().starts_with("iss-"));
        assert_eq!(new_issue_id().len(), 36);
    }
}
