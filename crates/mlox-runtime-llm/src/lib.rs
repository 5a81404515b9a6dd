//! The native runtime for language models logged with MLflow: causal LMs of the transformers
//! flavor (`llm/v1/chat`, `llm/v1/completions`, `text-generation`; Llama, Mistral, Qwen2/3 and
//! Phi-3 checkpoints) and embedding models (sentence-transformers folders and the transformers
//! flavor's `llm/v1/embeddings`, BERT-family encoders), run on candle's tensors with the checkpoint's own
//! tokenizer and chat template. Generation is continuously batched ([`engine`]); embeddings are
//! batched by a token budget ([`embed`]). Everything this runtime does not reproduce exactly
//! (other architectures, PEFT adapters, unknown sentence-transformers modules, …) is left to
//! the Python runtime with the reason. Only candle's tensor library (candle-core, candle-nn) is
//! used; the decoder, the BERT encoder and the sampler are this crate's own.
//!
//! This crate implements `mlox_runtime`'s [`NativeBackend`] and [`LanguageModel`]; the wire
//! formats (MLflow's LLM JSON, OpenAI's API) belong to the transport.

use std::path::Path;
use std::sync::Arc;

use arrow_array::Float32Array;
use async_trait::async_trait;
use candle_core::{DType, Device};
use mlox_core::{Error, Result};
use mlox_mlmodel::mlmodel::PYFUNC_FLAVOR;
use mlox_runtime::language::{
    Embeddings, Generation, GenerationEvent, LanguageModel, LanguageTask, Prompt,
};
use mlox_runtime::{
    Load, LoadedModel, ModelDir, ModelInput, ModelOutput, NativeBackend, PredictRequest, Predictor,
    Tensor as RuntimeTensor, fallback,
};
use tokio::sync::mpsc;

pub mod bert;
pub mod config;
pub mod decoder;
pub mod embed;
pub mod engine;
pub mod load;
pub mod sample;
pub mod text;

use crate::config::DecoderConfig;
use crate::decoder::{Decoder, Quantization, Weights};
use crate::embed::Embedder;
use crate::engine::{Engine, Job, Limits};
use crate::load::{Defaults, Plan};
use crate::sample::Strategy;
use crate::text::{Message, TextCodec};

/// The backend that offers transformers and sentence-transformers models to this runtime.
pub struct Llm;

/// How decoders loaded from now on hold their weights (`mlox serve --quantize`); set once at
/// start-up, before any model loads.
static QUANTIZATION: std::sync::OnceLock<Quantization> = std::sync::OnceLock::new();

/// Chooses the quantization of every decoder this process loads; the first call wins.
pub fn set_quantization(quantization: Quantization) {
    let _ = QUANTIZATION.set(quantization);
}

impl NativeBackend for Llm {
    fn loader_modules(&self) -> &'static [&'static str] {
        &["mlflow.transformers", "mlflow.sentence_transformers"]
    }

    fn load(&self, model: &ModelDir) -> Result<Load> {
        let plan = match load::plan(model) {
            Ok(plan) => plan,
            Err(reason) => return fallback(reason),
        };
        let (language, description): (Arc<dyn LanguageModel>, String) = match plan {
            Plan::Generator {
                task,
                weights,
                tokenizer,
                source_name,
            } => {
                let config = load::read_config(&weights)?;
                let decoder_config = match DecoderConfig::from_json(&config) {
                    Ok(c) => c,
                    Err(e) => return fallback(e.to_string()),
                };
                let generation_config =
                    load::read_json(&weights.join("generation_config.json")).ok();
                let model_config = model
                    .mlmodel
                    .flavor(PYFUNC_FLAVOR)
                    .and_then(|f| f.get("config"))
                    .cloned();
                let defaults = Defaults::read(generation_config.as_ref(), model_config.as_ref());
                let generator = Generator::load(
                    task,
                    &weights,
                    &tokenizer,
                    decoder_config,
                    defaults,
                    source_name,
                )?;
                let description = format!(
                    "{} {:?} decoder, {} layers, weights {:?}, native generation with continuous \
                     batching",
                    task.as_str(),
                    generator.architecture,
                    generator.layers,
                    QUANTIZATION.get().copied().unwrap_or_default()
                );
                (Arc::new(generator), description)
            }
            Plan::Encoder {
                weights,
                tokenizer,
                max_length,
                head,
                source_name,
            } => {
                let embedder = Embedder::load(&weights, &tokenizer, max_length, head, 16_384)?;
                let description = format!(
                    "BERT encoder with {:?} pooling{}, native embeddings",
                    head.pooling,
                    if head.normalize {
                        " and normalisation"
                    } else {
                        ""
                    }
                );
                (
                    Arc::new(Encoder {
                        embedder,
                        source_name,
                    }),
                    description,
                )
            }
        };
        let signature = match model.mlmodel.parsed_signature() {
            Ok(s) => s,
            Err(e) => return fallback(format!("its signature is unreadable: {}", e.message)),
        };
        Ok(Load::Native {
            model: LoadedModel {
                mlmodel: model.mlmodel.clone(),
                signature,
                predictor: Arc::new(LanguagePredictor {
                    model: language.clone(),
                }),
                language: Some(language),
            },
            description,
        })
    }
}

