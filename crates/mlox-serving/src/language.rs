//! The wire formats of language models, over `mlox_runtime::language`: MLflow's unwrapped LLM
//! JSON on `/invocations` (what `mlflow models serve` answers for a transformers or
//! sentence-transformers model logged with an `llm/v1/*` task) and OpenAI's chat, completions
//! and embeddings API. Both read a request into a [`Generation`] (or texts) and render the same
//! summary; only the shapes and a few rules differ (MLflow keeps a stop text and counts usage
//! its own way; OpenAI removes it).

use base64::Engine as _;
use mlox_core::{Error, Result};
use mlox_runtime::language::{
    Embeddings, Generation, GenerationSummary, LanguageModel, LanguageTask, Prompt, SamplingParams,
    generate_all,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Seconds since the epoch, as `created` carries them.
pub fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a JSON body is MLflow's unified LLM input (a top-level `messages`, `prompt` or
/// `input`), which is answered unwrapped.
pub fn is_unified_llm_input(body: &Map<String, Value>) -> bool {
    ["messages", "prompt", "input"]
        .iter()
        .any(|k| body.contains_key(*k))
}

fn object_of(body: &Value) -> Result<&Map<String, Value>> {
    body.as_object()
        .ok_or_else(|| Error::invalid("the request body must be a JSON object"))
}

fn messages_of(value: &Value) -> Result<Vec<Map<String, Value>>> {
    let items = value
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::invalid("`messages` must be a non-empty list of messages"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let message = m
                .as_object()
                .ok_or_else(|| Error::invalid(format!("messages[{i}] must be an object")))?;
            if !message.get("role").is_some_and(Value::is_string) {
                return Err(Error::invalid(format!(
                    "messages[{i}] needs a string `role`"
                )));
            }
            match message.get("content") {
                None | Some(Value::Null | Value::String(_)) => {}
                // OpenAI's content parts: text parts only.
                Some(Value::Array(parts)) => {
                    if parts
                        .iter()
                        .any(|p| p.get("type").and_then(Value::as_str) != Some("text"))
                    {
                        return Err(Error::invalid(format!(
                            "messages[{i}]: only text content parts are supported"
                        )));
                    }
                }
                Some(_) => {
                    return Err(Error::invalid(format!(
                        "messages[{i}].content must be a string or a list of text parts"
                    )));
                }
            }
            let mut message = message.clone();
            if let Some(Value::Array(parts)) = message.get("content") {
                let text: String = parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect();
                message.insert("content".into(), Value::String(text));
            }
            Ok(message)
        })
        .collect()
}

fn stop_of(value: Option<&Value>) -> Result<Vec<String>> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::invalid("`stop` must be a string or a list of strings"))
            })
            .collect(),
        Some(_) => Err(Error::invalid(
            "`stop` must be a string or a list of strings",
        )),
    }
}

fn number(body: &Map<String, Value>, key: &str) -> Result<Option<f64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("`{key}` must be a number"))),
    }
}

fn count(body: &Map<String, Value>, key: &str) -> Result<Option<usize>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|v| Some(v as usize))
            .ok_or_else(|| Error::invalid(format!("`{key}` must be a non-negative integer"))),
    }
}

/// The sampling fields OpenAI and MLflow share.
fn sampling(body: &Map<String, Value>, max_tokens_keys: &[&str]) -> Result<SamplingParams> {
    let mut max_new_tokens = None;
    for key in max_tokens_keys {
        if let Some(v) = count(body, key)? {
            max_new_tokens = Some(v);
        }
    }
    let temperature = number(body, "temperature")?;
    if temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(Error::invalid("`temperature` must be between 0 and 2"));
    }
    let top_p = number(body, "top_p")?;
    if top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        return Err(Error::invalid(
            "`top_p` must be greater than 0 and at most 1",
        ));
    }
    Ok(SamplingParams {
        max_new_tokens,
        do_sample: body.get("do_sample").and_then(Value::as_bool),
        temperature,
        top_p,
        top_k: count(body, "top_k")?,
        seed: count(body, "seed")?.map(|s| s as u64),
        stop: stop_of(body.get("stop"))?,
        ignore_eos: body.get("ignore_eos").and_then(Value::as_bool) == Some(true),
        keep_stop_text: false,
    })
}

