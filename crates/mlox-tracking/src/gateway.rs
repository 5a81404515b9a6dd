//! MLflow 3's AI gateway inside the tracking server: `/api/3.0/mlflow/gateway/*` (secrets,
//! model definitions, endpoints, model mappings, bindings, tags), the UI's helper routes
//! (`supported-providers`, `provider-config`, `secrets/config`), scorers' online-scoring
//! configs, and the [`EndpointSource`] that lets mlox-gateway's engine answer
//! `/gateway/{endpoint}/mlflow/invocations` from the endpoints stored here. Secret values are
//! sealed before they reach the store and opened only for a call.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{ApiError, ApiResult};
use crate::request::{Msg, de_string_list};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::routing::{delete, get, post, put};
use mlox_core::budget::BudgetAction;
use mlox_core::gateway::{
    FALLBACK_STRATEGIES, FallbackConfig, LinkageType, ModelConfig, ROUTING_STRATEGIES,
    check_endpoint_name, check_resource_type, check_secret_values, mask_values, scorer_gateway_ref,
};
use mlox_core::validation::missing_request_parameter;
use mlox_core::{Code, Error};
use mlox_gateway::GatewayError;
use mlox_gateway::catalog::ModelCatalog;
use mlox_gateway::config::OpenAiFamily;
use mlox_gateway::stored::{
    CallScope, EndpointSource, LoadedEndpoint, StoredEndpoint, StoredModel,
};
use mlox_gateway::traces::{GatewayCall, otlp_export};
use mlox_store::SqlStore;
use mlox_store::gateway::{
    EndpointUpdate, ModelDefinitionUpdate, NewEndpoint, NewSecret, SecretValue,
};
use mlox_webhooks::secrets::Purpose;
use serde::Deserialize;
use serde_json::{Value, json};

type JsonResult = ApiResult<Json<Value>>;

/// The configuration routes, nested under every API prefix.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/gateway/secrets/create", post(create_secret))
        .route("/gateway/secrets/get", get(get_secret))
        .route("/gateway/secrets/update", post(update_secret))
        .route("/gateway/secrets/delete", delete(delete_secret))
        .route("/gateway/secrets/list", get(list_secrets))
        .route("/gateway/secrets/config", get(secrets_config))
        .route("/gateway/model-definitions/create", post(create_definition))
        .route("/gateway/model-definitions/get", get(get_definition))
        .route("/gateway/model-definitions/list", get(list_definitions))
        .route("/gateway/model-definitions/update", post(update_definition))
        .route(
            "/gateway/model-definitions/delete",
            delete(delete_definition),
        )
        .route("/gateway/endpoints/create", post(create_endpoint))
        .route("/gateway/endpoints/get", get(get_endpoint))
        .route("/gateway/endpoints/update", post(update_endpoint))
        .route("/gateway/endpoints/delete", delete(delete_endpoint))
        .route("/gateway/endpoints/list", get(list_endpoints))
        .route("/gateway/endpoints/models/attach", post(attach_model))
        .route("/gateway/endpoints/models/detach", post(detach_model))
        .route("/gateway/endpoints/bindings/create", post(create_binding))
        .route("/gateway/endpoints/bindings/delete", delete(delete_binding))
        .route("/gateway/endpoints/bindings/list", get(list_bindings))
        .route("/gateway/endpoints/set-tag", post(set_tag))
        .route("/gateway/endpoints/delete-tag", delete(delete_tag))
        .route("/gateway/supported-providers", get(supported_providers))
        .route("/gateway/supported-models", get(supported_models))
        .route("/gateway/provider-config", get(provider_config))
        .route("/gateway/guardrails/{*rest}", axum::routing::any(not_built))
        .route("/gateway-proxy", get(gateway_proxy).post(gateway_proxy))
        .route("/scorers/online-config", put(upsert_online_scoring_config))
        .route("/scorers/online-configs", get(get_online_scoring_configs))
}

fn required(value: Option<String>, name: &str) -> ApiResult<String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError(missing_request_parameter(name)))
}

fn nonempty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// Guardrails are part of MLflow's gateway that mlox does not have yet.
async fn not_built() -> ApiResult<Json<Value>> {
    Err(ApiError(Error::not_implemented(
        "Gateway guardrails are not implemented in mlox yet.",
    )))
}

/// MLflow's model catalog, read from `MLFLOW_MODEL_CATALOG_URI`: one for the process, shared
/// by the calls it prices and the UI's model lists.
pub fn model_catalog() -> Result<Arc<ModelCatalog>, String> {
    static CATALOG: std::sync::OnceLock<Arc<ModelCatalog>> = std::sync::OnceLock::new();
    if let Some(catalog) = CATALOG.get() {
        return Ok(catalog.clone());
    }
    let catalog = Arc::new(ModelCatalog::from_env()?);
    Ok(CATALOG.get_or_init(|| catalog).clone())
}

