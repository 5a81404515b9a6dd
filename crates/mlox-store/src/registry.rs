//! The model registry: registered models, their versions (numbered without gaps or reuse),
//! stages, aliases and tags. Every change a webhook can subscribe to is written to the outbox
//! in the same transaction, so delivery never misses a committed change.

use crate::Dialect;
use crate::db::{
    Bind, PageWindow, Sql, SqlStore, db_err, get_i64, get_opt_str, get_str, now_ms,
    search_page_size,
};
use crate::search::{self, SearchSpec};
use mlox_core::entities::{
    KeyValue, ModelRegistration, ModelVersion, Page, RegisteredModel, RegisteredModelAlias,
    canonical_stage,
};
use mlox_core::registry::{self, SourceOwner, parse_version, validate_alias, validate_model_name};
use mlox_core::search::SearchEntity;
use mlox_core::{Code, Error, Result, validation};
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use std::collections::{BTreeMap, HashMap};

pub const DELETED_STAGE: &str = "Deleted_Internal";
pub const MAX_REGISTERED_MODELS_PER_PAGE: i64 = 1000;
pub const DEFAULT_REGISTERED_MODELS_PER_PAGE: i64 = 100;
pub const MAX_MODEL_VERSIONS_PER_PAGE: i64 = 200_000;
pub const DEFAULT_MODEL_VERSIONS_PER_PAGE: i64 = 10_000;

/// What a new model version is made from.
#[derive(Clone, Debug, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub tags: Vec<KeyValue>,
    pub run_link: Option<String>,
    pub description: Option<String>,
    pub model_id: Option<String>,
}

const VERSION_COLUMNS: &str = "mv.name, mv.version, mv.creation_time, mv.last_updated_time, mv.description, mv.user_id, mv.current_stage, mv.source, mv.run_id, mv.run_link, mv.status, mv.status_message, mv.storage_location, mv.model_id";

fn version_from_row(row: &AnyRow) -> ModelVersion {
    ModelVersion {
        name: get_str(row, "name"),
        version: get_i64(row, "version").to_string(),
        creation_timestamp: get_i64(row, "creation_time"),
        last_updated_timestamp: get_i64(row, "last_updated_time"),
        user_id: get_opt_str(row, "user_id").filter(|s| !s.is_empty()),
        current_stage: get_str(row, "current_stage"),
        description: get_opt_str(row, "description").unwrap_or_default(),
        source: get_str(row, "source"),
        run_id: get_opt_str(row, "run_id").unwrap_or_default(),
        status: get_str(row, "status"),
        status_message: get_opt_str(row, "status_message").filter(|s| !s.is_empty()),
        tags: Vec::new(),
        run_link: get_opt_str(row, "run_link").unwrap_or_default(),
        aliases: Vec::new(),
        model_id: get_opt_str(row, "model_id").filter(|s| !s.is_empty()),
    }
}

fn model_not_found(name: &str) -> Error {
    Error::not_found(format!("Registered Model with name={name} not found"))
}

