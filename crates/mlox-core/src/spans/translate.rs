//! What MLflow reads out of spans written to other OpenTelemetry conventions (the GenAI
//! semantic conventions, OpenInference, Traceloop/OpenLLMetry): the span's type, its inputs
//! and outputs, token usage, and the model and provider, each copied under MLflow's own
//! attribute key when the span does not already carry it, so traces recorded by any of those
//! instrumentations read like the MLflow client's own.
//!
//! Attribute values here are the stored JSON text of each value (see [`super`]).

use super::{attr_key, pyjson};
use serde_json::{Map, Value, json};

/// One convention: where it keeps each piece of information.
struct Convention {
    span_kind_key: &'static str,
    span_kinds: &'static [(&'static str, &'static str)],
    input_tokens: Option<&'static str>,
    output_tokens: Option<&'static str>,
    total_tokens: Option<&'static str>,
    cache_read_input_tokens: Option<&'static str>,
    cache_creation_input_tokens: Option<&'static str>,
    inputs: &'static [KeyPattern],
    outputs: &'static [KeyPattern],
    model_names: &'static [&'static str],
    provider: Option<&'static str>,
}

/// An attribute key, or a family of keys with a numbered segment (`gen_ai.prompt.0.content`).
enum KeyPattern {
    Exact(&'static str),
    /// Matches `prefix` + digits + `middle` + digits + `suffix`; an empty `middle` means one
    /// numbered segment only.
    Numbered {
        prefix: &'static str,
        middle: &'static str,
        suffix: &'static str,
    },
}

impl KeyPattern {
    fn matches(&self, key: &str) -> bool {
        match self {
            KeyPattern::Exact(exact) => key == *exact,
            KeyPattern::Numbered {
                prefix,
                middle,
                suffix,
            } => {
                let Some(rest) = key.strip_prefix(prefix) else {
                    return false;
                };
                let Some(rest) = strip_digits(rest) else {
                    return false;
                };
                if middle.is_empty() {
                    return rest == *suffix;
                }
                rest.strip_prefix(middle)
                    .and_then(strip_digits)
                    .is_some_and(|rest| rest == *suffix)
            }
        }
    }
}

/// `text` without its leading digits, when it has at least one.
fn strip_digits(text: &str) -> Option<&str> {
    let rest = text.trim_start_matches(|c: char| c.is_ascii_digit());
    (rest.len() < text.len()).then_some(rest)
}

/// The order MLflow tries the conventions in: the first that has a value wins.
static CONVENTIONS: [Convention; 3] = [OPEN_INFERENCE, GEN_AI, TRACELOOP];

const OPEN_INFERENCE: Convention = Convention {
    span_kind_key: "openinference.span.kind",
    span_kinds: &[
        ("TOOL", "TOOL"),
        ("CHAIN", "CHAIN"),
        ("LLM", "LLM"),
        ("RETRIEVER", "RETRIEVER"),
        ("EMBEDDING", "EMBEDDING"),
        ("AGENT", "AGENT"),
        ("RERANKER", "RERANKER"),
        ("UNKNOWN", "UNKNOWN"),
        ("GUARDRAIL", "GUARDRAIL"),
        ("EVALUATOR", "EVALUATOR"),
    ],
    input_tokens: Some("llm.token_count.prompt"),
    output_tokens: Some("llm.token_count.completion"),
    total_tokens: Some("llm.token_count.total"),
    cache_read_input_tokens: None,
    cache_creation_input_tokens: None,
    inputs: &[KeyPattern::Exact("input.value")],
    outputs: &[KeyPattern::Exact("output.value")],
    model_names: &["llm.model_name", "embedding.model_name"],
    provider: Some("llm.provider"),
};

const GEN_AI: Convention = Convention {
    span_kind_key: "gen_ai.operation.name",
    span_kinds: &[
        ("chat", "CHAT_MODEL"),
        ("create_agent", "AGENT"),
        ("embeddings", "EMBEDDING"),
        ("execute_tool", "TOOL"),
        ("generate_content", "LLM"),
        ("invoke_agent", "AGENT"),
        ("text_completion", "LLM"),
        ("response", "LLM"),
    ],
    input_tokens: Some("gen_ai.usage.input_tokens"),
    output_tokens: Some("gen_ai.usage.output_tokens"),
    total_tokens: None,
    cache_read_input_tokens: Some("gen_ai.usage.cache_read.input_tokens"),
    cache_creation_input_tokens: Some("gen_ai.usage.cache_creation.input_tokens"),
    inputs: &[
        KeyPattern::Exact("gen_ai.input.messages"),
        KeyPattern::Exact("gen_ai.tool.call.arguments"),
    ],
    outputs: &[
        KeyPattern::Exact("gen_ai.output.messages"),
        KeyPattern::Exact("gen_ai.tool.call.result"),
    ],
    model_names: &["gen_ai.response.model", "gen_ai.request.model"],
    provider: Some("gen_ai.provider.name"),
};

const TRACELOOP: Convention = Convention {
    span_kind_key: "traceloop.span.kind",
    span_kinds: &[
        ("workflow", "WORKFLOW"),
        ("task", "TASK"),
        ("agent", "AGENT"),
        ("tool", "TOOL"),
        ("unknown", "UNKNOWN"),
    ],
    input_tokens: Some("gen_ai.usage.prompt_tokens"),
    output_tokens: Some("gen_ai.usage.completion_tokens"),
    total_tokens: Some("llm.usage.total_tokens"),
    cache_read_input_tokens: None,
    cache_creation_input_tokens: None,
    inputs: &[
        KeyPattern::Exact("traceloop.entity.input"),
        KeyPattern::Numbered {
            prefix: "gen_ai.prompt.",
            middle: "",
            suffix: ".content",
        },
        KeyPattern::Numbered {
            prefix: "gen_ai.completion.",
            middle: ".tool_calls.",
            suffix: ".arguments",
        },
    ],
    outputs: &[
        KeyPattern::Exact("traceloop.entity.output"),
        KeyPattern::Numbered {
            prefix: "gen_ai.completion.",
            middle: "",
            suffix: ".content",
        },
    ],
    model_names: &[],
    provider: Some("gen_ai.system"),
};

/// The stored text of an attribute, unless it is absent or encodes an empty or null value
/// (`""`, `{}`, `[]`, `null`, `0`, `false`), which MLflow treats as absent.
fn present<'a>(attributes: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    let value = attributes.get(key)?;
    match value {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(decoded) if is_falsy(&decoded) => None,
            _ if text.is_empty() => None,
            _ => Some(value),
        },
        other if is_falsy(other) => None,
        other => Some(other),
    }
}

fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
    }
}

/// A stored attribute decoded from its JSON text (the text itself when it is not JSON).
fn decoded(value: &Value) -> Value {
    match value {
        Value::String(text) => serde_json::from_str(text).unwrap_or_else(|_| value.clone()),
        other => other.clone(),
    }
}

fn first_match(
    attributes: &Map<String, Value>,
    patterns: impl IntoIterator<Item = &'static KeyPattern>,
) -> Option<&Value> {
    for pattern in patterns {
        match pattern {
            KeyPattern::Exact(key) => {
                if let Some(value) = present(attributes, key) {
                    return Some(value);
                }
            }
            numbered => {
                for key in attributes.keys() {
                    if numbered.matches(key)
                        && let Some(value) = present(attributes, key)
                    {
                        return Some(value);
                    }
                }
            }
        }
    }
    None
}

/// A token count as MLflow accepts it: a number, or text holding one (`"26"`, `"\"26\""`).
fn token_count(value: Option<&Value>) -> Option<i64> {
    fn from_value(value: &Value) -> Option<i64> {
        match value {
            Value::Number(n) => n.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }
    let value = value?;
    match value {
        Value::String(text) => serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|decoded| from_value(&decoded))
            .or_else(|| text.trim().parse().ok()),
        other => from_value(other),
    }
}

/// The MLflow span type a convention's span kind maps to.
pub fn span_type(attributes: &Map<String, Value>) -> Option<&'static str> {
    CONVENTIONS.iter().find_map(|convention| {
        let kind = attributes.get(convention.span_kind_key)?;
        let kind = match decoded(kind) {
            Value::String(kind) => kind,
            _ => return None,
        };
        convention
            .span_kinds
            .iter()
            .find(|(from, _)| *from == kind)
            .map(|(_, to)| *to)
    })
}

/// Token usage (`input_tokens`, `output_tokens`, `total_tokens`, cache counts) from the first
/// convention that records any, with the total computed when only its parts are given.
fn token_usage(attributes: &Map<String, Value>) -> Option<Map<String, Value>> {
    CONVENTIONS.iter().find_map(|convention| {
        let read = |key: Option<&str>| token_count(key.and_then(|key| attributes.get(key)));
        let input = read(convention.input_tokens);
        let output = read(convention.output_tokens);
        let total = read(convention.total_tokens).or(match (input, output) {
            (Some(input), Some(output)) => Some(input + output),
            _ => None,
        });
        if input.is_none() && output.is_none() && total.is_none() {
            return None;
        }
        let mut usage = Map::new();
        let mut put = |name: &str, count: Option<i64>| {
            if let Some(count) = count {
                usage.insert(name.into(), json!(count));
            }
        };
        put("input_tokens", input);
        put("output_tokens", output);
        put("total_tokens", total);
        put(
            "cache_read_input_tokens",
            read(convention.cache_read_input_tokens),
        );
        put(
            "cache_creation_input_tokens",
            read(convention.cache_creation_input_tokens),
        );
        Some(usage)
    })
}

