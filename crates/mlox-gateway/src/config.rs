//! The gateway's `config.yaml`: MLflow 3.17's schema, read and checked the way MLflow checks it,
//! plus the few keys mlox adds (`retries`, `timeout`, `mlox_chat_messages`,
//! `mlox_model_server_token`).
//!
//! Reading happens in two steps. The YAML is first decoded into loose `Raw*` structs that keep
//! source positions ([`serde_saphyr::Spanned`]) and accept anything MLflow would ignore; then
//! [`validate`] applies MLflow's rules one by one, so every error names the field, and the
//! line when the YAML library knows it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_saphyr::Spanned;

use crate::retry::RetryPolicy;

/// MLflow's default for `MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The three kinds of endpoint MLflow's gateway knows (`endpoint_type`, a route's `task_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointType {
    Completions,
    Chat,
    Embeddings,
}

impl EndpointType {
    pub const ALL: [EndpointType; 3] = [
        EndpointType::Completions,
        EndpointType::Chat,
        EndpointType::Embeddings,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndpointType::Completions => "llm/v1/completions",
            EndpointType::Chat => "llm/v1/chat",
            EndpointType::Embeddings => "llm/v1/embeddings",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }
}

impl fmt::Display for EndpointType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A checked gateway configuration.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// In file order: MLflow lists endpoints in that order.
    pub endpoints: Vec<EndpointConfig>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Clone, Debug)]
pub struct EndpointConfig {
    pub name: String,
    pub endpoint_type: EndpointType,
    /// The upstream model id (`model.name`), echoed in MLflow's answers.
    pub model_name: Option<String>,
    pub provider: ProviderConfig,
    pub limit: Option<Limit>,
    /// mlox extension: server-side retries (on by default).
    pub retries: RetryPolicy,
    /// mlox extension `timeout` (seconds), else `MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS`.
    pub timeout: Duration,
    /// mlox extension `fallbacks`: endpoints of the same type tried in order when this one
    /// fails with what another upstream could cure (unreachable, timeout, 429, 5xx).
    pub fallbacks: Vec<String>,
}

/// The upstream family an endpoint talks to, with its resolved settings.
#[derive(Clone, PartialEq, Eq)]
pub enum ProviderConfig {
    /// `mlflow-model-serving`: `POST {model_server_url}/invocations`.
    ModelServing {
        model_server_url: String,
        /// mlox extension (`config.mlox_chat_messages: true`): the upstream model takes
        /// OpenAI-style chat messages, so chat requests are sent whole instead of MLflow's
        /// single-message `inputs`.
        chat_messages: bool,
        /// mlox extension (`config.mlox_model_server_token`, resolved like API keys): sent as
        /// `Authorization: Bearer` to a model server that admits callers by token
        /// (`mlox serve --auth-tracking-uri`).
        token: Option<String>,
    },
    /// Anthropic's Messages API (`anthropic_api_key`, `anthropic_version`,
    /// `anthropic_api_base`): chat only.
    Anthropic {
        api_base: String,
        api_key: String,
        version: String,
    },
    /// Hugging Face's Text Generation Inference server (`hf_server_url`): completions only,
    /// through its `/generate`, as MLflow maps them.
    TextGenerationInference { server_url: String },
    /// `openai` and the providers that speak OpenAI's API at another base URL.
    OpenAiCompatible {
        provider: OpenAiFamily,
        api_base: String,
        api_key: Option<String>,
        organization: Option<String>,
        /// Azure OpenAI (`openai_api_type: azure | azuread`): the model is the deployment.
        azure: Option<AzureDeployment>,
    },
}

/// Where Azure OpenAI serves a model: `{api_base}/openai/deployments/{deployment}/…?api-version=…`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureDeployment {
    pub deployment: String,
    pub api_version: String,
    /// `azuread`: the key is a Microsoft Entra ID token sent as a bearer token; `azure`: an
    /// API key sent in `api-key`.
    pub entra_id: bool,
}

