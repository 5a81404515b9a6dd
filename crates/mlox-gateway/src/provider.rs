//! What each provider sends upstream and how its answer becomes MLflow's / OpenAI's JSON.
//! Pure functions over JSON values: the HTTP calls are made by [`crate::upstream`].
//!
//! - `mlflow-model-serving` follows MLflow's mapping: `{"inputs": [<prompt | input | the one
//!   message's content>], "params": {<other fields>}}` to `/invocations`, and `predictions` read
//!   back into a completions, chat or embeddings answer (502 when they do not fit). With the
//!   mlox key `mlox_chat_messages: true` a chat request is sent whole (`{"messages": [...],
//!   <params>}`, what chat-model servers take), so conversations of more than one message work
//!   where MLflow answers 422.
//! - The OpenAI family gets the request as it came, with `model` set to the endpoint's model,
//!   and its answer is passed on unchanged.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::config::{EndpointConfig, EndpointType, ProviderConfig};
use crate::error::GatewayError;

/// Everything but RFC 3986's unreserved characters is escaped in a URL segment or query value.
const URL_UNRESERVED_KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One upstream request, ready to send.
#[derive(Clone, Debug)]
pub struct UpstreamRequest {
    pub url: String,
    pub body: Value,
    pub bearer: Option<String>,
    /// Headers a provider authenticates or versions its API with (Azure's `api-key`,
    /// Anthropic's `x-api-key` and `anthropic-version`).
    pub headers: Vec<(&'static str, String)>,
    pub organization: Option<String>,
    /// Whether the upstream itself is asked to stream (only the OpenAI family streams).
    pub stream: bool,
}

/// Checks a request body the way MLflow's request schemas do, answering 422 like its
/// validation. Unknown fields are allowed (they are passed on).
pub fn validate_request(kind: EndpointType, body: &Map<String, Value>) -> Result<(), GatewayError> {
    let invalid = |m: String| Err(GatewayError::Invalid(m));
    match kind {
        EndpointType::Chat => match body.get("messages") {
            Some(Value::Array(messages)) if !messages.is_empty() => {
                for (i, m) in messages.iter().enumerate() {
                    let Some(m) = m.as_object() else {
                        return invalid(format!("messages[{i}] must be an object"));
                    };
                    if !m.get("role").is_some_and(Value::is_string) {
                        return invalid(format!(
                            "messages[{i}].role is required and must be a string"
                        ));
                    }
                }
            }
            Some(Value::Array(_)) => {
                return invalid("messages must hold at least one message".into());
            }
            Some(_) => return invalid("messages must be a list of messages".into()),
            None => return invalid("messages is required".into()),
        },
        EndpointType::Completions => match body.get("prompt") {
            Some(Value::String(_)) => {}
            Some(_) => return invalid("prompt must be a string".into()),
            None => return invalid("prompt is required".into()),
        },
        EndpointType::Embeddings => match body.get("input") {
            Some(Value::String(_)) => {}
            Some(Value::Array(items)) => {
                let strings = items.iter().all(Value::is_string);
                let tokens = items.iter().all(Value::is_i64);
                let token_lists = items
                    .iter()
                    .all(|i| i.as_array().is_some_and(|t| t.iter().all(Value::is_i64)));
                if !(strings || tokens || token_lists) {
                    return invalid(
                        "input must be a string, a list of strings, a list of token ids or a list of token-id lists"
                            .into(),
                    );
                }
            }
            Some(_) => return invalid("input must be a string or a list".into()),
            None => return invalid("input is required".into()),
        },
    }
    if kind != EndpointType::Embeddings {
        check_number(body, "n", Some(1.0), None, true)?;
        check_number(body, "max_tokens", Some(1.0), None, true)?;
        check_number(body, "max_completion_tokens", Some(1.0), None, true)?;
        check_number(body, "top_k", Some(1.0), None, true)?;
        check_number(body, "temperature", Some(0.0), Some(2.0), false)?;
        check_number(body, "top_p", Some(0.0), Some(1.0), false)?;
        check_number(body, "presence_penalty", Some(-2.0), Some(2.0), false)?;
        check_number(body, "frequency_penalty", Some(-2.0), Some(2.0), false)?;
        match body.get("stream") {
            None | Some(Value::Null | Value::Bool(_)) => {}
            Some(_) => return invalid("stream must be a boolean".into()),
        }
    }
    Ok(())
}

fn check_number(
    body: &Map<String, Value>,
    field: &str,
    min: Option<f64>,
    max: Option<f64>,
    integer: bool,
) -> Result<(), GatewayError> {
    let Some(value) = body.get(field) else {
        return Ok(());
    };
    if value.is_null() {
        return Ok(());
    }
    let number = if integer {
        value.as_i64().map(|v| v as f64)
    } else {
        value.as_f64()
    };
    let Some(number) = number else {
        let what = if integer { "an integer" } else { "a number" };
        return Err(GatewayError::Invalid(format!("{field} must be {what}")));
    };
    if min.is_some_and(|m| number < m) || max.is_some_and(|m| number > m) {
        let range = match (min, max) {
            (Some(lo), Some(hi)) => format!("between {lo} and {hi}"),
            (Some(lo), None) => format!("at least {lo}"),
            (None, Some(hi)) => format!("at most {hi}"),
            (None, None) => String::new(),
        };
        return Err(GatewayError::Invalid(format!("{field} must be {range}")));
    }
    Ok(())
}

/// Whether a request asks for a stream (embeddings never stream).
pub fn wants_stream(kind: EndpointType, body: &Map<String, Value>) -> bool {
    kind != EndpointType::Embeddings && body.get("stream").and_then(Value::as_bool) == Some(true)
}

/// The upstream request for one call. `stream` is what the client asked for; the
/// model-serving protocol has no streams, so such calls are made whole and streamed back as
/// one chunk.
pub fn build_request(
    endpoint: &EndpointConfig,
    kind: EndpointType,
    mut body: Map<String, Value>,
    stream: bool,
) -> UpstreamRequest {
    match &endpoint.provider {
        ProviderConfig::Anthropic {
            api_base,
            api_key,
            version,
        } => UpstreamRequest {
            url: format!("{api_base}/messages"),
            body: crate::anthropic::request_body(endpoint.model_name.as_deref(), body, stream),
            bearer: None,
            headers: vec![
                ("x-api-key", api_key.clone()),
                ("anthropic-version", version.clone()),
            ],
            organization: None,
            stream,
        },
        ProviderConfig::TextGenerationInference { server_url } => UpstreamRequest {
            url: format!("{server_url}/generate"),
            body: text_generation_payload(body),
            bearer: None,
            headers: Vec::new(),
            organization: None,
            stream: false,
        },
        ProviderConfig::ModelServing {
            model_server_url,
            chat_messages,
            token,
        } => {
            if stream {
                body.remove("stream");
                body.remove("stream_options");
            }
            // MLflow's request schema fills in `n = 1` and drops nulls before mapping.
            if kind != EndpointType::Embeddings && !body.contains_key("n") {
                body.insert("n".into(), json!(1));
            }
            body.retain(|_, v| !v.is_null());
            let payload = if kind == EndpointType::Chat && *chat_messages {
                Value::Object(body)
            } else {
                let key = match kind {
                    EndpointType::Completions => "prompt",
                    EndpointType::Chat => "messages",
                    EndpointType::Embeddings => "input",
                };
                let input = body.remove(key).unwrap_or(Value::Null);
                let inputs = match (kind, input) {
                    // Checked by `single_message_content` before the request is built.
                    (EndpointType::Chat, Value::Array(mut messages)) => {
                        let content = messages
                            .pop()
                            .and_then(|m| m.get("content").cloned())
                            .unwrap_or(Value::Null);
                        json!([content])
                    }
                    (_, Value::Array(items)) => Value::Array(items),
                    (_, other) => json!([other]),
                };
                let mut payload = Map::new();
                payload.insert("inputs".into(), inputs);
                if !body.is_empty() {
                    payload.insert("params".into(), Value::Object(body));
                }
                Value::Object(payload)
            };
            UpstreamRequest {
                url: format!("{model_server_url}/invocations"),
                body: payload,
                bearer: token.clone(),
                headers: Vec::new(),
                organization: None,
                stream: false,
            }
        }
        ProviderConfig::OpenAiCompatible {
            api_base,
            api_key,
            organization,
            provider,
            azure,
        } => {
            match &endpoint.model_name {
                // Azure's deployment, in the URL, is the model.
                Some(model) if azure.is_none() => {
                    body.insert("model".into(), Value::String(model.clone()));
                }
                _ => {
                    body.remove("model");
                }
            }
            let path = match kind {
                EndpointType::Completions => "completions",
                EndpointType::Chat => "chat/completions",
                EndpointType::Embeddings => "embeddings",
            };
            if stream {
                // As MLflow's gateway does: the final chunk then reports the tokens used.
                let options = body
                    .entry("stream_options")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(options) = options {
                    options.entry("include_usage").or_insert(Value::Bool(true));
                }
            }
            if let Some(azure) = azure {
                let segment = |s: &str| {
                    percent_encoding::utf8_percent_encode(s, URL_UNRESERVED_KEPT).to_string()
                };
                return UpstreamRequest {
                    url: format!(
                        "{api_base}/openai/deployments/{}/{path}?api-version={}",
                        segment(&azure.deployment),
                        segment(&azure.api_version)
                    ),
                    body: Value::Object(body),
                    bearer: api_key.clone().filter(|_| azure.entra_id),
                    headers: api_key
                        .clone()
                        .filter(|_| !azure.entra_id)
                        .map(|key| ("api-key", key))
                        .into_iter()
                        .collect(),
                    organization: None,
                    stream,
                };
            }
            // Ollama's placeholder key is not a credential.
            let bearer = api_key
                .clone()
                .filter(|k| !(provider.name() == "ollama" && k == "ollama"));
            UpstreamRequest {
                url: format!("{api_base}/{path}"),
                body: Value::Object(body),
                bearer,
                headers: Vec::new(),
                organization: organization.clone(),
                stream,
            }
        }
    }
}

/// MLflow's model-serving chat takes one message; mlox keeps that answer (422) unless the
/// endpoint says its model takes chat messages.
pub fn check_model_serving_chat(
    endpoint: &EndpointConfig,
    kind: EndpointType,
    body: &Map<String, Value>,
) -> Result<(), GatewayError> {
    if let ProviderConfig::ModelServing {
        chat_messages: false,
        ..
    } = endpoint.provider
        && kind == EndpointType::Chat
    {
        let count = body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if count > 1 {
            return Err(GatewayError::Invalid(format!(
                "MLflow chat models are only capable of processing a single query at a time. \
                 The request submitted consists of {count} queries. (Set `mlox_chat_messages: true` \
                 in the endpoint's model config when the served model takes chat messages.)"
            )));
        }
    }
    Ok(())
}

/// What a model server's answer holds, read the way MLflow reads it.
pub enum ServedAnswer {
    Texts(Vec<String>),
    Embeddings(Vec<Vec<f64>>),
}

/// Reads a model server's successful answer (`{"predictions": ...}`, or OpenAI's chat shape
/// from a chat model when the endpoint has `mlox_chat_messages`).
pub fn read_model_serving_answer(
    kind: EndpointType,
    upstream: &Value,
) -> Result<ServedAnswer, GatewayError> {
    if kind == EndpointType::Chat
        && let Some(Value::Array(choices)) = upstream.get("choices")
    {
        let texts = choices
            .iter()
            .map(|c| {
                c.pointer("/message/content")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        GatewayError::BadGateway(
                            "invalid chat answer from the model server: choices[].message.content must be a string".into(),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(ServedAnswer::Texts(texts));
    }
    let Some(predictions) = upstream.get("predictions") else {
        return Err(GatewayError::BadGateway(
            "The response is missing the required key: predictions.".into(),
        ));
    };
    match kind {
        EndpointType::Embeddings => {
            embedding_predictions(predictions).map(ServedAnswer::Embeddings)
        }
        _ => text_predictions(predictions).map(ServedAnswer::Texts),
    }
}

#[derive(Serialize)]
struct NullUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

#[derive(Serialize)]
struct NullEmbeddingsUsage {
    prompt_tokens: Option<u64>,
    total_tokens: Option<u64>,
}

#[derive(Serialize)]
struct CompletionsAnswer<'a> {
    id: Option<&'a str>,
    object: &'static str,
    created: i64,
    model: Option<&'a str>,
    choices: Vec<CompletionChoice<'a>>,
    usage: NullUsage,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: usize,
    text: &'a str,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct ChatAnswer<'a> {
    id: Option<&'a str>,
    object: &'static str,
    created: i64,
    model: Option<&'a str>,
    choices: Vec<ChatChoice<'a>>,
    usage: NullUsage,
    provider: &'static str,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: usize,
    message: ChatMessage<'a>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
    tool_calls: Option<()>,
    refusal: Option<()>,
}

#[derive(Serialize)]
struct EmbeddingsAnswer<'a> {
    object: &'static str,
    data: Vec<EmbeddingObject<'a>>,
    model: Option<&'a str>,
    usage: NullEmbeddingsUsage,
}

#[derive(Serialize)]
struct EmbeddingObject<'a> {
    object: &'static str,
    embedding: &'a [f64],
    index: usize,
}

#[derive(Serialize)]
struct CompletionsChunk<'a> {
    id: Option<&'a str>,
    object: &'static str,
    created: i64,
    model: Option<&'a str>,
    choices: Vec<CompletionsChunkChoice<'a>>,
    usage: Option<()>,
}

#[derive(Serialize)]
struct CompletionsChunkChoice<'a> {
    index: usize,
    finish_reason: Option<&'static str>,
    text: &'a str,
}

