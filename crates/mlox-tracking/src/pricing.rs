//! What a span's model call cost, worked out when the span is stored, as MLflow's tracking
//! server does: a span that names its model (`mlflow.llm.model`, from the client or from
//! another convention's attributes) and its tokens (`mlflow.chat.tokenUsage`) but no
//! `mlflow.llm.cost` gets one, priced from MLflow's model catalog (see
//! [`crate::gateway::model_catalog`]). Its trace then sums it into `mlflow.trace.cost`.

use mlox_core::spans::{StoredSpan, attr_key, python_json_dumps};
use mlox_gateway::catalog::{ModelCatalog, Price, Usage};
use serde_json::{Map, Value};

/// Where a model is looked for when its span does not name the provider: the providers
/// whose models instrumentations most often leave unnamed, first match wins.
const LIKELY_PROVIDERS: [&str; 7] = [
    "openai",
    "anthropic",
    "gemini",
    "mistral",
    "deepseek",
    "xai",
    "groq",
];

/// Model references that are routes, not models: no catalog lists them (MLflow skips them too).
const ROUTE_PREFIXES: [&str; 2] = ["gateway:/", "endpoints:/"];

fn decoded(attributes: &Map<String, Value>, key: &str) -> Option<Value> {
    let text = attributes.get(key)?.as_str()?;
    serde_json::from_str(text).ok()
}

/// The tokens of a span's `mlflow.chat.tokenUsage`.
fn usage(value: &Value) -> Option<Usage> {
    let count = |key: &str| value.get(key).and_then(Value::as_u64).unwrap_or(0);
    let usage = Usage {
        input_tokens: count("input_tokens"),
        output_tokens: count("output_tokens"),
        cached_input_tokens: count("cache_read_input_tokens"),
    };
    (usage.input_tokens > 0 || usage.output_tokens > 0).then_some(usage)
}

async fn price(catalog: &ModelCatalog, provider: Option<&str>, model: &str) -> Option<Price> {
    if let Some(provider) = provider {
        return catalog.price(&provider.to_ascii_lowercase(), model).await;
    }
    if let Some((provider, _)) = model.split_once('/')
        && let Some(found) = catalog.price(&provider.to_ascii_lowercase(), model).await
    {
        return Some(found);
    }
    for provider in LIKELY_PROVIDERS {
        if let Some(found) = catalog.price(provider, model).await {
            return Some(found);
        }
    }
    None
}

/// Sets `mlflow.llm.cost` on every span that can be priced and has none.
pub async fn price_spans(catalog: &ModelCatalog, spans: &mut [StoredSpan]) {
    for span in spans {
        let Some(attributes) = span.attributes() else {
            continue;
        };
        if attributes.contains_key(attr_key::LLM_COST) {
            continue;
        }
        let (Some(Value::String(model)), Some(tokens)) = (
            decoded(attributes, attr_key::MODEL),
            decoded(attributes, attr_key::CHAT_USAGE),
        ) else {
            continue;
        };
        if model.is_empty() || ROUTE_PREFIXES.iter().any(|p| model.starts_with(p)) {
            continue;
        }
        let Some(usage) = usage(&tokens) else {
            continue;
        };
        let provider = match decoded(attributes, attr_key::MODEL_PROVIDER) {
            Some(Value::String(p)) if !p.is_empty() => Some(p),
            _ => None,
        };
        let Some(price) = price(catalog, provider.as_deref(), &model).await else {
            continue;
        };
        let cost = python_json_dumps(&price.cost(usage).to_json());
        if let Some(Value::Object(attributes)) = span.content.get_mut("attributes") {
            attributes.insert(attr_key::LLM_COST.into(), Value::String(cost));
        }
    }
}