impl fmt::Debug for ProviderConfig {
    // Keys stay out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderConfig::ModelServing {
                model_server_url,
                chat_messages,
                token,
            } => f
                .debug_struct("ModelServing")
                .field("model_server_url", model_server_url)
                .field("chat_messages", chat_messages)
                .field("token", &token.as_ref().map(|_| "…"))
                .finish(),
            ProviderConfig::Anthropic {
                api_base, version, ..
            } => f
                .debug_struct("Anthropic")
                .field("api_base", api_base)
                .field("version", version)
                .finish_non_exhaustive(),
            ProviderConfig::TextGenerationInference { server_url } => f
                .debug_struct("TextGenerationInference")
                .field("server_url", server_url)
                .finish(),
            ProviderConfig::OpenAiCompatible {
                provider, api_base, ..
            } => f
                .debug_struct("OpenAiCompatible")
                .field("provider", provider)
                .field("api_base", api_base)
                .finish_non_exhaustive(),
        }
    }
}

impl ProviderConfig {
    /// The provider's name as MLflow prints it in `model.provider`.
    pub fn name(&self) -> &'static str {
        match self {
            ProviderConfig::ModelServing { .. } => "mlflow-model-serving",
            ProviderConfig::TextGenerationInference { .. } => TGI,
            ProviderConfig::Anthropic { .. } => "anthropic",
            ProviderConfig::OpenAiCompatible { provider, .. } => provider.name(),
        }
    }
}

/// Providers whose upstream speaks OpenAI's `/chat/completions`, `/completions` and
/// `/embeddings`; they differ only in the default base URL and the config keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenAiFamily {
    OpenAi,
    Groq,
    DeepSeek,
    Xai,
    OpenRouter,
    TogetherAi,
    Mistral,
    Ollama,
}

impl OpenAiFamily {
    pub const ALL: [OpenAiFamily; 8] = [
        OpenAiFamily::OpenAi,
        OpenAiFamily::Groq,
        OpenAiFamily::DeepSeek,
        OpenAiFamily::Xai,
        OpenAiFamily::OpenRouter,
        OpenAiFamily::TogetherAi,
        OpenAiFamily::Mistral,
        OpenAiFamily::Ollama,
    ];

    /// The family a provider name (as normalized by MLflow) belongs to.
    pub fn from_name(normalized: &str) -> Option<OpenAiFamily> {
        OpenAiFamily::ALL
            .into_iter()
            .find(|family| family.name() == normalized)
    }

    pub fn name(self) -> &'static str {
        match self {
            OpenAiFamily::OpenAi => "openai",
            OpenAiFamily::Groq => "groq",
            OpenAiFamily::DeepSeek => "deepseek",
            OpenAiFamily::Xai => "xai",
            OpenAiFamily::OpenRouter => "openrouter",
            OpenAiFamily::TogetherAi => "togetherai",
            OpenAiFamily::Mistral => "mistral",
            OpenAiFamily::Ollama => "ollama",
        }
    }

    pub fn default_api_base(self) -> &'static str {
        match self {
            OpenAiFamily::OpenAi => "https://api.openai.com/v1",
            OpenAiFamily::Groq => "https://api.groq.com/openai/v1",
            OpenAiFamily::DeepSeek => "https://api.deepseek.com/v1",
            OpenAiFamily::Xai => "https://api.x.ai/v1",
            OpenAiFamily::OpenRouter => "https://openrouter.ai/api/v1",
            OpenAiFamily::TogetherAi => "https://api.together.xyz/v1",
            OpenAiFamily::Mistral => "https://api.mistral.ai/v1",
            OpenAiFamily::Ollama => "http://localhost:11434/v1",
        }
    }

    /// The config keys holding the key and base URL. MLflow's `togetherai` and `mistral` have
    /// no base-URL key; mlox reads `<name>_api_base` for them (an extension, so a test or a
    /// proxy can stand in for the service).
    fn keys(self) -> (&'static str, &'static str) {
        match self {
            OpenAiFamily::OpenAi => ("openai_api_key", "openai_api_base"),
            OpenAiFamily::TogetherAi => ("togetherai_api_key", "togetherai_api_base"),
            OpenAiFamily::Mistral => ("mistral_api_key", "mistral_api_base"),
            _ => ("api_key", "api_base"),
        }
    }
}

/// MLflow's name for Hugging Face's Text Generation Inference server.
pub const TGI: &str = "huggingface-text-generation-inference";

/// The providers this build implements, as named in the config and in errors.
pub const SUPPORTED_PROVIDERS: [&str; 12] = [
    "mlflow-model-serving",
    "openai",
    "azure",
    "anthropic",
    TGI,
    "groq",
    "deepseek",
    "xai",
    "openrouter",
    "togetherai",
    "mistral",
    "ollama",
];

