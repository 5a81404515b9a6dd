//! Spans of MLflow 3 traces kept in the tracking store, as MLflow keeps them when they arrive
//! over OpenTelemetry (OTLP): each span becomes the document MLflow's `Span.to_dict` writes
//! (ids in base64, every attribute value as JSON text), with the attributes of other
//! instrumentation conventions translated to MLflow's ([`translate`]); a trace's spans are
//! summed up into what its trace info shows (time range, state, token usage, previews); and a
//! stored span is rendered back as the OpenTelemetry span message clients read traces with.

mod pyjson;
mod translate;

#[cfg(test)]
mod tests;

use crate::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

pub use pyjson::{dumps as python_json_dumps, dumps_ascii as python_json_dumps_ascii};

/// MLflow's span attribute keys.
pub mod attr_key {
    pub const REQUEST_ID: &str = "mlflow.traceRequestId";
    pub const INPUTS: &str = "mlflow.spanInputs";
    pub const OUTPUTS: &str = "mlflow.spanOutputs";
    pub const SPAN_TYPE: &str = "mlflow.spanType";
    pub const CHAT_USAGE: &str = "mlflow.chat.tokenUsage";
    pub const MODEL: &str = "mlflow.llm.model";
    pub const MODEL_PROVIDER: &str = "mlflow.llm.provider";
    /// `{"input_cost", "output_cost", "total_cost"}` in USD.
    pub const LLM_COST: &str = "mlflow.llm.cost";
}

/// Trace metadata and tag keys the span store reads or writes.
pub mod trace_key {
    /// Tag: where the trace's spans are (`TRACKING_STORE` when they are in the database).
    pub const SPANS_LOCATION: &str = "mlflow.trace.spansLocation";
    pub const SPANS_IN_TRACKING_STORE: &str = "TRACKING_STORE";
    /// Metadata: `{"num_spans": n, …}` as the client counted them at the end of the trace.
    pub const SIZE_STATS: &str = "mlflow.trace.sizeStats";
    pub const TOKEN_USAGE: &str = "mlflow.trace.tokenUsage";
    /// Metadata: the trace's summed span costs, as JSON text (USD).
    pub const COST: &str = "mlflow.trace.cost";
    /// Metadata: the client's own trace info has been written; its figures win over sums of
    /// spans that arrive later.
    pub const INFO_FINALIZED: &str = "mlflow.trace.infoFinalized";
    pub const SESSION: &str = "mlflow.trace.session";
    pub const USER: &str = "mlflow.trace.user";
}

/// The service names whose spans get a `service.name` attribute on their root span, as MLflow
/// allows: known coding agents only, so free text from unknown clients is not stored.
pub const KNOWN_SERVICE_NAMES: [&str; 5] = [
    "claude-code",
    "codex_cli_rs",
    "codex_vscode",
    "gemini-cli",
    "qwen-code",
];

/// Longest request or response preview, in characters (MLflow's open-source limit).
const PREVIEW_MAX_CHARS: usize = 1000;

/// The status of a span, as OpenTelemetry codes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanStatusCode {
    Unset,
    Ok,
    Error,
}

impl SpanStatusCode {
    /// The code's name in OpenTelemetry's protocol (`STATUS_CODE_OK`).
    pub fn proto_name(self) -> &'static str {
        match self {
            SpanStatusCode::Unset => "STATUS_CODE_UNSET",
            SpanStatusCode::Ok => "STATUS_CODE_OK",
            SpanStatusCode::Error => "STATUS_CODE_ERROR",
        }
    }

    /// The code as MLflow names it in its span table (`OK`).
    pub fn mlflow_name(self) -> &'static str {
        match self {
            SpanStatusCode::Unset => "UNSET",
            SpanStatusCode::Ok => "OK",
            SpanStatusCode::Error => "ERROR",
        }
    }

    fn from_proto_name(name: &str) -> SpanStatusCode {
        match name {
            "STATUS_CODE_OK" | "OK" => SpanStatusCode::Ok,
            "STATUS_CODE_ERROR" | "ERROR" => SpanStatusCode::Error,
            _ => SpanStatusCode::Unset,
        }
    }
}