// ---------------------------------------------------------------------------------------------
// MLflow's unwrapped LLM JSON

#[derive(Serialize)]
struct MlflowUsage {
    prompt_tokens: usize,
    completion_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize)]
struct MlflowMessage {
    role: &'static str,
    content: String,
}

#[derive(Serialize)]
struct MlflowChoice {
    index: usize,
    finish_reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<MlflowMessage>,
}

#[derive(Serialize)]
struct MlflowCompletion {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
    usage: MlflowUsage,
    choices: Vec<MlflowChoice>,
}

#[derive(Serialize)]
struct EmbeddingItem {
    object: &'static str,
    index: usize,
    embedding: Value,
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize)]
struct MlflowEmbeddings {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    usage: EmbeddingUsage,
}

/// Answers MLflow's unified LLM input as `mlflow models serve` does for a transformers model
/// logged with an `llm/v1/*` task: the other top-level fields are generation parameters,
/// `max_tokens` is `max_new_tokens`, a stop text stays in the answer, and the answer is a list
/// with one completion object (not wrapped in `predictions`).
pub async fn mlflow_invocation(
    model: &dyn LanguageModel,
    mut body: Map<String, Value>,
) -> Result<Box<RawValue>> {
    let task = model.task();
    if task == LanguageTask::Embeddings {
        let input = body
            .remove("input")
            .ok_or_else(|| Error::bad_request("an llm/v1/embeddings model takes `input`"))?;
        let texts = texts_of(input)?;
        let embeddings = model.embed(texts).await?;
        return to_raw(mlflow_embeddings(embeddings));
    }
    let (key, prompt) = match task {
        LanguageTask::Chat => (
            "messages",
            body.remove("messages")
                .map(|m| messages_of(&m).map(Prompt::Chat)),
        ),
        _ => (
            "prompt",
            body.remove("prompt").map(|p| match p {
                Value::String(s) => Ok(Prompt::Text(s)),
                _ => Err(Error::invalid("`prompt` must be a string")),
            }),
        ),
    };
    let prompt = prompt.ok_or_else(|| {
        Error::bad_request(format!(
            "Transformer model saved with `{}` task excepts `{key}`to be passed as input data.",
            task.as_str()
        ))
    })??;
    let mut params = sampling(&body, &["max_new_tokens", "max_tokens"])?;
    params.keep_stop_text = true;
    let summary = generate_all(
        model,
        Generation {
            prompt,
            params,
            mlflow_tokenization: true,
        },
    )
    .await?;
    let total = summary.prompt_tokens + summary.completion_tokens;
    let completion_tokens = total - summary.prompt_tokens_plain;
    let finish_reason = if completion_tokens == summary.max_new_tokens {
        "length"
    } else {
        "stop"
    };
    let text = summary.mlflow_text;
    let (object, text, message) = match task {
        LanguageTask::Chat => (
            "chat.completion",
            None,
            Some(MlflowMessage {
                role: "assistant",
                content: text,
            }),
        ),
        _ => ("text_completion", Some(text), None),
    };
    to_raw(vec![MlflowCompletion {
        id: uuid::Uuid::new_v4().to_string(),
        object,
        created: now_seconds(),
        model: model.source_name().to_owned(),
        usage: MlflowUsage {
            prompt_tokens: summary.prompt_tokens_plain,
            completion_tokens,
            total_tokens: total,
        },
        choices: vec![MlflowChoice {
            index: 0,
            finish_reason,
            text,
            message,
        }],
    }])
}