/// Providers MLflow registers that mlox does not implement; they are refused at start-up
/// rather than accepted and failed at query time.
const MLFLOW_PROVIDERS_NOT_BUILT: [&str; 13] = [
    "gemini",
    "bedrock",
    "amazon-bedrock",
    "cohere",
    "ai21labs",
    "mosaicml",
    "palm",
    "databricks",
    "databricks-model-serving",
    "litellm",
    "vertex_ai",
    "portkey",
    "sap-ai-core",
];

/// Why a provider name cannot be used: not yet built, or not an MLflow provider at all.
pub fn unsupported_provider(name: &str) -> String {
    let supported = SUPPORTED_PROVIDERS.join(", ");
    let normalized = normalize_provider(name);
    if MLFLOW_PROVIDERS_NOT_BUILT
        .iter()
        .any(|p| normalize_provider(p) == normalized)
    {
        format!(
            "the MLflow provider '{name}' is not implemented in mlox yet; supported providers: {supported}"
        )
    } else {
        format!("the provider '{name}' is not supported; supported providers: {supported}")
    }
}

/// `limit: {calls, renewal_period}`, as MLflow echoes it back (`key` is accepted and unused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limit {
    pub calls: u64,
    pub key: Option<String>,
    /// As written in the config (`minute`, `2 hours`, …).
    pub renewal_period: String,
    /// The window the calls are counted in.
    pub window: Duration,
}

#[derive(Clone, Debug)]
pub struct RouteConfig {
    pub name: String,
    pub task_type: EndpointType,
    pub destinations: Vec<Destination>,
}

#[derive(Clone, Debug)]
pub struct Destination {
    pub name: String,
    pub traffic_percentage: u8,
}

/// A config the gateway cannot run with: which field, where, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// 1-based line in the YAML file, when known.
    pub line: Option<u64>,
    /// The field's path, e.g. `endpoints[1].model.provider`; empty for the whole file.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.field.is_empty()) {
            (Some(line), false) => write!(f, "line {line}, {}: {}", self.field, self.message),
            (Some(line), true) => write!(f, "line {line}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.field, self.message),
            (None, true) => f.write_str(&self.message),
        }
    }
}

/// Where the loader reads environment variables and secret files; tests pass their own.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
    fn read_file(&self, path: &Path) -> Option<String>;
}

/// The process environment and file system.
pub struct ProcessEnvironment;

impl Environment for ProcessEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn read_file(&self, path: &Path) -> Option<String> {
        // MLflow reads the key when the path is a regular file; anything else is a literal.
        if path.is_file() {
            std::fs::read_to_string(path).ok()
        } else {
            None
        }
    }
}

/// Reads and checks a config file.
pub fn load(path: &Path, env: &dyn Environment) -> Result<GatewayConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        line: None,
        field: String::new(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    parse(&text, env)
}

// ---------------------------------------------------------------------------------------------
// The YAML as written: loose, so each rule below can give its own message.

#[derive(Deserialize)]
struct RawConfig {
    endpoints: Option<Vec<Spanned<RawEndpoint>>>,
    routes: Option<Vec<Spanned<RawRoute>>>,
    retries: Option<Spanned<RawRetries>>,
    timeout: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
struct RawEndpoint {
    name: Option<Spanned<String>>,
    endpoint_type: Option<Spanned<String>>,
    route_type: Option<Spanned<IgnoredAny>>,
    model: Option<Spanned<RawModel>>,
    limit: Option<Spanned<RawLimit>>,
    retries: Option<Spanned<RawRetries>>,
    timeout: Option<Spanned<f64>>,
    fallbacks: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
struct RawModel {
    name: Option<String>,
    provider: Option<Spanned<String>>,
    config: Option<Spanned<BTreeMap<String, serde_json::Value>>>,
}

#[derive(Deserialize)]
struct RawLimit {
    calls: Option<i64>,
    key: Option<String>,
    renewal_period: Option<String>,
}

#[derive(Deserialize)]
struct RawRoute {
    name: Option<Spanned<String>>,
    task_type: Option<Spanned<String>>,
    destinations: Option<Vec<Spanned<RawDestination>>>,
    routing_strategy: Option<Spanned<String>>,
}

#[derive(Deserialize)]
struct RawDestination {
    name: Option<String>,
    traffic_percentage: Option<i64>,
}

/// `retries: false`, `retries: true` or a map of settings.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawRetries {
    Switch(bool),
    Settings {
        max_attempts: Option<u32>,
        backoff_ms: Option<u64>,
        max_backoff_ms: Option<u64>,
        max_retry_after_ms: Option<u64>,
    },
}

fn line_of<T>(spanned: &Spanned<T>) -> Option<u64> {
    Some(spanned.referenced.line())
}

/// Parses and checks config text.
pub fn parse(text: &str, env: &dyn Environment) -> Result<GatewayConfig, ConfigError> {
    let raw: Option<RawConfig> = serde_saphyr::from_str(text).map_err(|e| ConfigError {
        line: e.location().map(|l| l.line()),
        field: String::new(),
        message: format!("not a valid gateway config: {e}"),
    })?;
    let raw = raw.ok_or_else(|| {
        err(
            None,
            "endpoints",
            "the config is empty; `endpoints` is required",
        )
    })?;
    validate(raw, env)
}

fn err(line: Option<u64>, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        line,
        field: field.into(),
        message: message.into(),
    }
}