#[derive(Serialize)]
struct ChatChunk<'a> {
    id: Option<&'a str>,
    object: &'static str,
    created: i64,
    model: Option<&'a str>,
    choices: Vec<ChatChunkChoice<'a>>,
    usage: Option<()>,
    provider: &'static str,
}

#[derive(Serialize)]
struct ChatChunkChoice<'a> {
    index: usize,
    finish_reason: Option<&'static str>,
    delta: ChatDelta<'a>,
}

#[derive(Serialize)]
struct ChatDelta<'a> {
    role: &'static str,
    content: &'a str,
}

const NULL_USAGE: NullUsage = NullUsage {
    prompt_tokens: None,
    completion_tokens: None,
    total_tokens: None,
};

/// MLflow's answer for a model server's output, as JSON bytes in MLflow's field order.
pub fn model_serving_answer(
    kind: EndpointType,
    model: Option<&str>,
    answer: &ServedAnswer,
    created: i64,
) -> Vec<u8> {
    let encoded = match (kind, answer) {
        (EndpointType::Embeddings, ServedAnswer::Embeddings(vectors)) => {
            serde_json::to_vec(&EmbeddingsAnswer {
                object: "list",
                data: vectors
                    .iter()
                    .enumerate()
                    .map(|(index, v)| EmbeddingObject {
                        object: "embedding",
                        embedding: v,
                        index,
                    })
                    .collect(),
                model,
                usage: NullEmbeddingsUsage {
                    prompt_tokens: None,
                    total_tokens: None,
                },
            })
        }
        (EndpointType::Chat, ServedAnswer::Texts(texts)) => serde_json::to_vec(&ChatAnswer {
            id: None,
            object: "chat.completion",
            created,
            model,
            choices: texts
                .iter()
                .enumerate()
                .map(|(index, t)| ChatChoice {
                    index,
                    message: ChatMessage {
                        role: "assistant",
                        content: t,
                        tool_calls: None,
                        refusal: None,
                    },
                    finish_reason: None,
                })
                .collect(),
            usage: NULL_USAGE,
            provider: "mlflow-model-serving",
        }),
        (_, ServedAnswer::Texts(texts)) => serde_json::to_vec(&CompletionsAnswer {
            id: None,
            object: "text_completion",
            created,
            model,
            choices: texts
                .iter()
                .enumerate()
                .map(|(index, t)| CompletionChoice {
                    index,
                    text: t,
                    finish_reason: None,
                })
                .collect(),
            usage: NULL_USAGE,
        }),
        // `read_model_serving_answer` reads embeddings only for embeddings endpoints.
        (_, ServedAnswer::Embeddings(_)) => Ok(b"{}".to_vec()),
    };
    encoded.unwrap_or_else(|_| b"{}".to_vec())
}