/// Whether the model was logged with MLflow's `llm/v1/embeddings` task (pyfunc config or the
/// transformers flavor's inference task), whose pyfunc answer is the embeddings object even for
/// `{"inputs": …}`.
pub fn logged_as_embeddings_task(mlmodel: &mlox_mlmodel::MlModel) -> bool {
    let task = |flavor: &str, path: &[&str]| {
        let mut v = mlmodel.flavor(flavor);
        for key in path {
            v = v.and_then(|x| x.get(*key));
        }
        v.and_then(Value::as_str) == Some("llm/v1/embeddings")
    };
    task("python_function", &["config", "task"]) || task("transformers", &["inference_task"])
}

/// MLflow's `{"inputs": […]}` to an `llm/v1/embeddings` model: the embeddings object, which the
/// caller wraps in `predictions`.
pub async fn mlflow_inputs_embeddings(
    model: &dyn LanguageModel,
    inputs: Value,
) -> Result<Box<RawValue>> {
    let texts = texts_of(inputs)?;
    to_raw(mlflow_embeddings(model.embed(texts).await?))
}

fn mlflow_embeddings(embeddings: Embeddings) -> MlflowEmbeddings {
    MlflowEmbeddings {
        object: "list",
        data: embeddings
            .vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| EmbeddingItem {
                object: "embedding",
                index,
                embedding: floats(&v),
            })
            .collect(),
        usage: EmbeddingUsage {
            prompt_tokens: embeddings.prompt_tokens,
            total_tokens: embeddings.prompt_tokens,
        },
    }
}

/// f32 values as JSON numbers that read back as the same f32 (what Python prints for a
/// float32 array's items, widened to float).
fn floats(values: &[f32]) -> Value {
    Value::Array(values.iter().map(|&v| Value::from(f64::from(v))).collect())
}

fn texts_of(input: Value) -> Result<Vec<String>> {
    match input {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) if !items.is_empty() => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(Error::invalid(
                    "`input` must be a string or a list of strings (token ids are not supported)",
                )),
            })
            .collect(),
        _ => Err(Error::invalid(
            "`input` must be a string or a non-empty list of strings",
        )),
    }
}

/// The answer as JSON text in the struct's field order (the order MLflow and OpenAI write).
fn to_raw<T: Serialize>(value: T) -> Result<Box<RawValue>> {
    serde_json::to_string(&value)
        .and_then(RawValue::from_string)
        .map_err(|e| Error::internal(format!("answer encoding: {e}")))
}

// ---------------------------------------------------------------------------------------------
// OpenAI's API

/// OpenAI's sampling rule: a temperature above 0 samples and 0 is greedy, whatever the model's
/// `do_sample` default (transformers' rule, kept on `/invocations`, ignores a temperature
/// unless sampling is on).
fn openai_sampling(mut params: SamplingParams) -> SamplingParams {
    if let Some(t) = params.temperature {
        params.do_sample = Some(t > 0.0);
    }
    params
}

/// A parsed `/v1/chat/completions` or `/v1/completions` request.
pub struct OpenAiGeneration {
    pub model: Option<String>,
    /// One generation per prompt (a completions request may send several).
    pub generations: Vec<Generation>,
    pub stream: bool,
    pub include_usage: bool,
}

/// Fields OpenAI defines that this server does not implement; a request that sets one is
/// refused rather than answered as if it had not.
fn refuse_unsupported(body: &Map<String, Value>, fields: &[&str]) -> Result<()> {
    for field in fields {
        let set = match body.get(*field) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(Value::Array(a)) => !a.is_empty(),
            Some(_) => true,
        };
        if set {
            return Err(Error::invalid(format!(
                "`{field}` is not supported by this server"
            )));
        }
    }
    if count(body, "n")?.is_some_and(|n| n != 1) {
        return Err(Error::invalid("only `n` = 1 is supported"));
    }
    Ok(())
}

fn stream_fields(body: &Map<String, Value>) -> (bool, bool) {
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    (stream, include_usage)
}

fn model_field(body: &Map<String, Value>) -> Result<Option<String>> {
    match body.get("model") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::invalid("`model` must be a string")),
    }
}