// ---------------------------------------------------------------------------- secrets

#[derive(Deserialize)]
pub struct SecretMsg {
    secret_id: Option<String>,
    secret_name: Option<String>,
    #[serde(default)]
    secret_value: Option<BTreeMap<String, String>>,
    provider: Option<String>,
    #[serde(default)]
    auth_config: Option<BTreeMap<String, String>>,
    created_by: Option<String>,
    updated_by: Option<String>,
}

fn sealed(values: &BTreeMap<String, String>) -> ApiResult<SecretValue> {
    check_secret_values(values)?;
    let text = serde_json::to_string(values).map_err(|e| Error::internal(e.to_string()))?;
    Ok(SecretValue {
        sealed: mlox_webhooks::secrets().seal_as(Purpose::GatewaySecret, &text)?,
        masked: mask_values(values),
    })
}

/// MLflow drops blank auth-config values.
fn auth_config(config: Option<BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    config.map(|c| {
        c.into_iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .collect()
    })
}

async fn create_secret(State(s): State<AppState>, Msg(m): Msg<SecretMsg>) -> JsonResult {
    let name = required(m.secret_name, "secret_name")?;
    let value = sealed(&m.secret_value.unwrap_or_default())?;
    let secret = s
        .store
        .create_gateway_secret(NewSecret {
            name,
            sealed_value: value.sealed,
            masked_values: value.masked,
            provider: nonempty(m.provider),
            auth_config: auth_config(m.auth_config).unwrap_or_default(),
            created_by: nonempty(m.created_by),
        })
        .await?;
    Ok(Json(json!({ "secret": secret })))
}

async fn get_secret(State(s): State<AppState>, Msg(m): Msg<SecretMsg>) -> JsonResult {
    let id = nonempty(m.secret_id);
    let name = nonempty(m.secret_name);
    if id.is_none() && name.is_none() {
        return Err(ApiError(missing_request_parameter("secret_id")));
    }
    let secret = s
        .store
        .get_gateway_secret(id.as_deref(), name.as_deref())
        .await?;
    Ok(Json(json!({ "secret": secret })))
}

async fn update_secret(State(s): State<AppState>, Msg(m): Msg<SecretMsg>) -> JsonResult {
    let id = required(m.secret_id, "secret_id")?;
    let value = match m.secret_value.filter(|v| !v.is_empty()) {
        Some(values) => Some(sealed(&values)?),
        None => None,
    };
    let config = auth_config(m.auth_config.filter(|c| !c.is_empty()));
    let secret = s
        .store
        .update_gateway_secret(&id, value, config, nonempty(m.updated_by))
        .await?;
    Ok(Json(json!({ "secret": secret })))
}

async fn delete_secret(State(s): State<AppState>, Msg(m): Msg<SecretMsg>) -> JsonResult {
    let id = required(m.secret_id, "secret_id")?;
    s.store.delete_gateway_secret(&id).await?;
    Ok(Json(json!({})))
}

async fn list_secrets(State(s): State<AppState>, Msg(m): Msg<SecretMsg>) -> JsonResult {
    let secrets = s
        .store
        .list_gateway_secrets(nonempty(m.provider).as_deref())
        .await?;
    Ok(Json(json!({ "secrets": secrets })))
}

async fn secrets_config() -> Json<Value> {
    Json(json!({
        "secrets_available": true,
        "using_default_passphrase": mlox_webhooks::secrets().uses_development_passphrase(),
    }))
}

// ---------------------------------------------------------------------------- model definitions

#[derive(Deserialize)]
pub struct DefinitionMsg {
    model_definition_id: Option<String>,
    name: Option<String>,
    secret_id: Option<String>,
    provider: Option<String>,
    model_name: Option<String>,
    created_by: Option<String>,
    updated_by: Option<String>,
}

async fn create_definition(State(s): State<AppState>, Msg(m): Msg<DefinitionMsg>) -> JsonResult {
    let name = required(m.name, "name")?;
    let secret_id = required(m.secret_id, "secret_id")?;
    let provider = required(m.provider, "provider")?;
    let model_name = required(m.model_name, "model_name")?;
    let definition = s
        .store
        .create_gateway_model_definition(
            &name,
            &secret_id,
            &provider,
            &model_name,
            nonempty(m.created_by),
        )
        .await?;
    Ok(Json(json!({ "model_definition": definition })))
}