/// A span as an OpenTelemetry exporter sent it, attribute values decoded to JSON values.
#[derive(Clone, Debug, Default)]
pub struct OtelSpan {
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    pub name: String,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<(String, Value)>,
    pub events: Vec<OtelEvent>,
    pub status: Option<(SpanStatusCode, String)>,
}

#[derive(Clone, Debug, Default)]
pub struct OtelEvent {
    pub name: String,
    pub time_unix_nano: u64,
    pub attributes: Vec<(String, Value)>,
}

/// A span ready for the store: the columns it is found by and its document.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSpan {
    /// The MLflow trace id (`tr-` and the 32 hex digits of the OpenTelemetry trace id).
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub span_type: Option<String>,
    pub status: SpanStatusCode,
    pub start_time_unix_nano: i64,
    pub end_time_unix_nano: Option<i64>,
    /// The span as MLflow's `Span.to_dict` writes it.
    pub content: Value,
}

impl StoredSpan {
    /// The span's attributes (values as JSON text).
    pub fn attributes(&self) -> Option<&Map<String, Value>> {
        self.content.get("attributes").and_then(Value::as_object)
    }

    fn attribute(&self, key: &str) -> Option<Value> {
        let text = self.attributes()?.get(key)?.as_str()?;
        serde_json::from_str(text).ok()
    }
}

/// Hex digits of an id of `len` bytes, left-padded as the integer MLflow reads it as.
fn hex_id(bytes: &[u8], len: usize, what: &str) -> Result<String> {
    if bytes.is_empty() {
        return Err(Error::invalid(format!("{what} is required but was empty")));
    }
    if bytes.len() > len {
        return Err(Error::invalid(format!(
            "{what} has {} bytes; at most {len} are allowed",
            bytes.len()
        )));
    }
    let mut hex = "00".repeat(len - bytes.len());
    for byte in bytes {
        hex.push_str(&format!("{byte:02x}"));
    }
    Ok(hex)
}

fn base64_of_hex(hex: &str) -> String {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect();
    BASE64.encode(bytes)
}

/// The MLflow trace id of an OpenTelemetry trace id.
pub fn mlflow_trace_id(otel_trace_id: &[u8]) -> Result<String> {
    Ok(format!("tr-{}", hex_id(otel_trace_id, 16, "trace_id")?))
}

/// MLflow's stored JSON text of an attribute value.
fn dumped(value: &Value) -> Value {
    Value::String(pyjson::dumps(value))
}

/// Strips the second layer of JSON encoding that text attributes get on their way in (they
/// arrive as JSON text and are encoded again), for values that decode to text, objects or
/// lists; numbers and booleans keep their single layer so `"1"` stays a string.
fn undouble(attributes: &mut Map<String, Value>) {
    for value in attributes.values_mut() {
        let Value::String(text) = value else { continue };
        let Ok(Value::String(inner)) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        if matches!(
            serde_json::from_str::<Value>(&inner),
            Ok(Value::String(_) | Value::Object(_) | Value::Array(_))
        ) {
            *value = Value::String(inner);
        }
    }
}

