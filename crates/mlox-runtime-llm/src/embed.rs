//! Embedding models: a BERT-family encoder followed by what the checkpoint says to do with its
//! last hidden states. A sentence-transformers folder lists its modules (`modules.json`:
//! Transformer → Pooling → optional Normalize); MLflow's transformers flavor with
//! `llm/v1/embeddings` takes the first token's hidden state as it is.
//!
//! Requests queue for one thread that packs whatever is waiting into a batch up to a token
//! budget (padded length × texts), text-embeddings-inference's rule: no timer, the next batch
//! forms as soon as the model is free.

use std::path::Path;
use std::sync::mpsc as std_mpsc;

use candle_core::{DType, Device, Tensor};
use mlox_core::{Error, Result};
use serde_json::Value;
use tokenizers::Encoding;
use tokio::sync::oneshot;

use crate::bert::Bert;
use crate::text::TextCodec;

/// How token states become one vector (sentence-transformers' `1_Pooling/config.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The first token's state (`[CLS]`), also MLflow's transformers-flavor embedding.
    Cls,
    /// The mean over real (unpadded) tokens.
    Mean,
    /// The element-wise maximum over real tokens.
    Max,
    /// The mean scaled by √length instead of length.
    MeanSqrtLen,
    /// The last real token's state.
    LastToken,
}

impl Pooling {
    /// Reads a `1_Pooling/config.json`: sentence-transformers 6 writes one `pooling_mode`,
    /// earlier versions one boolean per mode.
    pub fn from_config(config: &Value) -> Result<Pooling> {
        if let Some(mode) = config.get("pooling_mode").and_then(Value::as_str) {
            return match mode {
                "cls" => Ok(Pooling::Cls),
                "mean" => Ok(Pooling::Mean),
                "max" => Ok(Pooling::Max),
                "mean_sqrt_len_tokens" => Ok(Pooling::MeanSqrtLen),
                "lasttoken" => Ok(Pooling::LastToken),
                other => Err(Error::invalid(format!(
                    "pooling mode {other:?} has no native implementation"
                ))),
            };
        }
        let on = |key: &str| config.get(key).and_then(Value::as_bool) == Some(true);
        let modes: Vec<Pooling> = [
            ("pooling_mode_cls_token", Pooling::Cls),
            ("pooling_mode_mean_tokens", Pooling::Mean),
            ("pooling_mode_max_tokens", Pooling::Max),
            ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
            ("pooling_mode_lasttoken", Pooling::LastToken),
        ]
        .into_iter()
        .filter(|(key, _)| on(key))
        .map(|(_, mode)| mode)
        .collect();
        if on("pooling_mode_weightedmean_tokens") {
            return Err(Error::invalid(
                "weighted-mean pooling has no native implementation",
            ));
        }
        match modes.as_slice() {
            [mode] => Ok(*mode),
            [] => Err(Error::invalid("the pooling configuration selects no mode")),
            _ => Err(Error::invalid(
                "pooling that concatenates several modes has no native implementation",
            )),
        }
    }

    /// Pools `states` `(n, len, hidden)` under `mask` `(n, len)` of 1/0 into `(n, hidden)`.
    pub fn apply(self, states: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (n, len, _) = states.dims3()?;
        let mask = mask.to_dtype(states.dtype())?;
        let lengths = mask.sum_keepdim(1)?; // (n, 1)
        match self {
            Pooling::Cls => states.narrow(1, 0, 1)?.squeeze(1),
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let summed = states.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
                let divisor = match self {
                    Pooling::Mean => lengths,
                    _ => lengths.sqrt()?,
                };
                summed.broadcast_div(&divisor)
            }
            Pooling::Max => {
                // Padded positions must never win: push them far below any real state.
                let penalty = ((mask.ones_like()? - &mask)? * -1e9)?.unsqueeze(2)?;
                states.broadcast_add(&penalty)?.max(1)
            }
            Pooling::LastToken => {
                let lengths: Vec<f32> = lengths.squeeze(1)?.to_dtype(DType::F32)?.to_vec1()?;
                let rows = (0..n)
                    .map(|i| {
                        let last = (lengths[i] as usize).clamp(1, len) - 1;
                        states.get(i)?.get(last)
                    })
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::stack(&rows, 0)
            }
        }
    }
}

/// What follows the encoder.
#[derive(Clone, Copy, Debug)]
pub struct Head {
    pub pooling: Pooling,
    pub normalize: bool,
}

struct Batch {
    encodings: Vec<Encoding>,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>>>,
}

pub struct Embedder {
    codec: TextCodec,
    /// The same tokenizer without truncation, to count tokens as MLflow reports them.
    counter: TextCodec,
    jobs: std_mpsc::Sender<Batch>,
}

impl Embedder {
    /// Loads a BERT-family encoder from `weights_dir` (its `config.json` and safetensors) with
    /// the tokenizer in `tokenizer_dir`, truncating at `max_length` tokens.
    pub fn load(
        weights_dir: &Path,
        tokenizer_dir: &Path,
        max_length: Option<usize>,
        head: Head,
        max_batch_tokens: usize,
    ) -> Result<Embedder> {
        let config = crate::load::read_config(weights_dir)?;
        let device = Device::Cpu;
        let tensors = crate::load::read_safetensors(weights_dir, &device)?;
        let model = Bert::load(&config, &tensors)
            .map_err(|e| Error::invalid(format!("the encoder's weights do not load: {e}")))?;
        let max_positions = model.max_positions;
        let limit = Some(max_length.unwrap_or(max_positions).min(max_positions));
        let codec = TextCodec::open(tokenizer_dir, limit)?;
        let counter = TextCodec::open(tokenizer_dir, None)?;
        let (jobs, receiver) = std_mpsc::channel::<Batch>();
        let spawned = std::thread::Builder::new()
            .name("mlox-embeddings".into())
            .spawn(move || serve(&model, head, max_batch_tokens, &receiver));
        if let Err(e) = spawned {
            return Err(Error::internal(format!(
                "the embedding thread could not start: {e}"
            )));
        }
        Ok(Embedder {
            codec,
            counter,
            jobs,
        })
    }

