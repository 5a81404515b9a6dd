//! Reading what MLflow wrote: which kind of language model a model directory holds (from its
//! `MLmodel`), the checkpoint's `config.json` and safetensors (sharded through their index),
//! and the generation defaults (`generation_config.json`, then the `model_config` the model
//! was logged with).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use mlox_core::{Error, Result};
use mlox_runtime::ModelDir;
use mlox_runtime::language::LanguageTask;
use serde_json::Value;

use crate::config::{Architecture, token_ids};
use crate::embed::{Head, Pooling};

/// What a model directory holds, as far as the native runtime is concerned.
pub enum Plan {
    /// A causal LM through the transformers flavor.
    Generator {
        task: LanguageTask,
        weights: PathBuf,
        tokenizer: PathBuf,
        source_name: String,
    },
    /// An encoder whose vectors are embeddings.
    Encoder {
        weights: PathBuf,
        tokenizer: PathBuf,
        max_length: Option<usize>,
        head: Head,
        source_name: String,
    },
}

pub fn read_json(path: &Path) -> Result<Value> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
}

pub fn read_config(dir: &Path) -> Result<Value> {
    read_json(&dir.join("config.json"))
}

/// Every tensor of the checkpoint in `dir`: `model.safetensors`, or the shards its index
/// lists.
pub fn read_safetensors(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let index = dir.join("model.safetensors.index.json");
    let files: Vec<PathBuf> = if index.exists() {
        let index = read_json(&index)?;
        let mut shards: Vec<String> = index
            .get("weight_map")
            .and_then(Value::as_object)
            .map(|m| {
                m.values()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        shards.sort();
        shards.dedup();
        shards
            .iter()
            .map(|s| {
                inside(dir, s).ok_or_else(|| {
                    Error::invalid(format!(
                        "the weight index names a file outside the model: {s}"
                    ))
                })
            })
            .collect::<Result<_>>()?
    } else {
        vec![dir.join("model.safetensors")]
    };
    let mut tensors = HashMap::new();
    for file in files {
        let part = candle_core::safetensors::load(&file, device)
            .map_err(|e| Error::invalid(format!("{}: {e}", file.display())))?;
        tensors.extend(part);
    }
    Ok(tensors)
}

fn inside(dir: &Path, relative: &str) -> Option<PathBuf> {
    let path = Path::new(relative);
    path.components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
        .then(|| dir.join(path))
}

/// Why a model is left to the Python runtime.
pub type Refusal = String;

/// Reads the model's `MLmodel` into a [`Plan`], or says why the native runtime does not take it.
pub fn plan(model: &ModelDir) -> std::result::Result<Plan, Refusal> {
    if let Some(flavor) = model.mlmodel.flavor("sentence_transformers") {
        return plan_sentence_transformer(model, flavor);
    }
    let Some(flavor) = model.mlmodel.flavor("transformers") else {
        return Err(
            "the model has neither a transformers nor a sentence_transformers flavor".into(),
        );
    };
    let get = |key: &str| flavor.get(key).and_then(Value::as_str);
    if flavor.get("peft_adaptor").is_some_and(|v| !v.is_null()) {
        return Err("PEFT adapters run in Python".into());
    }
    let inference_task = get("inference_task");
    let pipeline_task = get("task").unwrap_or_default();
    let task = match (inference_task, pipeline_task) {
        (Some("llm/v1/chat"), _) => LanguageTask::Chat,
        (Some("llm/v1/completions"), _) => LanguageTask::Completions,
        // Without an inference task MLflow answers with the pipeline's own output shapes,
        // which are not reproduced here.
        (None, "text-generation") => {
            return Err(
                "text-generation models logged without an llm/v1 task are served by \
                        transformers' pipeline in Python"
                    .into(),
            );
        }
        (Some("llm/v1/embeddings"), _) => LanguageTask::Embeddings,
        (other, task) => {
            return Err(format!(
                "transformers task {task:?} (inference task {other:?}) has no native runtime"
            ));
        }
    };
    let class = get("pipeline_model_type").unwrap_or_default();
    match task {
        LanguageTask::Embeddings if class != "BertModel" => {
            return Err(format!("{class} embeddings have no native runtime"));
        }
        LanguageTask::Chat | LanguageTask::Completions
            if Architecture::from_class(class).is_none() =>
        {
            return Err(format!("{class} has no native decoder"));
        }
        _ => {}
    }
    let binary = get("model_binary").unwrap_or("model");
    let weights = model
        .file(binary)
        .ok_or_else(|| format!("model_binary {binary:?} leaves the model directory"))?;
    let tokenizer = model
        .file("components/tokenizer")
        .filter(|d| d.join("tokenizer.json").exists())
        .ok_or_else(|| "the model has no components/tokenizer/tokenizer.json".to_owned())?;
    let source_name = get("source_model_name").unwrap_or_default().to_owned();
    if task == LanguageTask::Embeddings {
        return Ok(Plan::Encoder {
            weights,
            tokenizer,
            max_length: None,
            head: Head {
                pooling: Pooling::Cls,
                normalize: false,
            },
            source_name,
        });
    }
    Ok(Plan::Generator {
        task,
        weights,
        tokenizer,
        source_name,
    })
}

fn plan_sentence_transformer(
    model: &ModelDir,
    flavor: &Value,
) -> std::result::Result<Plan, Refusal> {
    let pyfunc = model.mlmodel.flavor(mlox_mlmodel::mlmodel::PYFUNC_FLAVOR);
    let data = pyfunc
        .and_then(|f| f.get("data"))
        .and_then(Value::as_str)
        .unwrap_or("model.sentence_transformer");
    let root = model
        .file(data)
        .ok_or_else(|| format!("the pyfunc data {data:?} leaves the model directory"))?;
    // Without a task MLflow answers vectors; with llm/v1/embeddings, its embeddings object (the
    // transport reads which from MLmodel). Other tasks are not reproduced.
    if let Some(other) = pyfunc
        .and_then(|f| f.get("config"))
        .and_then(|c| c.get("task"))
        .and_then(Value::as_str)
        .filter(|t| *t != "llm/v1/embeddings")
    {
        return Err(format!(
            "sentence-transformers task {other:?} has no native runtime"
        ));
    }
    let modules = read_json(&root.join("modules.json")).map_err(|e| e.to_string())?;
    let modules = modules.as_array().cloned().unwrap_or_default();
    let mut transformer = None;
    let mut pooling = None;
    let mut normalize = false;
    for module in &modules {
        let kind = module
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let path = module
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let dir = if path.is_empty() {
            Some(root.clone())
        } else {
            inside(&root, path)
        }
        .ok_or_else(|| format!("module path {path:?} leaves the model directory"))?;
        // Module classes moved between sentence-transformers versions; their names did not.
        let name = kind.rsplit('.').next().unwrap_or_default();
        match name {
            "Transformer" if transformer.is_none() => transformer = Some(dir),
            "Pooling" if pooling.is_none() => {
                let config = read_json(&dir.join("config.json")).map_err(|e| e.to_string())?;
                pooling = Some(Pooling::from_config(&config).map_err(|e| e.to_string())?);
            }
            "Normalize" => normalize = true,
            _ => {
                return Err(format!(
                    "sentence-transformers module {kind} has no native runtime"
                ));
            }
        }
    }
    let weights = transformer.ok_or_else(|| "modules.json lists no Transformer".to_owned())?;
    let config = read_config(&weights).map_err(|e| e.to_string())?;
    let model_type = config
        .get("model_type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if model_type != "bert" {
        return Err(format!("{model_type:?} encoders have no native runtime"));
    }
    let st_config = read_json(&weights.join("sentence_bert_config.json")).ok();
    if st_config
        .as_ref()
        .and_then(|c| c.get("do_lower_case"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        return Err("do_lower_case is applied in Python".into());
    }
    // sentence-transformers 6 keeps the limit as the tokenizer's `model_max_length`; older
    // versions as `max_seq_length`. Tokenizers without a limit say 1e30.
    let tokenizer_limit = read_json(&weights.join("tokenizer_config.json"))
        .ok()
        .and_then(|c| c.get("model_max_length").and_then(Value::as_f64))
        .filter(|&v| v > 0.0 && v < 1e9)
        .map(|v| v as usize);
    let max_length = st_config
        .as_ref()
        .and_then(|c| c.get("max_seq_length"))
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .or(tokenizer_limit);
    Ok(Plan::Encoder {
        tokenizer: weights.clone(),
        weights,
        max_length,
        head: Head {
            pooling: pooling.unwrap_or(Pooling::Mean),
            normalize,
        },
        source_name: flavor
            .get("source_model_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    })
}

/// Generation defaults, each `None` where neither the checkpoint nor the logged model sets it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Defaults {
    pub max_new_tokens: Option<usize>,
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub eos_token_ids: Vec<u32>,
}

impl Defaults {
    /// `generation_config.json`'s settings overlaid with the logged `model_config`. Values
    /// equal to transformers' global defaults in `generation_config.json` do not count as set
    /// (transformers itself cannot tell them apart), so the pipeline's own defaults apply there.
    pub fn read(generation_config: Option<&Value>, model_config: Option<&Value>) -> Defaults {
        let mut d = Defaults::default();
        if let Some(g) = generation_config {
            d.eos_token_ids = token_ids(g.get("eos_token_id"));
            d.do_sample = g.get("do_sample").and_then(Value::as_bool).filter(|&v| v);
            d.temperature = g
                .get("temperature")
                .and_then(Value::as_f64)
                .filter(|&v| v != 1.0);
            d.top_p = g.get("top_p").and_then(Value::as_f64).filter(|&v| v != 1.0);
            d.top_k = g
                .get("top_k")
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .filter(|&v| v != 50);
            d.max_new_tokens = g
                .get("max_new_tokens")
                .and_then(Value::as_u64)
                .map(|v| v as usize);
        }
        if let Some(c) = model_config {
            if let Some(v) = c.get("max_new_tokens").and_then(Value::as_u64) {
                d.max_new_tokens = Some(v as usize);
            }
            if let Some(v) = c.get("do_sample").and_then(Value::as_bool) {
                d.do_sample = Some(v);
            }
            if let Some(v) = c.get("temperature").and_then(Value::as_f64) {
                d.temperature = Some(v);
            }
            if let Some(v) = c.get("top_p").and_then(Value::as_f64) {
                d.top_p = Some(v);
            }
            if let Some(v) = c.get("top_k").and_then(Value::as_u64) {
                d.top_k = Some(v as usize);
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn logged_model_config_overrides_the_checkpoint_and_global_defaults_do_not_count() {
        let generation = json!({"do_sample": false, "temperature": 1.0, "top_k": 50, "top_p": 0.9,
            "eos_token_id": [2, 32007]});
        let d = Defaults::read(Some(&generation), None);
        assert_eq!(d.do_sample, None);
        assert_eq!(d.temperature, None);
        assert_eq!(d.top_k, None);
        assert_eq!(d.top_p, Some(0.9));
        assert_eq!(d.eos_token_ids, vec![2, 32007]);
        let logged = json!({"do_sample": false, "max_new_tokens": 16, "top_p": 0.5});
        let d = Defaults::read(Some(&generation), Some(&logged));
        assert_eq!(d.do_sample, Some(false));
        assert_eq!(d.max_new_tokens, Some(16));
        assert_eq!(d.top_p, Some(0.5));
    }

    #[test]
    fn weight_shards_must_stay_inside_the_checkpoint() {
        let dir = Path::new("/m");
        assert_eq!(
            inside(dir, "model-00001-of-00002.safetensors"),
            Some(PathBuf::from("/m/model-00001-of-00002.safetensors"))
        );
        assert_eq!(inside(dir, "../x.safetensors"), None);
        assert_eq!(inside(dir, "/etc/x"), None);
    }
}