async fn get_definition(State(s): State<AppState>, Msg(m): Msg<DefinitionMsg>) -> JsonResult {
    let id = required(m.model_definition_id, "model_definition_id")?;
    let definition = s.store.get_gateway_model_definition(&id).await?;
    Ok(Json(json!({ "model_definition": definition })))
}

async fn list_definitions(State(s): State<AppState>, Msg(m): Msg<DefinitionMsg>) -> JsonResult {
    let definitions = s
        .store
        .list_gateway_model_definitions(
            nonempty(m.provider).as_deref(),
            nonempty(m.secret_id).as_deref(),
        )
        .await?;
    Ok(Json(json!({ "model_definitions": definitions })))
}

async fn update_definition(State(s): State<AppState>, Msg(m): Msg<DefinitionMsg>) -> JsonResult {
    let id = required(m.model_definition_id, "model_definition_id")?;
    let definition = s
        .store
        .update_gateway_model_definition(
            &id,
            ModelDefinitionUpdate {
                name: nonempty(m.name),
                secret_id: nonempty(m.secret_id),
                model_name: nonempty(m.model_name),
                provider: nonempty(m.provider),
                updated_by: nonempty(m.updated_by),
            },
        )
        .await?;
    Ok(Json(json!({ "model_definition": definition })))
}

async fn delete_definition(State(s): State<AppState>, Msg(m): Msg<DefinitionMsg>) -> JsonResult {
    let id = required(m.model_definition_id, "model_definition_id")?;
    s.store.delete_gateway_model_definition(&id).await?;
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------------------- endpoints

#[derive(Deserialize)]
pub struct EndpointMsg {
    endpoint_id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    model_configs: Option<Vec<Value>>,
    model_config: Option<Value>,
    model_definition_id: Option<String>,
    routing_strategy: Option<Value>,
    fallback_config: Option<Value>,
    experiment_id: Option<String>,
    usage_tracking: Option<bool>,
    provider: Option<String>,
    secret_id: Option<String>,
    created_by: Option<String>,
    updated_by: Option<String>,
    key: Option<String>,
    value: Option<String>,
}

fn model_config(value: &Value, location: &str) -> ApiResult<ModelConfig> {
    let field = |name: &str| value.get(name).filter(|v| !v.is_null());
    let model_definition_id = field("model_definition_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            Error::invalid(format!(
                "Missing value for required parameter 'model_definition_id' in {location}."
            ))
        })?
        .to_string();
    let linkage_type = LinkageType::parse(field("linkage_type").unwrap_or(&Value::Null), location)?;
    let weight = match field("weight") {
        None => 1.0,
        Some(w) => w.as_f64().filter(|w| w.is_finite() && *w >= 0.0).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid value {w} for parameter 'weight' in {location}: a number of at least 0 is expected."
            ))
        })?,
    };
    let fallback_order = match field("fallback_order") {
        None => None,
        Some(o) => Some(o.as_i64().ok_or_else(|| {
            Error::invalid(format!(
                "Invalid value {o} for parameter 'fallback_order' in {location}: an integer is expected."
            ))
        })?),
    };
    Ok(ModelConfig {
        model_definition_id,
        linkage_type,
        weight,
        fallback_order,
    })
}

fn model_configs(values: &[Value]) -> ApiResult<Vec<ModelConfig>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| model_config(v, &format!("model_configs[{i}]")))
        .collect()
}

/// The enum by name (or by number, as protobuf JSON allows); `None` when unset.
fn enum_value(
    value: Option<&Value>,
    allowed: &[&str],
    parameter: &str,
) -> ApiResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.ends_with("_UNSPECIFIED") || s.is_empty() => Ok(None),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(None),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(Some(s.clone())),
        Some(Value::Number(n))
            if n.as_u64()
                .is_some_and(|i| i >= 1 && (i as usize) <= allowed.len()) =>
        {
            Ok(n.as_u64().map(|i| allowed[i as usize - 1].to_string()))
        }
        Some(other) => Err(ApiError(Error::invalid(format!(
            "Invalid value {other} for parameter '{parameter}'. Must be one of: {}.",
            allowed.join(", ")
        )))),
    }
}

fn fallback_config(value: Option<&Value>) -> ApiResult<Option<FallbackConfig>> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let strategy = enum_value(
        value.get("strategy"),
        &FALLBACK_STRATEGIES,
        "fallback_config.strategy",
    )?;
    let max_attempts = match value.get("max_attempts").filter(|v| !v.is_null()) {
        None => None,
        Some(n) => Some(n.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
            Error::invalid(format!(
                "Invalid value {n} for parameter 'fallback_config.max_attempts': a non-negative integer is expected."
            ))
        })?),
    };
    Ok(Some(FallbackConfig {
        strategy,
        max_attempts,
    }))
}