fn validate(raw: RawConfig, env: &dyn Environment) -> Result<GatewayConfig, ConfigError> {
    let default_timeout = match &raw.timeout {
        Some(t) => timeout_seconds(t, "timeout")?,
        None => env_timeout(env)?,
    };
    let default_retries = match &raw.retries {
        Some(r) => retry_policy(r, RetryPolicy::default(), "retries")?,
        None => RetryPolicy::default(),
    };
    let Some(raw_endpoints) = raw.endpoints else {
        return Err(err(None, "endpoints", "`endpoints` is required"));
    };
    let raw_routes = raw.routes.unwrap_or_default();

    // Names first: MLflow checks collisions across endpoints and routes before anything else.
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut names = Vec::new();
    for (i, e) in raw_endpoints.iter().enumerate() {
        names.push((format!("endpoints[{i}]"), line_of(e), e.value.name.as_ref()));
    }
    for (i, r) in raw_routes.iter().enumerate() {
        names.push((format!("routes[{i}]"), line_of(r), r.value.name.as_ref()));
    }
    for (field, line, name) in names {
        let Some(name) = name else {
            return Err(err(line, format!("{field}.name"), "`name` is required"));
        };
        check_name(&name.value, line_of(name), &format!("{field}.name"))?;
        if let Some(first) = seen.insert(name.value.clone(), field.clone()) {
            return Err(err(
                line_of(name),
                format!("{field}.name"),
                format!(
                    "duplicate name '{}' (also {first}); names must be unique across endpoints and routes",
                    name.value
                ),
            ));
        }
    }

    let fallback_lines: Vec<Option<u64>> = raw_endpoints
        .iter()
        .map(|e| e.value.fallbacks.as_ref().and_then(line_of))
        .collect();
    let mut endpoints = Vec::with_capacity(raw_endpoints.len());
    for (i, e) in raw_endpoints.into_iter().enumerate() {
        endpoints.push(endpoint(
            &format!("endpoints[{i}]"),
            e,
            env,
            &default_retries,
            default_timeout,
        )?);
    }
    let types: HashMap<&str, EndpointType> = endpoints
        .iter()
        .map(|e| (e.name.as_str(), e.endpoint_type))
        .collect();
    for (i, e) in endpoints.iter().enumerate() {
        let field = format!("endpoints[{i}].fallbacks");
        for (j, fallback) in e.fallbacks.iter().enumerate() {
            let line = fallback_lines.get(i).copied().flatten();
            let Some(kind) = types.get(fallback.as_str()) else {
                return Err(err(
                    line,
                    format!("{field}[{j}]"),
                    format!("'{fallback}' is not an endpoint name; fallbacks must be endpoints"),
                ));
            };
            if *fallback == e.name || e.fallbacks[..j].contains(fallback) {
                return Err(err(
                    line,
                    format!("{field}[{j}]"),
                    format!("'{fallback}' is named twice, or is the endpoint itself"),
                ));
            }
            if *kind != e.endpoint_type {
                return Err(err(
                    line,
                    format!("{field}[{j}]"),
                    format!(
                        "endpoint '{fallback}' has endpoint type '{kind}' but '{}' has '{}'",
                        e.name, e.endpoint_type
                    ),
                ));
            }
        }
    }
    let mut routes = Vec::with_capacity(raw_routes.len());
    for (i, r) in raw_routes.into_iter().enumerate() {
        routes.push(route(&format!("routes[{i}]"), r, &types)?);
    }
    Ok(GatewayConfig { endpoints, routes })
}

