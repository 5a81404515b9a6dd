//! What a call cost: the tokens an answer reports (`usage`, OpenAI's and MLflow's shape), priced
//! from MLflow's model catalog. The catalog is the one MLflow publishes, one JSON file per
//! provider under `MLFLOW_MODEL_CATALOG_URI` (`https://…`, or `file://…` for air-gapped
//! sites; empty turns pricing off), fetched when first needed and kept for
//! `MLFLOW_MODEL_CATALOG_CACHE_TTL` seconds, so mlox prices calls exactly as MLflow does
//! without carrying a price list of its own. A model the catalog does not list has no cost
//! (self-hosted models cost nothing per token).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

/// Where MLflow publishes its catalog.
pub const DEFAULT_CATALOG_URI: &str =
    "https://github.com/mlflow/mlflow/releases/download/model-catalog%2Flatest";
const DEFAULT_TTL: Duration = Duration::from_secs(86_400);
/// A failed fetch is tried again after this long, not on every call.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(300);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A provider file larger than this is refused.
const MAX_CATALOG_BYTES: usize = 16 << 20;

/// USD per token.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Input tokens served from the provider's prompt cache, when priced apart.
    pub cache_read: Option<f64>,
}

/// Tokens one answer reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Every input token, cached ones included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_input_tokens: u64,
}

/// A call's cost in USD, as MLflow's `mlflow.llm.cost` span attribute carries it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    pub input_cost: f64,
    pub output_cost: f64,
}

impl Cost {
    pub fn total(&self) -> f64 {
        self.input_cost + self.output_cost
    }

    pub fn to_json(self) -> Value {
        json!({
            "input_cost": self.input_cost,
            "output_cost": self.output_cost,
            "total_cost": self.total(),
        })
    }
}

impl Price {
    pub fn cost(&self, usage: Usage) -> Cost {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let regular = usage.input_tokens - cached;
        Cost {
            input_cost: regular as f64 * self.input
                + cached as f64 * self.cache_read.unwrap_or(self.input),
            output_cost: usage.output_tokens as f64 * self.output,
        }
    }
}

/// The `usage` of an answer: OpenAI's `prompt_tokens`/`completion_tokens` (with
/// `prompt_tokens_details.cached_tokens`) or `input_tokens`/`output_tokens`.
pub fn usage_of(answer: &Value) -> Option<Usage> {
    let usage = answer.get("usage").filter(|u| u.is_object())?;
    let count = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| usage.get(*k).and_then(Value::as_u64))
            .unwrap_or(0)
    };
    let found = Usage {
        input_tokens: count(&["prompt_tokens", "input_tokens"]),
        output_tokens: count(&["completion_tokens", "output_tokens"]),
        cached_input_tokens: usage
            .pointer("/prompt_tokens_details/cached_tokens")
            .or_else(|| usage.pointer("/input_tokens_details/cached_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
    };
    (found.input_tokens > 0 || found.output_tokens > 0).then_some(found)
}

/// One provider's file of the catalog.
#[derive(Deserialize)]
struct CatalogFile {
    #[serde(default)]
    models: HashMap<String, CatalogEntry>,
}

#[derive(Deserialize)]
struct CatalogEntry {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    pricing: Option<CatalogPricing>,
    #[serde(default)]
    context_window: Option<ContextWindow>,
    #[serde(default)]
    capabilities: Option<HashMap<String, Value>>,
    #[serde(default)]
    deprecation_date: Option<String>,
    #[serde(default)]
    last_updated_at: Option<String>,
}

#[derive(Deserialize)]
struct CatalogPricing {
    input_per_million_tokens: Option<f64>,
    output_per_million_tokens: Option<f64>,
    cache_read_per_million_tokens: Option<f64>,
}

#[derive(Deserialize)]
struct ContextWindow {
    max_input: Option<u64>,
    max_output: Option<u64>,
}

/// A model as the catalog lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogModel {
    pub name: String,
    pub mode: Option<String>,
    pub price: Option<Price>,
    pub max_input_tokens: Option<u64>,
    pub max_output_tokens: Option<u64>,
    pub capabilities: HashMap<String, bool>,
    pub deprecation_date: Option<String>,
    pub last_updated_at: Option<String>,
}

impl CatalogModel {
    /// The model as MLflow's `gateway/supported-models` lists it.
    pub fn to_json(&self, provider: &str) -> Value {
        let capability = |name: &str| self.capabilities.get(name).copied().unwrap_or(false);
        json!({
            "model": self.name,
            "provider": provider,
            "mode": self.mode,
            "supports_function_calling": capability("function_calling"),
            "supports_vision": capability("vision"),
            "supports_reasoning": capability("reasoning"),
            "supports_prompt_caching": capability("prompt_caching"),
            "supports_response_schema": capability("response_schema"),
            "max_input_tokens": self.max_input_tokens,
            "max_output_tokens": self.max_output_tokens,
            "input_cost_per_token": self.price.map(|p| p.input),
            "output_cost_per_token": self.price.map(|p| p.output),
            "deprecation_date": self.deprecation_date,
            "last_updated_at": self.last_updated_at,
        })
    }
}

