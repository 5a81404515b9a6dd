//! Experiments: creation with the artifact location derived from the server's root, lookup,
//! soft deletion (which carries the experiment's runs with it), tags and search.

use crate::Dialect;
use crate::db::{
    Bind, PageWindow, Sql, SqlStore, append_to_uri_path, db_err, get_i64, get_str, now_ms,
    search_page_size,
};
use crate::search::{self, SearchSpec};
use mlox_core::entities::{Experiment, KeyValue, LifecycleStage, Page, ViewType};
use mlox_core::ids::parse_experiment_id;
use mlox_core::search::SearchEntity;
use mlox_core::{Code, Error, Result, validation};
use sqlx::any::AnyRow;
use std::collections::HashMap;

pub const DEFAULT_EXPERIMENT_ID: i64 = 0;
pub const MAX_EXPERIMENTS_PER_PAGE: i64 = 50_000;

const EXPERIMENT_COLUMNS: &str = "e.experiment_id, e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time";

fn experiment_from_row(row: &AnyRow) -> Experiment {
    Experiment {
        experiment_id: get_i64(row, "experiment_id").to_string(),
        name: get_str(row, "name"),
        artifact_location: get_str(row, "artifact_location"),
        lifecycle_stage: get_str(row, "lifecycle_stage"),
        creation_time: get_i64(row, "creation_time"),
        last_update_time: get_i64(row, "last_update_time"),
        tags: Vec::new(),
    }
}