/// A whole model-server answer as the one stream chunk it makes (the model-serving protocol
/// has no streams). Embeddings never stream.
pub fn model_serving_chunk(
    kind: EndpointType,
    model: Option<&str>,
    texts: &[String],
    created: i64,
) -> Vec<u8> {
    let encoded = match kind {
        EndpointType::Chat => serde_json::to_vec(&ChatChunk {
            id: None,
            object: "chat.completion.chunk",
            created,
            model,
            choices: texts
                .iter()
                .enumerate()
                .map(|(index, t)| ChatChunkChoice {
                    index,
                    finish_reason: Some("stop"),
                    delta: ChatDelta {
                        role: "assistant",
                        content: t,
                    },
                })
                .collect(),
            usage: None,
            provider: "mlflow-model-serving",
        }),
        _ => serde_json::to_vec(&CompletionsChunk {
            id: None,
            object: "text_completion_chunk",
            created,
            model,
            choices: texts
                .iter()
                .enumerate()
                .map(|(index, t)| CompletionsChunkChoice {
                    index,
                    finish_reason: Some("stop"),
                    text: t,
                })
                .collect(),
            usage: None,
        }),
    };
    encoded.unwrap_or_else(|_| b"{}".to_vec())
}

/// MLflow's reading of text `predictions`: a list of strings, a one-key dict (its value), or a
/// dict with `choices`.
fn text_predictions(predictions: &Value) -> Result<Vec<String>, GatewayError> {
    let bad = |m: &str| {
        Err(GatewayError::BadGateway(format!(
            "invalid predictions from the model server: {m}"
        )))
    };
    let list = match predictions {
        Value::Object(map) if map.len() == 1 => map.values().next().cloned().unwrap_or(Value::Null),
        Value::Object(map) => match map.get("choices") {
            Some(choices) => choices.clone(),
            None => {
                return bad(
                    "the dict format is invalid for this route type; ensure the served model returns a dict key containing 'choices'",
                );
            }
        },
        other => other.clone(),
    };
    let Value::Array(items) = list else {
        return bad("expected a list of strings");
    };
    if items.is_empty() {
        return bad("the list is empty");
    }
    items
        .into_iter()
        .map(|i| match i {
            Value::String(s) => Ok(s),
            _ => Err(GatewayError::BadGateway(
                "invalid predictions from the model server: expected a list of strings".into(),
            )),
        })
        .collect()
}