fn parse_catalog(bytes: &[u8]) -> Result<HashMap<String, CatalogModel>, String> {
    let file: CatalogFile =
        serde_json::from_slice(bytes).map_err(|e| format!("not a model catalog file: {e}"))?;
    Ok(file
        .models
        .into_iter()
        .map(|(name, entry)| {
            let per_token = |v: Option<f64>| v.map(|v| v / 1_000_000.0);
            let price = entry.pricing.as_ref().and_then(|p| {
                let input = per_token(p.input_per_million_tokens);
                let output = per_token(p.output_per_million_tokens);
                (input.is_some() || output.is_some()).then(|| Price {
                    input: input.unwrap_or(0.0),
                    output: output.unwrap_or(0.0),
                    cache_read: per_token(p.cache_read_per_million_tokens),
                })
            });
            let model = CatalogModel {
                name: name.clone(),
                mode: entry.mode,
                price,
                max_input_tokens: entry.context_window.as_ref().and_then(|c| c.max_input),
                max_output_tokens: entry.context_window.as_ref().and_then(|c| c.max_output),
                capabilities: entry
                    .capabilities
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(k, v)| v.as_bool().map(|b| (k, b)))
                    .collect(),
                deprecation_date: entry.deprecation_date,
                last_updated_at: entry.last_updated_at,
            };
            (name, model)
        })
        .collect())
}

/// The catalog's file name for one of mlox's provider names.
fn catalog_file(provider: &str) -> &str {
    match provider {
        "togetherai" => "together_ai",
        other => other,
    }
}

type ProviderModels = Arc<HashMap<String, CatalogModel>>;

/// MLflow's model catalog, read per provider when first needed.
pub struct ModelCatalog {
    base: Option<String>,
    ttl: Duration,
    http: reqwest::Client,
    /// Per provider: when it was read and what it held (empty when the read failed).
    cache: Mutex<HashMap<String, (Instant, bool, ProviderModels)>>,
}