    /// Tokens of `texts` with special tokens and without truncation.
    pub fn count_tokens(&self, texts: &[String]) -> Result<usize> {
        texts
            .iter()
            .map(|t| self.counter.encode(t, true).map(|ids| ids.len()))
            .sum()
    }

    /// Embeds `texts` (tokenized by the caller's thread, encoded in the shared batch thread).
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let encodings = texts
            .iter()
            .map(|t| self.codec.encode_for_encoder(t))
            .collect::<Result<Vec<_>>>()?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Batch { encodings, reply })
            .map_err(|_| Error::unavailable("the embedding thread has stopped"))?;
        answer
            .await
            .map_err(|_| Error::unavailable("the embedding thread has stopped"))?
    }
}

fn serve(model: &Bert, head: Head, max_batch_tokens: usize, jobs: &std_mpsc::Receiver<Batch>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let cost = |b: &[Batch]| {
            let texts: usize = b.iter().map(|j| j.encodings.len()).sum();
            let longest = b
                .iter()
                .flat_map(|j| j.encodings.iter().map(Encoding::len))
                .max()
                .unwrap_or(0);
            texts * longest
        };
        while cost(&batch) < max_batch_tokens {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let encodings: Vec<&Encoding> = batch.iter().flat_map(|j| j.encodings.iter()).collect();
        match encode(model, head, &encodings) {
            Ok(mut vectors) => {
                for job in batch {
                    let rest = vectors.split_off(job.encodings.len());
                    let mine = std::mem::replace(&mut vectors, rest);
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                for job in batch {
                    let _ = job
                        .reply
                        .send(Err(Error::internal(format!("embedding failed: {e}"))));
                }
            }
        }
    }
}

/// Pads `encodings` to one length and runs them as one batch.
fn encode(model: &Bert, head: Head, encodings: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
    let n = encodings.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let len = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
    let (mut ids, mut types, mut mask) = (
        Vec::with_capacity(n * len),
        Vec::with_capacity(n * len),
        Vec::with_capacity(n * len),
    );
    for e in encodings {
        let pad = len - e.len();
        ids.extend(
            e.get_ids()
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0, pad)),
        );
        types.extend(
            e.get_type_ids()
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0, pad)),
        );
        mask.extend(std::iter::repeat_n(1u32, e.len()).chain(std::iter::repeat_n(0, pad)));
    }
    let device = &Device::Cpu;
    let ids = Tensor::from_vec(ids, (n, len), device)?;
    let types = Tensor::from_vec(types, (n, len), device)?;
    let mask = Tensor::from_vec(mask, (n, len), device)?;
    let states = model.forward(&ids, &types, &mask)?;
    let mut pooled = head.pooling.apply(&states, &mask)?;
    if head.normalize {
        let norm = pooled
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::MAX)?;
        pooled = pooled.broadcast_div(&norm)?;
    }
    pooled.to_dtype(DType::F32)?.to_vec2()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn states() -> (Tensor, Tensor) {
        // Two sequences of three tokens, hidden size 2; the second has one padded token.
        let states = Tensor::from_vec(
            vec![1f32, 2., 3., 4., 5., 6., 10., 20., 30., 40., 99., 99.],
            (2, 3, 2),
            &Device::Cpu,
        )
        .unwrap();
        let mask = Tensor::from_vec(vec![1u32, 1, 1, 1, 1, 0], (2, 3), &Device::Cpu).unwrap();
        (states, mask)
    }

    fn pool(mode: Pooling) -> Vec<Vec<f32>> {
        let (s, m) = states();
        mode.apply(&s, &m).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn pooling_ignores_padded_tokens() {
        assert_eq!(pool(Pooling::Cls), vec![vec![1., 2.], vec![10., 20.]]);
        assert_eq!(pool(Pooling::Mean), vec![vec![3., 4.], vec![20., 30.]]);
        assert_eq!(pool(Pooling::Max), vec![vec![5., 6.], vec![30., 40.]]);
        assert_eq!(pool(Pooling::LastToken), vec![vec![5., 6.], vec![30., 40.]]);
        let sqrt = pool(Pooling::MeanSqrtLen);
        assert!((sqrt[1][0] - 40.0 / 2f32.sqrt()).abs() < 1e-5);
    }

    #[test]
    fn the_pooling_config_names_one_mode() {
        let mean = json!({"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true,
            "pooling_mode_cls_token": false});
        assert_eq!(Pooling::from_config(&mean).unwrap(), Pooling::Mean);
        let v6 =
            json!({"embedding_dimension": 384, "pooling_mode": "mean", "include_prompt": true});
        assert_eq!(Pooling::from_config(&v6).unwrap(), Pooling::Mean);
        assert!(Pooling::from_config(&json!({"pooling_mode": "weightedmean"})).is_err());
        assert!(Pooling::from_config(&json!({})).is_err());
        let two = json!({"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true});
        assert!(Pooling::from_config(&two).is_err());
    }
}