async fn create_endpoint(State(s): State<AppState>, Msg(m): Msg<EndpointMsg>) -> JsonResult {
    let name = required(m.name, "name")?;
    check_endpoint_name(&name)?;
    let configs = model_configs(&m.model_configs.unwrap_or_default())?;
    let endpoint = s
        .store
        .create_gateway_endpoint(NewEndpoint {
            name,
            model_configs: configs,
            created_by: nonempty(m.created_by),
            routing_strategy: enum_value(
                m.routing_strategy.as_ref(),
                &ROUTING_STRATEGIES,
                "routing_strategy",
            )?,
            fallback_config: fallback_config(m.fallback_config.as_ref())?,
            experiment_id: nonempty(m.experiment_id),
            // The client sends `true` unless told otherwise; absent means MLflow's default.
            usage_tracking: m.usage_tracking.unwrap_or(true),
        })
        .await?;
    Ok(Json(json!({ "endpoint": endpoint })))
}

async fn get_endpoint(State(s): State<AppState>, Msg(m): Msg<EndpointMsg>) -> JsonResult {
    let id = nonempty(m.endpoint_id);
    let name = nonempty(m.name);
    let endpoint = s
        .store
        .get_gateway_endpoint(id.as_deref(), name.as_deref())
        .await?;
    Ok(Json(json!({ "endpoint": endpoint })))
}

async fn update_endpoint(State(s): State<AppState>, Msg(m): Msg<EndpointMsg>) -> JsonResult {
    let id = required(m.endpoint_id, "endpoint_id")?;
    let name = nonempty(m.name);
    if let Some(name) = &name {
        check_endpoint_name(name)?;
    }
    // An empty list is what the client sends when it changes no models.
    let configs = match m.model_configs.filter(|c| !c.is_empty()) {
        Some(values) => Some(model_configs(&values)?),
        None => None,
    };
    let endpoint = s
        .store
        .update_gateway_endpoint(
            &id,
            EndpointUpdate {
                name,
                updated_by: nonempty(m.updated_by),
                routing_strategy: enum_value(
                    m.routing_strategy.as_ref(),
                    &ROUTING_STRATEGIES,
                    "routing_strategy",
                )?,
                fallback_config: fallback_config(m.fallback_config.as_ref())?,
                model_configs: configs,
                experiment_id: nonempty(m.experiment_id),
                usage_tracking: m.usage_tracking,
            },
        )
        .await?;
    Ok(Json(json!({ "endpoint": endpoint })))
}

async fn delete_endpoint(State(s): State<AppState>, Msg(m): Msg<EndpointMsg>) -> JsonResult {
    let id = required(m.endpoint_id, "endpoint_id")?;
    s.store.delete_gateway_endpoint(&id).await?;
    Ok(Json(json!({})))
}

async fn list_endpoints(State(s): State<AppState>, Msg(m): Msg<EndpointMsg>) -> JsonResult {
    let endpoints = s
        .store
        .list_gateway_endpoints(
            nonempty(m.provider).as_deref(),
            nonempty(m.secret_id).as_deref(),
        )
        .await?;
    Ok(Json(json!({ "endpoints": endpoints })))
}

async fn attach_model(State(s): State<AppState>, Msg(m): Msg<EndpointMsg>) -> JsonResult {
    let id = required(m.endpoint_id, "endpoint_id")?;
    let Some(config) = m.model_config.filter(|c| !c.is_null()) else {
        return Err(ApiError(missing_request_parameter("model_config")));
    };
    let config = model_config(&config, "model_config")?;
    let mapping = s
        .store
        .attach_gateway_model(&id, &config, nonempty(m.created_by))
        .await?;
    Ok(Json(json!({ "mapping": mapping })))
}

async fn detach_model(State(s): State<AppState>, Msg(m): Msg<EndpointMsg>) -> JsonResult {
    let id = required(m.endpoint_id, "endpoint_id")?;
    let definition = required(m.model_definition_id, "model_definition_id")?;
    s.store.detach_gateway_model(&id, &definition).await?;
    Ok(Json(json!({})))
}

async fn set_tag(State(s): State<AppState>, Msg(m): Msg<EndpointMsg>) -> JsonResult {
    let id = required(m.endpoint_id, "endpoint_id")?;
    let key = required(m.key, "key")?;
    s.store
        .set_gateway_endpoint_tag(&id, &key, &m.value.unwrap_or_default())
        .await?;
    Ok(Json(json!({})))
}

async fn delete_tag(State(s): State<AppState>, Msg(m): Msg<EndpointMsg>) -> JsonResult {
    let id = required(m.endpoint_id, "endpoint_id")?;
    let key = required(m.key, "key")?;
    s.store.delete_gateway_endpoint_tag(&id, &key).await?;
    Ok(Json(json!({})))
}