impl ModelCatalog {
    /// `base` is the catalog's location (`None`: pricing off).
    pub fn new(base: Option<String>, ttl: Duration) -> Result<ModelCatalog, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the catalog's HTTP client: {e}"))?;
        Ok(ModelCatalog {
            base: base
                .map(|b| b.trim().trim_end_matches('/').to_string())
                .filter(|b| !b.is_empty()),
            ttl,
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// As MLflow reads it: `MLFLOW_MODEL_CATALOG_URI` (set empty to turn pricing off) and
    /// `MLFLOW_MODEL_CATALOG_CACHE_TTL`.
    pub fn from_env() -> Result<ModelCatalog, String> {
        let base = match std::env::var("MLFLOW_MODEL_CATALOG_URI") {
            Ok(value) => Some(value),
            Err(_) => Some(DEFAULT_CATALOG_URI.to_string()),
        };
        let ttl = std::env::var("MLFLOW_MODEL_CATALOG_CACHE_TTL")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_TTL, Duration::from_secs);
        ModelCatalog::new(base, ttl)
    }

    /// The models of one provider (none when the catalog cannot be read; the failure is
    /// logged and tried again later).
    pub async fn models(&self, provider: &str) -> ProviderModels {
        let Some(base) = &self.base else {
            return ProviderModels::default();
        };
        let file = catalog_file(provider);
        if let Some((read_at, ok, models)) = self.lock().get(file) {
            let keep = if *ok { self.ttl } else { RETRY_FAILED_AFTER };
            if read_at.elapsed() < keep {
                return models.clone();
            }
        }
        let url = format!("{base}/{file}.json");
        let (ok, models) = match self.read(&url).await {
            Ok(models) => (true, Arc::new(models)),
            Err(e) => {
                tracing::warn!(%url, "the model catalog could not be read; calls to this provider are not priced: {e}");
                (false, ProviderModels::default())
            }
        };
        self.lock()
            .insert(file.to_string(), (Instant::now(), ok, models.clone()));
        models
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, bool, ProviderModels)>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn read(&self, url: &str) -> Result<HashMap<String, CatalogModel>, String> {
        let bytes = if let Some(path) = url.strip_prefix("file://") {
            let path = percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .map_err(|e| e.to_string())?
                .into_owned();
            let bytes = tokio::fs::read(&path).await.map_err(|e| e.to_string())?;
            if bytes.len() > MAX_CATALOG_BYTES {
                return Err("the file is too large".into());
            }
            bytes
        } else if url.starts_with("http://") || url.starts_with("https://") {
            let answer = self.http.get(url).send().await.map_err(|e| e.to_string())?;
            if !answer.status().is_success() {
                return Err(format!("answered {}", answer.status()));
            }
            if answer
                .content_length()
                .is_some_and(|n| n as usize > MAX_CATALOG_BYTES)
            {
                return Err("the file is too large".into());
            }
            let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
            if bytes.len() > MAX_CATALOG_BYTES {
                return Err("the file is too large".into());
            }
            bytes.to_vec()
        } else {
            return Err("MLFLOW_MODEL_CATALOG_URI must be an http(s):// or file:// URI".into());
        };
        parse_catalog(&bytes)
    }

    /// The price of `model` at `provider`; a `provider/` prefix on the model is ignored, as
    /// MLflow ignores it.
    pub async fn price(&self, provider: &str, model: &str) -> Option<Price> {
        let models = self.models(provider).await;
        let bare = model.split_once('/').map_or(model, |(_, rest)| rest);
        models.get(bare).or_else(|| models.get(model))?.price
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"{
        "schema_version": "1",
        "models": {
            "gpt-test": {
                "mode": "chat",
                "context_window": {"max_input": 1000, "max_output": 100},
                "pricing": {"input_per_million_tokens": 2.0, "output_per_million_tokens": 8.0,
                            "cache_read_per_million_tokens": 0.5},
                "capabilities": {"vision": true, "reasoning": false}
            },
            "embed-test": {"mode": "embedding", "pricing": {"input_per_million_tokens": 0.1}},
            "free": {"mode": "chat"}
        }
    }"#;

    fn catalog_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("openai.json"), CATALOG).unwrap();
        std::fs::write(dir.path().join("together_ai.json"), CATALOG).unwrap();
        dir
    }

    #[tokio::test]
    async fn prices_come_from_the_providers_file() {
        let dir = catalog_dir();
        let catalog = ModelCatalog::new(
            Some(format!("file://{}/", dir.path().display())),
            DEFAULT_TTL,
        )
        .unwrap();
        let price = catalog.price("openai", "gpt-test").await.unwrap();
        assert_eq!(price.input, 2.0e-6);
        assert_eq!(price.cache_read, Some(0.5e-6));
        assert_eq!(
            catalog.price("openai", "openai/gpt-test").await,
            Some(price)
        );
        assert_eq!(catalog.price("togetherai", "gpt-test").await, Some(price));
        assert_eq!(catalog.price("openai", "free").await, None);
        assert_eq!(catalog.price("openai", "unknown").await, None);
        // A provider without a file has no prices, and the failure is remembered.
        assert_eq!(catalog.price("groq", "gpt-test").await, None);
        assert_eq!(
            catalog.price("openai", "embed-test").await.unwrap().output,
            0.0
        );
        let listed = catalog.models("openai").await["gpt-test"].to_json("openai");
        assert_eq!(listed["supports_vision"], true);
        assert_eq!(listed["max_input_tokens"], 1000);
        assert_eq!(listed["input_cost_per_token"], 2.0e-6);
    }

    #[tokio::test]
    async fn an_empty_uri_turns_pricing_off() {
        let catalog = ModelCatalog::new(Some(" ".into()), DEFAULT_TTL).unwrap();
        assert!(catalog.models("openai").await.is_empty());
    }

    #[test]
    fn costs_split_cached_input_tokens() {
        let price = Price {
            input: 2.0e-6,
            output: 8.0e-6,
            cache_read: Some(0.5e-6),
        };
        let cost = price.cost(Usage {
            input_tokens: 1000,
            output_tokens: 100,
            cached_input_tokens: 400,
        });
        assert!((cost.input_cost - (600.0 * 2.0e-6 + 400.0 * 0.5e-6)).abs() < 1e-12);
        assert!((cost.output_cost - 800.0e-6).abs() < 1e-12);
        assert!((cost.total() - 0.0022).abs() < 1e-12);
    }

    #[test]
    fn usage_is_read_in_both_shapes() {
        let openai = json!({"usage": {"prompt_tokens": 10, "completion_tokens": 5,
                                      "prompt_tokens_details": {"cached_tokens": 4}}});
        assert_eq!(
            usage_of(&openai),
            Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                cached_input_tokens: 4
            })
        );
        let other = json!({"usage": {"input_tokens": 3, "output_tokens": 2}});
        assert_eq!(usage_of(&other).unwrap().output_tokens, 2);
        assert_eq!(usage_of(&json!({"usage": null})), None);
        assert_eq!(
            usage_of(&json!({"usage": {"prompt_tokens": 0, "completion_tokens": 0}})),
            None
        );
    }
}
