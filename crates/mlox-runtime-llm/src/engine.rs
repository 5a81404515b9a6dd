//! Continuous batching for generation: one thread owns the decoder and runs a loop in which
//! waiting generations join (their prompt is read in one forward call) and every running
//! generation advances by one token in one shared forward call. A generation leaves the batch
//! the step it ends, or when its receiver is dropped (the client went away). Admission is
//! bounded by a token budget (prompt plus `max_new_tokens` of every running generation) and the
//! queue by a length, beyond which requests are refused as temporarily unavailable.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;

use candle_core::Tensor;
use mlox_core::{Error, Result};
use mlox_runtime::language::{FinishReason, GenerationEvent, GenerationSummary};
use tokio::sync::mpsc;

use crate::decoder::{Decoder, KvCache};
use crate::sample::{Sampler, Strategy};
use crate::text::{Detokenizer, TextCodec};

/// A generation with every parameter resolved.
pub struct Job {
    pub prompt_ids: Vec<u32>,
    /// Tokens of the prompt text without special tokens.
    pub prompt_tokens_plain: usize,
    pub max_new_tokens: usize,
    pub sampling: Strategy,
    pub seed: u64,
    pub stop: Vec<String>,
    pub keep_stop_text: bool,
    pub ignore_eos: bool,
    pub events: mpsc::UnboundedSender<Result<GenerationEvent>>,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Prompt plus `max_new_tokens` of all running generations.
    pub max_batch_tokens: usize,
    /// Generations running at once.
    pub max_running: usize,
    /// Generations waiting to start.
    pub max_waiting: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_batch_tokens: 16_384,
            max_running: 32,
            max_waiting: 256,
        }
    }
}

pub struct Engine {
    jobs: std_mpsc::Sender<Job>,
    counters: Arc<Counters>,
    limits: Limits,
}

#[derive(Default)]
struct Counters {
    waiting: AtomicUsize,
    running: AtomicUsize,
    generated: AtomicU64,
}

struct Running {
    job: Job,
    cache: KvCache,
    sampler: Sampler,
    generated: Vec<u32>,
    detokenizer: Detokenizer,
    next: u32,
}

impl Engine {
    pub fn start(decoder: Decoder, codec: Arc<TextCodec>, eos: Vec<u32>, limits: Limits) -> Engine {
        let (jobs, receiver) = std_mpsc::channel();
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let eos: HashSet<u32> = eos.into_iter().collect();
        // The loop ends when the engine (the only sender) is dropped.
        let spawned = std::thread::Builder::new()
            .name("mlox-llm-engine".into())
            .spawn(move || run(&decoder, &codec, &eos, limits, &receiver, &shared));
        if let Err(e) = spawned {
            tracing::error!("the generation thread could not start: {e}");
        }
        Engine {
            jobs,
            counters,
            limits,
        }
    }

    /// Queues `job`; refused when the queue is full.
    pub fn submit(&self, job: Job) -> Result<()> {
        if self.counters.waiting.load(Ordering::Relaxed) >= self.limits.max_waiting {
            return Err(Error::unavailable(format!(
                "{} generations are already waiting; retry later",
                self.limits.max_waiting
            )));
        }
        self.counters.waiting.fetch_add(1, Ordering::Relaxed);
        self.jobs.send(job).map_err(|_| {
            self.counters.waiting.fetch_sub(1, Ordering::Relaxed);
            Error::unavailable("the generation thread has stopped")
        })
    }

    pub fn stats(&self) -> mlox_runtime::language::GenerationStats {
        mlox_runtime::language::GenerationStats {
            running: self.counters.running.load(Ordering::Relaxed),
            waiting: self.counters.waiting.load(Ordering::Relaxed),
            generated_tokens: self.counters.generated.load(Ordering::Relaxed),
        }
    }
}

fn run(
    decoder: &Decoder,
    codec: &TextCodec,
    eos: &HashSet<u32>,
    limits: Limits,
    receiver: &std_mpsc::Receiver<Job>,
    counters: &Counters,
) {
    let mut queue: VecDeque<Job> = VecDeque::new();
    let mut running: Vec<Running> = Vec::new();
    loop {
        // Idle: block for work. Busy: take whatever arrived without waiting.
        if running.is_empty() && queue.is_empty() {
            match receiver.recv() {
                Ok(job) => queue.push_back(job),
                Err(_) => return,
            }
        }
        while let Ok(job) = receiver.try_recv() {
            queue.push_back(job);
        }
        let mut budget: usize = running
            .iter()
            .map(|r| r.job.prompt_ids.len() + r.job.max_new_tokens)
            .sum();
        while running.len() < limits.max_running {
            let Some(job) = queue.front() else { break };
            let cost = job.prompt_ids.len() + job.max_new_tokens;
            // A generation larger than the whole budget still runs, alone.
            if !running.is_empty() && budget + cost > limits.max_batch_tokens {
                break;
            }
            let Some(job) = queue.pop_front() else { break };
            counters.waiting.fetch_sub(1, Ordering::Relaxed);
            if job.events.is_closed() {
                continue;
            }
            budget += cost;
            counters.generated.fetch_add(1, Ordering::Relaxed);
            if let Some(r) = start(decoder, codec, eos, job) {
                running.push(r);
            }
        }
        running.retain(|r| !r.job.events.is_closed());
        counters.running.store(running.len(), Ordering::Relaxed);
        if running.is_empty() {
            continue;
        }
        let tokens: Vec<Vec<u32>> = running.iter().map(|r| vec![r.next]).collect();
        let mut caches: Vec<&mut KvCache> = running.iter_mut().map(|r| &mut r.cache).collect();
        let logits = decoder.forward(&tokens, &mut caches);
        match logits.and_then(|l| rows(&l)) {
            Ok(rows) => {
                let mut still = Vec::with_capacity(running.len());
                for (mut r, logits) in running.into_iter().zip(rows) {
                    if step(decoder, codec, eos, &mut r, &logits) {
                        still.push(r);
                    }
                }
                counters
                    .generated
                    .fetch_add(tokens.len() as u64, Ordering::Relaxed);
                running = still;
                counters.running.store(running.len(), Ordering::Relaxed);
            }
            Err(e) => {
                counters.running.store(0, Ordering::Relaxed);
                for r in running.drain(..) {
                    let _ = r
                        .job
                        .events
                        .send(Err(Error::internal(format!("generation failed: {e}"))));
                }
            }
        }
    }
}