// ---------------------------------------------------------------------------- bindings

#[derive(Deserialize)]
pub struct BindingMsg {
    endpoint_id: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    created_by: Option<String>,
}

async fn create_binding(State(s): State<AppState>, Msg(m): Msg<BindingMsg>) -> JsonResult {
    let endpoint_id = required(m.endpoint_id, "endpoint_id")?;
    let resource_type = required(m.resource_type, "resource_type")?;
    check_resource_type(&resource_type)?;
    let resource_id = required(m.resource_id, "resource_id")?;
    let binding = s
        .store
        .create_gateway_binding(
            &endpoint_id,
            &resource_type,
            &resource_id,
            None,
            nonempty(m.created_by),
        )
        .await?;
    Ok(Json(json!({ "binding": binding })))
}

async fn delete_binding(State(s): State<AppState>, Msg(m): Msg<BindingMsg>) -> JsonResult {
    let endpoint_id = required(m.endpoint_id, "endpoint_id")?;
    let resource_type = required(m.resource_type, "resource_type")?;
    let resource_id = required(m.resource_id, "resource_id")?;
    s.store
        .delete_gateway_binding(&endpoint_id, &resource_type, &resource_id)
        .await?;
    Ok(Json(json!({})))
}

async fn list_bindings(State(s): State<AppState>, Msg(m): Msg<BindingMsg>) -> JsonResult {
    let bindings = s
        .store
        .list_gateway_bindings(
            nonempty(m.endpoint_id).as_deref(),
            nonempty(m.resource_type).as_deref(),
            nonempty(m.resource_id).as_deref(),
        )
        .await?;
    Ok(Json(json!({ "bindings": bindings })))
}

// ---------------------------------------------------------------------------- providers

/// The providers stored endpoints can call: the OpenAI-compatible family and mlox model
/// servers (`mlflow-model-serving`, the server's URL as `api_base`).
fn providers() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = OpenAiFamily::ALL.iter().map(|f| f.name()).collect();
    names.push("mlflow-model-serving");
    names.sort_unstable();
    names
}

async fn supported_providers() -> Json<Value> {
    Json(json!({ "providers": providers() }))
}

/// The models of the providers mlox calls, from MLflow's model catalog (`provider` narrows
/// them to one), with their modes, limits and prices, as MLflow's UI lists them.
async fn supported_models(Msg(m): Msg<ProviderMsg>) -> JsonResult {
    let catalog = model_catalog().map_err(|e| ApiError(Error::internal(e)))?;
    let wanted: Vec<&str> = match nonempty(m.provider) {
        Some(p) => {
            let known = providers();
            match known.iter().find(|k| **k == p) {
                Some(k) => vec![*k],
                None => Vec::new(),
            }
        }
        None => providers(),
    };
    // Each provider is its own file: read them side by side.
    let files = futures::future::join_all(wanted.iter().map(|p| catalog.models(p))).await;
    let mut models = Vec::new();
    for (provider, listed) in wanted.into_iter().zip(files) {
        let mut names: Vec<&String> = listed
            .iter()
            .filter(|(_, m)| {
                matches!(
                    m.mode.as_deref(),
                    Some("chat" | "completion" | "embedding" | "responses")
                )
            })
            .map(|(name, _)| name)
            .collect();
        names.sort();
        models.extend(names.into_iter().map(|n| listed[n].to_json(provider)));
    }
    Ok(Json(json!({ "models": models })))
}

#[derive(Deserialize)]
pub struct ProviderMsg {
    provider: Option<String>,
}

fn field(name: &str, description: String, required: bool) -> Value {
    json!({"name": name, "type": "string", "description": description, "required": required})
}

/// The form the UI shows for a provider's secret: an API key and an optional base URL (for
/// `mlflow-model-serving`, the model server's URL and an optional access token).
async fn provider_config(Msg(m): Msg<ProviderMsg>) -> JsonResult {
    let provider = required(m.provider, "provider")?;
    let title = {
        let mut chars = provider.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect::<String>())
            .unwrap_or_default()
    };
    let mode = if provider == "mlflow-model-serving" {
        json!({
            "mode": "api_key",
            "display_name": "Access token",
            "description": "A model server started by mlox serve; the token when it admits callers by token",
            "secret_fields": [field("api_key", "mlox access token (any text when the server is open)".into(), true)],
            "config_fields": [field("api_base", "The model server's URL".into(), true)],
        })
    } else {
        json!({
            "mode": "api_key",
            "display_name": "API Key",
            "description": format!("Use {title} API Key"),
            "secret_fields": [field("api_key", format!("{title} API Key"), true)],
            "config_fields": [field("api_base", format!("{title} API Base URL"), false)],
        })
    };
    Ok(Json(
        json!({"auth_modes": [mode], "default_mode": "api_key"}),
    ))
}