/// MLflow's rule for endpoint and route names (`^[a-zA-Z0-9_.-]+$`): they become URL segments.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn check_name(name: &str, line: Option<u64>, field: &str) -> Result<(), ConfigError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(err(
            line,
            field,
            format!(
                "'{name}' is invalid: names may contain only ASCII letters, digits, '_', '-' and '.'"
            ),
        ))
    }
}

fn endpoint(
    field: &str,
    spanned: Spanned<RawEndpoint>,
    env: &dyn Environment,
    default_retries: &RetryPolicy,
    default_timeout: Duration,
) -> Result<EndpointConfig, ConfigError> {
    let line = line_of(&spanned);
    let raw = spanned.value;
    // Presence was checked with the names.
    let name = raw.name.map(|n| n.value).unwrap_or_default();
    if let Some(route_type) = &raw.route_type {
        return Err(err(
            line_of(route_type),
            format!("{field}.route_type"),
            "the 'route_type' key is not supported; use 'endpoint_type'",
        ));
    }
    let endpoint_type = match &raw.endpoint_type {
        None => return Err(err(line, format!("{field}.endpoint_type"), "`endpoint_type` is required")),
        Some(t) => EndpointType::parse(&t.value).ok_or_else(|| {
            err(
                line_of(t),
                format!("{field}.endpoint_type"),
                format!(
                    "'{}' is not supported; use one of llm/v1/completions, llm/v1/chat, llm/v1/embeddings",
                    t.value
                ),
            )
        })?,
    };
    let Some(model) = raw.model else {
        return Err(err(line, format!("{field}.model"), "`model` is required"));
    };
    let model_line = line_of(&model);
    let model = model.value;
    let Some(provider_name) = model.provider else {
        return Err(err(
            model_line,
            format!("{field}.model.provider"),
            "`provider` is required",
        ));
    };
    let Some(config) = model.config else {
        return Err(err(
            model_line,
            format!("{field}.model.config"),
            format!(
                "a config must be supplied for provider '{}'",
                provider_name.value
            ),
        ));
    };
    let provider = provider(field, &provider_name, &config, env)?;
    let only = match provider {
        ProviderConfig::TextGenerationInference { .. } => Some((TGI, EndpointType::Completions)),
        // Anthropic retired the completions API MLflow maps llm/v1/completions to.
        ProviderConfig::Anthropic { .. } => Some(("anthropic", EndpointType::Chat)),
        _ => None,
    };
    if let Some((name, kind)) = only
        && endpoint_type != kind
    {
        return Err(err(
            line,
            format!("{field}.endpoint_type"),
            format!("provider '{name}' serves {} only", kind.as_str()),
        ));
    }
    let limit = raw
        .limit
        .map(|l| limit(&format!("{field}.limit"), l))
        .transpose()?;
    let retries = match &raw.retries {
        Some(r) => retry_policy(r, default_retries.clone(), &format!("{field}.retries"))?,
        None => default_retries.clone(),
    };
    let timeout = match &raw.timeout {
        Some(t) => timeout_seconds(t, &format!("{field}.timeout"))?,
        None => default_timeout,
    };
    Ok(EndpointConfig {
        name,
        endpoint_type,
        model_name: model.name,
        provider,
        limit,
        retries,
        timeout,
        fallbacks: raw.fallbacks.map(|f| f.value).unwrap_or_default(),
    })
}