fn rows(logits: &Tensor) -> candle_core::Result<Vec<Tensor>> {
    let n = logits.dim(0)?;
    (0..n).map(|i| logits.get(i)).collect()
}

/// Reads the job's prompt and samples its first token; `None` when it already ended.
fn start(decoder: &Decoder, codec: &TextCodec, eos: &HashSet<u32>, job: Job) -> Option<Running> {
    let mut cache = decoder.new_cache();
    let sampler = Sampler::new(job.sampling.clone(), job.seed);
    let logits = decoder
        .forward(std::slice::from_ref(&job.prompt_ids), &mut [&mut cache])
        .and_then(|l| l.get(0));
    let mut running = Running {
        job,
        cache,
        sampler,
        generated: Vec::new(),
        detokenizer: Detokenizer::new(),
        next: 0,
    };
    match logits {
        Ok(logits) => step(decoder, codec, eos, &mut running, &logits).then_some(running),
        Err(e) => {
            let _ = running
                .job
                .events
                .send(Err(Error::internal(format!("generation failed: {e}"))));
            None
        }
    }
}

/// Samples the next token from `logits` and sends what it adds; false when the generation
/// has ended (its summary sent) or failed.
fn step(
    decoder: &Decoder,
    codec: &TextCodec,
    eos: &HashSet<u32>,
    r: &mut Running,
    logits: &Tensor,
) -> bool {
    let token = match logits
        .to_dtype(candle_core::DType::F32)
        .and_then(|l| l.to_vec1::<f32>())
    {
        Ok(row) => r.sampler.next(&row),
        Err(e) => {
            let _ = r
                .job
                .events
                .send(Err(Error::internal(format!("sampling failed: {e}"))));
            return false;
        }
    };
    r.generated.push(token);
    r.next = token;
    let mut finish = None;
    if !r.job.ignore_eos && eos.contains(&token) {
        finish = Some(FinishReason::Stop);
    } else {
        if let Err(e) = r.detokenizer.push(codec, token) {
            let _ = r.job.events.send(Err(e));
            return false;
        }
        if r.detokenizer
            .contains_stop(&r.job.stop, r.job.keep_stop_text)
        {
            finish = Some(FinishReason::Stop);
        }
    }
    let positions = r.job.prompt_ids.len() + r.generated.len();
    if finish.is_none()
        && (r.generated.len() >= r.job.max_new_tokens
            || positions >= decoder.config.max_position_embeddings)
    {
        finish = Some(FinishReason::Length);
    }
    let piece = r.detokenizer.release(&r.job.stop, finish.is_some());
    if !piece.is_empty() && r.job.events.send(Ok(GenerationEvent::Text(piece))).is_err() {
        return false;
    }
    let Some(finish_reason) = finish else {
        return true;
    };
    let summary = GenerationSummary {
        finish_reason,
        prompt_tokens: r.job.prompt_ids.len(),
        prompt_tokens_plain: r.job.prompt_tokens_plain,
        completion_tokens: r.generated.len(),
        max_new_tokens: r.job.max_new_tokens,
        text: r.detokenizer.text().to_owned(),
        mlflow_text: mlflow_text(codec, &r.job.prompt_ids, &r.generated).unwrap_or_default(),
    };
    let _ = r.job.events.send(Ok(GenerationEvent::Done(summary)));
    false
}

/// MLflow's answer text: prompt and answer decoded together, as many characters cut off as
/// the decoded prompt has, leading whitespace stripped.
fn mlflow_text(codec: &TextCodec, prompt: &[u32], generated: &[u32]) -> Result<String> {
    let mut all = prompt.to_vec();
    all.extend_from_slice(generated);
    let whole = codec.decode_like_mlflow(&all)?;
    let prompt_chars = codec.decode_like_mlflow(prompt)?.chars().count();
    Ok(whole
        .chars()
        .skip(prompt_chars)
        .collect::<String>()
        .trim_start()
        .to_owned())
}