/// `list[list[float]]`, a flat list of floats being one vector.
fn embedding_predictions(predictions: &Value) -> Result<Vec<Vec<f64>>, GatewayError> {
    let bad = |m: &str| {
        GatewayError::BadGateway(format!("invalid embeddings from the model server: {m}"))
    };
    let Value::Array(items) = predictions else {
        return Err(bad("expected a list of lists of floats"));
    };
    if items.is_empty() {
        return Err(bad("the list is empty"));
    }
    if items.iter().all(Value::is_number) {
        return Ok(vec![items.iter().filter_map(Value::as_f64).collect()]);
    }
    items
        .iter()
        .map(|v| match v {
            Value::Array(xs) if !xs.is_empty() && xs.iter().all(Value::is_number) => {
                Ok(xs.iter().filter_map(Value::as_f64).collect())
            }
            Value::Array(xs) if xs.is_empty() => Err(bad("one or more lists are empty")),
            _ => Err(bad("expected a list of lists of floats")),
        })
        .collect()
}

#[cfg(test)]
mod tests;

// ------------------------------------------------------------------ Text Generation Inference

/// MLflow's checks of a completions request to a Text Generation Inference server (422).
pub fn check_text_generation_request(
    endpoint: &EndpointConfig,
    body: &Map<String, Value>,
) -> Result<(), GatewayError> {
    if !matches!(
        endpoint.provider,
        ProviderConfig::TextGenerationInference { .. }
    ) {
        return Ok(());
    }
    if body.contains_key("model") {
        return Err(GatewayError::Invalid(
            "The parameter 'model' is not permitted to be passed. The route being queried \
             already defines a model instance."
                .into(),
        ));
    }
    if body.contains_key("max_new_tokens") {
        return Err(GatewayError::Invalid(
            "Invalid parameter max_new_tokens. Use max_tokens instead.".into(),
        ));
    }
    match body.get("n") {
        None | Some(Value::Null) => Ok(()),
        Some(n) if n.as_i64() == Some(1) => Ok(()),
        Some(n) => Err(GatewayError::Invalid(format!(
            "'n' must be '1' for the Text Generation Inference provider.Received value: '{n}'."
        ))),
    }
}