/// MLflow matches provider names case-insensitively with `-` and `_` alike.
pub fn normalize_provider(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

fn provider(
    field: &str,
    name: &Spanned<String>,
    config: &Spanned<BTreeMap<String, serde_json::Value>>,
    env: &dyn Environment,
) -> Result<ProviderConfig, ConfigError> {
    let normalized = normalize_provider(&name.value);
    let provider_field = format!("{field}.model.provider");
    let config_field = format!("{field}.model.config");
    let family = match normalized.as_str() {
        "mlflow-model-serving" => {
            let url = string_key(config, "model_server_url", &config_field)?.ok_or_else(|| {
                err(
                    line_of(config),
                    format!("{config_field}.model_server_url"),
                    "`model_server_url` is required for mlflow-model-serving",
                )
            })?;
            let chat_messages = match config.value.get("mlox_chat_messages") {
                None | Some(serde_json::Value::Null) => false,
                Some(serde_json::Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(err(
                        line_of(config),
                        format!("{config_field}.mlox_chat_messages"),
                        "must be true or false",
                    ));
                }
            };
            let token = string_key(config, "mlox_model_server_token", &config_field)?
                .map(|value| {
                    resolve_secret(
                        &value,
                        env,
                        line_of(config),
                        &format!("{config_field}.mlox_model_server_token"),
                    )
                })
                .transpose()?;
            return Ok(ProviderConfig::ModelServing {
                model_server_url: url.trim_end_matches('/').to_string(),
                chat_messages,
                token,
            });
        }
        "anthropic" => {
            let key = string_key(config, "anthropic_api_key", &config_field)?.ok_or_else(|| {
                err(
                    line_of(config),
                    format!("{config_field}.anthropic_api_key"),
                    "`anthropic_api_key` is required for provider 'anthropic'",
                )
            })?;
            let api_key = resolve_secret(
                &key,
                env,
                line_of(config),
                &format!("{config_field}.anthropic_api_key"),
            )?;
            return Ok(ProviderConfig::Anthropic {
                api_base: string_key(config, "anthropic_api_base", &config_field)?
                    .unwrap_or_else(|| crate::anthropic::DEFAULT_API_BASE.into())
                    .trim_end_matches('/')
                    .to_string(),
                api_key,
                version: string_key(config, "anthropic_version", &config_field)?
                    .unwrap_or_else(|| crate::anthropic::DEFAULT_VERSION.into()),
            });
        }
        TGI => {
            let url = string_key(config, "hf_server_url", &config_field)?.ok_or_else(|| {
                err(
                    line_of(config),
                    format!("{config_field}.hf_server_url"),
                    format!("`hf_server_url` is required for {TGI}"),
                )
            })?;
            return Ok(ProviderConfig::TextGenerationInference {
                server_url: url.trim_end_matches('/').to_string(),
            });
        }
        // MLflow serves `azure` with its OpenAI provider; `openai_api_type` decides the API.
        "azure" => OpenAiFamily::OpenAi,
        other => match OpenAiFamily::from_name(other) {
            Some(family) => family,
            None => {
                return Err(err(
                    line_of(name),
                    provider_field,
                    unsupported_provider(&name.value),
                ));
            }
        },
    };
    let (key_name, base_name) = family.keys();
    let mut azure = None;
    if family == OpenAiFamily::OpenAi {
        let api_type = string_key(config, "openai_api_type", &config_field)?
            .unwrap_or_else(|| "openai".into())
            .to_ascii_lowercase();
        let field = |key: &str| format!("{config_field}.{key}");
        match api_type.as_str() {
            "openai" => {
                if config.value.contains_key("openai_deployment_name") {
                    return Err(err(
                        line_of(config),
                        field("openai_deployment_name"),
                        "'openai_deployment_name' is only valid with openai_api_type 'azure' or 'azuread'",
                    ));
                }
            }
            "azure" | "azuread" => {
                if config.value.contains_key("openai_organization") {
                    return Err(err(
                        line_of(config),
                        field("openai_organization"),
                        "'openai_organization' is only valid with openai_api_type 'openai'",
                    ));
                }
                let required = |key: &str| -> Result<String, ConfigError> {
                    string_key(config, key, &config_field)?.ok_or_else(|| {
                        err(
                            line_of(config),
                            field(key),
                            "'openai_api_base', 'openai_deployment_name' and \
                             'openai_api_version' are required when openai_api_type is 'azure' \
                             or 'azuread'",
                        )
                    })
                };
                required("openai_api_base")?;
                azure = Some(AzureDeployment {
                    deployment: required("openai_deployment_name")?,
                    api_version: required("openai_api_version")?,
                    entra_id: api_type == "azuread",
                });
            }
            other => {
                return Err(err(
                    line_of(config),
                    field("openai_api_type"),
                    format!("openai_api_type '{other}' is not one of openai, azure, azuread"),
                ));
            }
        }
    }
    let api_key = match string_key(config, key_name, &config_field)? {
        Some(value) => Some(resolve_secret(
            &value,
            env,
            line_of(config),
            &format!("{config_field}.{key_name}"),
        )?),
        // Ollama runs without a key; every other service needs one.
        None if family == OpenAiFamily::Ollama => None,
        None => {
            return Err(err(
                line_of(config),
                format!("{config_field}.{key_name}"),
                format!("`{key_name}` is required for provider '{}'", family.name()),
            ));
        }
    };
    let api_base = string_key(config, base_name, &config_field)?
        .unwrap_or_else(|| family.default_api_base().to_string());
    let organization = if family == OpenAiFamily::OpenAi {
        string_key(config, "openai_organization", &config_field)?
    } else {
        None
    };
    Ok(ProviderConfig::OpenAiCompatible {
        provider: family,
        api_base: api_base.trim_end_matches('/').to_string(),
        api_key,
        organization,
        azure,
    })
}

fn string_key(
    config: &Spanned<BTreeMap<String, serde_json::Value>>,
    key: &str,
    config_field: &str,
) -> Result<Option<String>, ConfigError> {
    match config.value.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(err(
            line_of(config),
            format!("{config_field}.{key}"),
            "must be a string",
        )),
    }
}