impl OtelSpan {
    /// The span as MLflow stores it. `service_name` (already checked against
    /// [`KNOWN_SERVICE_NAMES`]) is recorded on root spans.
    pub fn into_stored(self, service_name: Option<&str>) -> Result<StoredSpan> {
        let trace_hex = hex_id(&self.trace_id, 16, "trace_id")?;
        let span_hex = hex_id(&self.span_id, 8, "span_id")?;
        let parent_hex = if self.parent_span_id.is_empty() {
            None
        } else {
            Some(hex_id(&self.parent_span_id, 8, "parent_span_id")?)
        };
        let trace_id = format!("tr-{trace_hex}");
        let mut attributes = Map::new();
        attributes.insert(attr_key::REQUEST_ID.into(), dumped(&json!(trace_id)));
        for (key, value) in &self.attributes {
            attributes.insert(key.clone(), dumped(value));
        }
        if parent_hex.is_none()
            && let Some(service) = service_name
        {
            attributes.insert("service.name".into(), dumped(&json!(service)));
        }
        undouble(&mut attributes);
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|event| {
                json!({
                    "name": event.name,
                    "time_unix_nano": event.time_unix_nano,
                    "attributes": Map::from_iter(event.attributes.iter().cloned()),
                })
            })
            .collect();
        translate::translate(&mut attributes, &events);
        let (status, message) = self
            .status
            .unwrap_or((SpanStatusCode::Unset, String::new()));
        // OpenTelemetry keeps a status description only on errors.
        let message = if status == SpanStatusCode::Error {
            message
        } else {
            String::new()
        };
        let span_type = attributes
            .get(attr_key::SPAN_TYPE)
            .and_then(Value::as_str)
            .and_then(|text| serde_json::from_str::<Value>(text).ok())
            .and_then(|value| value.as_str().map(str::to_string));
        let end = (self.end_time_unix_nano > 0).then_some(self.end_time_unix_nano as i64);
        let content = json!({
            "trace_id": base64_of_hex(&trace_hex),
            "span_id": base64_of_hex(&span_hex),
            "parent_span_id": parent_hex.as_deref().map(base64_of_hex),
            "name": self.name,
            "start_time_unix_nano": self.start_time_unix_nano,
            "end_time_unix_nano": end,
            "events": events,
            "status": {"code": status.proto_name(), "message": message},
            "attributes": attributes,
        });
        Ok(StoredSpan {
            trace_id,
            span_id: span_hex,
            parent_span_id: parent_hex,
            name: self.name,
            span_type,
            status,
            start_time_unix_nano: self.start_time_unix_nano as i64,
            end_time_unix_nano: end,
            content,
        })
    }
}

/// What a batch of one trace's spans tells about the trace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TraceSummary {
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// `OK` or `ERROR` once the root span is among them.
    pub root_state: Option<&'static str>,
    pub token_usage: Map<String, Value>,
    /// Summed `mlflow.llm.cost` of the spans; empty when none has one.
    pub cost: Map<String, Value>,
    /// Trace tags the root span carries as `mlflow.traceTag.<key>` attributes (how MLflow's
    /// client sends a trace's tags over OTLP).
    pub tags: Vec<(String, String)>,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub request_preview: Option<String>,
    pub response_preview: Option<String>,
}