/// `{"inputs": prompt, "parameters": …}` for TGI's `/generate`: `max_tokens` becomes
/// `max_new_tokens`, the temperature is scaled from OpenAI's 0–2 to TGI's 0–100 (never 0,
/// which TGI refuses), and the answer is asked for with the details that count its tokens.
fn text_generation_payload(mut body: Map<String, Value>) -> Value {
    let prompt = body.remove("prompt").unwrap_or(Value::Null);
    for key in ["stream", "stream_options", "n"] {
        body.remove(key);
    }
    let mut parameters: Map<String, Value> =
        body.into_iter().filter(|(_, v)| !v.is_null()).collect();
    if let Some(max) = parameters.remove("max_tokens") {
        parameters.insert("max_new_tokens".into(), max);
    }
    if let Some(t) = parameters.get("temperature").and_then(Value::as_f64) {
        parameters.insert("temperature".into(), json!((50.0 * t).max(1e-3)));
    }
    parameters.insert("details".into(), Value::Bool(true));
    parameters.insert("decoder_input_details".into(), Value::Bool(true));
    json!({"inputs": prompt, "parameters": parameters})
}

/// What TGI's `/generate` answered.
pub struct Generated {
    pub text: String,
    pub finish_reason: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

pub fn read_text_generation_answer(upstream: &Value) -> Result<Generated, GatewayError> {
    let text = upstream
        .get("generated_text")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            GatewayError::BadGateway(
                "the Text Generation Inference server's answer has no generated_text".into(),
            )
        })?;
    let details = upstream.get("details");
    Ok(Generated {
        text: text.to_string(),
        finish_reason: details
            .and_then(|d| d.get("finish_reason"))
            .and_then(Value::as_str)
            .map(str::to_string),
        prompt_tokens: details
            .and_then(|d| d.get("prefill"))
            .and_then(Value::as_array)
            .map_or(0, |p| p.len() as u64),
        completion_tokens: details
            .and_then(|d| d.get("generated_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

/// A TGI answer as MLflow's completions answer.
pub fn text_generation_answer(model: Option<&str>, generated: &Generated, created: i64) -> Vec<u8> {
    serde_json::to_vec(&CompletionsAnswer {
        id: None,
        object: "text_completion",
        created,
        model,
        choices: vec![CompletionChoice {
            index: 0,
            text: &generated.text,
            finish_reason: generated.finish_reason.as_deref(),
        }],
        usage: NullUsage {
            prompt_tokens: Some(generated.prompt_tokens),
            completion_tokens: Some(generated.completion_tokens),
            total_tokens: Some(generated.prompt_tokens + generated.completion_tokens),
        },
    })
    .unwrap_or_default()
}
