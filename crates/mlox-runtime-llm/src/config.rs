//! A causal LM's `config.json` read into the one shape every supported architecture shares
//! (Llama, Mistral, Qwen2, Qwen3, Phi-3 are the same decoder with different weight names and
//! a few switches). transformers 5 writes the rotary settings under `rope_parameters`;
//! transformers 4 wrote them at the top level: both are read, and a missing θ is an error,
//! never a silent default (Llama 3's is 500000, not the 10000 older code assumes).

use mlox_core::{Error, Result};
use serde_json::Value;

/// The architectures the native decoder runs, by `architectures[0]` / MLflow's
/// `pipeline_model_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Phi3,
}

impl Architecture {
    pub fn from_class(class: &str) -> Option<Architecture> {
        Some(match class {
            "LlamaForCausalLM" => Architecture::Llama,
            "MistralForCausalLM" => Architecture::Mistral,
            "Qwen2ForCausalLM" => Architecture::Qwen2,
            "Qwen3ForCausalLM" => Architecture::Qwen3,
            "Phi3ForCausalLM" => Architecture::Phi3,
            _ => return None,
        })
    }
}

/// How rotary frequencies are scaled beyond the plain θ^(-2i/d).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Llama 3.1's frequency-band scaling (`rope_type: llama3`).
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// Linear position interpolation (`rope_type: linear`).
    Linear {
        factor: f64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct DecoderConfig {
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// How many of each head's dimensions rotate (Phi-3's `partial_rotary_factor`).
    pub rotary_dim: usize,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Token ids that end a generation, from `config.json` (`generation_config.json` may add).
    pub eos_token_ids: Vec<u32>,
    pub bos_token_id: Option<u32>,
}

fn usize_of(config: &Value, key: &str) -> Result<usize> {
    config
        .get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| Error::invalid(format!("config.json has no integer `{key}`")))
}

fn opt_f64(value: Option<&Value>, key: &str) -> Option<f64> {
    value?.get(key)?.as_f64()
}

/// Token ids in a field that is a number or a list of numbers.
pub fn token_ids(value: Option<&Value>) -> Vec<u32> {
    match value {
        Some(Value::Number(n)) => n.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_u64)
            .map(|v| v as u32)
            .collect(),
        _ => Vec::new(),
    }
}