impl TraceSummary {
    /// Sums up `spans` (all of one trace, at least one).
    pub fn of(spans: &[StoredSpan]) -> TraceSummary {
        let start_ms = spans
            .iter()
            .map(|s| s.start_time_unix_nano / 1_000_000)
            .min()
            .unwrap_or_default();
        let end_ms = spans
            .iter()
            .filter_map(|s| s.end_time_unix_nano)
            .max()
            .map(|ns| ns / 1_000_000);
        let mut summary = TraceSummary {
            start_ms,
            end_ms,
            ..TraceSummary::default()
        };
        // As MLflow sums them: a span whose ancestor carries the same figure is already
        // counted in it (an agent span that rolls up its model calls).
        let usage = counted_once(spans, attr_key::CHAT_USAGE);
        let cost = counted_once(spans, attr_key::LLM_COST);
        for (span, (usage, cost)) in spans.iter().zip(usage.into_iter().zip(cost)) {
            if let Some(usage) = usage {
                add_token_usage(&mut summary.token_usage, &usage);
            }
            if let Some(cost) = cost {
                add_cost(&mut summary.cost, &cost);
            }
            let text = |key: &str| match span.attribute(key) {
                Some(Value::String(text)) if !text.is_empty() => Some(text),
                _ => None,
            };
            if summary.session_id.is_none() {
                summary.session_id = text("session.id");
            }
            if summary.user_id.is_none() {
                summary.user_id = text("user.id");
            }
            if span.parent_span_id.is_none() {
                summary.tags = root_tags(span);
                summary.root_state = Some(match span.status {
                    SpanStatusCode::Error => "ERROR",
                    _ => "OK",
                });
                let raw = |key: &str| {
                    span.attributes()
                        .and_then(|a| a.get(key))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                summary.request_preview = raw(attr_key::INPUTS).map(|t| preview(&t, "user"));
                summary.response_preview = raw(attr_key::OUTPUTS).map(|t| preview(&t, "assistant"));
            }
        }
        summary
    }
}

/// Attributes of a root span that carry trace tags.
pub const TRACE_TAG_PREFIX: &str = "mlflow.traceTag.";
/// The trace's name travels the same way but is not a tag of its own.
const TRACE_NAME_TAG: &str = "mlflow.traceName";

/// The `mlflow.traceTag.<key>` attributes of a root span as tags, within MLflow's limits for
/// tags (keys of at most 250 characters, values of at most 8,000); others are skipped.
fn root_tags(span: &StoredSpan) -> Vec<(String, String)> {
    let Some(attributes) = span.attributes() else {
        return Vec::new();
    };
    attributes
        .iter()
        .filter_map(|(key, value)| {
            let tag = key.strip_prefix(TRACE_TAG_PREFIX)?;
            let text = value.as_str()?;
            // Stored values are JSON text; a plain string is the tag's value.
            let value = match serde_json::from_str::<Value>(text) {
                Ok(Value::String(s)) => s,
                _ => text.to_string(),
            };
            let fits =
                !tag.is_empty() && tag.chars().count() <= 250 && value.chars().count() <= 8000;
            (fits && tag != TRACE_NAME_TAG).then(|| (tag.to_string(), value))
        })
        .collect()
}

/// Each span's object under `key`, or `None` where the span has none or an ancestor among
/// `spans` has one (its figure already includes the span's).
fn counted_once(spans: &[StoredSpan], key: &str) -> Vec<Option<Map<String, Value>>> {
    let values: Vec<Option<Map<String, Value>>> = spans
        .iter()
        .map(|s| match s.attribute(key) {
            Some(Value::Object(map)) => Some(map),
            _ => None,
        })
        .collect();
    if values.iter().all(Option::is_none) {
        return values;
    }
    let index: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let has_value = |i: usize| values[i].is_some();
    (0..spans.len())
        .map(|i| {
            values[i].as_ref()?;
            let mut parent = spans[i].parent_span_id.as_deref();
            // Bounded: a malformed batch with a parent cycle cannot loop forever.
            for _ in 0..spans.len() {
                let Some(p) = parent
                    .and_then(|id| index.get(id).copied())
                    .filter(|p| *p != i)
                else {
                    break;
                };
                if has_value(p) {
                    return None;
                }
                parent = spans[p].parent_span_id.as_deref();
            }
            values[i].clone()
        })
        .collect()
}

/// Adds the costs of `more` to `total`, key by key (`input_cost`, `output_cost`,
/// `total_cost`, all present once any is).
pub fn add_cost(total: &mut Map<String, Value>, more: &Map<String, Value>) {
    for key in ["input_cost", "output_cost", "total_cost"] {
        let sum = total.get(key).and_then(Value::as_f64).unwrap_or(0.0)
            + more
                .get(key)
                .and_then(Value::as_f64)
                .filter(|v| v.is_finite())
                .unwrap_or(0.0);
        total.insert(key.into(), json!(sum));
    }
}

/// Adds the counts of `more` to `total`, key by key.
pub fn add_token_usage(total: &mut Map<String, Value>, more: &Map<String, Value>) {
    const KEYS: [&str; 5] = [
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ];
    for key in KEYS {
        if total.contains_key(key) || more.contains_key(key) {
            let sum = total.get(key).and_then(Value::as_i64).unwrap_or(0)
                + more.get(key).and_then(Value::as_i64).unwrap_or(0);
            total.insert(key.into(), json!(sum));
        }
    }
}

/// A trace's request or response preview: the text of the last chat message of `role` when
/// the value holds chat messages (OpenAI's shapes), else the JSON text itself; cut to
/// [`PREVIEW_MAX_CHARS`] characters.
pub fn preview(json_text: &str, role: &str) -> String {
    let content = serde_json::from_str::<Value>(json_text)
        .ok()
        .and_then(|value| chat_messages(&value))
        .and_then(|messages| {
            let message = messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some(role))
                .or(messages.last())?;
            Some(message_text(message))
        })
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| json_text.to_string());
    if content.chars().count() <= PREVIEW_MAX_CHARS {
        return content;
    }
    let mut cut: String = content.chars().take(PREVIEW_MAX_CHARS - 3).collect();
    cut.push_str("...");
    cut
}

fn is_message(item: &Value) -> bool {
    item.get("role").is_some() && item.get("content").is_some()
}

