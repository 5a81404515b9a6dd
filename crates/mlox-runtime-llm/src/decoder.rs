//! The decoder-only transformer that Llama, Mistral, Qwen2/3 and Phi-3 share (RMSNorm,
//! rotary attention with grouped key/value heads, SwiGLU MLP), written for continuous batching:
//! one forward call advances any number of sequences by one token each, every sequence with its
//! own key/value cache and position. The weight matrices are applied to all rows at once (that
//! is where decoding spends its time); attention runs per sequence, so caches of different
//! lengths never need padding or masks.
//!
//! candle's model ports keep one cache inside the model and take one position for the whole
//! batch, which would serialise concurrent generations; hence this module.

use std::collections::HashMap;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Embedding, Linear};

use crate::config::{Architecture, DecoderConfig};

type CResult<T> = candle_core::Result<T>;

/// How the decoder's weight matrices are held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quantization {
    /// As f32 (bf16/f16 checkpoints are widened).
    #[default]
    None,
    /// 8-bit blocks of 32 (llama.cpp's Q8_0): a quarter of the memory traffic, near-f32 answers.
    Q8_0,
    /// 4-bit k-quants in super-blocks of 256 (Q4K): an eighth, with a visible loss.
    Q4K,
}

impl Quantization {
    pub fn parse(name: &str) -> Option<Quantization> {
        match name.to_ascii_lowercase().as_str() {
            "none" | "f32" => Some(Quantization::None),
            "q8_0" | "q8" => Some(Quantization::Q8_0),
            "q4k" | "q4_k" => Some(Quantization::Q4K),
            _ => None,
        }
    }
}

/// A projection: a dense matrix, or a quantized one (with its bias kept in f32).
enum Proj {
    Dense(Linear),
    Quantized(QMatMul, Option<Tensor>),
}

impl Proj {
    fn new(linear: Linear, quantization: Quantization) -> CResult<Proj> {
        let dtype = match quantization {
            Quantization::None => return Ok(Proj::Dense(linear)),
            Quantization::Q8_0 => GgmlDType::Q8_0,
            Quantization::Q4K => GgmlDType::Q4K,
        };
        // A matrix whose rows do not fill whole blocks stays dense.
        if linear.weight().dim(1)? % dtype.block_size() != 0 {
            return Ok(Proj::Dense(linear));
        }
        // quantize reads the whole storage under a view, so a row range of a fused matrix
        // must be copied out first.
        let w = linear.weight();
        let owned = Tensor::from_vec(
            w.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            w.shape(),
            w.device(),
        )?;
        let q = QTensor::quantize(&owned, dtype)?;
        Ok(Proj::Quantized(
            QMatMul::from_qtensor(q)?,
            linear.bias().cloned(),
        ))
    }

    /// Applies the projection to `(rows, t, k)`, flattened into one `(rows·t, k)` matrix: a
    /// batched product would take each row as its own product and read the weights once per
    /// row, where one matrix product can read them once per step.
    fn forward(&self, xs: &Tensor) -> CResult<Tensor> {
        let (rows, t, k) = xs.dims3()?;
        let flat = xs.reshape((rows * t, k))?;
        let out = match self {
            Proj::Dense(l) => l.forward(&flat)?,
            Proj::Quantized(m, bias) => {
                let out = m.forward(&flat.contiguous()?)?;
                match bias {
                    Some(b) => out.broadcast_add(b)?,
                    None => out,
                }
            }
        };
        let n = out.dim(1)?;
        out.reshape((rows, t, n))
    }
}

struct Attention {
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    /// Qwen3 normalises each head's queries and keys before the rotation.
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
}

struct Layer {
    input_norm: Tensor,
    attention: Attention,
    post_attention_norm: Tensor,
    gate: Proj,
    up: Proj,
    down: Proj,
}

/// One sequence's keys and values so far, per layer: `(1, kv_heads, len, head_dim)` views of
/// buffers that grow in steps of [`CACHE_STEP`] positions, so appending a token writes one
/// row instead of copying the whole history.
pub struct KvCache {
    layers: Vec<candle_nn::kv_cache::KvCache>,
}

