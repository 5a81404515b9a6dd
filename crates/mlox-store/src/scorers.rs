//! Scorers of an experiment and their versions (MLflow 3's `/scorers` API).

use crate::db::{Dialect, SqlStore, db_err, get_i64, get_str, now_ms};
use mlox_core::gateway::{GATEWAY_MODEL_PREFIX, scorer_gateway_ref, with_scorer_gateway_ref};
use mlox_core::ids::parse_experiment_id;
use mlox_core::scorers::{ScorerVersion, check_name, check_serialized};
use mlox_core::{Error, Result};
use sqlx::any::AnyRow;

const VERSION_COLUMNS: &str = "s.experiment_id, s.scorer_name, s.scorer_id, v.scorer_version, \
     v.serialized_scorer, v.creation_time";

fn version_of(row: &AnyRow) -> ScorerVersion {
    ScorerVersion {
        experiment_id: get_i64(row, "experiment_id"),
        scorer_name: get_str(row, "scorer_name"),
        scorer_version: get_i64(row, "scorer_version"),
        serialized_scorer: get_str(row, "serialized_scorer"),
        creation_time: get_i64(row, "creation_time"),
        scorer_id: get_str(row, "scorer_id"),
    }
}

fn scorer_not_found(name: &str, experiment_id: &str) -> Error {
    Error::not_found(format!(
        "Scorer with name '{name}' not found for experiment {experiment_id}."
    ))
}

impl SqlStore {
    /// Registers the next version of scorer `name` in an experiment (version 1 for a new name).
    pub async fn register_scorer(
        &self,
        experiment_id: &str,
        name: &str,
        serialized: &str,
    ) -> Result<ScorerVersion> {
        check_name(name)?;
        check_serialized(serialized)?;
        let experiment = self.active_experiment(experiment_id).await?;
        // A judge served by the gateway is stored by endpoint id, so renaming the endpoint
        // keeps the scorer; it is shown by name.
        let parsed: Option<serde_json::Value> = serde_json::from_str(serialized).ok();
        let endpoint = match parsed.as_ref().and_then(scorer_gateway_ref) {
            Some(endpoint_name) => Some(self.gateway_endpoint_id(&endpoint_name).await?),
            None => None,
        };
        let stored = match (&parsed, &endpoint) {
            (Some(parsed), Some(endpoint_id)) => {
                with_scorer_gateway_ref(parsed, endpoint_id).to_string()
            }
            _ => serialized.to_string(),
        };
        let experiment_number = parse_experiment_id(&experiment.experiment_id)?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql =
            self.sql("INSERT INTO scorers (scorer_id, experiment_id, scorer_name) VALUES (");
        sql.bind_str(uuid::Uuid::new_v4().to_string())
            .push(", ")
            .bind_i64(experiment_number)
            .push(", ")
            .bind_str(name)
            .push(") ON CONFLICT (experiment_id, scorer_name) DO NOTHING");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        // Concurrent registrations of one name take turns for the next version number.
        let mut sql = self.sql("SELECT scorer_id FROM scorers WHERE experiment_id = ");
        sql.bind_i64(experiment_number)
            .push(" AND scorer_name = ")
            .bind_str(name);
        if self.dialect == Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        let row = sql.query().fetch_one(&mut *tx).await.map_err(db_err)?;
        let scorer_id = get_str(&row, "scorer_id");
        let mut sql = self.sql(
            "SELECT COALESCE(MAX(scorer_version), 0) AS latest FROM scorer_versions \
             WHERE scorer_id = ",
        );
        sql.bind_str(&scorer_id);
        let latest = get_i64(
            &sql.query().fetch_one(&mut *tx).await.map_err(db_err)?,
            "latest",
        );
        let version = ScorerVersion {
            experiment_id: experiment_number,
            scorer_name: name.to_string(),
            scorer_version: latest + 1,
            serialized_scorer: stored,
            creation_time: now_ms(),
            scorer_id,
        };
        let mut sql = self.sql(
            "INSERT INTO scorer_versions (scorer_id, scorer_version, serialized_scorer, \
             creation_time) VALUES (",
        );
        sql.bind_str(&version.scorer_id)
            .push(", ")
            .bind_i64(version.scorer_version)
            .push(", ")
            .bind_str(&version.serialized_scorer)
            .push(", ")
            .bind_i64(version.creation_time)
            .push(")");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        if let Some(endpoint_id) = &endpoint {
            self.bind_scorer(endpoint_id, &version.scorer_id, name)
                .await?;
        }
        Ok(ScorerVersion {
            serialized_scorer: serialized.to_string(),
            ..version
        })
    }

