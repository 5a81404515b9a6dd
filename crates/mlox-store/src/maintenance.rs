//! Care of a database outside of serving requests: recognising one that another program owns
//! (an MLflow database) before anything is written to it, leaving one complete file behind when
//! a server stops, and copying a live SQLite database into a backup file.

use mlox_core::{Error, Result};
use sqlx::{Connection, Row};

use crate::db::{Dialect, SqlStore, db_err, redact_uri, to_sqlx_url};

/// Tables of a database that mlox did not create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignSchema {
    /// MLflow's schema revision when the tables are MLflow's (its `alembic_version` table).
    pub mlflow_revision: Option<String>,
    /// A few of the tables found, for the message.
    pub tables: Vec<String>,
}

impl ForeignSchema {
    /// What to tell the person who pointed mlox at this database.
    pub fn refusal(&self, uri: &str) -> String {
        let uri = redact_uri(uri);
        match &self.mlflow_revision {
            Some(revision) => format!(
                "'{uri}' is an MLflow database (schema revision {revision}); mlox never writes to \
                 MLflow's tables. Take it over with\n\n    mlox import --from {uri} --to \
                 sqlite:///mlruns.db\n\n(or --to postgresql://…), then start mlox server on the \
                 new store; the MLflow database is only read."
            ),
            None => format!(
                "'{uri}' holds tables mlox did not create ({}); mlox writes only to an empty \
                 database or one it created. Point --backend-store-uri at another database.",
                self.tables.join(", ")
            ),
        }
    }
}

/// Looks at `uri` without changing it: `None` when it does not exist yet, is empty, or is
/// mlox's own; otherwise what is there. A SQLite file is opened read-only, so not even its
/// journal mode changes.
pub async fn foreign_schema(uri: &str) -> Result<Option<ForeignSchema>> {
    sqlx::any::install_default_drivers();
    let (dialect, url) = to_sqlx_url(uri)?;
    if url.contains(":memory:") {
        return Ok(None);
    }
    let url = match dialect {
        Dialect::Sqlite => {
            let Some(path) = sqlite_path(uri) else {
                return Ok(None);
            };
            if !std::path::Path::new(&path).is_file() {
                return Ok(None);
            }
            url.replace("mode=rwc", "mode=ro")
        }
        Dialect::Postgres => url,
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await.map_err(|e| {
        Error::invalid(format!(
            "cannot open backend store '{}': {e}",
            redact_uri(uri)
        ))
    })?;
    let listing = match dialect {
        Dialect::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name"
        }
        Dialect::Postgres => {
            // `sql_identifier` is not a type sqlx's Any driver reads; text is.
            "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY name"
        }
    };
    let tables: Vec<String> = sqlx::query(listing)
        .fetch_all(&mut conn)
        .await
        .map_err(db_err)?
        .iter()
        .map(|row| row.try_get::<String, _>("name").unwrap_or_default())
        .collect();
    if tables.is_empty() || tables.iter().any(|t| t == "mlox_schema") {
        let _ = conn.close().await;
        return Ok(None);
    }
    let mlflow_revision = if tables.iter().any(|t| t == "alembic_version") {
        sqlx::query("SELECT version_num FROM alembic_version")
            .fetch_optional(&mut conn)
            .await
            .ok()
            .flatten()
            .map(|row| row.try_get::<String, _>(0).unwrap_or_default())
            .or_else(|| Some("unknown".into()))
    } else {
        None
    };
    let _ = conn.close().await;
    Ok(Some(ForeignSchema {
        mlflow_revision,
        tables: tables.into_iter().take(8).collect(),
    }))
}

/// The file of a `sqlite:///path` URI.
fn sqlite_path(uri: &str) -> Option<String> {
    let path = uri.strip_prefix("sqlite:///")?;
    Some(if path.is_empty() { "mlruns.db" } else { path }.to_string())
}

/// What [`backup`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub bytes: u64,
}

/// Copies the SQLite database at `uri` into the new file `destination` with `VACUUM INTO`:
/// one consistent snapshot, safe while servers write, compacted. PostgreSQL has its own tool.
pub async fn backup(uri: &str, destination: &std::path::Path) -> Result<Backup> {
    sqlx::any::install_default_drivers();
    let (dialect, url) = to_sqlx_url(uri)?;
    if dialect == Dialect::Postgres {
        return Err(Error::invalid(format!(
            "back up a PostgreSQL store with PostgreSQL's own tool, which is safe while servers \
             run: pg_dump --format=custom --file {} '{}'",
            destination.display(),
            redact_uri(uri)
        )));
    }
    let source = sqlite_path(uri)
        .filter(|p| std::path::Path::new(p).is_file())
        .ok_or_else(|| Error::not_found(format!("no SQLite database at '{}'", redact_uri(uri))))?;
    if destination.exists() {
        return Err(Error::invalid(format!(
            "{} already exists; a backup never overwrites a file",
            destination.display()
        )));
    }
    let target = destination
        .to_str()
        .ok_or_else(|| Error::invalid(format!("{} is not a UTF-8 path", destination.display())))?;
    let mut conn = sqlx::AnyConnection::connect(&url.replace("mode=rwc", "mode=ro"))
        .await
        .map_err(|e| Error::invalid(format!("cannot open {source}: {e}")))?;
    sqlx::query("PRAGMA busy_timeout = 10000")
        .execute(&mut conn)
        .await
        .map_err(db_err)?;
    // VACUUM INTO takes its file name as an expression; quotes in it are doubled.
    let statement = format!("VACUUM INTO '{}'", target.replace('\'', "''"));
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut conn)
        .await
        .map_err(|e| Error::internal(format!("backup of {source} failed: {e}")))?;
    let _ = conn.close().await;
    let bytes = std::fs::metadata(destination).map(|m| m.len()).unwrap_or(0);
    Ok(Backup { bytes })
}