pub fn parse_chat(body: &Value) -> Result<OpenAiGeneration> {
    let body = object_of(body)?;
    refuse_unsupported(
        body,
        &[
            "tools",
            "functions",
            "logprobs",
            "top_logprobs",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "response_format",
        ],
    )?;
    let messages = body
        .get("messages")
        .ok_or_else(|| Error::invalid("`messages` is required"))?;
    let (stream, include_usage) = stream_fields(body);
    Ok(OpenAiGeneration {
        model: model_field(body)?,
        generations: vec![Generation {
            prompt: Prompt::Chat(messages_of(messages)?),
            params: openai_sampling(sampling(body, &["max_tokens", "max_completion_tokens"])?),
            mlflow_tokenization: false,
        }],
        stream,
        include_usage,
    })
}

pub fn parse_completion(body: &Value) -> Result<OpenAiGeneration> {
    let body = object_of(body)?;
    refuse_unsupported(
        body,
        &[
            "logprobs",
            "echo",
            "suffix",
            "presence_penalty",
            "frequency_penalty",
            "logit_bias",
            "best_of",
        ],
    )?;
    let prompts = match body.get("prompt") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|p| {
                p.as_str().map(str::to_owned).ok_or_else(|| {
                    Error::invalid("`prompt` must be a string or a list of strings (token ids are not supported)")
                })
            })
            .collect::<Result<_>>()?,
        _ => return Err(Error::invalid("`prompt` must be a string or a non-empty list of strings")),
    };
    let params = openai_sampling(sampling(body, &["max_tokens"])?);
    let (stream, include_usage) = stream_fields(body);
    if stream && prompts.len() > 1 {
        return Err(Error::invalid("streaming takes one prompt"));
    }
    Ok(OpenAiGeneration {
        model: model_field(body)?,
        generations: prompts
            .into_iter()
            .map(|p| Generation {
                prompt: Prompt::Text(p),
                params: params.clone(),
                mlflow_tokenization: false,
            })
            .collect(),
        stream,
        include_usage,
    })
}

#[derive(Serialize, Clone, Copy, Default)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

impl Usage {
    pub fn of(summary: &GenerationSummary) -> Usage {
        Usage {
            prompt_tokens: summary.prompt_tokens,
            completion_tokens: summary.completion_tokens,
            total_tokens: summary.prompt_tokens + summary.completion_tokens,
        }
    }

    pub fn plus(self, other: Usage) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens + other.prompt_tokens,
            completion_tokens: self.completion_tokens + other.completion_tokens,
            total_tokens: self.total_tokens + other.total_tokens,
        }
    }
}

#[derive(Serialize)]
struct ChatMessage {
    role: &'static str,
    content: String,
}

#[derive(Serialize)]
struct ChatChoice {
    index: usize,
    message: ChatMessage,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct ChatCompletion {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
    choices: Vec<ChatChoice>,
    usage: Usage,
}

#[derive(Serialize)]
struct TextChoice {
    index: usize,
    text: String,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct TextCompletion {
    id: String,
    object: &'static str,
    created: u64,
    model: String,
    choices: Vec<TextChoice>,
    usage: Usage,
}

/// Runs every generation of a non-streaming request and renders OpenAI's answer.
pub async fn openai_answer(
    model: &dyn LanguageModel,
    served_name: &str,
    request: OpenAiGeneration,
    chat: bool,
) -> Result<Box<RawValue>> {
    let mut summaries = Vec::with_capacity(request.generations.len());
    // Submitted together, so several prompts share the batch.
    let runs = request
        .generations
        .into_iter()
        .map(|g| generate_all(model, g));
    for summary in futures::future::join_all(runs).await {
        summaries.push(summary?);
    }
    let usage = summaries
        .iter()
        .map(Usage::of)
        .fold(Usage::default(), Usage::plus);
    let created = now_seconds();
    if chat {
        let choices = summaries
            .into_iter()
            .enumerate()
            .map(|(index, s)| ChatChoice {
                index,
                finish_reason: s.finish_reason.as_str(),
                message: ChatMessage {
                    role: "assistant",
                    content: s.text,
                },
                logprobs: None,
            })
            .collect();
        to_raw(ChatCompletion {
            id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()),
            object: "chat.completion",
            created,
            model: served_name.to_owned(),
            choices,
            usage,
        })
    } else {
        let choices = summaries
            .into_iter()
            .enumerate()
            .map(|(index, s)| TextChoice {
                index,
                finish_reason: s.finish_reason.as_str(),
                text: s.text,
                logprobs: None,
            })
            .collect();
        to_raw(TextCompletion {
            id: format!("cmpl-{}", uuid::Uuid::new_v4().simple()),
            object: "text_completion",
            created,
            model: served_name.to_owned(),
            choices,
            usage,
        })
    }
}

/// The chunks of a streamed answer, in OpenAI's shapes.
pub struct StreamShape {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub chat: bool,
    pub include_usage: bool,
}

impl StreamShape {
    pub fn new(model: &str, chat: bool, include_usage: bool) -> StreamShape {
        let id = if chat {
            format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
        } else {
            format!("cmpl-{}", uuid::Uuid::new_v4().simple())
        };
        StreamShape {
            id,
            created: now_seconds(),
            model: model.to_owned(),
            chat,
            include_usage,
        }
    }