    /// Scorers as they were registered: gateway endpoints named, not numbered.
    async fn with_endpoint_names(
        &self,
        mut versions: Vec<ScorerVersion>,
    ) -> Result<Vec<ScorerVersion>> {
        if !versions
            .iter()
            .any(|v| v.serialized_scorer.contains(GATEWAY_MODEL_PREFIX))
        {
            return Ok(versions);
        }
        let names = self.gateway_endpoint_names().await?;
        for version in &mut versions {
            let Ok(parsed) = serde_json::from_str::<serde_json::Value>(&version.serialized_scorer)
            else {
                continue;
            };
            if let Some(name) = scorer_gateway_ref(&parsed).and_then(|id| names.get(&id)) {
                version.serialized_scorer = with_scorer_gateway_ref(&parsed, name).to_string();
            }
        }
        Ok(versions)
    }

    /// The latest version of every scorer of an experiment, by name.
    pub async fn list_scorers(&self, experiment_id: &str) -> Result<Vec<ScorerVersion>> {
        let experiment = self.get_experiment(experiment_id).await?;
        let mut sql = self.sql(&format!(
            "SELECT {VERSION_COLUMNS} FROM scorers s JOIN scorer_versions v \
             ON v.scorer_id = s.scorer_id WHERE s.experiment_id = "
        ));
        sql.bind_i64(parse_experiment_id(&experiment.experiment_id)?)
            .push(
                " AND v.scorer_version = (SELECT MAX(w.scorer_version) FROM scorer_versions w \
                 WHERE w.scorer_id = s.scorer_id) ORDER BY s.scorer_name",
            );
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        self.with_endpoint_names(rows.iter().map(version_of).collect())
            .await
    }

    /// Every version of one scorer, oldest first.
    pub async fn list_scorer_versions(
        &self,
        experiment_id: &str,
        name: &str,
    ) -> Result<Vec<ScorerVersion>> {
        let versions = self.scorer_versions(experiment_id, name, None).await?;
        if versions.is_empty() {
            return Err(scorer_not_found(name, experiment_id));
        }
        Ok(versions)
    }

    /// One version of a scorer, the latest when `version` is `None`.
    pub async fn get_scorer(
        &self,
        experiment_id: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<ScorerVersion> {
        self.scorer_versions(experiment_id, name, version)
            .await?
            .pop()
            .ok_or_else(|| match version {
                Some(version) => Error::not_found(format!(
                    "Scorer with name '{name}' and version {version} not found for experiment \
                     {experiment_id}."
                )),
                None => scorer_not_found(name, experiment_id),
            })
    }

    /// Deletes one version of a scorer, or all of them (and the scorer) when `version` is
    /// `None`.
    pub async fn delete_scorer(
        &self,
        experiment_id: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<()> {
        let existing = self.get_scorer(experiment_id, name, version).await?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM scorer_versions WHERE scorer_id = ");
        sql.bind_str(&existing.scorer_id);
        if let Some(version) = version {
            sql.push(" AND scorer_version = ").bind_i64(version);
        }
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM scorers WHERE scorer_id = ");
        sql.bind_str(&existing.scorer_id).push(
            " AND NOT EXISTS (SELECT 1 FROM scorer_versions v WHERE v.scorer_id = scorers.scorer_id)",
        );
        let gone = sql
            .query()
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
            > 0;
        if gone {
            // What pointed at the scorer goes with it.
            for cleanup in [
                "DELETE FROM gateway_endpoint_bindings WHERE resource_type = 'scorer' AND resource_id = ",
                "DELETE FROM online_scoring_configs WHERE scorer_id = ",
            ] {
                let mut sql = self.sql(cleanup);
                sql.bind_str(&existing.scorer_id);
                sql.query().execute(&mut *tx).await.map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn scorer_versions(
        &self,
        experiment_id: &str,
        name: &str,
        version: Option<i64>,
    ) -> Result<Vec<ScorerVersion>> {
        let experiment = self.get_experiment(experiment_id).await?;
        let mut sql = self.sql(&format!(
            "SELECT {VERSION_COLUMNS} FROM scorers s JOIN scorer_versions v \
             ON v.scorer_id = s.scorer_id WHERE s.experiment_id = "
        ));
        sql.bind_i64(parse_experiment_id(&experiment.experiment_id)?)
            .push(" AND s.scorer_name = ")
            .bind_str(name);
        if let Some(version) = version {
            sql.push(" AND v.scorer_version = ").bind_i64(version);
        }
        sql.push(" ORDER BY v.scorer_version");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        self.with_endpoint_names(rows.iter().map(version_of).collect())
            .await
    }
}