impl SqlStore {
    /// Leaves the database complete in its main file: on SQLite the write-ahead log is copied
    /// into the database and truncated, so a copy of the `.db` file alone holds every
    /// acknowledged write. Call once the server has stopped taking requests.
    pub async fn close(&self) -> Result<()> {
        if self.dialect() == Dialect::Sqlite {
            let result = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(self.writer_pool())
                .await
                .map_err(db_err)?;
            let busy: i64 = result.try_get(0).unwrap_or(0);
            if busy != 0 {
                tracing::warn!(
                    "the WAL could not be fully checkpointed (a reader was still open); the \
                     -wal file holds the rest"
                );
            }
        }
        self.close_pools().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    fn sqlite_uri(path: &std::path::Path) -> String {
        format!("sqlite:///{}", path.display())
    }

    async fn open(uri: &str) -> Result<SqlStore> {
        SqlStore::open(StoreOptions {
            uri: uri.to_string(),
            default_artifact_root: "mlflow-artifacts:".into(),
            max_connections: 2,
        })
        .await
    }

    #[tokio::test]
    async fn an_mlflow_database_is_recognised_and_left_untouched() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mlflow.db");
        let uri = sqlite_uri(&path);
        {
            let mut conn =
                sqlx::AnyConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                    .await
                    .unwrap();
            for statement in [
                "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)",
                "INSERT INTO alembic_version VALUES ('1b5f0d9ad7c1')",
                "CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name TEXT)",
            ] {
                sqlx::query(statement).execute(&mut conn).await.unwrap();
            }
            conn.close().await.unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let found = foreign_schema(&uri).await.unwrap().unwrap();
        assert_eq!(found.mlflow_revision.as_deref(), Some("1b5f0d9ad7c1"));
        let message = found.refusal(&uri);
        assert!(message.contains(&format!(
            "mlox import --from {uri} --to sqlite:///mlruns.db"
        )));
        let opened = open(&uri).await;
        let error = opened.err().unwrap();
        assert_eq!(error.code, mlox_core::Code::InvalidState);
        assert!(
            error.message.contains("is an MLflow database"),
            "{}",
            error.message
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the file was changed"
        );
        assert!(!dir.path().join("mlflow.db-wal").exists());
    }

    #[tokio::test]
    async fn other_foreign_tables_are_named() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let mut conn =
            sqlx::AnyConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                .await
                .unwrap();
        sqlx::query("CREATE TABLE invoices (id INTEGER)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let found = foreign_schema(&sqlite_uri(&path)).await.unwrap().unwrap();
        assert_eq!(found.mlflow_revision, None);
        assert!(found.refusal("sqlite:///app.db").contains("(invoices)"));
    }

    #[tokio::test]
    async fn new_empty_and_own_databases_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mlruns.db");
        assert_eq!(foreign_schema(&sqlite_uri(&path)).await.unwrap(), None);
        assert!(!path.exists(), "looking must not create the file");
        let store = open(&sqlite_uri(&path)).await.unwrap();
        store.close().await.unwrap();
        assert_eq!(foreign_schema(&sqlite_uri(&path)).await.unwrap(), None);
    }

    #[tokio::test]
    async fn close_leaves_everything_in_the_main_file_and_backup_copies_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mlruns.db");
        let uri = sqlite_uri(&path);
        let store = open(&uri).await.unwrap();
        let id = store.create_experiment("kept", None, &[]).await.unwrap();
        let copy = dir.path().join("backup.db");
        let written = backup(&uri, &copy).await.unwrap();
        assert!(written.bytes > 0);
        assert!(backup(&uri, &copy).await.is_err(), "never overwrites");
        store.close().await.unwrap();
        let wal = dir.path().join("mlruns.db-wal");
        assert!(
            !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
            "the WAL still holds pages"
        );
        // The main file alone, copied elsewhere, has the experiment; so does the backup.
        for file in [path.clone(), copy] {
            let alone = tempfile::tempdir().unwrap();
            let moved = alone.path().join("copy.db");
            std::fs::copy(&file, &moved).unwrap();
            let reopened = open(&sqlite_uri(&moved)).await.unwrap();
            assert_eq!(reopened.get_experiment(&id).await.unwrap().name, "kept");
        }
    }

    #[tokio::test]
    async fn postgres_backups_point_at_pg_dump() {
        let error = backup("postgresql://u@h/db", std::path::Path::new("x.dump"))
            .await
            .unwrap_err();
        assert!(error.message.contains("pg_dump"));
    }
}