fn version_not_found(name: &str, version: &str) -> Error {
    Error::not_found(format!(
        "Model Version (name={name}, version={version}) not found"
    ))
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl SqlStore {
    /// Queues a registry event for every webhook subscribed to it.
    async fn emit(
        &self,
        tx: &mut Tx<'_>,
        entity: &str,
        action: &str,
        payload: Value,
    ) -> Result<()> {
        if self
            .enqueue_webhook_event(tx, entity, action, &payload)
            .await?
            > 0
        {
            self.outbox_signal.notify_waiters();
        }
        Ok(())
    }

    async fn lock_model(&self, tx: &mut Tx<'_>, name: &str) -> Result<()> {
        let mut sql = self.sql("SELECT name FROM registered_models WHERE name = ");
        sql.bind_str(name);
        if self.dialect == crate::Dialect::Postgres {
            sql.push(" FOR UPDATE");
        }
        match sql
            .query()
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?
        {
            Some(_) => Ok(()),
            None => Err(model_not_found(name)),
        }
    }

    async fn touch_model(&self, tx: &mut Tx<'_>, name: &str, now: i64) -> Result<()> {
        let mut sql = self.sql("UPDATE registered_models SET last_updated_time = ");
        sql.bind_i64(now).push(" WHERE name = ").bind_str(name);
        sql.query().execute(&mut **tx).await.map_err(db_err)?;
        Ok(())
    }

    pub async fn create_registered_model(
        &self,
        name: &str,
        tags: &[KeyValue],
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        validate_model_name(name)?;
        for t in tags {
            validation::validate_registry_tag(t)?;
        }
        let now = now_ms();
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql("INSERT INTO registered_models (name, creation_time, last_updated_time, description) VALUES (");
        sql.bind_str(name)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(", ");
        sql.bind(Bind::OptStr(description.map(str::to_string)))
            .push(")");
        if let Err(e) = sql.query().execute(&mut *tx).await.map_err(db_err) {
            if e.code == Code::ResourceAlreadyExists {
                return Err(Error::already_exists(format!(
                    "Registered Model (name={name}) already exists."
                )));
            }
            return Err(e);
        }
        for t in tags {
            upsert_model_tag(self.dialect, &mut tx, name, t).await?;
        }
        let tag_map: BTreeMap<&str, &str> = tags
            .iter()
            .map(|t| (t.key.as_str(), t.value.as_str()))
            .collect();
        if registry::is_prompt_version(tags) {
            self.emit(
                &mut tx,
                "prompt",
                "created",
                json!({"name": name, "tags": registry::user_prompt_tags(tags), "description": description}),
            )
            .await?;
        } else {
            self.emit(
                &mut tx,
                "registered_model",
                "created",
                json!({"name": name, "tags": tag_map, "description": description}),
            )
            .await?;
        }
        tx.commit().await.map_err(db_err)?;
        self.get_registered_model(name).await
    }

    pub async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let mut sql = self.sql("SELECT rm.name, rm.creation_time, rm.last_updated_time, rm.description FROM registered_models rm WHERE rm.name = ");
        sql.bind_str(name);
        let Some(row) = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
        else {
            return Err(model_not_found(name));
        };
        Ok(self.assemble_models_rm(vec![row]).await?.remove(0))
    }

    async fn assemble_models_rm(&self, rows: Vec<AnyRow>) -> Result<Vec<RegisteredModel>> {
        let names: Vec<String> = rows.iter().map(|r| get_str(r, "name")).collect();
        let mut tags: HashMap<String, Vec<KeyValue>> = HashMap::new();
        let mut aliases: HashMap<String, Vec<RegisteredModelAlias>> = HashMap::new();
        let mut latest: HashMap<String, BTreeMap<String, ModelVersion>> = HashMap::new();
        self.collect_key_values("registered_model_tags", "name", &names, &mut tags)
            .await?;
        for r in self.alias_rows(&names).await? {
            aliases
                .entry(get_str(&r, "name"))
                .or_default()
                .push(RegisteredModelAlias {
                    alias: get_str(&r, "alias"),
                    version: get_i64(&r, "version").to_string(),
                });
        }
        // Only each stage's newest version is shown, so fetch just those rows.
        let newest_per_stage = format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions mv WHERE mv.current_stage <> '{DELETED_STAGE}' AND mv.version = \
             (SELECT MAX(m2.version) FROM model_versions m2 WHERE m2.name = mv.name AND m2.current_stage = mv.current_stage) \
             AND mv.name IN "
        );
        let versions: Vec<ModelVersion> = self
            .load_children(&newest_per_stage, &names, "")
            .await?
            .iter()
            .map(version_from_row)
            .collect();
        for v in self.decorate_versions(versions).await? {
            latest
                .entry(v.name.clone())
                .or_default()
                .insert(v.current_stage.clone(), v);
        }
        Ok(rows
            .iter()
            .map(|r| {
                let name = get_str(r, "name");
                let mut latest_versions: Vec<ModelVersion> = latest
                    .remove(&name)
                    .map(|m| m.into_values().collect())
                    .unwrap_or_default();
                latest_versions.sort_by_key(|v| v.version.parse::<i64>().unwrap_or(0));
                RegisteredModel {
                    creation_timestamp: get_i64(r, "creation_time"),
                    last_updated_timestamp: get_i64(r, "last_updated_time"),
                    description: get_opt_str(r, "description").filter(|d| !d.is_empty()),
                    latest_versions,
                    tags: tags.remove(&name).unwrap_or_default(),
                    aliases: aliases.remove(&name).unwrap_or_default(),
                    name,
                }
            })
            .collect())
    }

    /// The aliases of these registered models, by alias.
    async fn alias_rows(&self, names: &[String]) -> Result<Vec<AnyRow>> {
        self.load_children(
            "SELECT name, alias, version FROM registered_model_aliases WHERE name IN ",
            names,
            " ORDER BY alias",
        )
        .await
    }

    /// Adds tags and aliases to versions read from `model_versions`.
    async fn decorate_versions(
        &self,
        mut versions: Vec<ModelVersion>,
    ) -> Result<Vec<ModelVersion>> {
        if versions.is_empty() {
            return Ok(versions);
        }
        let mut names: Vec<String> = versions.iter().map(|v| v.name.clone()).collect();
        names.sort();
        names.dedup();
        let mut tags: HashMap<(String, String), Vec<KeyValue>> = HashMap::new();
        let mut aliases: HashMap<(String, String), Vec<String>> = HashMap::new();
        let rows = self
            .load_children(
                "SELECT name, version, key, value FROM model_version_tags WHERE name IN ",
                &names,
                " ORDER BY key",
            )
            .await?;
        for r in rows {
            tags.entry((get_str(&r, "name"), get_i64(&r, "version").to_string()))
                .or_default()
                .push(KeyValue::new(get_str(&r, "key"), get_str(&r, "value")));
        }
        for r in self.alias_rows(&names).await? {
            aliases
                .entry((get_str(&r, "name"), get_i64(&r, "version").to_string()))
                .or_default()
                .push(get_str(&r, "alias"));
        }
        for v in &mut versions {
            let key = (v.name.clone(), v.version.clone());
            v.tags = tags.remove(&key).unwrap_or_default();
            v.aliases = aliases.remove(&key).unwrap_or_default();
        }
        Ok(versions)
    }

    pub async fn rename_registered_model(
        &self,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel> {
        if new_name.trim().is_empty() {
            return Err(validation::missing_value("new_name"));
        }
        let now = now_ms();
        let mut tx = self.write.begin().await.map_err(db_err)?;
        self.lock_model(&mut tx, name).await?;
        let mut check = self.sql("SELECT name FROM registered_models WHERE name = ");
        check.bind_str(new_name);
        if new_name != name
            && check
                .query()
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?
                .is_some()
        {
            return Err(Error::already_exists(format!(
                "Registered Model (name={new_name}) already exists."
            )));
        }
        for table in [
            "registered_model_tags",
            "model_versions",
            "model_version_tags",
            "registered_model_aliases",
        ] {
            let mut sql = self.sql(&format!("UPDATE {table} SET name = "));
            sql.bind_str(new_name).push(" WHERE name = ").bind_str(name);
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
        }
        let mut sql = self.sql("UPDATE registered_models SET name = ");
        sql.bind_str(new_name)
            .push(", last_updated_time = ")
            .bind_i64(now)
            .push(" WHERE name = ")
            .bind_str(name);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        let mut sql = self.sql("UPDATE model_versions SET last_updated_time = ");
        sql.bind_i64(now).push(" WHERE name = ").bind_str(new_name);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.get_registered_model(new_name).await
    }

    pub async fn update_registered_model(
        &self,
        name: &str,
        description: Option<&str>,
    ) -> Result<RegisteredModel> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        self.lock_model(&mut tx, name).await?;
        let mut sql = self.sql("UPDATE registered_models SET description = ");
        sql.bind(Bind::OptStr(description.map(str::to_string)))
            .push(", last_updated_time = ")
            .bind_i64(now_ms());
        sql.push(" WHERE name = ").bind_str(name);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.get_registered_model(name).await
    }

    pub async fn delete_registered_model(&self, name: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        self.lock_model(&mut tx, name).await?;
        for table in [
            "registered_model_tags",
            "model_version_tags",
            "registered_model_aliases",
            "model_versions",
            "registered_models",
        ] {
            let mut sql = self.sql(&format!("DELETE FROM {table} WHERE name = "));
            sql.bind_str(name);
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    pub async fn set_registered_model_tag(&self, name: &str, tag: &KeyValue) -> Result<()> {
        validation::validate_registry_tag(tag)?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        self.lock_model(&mut tx, name).await?;
        let prompt = self.is_prompt_model(&mut tx, name).await?;
        upsert_model_tag(self.dialect, &mut tx, name, tag).await?;
        if prompt {
            self.emit(
                &mut tx,
                "prompt_tag",
                "set",
                json!({"name": name, "key": tag.key, "value": tag.value}),
            )
            .await?;
        }
        tx.commit().await.map_err(db_err)
    }

    /// Whether a registered model is a prompt: its `mlflow.prompt.is_prompt` tag says true.
    async fn is_prompt_model(&self, tx: &mut Tx<'_>, name: &str) -> Result<bool> {
        let mut sql = self.sql("SELECT value FROM registered_model_tags WHERE name = ");
        sql.bind_str(name)
            .push(" AND key = ")
            .bind_str(registry::IS_PROMPT_TAG);
        let row = sql
            .query()
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?;
        Ok(row.is_some_and(|r| get_str(&r, "value").eq_ignore_ascii_case("true")))
    }

    pub async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        self.lock_model(&mut tx, name).await?;
        let prompt = self.is_prompt_model(&mut tx, name).await?;
        let mut sql = self.sql("DELETE FROM registered_model_tags WHERE name = ");
        sql.bind_str(name).push(" AND key = ").bind_str(key);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        if prompt {
            self.emit(
                &mut tx,
                "prompt_tag",
                "deleted",
                json!({"name": name, "key": key}),
            )
            .await?;
        }
        tx.commit().await.map_err(db_err)
    }

    pub async fn search_registered_models(
        &self,
        filter: Option<&str>,
        max_results: Option<i64>,
        order_by: &[String],
        token: Option<&str>,
    ) -> Result<Page<RegisteredModel>> {
        let max_results = search_page_size(
            max_results,
            DEFAULT_REGISTERED_MODELS_PER_PAGE,
            MAX_REGISTERED_MODELS_PER_PAGE,
        )?;
        let window = PageWindow::new(token, max_results)?;
        let mut sql = self.sql("SELECT rm.name, rm.creation_time, rm.last_updated_time, rm.description FROM registered_models rm WHERE 1 = 1");
        let spec = SearchSpec::for_entity(SearchEntity::RegisteredModels, self.dialect);
        search::push_filter(&spec, &mut sql, filter)?;
        search::push_order_by(&spec, &mut sql, order_by)?;
        window.push_limit(&mut sql);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let (rows, next_page_token) = window.finish(rows);
        Ok(Page {
            items: self.assemble_models_rm(rows).await?,
            next_page_token,
        })
    }

    pub async fn get_latest_versions(
        &self,
        name: &str,
        stages: &[String],
    ) -> Result<Vec<ModelVersion>> {
        let model = self.get_registered_model(name).await?;
        let wanted: Vec<&str> = stages
            .iter()
            .map(|s| canonical_stage(s).ok_or_else(|| Error::invalid(format!("Invalid Model Version stage: {s}. Value must be one of None, Staging, Production, Archived."))))
            .collect::<Result<_>>()?;
        Ok(model
            .latest_versions
            .into_iter()
            .filter(|v| wanted.is_empty() || wanted.contains(&v.current_stage.as_str()))
            .collect())
    }

    pub async fn create_model_version(&self, req: NewModelVersion) -> Result<ModelVersion> {
        validate_model_name(&req.name)?;
        if req.source.is_empty() {
            return Err(validation::missing_value("source"));
        }
        for t in &req.tags {
            validation::validate_registry_tag(t)?;
        }
        // A prompt's template is in its tags; its source is only a placeholder.
        if registry::is_prompt_version(&req.tags) {
            registry::check_prompt_source(&req.source)?;
        } else {
            self.validate_source(&req).await?;
        }
        let mut run_id = req.run_id.clone().filter(|r| !r.is_empty());
        let mut storage_location = req.source.clone();
        let source_model_id = registry::logged_model_source(&req.source);
        // The logged model named by `model_id` records the versions made from it in a tag, as
        // MLflow's server writes it.
        let mut tagged_model = None;
        if let Some(model_id) = source_model_id.or(req.model_id.as_deref()) {
            match self.get_logged_model(model_id).await {
                Ok(model) => {
                    if req.model_id.as_deref() == Some(model_id) {
                        tagged_model = Some(model_id);
                    }
                    if source_model_id.is_some() {
                        storage_location = model.info.artifact_uri.clone();
                    }
                    if run_id.is_none() {
                        run_id = model.info.source_run_id.clone();
                    }
                }
                Err(e) if source_model_id.is_some() => {
                    return Err(Error::invalid(format!(
                        "Unable to fetch model from model URI source artifact location '{}'. Error: {}",
                        req.source, e.message
                    )));
                }
                Err(_) => {}
            }
        } else if let Some((other, v)) = registry::registered_version_source(&req.source)
            // models:/<name>/<version> registers a copy pointing at the same files.
            && let Ok(uri) = self.get_model_version_download_uri(other, v).await
        {
            storage_location = uri;
        }
        let now = now_ms();
        for _attempt in 0..8 {
            let mut tx = self.write.begin().await.map_err(db_err)?;
            self.lock_model(&mut tx, &req.name).await?;
            let mut sql = self.sql(
                "SELECT COALESCE(MAX(version), 0) + 1 AS next FROM model_versions WHERE name = ",
            );
            sql.bind_str(&req.name);
            let version = get_i64(
                &sql.query().fetch_one(&mut *tx).await.map_err(db_err)?,
                "next",
            );
            let mut sql = self.sql("INSERT INTO model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage, source, run_id, run_link, status, status_message, storage_location, model_id) VALUES (");
            sql.bind_str(&req.name)
                .push(", ")
                .bind_i64(version)
                .push(", ")
                .bind_i64(now)
                .push(", ")
                .bind_i64(now)
                .push(", ");
            sql.bind(Bind::OptStr(req.description.clone()))
                .push(", NULL, 'None', ")
                .bind_str(&req.source)
                .push(", ");
            sql.bind(Bind::OptStr(run_id.clone()))
                .push(", ")
                .bind(Bind::OptStr(req.run_link.clone()))
                .push(", 'READY', NULL, ");
            sql.bind_str(&storage_location)
                .push(", ")
                .bind(Bind::OptStr(
                    req.model_id.clone().or(source_model_id.map(str::to_string)),
                ))
                .push(")");
            match sql.query().execute(&mut *tx).await.map_err(db_err) {
                Ok(_) => {}
                // Another replica took this number first; take the next one.
                Err(e) if e.code == Code::ResourceAlreadyExists => continue,
                Err(e) => return Err(e),
            }
            for t in &req.tags {
                upsert_version_tag(self.dialect, &mut tx, &req.name, version, t).await?;
            }
            if let Some(model_id) = tagged_model {
                self.record_version_on_logged_model(&mut tx, model_id, &req.name, version)
                    .await?;
            }
            self.touch_model(&mut tx, &req.name, now).await?;
            let tag_map: BTreeMap<&str, &str> = req
                .tags
                .iter()
                .map(|t| (t.key.as_str(), t.value.as_str()))
                .collect();
            if registry::is_prompt_version(&req.tags) {
                let template = req
                    .tags
                    .iter()
                    .rev()
                    .find(|t| t.key == registry::PROMPT_TEXT_TAG)
                    .map(|t| t.value.as_str());
                self.emit(
                    &mut tx,
                    "prompt_version",
                    "created",
                    json!({
                        "name": req.name, "version": version.to_string(), "template": template,
                        "tags": registry::user_prompt_tags(&req.tags),
                        "description": req.description.as_deref().filter(|d| !d.is_empty()),
                    }),
                )
                .await?;
            } else {
                self.emit(
                    &mut tx,
                    "model_version",
                    "created",
                    json!({
                        "name": req.name, "version": version.to_string(), "source": req.source,
                        "run_id": run_id, "tags": tag_map, "description": req.description,
                    }),
                )
                .await?;
            }
            tx.commit().await.map_err(db_err)?;
            return self
                .get_model_version(&req.name, &version.to_string())
                .await;
        }
        Err(Error::internal(format!(
            "Model Version creation error (name={}). Giving up after 8 attempts.",
            req.name
        )))
    }

    /// Applies the registry's source rules, reading the artifact location of the run or
    /// logged model a source must lie in when they need it.
    async fn validate_source(&self, req: &NewModelVersion) -> Result<()> {
        let run_id = req.run_id.as_deref().filter(|r| !r.is_empty());
        let model_id = req.model_id.as_deref().filter(|m| !m.is_empty());
        let Some(rule) = registry::check_model_version_source(&req.source, run_id, model_id)?
        else {
            return Ok(());
        };
        let owner_location = match rule.owner() {
            Some(SourceOwner::LoggedModel(model)) => self
                .get_logged_model(model)
                .await
                .ok()
                .map(|m| m.info.artifact_uri),
            Some(SourceOwner::Run(run)) => {
                self.get_run(run).await.ok().map(|r| r.info.artifact_uri)
            }
            None => None,
        };
        rule.check(owner_location.as_deref())
    }

    async fn version_row(&self, name: &str, version: &str) -> Result<ModelVersion> {
        let v = parse_version(version)?;
        let mut sql = self.sql(&format!(
            "SELECT {VERSION_COLUMNS} FROM model_versions mv WHERE mv.name = "
        ));
        sql.bind_str(name).push(" AND mv.version = ").bind_i64(v);
        sql.push(&format!(" AND mv.current_stage <> '{DELETED_STAGE}'"));
        match sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
        {
            Some(row) => Ok(version_from_row(&row)),
            None => Err(version_not_found(name, version)),
        }
    }

    pub async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion> {
        let v = self.version_row(name, version).await?;
        Ok(self.decorate_versions(vec![v]).await?.remove(0))
    }

    pub async fn get_model_version_download_uri(
        &self,
        name: &str,
        version: &str,
    ) -> Result<String> {
        let v = parse_version(version)?;
        let mut sql = self.sql("SELECT storage_location, source FROM model_versions WHERE name = ");
        sql.bind_str(name).push(" AND version = ").bind_i64(v);
        sql.push(&format!(" AND current_stage <> '{DELETED_STAGE}'"));
        let Some(row) = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
        else {
            return Err(version_not_found(name, version));
        };
        Ok(get_opt_str(&row, "storage_location")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| get_str(&row, "source")))
    }

    /// Locks the registered model and checks the version exists, inside a write transaction.
    async fn lock_version(&self, tx: &mut Tx<'_>, name: &str, version: &str) -> Result<i64> {
        let v = parse_version(version)?;
        self.lock_model(tx, name).await.map_err(|e| {
            if e.code == Code::ResourceDoesNotExist {
                version_not_found(name, version)
            } else {
                e
            }
        })?;
        let mut sql = self.sql("SELECT version FROM model_versions WHERE name = ");
        sql.bind_str(name).push(" AND version = ").bind_i64(v);
        sql.push(&format!(" AND current_stage <> '{DELETED_STAGE}'"));
        match sql
            .query()
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?
        {
            Some(_) => Ok(v),
            None => Err(version_not_found(name, version)),
        }
    }

    pub async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<&str>,
    ) -> Result<ModelVersion> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let v = self.lock_version(&mut tx, name, version).await?;
        let now = now_ms();
        let mut sql = self.sql("UPDATE model_versions SET description = ");
        sql.bind(Bind::OptStr(description.map(str::to_string)))
            .push(", last_updated_time = ")
            .bind_i64(now);
        sql.push(" WHERE name = ")
            .bind_str(name)
            .push(" AND version = ")
            .bind_i64(v);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.get_model_version(name, version).await
    }

    pub async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: &str,
        archive_existing_versions: bool,
    ) -> Result<ModelVersion> {
        let stage = canonical_stage(stage).ok_or_else(|| {
            Error::invalid(format!("Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived."))
        })?;
        if archive_existing_versions && !matches!(stage, "Staging" | "Production") {
            return Err(Error::invalid(format!(
                "Model version transition cannot archive existing model versions because '{stage}' is not an Active stage. Valid stages are Staging, Production"
            )));
        }
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let v = self.lock_version(&mut tx, name, version).await?;
        let now = now_ms();
        if archive_existing_versions {
            let mut sql = self
                .sql("UPDATE model_versions SET current_stage = 'Archived', last_updated_time = ");
            sql.bind_i64(now)
                .push(" WHERE name = ")
                .bind_str(name)
                .push(" AND current_stage = ")
                .bind_str(stage);
            sql.push(" AND version <> ").bind_i64(v);
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
        }
        let mut sql = self.sql("UPDATE model_versions SET current_stage = ");
        sql.bind_str(stage)
            .push(", last_updated_time = ")
            .bind_i64(now);
        sql.push(" WHERE name = ")
            .bind_str(name)
            .push(" AND version = ")
            .bind_i64(v);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        self.touch_model(&mut tx, name, now).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_model_version(name, version).await
    }

    pub async fn delete_model_version(&self, name: &str, version: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let v = self.lock_version(&mut tx, name, version).await?;
        let now = now_ms();
        for table in ["model_version_tags", "registered_model_aliases"] {
            let mut sql = self.sql(&format!("DELETE FROM {table} WHERE name = "));
            sql.bind_str(name).push(" AND version = ").bind_i64(v);
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
        }
        let mut sql = self.sql(&format!("UPDATE model_versions SET current_stage = '{DELETED_STAGE}', description = NULL, user_id = NULL, source = 'REDACTED-SOURCE-PATH', run_id = NULL, run_link = NULL, status_message = NULL, storage_location = NULL, last_updated_time = "));
        sql.bind_i64(now)
            .push(" WHERE name = ")
            .bind_str(name)
            .push(" AND version = ")
            .bind_i64(v);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        self.touch_model(&mut tx, name, now).await?;
        tx.commit().await.map_err(db_err)
    }

    pub async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        tag: &KeyValue,
    ) -> Result<()> {
        validation::validate_registry_tag(tag)?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let v = self.lock_version(&mut tx, name, version).await?;
        upsert_version_tag(self.dialect, &mut tx, name, v, tag).await?;
        let prompt = self.is_prompt_model(&mut tx, name).await?;
        self.emit(
            &mut tx,
            if prompt {
                "prompt_version_tag"
            } else {
                "model_version_tag"
            },
            "set",
            json!({"name": name, "version": v.to_string(), "key": tag.key, "value": tag.value}),
        )
        .await?;
        tx.commit().await.map_err(db_err)
    }

    pub async fn delete_model_version_tag(
        &self,
        name: &str,
        version: &str,
        key: &str,
    ) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let v = self.lock_version(&mut tx, name, version).await?;
        let mut sql = self.sql("DELETE FROM model_version_tags WHERE name = ");
        sql.bind_str(name)
            .push(" AND version = ")
            .bind_i64(v)
            .push(" AND key = ")
            .bind_str(key);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        let prompt = self.is_prompt_model(&mut tx, name).await?;
        self.emit(
            &mut tx,
            if prompt {
                "prompt_version_tag"
            } else {
                "model_version_tag"
            },
            "deleted",
            json!({"name": name, "version": v.to_string(), "key": key}),
        )
        .await?;
        tx.commit().await.map_err(db_err)
    }

    pub async fn set_registered_model_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<()> {
        validate_alias(alias)?;
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let v = self.lock_version(&mut tx, name, version).await?;
        let mut sql =
            self.sql("INSERT INTO registered_model_aliases (name, alias, version) VALUES (");
        sql.bind_str(name)
            .push(", ")
            .bind_str(alias)
            .push(", ")
            .bind_i64(v);
        sql.push(") ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        self.touch_model(&mut tx, name, now_ms()).await?;
        let prompt = self.is_prompt_model(&mut tx, name).await?;
        self.emit(
            &mut tx,
            if prompt {
                "prompt_alias"
            } else {
                "model_version_alias"
            },
            "created",
            json!({"name": name, "alias": alias, "version": v.to_string()}),
        )
        .await?;
        tx.commit().await.map_err(db_err)
    }

    pub async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        self.lock_model(&mut tx, name).await?;
        let mut sql = self.sql("DELETE FROM registered_model_aliases WHERE name = ");
        sql.bind_str(name).push(" AND alias = ").bind_str(alias);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        self.touch_model(&mut tx, name, now_ms()).await?;
        let prompt = self.is_prompt_model(&mut tx, name).await?;
        self.emit(
            &mut tx,
            if prompt {
                "prompt_alias"
            } else {
                "model_version_alias"
            },
            "deleted",
            json!({"name": name, "alias": alias}),
        )
        .await?;
        tx.commit().await.map_err(db_err)
    }

    pub async fn get_model_version_by_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<ModelVersion> {
        self.get_registered_model(name).await?;
        let mut sql = self.sql("SELECT version FROM registered_model_aliases WHERE name = ");
        sql.bind_str(name).push(" AND alias = ").bind_str(alias);
        let Some(row) = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
        else {
            return Err(Error::invalid(format!(
                "Registered model alias {alias} not found."
            )));
        };
        self.get_model_version(name, &get_i64(&row, "version").to_string())
            .await
    }

    pub async fn search_model_versions(
        &self,
        filter: Option<&str>,
        max_results: Option<i64>,
        order_by: &[String],
        token: Option<&str>,
    ) -> Result<Page<ModelVersion>> {
        let max_results = search_page_size(
            max_results,
            DEFAULT_MODEL_VERSIONS_PER_PAGE,
            MAX_MODEL_VERSIONS_PER_PAGE,
        )?;
        let window = PageWindow::new(token, max_results)?;
        let mut sql = self.sql(&format!("SELECT {VERSION_COLUMNS} FROM model_versions mv WHERE mv.current_stage <> '{DELETED_STAGE}'"));
        let spec = SearchSpec::for_entity(SearchEntity::ModelVersions, self.dialect);
        search::push_filter(&spec, &mut sql, filter)?;
        search::push_order_by(&spec, &mut sql, order_by)?;
        window.push_limit(&mut sql);
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        let items: Vec<ModelVersion> = rows.iter().map(version_from_row).collect();
        let (items, next_page_token) = window.finish(items);
        Ok(Page {
            items: self.decorate_versions(items).await?,
            next_page_token,
        })
    }

    /// Adds version `version` of `name` to the logged model's [`registry::MODEL_VERSIONS_TAG`].
    async fn record_version_on_logged_model(
        &self,
        tx: &mut Tx<'_>,
        model_id: &str,
        name: &str,
        version: i64,
    ) -> Result<()> {
        let mut sql = self.sql("SELECT value FROM logged_model_tags WHERE model_id = ");
        sql.bind_str(model_id)
            .push(" AND key = ")
            .bind_str(registry::MODEL_VERSIONS_TAG);
        let existing = sql
            .query()
            .fetch_optional(&mut **tx)
            .await
            .map_err(db_err)?
            .map(|row| get_str(&row, "value"));
        let value = registry::model_versions_tag(existing.as_deref(), name, version);
        let mut sql = self.sql("INSERT INTO logged_model_tags (model_id, key, value) VALUES (");
        sql.bind_str(model_id)
            .push(", ")
            .bind_str(registry::MODEL_VERSIONS_TAG)
            .push(", ")
            .bind_str(value)
            .push(") ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value");
        sql.query().execute(&mut **tx).await.map_err(db_err)?;
        Ok(())
    }

    /// Registry versions that were made from these logged models.
    pub(crate) async fn registrations_for_models(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Vec<ModelRegistration>>> {
        let mut out: HashMap<String, Vec<ModelRegistration>> = HashMap::new();
        let select = format!(
            "SELECT model_id, name, version FROM model_versions WHERE current_stage <> '{DELETED_STAGE}' AND model_id IN "
        );
        for r in self
            .load_children(&select, ids, " ORDER BY name, version")
            .await?
        {
            out.entry(get_str(&r, "model_id"))
                .or_default()
                .push(ModelRegistration {
                    name: get_str(&r, "name"),
                    version: get_i64(&r, "version").to_string(),
                });
        }
        Ok(out)
    }
}

async fn upsert_model_tag(
    dialect: Dialect,
    tx: &mut Tx<'_>,
    name: &str,
    tag: &KeyValue,
) -> Result<()> {
    let mut sql = Sql::for_dialect(
        dialect,
        "INSERT INTO registered_model_tags (name, key, value) VALUES (",
    );
    sql.bind_str(name)
        .push(", ")
        .bind_str(&tag.key)
        .push(", ")
        .bind_str(&tag.value);
    sql.push(") ON CONFLICT (name, key) DO UPDATE SET value = excluded.value");
    sql.query().execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}

async fn upsert_version_tag(
    dialect: Dialect,
    tx: &mut Tx<'_>,
    name: &str,
    version: i64,
    tag: &KeyValue,
) -> Result<()> {
    let mut sql = Sql::for_dialect(
        dialect,
        "INSERT INTO model_version_tags (name, version, key, value) VALUES (",
    );
    sql.bind_str(name)
        .push(", ")
        .bind_i64(version)
        .push(", ")
        .bind_str(&tag.key)
        .push(", ")
        .bind_str(&tag.value);
    sql.push(") ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value");
    sql.query().execute(&mut **tx).await.map_err(db_err)?;
    Ok(())
}
