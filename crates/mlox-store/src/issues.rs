//! Issues of MLflow 3 (`/api/3.0/mlflow/issues`): one row each, root causes and categories as
//! JSON lists. A search lists the most severe first, then the newest; the traces an issue
//! touches are counted from the issue assessments that name it.

use crate::db::{
    Bind, PageWindow, SqlStore, db_err, get_i64, get_opt_str, get_str, now_ms, positive_page_size,
};
use mlox_core::ids::parse_experiment_id;
use mlox_core::issues::{
    DEFAULT_PAGE_SIZE, Issue, MAX_PAGE_SIZE, SEVERITIES, check_severity, check_status, new_issue_id,
};
use mlox_core::search::issues::parse_filter;
use mlox_core::{Error, Result};
use sqlx::any::AnyRow;

/// What a new issue says; the id and times are the store's.
pub struct NewIssue {
    pub experiment_id: String,
    pub name: String,
    pub description: String,
    pub status: Option<String>,
    pub severity: Option<String>,
    pub root_causes: Vec<String>,
    pub source_run_id: Option<String>,
    pub categories: Vec<String>,
    pub created_by: Option<String>,
}

/// The fields an update changes; `None` leaves a field as it is.
#[derive(Default)]
pub struct IssueUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub severity: Option<String>,
}

/// A page of an issue search.
pub struct IssueSearch<'a> {
    pub experiment_id: Option<&'a str>,
    pub filter: Option<&'a str>,
    pub max_results: Option<i64>,
    pub page_token: Option<&'a str>,
    pub include_trace_count: bool,
}

fn json_list(items: &[String]) -> Option<String> {
    (!items.is_empty()).then(|| serde_json::to_string(items).unwrap_or_default())
}

fn list_of(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn issue_of(row: &AnyRow, trace_count: Option<i64>) -> Issue {
    Issue {
        issue_id: get_str(row, "issue_id"),
        experiment_id: get_i64(row, "experiment_id").to_string(),
        name: get_str(row, "name"),
        description: get_str(row, "description"),
        status: get_str(row, "status"),
        created_timestamp: get_i64(row, "created_timestamp"),
        last_updated_timestamp: get_i64(row, "last_updated_timestamp"),
        severity: get_opt_str(row, "severity"),
        root_causes: list_of(get_opt_str(row, "root_causes")),
        source_run_id: get_opt_str(row, "source_run_id"),
        categories: list_of(get_opt_str(row, "categories")),
        created_by: get_opt_str(row, "created_by"),
        trace_count,
    }
}

const ISSUE_COLUMNS: &str = "i.issue_id, i.experiment_id, i.name, i.description, i.status, \
     i.severity, i.root_causes, i.source_run_id, i.categories, i.created_by, \
     i.created_timestamp, i.last_updated_timestamp";

impl SqlStore {
    pub async fn create_issue(&self, new: NewIssue) -> Result<Issue> {
        let status = new.status.unwrap_or_else(|| "pending".to_string());
        check_status(&status)?;
        if let Some(severity) = &new.severity {
            check_severity(severity)?;
        }
        let experiment = self.active_experiment(&new.experiment_id).await?;
        let issue_id = new_issue_id();
        let now = now_ms();
        let mut sql = self.sql(
            "INSERT INTO issues (issue_id, experiment_id, name, description, status, severity, \
             root_causes, source_run_id, categories, created_by, created_timestamp, \
             last_updated_timestamp) VALUES (",
        );
        sql.bind_str(&issue_id)
            .push(", ")
            .bind_i64(parse_experiment_id(&experiment.experiment_id)?)
            .push(", ")
            .bind_str(&new.name)
            .push(", ")
            .bind_str(&new.description)
            .push(", ")
            .bind_str(&status)
            .push(", ")
            .bind(Bind::OptStr(new.severity))
            .push(", ")
            .bind(Bind::OptStr(json_list(&new.root_causes)))
            .push(", ")
            .bind(Bind::OptStr(new.source_run_id.filter(|id| !id.is_empty())))
            .push(", ")
            .bind(Bind::OptStr(json_list(&new.categories)))
            .push(", ")
            .bind(Bind::OptStr(new.created_by.filter(|by| !by.is_empty())))
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(")");
        sql.query().execute(&self.write).await.map_err(db_err)?;
        self.get_issue(&issue_id).await
    }

    pub async fn get_issue(&self, issue_id: &str) -> Result<Issue> {
        let mut sql = self.sql(&format!(
            "SELECT {ISSUE_COLUMNS} FROM issues i WHERE i.issue_id = "
        ));
        sql.bind_str(issue_id);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Error::not_found(format!("Issue with ID '{issue_id}' not found")))?;
        Ok(issue_of(&row, None))
    }

    pub async fn update_issue(&self, issue_id: &str, update: IssueUpdate) -> Result<Issue> {
        if let Some(status) = &update.status {
            check_status(status)?;
        }
        if let Some(severity) = &update.severity {
            check_severity(severity)?;
        }
        self.get_issue(issue_id).await?;
        let mut sql = self.sql("UPDATE issues SET last_updated_timestamp = ");
        sql.bind_i64(now_ms());
        for (column, value) in [
            ("name", update.name),
            ("description", update.description),
            ("status", update.status),
            ("severity", update.severity),
        ] {
            if let Some(value) = value {
                sql.push(&format!(", {column} = ")).bind_str(value);
            }
        }
        sql.push(" WHERE issue_id = ").bind_str(issue_id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        self.get_issue(issue_id).await
    }

    /// One page of issues, most severe first, then newest.
    pub async fn search_issues(
        &self,
        search: IssueSearch<'_>,
    ) -> Result<(Vec<Issue>, Option<String>)> {
        let size = positive_page_size(search.max_results, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, false)?;
        let clauses = parse_filter(search.filter.unwrap_or(""))?;
        let window = PageWindow::new(search.page_token, size)?;
        let mut sql = self.sql(&format!("SELECT {ISSUE_COLUMNS}"));
        if search.include_trace_count {
            sql.push(
                ", (SELECT COUNT(DISTINCT a.trace_id) FROM assessments a \
                 WHERE a.kind = 'issue' AND a.name = i.issue_id) AS trace_count",
            );
        }
        sql.push(" FROM issues i WHERE 1 = 1");
        if let Some(experiment_id) = search.experiment_id.filter(|id| !id.is_empty()) {
            sql.push(" AND i.experiment_id = ")
                .bind_i64(parse_experiment_id(experiment_id)?);
        }
        for clause in &clauses {
            sql.push(&format!(
                " AND i.{} {} ",
                clause.field.column(),
                if clause.equal { "=" } else { "!=" }
            ))
            .bind_str(clause.value.clone());
        }
        sql.push(" ORDER BY CASE i.severity");
        for (rank, severity) in SEVERITIES.iter().enumerate() {
            sql.push(&format!(" WHEN '{severity}' THEN {rank}"));
        }
        sql.push(" ELSE -1 END DESC");
        if search.include_trace_count {
            sql.push(", trace_count DESC");
        }
        sql.push(", i.created_timestamp DESC, i.issue_id DESC");
        window.push_limit(&mut sql);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let (rows, next) = window.finish(rows);
        let issues = rows
            .iter()
            .map(|row| {
                let count = search
                    .include_trace_count
                    .then(|| get_i64(row, "trace_count"));
                issue_of(row, count)
            })
            .collect();
        Ok((issues, next))
    }
}