/// Positions a cache grows by at a time.
const CACHE_STEP: usize = 256;

impl KvCache {
    /// Tokens the cache holds (the position of the next one).
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, |l| l.current_seq_len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Decoder {
    pub config: DecoderConfig,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Proj,
    /// cos/sin of every position for each rotating pair: `(max_positions, rotary_dim / 2)`.
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// The weights by name, as the checkpoint's safetensors hold them.
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    dtype: DType,
}

impl Weights {
    pub fn new(tensors: HashMap<String, Tensor>, dtype: DType) -> Weights {
        Weights { tensors, dtype }
    }

    fn get(&self, name: &str) -> CResult<Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("the checkpoint has no tensor {name}")))?
            .to_dtype(self.dtype)
    }

    fn optional(&self, name: &str) -> CResult<Option<Tensor>> {
        match self.tensors.contains_key(name) {
            true => self.get(name).map(Some),
            false => Ok(None),
        }
    }

    fn linear(&self, prefix: &str) -> CResult<Linear> {
        Ok(Linear::new(
            self.get(&format!("{prefix}.weight"))?,
            self.optional(&format!("{prefix}.bias"))?,
        ))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

fn rms_norm(xs: &Tensor, weight: &Tensor, eps: f64) -> CResult<Tensor> {
    candle_nn::ops::rms_norm(&xs.contiguous()?, weight, eps as f32)
}

/// Splits a fused projection's rows `[a; b; …]` into the given row counts.
fn split_rows(weight: &Tensor, rows: &[usize]) -> CResult<Vec<Linear>> {
    let mut start = 0;
    rows.iter()
        .map(|&n| {
            let part = weight.narrow(0, start, n)?.contiguous()?;
            start += n;
            Ok(Linear::new(part, None))
        })
        .collect()
}

impl Decoder {
    pub fn load(config: DecoderConfig, weights: &Weights, device: &Device) -> CResult<Decoder> {
        Self::load_quantized(config, weights, device, Quantization::None)
    }

    pub fn load_quantized(
        config: DecoderConfig,
        weights: &Weights,
        device: &Device,
        quantization: Quantization,
    ) -> CResult<Decoder> {
        let qz = |l: Linear| Proj::new(l, quantization);
        let c = &config;
        let embed_weight = weights.get("model.embed_tokens.weight")?;
        let embed = Embedding::new(embed_weight.clone(), c.hidden_size);
        let mut layers = Vec::with_capacity(c.num_layers);
        let q_rows = c.num_heads * c.head_dim;
        let kv_rows = c.num_kv_heads * c.head_dim;
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let (q, k, v) = if c.architecture == Architecture::Phi3 {
                let fused = weights.get(&format!("{p}.self_attn.qkv_proj.weight"))?;
                let mut parts = split_rows(&fused, &[q_rows, kv_rows, kv_rows])?.into_iter();
                let (Some(q), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) else {
                    unreachable!("three row counts give three parts")
                };
                (q, k, v)
            } else {
                (
                    weights.linear(&format!("{p}.self_attn.q_proj"))?,
                    weights.linear(&format!("{p}.self_attn.k_proj"))?,
                    weights.linear(&format!("{p}.self_attn.v_proj"))?,
                )
            };
            let (gate, up) = if c.architecture == Architecture::Phi3 {
                let fused = weights.get(&format!("{p}.mlp.gate_up_proj.weight"))?;
                let mut parts =
                    split_rows(&fused, &[c.intermediate_size, c.intermediate_size])?.into_iter();
                let (Some(gate), Some(up)) = (parts.next(), parts.next()) else {
                    unreachable!("two row counts give two parts")
                };
                (gate, up)
            } else {
                (
                    weights.linear(&format!("{p}.mlp.gate_proj"))?,
                    weights.linear(&format!("{p}.mlp.up_proj"))?,
                )
            };
            layers.push(Layer {
                input_norm: weights.get(&format!("{p}.input_layernorm.weight"))?,
                attention: Attention {
                    q: qz(q)?,
                    k: qz(k)?,
                    v: qz(v)?,
                    o: qz(weights.linear(&format!("{p}.self_attn.o_proj"))?)?,
                    q_norm: weights.optional(&format!("{p}.self_attn.q_norm.weight"))?,
                    k_norm: weights.optional(&format!("{p}.self_attn.k_norm.weight"))?,
                },
                post_attention_norm: weights
                    .get(&format!("{p}.post_attention_layernorm.weight"))?,
                gate: qz(gate)?,
                up: qz(up)?,
                down: qz(weights.linear(&format!("{p}.mlp.down_proj"))?)?,
            });
        }
        let lm_head = qz(match weights.optional("lm_head.weight")? {
            Some(w) if !c.tie_word_embeddings => Linear::new(w, None),
            _ => Linear::new(embed_weight, None),
        })?;
        let inv_freq: Vec<f32> = c.inverse_frequencies().iter().map(|&f| f as f32).collect();
        let half = inv_freq.len();
        let positions = c.max_position_embeddings;
        let mut angles = Vec::with_capacity(positions * half);
        for p in 0..positions {
            angles.extend(inv_freq.iter().map(|f| p as f32 * f));
        }
        let angles = Tensor::from_vec(angles, (positions, half), device)?;
        Ok(Decoder {
            cos: angles.cos()?.to_dtype(weights.dtype)?,
            sin: angles.sin()?.to_dtype(weights.dtype)?,
            norm: weights.get("model.norm.weight")?,
            embed,
            layers,
            lm_head,
            config,
            device: device.clone(),
        })
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: (0..self.config.num_layers)
                .map(|_| candle_nn::kv_cache::KvCache::new(2, CACHE_STEP))
                .collect(),
        }
    }

    /// Rotates the first `rotary_dim` dimensions of `xs` `(b, heads, t, head_dim)`, row `r`'s
    /// token `j` at position `starts[r] + j`.
    fn rotate(&self, xs: &Tensor, starts: &[usize]) -> CResult<Tensor> {
        let (_, _, t, head_dim) = xs.dims4()?;
        let ids: Vec<u32> = starts
            .iter()
            .flat_map(|&s| (s..s + t).map(|p| p as u32))
            .collect();
        let ids = Tensor::from_vec(ids, starts.len() * t, &self.device)?;
        let half = self.config.rotary_dim / 2;
        let cos = self
            .cos
            .index_select(&ids, 0)?
            .reshape((starts.len(), t, half))?;
        let sin = self
            .sin
            .index_select(&ids, 0)?
            .reshape((starts.len(), t, half))?;
        let rotary = self.config.rotary_dim;
        if rotary == head_dim {
            candle_nn::rotary_emb::rope(&xs.contiguous()?, &cos, &sin)
        } else {
            let rot = xs.narrow(D::Minus1, 0, rotary)?.contiguous()?;
            let pass = xs.narrow(D::Minus1, rotary, head_dim - rotary)?;
            let rot = candle_nn::rotary_emb::rope(&rot, &cos, &sin)?;
            Tensor::cat(&[&rot, &pass], D::Minus1)?.contiguous()
        }
    }

    /// Feeds `tokens[r]` to sequence `r` (whose cache is `caches[r]`) and returns each row's
    /// logits for the token after its last one: `(rows, vocab)`. All rows must feed the same
    /// number of tokens: a prompt is one call with one row, a decoding step any number of rows
    /// with one token each.
    pub fn forward(&self, tokens: &[Vec<u32>], caches: &mut [&mut KvCache]) -> CResult<Tensor> {
        let c = &self.config;
        let rows = tokens.len();
        let t = tokens.first().map_or(0, Vec::len);
        if rows == 0 || t == 0 || tokens.iter().any(|r| r.len() != t) || caches.len() != rows {
            candle_core::bail!("forward needs rows of equal, non-zero length and one cache each");
        }
        let starts: Vec<usize> = caches.iter().map(|cache| cache.len()).collect();
        if starts.iter().any(|&s| s + t > c.max_position_embeddings) {
            candle_core::bail!(
                "the sequence would pass the model's {} positions",
                c.max_position_embeddings
            );
        }
        let ids: Vec<u32> = tokens.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(ids, (rows, t), &self.device)?;
        let mut xs = self.embed.forward(&ids)?;
        let groups = c.num_heads / c.num_kv_heads;
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        let mask = if t > 1 {
            let m: Vec<f32> = (0..t)
                .flat_map(|i| (0..t).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
                .collect();
            Some(Tensor::from_vec(m, (t, t), &self.device)?.to_dtype(xs.dtype())?)
        } else {
            None
        };
        for (index, layer) in self.layers.iter().enumerate() {
            let residual = &xs;
            let h = rms_norm(&xs, &layer.input_norm, c.rms_norm_eps)?;
            let a = &layer.attention;
            let heads = |x: Tensor, n: usize| -> CResult<Tensor> {
                x.reshape((rows, t, n, c.head_dim))?.transpose(1, 2)
            };
            let mut q = heads(a.q.forward(&h)?, c.num_heads)?;
            let mut k = heads(a.k.forward(&h)?, c.num_kv_heads)?;
            let v = heads(a.v.forward(&h)?, c.num_kv_heads)?;
            if let Some(w) = &a.q_norm {
                q = rms_norm(&q, w, c.rms_norm_eps)?;
            }
            if let Some(w) = &a.k_norm {
                k = rms_norm(&k, w, c.rms_norm_eps)?;
            }
            let q = self.rotate(&q, &starts)?;
            let k = self.rotate(&k, &starts)?;
            let mut outputs = Vec::with_capacity(rows);
            for (r, cache) in caches.iter_mut().enumerate() {
                let k_new = k.narrow(0, r, 1)?.contiguous()?;
                let v_new = v.narrow(0, r, 1)?.contiguous()?;
                let (k_all, v_all) = cache.layers[index].append(&k_new, &v_new)?;
                let total = k_all.dim(2)?;
                // The query heads that share a key/value head are stacked as rows, so the
                // shared keys and values are read as they are, never repeated per head.
                let q_r = q.narrow(0, r, 1)?.contiguous()?.reshape((
                    1,
                    c.num_kv_heads,
                    groups * t,
                    c.head_dim,
                ))?;
                let mut scores = (q_r.matmul(&k_all.t()?)? * scale)?;
                if let Some(mask) = &mask {
                    let past = total - t;
                    let mask = if past > 0 {
                        let zeros = Tensor::zeros((t, past), mask.dtype(), &self.device)?;
                        Tensor::cat(&[&zeros, mask], 1)?
                    } else {
                        mask.clone()
                    };
                    let mask = if groups > 1 {
                        Tensor::cat(&vec![&mask; groups], 0)?
                    } else {
                        mask
                    };
                    scores = scores.broadcast_add(&mask)?;
                }
                let probs = candle_nn::ops::softmax_last_dim(&scores)?;
                outputs.push(
                    probs
                        .matmul(&v_all)?
                        .reshape((1, c.num_heads, t, c.head_dim))?,
                );
            }
            let attn = Tensor::cat(&outputs, 0)?.transpose(1, 2)?.reshape((
                rows,
                t,
                c.num_heads * c.head_dim,
            ))?;
            xs = (residual + a.o.forward(&attn)?)?;
            let h = rms_norm(&xs, &layer.post_attention_norm, c.rms_norm_eps)?;
            let gated =
                (candle_nn::ops::silu(&layer.gate.forward(&h)?)? * layer.up.forward(&h)?)?;
            xs = (&xs + layer.down.forward(&gated)?)?;
        }
        let last = xs.narrow(1, t - 1, 1)?;
        let last = rms_norm(&last, &self.norm, c.rms_norm_eps)?;
        self.lm_head
            .forward(&last)?
            .squeeze(1)?
            .to_dtype(DType::F32)
    }
}