/// A causal LM behind its generation engine.
pub struct Generator {
    task: LanguageTask,
    engine: Engine,
    codec: Arc<TextCodec>,
    defaults: Defaults,
    source_name: String,
    max_positions: usize,
    architecture: config::Architecture,
    layers: usize,
}

impl Generator {
    pub fn load(
        task: LanguageTask,
        weights_dir: &Path,
        tokenizer_dir: &Path,
        config: DecoderConfig,
        defaults: Defaults,
        source_name: String,
    ) -> Result<Generator> {
        let device = Device::Cpu;
        let tensors = load::read_safetensors(weights_dir, &device)?;
        // bf16/f16 checkpoints run as f32 on CPU: candle's CPU kernels are fastest and exact there.
        let quantization = QUANTIZATION.get().copied().unwrap_or_default();
        let decoder = Decoder::load_quantized(
            config.clone(),
            &Weights::new(tensors, DType::F32),
            &device,
            quantization,
        )
        .map_err(|e| Error::invalid(format!("the checkpoint does not load: {e}")))?;
        let codec = Arc::new(TextCodec::open(tokenizer_dir, None)?);
        let mut eos = defaults.eos_token_ids.clone();
        eos.extend(&config.eos_token_ids);
        if let Some(id) = codec.eos_token().and_then(|t| codec.token_id(t)) {
            eos.push(id);
        }
        eos.sort_unstable();
        eos.dedup();
        let engine = Engine::start(decoder, codec.clone(), eos, Limits::default());
        Ok(Generator {
            task,
            engine,
            codec,
            defaults,
            source_name,
            max_positions: config.max_position_embeddings,
            architecture: config.architecture,
            layers: config.num_layers,
        })
    }

    /// The prompt's token ids, and how many tokens its text has without special tokens.
    /// A chat is rendered with the template and then tokenized without adding special tokens
    /// (the template wrote them), unless MLflow's tokenization is asked for.
    fn prompt_ids(&self, generation: &Generation) -> Result<(Vec<u32>, usize)> {
        let (text, add_special) = match &generation.prompt {
            Prompt::Chat(messages) => (
                self.codec.render_chat(messages)?,
                generation.mlflow_tokenization,
            ),
            Prompt::Text(text) => (text.clone(), true),
        };
        let ids = self.codec.encode(&text, add_special)?;
        let plain = if add_special {
            self.codec.encode(&text, false)?.len()
        } else {
            ids.len()
        };
        Ok((ids, plain))
    }

