//! Language models (text generation and embeddings) as the transports see them, whatever runs
//! them: a prompt or chat goes in, text comes out as a stream of pieces and a summary; texts go
//! in, vectors come out. The wire formats built on these (MLflow's unwrapped LLM JSON on
//! `/invocations`, OpenAI's `/v1/*` with server-sent events, V2 BYTES) live in the transport.

use async_trait::async_trait;
use mlox_core::Result;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

/// What a language model was logged for (MLflow's `inference_task` / `task`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LanguageTask {
    /// `llm/v1/chat`: messages in, one assistant message out.
    Chat,
    /// `llm/v1/completions` (and plain `text-generation`): a prompt in, its continuation out.
    Completions,
    /// `llm/v1/embeddings`: texts in, one vector each.
    Embeddings,
}

impl LanguageTask {
    pub fn as_str(self) -> &'static str {
        match self {
            LanguageTask::Chat => "llm/v1/chat",
            LanguageTask::Completions => "llm/v1/completions",
            LanguageTask::Embeddings => "llm/v1/embeddings",
        }
    }
}

/// What the model continues.
#[derive(Clone, Debug)]
pub enum Prompt {
    /// Messages (`role`, `content`, …), rendered with the model's chat template.
    Chat(Vec<Map<String, Value>>),
    /// Plain text, tokenized as it is.
    Text(String),
}

/// How one generation samples and when it stops. `None` takes the model's default (its
/// `generation_config.json`, then the `model_config` it was logged with).
#[derive(Clone, Debug, Default)]
pub struct SamplingParams {
    pub max_new_tokens: Option<usize>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub seed: Option<u64>,
    /// Texts that end the generation when they appear in it.
    pub stop: Vec<String>,
    /// Generate `max_new_tokens` even past end-of-sequence tokens (vLLM's `ignore_eos`, for
    /// benchmarks).
    pub ignore_eos: bool,
    /// Whether a stop text stays in the answer (MLflow's scoring server keeps it; OpenAI's API
    /// removes it).
    pub keep_stop_text: bool,
}

#[derive(Clone, Debug)]
pub struct Generation {
    pub prompt: Prompt,
    pub params: SamplingParams,
    /// Tokenize as MLflow's transformers pipeline does: a rendered chat is tokenized like any
    /// text, so the tokenizer's special tokens (a second BOS for Llama-family templates) are
    /// added. Otherwise a rendered chat is taken as the template wrote it.
    pub mlflow_tokenization: bool,
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence token or a stop text.
    Stop,
    /// `max_new_tokens`, or the model's context.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// The end of a generation.
#[derive(Clone, Debug)]
pub struct GenerationSummary {
    pub finish_reason: FinishReason,
    /// Tokens of the prompt as the model read it (after the chat template).
    pub prompt_tokens: usize,
    /// Tokens of the prompt text without the tokenizer's special tokens (MLflow's count).
    pub prompt_tokens_plain: usize,
    /// Tokens generated, counting an end-of-sequence token as transformers does.
    pub completion_tokens: usize,
    /// The `max_new_tokens` the generation ran with.
    pub max_new_tokens: usize,
    /// The whole answer, as streamed.
    pub text: String,
    /// The answer as MLflow's transformers flavor derives it: prompt and answer decoded
    /// together, the decoded prompt's characters cut off, leading whitespace stripped.
    pub mlflow_text: String,
}

/// One piece of a generation's stream.
#[derive(Clone, Debug)]
pub enum GenerationEvent {
    /// Text that follows what was sent before.
    Text(String),
    /// The last event of a generation.
    Done(GenerationSummary),
}

/// What a generating model is doing, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenerationStats {
    pub running: usize,
    pub waiting: usize,
    /// Tokens generated since start.
    pub generated_tokens: u64,
}

/// Vectors for texts, and the tokens they took.
#[derive(Clone, Debug)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens of all inputs, special tokens included, before truncation (MLflow's usage).
    pub prompt_tokens: usize,
}

/// A language model being served. Implementations queue and batch requests themselves;
/// errors are `InvalidParameterValue` for requests the model cannot take (too many tokens, no
/// chat template) and `TemporarilyUnavailable` when the queue is full.
#[async_trait]
pub trait LanguageModel: Send + Sync + 'static {
    fn task(&self) -> LanguageTask;

    /// The checkpoint's name as MLflow records it (`source_model_name`), which MLflow's
    /// scoring server echoes as `model`.
    fn source_name(&self) -> &str;

    /// Starts a generation; its events arrive on the receiver, the last one `Done` (or an
    /// error). Dropping the receiver cancels the generation and frees its place.
    async fn generate(
        &self,
        generation: Generation,
    ) -> Result<mpsc::UnboundedReceiver<Result<GenerationEvent>>>;

    /// Embeds `inputs`.
    async fn embed(&self, inputs: Vec<String>) -> Result<Embeddings>;

    /// Counters of a generating model; `None` for embedding models.
    fn generation_stats(&self) -> Option<GenerationStats> {
        None
    }
}

/// Runs a generation to its end and returns its summary.
pub async fn generate_all(
    model: &dyn LanguageModel,
    generation: Generation,
) -> Result<GenerationSummary> {
    let mut events = model.generate(generation).await?;
    while let Some(event) = events.recv().await {
        if let GenerationEvent::Done(summary) = event? {
            return Ok(summary);
        }
    }
    Err(mlox_core::Error::unavailable(
        "the generation stopped before it finished",
    ))
}