impl DecoderConfig {
    /// Reads `config.json`'s content; `None` names why the model is not one this decoder runs.
    pub fn from_json(config: &Value) -> Result<DecoderConfig> {
        let class = config
            .get("architectures")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let architecture = Architecture::from_class(class).ok_or_else(|| {
            Error::invalid(format!("architecture {class:?} has no native decoder"))
        })?;
        let hidden_size = usize_of(config, "hidden_size")?;
        let num_heads = usize_of(config, "num_attention_heads")?;
        let num_kv_heads = config
            .get("num_key_value_heads")
            .and_then(Value::as_u64)
            .map_or(num_heads, |v| v as usize);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(Error::invalid(format!(
                "config.json: {num_heads} attention heads cannot share {num_kv_heads} key/value heads"
            )));
        }
        let head_dim = config
            .get("head_dim")
            .and_then(Value::as_u64)
            .map_or(hidden_size / num_heads, |v| v as usize);
        // transformers 5: `rope_parameters: {rope_theta, rope_type, partial_rotary_factor, …}`;
        // transformers 4: the same keys at the top level, scaling under `rope_scaling`.
        let params = config.get("rope_parameters").filter(|p| p.is_object());
        let rope_theta = opt_f64(params, "rope_theta")
            .or_else(|| config.get("rope_theta").and_then(Value::as_f64))
            .ok_or_else(|| {
                Error::invalid("config.json gives no rope_theta (neither at the top level nor in rope_parameters)")
            })?;
        let partial = opt_f64(params, "partial_rotary_factor")
            .or_else(|| config.get("partial_rotary_factor").and_then(Value::as_f64))
            .unwrap_or(1.0);
        let rotary_dim = ((head_dim as f64) * partial) as usize;
        let scaling_source =
            params.or_else(|| config.get("rope_scaling").filter(|s| s.is_object()));
        let rope_type = scaling_source
            .and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let rope_scaling = match rope_type {
            "default" => RopeScaling::None,
            "llama3" => RopeScaling::Llama3 {
                factor: opt_f64(scaling_source, "factor").unwrap_or(8.0),
                low_freq_factor: opt_f64(scaling_source, "low_freq_factor").unwrap_or(1.0),
                high_freq_factor: opt_f64(scaling_source, "high_freq_factor").unwrap_or(4.0),
                original_max_position_embeddings: opt_f64(
                    scaling_source,
                    "original_max_position_embeddings",
                )
                .unwrap_or(8192.0),
            },
            "linear" => RopeScaling::Linear {
                factor: opt_f64(scaling_source, "factor").unwrap_or(1.0),
            },
            other => {
                return Err(Error::invalid(format!(
                    "rotary scaling {other:?} has no native implementation"
                )));
            }
        };
        let act = config
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("silu");
        if act != "silu" {
            return Err(Error::invalid(format!(
                "activation {act:?} has no native implementation"
            )));
        }
        if config.get("use_sliding_window").and_then(Value::as_bool) == Some(true) {
            return Err(Error::invalid(
                "sliding-window attention has no native implementation",
            ));
        }
        Ok(DecoderConfig {
            architecture,
            vocab_size: usize_of(config, "vocab_size")?,
            hidden_size,
            intermediate_size: usize_of(config, "intermediate_size")?,
            num_layers: usize_of(config, "num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: config
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6),
            rope_theta,
            rotary_dim,
            rope_scaling,
            max_position_embeddings: usize_of(config, "max_position_embeddings")?,
            tie_word_embeddings: config
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            eos_token_ids: token_ids(config.get("eos_token_id")),
            bos_token_id: config
                .get("bos_token_id")
                .and_then(Value::as_u64)
                .map(|v| v as u32),
        })
    }

    /// The inverse frequency of each rotating pair of dimensions.
    pub fn inverse_frequencies(&self) -> Vec<f64> {
        let dim = self.rotary_dim as f64;
        let base: Vec<f64> = (0..self.rotary_dim)
            .step_by(2)
            .map(|i| 1.0 / self.rope_theta.powf(i as f64 / dim))
            .collect();
        match self.rope_scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.into_iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: original,
            } => {
                let low_wavelen = original / low_freq_factor;
                let high_wavelen = original / high_freq_factor;
                base.into_iter()
                    .map(|freq| {
                        let wavelen = 2.0 * std::f64::consts::PI / freq;
                        if wavelen < high_wavelen {
                            freq
                        } else if wavelen > low_wavelen {
                            freq / factor
                        } else {
                            let smooth = (original / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * freq / factor + smooth * freq
                        }
                    })
                    .collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn llama(extra: Value) -> Value {
        let mut config = json!({
            "architectures": ["LlamaForCausalLM"], "vocab_size": 300, "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
            "eos_token_id": [4, 7], "hidden_act": "silu",
        });
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        config
    }

    #[test]
    fn rope_theta_is_read_from_transformers_5_rope_parameters() {
        let config = DecoderConfig::from_json(&llama(json!({
            "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}
        })))
        .unwrap();
        assert_eq!(config.rope_theta, 500000.0);
        assert_eq!(config.head_dim, 8);
        assert_eq!(config.rotary_dim, 8);
        assert_eq!(config.eos_token_ids, vec![4, 7]);
        assert_eq!(config.rope_scaling, RopeScaling::None);
    }

    #[test]
    fn rope_theta_is_read_from_the_top_level_of_transformers_4_configs() {
        let config = DecoderConfig::from_json(&llama(json!({"rope_theta": 10000.0}))).unwrap();
        assert_eq!(config.rope_theta, 10000.0);
    }

    #[test]
    fn a_missing_rope_theta_is_an_error_not_a_default() {
        let err = DecoderConfig::from_json(&llama(json!({}))).unwrap_err();
        assert!(err.to_string().contains("rope_theta"), "{err}");
    }

    #[test]
    fn partial_rotary_factor_narrows_the_rotating_dimensions() {
        let config = DecoderConfig::from_json(&llama(json!({
            "rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 0.5}
        })))
        .unwrap();
        assert_eq!(config.rotary_dim, 4);
        assert_eq!(config.inverse_frequencies().len(), 2);
    }

    #[test]
    fn llama3_scaling_keeps_high_frequencies_and_divides_low_ones() {
        let config = DecoderConfig::from_json(&llama(json!({
            "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}
        })))
        .unwrap();
        let plain = DecoderConfig {
            rope_scaling: RopeScaling::None,
            ..config.clone()
        };
        let (scaled, base) = (config.inverse_frequencies(), plain.inverse_frequencies());
        assert_eq!(scaled[0], base[0]);
        let last = base.len() - 1;
        assert!((scaled[last] - base[last] / 8.0).abs() < 1e-15);
    }

    #[test]
    fn unknown_architectures_and_scalings_are_named() {
        let mut config = llama(json!({"rope_theta": 1.0}));
        config["architectures"] = json!(["GPT2LMHeadModel"]);
        let err = DecoderConfig::from_json(&config).unwrap_err();
        assert!(err.to_string().contains("GPT2LMHeadModel"), "{err}");
        let err = DecoderConfig::from_json(&llama(json!({
            "rope_parameters": {"rope_theta": 1.0, "rope_type": "yarn"}
        })))
        .unwrap_err();
        assert!(err.to_string().contains("yarn"), "{err}");
    }
}