fn chat_messages(value: &Value) -> Option<Vec<Value>> {
    let fields = value.as_object()?;
    let messages_in = |key: &str| match fields.get(key) {
        Some(Value::Array(items)) if !items.is_empty() => Some(
            items
                .iter()
                .filter(|item| is_message(item))
                .cloned()
                .collect::<Vec<_>>(),
        ),
        _ => None,
    };
    if let Some(messages) = messages_in("messages") {
        return Some(messages);
    }
    if let Some(message) = value
        .pointer("/choices/0/message")
        .filter(|message| is_message(message))
    {
        return Some(vec![message.clone()]);
    }
    if let Some(messages) = messages_in("input").or_else(|| messages_in("output")) {
        return Some(messages);
    }
    fields.get("request").and_then(chat_messages)
}

fn message_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .find_map(|part| match part {
                Value::String(text) => Some(text.clone()),
                Value::Object(fields)
                    if matches!(
                        fields.get("type").and_then(Value::as_str),
                        Some("text" | "output_text")
                    ) =>
                {
                    Some(
                        fields
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    )
                }
                _ => None,
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// An attribute value as OpenTelemetry's `AnyValue` message in JSON.
fn any_value(value: &Value) -> Value {
    match value {
        Value::Null => json!({}),
        Value::Bool(b) => json!({ "bool_value": b }),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({ "int_value": n }),
        Value::Number(n) => json!({ "double_value": n }),
        Value::String(s) => json!({ "string_value": s }),
        Value::Array(items) => {
            json!({ "array_value": { "values": items.iter().map(any_value).collect::<Vec<_>>() } })
        }
        Value::Object(fields) => json!({ "kvlist_value": { "values": key_values(fields) } }),
    }
}

fn key_values(fields: &Map<String, Value>) -> Vec<Value> {
    fields
        .iter()
        .map(|(key, value)| json!({ "key": key, "value": any_value(value) }))
        .collect()
}

/// A stored span (its `Span.to_dict` document) as the OpenTelemetry `Span` message MLflow's
/// trace responses carry, in protobuf's JSON form with field names as declared.
pub fn otel_span_json(content: &Value) -> Value {
    let attributes: Map<String, Value> = content
        .get("attributes")
        .and_then(Value::as_object)
        .map(|stored| {
            stored
                .iter()
                .map(|(key, value)| {
                    let decoded = match value {
                        Value::String(text) => {
                            serde_json::from_str(text).unwrap_or_else(|_| value.clone())
                        }
                        other => other.clone(),
                    };
                    (key.clone(), decoded)
                })
                .collect()
        })
        .unwrap_or_default();
    let events: Vec<Value> = content
        .get("events")
        .and_then(Value::as_array)
        .map(|events| {
            events
                .iter()
                .map(|event| {
                    let attributes = event
                        .get("attributes")
                        .and_then(Value::as_object)
                        .map(key_values)
                        .unwrap_or_default();
                    json!({
                        "name": event.get("name").cloned().unwrap_or(json!("")),
                        "time_unix_nano": event.get("time_unix_nano").cloned().unwrap_or(json!(0)),
                        "attributes": attributes,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let status = content.get("status");
    let code = SpanStatusCode::from_proto_name(
        status
            .and_then(|s| s.get("code"))
            .and_then(Value::as_str)
            .unwrap_or(""),
    );
    let mut span = json!({
        "trace_id": content.get("trace_id").cloned().unwrap_or(json!("")),
        "span_id": content.get("span_id").cloned().unwrap_or(json!("")),
        "name": content.get("name").cloned().unwrap_or(json!("")),
        "start_time_unix_nano": content.get("start_time_unix_nano").cloned().unwrap_or(json!(0)),
        "attributes": key_values(&attributes),
        "events": events,
        "status": {
            "code": code.proto_name(),
            "message": status.and_then(|s| s.get("message")).and_then(Value::as_str).unwrap_or(""),
        },
    });
    if let Some(parent) = content.get("parent_span_id").filter(|p| p.is_string()) {
        span["parent_span_id"] = parent.clone();
    }
    if let Some(end) = content.get("end_time_unix_nano").filter(|e| !e.is_null()) {
        span["end_time_unix_nano"] = end.clone();
    }
    span
}