/// Inputs or outputs as GenAI message events describe them (`gen_ai.user.message`, …).
fn messages_from_events(events: &[Value], outputs: bool) -> Option<String> {
    let mut messages = Vec::new();
    for event in events {
        let name = event.get("name").and_then(Value::as_str).unwrap_or("");
        let attributes = event.get("attributes");
        let content = attributes
            .and_then(|a| a.get("content"))
            .filter(|c| !is_falsy(c));
        let Some(content) = content else { continue };
        let role = match (outputs, name) {
            (false, "gen_ai.system.message") => json!("system"),
            (false, "gen_ai.user.message") => json!("user"),
            (false, "gen_ai.assistant.message") => json!("assistant"),
            (true, "gen_ai.choice") => attributes
                .and_then(|a| a.get("role"))
                .map(decoded)
                .unwrap_or_else(|| json!("assistant")),
            _ => continue,
        };
        messages.push(json!({"role": role, "content": decoded(content)}));
    }
    (!messages.is_empty()).then(|| pyjson::dumps(&Value::Array(messages)))
}

/// The model name of a span: a convention's model attribute, else a `model` field of its
/// inputs or outputs.
fn model_name(attributes: &Map<String, Value>) -> Option<Value> {
    for convention in &CONVENTIONS {
        for key in convention.model_names {
            if let Some(value) = present(attributes, key) {
                return Some(decoded(value));
            }
        }
    }
    [attr_key::INPUTS, attr_key::OUTPUTS]
        .into_iter()
        .find_map(|key| match decoded(attributes.get(key)?) {
            Value::Object(fields) => fields
                .get("model")
                .filter(|model| model.is_string())
                .cloned(),
            _ => None,
        })
}

fn model_provider(attributes: &Map<String, Value>) -> Option<Value> {
    CONVENTIONS
        .iter()
        .find_map(|convention| present(attributes, convention.provider?).map(decoded))
}

/// Adds MLflow's keys for what the other conventions recorded, never replacing a key the span
/// already has (a span type only when it is absent or `UNKNOWN`).
pub fn translate(attributes: &mut Map<String, Value>, events: &[Value]) {
    if let Some(kind) = span_type(attributes) {
        let current = attributes.get(attr_key::SPAN_TYPE).map(decoded);
        if matches!(current, None | Some(Value::Null))
            || current == Some(Value::String("UNKNOWN".into()))
        {
            attributes.insert(
                attr_key::SPAN_TYPE.into(),
                Value::String(pyjson::dumps(&json!(kind))),
            );
        }
    }
    if !attributes.contains_key(attr_key::INPUTS) {
        let inputs = first_match(attributes, CONVENTIONS.iter().flat_map(|c| c.inputs))
            .cloned()
            .or_else(|| messages_from_events(events, false).map(Value::String));
        if let Some(inputs) = inputs {
            attributes.insert(attr_key::INPUTS.into(), inputs);
        }
    }
    if !attributes.contains_key(attr_key::OUTPUTS) {
        let outputs = first_match(attributes, CONVENTIONS.iter().flat_map(|c| c.outputs))
            .cloned()
            .or_else(|| messages_from_events(events, true).map(Value::String));
        if let Some(outputs) = outputs {
            attributes.insert(attr_key::OUTPUTS.into(), outputs);
        }
    }
    if !attributes.contains_key(attr_key::CHAT_USAGE)
        && let Some(usage) = token_usage(attributes)
    {
        attributes.insert(
            attr_key::CHAT_USAGE.into(),
            Value::String(pyjson::dumps(&Value::Object(usage))),
        );
    }
    if !attributes.contains_key(attr_key::MODEL)
        && let Some(model) = model_name(attributes)
    {
        attributes.insert(attr_key::MODEL.into(), Value::String(pyjson::dumps(&model)));
    }
    if !attributes.contains_key(attr_key::MODEL_PROVIDER)
        && let Some(provider) = model_provider(attributes)
    {
        attributes.insert(
            attr_key::MODEL_PROVIDER.into(),
            Value::String(pyjson::dumps(&provider)),
        );
    }
}