impl SqlStore {
    pub(crate) async fn ensure_default_experiment(&self) -> Result<()> {
        let now = now_ms();
        let mut sql = self.sql(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (",
        );
        sql.bind_i64(DEFAULT_EXPERIMENT_ID)
            .push(", ")
            .bind_str("Default")
            .push(", ")
            .bind_str(append_to_uri_path(&self.artifact_root, "0"))
            .push(", 'active', ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(") ON CONFLICT DO NOTHING");
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[KeyValue],
    ) -> Result<String> {
        validation::validate_experiment_name(name)?;
        for tag in tags {
            validation::validate_experiment_tag(tag)?;
        }
        if let Ok(existing) = self.get_experiment_by_name(name).await {
            return Err(Error::already_exists(
                if existing.lifecycle_stage == "deleted" {
                    format!(
                        "Experiment '{name}' already exists in deleted state. You can restore the \
                     experiment, or permanently delete the experiment to create a new one."
                    )
                } else {
                    format!("Experiment(name={name}) already exists.")
                },
            ));
        }
        let now = now_ms();
        // Ids are the next integer; a concurrent creator on another replica makes the insert
        // collide on the key, and we simply take the next one.
        for _ in 0..16 {
            let mut tx = self.write.begin().await.map_err(db_err)?;
            let row =
                sqlx::query("SELECT COALESCE(MAX(experiment_id), 0) + 1 AS next FROM experiments")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
            let id = get_i64(&row, "next");
            let location = match artifact_location.filter(|l| !l.is_empty()) {
                Some(l) => l.to_string(),
                None => append_to_uri_path(&self.artifact_root, &id.to_string()),
            };
            let mut sql = self.sql(
                "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES (",
            );
            sql.bind_i64(id)
                .push(", ")
                .bind_str(name)
                .push(", ")
                .bind_str(location)
                .push(", 'active', ")
                .bind_i64(now)
                .push(", ")
                .bind_i64(now)
                .push(")");
            match sql.query().execute(&mut *tx).await.map_err(db_err) {
                Ok(_) => {}
                Err(e) if e.code == Code::ResourceAlreadyExists => {
                    drop(tx);
                    if self.get_experiment_by_name(name).await.is_ok() {
                        return Err(Error::already_exists(format!(
                            "Experiment(name={name}) already exists."
                        )));
                    }
                    continue;
                }
                Err(e) => return Err(e),
            }
            for tag in tags {
                upsert_experiment_tag(self.dialect, &mut tx, id, tag).await?;
            }
            tx.commit().await.map_err(db_err)?;
            return Ok(id.to_string());
        }
        Err(Error::internal(
            "could not allocate an experiment id under contention",
        ))
    }

    async fn experiment_tags(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<KeyValue>>> {
        let mut out: HashMap<i64, Vec<KeyValue>> = HashMap::new();
        let rows = self
            .load_children(
                "SELECT experiment_id, key, value FROM experiment_tags WHERE experiment_id IN ",
                ids,
                " ORDER BY key",
            )
            .await?;
        for row in rows {
            out.entry(get_i64(&row, "experiment_id"))
                .or_default()
                .push(KeyValue::new(get_str(&row, "key"), get_str(&row, "value")));
        }
        Ok(out)
    }

    async fn with_tags(&self, mut experiments: Vec<Experiment>) -> Result<Vec<Experiment>> {
        let ids: Vec<i64> = experiments
            .iter()
            .filter_map(|e| e.experiment_id.parse().ok())
            .collect();
        let mut tags = self.experiment_tags(&ids).await?;
        for e in &mut experiments {
            if let Some(t) = e
                .experiment_id
                .parse::<i64>()
                .ok()
                .and_then(|id| tags.remove(&id))
            {
                e.tags = t;
            }
        }
        Ok(experiments)
    }

    pub async fn get_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let id = parse_experiment_id(experiment_id)?;
        let mut sql = self.sql(&format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments e WHERE e.experiment_id = "
        ));
        sql.bind_i64(id);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Err(Error::not_found(format!(
                "No Experiment with id={experiment_id} exists"
            )));
        };
        Ok(self
            .with_tags(vec![experiment_from_row(&row)])
            .await?
            .remove(0))
    }

    pub async fn get_experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let mut sql = self.sql(&format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments e WHERE e.name = "
        ));
        sql.bind_str(name);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?;
        let Some(row) = row else {
            return Err(Error::not_found(format!(
                "Could not find experiment with name '{name}'"
            )));
        };
        Ok(self
            .with_tags(vec![experiment_from_row(&row)])
            .await?
            .remove(0))
    }

    pub async fn active_experiment(&self, experiment_id: &str) -> Result<Experiment> {
        let exp = self.get_experiment(experiment_id).await?;
        if exp.lifecycle_stage != LifecycleStage::Active.as_str() {
            return Err(Error::invalid(format!(
                "The experiment {} must be in the 'active' state. Current state is {}.",
                exp.experiment_id, exp.lifecycle_stage
            )));
        }
        Ok(exp)
    }

    async fn set_experiment_stage(&self, experiment_id: &str, stage: LifecycleStage) -> Result<()> {
        let exp = self.get_experiment(experiment_id).await?;
        let id = parse_experiment_id(experiment_id)?;
        if stage == LifecycleStage::Deleted && id == DEFAULT_EXPERIMENT_ID {
            return Err(Error::invalid(
                "Cannot delete the default experiment '0'. This is an internally reserved experiment.",
            ));
        }
        // As in MLflow, deleting looks only among active experiments and restoring only among
        // deleted ones, so a second delete (or restore) finds nothing.
        if exp.lifecycle_stage == stage.as_str() {
            return Err(Error::not_found(format!(
                "No Experiment with id={id} exists"
            )));
        }
        let now = now_ms();
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql("UPDATE experiments SET lifecycle_stage = ");
        sql.bind_str(stage.as_str())
            .push(", last_update_time = ")
            .bind_i64(now);
        sql.push(" WHERE experiment_id = ").bind_i64(id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        // Runs follow their experiment, as in MLflow.
        let mut sql = self.sql("UPDATE runs SET lifecycle_stage = ");
        sql.bind_str(stage.as_str()).push(", deleted_time = ");
        sql.bind(Bind::OptI64(
            (stage == LifecycleStage::Deleted).then_some(now),
        ));
        sql.push(" WHERE experiment_id = ").bind_i64(id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    pub async fn delete_experiment(&self, experiment_id: &str) -> Result<()> {
        self.set_experiment_stage(experiment_id, LifecycleStage::Deleted)
            .await
    }

    pub async fn restore_experiment(&self, experiment_id: &str) -> Result<()> {
        self.set_experiment_stage(experiment_id, LifecycleStage::Active)
            .await
    }

    pub async fn rename_experiment(&self, experiment_id: &str, new_name: &str) -> Result<()> {
        validation::validate_experiment_name(new_name)?;
        let exp = self.get_experiment(experiment_id).await?;
        if exp.lifecycle_stage != "active" {
            return Err(Error::invalid("Cannot rename a non-active experiment."));
        }
        if let Ok(other) = self.get_experiment_by_name(new_name).await
            && other.experiment_id != exp.experiment_id
        {
            return Err(Error::already_exists(format!(
                "Experiment(name={new_name}) already exists."
            )));
        }
        let mut sql = self.sql("UPDATE experiments SET name = ");
        sql.bind_str(new_name)
            .push(", last_update_time = ")
            .bind_i64(now_ms());
        sql.push(" WHERE experiment_id = ")
            .bind_i64(parse_experiment_id(experiment_id)?);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    pub async fn set_experiment_tag(&self, experiment_id: &str, tag: &KeyValue) -> Result<()> {
        validation::validate_experiment_tag(tag)?;
        let exp = self.active_experiment(experiment_id).await?;
        let id = parse_experiment_id(&exp.experiment_id)?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        upsert_experiment_tag(self.dialect, &mut tx, id, tag).await?;
        tx.commit().await.map_err(db_err)
    }

    pub async fn delete_experiment_tag(&self, experiment_id: &str, key: &str) -> Result<()> {
        let exp = self.active_experiment(experiment_id).await?;
        let mut sql = self.sql("DELETE FROM experiment_tags WHERE experiment_id = ");
        sql.bind_i64(parse_experiment_id(&exp.experiment_id)?)
            .push(" AND key = ")
            .bind_str(key);
        let done = sql.query().execute(&self.write).await.map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found(format!(
                "No tag with name: {key} in experiment with id {experiment_id}"
            )));
        }
        Ok(())
    }

    pub async fn search_experiments(
        &self,
        view: ViewType,
        filter: Option<&str>,
        order_by: &[String],
        max_results: Option<i64>,
        token: Option<&str>,
    ) -> Result<Page<Experiment>> {
        let max_results = search_page_size(max_results, 1000, MAX_EXPERIMENTS_PER_PAGE)?;
        let window = PageWindow::new(token, max_results)?;
        let mut sql = self.sql(&format!(
            "SELECT {EXPERIMENT_COLUMNS} FROM experiments e WHERE e.lifecycle_stage IN "
        ));
        sql.bind_list(view.stages().iter().map(|s| Bind::Str((*s).to_string())));
        let spec = SearchSpec::for_entity(SearchEntity::Experiments, self.dialect);
        search::push_filter(&spec, &mut sql, filter)?;
        search::push_order_by(&spec, &mut sql, order_by)?;
        window.push_limit(&mut sql);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let items: Vec<Experiment> = rows.iter().map(experiment_from_row).collect();
        let (items, next_page_token) = window.finish(items);
        Ok(Page {
            items: self.with_tags(items).await?,
            next_page_token,
        })
    }
}

async fn upsert_experiment_tag(
    dialect: Dialect,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    experiment_id: i64,
    tag: &KeyValue,
) -> Result<()> {
    let mut sql = Sql::for_dialect(
        dialect,
        "INSERT INTO experiment_tags (experiment_id, key, value) VALUES (",
    );
    sql.bind_i64(experiment_id)
        .push(", ")
        .bind_str(&tag.key)
        .push(", ")
        .bind_str(&tag.value);
    sql.push(") ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value");
    sql.query().execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}