// ---------------------------------------------------------------------------- deployments proxy

#[derive(Deserialize)]
pub struct ProxyMsg {
    gateway_path: Option<String>,
    json_data: Option<Value>,
}

/// The only paths the UI's proxy reaches on the deployments server: listing endpoints, and
/// calling one. Anything else (another path, a full URL) would let a caller aim the tracking
/// server at any address.
fn proxied_path(method: &axum::http::Method, path: &str) -> ApiResult<String> {
    let trimmed = path.trim_matches('/');
    let allowed = if method == axum::http::Method::GET {
        trimmed == "api/2.0/endpoints"
    } else {
        let parts: Vec<&str> = trimmed.split('/').collect();
        matches!(parts.as_slice(), ["gateway", name, "invocations"] if !name.is_empty())
    };
    if allowed {
        Ok(trimmed.to_string())
    } else {
        Err(ApiError(Error::invalid(format!(
            "Invalid gateway_path: {path} for method: {method}"
        ))))
    }
}

/// `/ajax-api/2.0/mlflow/gateway-proxy`: the web UI's way to a deployments server named by the
/// operator in `MLFLOW_DEPLOYMENTS_TARGET`.
async fn gateway_proxy(method: axum::http::Method, Msg(m): Msg<ProxyMsg>) -> JsonResult {
    let Some(path) = nonempty(m.gateway_path) else {
        return Err(ApiError(Error::invalid(
            "Deployments proxy request must specify a gateway_path.",
        )));
    };
    let path = proxied_path(&method, &path)?;
    let target = std::env::var("MLFLOW_DEPLOYMENTS_TARGET")
        .ok()
        .filter(|t| !t.trim().is_empty());
    let Some(target) = target else {
        if method == axum::http::Method::GET {
            // No deployments server: it has no endpoints.
            return Ok(Json(json!({ "endpoints": [] })));
        }
        return Err(ApiError(Error::invalid(
            "No deployments server to call: MLFLOW_DEPLOYMENTS_TARGET is not set.",
        )));
    };
    let url = format!("{}/{path}", target.trim_end_matches('/'));
    let client = proxy_client()?;
    let request = if method == axum::http::Method::GET {
        client.get(&url)
    } else {
        client.post(&url).json(&m.json_data.unwrap_or(Value::Null))
    };
    let unreachable = |e: reqwest::Error| {
        ApiError(Error::new(
            Code::TemporarilyUnavailable,
            format!("Deployments proxy request to {target} failed: {e}"),
        ))
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let text = response.text().await.map_err(unreachable)?;
    if !status.is_success() {
        return Err(ApiError(Error::new(
            if status.is_client_error() {
                Code::InvalidParameterValue
            } else {
                Code::TemporarilyUnavailable
            },
            format!(
                "Deployments proxy request failed with error code {}. Error message: {text}",
                status.as_u16()
            ),
        )));
    }
    serde_json::from_str(&text).map(Json).map_err(|e| {
        ApiError(Error::new(
            Code::TemporarilyUnavailable,
            format!("The deployments server's answer is not JSON: {e}"),
        ))
    })
}

fn proxy_client() -> ApiResult<&'static reqwest::Client> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(300))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .ok()
        })
        .as_ref()
        .ok_or_else(|| ApiError(Error::internal("cannot build an HTTP client")))
}

// ---------------------------------------------------------------------------- online scoring

#[derive(Deserialize)]
pub struct OnlineConfigMsg {
    experiment_id: Option<String>,
    name: Option<String>,
    sample_rate: Option<Value>,
    filter_string: Option<Value>,
    #[serde(default, deserialize_with = "de_string_list")]
    scorer_ids: Vec<String>,
}

