//! Anthropic's Messages API behind OpenAI's chat shape, both ways, as MLflow's gateway maps it:
//! system messages become `system`, tool calls and results become `tool_use` / `tool_result`
//! blocks, `stop` becomes `stop_sequences`, the temperature is halved (OpenAI's 0–2 to
//! Anthropic's 0–1), `max_tokens` defaults to 8192; answers come back as `chat.completion`
//! with OpenAI's finish reasons and usage (cached input counted in `prompt_tokens`), and a
//! stream's events (`message_start`, `content_block_*`, `message_delta`) as
//! `chat.completion.chunk`s.

use serde_json::{Map, Value, json};

use crate::error::GatewayError;

pub const DEFAULT_API_BASE: &str = "https://api.anthropic.com/v1";
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// MLflow's default and ceiling for `max_tokens`, which Anthropic requires.
const DEFAULT_MAX_TOKENS: u64 = 8192;
const MAX_MAX_TOKENS: u64 = 1_000_000;

/// MLflow's checks of a chat request for Anthropic (422 each).
pub fn check(body: &Map<String, Value>) -> Result<(), GatewayError> {
    let invalid = |m: String| Err(GatewayError::Invalid(m));
    if body.contains_key("top_p") && body.contains_key("temperature") {
        return invalid("Cannot set both 'temperature' and 'top_p' parameters.".into());
    }
    let max_tokens = body
        .get("max_tokens")
        .or_else(|| body.get("max_completion_tokens"))
        .and_then(Value::as_u64);
    if max_tokens.is_some_and(|n| n > MAX_MAX_TOKENS) {
        return invalid(format!(
            "Invalid value for max_tokens: cannot exceed {MAX_MAX_TOKENS}."
        ));
    }
    match body.get("n") {
        None | Some(Value::Null) => Ok(()),
        Some(n) if n.as_i64() == Some(1) => Ok(()),
        Some(n) => invalid(format!(
            "'n' must be '1' for the Anthropic provider. Received value: '{n}'."
        )),
    }
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The Messages API body for an OpenAI chat body.
pub fn request_body(model: Option<&str>, mut body: Map<String, Value>, stream: bool) -> Value {
    let messages = match body.remove("messages") {
        Some(Value::Array(messages)) => messages,
        _ => Vec::new(),
    };
    let system: Vec<String> = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("system"))
        .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
        .collect();
    let converted: Vec<Value> = messages
        .into_iter()
        .filter_map(|mut m| match m.get("role").and_then(Value::as_str) {
            Some("user") => Some(m),
            Some("assistant") => {
                if let Some(Value::Array(calls)) = m.get("tool_calls").cloned() {
                    let blocks: Vec<Value> = calls
                        .iter()
                        .map(|call| {
                            let arguments = call
                                .pointer("/function/arguments")
                                .and_then(Value::as_str)
                                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                                .unwrap_or_else(|| json!({}));
                            json!({"type": "tool_use", "id": call.get("id"),
                                   "name": call.pointer("/function/name"), "input": arguments})
                        })
                        .collect();
                    if let Some(fields) = m.as_object_mut() {
                        fields.remove("tool_calls");
                        fields.insert("content".into(), Value::Array(blocks));
                    }
                }
                Some(m)
            }
            Some("tool") => Some(json!({"role": "user", "content": [{
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id"),
                "content": m.get("content"),
            }]})),
            _ => None,
        })
        .collect();
    let mut out = Map::new();
    if let Some(model) = model {
        out.insert("model".into(), json!(model));
    }
    out.insert("messages".into(), Value::Array(converted));
    if !system.is_empty() {
        out.insert("system".into(), json!(system.join("\n")));
    }
    let max_tokens = body
        .remove("max_tokens")
        .or_else(|| body.remove("max_completion_tokens"))
        .filter(|v| !v.is_null())
        .unwrap_or_else(|| json!(DEFAULT_MAX_TOKENS));
    body.remove("max_completion_tokens");
    out.insert("max_tokens".into(), max_tokens);
    if let Some(stop) = body.remove("stop").filter(|v| !v.is_null()) {
        let sequences = match stop {
            Value::String(s) => json!([s]),
            other => other,
        };
        out.insert("stop_sequences".into(), sequences);
    }
    if let Some(t) = body.remove("temperature").and_then(|t| t.as_f64()) {
        out.insert("temperature".into(), json!(0.5 * t));
    }
    if let Some(Value::Array(tools)) = body.remove("tools") {
        let tools: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                json!({"name": f.get("name"), "description": f.get("description"),
                       "input_schema": f.get("parameters").cloned()
                           .unwrap_or_else(|| json!({"type": "object"}))})
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    for key in ["n", "stream", "stream_options", "model", "tool_choice"] {
        body.remove(key);
    }
    // What Anthropic also takes under the same name (top_p, top_k, metadata) passes on.
    for (key, value) in body {
        if !value.is_null() {
            out.insert(key, value);
        }
    }
    if stream {
        out.insert("stream".into(), Value::Bool(true));
    }
    Value::Object(out)
}

fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        _ => "stop",
    }
}