    fn chunk(&self, choices: Value, usage: Option<Usage>) -> Value {
        let mut chunk = Map::new();
        chunk.insert("id".into(), Value::String(self.id.clone()));
        chunk.insert(
            "object".into(),
            Value::String(
                if self.chat {
                    "chat.completion.chunk"
                } else {
                    "text_completion"
                }
                .into(),
            ),
        );
        chunk.insert("created".into(), Value::from(self.created));
        chunk.insert("model".into(), Value::String(self.model.clone()));
        chunk.insert("choices".into(), choices);
        if self.include_usage {
            chunk.insert(
                "usage".into(),
                usage.map_or(Value::Null, |u| {
                    serde_json::to_value(u).unwrap_or(Value::Null)
                }),
            );
        }
        Value::Object(chunk)
    }

    /// The chat stream's first chunk: the assistant's role, no content yet.
    pub fn role(&self) -> Option<Value> {
        self.chat.then(|| {
            self.chunk(
                serde_json::json!([{"index": 0, "delta": {"role": "assistant", "content": ""},
                    "logprobs": null, "finish_reason": null}]),
                None,
            )
        })
    }

    pub fn text(&self, piece: &str) -> Value {
        let choice = if self.chat {
            serde_json::json!([{"index": 0, "delta": {"content": piece}, "logprobs": null,
                "finish_reason": null}])
        } else {
            serde_json::json!([{"index": 0, "text": piece, "logprobs": null, "finish_reason": null}])
        };
        self.chunk(choice, None)
    }

    /// The last chunk of the choice, and the usage chunk when asked for.
    pub fn end(&self, summary: &GenerationSummary) -> Vec<Value> {
        let reason = summary.finish_reason.as_str();
        let choice = if self.chat {
            serde_json::json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason}])
        } else {
            serde_json::json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": reason}])
        };
        let mut chunks = vec![self.chunk(choice, None)];
        if self.include_usage {
            chunks.push(self.chunk(Value::Array(Vec::new()), Some(Usage::of(summary))));
        }
        chunks
    }
}

/// An `/v1/embeddings` request.
pub struct OpenAiEmbedding {
    pub model: Option<String>,
    pub input: Vec<String>,
    pub base64: bool,
}

pub fn parse_embedding(body: &Value) -> Result<OpenAiEmbedding> {
    let body = object_of(body)?;
    let input = body
        .get("input")
        .cloned()
        .ok_or_else(|| Error::invalid("`input` is required"))?;
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(Error::invalid(format!(
                "`encoding_format` must be float or base64, not {other}"
            )));
        }
    };
    if body.get("dimensions").is_some_and(|d| !d.is_null()) {
        return Err(Error::invalid(
            "`dimensions` is not supported by this server",
        ));
    }
    Ok(OpenAiEmbedding {
        model: model_field(body)?,
        input: texts_of(input)?,
        base64,
    })
}

#[derive(Serialize)]
struct OpenAiEmbeddings {
    object: &'static str,
    data: Vec<EmbeddingItem>,
    model: String,
    usage: EmbeddingUsage,
}

