//! The AI gateway's configuration in the tracking database: secrets (stored as the caller
//! sealed them), model definitions, endpoints with their model mappings, tags and bindings,
//! and the online-scoring configs of scorers. Deleting a secret leaves its model definitions
//! without one; a model definition an endpoint uses cannot be deleted; deleting an endpoint
//! takes its mappings, tags and bindings with it.

use std::collections::{BTreeMap, HashMap};

use crate::db::{
    Bind, SqlStore, db_err, execute_one, get_f64, get_i64, get_opt_i64, get_opt_str, get_str,
    now_ms,
};
use mlox_core::entities::KeyValue;
use mlox_core::gateway::{
    FallbackConfig, GatewayEndpoint, GatewayEndpointBinding, GatewayEndpointTag,
    GatewayModelDefinition, GatewayModelMapping, GatewaySecretInfo, LinkageType, ModelConfig,
    new_endpoint_id, new_mapping_id, new_model_definition_id, new_secret_id, usage_experiment_name,
};
use mlox_core::ids::parse_experiment_id;
use mlox_core::{Code, Error, Result};
use sqlx::any::AnyRow;

pub struct NewSecret {
    pub name: String,
    pub sealed_value: String,
    pub masked_values: BTreeMap<String, String>,
    pub provider: Option<String>,
    pub auth_config: BTreeMap<String, String>,
    pub created_by: Option<String>,
}

/// A secret's rotated value: sealed, and masked for display.
pub struct SecretValue {
    pub sealed: String,
    pub masked: BTreeMap<String, String>,
}

pub struct NewEndpoint {
    pub name: String,
    pub model_configs: Vec<ModelConfig>,
    pub created_by: Option<String>,
    pub routing_strategy: Option<String>,
    pub fallback_config: Option<FallbackConfig>,
    pub experiment_id: Option<String>,
    pub usage_tracking: bool,
}

#[derive(Default)]
pub struct EndpointUpdate {
    pub name: Option<String>,
    pub updated_by: Option<String>,
    pub routing_strategy: Option<String>,
    pub fallback_config: Option<FallbackConfig>,
    /// Replaces every mapping when given.
    pub model_configs: Option<Vec<ModelConfig>>,
    pub experiment_id: Option<String>,
    pub usage_tracking: Option<bool>,
}

#[derive(Default)]
pub struct ModelDefinitionUpdate {
    pub name: Option<String>,
    pub secret_id: Option<String>,
    pub model_name: Option<String>,
    pub provider: Option<String>,
    pub updated_by: Option<String>,
}

/// An online-scoring config: how a registered scorer runs on an experiment's new traces.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct OnlineScoringConfig {
    pub online_scoring_config_id: String,
    pub scorer_id: String,
    pub sample_rate: f64,
    pub experiment_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_string: Option<String>,
}

fn json_map(text: Option<String>) -> BTreeMap<String, String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn map_text(map: &BTreeMap<String, String>) -> Option<String> {
    (!map.is_empty()).then(|| serde_json::to_string(map).unwrap_or_default())
}

fn secret_of(row: &AnyRow) -> GatewaySecretInfo {
    GatewaySecretInfo {
        secret_id: get_str(row, "secret_id"),
        secret_name: get_str(row, "secret_name"),
        masked_values: json_map(get_opt_str(row, "masked_values")),
        created_at: get_i64(row, "created_at"),
        last_updated_at: get_i64(row, "last_updated_at"),
        provider: get_opt_str(row, "provider"),
        created_by: get_opt_str(row, "created_by"),
        last_updated_by: get_opt_str(row, "last_updated_by"),
        auth_config: json_map(get_opt_str(row, "auth_config")),
    }
}

const SECRET_COLUMNS: &str = "secret_id, secret_name, masked_values, provider, auth_config, \
     created_at, last_updated_at, created_by, last_updated_by";

const DEFINITION_COLUMNS: &str = "d.model_definition_id, d.name, d.secret_id, s.secret_name, \
     d.provider, d.model_name, d.created_at, d.last_updated_at, d.created_by, d.last_updated_by";
const DEFINITION_FROM: &str =
    "gateway_model_definitions d LEFT JOIN gateway_secrets s ON s.secret_id = d.secret_id";

fn definition_of(row: &AnyRow) -> GatewayModelDefinition {
    GatewayModelDefinition {
        model_definition_id: get_str(row, "model_definition_id"),
        name: get_str(row, "name"),
        // Deleting a secret clears it from its definitions: neither id nor name is left.
        secret_id: get_opt_str(row, "secret_id"),
        secret_name: get_opt_str(row, "secret_name"),
        provider: get_str(row, "provider"),
        model_name: get_str(row, "model_name"),
        created_at: get_i64(row, "created_at"),
        last_updated_at: get_i64(row, "last_updated_at"),
        created_by: get_opt_str(row, "created_by"),
        last_updated_by: get_opt_str(row, "last_updated_by"),
    }
}