/// MLflow's resolution of `*_api_key` values: `$NAME` reads the environment variable (unset or
/// empty is an error), a path to an existing file reads the file (unstripped, as MLflow does),
/// anything else is the key itself.
pub fn resolve_secret(
    value: &str,
    env: &dyn Environment,
    line: Option<u64>,
    field: &str,
) -> Result<String, ConfigError> {
    if let Some(var) = value.strip_prefix('$') {
        return match env.var(var) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(err(
                line,
                field,
                format!("environment variable '{var}' is not set"),
            )),
        };
    }
    if let Some(contents) = env.read_file(Path::new(value)) {
        return Ok(contents);
    }
    Ok(value.to_string())
}

fn limit(field: &str, spanned: Spanned<RawLimit>) -> Result<Limit, ConfigError> {
    let line = line_of(&spanned);
    let raw = spanned.value;
    let calls = match raw.calls {
        Some(c) if c > 0 => c as u64,
        Some(_) => {
            return Err(err(
                line,
                format!("{field}.calls"),
                "must be a positive number",
            ));
        }
        None => return Err(err(line, format!("{field}.calls"), "`calls` is required")),
    };
    let Some(renewal_period) = raw.renewal_period else {
        return Err(err(
            line,
            format!("{field}.renewal_period"),
            "`renewal_period` is required",
        ));
    };
    let window = parse_renewal_period(&renewal_period).ok_or_else(|| {
        err(
            line,
            format!("{field}.renewal_period"),
            format!(
                "'{renewal_period}' is not a period: use second, minute, hour, day, month or year, optionally with a count (e.g. '5 minutes')"
            ),
        )
    })?;
    Ok(Limit {
        calls,
        key: raw.key,
        renewal_period,
        window,
    })
}

/// The period grammar of the `limits` library MLflow parses `{calls}/{renewal_period}` with:
/// an optional count, then a granularity, optionally plural.
pub fn parse_renewal_period(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (count, unit) = text.split_at(split);
    let count: u64 = if count.is_empty() {
        1
    } else {
        count.parse().ok().filter(|c| *c > 0)?
    };
    let unit = unit.trim();
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    let seconds: u64 = match unit {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        // The `limits` library's month and year.
        "month" => 30 * 86_400,
        "year" => 365 * 86_400,
        _ => return None,
    };
    count.checked_mul(seconds).map(Duration::from_secs)
}