pub fn openai_embeddings(
    embeddings: Embeddings,
    served_name: &str,
    base64: bool,
) -> Result<Box<RawValue>> {
    let data = embeddings
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, v)| EmbeddingItem {
            object: "embedding",
            index,
            embedding: if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                floats(&v)
            },
        })
        .collect();
    to_raw(OpenAiEmbeddings {
        object: "list",
        data,
        model: served_name.to_owned(),
        usage: EmbeddingUsage {
            prompt_tokens: embeddings.prompt_tokens,
            total_tokens: embeddings.prompt_tokens,
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn unified_llm_input_is_recognised_by_its_keys() {
        let unified = |v: Value| is_unified_llm_input(v.as_object().unwrap());
        assert!(unified(json!({"messages": []})));
        assert!(unified(json!({"prompt": "x"})));
        assert!(unified(json!({"input": ["x"]})));
        assert!(!unified(json!({"inputs": ["x"]})));
    }

    #[test]
    fn chat_requests_read_sampling_and_stop() {
        let parsed = parse_chat(&json!({
            "model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "temperature": 0, "max_tokens": 5, "stop": "\n", "stream": true,
            "stream_options": {"include_usage": true}, "seed": 7
        }))
        .unwrap();
        assert!(parsed.stream && parsed.include_usage);
        let g = &parsed.generations[0];
        assert_eq!(g.params.max_new_tokens, Some(5));
        assert_eq!(g.params.temperature, Some(0.0));
        assert_eq!(g.params.stop, vec!["\n"]);
        assert_eq!(g.params.seed, Some(7));
        assert!(!g.params.keep_stop_text);
        let Prompt::Chat(messages) = &g.prompt else {
            panic!()
        };
        assert_eq!(messages[0]["content"], "hi");
    }

    #[test]
    fn unsupported_openai_fields_are_refused_not_ignored() {
        for (field, value) in [
            ("tools", json!([{"type": "function"}])),
            ("logprobs", json!(true)),
            ("presence_penalty", json!(0.5)),
            ("n", json!(2)),
        ] {
            let mut body = json!({"messages": [{"role": "user", "content": "x"}]});
            body[field] = value;
            let err = parse_chat(&body).err().unwrap();
            assert!(err.message.contains(field), "{field}: {}", err.message);
        }
        // Defaults a client sends explicitly are fine.
        let body = json!({"messages": [{"role": "user", "content": "x"}], "n": 1,
            "presence_penalty": 0, "logprobs": false, "tools": []});
        assert!(parse_chat(&body).is_ok());
    }

    #[test]
    fn bad_values_are_named() {
        let bad = [
            json!({"messages": []}),
            json!({"messages": [{"content": "x"}]}),
            json!({"messages": [{"role": "user", "content": "x"}], "temperature": 3}),
            json!({"messages": [{"role": "user", "content": "x"}], "top_p": 0}),
            json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}),
            json!({"messages": [{"role": "user", "content": "x"}], "stop": 3}),
        ];
        for body in bad {
            assert!(parse_chat(&body).is_err(), "{body}");
        }
        assert!(parse_completion(&json!({"prompt": [1, 2]})).is_err());
        assert!(parse_embedding(&json!({"input": [[1, 2]]})).is_err());
        assert!(parse_embedding(&json!({"input": "x", "encoding_format": "int8"})).is_err());
    }

    #[test]
    fn embeddings_can_be_base64_little_endian_floats() {
        let e = Embeddings {
            vectors: vec![vec![1.0, -2.5]],
            prompt_tokens: 3,
        };
        let v: Value =
            serde_json::from_str(openai_embeddings(e, "m", true).unwrap().get()).unwrap();
        let b = base64::engine::general_purpose::STANDARD
            .decode(v["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        assert_eq!(b.len(), 8);
        assert_eq!(f32::from_le_bytes([b[4], b[5], b[6], b[7]]), -2.5);
        assert_eq!(v["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
        assert_eq!(v["model"], "m");
    }
}