async fn upsert_online_scoring_config(
    State(s): State<AppState>,
    Msg(m): Msg<OnlineConfigMsg>,
) -> JsonResult {
    let experiment_id = required(m.experiment_id, "experiment_id")?;
    let name = required(m.name, "name")?;
    let sample_rate = match &m.sample_rate {
        None | Some(Value::Null) => return Err(ApiError(missing_request_parameter("sample_rate"))),
        Some(value) => value
            .as_f64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| Error::invalid(format!("sample_rate must be a number, got {value}")))?,
    };
    if !(0.0..=1.0).contains(&sample_rate) {
        return Err(ApiError(Error::invalid(format!(
            "sample_rate must be between 0.0 and 1.0, got {sample_rate}"
        ))));
    }
    let filter_string = match m.filter_string {
        None | Some(Value::Null) => None,
        Some(Value::String(f)) => Some(f),
        Some(other) => {
            return Err(ApiError(Error::invalid(format!(
                "Invalid value {other} for parameter 'filter_string' supplied: Expected type \
                 'str' or None."
            ))));
        }
    };
    if let Some(filter) = filter_string.as_deref().filter(|f| !f.is_empty()) {
        mlox_core::search::parse_filter(mlox_core::search::SearchEntity::Traces, filter)?;
    }
    let experiment = s.store.active_experiment(&experiment_id).await?;
    let scorer = s
        .store
        .get_scorer(&experiment.experiment_id, &name, None)
        .await?;
    if sample_rate > 0.0 {
        let serialized: Value = serde_json::from_str(&scorer.serialized_scorer).unwrap_or_default();
        if scorer_gateway_ref(&serialized).is_none() {
            return Err(ApiError(Error::invalid(format!(
                "Scorer '{name}' does not use a gateway model. Automatic evaluation is only \
                 supported for scorers that use gateway models."
            ))));
        }
    }
    let config = s
        .store
        .upsert_online_scoring_config(
            &experiment.experiment_id,
            &scorer.scorer_id,
            sample_rate,
            filter_string,
        )
        .await?;
    Ok(Json(json!({ "config": config })))
}

async fn get_online_scoring_configs(
    State(s): State<AppState>,
    Msg(m): Msg<OnlineConfigMsg>,
) -> JsonResult {
    if m.scorer_ids.is_empty() {
        return Err(ApiError(missing_request_parameter("scorer_ids")));
    }
    let configs = s.store.online_scoring_configs(&m.scorer_ids).await?;
    Ok(Json(json!({ "configs": configs })))
}

// ---------------------------------------------------------------------------- invocations

/// The endpoints of this tracking server's store, for the gateway engine.
pub struct StoreEndpoints {
    store: SqlStore,
    allow_private: bool,
}

impl StoreEndpoints {
    pub fn new(store: SqlStore) -> Arc<StoreEndpoints> {
        let allow_private = std::env::var("MLFLOW_GATEWAY_API_BASE_ALLOW_PRIVATE_IPS")
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
        Arc::new(StoreEndpoints {
            store,
            allow_private,
        })
    }

    async fn load(&self, name: &str) -> Result<LoadedEndpoint, Error> {
        let endpoint = self.store.get_gateway_endpoint(None, Some(name)).await?;
        let mut models = Vec::with_capacity(endpoint.model_mappings.len());
        for mapping in &endpoint.model_mappings {
            let Some(definition) = &mapping.model_definition else {
                continue;
            };
            let (secret, auth_config) = match &definition.secret_id {
                Some(secret_id) => {
                    let (info, sealed) = self.store.gateway_secret_sealed(secret_id).await?;
                    let opened =
                        mlox_webhooks::secrets().open_as(Purpose::GatewaySecret, &sealed)?;
                    let values: BTreeMap<String, String> =
                        serde_json::from_str(&opened).map_err(|_| {
                            Error::internal("a stored gateway secret is not a JSON map")
                        })?;
                    (values, info.auth_config)
                }
                None => (BTreeMap::new(), BTreeMap::new()),
            };
            models.push(StoredModel {
                provider: definition.provider.clone(),
                model_name: definition.model_name.clone(),
                secret,
                auth_config,
                weight: mapping.weight,
                fallback_order: mapping.fallback_order,
                primary: mapping.linkage_type == LinkageType::Primary,
            });
        }
        let fallback = endpoint.fallback_config.as_ref();
        Ok(LoadedEndpoint {
            endpoint: StoredEndpoint {
                id: endpoint.endpoint_id.clone(),
                name: endpoint.name.clone(),
                traffic_split: endpoint.routing_strategy.as_deref()
                    == Some("REQUEST_BASED_TRAFFIC_SPLIT"),
                falls_back: fallback.is_some(),
                max_fallback_attempts: fallback
                    .and_then(|f| f.max_attempts)
                    .filter(|n| *n > 0)
                    .map(|n| n as usize),
                models,
            },
            usage_experiment_id: endpoint.experiment_id.filter(|_| endpoint.usage_tracking),
        })
    }
}

fn gateway_error(e: Error) -> GatewayError {
    match e.code {
        Code::ResourceDoesNotExist => GatewayError::NotFound(e.message),
        Code::InvalidParameterValue | Code::BadRequest => GatewayError::BadRequest(e.message),
        _ => GatewayError::BadGateway(e.message),
    }
}

