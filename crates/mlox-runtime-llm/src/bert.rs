//! The BERT encoder (transformers' `BertModel`): token, position and segment embeddings, then
//! post-norm layers of masked self-attention and a GELU MLP. Returns the last hidden states;
//! pooling is the caller's. Weight names are transformers' (`embeddings.word_embeddings`,
//! `encoder.layer.N.attention.self.query`, …), with or without a `bert.` prefix.

use std::collections::HashMap;

use candle_core::{DType, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear};
use serde_json::Value;

type CResult<T> = candle_core::Result<T>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activation {
    /// transformers' `gelu`: the exact, erf-based GELU.
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    Relu,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

pub struct Bert {
    words: Embedding,
    positions: Embedding,
    segments: Embedding,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    activation: Activation,
    pub max_positions: usize,
}

fn usize_of(config: &Value, key: &str) -> CResult<usize> {
    config
        .get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| candle_core::Error::Msg(format!("config.json has no integer `{key}`")))
}

impl Bert {
    pub fn load(config: &Value, tensors: &HashMap<String, Tensor>) -> CResult<Bert> {
        let prefix = if tensors.contains_key("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let get = |name: &str| -> CResult<Tensor> {
            tensors
                .get(&format!("{prefix}{name}"))
                .ok_or_else(|| {
                    candle_core::Error::Msg(format!("the checkpoint has no tensor {prefix}{name}"))
                })?
                .to_dtype(DType::F32)
        };
        let linear = |name: &str| -> CResult<Linear> {
            Ok(Linear::new(
                get(&format!("{name}.weight"))?,
                Some(get(&format!("{name}.bias"))?),
            ))
        };
        let eps = config
            .get("layer_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-12);
        let norm = |name: &str| -> CResult<LayerNorm> {
            Ok(LayerNorm::new(
                get(&format!("{name}.weight"))?,
                get(&format!("{name}.bias"))?,
                eps,
            ))
        };
        let hidden = usize_of(config, "hidden_size")?;
        let embedding = |name: &str| -> CResult<Embedding> {
            Ok(Embedding::new(
                get(&format!("embeddings.{name}.weight"))?,
                hidden,
            ))
        };
        let activation = match config
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("gelu")
        {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => candle_core::bail!("activation {other:?} has no native implementation"),
        };
        let layers = (0..usize_of(config, "num_hidden_layers")?)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(Layer {
                    query: linear(&format!("{p}.attention.self.query"))?,
                    key: linear(&format!("{p}.attention.self.key"))?,
                    value: linear(&format!("{p}.attention.self.value"))?,
                    attention_out: linear(&format!("{p}.attention.output.dense"))?,
                    attention_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                    intermediate: linear(&format!("{p}.intermediate.dense"))?,
                    output: linear(&format!("{p}.output.dense"))?,
                    output_norm: norm(&format!("{p}.output.LayerNorm"))?,
                })
            })
            .collect::<CResult<Vec<_>>>()?;
        Ok(Bert {
            words: embedding("word_embeddings")?,
            positions: embedding("position_embeddings")?,
            segments: embedding("token_type_embeddings")?,
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
            heads: usize_of(config, "num_attention_heads")?,
            activation,
            max_positions: usize_of(config, "max_position_embeddings")?,
        })
    }

    /// The last hidden states `(n, len, hidden)` of `ids` `(n, len)` with segment ids and a
    /// 1/0 attention `mask` of the same shape.
    pub fn forward(&self, ids: &Tensor, segments: &Tensor, mask: &Tensor) -> CResult<Tensor> {
        let (n, len) = ids.dims2()?;
        let positions = Tensor::arange(0u32, len as u32, ids.device())?;
        let mut xs = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&positions)?)?
            .add(&self.segments.forward(segments)?)?;
        xs = self.embedding_norm.forward(&xs)?;
        let hidden = xs.dim(2)?;
        let head_dim = hidden / self.heads;
        let scale = 1.0 / (head_dim as f64).sqrt();
        // Padded keys get the lowest float, as transformers' extended attention mask does.
        let bias = ((mask.to_dtype(DType::F32)?.ones_like()? - mask.to_dtype(DType::F32)?)?
            * f64::from(f32::MIN))?
        .reshape((n, 1, 1, len))?;
        for layer in &self.layers {
            let heads = |x: Tensor| -> CResult<Tensor> {
                x.reshape((n, len, self.heads, head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let flat = xs.reshape((n * len, hidden))?;
            let project =
                |l: &Linear| -> CResult<Tensor> { l.forward(&flat)?.reshape((n, len, hidden)) };
            let q = heads(project(&layer.query)?)?;
            let k = heads(project(&layer.key)?)?;
            let v = heads(project(&layer.value)?)?;
            let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&bias)?;
            let context = candle_nn::ops::softmax_last_dim(&scores)?
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((n * len, hidden))?;
            let attended = layer
                .attention_out
                .forward(&context)?
                .reshape((n, len, hidden))?;
            xs = layer.attention_norm.forward(&(attended + &xs)?)?;
            let inner = layer
                .intermediate
                .forward(&xs.reshape((n * len, hidden))?)?;
            let inner = match self.activation {
                Activation::Gelu => inner.gelu_erf()?,
                Activation::GeluTanh => inner.gelu()?,
                Activation::Relu => inner.relu()?,
            };
            let out = layer.output.forward(&inner)?.reshape((n, len, hidden))?;
            xs = layer.output_norm.forward(&(out + &xs)?)?;
        }
        Ok(xs)
    }
}
