//! The MLflow database being read: its URL forms, the connection, and what its schema holds.
//! Columns are looked up rather than inferred from the alembic revision, so databases from
//! older MLflow releases (or revisions this build has never seen) are read by what they have.

use crate::ImportError;
use crate::revisions::KNOWN_REVISIONS;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Row};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Engine {
    Sqlite,
    Postgres,
}

/// Maps MLflow's SQLAlchemy URL forms onto sqlx's. SQLite sources are opened read-only: an
/// import must never change the database it takes over from.
pub(crate) fn sqlx_url(url: &str) -> Result<(Engine, String), ImportError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| ImportError::UnsupportedUrl(url.to_string()))?;
    // SQLAlchemy names the driver after a '+': postgresql+psycopg2, sqlite+pysqlite.
    let dialect = scheme.split('+').next().unwrap_or(scheme);
    match dialect {
        "sqlite" => {
            let path = rest
                .strip_prefix('/')
                .filter(|p| !p.is_empty() && *p != ":memory:")
                .ok_or_else(|| ImportError::UnsupportedUrl(url.to_string()))?;
            if !std::path::Path::new(path).is_file() {
                return Err(ImportError::SourceUnavailable {
                    url: url.to_string(),
                    message: format!("no such file: {path}"),
                });
            }
            let mut encoded = String::with_capacity(path.len());
            for c in path.chars() {
                match c {
                    '%' => encoded.push_str("%25"),
                    '?' => encoded.push_str("%3F"),
                    '#' => encoded.push_str("%23"),
                    ' ' => encoded.push_str("%20"),
                    c => encoded.push(c),
                }
            }
            Ok((Engine::Sqlite, format!("sqlite://{encoded}?mode=ro")))
        }
        "postgresql" | "postgres" => Ok((Engine::Postgres, format!("postgres://{rest}"))),
        _ => Err(ImportError::UnsupportedUrl(url.to_string())),
    }
}

/// An open MLflow database and the tables and columns it has.
pub(crate) struct Source {
    pub pool: AnyPool,
    pub engine: Engine,
    pub revision: String,
    columns: HashMap<String, HashSet<String>>,
}

impl Source {
    pub async fn open(url: &str) -> Result<Self, ImportError> {
        sqlx::any::install_default_drivers();
        let (engine, sqlx_url) = sqlx_url(url)?;
        let unavailable = |e: sqlx::Error| ImportError::SourceUnavailable {
            url: url.to_string(),
            message: e.to_string(),
        };
        // Reading a whole table is one long statement by design; sqlx's slow-statement
        // warning would fire on every large table.
        let connect = AnyConnectOptions::from_str(&sqlx_url)
            .map_err(unavailable)?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .connect_with(connect)
            .await
            .map_err(unavailable)?;
        let listing = match engine {
            Engine::Sqlite => {
                "SELECT m.name AS table_name, p.name AS column_name FROM sqlite_master m, \
                 pragma_table_info(m.name) p WHERE m.type = 'table'"
            }
            Engine::Postgres => {
                "SELECT CAST(table_name AS TEXT) AS table_name, CAST(column_name AS TEXT) AS column_name \
                 FROM information_schema.columns WHERE table_schema = current_schema()"
            }
        };
        let mut columns: HashMap<String, HashSet<String>> = HashMap::new();
        for row in sqlx::query(listing)
            .fetch_all(&pool)
            .await
            .map_err(unavailable)?
        {
            let table: String = row.try_get("table_name").map_err(unavailable)?;
            let column: String = row.try_get("column_name").map_err(unavailable)?;
            columns
                .entry(table.to_ascii_lowercase())
                .or_default()
                .insert(column.to_ascii_lowercase());
        }
        if !columns.contains_key("alembic_version") {
            return Err(ImportError::NotMlflow(url.to_string()));
        }
        let revision = sqlx::query("SELECT version_num FROM alembic_version")
            .fetch_optional(&pool)
            .await
            .map_err(|source| ImportError::Read {
                table: "alembic_version",
                source,
            })?
            .and_then(|row| row.try_get::<String, _>(0).ok())
            .unwrap_or_default();
        let source = Source {
            pool,
            engine,
            revision,
            columns,
        };
        source.check().await?;
        Ok(source)
    }

    async fn check(&self) -> Result<(), ImportError> {
        let missing: Vec<&str> = ["experiments", "runs"]
            .into_iter()
            .filter(|t| !self.has_table(t))
            .collect();
        if !missing.is_empty() {
            return Err(ImportError::MissingTables(missing.join(", ")));
        }
        if !KNOWN_REVISIONS.contains(&self.revision.as_str()) {
            tracing::warn!(
                revision = %self.revision,
                "the MLflow database is at a schema revision this mlox does not know (newer than \
                 MLflow 3.17.2?); importing the tables and columns it recognises"
            );
        }
        // mlox has one namespace: experiments or models of several MLflow workspaces could
        // collide by name, and ids of other workspaces would mix into one listing.
        let mut foreign = Vec::new();
        for table in ["experiments", "registered_models"] {
            if !self.has_column(table, "workspace") {
                continue;
            }
            let n = self
                .count(&format!(
                    "SELECT COUNT(*) FROM {table} WHERE workspace <> 'default'"
                ))
                .await?;
            if n > 0 {
                foreign.push(format!("{n} {table}"));
            }
        }
        if !foreign.is_empty() {
            return Err(ImportError::Workspaces(foreign.join(", ")));
        }
        Ok(())
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.columns.contains_key(table)
    }

    pub fn has_column(&self, table: &str, column: &str) -> bool {
        self.columns.get(table).is_some_and(|c| c.contains(column))
    }

    /// `column` when the table has it, else the SQL `fallback` (older MLflow schemas).
    pub fn column_or<'a>(&self, table: &str, column: &'a str, fallback: &'a str) -> &'a str {
        if self.has_column(table, column) {
            column
        } else {
            fallback
        }
    }

    /// Runs a `SELECT COUNT(*) …` statement built by this crate.
    pub async fn count(&self, sql: &str) -> Result<u64, ImportError> {
        let table = "row count";
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT CAST(({sql}) AS BIGINT)"
        )))
        .fetch_one(&self.pool)
        .await
        .map_err(|source| ImportError::Read { table, source })?;
        let n: i64 = row
            .try_get(0)
            .map_err(|source| ImportError::Read { table, source })?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlflow_url_forms_map_to_sqlx_urls() {
        let pg = |u: &str| sqlx_url(u).map(|(_, s)| s).map_err(|e| e.to_string());
        assert_eq!(
            pg("postgresql://postgres@127.0.0.1:5432/mlflow"),
            Ok("postgres://postgres@127.0.0.1:5432/mlflow".to_string())
        );
        assert_eq!(
            pg("postgresql+psycopg2://u:p@h/db?sslmode=require"),
            Ok("postgres://u:p@h/db?sslmode=require".to_string())
        );
        assert!(matches!(
            sqlx_url("mysql://h/db"),
            Err(ImportError::UnsupportedUrl(_))
        ));
        assert!(matches!(
            sqlx_url("sqlite:///definitely/not/here.db"),
            Err(ImportError::SourceUnavailable { .. })
        ));
    }

    #[test]
    fn sqlite_sources_open_read_only_with_escaped_paths() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("my mlflow#1.db");
        std::fs::write(&path, b"")?;
        let (engine, url) = sqlx_url(&format!("sqlite:///{}", path.display()))?;
        assert_eq!(engine, Engine::Sqlite);
        assert!(url.ends_with("my%20mlflow%231.db?mode=ro"), "{url}");
        Ok(())
    }
}