const BINDING_COLUMNS: &str = "endpoint_id, resource_type, resource_id, display_name, \
     created_at, last_updated_at, created_by, last_updated_by";

fn binding_of(row: &AnyRow) -> GatewayEndpointBinding {
    GatewayEndpointBinding {
        endpoint_id: get_str(row, "endpoint_id"),
        resource_type: get_str(row, "resource_type"),
        resource_id: get_str(row, "resource_id"),
        created_at: get_i64(row, "created_at"),
        last_updated_at: get_i64(row, "last_updated_at"),
        created_by: get_opt_str(row, "created_by"),
        last_updated_by: get_opt_str(row, "last_updated_by"),
        display_name: get_opt_str(row, "display_name"),
    }
}

fn not_found(kind: &str, field: &str, value: &str) -> Error {
    Error::not_found(format!("{kind} not found ({field}='{value}')"))
}

/// The fallback config as stored: MLflow keeps one whenever fallbacks exist.
fn fallback_text(config: Option<&FallbackConfig>, configs: &[ModelConfig]) -> Option<String> {
    let has_fallbacks = configs
        .iter()
        .any(|c| c.linkage_type == LinkageType::Fallback);
    if config.is_none() && !has_fallbacks {
        return None;
    }
    serde_json::to_string(&config.cloned().unwrap_or_default()).ok()
}

fn renamed(err: Error, what: &str, name: &str) -> Error {
    if err.code == Code::ResourceAlreadyExists {
        Error::already_exists(format!("{what} with name '{name}' already exists"))
    } else {
        err
    }
}

impl SqlStore {
    // ---- secrets ----

    pub async fn create_gateway_secret(&self, new: NewSecret) -> Result<GatewaySecretInfo> {
        let id = new_secret_id();
        let now = now_ms();
        let mut sql = self.sql(&format!(
            "INSERT INTO gateway_secrets (sealed_value, {SECRET_COLUMNS}) VALUES ("
        ));
        sql.bind_str(&new.sealed_value)
            .push(", ")
            .bind_str(&id)
            .push(", ")
            .bind_str(&new.name)
            .push(", ")
            .bind_str(serde_json::to_string(&new.masked_values).unwrap_or_default())
            .push(", ")
            .bind(Bind::OptStr(new.provider))
            .push(", ")
            .bind(Bind::OptStr(map_text(&new.auth_config)))
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind(Bind::OptStr(new.created_by.clone()))
            .push(", ")
            .bind(Bind::OptStr(new.created_by))
            .push(")");
        sql.query()
            .execute(&self.write)
            .await
            .map_err(|e| renamed(db_err(e), "Secret", &new.name))?;
        self.get_gateway_secret(Some(&id), None).await
    }

    /// By id, or else by name.
    pub async fn get_gateway_secret(
        &self,
        id: Option<&str>,
        name: Option<&str>,
    ) -> Result<GatewaySecretInfo> {
        Ok(self.gateway_secret_row(id, name).await?.0)
    }

    /// A secret with its sealed value, for a call that needs the value.
    pub async fn gateway_secret_sealed(&self, id: &str) -> Result<(GatewaySecretInfo, String)> {
        self.gateway_secret_row(Some(id), None).await
    }

    async fn gateway_secret_row(
        &self,
        id: Option<&str>,
        name: Option<&str>,
    ) -> Result<(GatewaySecretInfo, String)> {
        let mut sql = self.sql(&format!(
            "SELECT sealed_value, {SECRET_COLUMNS} FROM gateway_secrets WHERE "
        ));
        let (field, value) = match (id, name) {
            (Some(id), _) => ("secret_id", id),
            (None, Some(name)) => ("secret_name", name),
            (None, None) => {
                return Err(Error::invalid(
                    "Exactly one of secret_id or secret_name must be provided",
                ));
            }
        };
        sql.push(field).push(" = ").bind_str(value);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
            .ok_or_else(|| not_found("GatewaySecret", field, value))?;
        Ok((secret_of(&row), get_str(&row, "sealed_value")))
    }