/// OpenAI's usage for Anthropic's: cached input is part of `prompt_tokens`.
fn usage(anthropic: &Value) -> Value {
    let n = |key: &str| anthropic.get(key).and_then(Value::as_u64);
    let cache_read = n("cache_read_input_tokens");
    let prompt = n("input_tokens")
        .map(|i| i + cache_read.unwrap_or(0) + n("cache_creation_input_tokens").unwrap_or(0));
    let completion = n("output_tokens");
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.zip(completion).map(|(p, c)| p + c),
    });
    if let Some(cached) = cache_read {
        usage["prompt_tokens_details"] = json!({"cached_tokens": cached});
    }
    usage
}

/// A Messages API answer as OpenAI's `chat.completion`.
pub fn answer(upstream: &Value, created: i64) -> Result<Vec<u8>, GatewayError> {
    let blocks = upstream
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            GatewayError::BadGateway("Anthropic's answer has no content blocks".into())
        })?;
    let text: String = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    let tool_calls: Vec<Value> = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .map(|b| {
            json!({"id": b.get("id"), "type": "function", "function": {
                "name": b.get("name"),
                "arguments": b.get("input").map(Value::to_string).unwrap_or_default(),
            }})
        })
        .collect();
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() { Value::Null } else { json!(text) },
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(tool_calls);
    }
    let body = json!({
        "id": upstream.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": upstream.get("model"),
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(
                upstream.get("stop_reason").and_then(Value::as_str).unwrap_or("end_turn")),
        }],
        "usage": usage(upstream.get("usage").unwrap_or(&Value::Null)),
    });
    serde_json::to_vec(&body).map_err(|e| GatewayError::BadGateway(e.to_string()))
}

/// Turns a stream's events into OpenAI chunks, remembering what later chunks repeat.
#[derive(Default)]
pub struct StreamTranslator {
    id: Value,
    model: Value,
    created: i64,
    /// The input side of the usage, which Anthropic reports at the start.
    started_usage: Map<String, Value>,
    /// Which OpenAI tool call each of Anthropic's content blocks is.
    tool_index: Map<String, Value>,
}