    fn job(
        &self,
        generation: &Generation,
        events: mpsc::UnboundedSender<Result<GenerationEvent>>,
    ) -> Result<Job> {
        let (prompt_ids, prompt_tokens_plain) = self.prompt_ids(generation)?;
        if prompt_ids.is_empty() {
            return Err(Error::invalid("the prompt is empty"));
        }
        let p = &generation.params;
        let d = &self.defaults;
        // transformers' text-generation pipeline: 256 new tokens, sampling at temperature 0.7.
        let mut max_new_tokens = p.max_new_tokens.or(d.max_new_tokens).unwrap_or(256);
        // A default the request did not ask for stops at the end of the context instead of
        // refusing the request (what vLLM does); an explicit max_tokens is checked as given.
        if p.max_new_tokens.is_none() && prompt_ids.len() < self.max_positions {
            max_new_tokens = max_new_tokens.min(self.max_positions - prompt_ids.len());
        }
        if max_new_tokens == 0 {
            return Err(Error::invalid("max_tokens must be at least 1"));
        }
        let requested = prompt_ids.len() + max_new_tokens;
        if requested > self.max_positions {
            return Err(Error::invalid(format!(
                "This model's maximum context length is {} tokens. However, you requested {} \
                 tokens ({} in the prompt, {} for the completion). Please reduce the prompt or \
                 max_tokens.",
                self.max_positions,
                requested,
                prompt_ids.len(),
                max_new_tokens
            )));
        }
        let temperature = p.temperature.or(d.temperature).unwrap_or(0.7);
        let do_sample = p.do_sample.or(d.do_sample).unwrap_or(true) && temperature > 0.0;
        let top_k = p.top_k.or(d.top_k).unwrap_or(50);
        let top_p = p.top_p.or(d.top_p).unwrap_or(1.0);
        let sampling = if do_sample {
            Strategy::Sample {
                temperature,
                top_k,
                top_p,
            }
        } else {
            Strategy::Greedy
        };
        Ok(Job {
            prompt_ids,
            prompt_tokens_plain,
            max_new_tokens,
            sampling,
            seed: p.seed.unwrap_or_else(rand_seed),
            stop: p.stop.clone(),
            keep_stop_text: p.keep_stop_text,
            ignore_eos: p.ignore_eos,
            events,
        })
    }
}

/// Runs CPU work (templates, tokenizers) without holding up other tasks of a multi-threaded
/// runtime; a single-threaded runtime has no other worker to hand them to, so it runs inline.
fn off_the_reactor<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

fn rand_seed() -> u64 {
    let uuid = uuid::Uuid::new_v4();
    let bytes = uuid.as_bytes();
    u64::from_le_bytes([
        bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
    ])
}

#[async_trait]
impl LanguageModel for Generator {
    fn task(&self) -> LanguageTask {
        self.task
    }

    fn source_name(&self) -> &str {
        &self.source_name
    }

    async fn generate(
        &self,
        generation: Generation,
    ) -> Result<mpsc::UnboundedReceiver<Result<GenerationEvent>>> {
        let (events, receiver) = mpsc::unbounded_channel();
        // Templates and tokenizers are CPU work; keep them off the async workers.
        let job = off_the_reactor(|| self.job(&generation, events))?;
        self.engine.submit(job)?;
        Ok(receiver)
    }

    fn generation_stats(&self) -> Option<mlox_runtime::language::GenerationStats> {
        Some(self.engine.stats())
    }

    async fn embed(&self, _inputs: Vec<String>) -> Result<Embeddings> {
        Err(Error::invalid(format!(
            "this is a {} model; it does not make embeddings",
            self.task.as_str()
        )))
    }
}

/// An encoder serving embeddings.
pub struct Encoder {
    embedder: Embedder,
    source_name: String,
}

#[async_trait]
impl LanguageModel for Encoder {
    fn task(&self) -> LanguageTask {
        LanguageTask::Embeddings
    }

    fn source_name(&self) -> &str {
        &self.source_name
    }

    async fn generate(
        &self,
        _generation: Generation,
    ) -> Result<mpsc::UnboundedReceiver<Result<GenerationEvent>>> {
        Err(Error::invalid(
            "this is an embedding model; it does not generate text",
        ))
    }

    async fn embed(&self, inputs: Vec<String>) -> Result<Embeddings> {
        let prompt_tokens = off_the_reactor(|| self.embedder.count_tokens(&inputs))?;
        let vectors = self.embedder.embed(&inputs).await?;
        Ok(Embeddings {
            vectors,
            prompt_tokens,
        })
    }
}