    pub async fn update_gateway_secret(
        &self,
        id: &str,
        value: Option<SecretValue>,
        auth_config: Option<BTreeMap<String, String>>,
        updated_by: Option<String>,
    ) -> Result<GatewaySecretInfo> {
        self.get_gateway_secret(Some(id), None).await?;
        let mut sql = self.sql("UPDATE gateway_secrets SET last_updated_at = ");
        sql.bind_i64(now_ms())
            .push(", last_updated_by = ")
            .bind(Bind::OptStr(updated_by));
        if let Some(value) = value {
            sql.push(", sealed_value = ")
                .bind_str(value.sealed)
                .push(", masked_values = ")
                .bind_str(serde_json::to_string(&value.masked).unwrap_or_default());
        }
        if let Some(auth_config) = auth_config {
            sql.push(", auth_config = ")
                .bind(Bind::OptStr(map_text(&auth_config)));
        }
        sql.push(" WHERE secret_id = ").bind_str(id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        self.get_gateway_secret(Some(id), None).await
    }

    pub async fn delete_gateway_secret(&self, id: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM gateway_secrets WHERE secret_id = ");
        sql.bind_str(id);
        execute_one(sql, &mut *tx, || {
            not_found("GatewaySecret", "secret_id", id)
        })
        .await?;
        let mut sql =
            self.sql("UPDATE gateway_model_definitions SET secret_id = NULL WHERE secret_id = ");
        sql.bind_str(id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    pub async fn list_gateway_secrets(
        &self,
        provider: Option<&str>,
    ) -> Result<Vec<GatewaySecretInfo>> {
        let mut sql = self.sql(&format!("SELECT {SECRET_COLUMNS} FROM gateway_secrets"));
        if let Some(provider) = provider {
            sql.push(" WHERE provider = ").bind_str(provider);
        }
        sql.push(" ORDER BY created_at, secret_id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows.iter().map(secret_of).collect())
    }

    // ---- model definitions ----

    pub async fn create_gateway_model_definition(
        &self,
        name: &str,
        secret_id: &str,
        provider: &str,
        model_name: &str,
        created_by: Option<String>,
    ) -> Result<GatewayModelDefinition> {
        self.get_gateway_secret(Some(secret_id), None).await?;
        let id = new_model_definition_id();
        let now = now_ms();
        let mut sql = self.sql(
            "INSERT INTO gateway_model_definitions (model_definition_id, name, secret_id, \
             provider, model_name, created_at, last_updated_at, created_by, last_updated_by) \
             VALUES (",
        );
        sql.bind_str(&id)
            .push(", ")
            .bind_str(name)
            .push(", ")
            .bind_str(secret_id)
            .push(", ")
            .bind_str(provider)
            .push(", ")
            .bind_str(model_name)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind(Bind::OptStr(created_by.clone()))
            .push(", ")
            .bind(Bind::OptStr(created_by))
            .push(")");
        sql.query()
            .execute(&self.write)
            .await
            .map_err(|e| renamed(db_err(e), "Model definition", name))?;
        self.get_gateway_model_definition(&id).await
    }

    pub async fn get_gateway_model_definition(&self, id: &str) -> Result<GatewayModelDefinition> {
        let mut sql = self.sql(&format!(
            "SELECT {DEFINITION_COLUMNS} FROM {DEFINITION_FROM} WHERE d.model_definition_id = "
        ));
        sql.bind_str(id);
        let row = sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
            .ok_or_else(|| not_found("GatewayModelDefinition", "model_definition_id", id))?;
        Ok(definition_of(&row))
    }

    pub async fn list_gateway_model_definitions(
        &self,
        provider: Option<&str>,
        secret_id: Option<&str>,
    ) -> Result<Vec<GatewayModelDefinition>> {
        let mut sql = self.sql(&format!(
            "SELECT {DEFINITION_COLUMNS} FROM {DEFINITION_FROM} WHERE 1 = 1"
        ));
        if let Some(provider) = provider {
            sql.push(" AND d.provider = ").bind_str(provider);
        }
        if let Some(secret_id) = secret_id {
            sql.push(" AND d.secret_id = ").bind_str(secret_id);
        }
        sql.push(" ORDER BY d.created_at, d.model_definition_id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows.iter().map(definition_of).collect())
    }

    pub async fn update_gateway_model_definition(
        &self,
        id: &str,
        update: ModelDefinitionUpdate,
    ) -> Result<GatewayModelDefinition> {
        self.get_gateway_model_definition(id).await?;
        if let Some(secret_id) = &update.secret_id {
            self.get_gateway_secret(Some(secret_id), None).await?;
        }
        let mut sql = self.sql("UPDATE gateway_model_definitions SET last_updated_at = ");
        sql.bind_i64(now_ms());
        let fields = [
            ("name", &update.name),
            ("secret_id", &update.secret_id),
            ("model_name", &update.model_name),
            ("provider", &update.provider),
            ("last_updated_by", &update.updated_by),
        ];
        for (column, value) in fields {
            if let Some(value) = value {
                sql.push(", ").push(column).push(" = ").bind_str(value);
            }
        }
        sql.push(" WHERE model_definition_id = ").bind_str(id);
        sql.query().execute(&self.write).await.map_err(|e| {
            renamed(
                db_err(e),
                "Model definition",
                update.name.as_deref().unwrap_or_default(),
            )
        })?;
        self.get_gateway_model_definition(id).await
    }

    pub async fn delete_gateway_model_definition(&self, id: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self
            .sql("SELECT COUNT(*) AS n FROM gateway_endpoint_models WHERE model_definition_id = ");
        sql.bind_str(id);
        if get_i64(&sql.query().fetch_one(&mut *tx).await.map_err(db_err)?, "n") > 0 {
            return Err(Error::invalid_state(
                "Cannot delete model definition that is currently in use by endpoints. \
                 Detach it from all endpoints first.",
            ));
        }
        let mut sql =
            self.sql("DELETE FROM gateway_model_definitions WHERE model_definition_id = ");
        sql.bind_str(id);
        execute_one(sql, &mut *tx, || {
            not_found("GatewayModelDefinition", "model_definition_id", id)
        })
        .await?;
        tx.commit().await.map_err(db_err)
    }

    // ---- endpoints ----

    async fn check_definitions_exist(&self, configs: &[ModelConfig]) -> Result<()> {
        if configs.is_empty() {
            return Ok(());
        }
        let mut sql = self.sql(
            "SELECT model_definition_id FROM gateway_model_definitions WHERE model_definition_id IN ",
        );
        sql.bind_list(
            configs
                .iter()
                .map(|c| Bind::Str(c.model_definition_id.clone())),
        );
        let found: Vec<String> = sql
            .query()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?
            .iter()
            .map(|row| get_str(row, "model_definition_id"))
            .collect();
        let mut missing: Vec<&str> = configs
            .iter()
            .map(|c| c.model_definition_id.as_str())
            .filter(|id| !found.iter().any(|f| f == id))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::not_found(format!(
                "Model definitions not found: {}",
                missing.join(", ")
            )))
        }
    }

    /// The experiment an endpoint's calls are traced into, made (or found) when none is named.
    async fn usage_experiment(&self, endpoint_name: &str, endpoint_id: &str) -> Result<String> {
        let name = usage_experiment_name(endpoint_name);
        let tags = [
            ("mlflow.experiment.sourceType", "GATEWAY"),
            ("mlflow.experiment.sourceId", endpoint_id),
            ("mlflow.experiment.isGateway", "true"),
        ]
        .map(|(key, value)| KeyValue {
            key: key.into(),
            value: value.into(),
        });
        match self.create_experiment(&name, None, &tags).await {
            Ok(id) => Ok(id),
            Err(e) if e.code == Code::ResourceAlreadyExists => {
                Ok(self.get_experiment_by_name(&name).await?.experiment_id)
            }
            Err(e) => Err(e),
        }
    }

    fn insert_mapping(
        &self,
        endpoint_id: &str,
        config: &ModelConfig,
        position: i64,
        now: i64,
        by: &Option<String>,
    ) -> crate::db::Sql {
        let mut sql = self.sql(
            "INSERT INTO gateway_endpoint_models (mapping_id, endpoint_id, model_definition_id, \
             linkage_type, weight, fallback_order, position, created_at, created_by) VALUES (",
        );
        sql.bind_str(new_mapping_id())
            .push(", ")
            .bind_str(endpoint_id)
            .push(", ")
            .bind_str(&config.model_definition_id)
            .push(", ")
            .bind_str(config.linkage_type.as_str())
            .push(", ")
            .bind_f64(config.weight)
            .push(", ")
            .bind(Bind::OptI64(config.fallback_order))
            .push(", ")
            .bind_i64(position)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind(Bind::OptStr(by.clone()))
            .push(")");
        sql
    }

    pub async fn create_gateway_endpoint(&self, new: NewEndpoint) -> Result<GatewayEndpoint> {
        if new.model_configs.is_empty() {
            return Err(Error::invalid(
                "Endpoint must have at least one model configuration",
            ));
        }
        self.check_definitions_exist(&new.model_configs).await?;
        if self.gateway_endpoint_id_by_name(&new.name).await?.is_some() {
            return Err(Error::already_exists(format!(
                "Endpoint with name '{}' already exists",
                new.name
            )));
        }
        let id = new_endpoint_id();
        let experiment_id = match (new.usage_tracking, new.experiment_id) {
            (_, Some(experiment)) => Some(parse_experiment_id(&experiment)?),
            (true, None) => Some(parse_experiment_id(
                &self.usage_experiment(&new.name, &id).await?,
            )?),
            (false, None) => None,
        };
        let now = now_ms();
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql(
            "INSERT INTO gateway_endpoints (endpoint_id, name, routing_strategy, fallback_config, \
             experiment_id, usage_tracking, created_at, last_updated_at, created_by, \
             last_updated_by) VALUES (",
        );
        sql.bind_str(&id)
            .push(", ")
            .bind_str(&new.name)
            .push(", ")
            .bind(Bind::OptStr(new.routing_strategy))
            .push(", ")
            .bind(Bind::OptStr(fallback_text(
                new.fallback_config.as_ref(),
                &new.model_configs,
            )))
            .push(", ")
            .bind(Bind::OptI64(experiment_id))
            .push(", ")
            .bind_i64(i64::from(new.usage_tracking))
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind(Bind::OptStr(new.created_by.clone()))
            .push(", ")
            .bind(Bind::OptStr(new.created_by.clone()))
            .push(")");
        sql.query()
            .execute(&mut *tx)
            .await
            .map_err(|e| renamed(db_err(e), "Endpoint", &new.name))?;
        for (position, config) in (0..).zip(&new.model_configs) {
            self.insert_mapping(&id, config, position, now, &new.created_by)
                .query()
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        self.get_gateway_endpoint(Some(&id), None).await
    }

    async fn gateway_endpoint_id_by_name(&self, name: &str) -> Result<Option<String>> {
        let mut sql = self.sql("SELECT endpoint_id FROM gateway_endpoints WHERE name = ");
        sql.bind_str(name);
        Ok(sql
            .query()
            .fetch_optional(&self.read)
            .await
            .map_err(db_err)?
            .map(|row| get_str(&row, "endpoint_id")))
    }

    /// By id, or else by name.
    pub async fn get_gateway_endpoint(
        &self,
        id: Option<&str>,
        name: Option<&str>,
    ) -> Result<GatewayEndpoint> {
        let (field, value) = match (id, name) {
            (Some(id), None) => ("endpoint_id", id),
            (None, Some(name)) => ("name", name),
            _ => {
                return Err(Error::invalid(
                    "Exactly one of endpoint_id or name must be provided",
                ));
            }
        };
        self.load_gateway_endpoints(Some((field, value)))
            .await?
            .pop()
            .ok_or_else(|| not_found("GatewayEndpoint", field, value))
    }

    /// Every endpoint, or those using a provider or a secret in any of their models.
    pub async fn list_gateway_endpoints(
        &self,
        provider: Option<&str>,
        secret_id: Option<&str>,
    ) -> Result<Vec<GatewayEndpoint>> {
        let endpoints = self.load_gateway_endpoints(None).await?;
        Ok(endpoints
            .into_iter()
            .filter(|e| {
                let uses = |f: &dyn Fn(&GatewayModelDefinition) -> bool| {
                    e.model_mappings
                        .iter()
                        .any(|m| m.model_definition.as_ref().is_some_and(f))
                };
                provider.is_none_or(|p| uses(&|d| d.provider == p))
                    && secret_id.is_none_or(|s| uses(&|d| d.secret_id.as_deref() == Some(s)))
            })
            .collect())
    }

    async fn load_gateway_endpoints(
        &self,
        only: Option<(&str, &str)>,
    ) -> Result<Vec<GatewayEndpoint>> {
        let mut sql = self.sql(
            "SELECT endpoint_id, name, routing_strategy, fallback_config, experiment_id, \
             usage_tracking, created_at, last_updated_at, created_by, last_updated_by \
             FROM gateway_endpoints",
        );
        if let Some((field, value)) = only {
            sql.push(" WHERE ").push(field).push(" = ").bind_str(value);
        }
        sql.push(" ORDER BY created_at, endpoint_id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = rows.iter().map(|r| get_str(r, "endpoint_id")).collect();
        let in_ids = || ids.iter().map(|id| Bind::Str(id.clone()));

        let mut sql = self.sql(&format!(
            "SELECT {DEFINITION_COLUMNS} FROM {DEFINITION_FROM} WHERE d.model_definition_id IN \
             (SELECT model_definition_id FROM gateway_endpoint_models WHERE endpoint_id IN "
        ));
        sql.bind_list(in_ids()).push(")");
        let definitions: HashMap<String, GatewayModelDefinition> = sql
            .query()
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?
            .iter()
            .map(|r| {
                let d = definition_of(r);
                (d.model_definition_id.clone(), d)
            })
            .collect();

        let mut sql = self.sql(
            "SELECT mapping_id, endpoint_id, model_definition_id, linkage_type, weight, \
             fallback_order, created_at, created_by FROM gateway_endpoint_models \
             WHERE endpoint_id IN ",
        );
        sql.bind_list(in_ids())
            .push(" ORDER BY position, created_at, mapping_id");
        let mut mappings: HashMap<String, Vec<GatewayModelMapping>> = HashMap::new();
        for row in sql.query().fetch_all(&self.read).await.map_err(db_err)? {
            let definition_id = get_str(&row, "model_definition_id");
            mappings
                .entry(get_str(&row, "endpoint_id"))
                .or_default()
                .push(GatewayModelMapping {
                    mapping_id: get_str(&row, "mapping_id"),
                    endpoint_id: get_str(&row, "endpoint_id"),
                    model_definition: definitions.get(&definition_id).cloned(),
                    model_definition_id: definition_id,
                    weight: get_f64(&row, "weight"),
                    created_at: get_i64(&row, "created_at"),
                    created_by: get_opt_str(&row, "created_by"),
                    linkage_type: LinkageType::from_stored(&get_str(&row, "linkage_type")),
                    fallback_order: get_opt_i64(&row, "fallback_order"),
                });
        }

        let mut sql = self
            .sql("SELECT endpoint_id, key, value FROM gateway_endpoint_tags WHERE endpoint_id IN ");
        sql.bind_list(in_ids()).push(" ORDER BY key");
        let mut tags: HashMap<String, Vec<GatewayEndpointTag>> = HashMap::new();
        for row in sql.query().fetch_all(&self.read).await.map_err(db_err)? {
            tags.entry(get_str(&row, "endpoint_id"))
                .or_default()
                .push(GatewayEndpointTag {
                    key: get_str(&row, "key"),
                    value: get_str(&row, "value"),
                });
        }

        Ok(rows
            .iter()
            .map(|row| {
                let id = get_str(row, "endpoint_id");
                GatewayEndpoint {
                    name: get_str(row, "name"),
                    created_at: get_i64(row, "created_at"),
                    last_updated_at: get_i64(row, "last_updated_at"),
                    model_mappings: mappings.remove(&id).unwrap_or_default(),
                    created_by: get_opt_str(row, "created_by"),
                    last_updated_by: get_opt_str(row, "last_updated_by"),
                    tags: tags.remove(&id).unwrap_or_default(),
                    routing_strategy: get_opt_str(row, "routing_strategy"),
                    fallback_config: get_opt_str(row, "fallback_config")
                        .and_then(|t| serde_json::from_str(&t).ok()),
                    experiment_id: get_opt_i64(row, "experiment_id").map(|e| e.to_string()),
                    usage_tracking: get_i64(row, "usage_tracking") != 0,
                    endpoint_id: id,
                }
            })
            .collect())
    }

    pub async fn update_gateway_endpoint(
        &self,
        id: &str,
        update: EndpointUpdate,
    ) -> Result<GatewayEndpoint> {
        let current = self.get_gateway_endpoint(Some(id), None).await?;
        if let Some(name) = &update.name
            && *name != current.name
            && self.gateway_endpoint_id_by_name(name).await?.is_some()
        {
            return Err(Error::already_exists(format!(
                "Endpoint with name '{name}' already exists"
            )));
        }
        if let Some(configs) = &update.model_configs {
            self.check_definitions_exist(configs).await?;
        }
        let mut experiment_id = update.experiment_id.clone();
        if update.usage_tracking == Some(true)
            && experiment_id.is_none()
            && current.experiment_id.is_none()
        {
            let name = update.name.as_deref().unwrap_or(&current.name);
            experiment_id = Some(self.usage_experiment(name, id).await?);
        }
        let now = now_ms();
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql("UPDATE gateway_endpoints SET last_updated_at = ");
        sql.bind_i64(now);
        if let Some(name) = &update.name {
            sql.push(", name = ").bind_str(name);
        }
        if let Some(by) = &update.updated_by {
            sql.push(", last_updated_by = ").bind_str(by);
        }
        if let Some(tracking) = update.usage_tracking {
            sql.push(", usage_tracking = ")
                .bind_i64(i64::from(tracking));
        }
        if let Some(experiment) = &experiment_id {
            sql.push(", experiment_id = ")
                .bind_i64(parse_experiment_id(experiment)?);
        }
        if let Some(strategy) = &update.routing_strategy {
            sql.push(", routing_strategy = ").bind_str(strategy);
        }
        match (&update.model_configs, &update.fallback_config) {
            (Some(configs), fallback) => {
                sql.push(", fallback_config = ")
                    .bind(Bind::OptStr(fallback_text(fallback.as_ref(), configs)));
            }
            (None, Some(fallback)) => {
                sql.push(", fallback_config = ")
                    .bind(Bind::OptStr(serde_json::to_string(fallback).ok()));
            }
            (None, None) => {}
        }
        sql.push(" WHERE endpoint_id = ").bind_str(id);
        sql.query().execute(&mut *tx).await.map_err(|e| {
            renamed(
                db_err(e),
                "Endpoint",
                update.name.as_deref().unwrap_or_default(),
            )
        })?;
        if let Some(configs) = &update.model_configs {
            let mut sql = self.sql("DELETE FROM gateway_endpoint_models WHERE endpoint_id = ");
            sql.bind_str(id);
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
            for (position, config) in (0..).zip(configs) {
                self.insert_mapping(id, config, position, now, &update.updated_by)
                    .query()
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
        }
        tx.commit().await.map_err(db_err)?;
        self.get_gateway_endpoint(Some(id), None).await
    }

    pub async fn delete_gateway_endpoint(&self, id: &str) -> Result<()> {
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM gateway_endpoints WHERE endpoint_id = ");
        sql.bind_str(id);
        execute_one(sql, &mut *tx, || {
            not_found("GatewayEndpoint", "endpoint_id", id)
        })
        .await?;
        for table in [
            "gateway_endpoint_models",
            "gateway_endpoint_tags",
            "gateway_endpoint_bindings",
        ] {
            let mut sql = self.sql(&format!("DELETE FROM {table} WHERE endpoint_id = "));
            sql.bind_str(id);
            sql.query().execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    pub async fn attach_gateway_model(
        &self,
        endpoint_id: &str,
        config: &ModelConfig,
        created_by: Option<String>,
    ) -> Result<GatewayModelMapping> {
        self.get_gateway_endpoint(Some(endpoint_id), None).await?;
        let definition = self
            .get_gateway_model_definition(&config.model_definition_id)
            .await?;
        let now = now_ms();
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql(
            "SELECT COALESCE(MAX(position), -1) + 1 AS next FROM gateway_endpoint_models \
             WHERE endpoint_id = ",
        );
        sql.bind_str(endpoint_id);
        let next = get_i64(
            &sql.query().fetch_one(&mut *tx).await.map_err(db_err)?,
            "next",
        );
        let sql = self.insert_mapping(endpoint_id, config, next, now, &created_by);
        sql.query().execute(&mut *tx).await.map_err(|e| {
            let e = db_err(e);
            if e.code == Code::ResourceAlreadyExists {
                Error::already_exists(format!(
                    "Model definition '{}' is already attached to endpoint '{endpoint_id}'",
                    config.model_definition_id
                ))
            } else {
                e
            }
        })?;
        let mut sql = self.sql("UPDATE gateway_endpoints SET last_updated_at = ");
        sql.bind_i64(now);
        if let Some(by) = &created_by {
            sql.push(", last_updated_by = ").bind_str(by);
        }
        sql.push(" WHERE endpoint_id = ").bind_str(endpoint_id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        let endpoint = self.get_gateway_endpoint(Some(endpoint_id), None).await?;
        endpoint
            .model_mappings
            .into_iter()
            .rev()
            .find(|m| {
                m.model_definition_id == definition.model_definition_id
                    && m.linkage_type == config.linkage_type
            })
            .ok_or_else(|| Error::internal("an attached model was not found again"))
    }

    pub async fn detach_gateway_model(&self, endpoint_id: &str, definition_id: &str) -> Result<()> {
        let mut sql = self.sql("DELETE FROM gateway_endpoint_models WHERE endpoint_id = ");
        sql.bind_str(endpoint_id)
            .push(" AND model_definition_id = ")
            .bind_str(definition_id);
        if sql
            .query()
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected()
            > 0
        {
            return Ok(());
        }
        self.get_gateway_endpoint(Some(endpoint_id), None).await?;
        Err(Error::not_found(format!(
            "Model definition '{definition_id}' is not attached to endpoint '{endpoint_id}'"
        )))
    }

    // ---- tags ----

    pub async fn set_gateway_endpoint_tag(
        &self,
        endpoint_id: &str,
        key: &str,
        value: &str,
    ) -> Result<()> {
        self.get_gateway_endpoint(Some(endpoint_id), None).await?;
        let mut sql =
            self.sql("INSERT INTO gateway_endpoint_tags (endpoint_id, key, value) VALUES (");
        sql.bind_str(endpoint_id)
            .push(", ")
            .bind_str(key)
            .push(", ")
            .bind_str(value)
            .push(") ON CONFLICT (endpoint_id, key) DO UPDATE SET value = excluded.value");
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    pub async fn delete_gateway_endpoint_tag(&self, endpoint_id: &str, key: &str) -> Result<()> {
        self.get_gateway_endpoint(Some(endpoint_id), None).await?;
        let mut sql = self.sql("DELETE FROM gateway_endpoint_tags WHERE endpoint_id = ");
        sql.bind_str(endpoint_id).push(" AND key = ").bind_str(key);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        Ok(())
    }

    // ---- bindings ----

    pub async fn create_gateway_binding(
        &self,
        endpoint_id: &str,
        resource_type: &str,
        resource_id: &str,
        display_name: Option<String>,
        created_by: Option<String>,
    ) -> Result<GatewayEndpointBinding> {
        self.get_gateway_endpoint(Some(endpoint_id), None).await?;
        let now = now_ms();
        let mut sql = self.sql(&format!(
            "INSERT INTO gateway_endpoint_bindings ({BINDING_COLUMNS}) VALUES ("
        ));
        sql.bind_str(endpoint_id)
            .push(", ")
            .bind_str(resource_type)
            .push(", ")
            .bind_str(resource_id)
            .push(", ")
            .bind(Bind::OptStr(display_name))
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind_i64(now)
            .push(", ")
            .bind(Bind::OptStr(created_by.clone()))
            .push(", ")
            .bind(Bind::OptStr(created_by))
            .push(")");
        sql.query().execute(&self.write).await.map_err(|e| {
            let e = db_err(e);
            if e.code == Code::ResourceAlreadyExists {
                Error::already_exists(format!(
                    "Binding of {resource_type} '{resource_id}' to endpoint '{endpoint_id}' \
                     already exists"
                ))
            } else {
                e
            }
        })?;
        let mut found = self
            .list_gateway_bindings(Some(endpoint_id), Some(resource_type), Some(resource_id))
            .await?;
        found
            .pop()
            .ok_or_else(|| Error::internal("a new binding was not found again"))
    }

    pub async fn delete_gateway_binding(
        &self,
        endpoint_id: &str,
        resource_type: &str,
        resource_id: &str,
    ) -> Result<()> {
        let mut sql = self.sql("DELETE FROM gateway_endpoint_bindings WHERE endpoint_id = ");
        sql.bind_str(endpoint_id)
            .push(" AND resource_type = ")
            .bind_str(resource_type)
            .push(" AND resource_id = ")
            .bind_str(resource_id);
        execute_one(sql, &self.write, || {
            Error::not_found(format!(
                "GatewayEndpointBinding not found (endpoint_id='{endpoint_id}', \
                 resource_type='{resource_type}', resource_id='{resource_id}')"
            ))
        })
        .await?;
        Ok(())
    }

    pub async fn list_gateway_bindings(
        &self,
        endpoint_id: Option<&str>,
        resource_type: Option<&str>,
        resource_id: Option<&str>,
    ) -> Result<Vec<GatewayEndpointBinding>> {
        let mut sql = self.sql(&format!(
            "SELECT {BINDING_COLUMNS} FROM gateway_endpoint_bindings WHERE 1 = 1"
        ));
        for (column, value) in [
            ("endpoint_id", endpoint_id),
            ("resource_type", resource_type),
            ("resource_id", resource_id),
        ] {
            if let Some(value) = value {
                sql.push(" AND ").push(column).push(" = ").bind_str(value);
            }
        }
        sql.push(" ORDER BY created_at, endpoint_id, resource_id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows.iter().map(binding_of).collect())
    }

    /// A scorer calls one endpoint at a time: registering it again moves its binding.
    pub(crate) async fn bind_scorer(
        &self,
        endpoint_id: &str,
        scorer_id: &str,
        scorer_name: &str,
    ) -> Result<()> {
        let mut sql = self.sql(
            "DELETE FROM gateway_endpoint_bindings WHERE resource_type = 'scorer' AND resource_id = ",
        );
        sql.bind_str(scorer_id);
        sql.query().execute(&self.write).await.map_err(db_err)?;
        self.create_gateway_binding(
            endpoint_id,
            "scorer",
            scorer_id,
            Some(scorer_name.to_string()),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Endpoint names by id, for showing scorers as they were registered.
    pub(crate) async fn gateway_endpoint_names(&self) -> Result<HashMap<String, String>> {
        let rows = sqlx::query("SELECT endpoint_id, name FROM gateway_endpoints")
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| (get_str(r, "endpoint_id"), get_str(r, "name")))
            .collect())
    }

    pub(crate) async fn gateway_endpoint_id(&self, name: &str) -> Result<String> {
        self.gateway_endpoint_id_by_name(name)
            .await?
            .ok_or_else(|| not_found("GatewayEndpoint", "name", name))
    }

    // ---- online scoring ----

    /// Sets how a scorer runs on the experiment's incoming traces (one config per scorer).
    pub async fn upsert_online_scoring_config(
        &self,
        experiment_id: &str,
        scorer_id: &str,
        sample_rate: f64,
        filter_string: Option<String>,
    ) -> Result<OnlineScoringConfig> {
        let config = OnlineScoringConfig {
            online_scoring_config_id: uuid::Uuid::new_v4().simple().to_string(),
            scorer_id: scorer_id.to_string(),
            sample_rate,
            experiment_id: experiment_id.to_string(),
            filter_string,
        };
        let mut tx = self.write.begin().await.map_err(db_err)?;
        let mut sql = self.sql("DELETE FROM online_scoring_configs WHERE scorer_id = ");
        sql.bind_str(scorer_id);
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        let mut sql = self.sql(
            "INSERT INTO online_scoring_configs (online_scoring_config_id, scorer_id, \
             experiment_id, sample_rate, filter_string) VALUES (",
        );
        sql.bind_str(&config.online_scoring_config_id)
            .push(", ")
            .bind_str(scorer_id)
            .push(", ")
            .bind_i64(parse_experiment_id(experiment_id)?)
            .push(", ")
            .bind_f64(sample_rate)
            .push(", ")
            .bind(Bind::OptStr(config.filter_string.clone()))
            .push(")");
        sql.query().execute(&mut *tx).await.map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(config)
    }

    pub async fn online_scoring_configs(
        &self,
        scorer_ids: &[String],
    ) -> Result<Vec<OnlineScoringConfig>> {
        if scorer_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = self.sql(
            "SELECT online_scoring_config_id, scorer_id, experiment_id, sample_rate, \
             filter_string FROM online_scoring_configs WHERE scorer_id IN ",
        );
        sql.bind_list(scorer_ids.iter().map(|id| Bind::Str(id.clone())))
            .push(" ORDER BY scorer_id");
        let rows = sql.query().fetch_all(&self.read).await.map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|row| OnlineScoringConfig {
                online_scoring_config_id: get_str(row, "online_scoring_config_id"),
                scorer_id: get_str(row, "scorer_id"),
                sample_rate: get_f64(row, "sample_rate"),
                experiment_id: get_i64(row, "experiment_id").to_string(),
                filter_string: get_opt_str(row, "filter_string"),
            })
            .collect())
    }
}