impl StreamTranslator {
    pub fn new(created: i64) -> Self {
        StreamTranslator {
            created,
            ..Default::default()
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, usage: Option<Value>) -> Vec<u8> {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        serde_json::to_vec(&chunk).unwrap_or_default()
    }

    /// The chunks one upstream event becomes (none for pings and block boundaries).
    pub fn event(&mut self, event: &Value) -> Vec<Vec<u8>> {
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                let message = event.get("message").cloned().unwrap_or(Value::Null);
                self.id = message.get("id").cloned().unwrap_or(Value::Null);
                self.model = message.get("model").cloned().unwrap_or(Value::Null);
                if let Some(Value::Object(u)) = message.get("usage") {
                    self.started_usage = u.clone();
                }
                vec![self.chunk(json!({"role": "assistant", "content": ""}), None, None)]
            }
            Some("content_block_start") => {
                let block = event.get("content_block").cloned().unwrap_or(Value::Null);
                if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                    return Vec::new();
                }
                let index = self.tool_index.len();
                let key = event.get("index").map(Value::to_string).unwrap_or_default();
                self.tool_index.insert(key, json!(index));
                vec![self.chunk(
                    json!({"tool_calls": [{"index": index, "id": block.get("id"),
                        "type": "function", "function": {"name": block.get("name"),
                        "arguments": ""}}]}),
                    None,
                    None,
                )]
            }
            Some("content_block_delta") => {
                let delta = event.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        vec![self.chunk(json!({"content": delta.get("text")}), None, None)]
                    }
                    Some("input_json_delta") => {
                        let key = event.get("index").map(Value::to_string).unwrap_or_default();
                        let index = self.tool_index.get(&key).cloned().unwrap_or(json!(0));
                        vec![self.chunk(
                            json!({"tool_calls": [{"index": index,
                                "function": {"arguments": delta.get("partial_json")}}]}),
                            None,
                            None,
                        )]
                    }
                    _ => Vec::new(),
                }
            }
            Some("message_delta") => {
                let reason = event
                    .pointer("/delta/stop_reason")
                    .and_then(Value::as_str)
                    .map(finish_reason);
                let mut all = self.started_usage.clone();
                if let Some(Value::Object(more)) = event.get("usage") {
                    all.extend(more.clone());
                }
                vec![self.chunk(json!({}), reason, Some(usage(&Value::Object(all))))]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn chat_requests_become_messages_requests_as_mlflow_maps_them() {
        let body = object(json!({
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "system", "content": "Be kind."},
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function",
                    "function": {"name": "weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "t1", "content": "rain"},
            ],
            "temperature": 1.0, "stop": "END", "n": 1, "top_k": 5,
            "tools": [{"type": "function", "function": {"name": "weather", "description": "w",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        }));
        let out = request_body(Some("claude-test"), body, true);
        assert_eq!(out["model"], "claude-test");
        assert_eq!(out["system"], "Be brief.\nBe kind.");
        assert_eq!(out["max_tokens"], 8192);
        assert_eq!(out["temperature"], 0.5);
        assert_eq!(out["stop_sequences"], json!(["END"]));
        assert_eq!(out["top_k"], 5);
        assert_eq!(out["stream"], true);
        assert!(out.get("n").is_none());
        assert_eq!(
            out["messages"][0],
            json!({"role": "user", "content": "Weather?"})
        );
        assert_eq!(
            out["messages"][1]["content"][0],
            json!({"type": "tool_use", "id": "t1", "name": "weather", "input": {"city": "Oslo"}})
        );
        assert_eq!(
            out["messages"][2],
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "rain"}]})
        );
        assert_eq!(
            out["tools"][0]["input_schema"]["properties"]["city"]["type"],
            "string"
        );
        assert!(check(&object(json!({"temperature": 1, "top_p": 0.5}))).is_err());
        assert!(check(&object(json!({"n": 2}))).is_err());
        assert!(check(&object(json!({"max_tokens": 2_000_000}))).is_err());
    }

    #[test]
    fn answers_become_chat_completions_with_openai_usage() {
        let upstream = json!({
            "id": "msg_1", "model": "claude-test", "stop_reason": "max_tokens",
            "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}],
            "usage": {"input_tokens": 10, "output_tokens": 2, "cache_read_input_tokens": 4},
        });
        let answer: Value = serde_json::from_slice(&super::answer(&upstream, 9).unwrap()).unwrap();
        assert_eq!(
            answer["choices"][0]["message"],
            json!({"role": "assistant", "content": "Hello"})
        );
        assert_eq!(answer["choices"][0]["finish_reason"], "length");
        assert_eq!(
            answer["usage"],
            json!({"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16,
                   "prompt_tokens_details": {"cached_tokens": 4}})
        );
    }

    #[test]
    fn stream_events_become_chunks() {
        let mut t = StreamTranslator::new(5);
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_1", "model": "claude-test",
                   "usage": {"input_tokens": 7, "output_tokens": 0}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
            json!({"type": "message_stop"}),
        ];
        let chunks: Vec<Value> = events
            .iter()
            .flat_map(|e| t.event(e))
            .map(|c| serde_json::from_slice(&c).unwrap())
            .collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(chunks[1]["id"], "msg_1");
        assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[2]["usage"]["total_tokens"], 10);
    }
}