/// The pyfunc and V2 forms of a language model: an embedding model embeds the first string
/// column (one vector per string); a generating model continues each string of it (a chat
/// model reads each as a JSON list of messages, or as one user message), answering one string
/// each, as MLServer's HuggingFace runtime answers BYTES with BYTES.
struct LanguagePredictor {
    model: Arc<dyn LanguageModel>,
}

#[async_trait]
impl Predictor for LanguagePredictor {
    async fn predict(&self, request: PredictRequest) -> Result<ModelOutput> {
        let texts = strings_of(&request.input)?;
        let n = texts.len();
        if self.model.task() != LanguageTask::Embeddings {
            let chat = self.model.task() == LanguageTask::Chat;
            let runs = texts.into_iter().map(|text| {
                let prompt = if chat {
                    Prompt::Chat(chat_of(&text))
                } else {
                    Prompt::Text(text)
                };
                mlox_runtime::language::generate_all(
                    self.model.as_ref(),
                    Generation {
                        prompt,
                        params: Default::default(),
                        mlflow_tokenization: false,
                    },
                )
            });
            let answers = futures::future::join_all(runs)
                .await
                .into_iter()
                .map(|s| s.map(|s| s.text))
                .collect::<Result<Vec<_>>>()?;
            let column: arrow_array::ArrayRef = Arc::new(arrow_array::StringArray::from(answers));
            return Ok(ModelOutput::Tensors(vec![RuntimeTensor {
                name: "output".into(),
                shape: vec![n],
                data: column,
            }]));
        }
        let embeddings = self.model.embed(texts).await?;
        let dim = embeddings.vectors.first().map_or(0, Vec::len);
        let flat: Vec<f32> = embeddings.vectors.into_iter().flatten().collect();
        Ok(ModelOutput::Tensors(vec![RuntimeTensor {
            name: "predictions".into(),
            shape: vec![n, dim],
            data: Arc::new(Float32Array::from(flat)),
        }]))
    }
}

/// A chat given as text: a JSON list of messages, `{"messages": [...]}`, or else one user
/// message.
fn chat_of(text: &str) -> Vec<Message> {
    let parsed: Option<serde_json::Value> = serde_json::from_str(text).ok();
    let list = match parsed {
        Some(serde_json::Value::Array(items)) => Some(items),
        Some(serde_json::Value::Object(mut o)) => match o.remove("messages") {
            Some(serde_json::Value::Array(items)) => Some(items),
            _ => None,
        },
        _ => None,
    };
    let messages: Option<Vec<Message>> = list.and_then(|items| {
        items
            .into_iter()
            .map(|m| match m {
                serde_json::Value::Object(o) if o.get("role").is_some_and(|r| r.is_string()) => {
                    Some(o)
                }
                _ => None,
            })
            .collect()
    });
    messages.filter(|m| !m.is_empty()).unwrap_or_else(|| {
        let mut message = Message::new();
        message.insert("role".into(), "user".into());
        message.insert("content".into(), text.into());
        vec![message]
    })
}

/// The strings of the input's first column or tensor.
fn strings_of(input: &ModelInput) -> Result<Vec<String>> {
    use arrow_array::{Array, LargeStringArray, StringArray};
    let column = match input {
        ModelInput::Frame(batch) => batch.columns().first().cloned(),
        ModelInput::Tensors(tensors) => tensors.first().map(|t| t.data.clone()),
    }
    .ok_or_else(|| Error::invalid("the request has no input"))?;
    let any = column.as_any();
    let strings: Option<Vec<String>> = if let Some(a) = any.downcast_ref::<StringArray>() {
        Some(a.iter().map(|s| s.unwrap_or_default().to_owned()).collect())
    } else {
        any.downcast_ref::<LargeStringArray>()
            .map(|a| a.iter().map(|s| s.unwrap_or_default().to_owned()).collect())
    };
    let strings = strings.ok_or_else(|| Error::invalid("an embedding model takes strings"))?;
    if strings.len() != column.len() {
        return Err(Error::invalid("the input has null texts"));
    }
    Ok(strings)
}