fn route(
    field: &str,
    spanned: Spanned<RawRoute>,
    types: &HashMap<&str, EndpointType>,
) -> Result<RouteConfig, ConfigError> {
    let line = line_of(&spanned);
    let raw = spanned.value;
    let name = raw.name.map(|n| n.value).unwrap_or_default();
    let task_type = match &raw.task_type {
        None => return Err(err(line, format!("{field}.task_type"), "`task_type` is required")),
        Some(t) => EndpointType::parse(&t.value).ok_or_else(|| {
            err(
                line_of(t),
                format!("{field}.task_type"),
                format!(
                    "'{}' is not supported; use one of llm/v1/completions, llm/v1/chat, llm/v1/embeddings",
                    t.value
                ),
            )
        })?,
    };
    if let Some(strategy) = &raw.routing_strategy
        && strategy.value != "TRAFFIC_SPLIT"
    {
        return Err(err(
            line_of(strategy),
            format!("{field}.routing_strategy"),
            format!(
                "'{}' is not supported; the only strategy is TRAFFIC_SPLIT",
                strategy.value
            ),
        ));
    }
    let Some(raw_destinations) = raw.destinations else {
        return Err(err(
            line,
            format!("{field}.destinations"),
            "`destinations` is required",
        ));
    };
    let mut destinations = Vec::with_capacity(raw_destinations.len());
    let mut sum: i64 = 0;
    for (i, d) in raw_destinations.into_iter().enumerate() {
        let d_field = format!("{field}.destinations[{i}]");
        let d_line = line_of(&d);
        let Some(dest_name) = d.value.name else {
            return Err(err(d_line, format!("{d_field}.name"), "`name` is required"));
        };
        let Some(dest_type) = types.get(dest_name.as_str()) else {
            return Err(err(
                d_line,
                format!("{d_field}.name"),
                format!(
                    "'{dest_name}' is not an endpoint name; route destinations must be endpoints"
                ),
            ));
        };
        if *dest_type != task_type {
            return Err(err(
                d_line,
                format!("{d_field}.name"),
                format!(
                    "endpoint '{dest_name}' has endpoint type '{dest_type}' but route '{name}' has task type '{task_type}'"
                ),
            ));
        }
        let percentage = d.value.traffic_percentage.ok_or_else(|| {
            err(
                d_line,
                format!("{d_field}.traffic_percentage"),
                "`traffic_percentage` is required",
            )
        })?;
        if !(0..=100).contains(&percentage) {
            return Err(err(
                d_line,
                format!("{d_field}.traffic_percentage"),
                "must be between 0 and 100",
            ));
        }
        sum += percentage;
        destinations.push(Destination {
            name: dest_name,
            traffic_percentage: percentage as u8,
        });
    }
    if sum != 100 {
        return Err(err(
            line,
            format!("{field}.destinations"),
            format!("the traffic percentages of route '{name}' must sum to 100, not {sum}"),
        ));
    }
    Ok(RouteConfig {
        name,
        task_type,
        destinations,
    })
}

fn timeout_seconds(value: &Spanned<f64>, field: &str) -> Result<Duration, ConfigError> {
    if value.value.is_finite() && value.value > 0.0 && value.value <= 86_400.0 {
        Ok(Duration::from_secs_f64(value.value))
    } else {
        Err(err(
            line_of(value),
            field,
            "must be a number of seconds between 0 and 86400",
        ))
    }
}

fn env_timeout(env: &dyn Environment) -> Result<Duration, ConfigError> {
    const VAR: &str = "MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS";
    match env.var(VAR) {
        None => Ok(DEFAULT_TIMEOUT),
        Some(v) => match v.trim().parse::<f64>() {
            Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
            _ => Err(err(None, VAR, format!("'{v}' is not a number of seconds"))),
        },
    }
}

fn retry_policy(
    raw: &Spanned<RawRetries>,
    base: RetryPolicy,
    field: &str,
) -> Result<RetryPolicy, ConfigError> {
    match &raw.value {
        RawRetries::Switch(false) => Ok(RetryPolicy::disabled()),
        RawRetries::Switch(true) => Ok(base),
        RawRetries::Settings {
            max_attempts,
            backoff_ms,
            max_backoff_ms,
            max_retry_after_ms,
        } => {
            let mut policy = base;
            if let Some(n) = max_attempts {
                if !(1..=10).contains(n) {
                    return Err(err(
                        line_of(raw),
                        format!("{field}.max_attempts"),
                        "must be between 1 (no retries) and 10",
                    ));
                }
                policy.max_attempts = *n;
            }
            if let Some(ms) = backoff_ms {
                policy.backoff = Duration::from_millis(*ms);
            }
            if let Some(ms) = max_backoff_ms {
                policy.max_backoff = Duration::from_millis(*ms);
            }
            if let Some(ms) = max_retry_after_ms {
                policy.max_retry_after = Duration::from_millis(*ms);
            }
            Ok(policy)
        }
    }
}

#[cfg(test)]
mod tests;