impl EndpointSource for StoreEndpoints {
    async fn endpoint(&self, name: &str) -> Result<LoadedEndpoint, GatewayError> {
        self.load(name).await.map_err(gateway_error)
    }

    async fn endpoint_names(&self) -> Result<Vec<(String, i64)>, GatewayError> {
        let endpoints = self
            .store
            .list_gateway_endpoints(None, None)
            .await
            .map_err(gateway_error)?;
        Ok(endpoints
            .into_iter()
            .map(|e| (e.name, e.created_at))
            .collect())
    }

    fn record(&self, experiment_id: &str, call: GatewayCall) {
        let store = self.store.clone();
        let experiment_id = experiment_id.to_string();
        // After the answer, on a task of its own: recording never delays or fails a call.
        tokio::spawn(async move {
            let export = otlp_export(&call).to_string();
            let spans = match crate::otlp::read_json_export(export.as_bytes()) {
                Ok(spans) => spans,
                Err(e) => {
                    tracing::warn!(error = %e.message, "gateway call not traced");
                    return;
                }
            };
            if let Err(e) = store.log_spans(&experiment_id, spans).await {
                tracing::warn!(error = %e.message, experiment_id, "gateway call not traced");
            }
        });
    }

    fn allow_private_destinations(&self) -> bool {
        self.allow_private
    }

    async fn admit(&self, call: &CallScope) -> Result<(), GatewayError> {
        let now = mlox_store::now_ms();
        let scope = budget_scope(call);
        let policies = self
            .store
            .all_budget_policies()
            .await
            .map_err(gateway_error)?;
        for policy in policies
            .iter()
            .filter(|p| p.budget_action == BudgetAction::Reject && p.applies_to(scope))
        {
            let window = policy.window_at(now);
            let spend = self
                .store
                .budget_spend(policy, window)
                .await
                .map_err(gateway_error)?;
            if spend >= policy.budget_amount {
                return Err(GatewayError::RateLimited {
                    message: policy.rejection_message(window),
                    retry_after: std::time::Duration::from_millis(
                        (window.end_ms - now).max(0) as u64
                    ),
                });
            }
        }
        Ok(())
    }

    fn charge(&self, call: CallScope, cost_usd: f64) {
        let store = self.store.clone();
        tokio::spawn(async move {
            let at = mlox_store::now_ms();
            if let Err(e) = store
                .record_gateway_spend(budget_scope(&call), cost_usd, at)
                .await
            {
                tracing::warn!(error = %e.message, endpoint_id = %call.endpoint_id, cost_usd, "a gateway call's cost was not recorded");
            }
        });
    }
}

fn budget_scope(call: &CallScope) -> mlox_core::budget::CallScope<'_> {
    mlox_core::budget::CallScope {
        endpoint_id: Some(call.endpoint_id.as_str()),
        username: call.username.as_deref(),
    }
}

/// The invocation routes served from the stored endpoints.
pub fn invocation_routes(store: SqlStore) -> Result<axum::Router, String> {
    let upstream = mlox_gateway::upstream::Upstream::new()?;
    Ok(mlox_gateway::http::stored_router(
        StoreEndpoints::new(store),
        upstream,
        model_catalog()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_are_read_by_name_or_number_and_unspecified_is_unset() {
        let strategies = &ROUTING_STRATEGIES;
        assert_eq!(
            enum_value(Some(&json!("REQUEST_BASED_TRAFFIC_SPLIT")), strategies, "r").unwrap(),
            Some("REQUEST_BASED_TRAFFIC_SPLIT".to_string())
        );
        assert_eq!(
            enum_value(Some(&json!(1)), strategies, "r").unwrap(),
            Some("REQUEST_BASED_TRAFFIC_SPLIT".to_string())
        );
        assert_eq!(
            enum_value(
                Some(&json!("ROUTING_STRATEGY_UNSPECIFIED")),
                strategies,
                "r"
            )
            .unwrap(),
            None
        );
        assert!(enum_value(Some(&json!("ROUND_ROBIN")), strategies, "r").is_err());
    }

    #[test]
    fn model_configs_name_the_failing_entry() {
        let err = model_configs(&[
            json!({"model_definition_id": "d-1", "linkage_type": "PRIMARY"}),
            json!({"model_definition_id": "d-2"}),
        ])
        .unwrap_err();
        assert!(
            err.0.message.contains("model_configs[1]"),
            "{}",
            err.0.message
        );
        let ok = model_config(
            &json!({"model_definition_id": "d-1", "linkage_type": "FALLBACK", "fallback_order": 2}),
            "x",
        )
        .unwrap();
        assert_eq!(ok.weight, 1.0);
        assert_eq!(ok.fallback_order, Some(2));
    }
}
