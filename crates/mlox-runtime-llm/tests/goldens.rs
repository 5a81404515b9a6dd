//! The native runtime against transformers itself: the committed tiny checkpoints (random
//! Phi-3, Llama with Llama-3's θ, Qwen2 with biases and tied embeddings, BERT) must give the
//! logits, greedy tokens, hidden states and MLflow answers recorded from transformers + torch
//! (`tests/fixtures/llm/make_goldens.py`). Logits within 1e-4, greedy tokens exactly, and the
//! same tokens whether a sequence decodes alone or in a batch with others.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use candle_core::{DType, Device, IndexOp};
use mlox_runtime::language::{Generation, LanguageModel, Prompt, SamplingParams, generate_all};
use mlox_runtime::{Load, ModelDir, NativeBackend};
use mlox_runtime_llm::Llm;
use mlox_runtime_llm::config::DecoderConfig;
use mlox_runtime_llm::decoder::{Decoder, Weights};
use mlox_runtime_llm::load::{read_config, read_safetensors};
use serde_json::Value;

const CAUSAL: [&str; 3] = [
    "tiny-phi3-chat",
    "tiny-llama-completions",
    "tiny-qwen2-chat",
];

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/llm")
}

fn golden(name: &str) -> Value {
    let path = fixtures().join("goldens").join(format!("{name}.json"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn decoder(name: &str) -> Decoder {
    let dir = fixtures().join("models").join(name).join("model");
    let config = DecoderConfig::from_json(&read_config(&dir).unwrap()).unwrap();
    let tensors = read_safetensors(&dir, &Device::Cpu).unwrap();
    Decoder::load(config, &Weights::new(tensors, DType::F32), &Device::Cpu).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

#[test]
fn next_token_logits_match_transformers() {
    for name in CAUSAL {
        let model = decoder(name);
        for prompt in golden(name)["prompts"].as_array().unwrap() {
            let input = ids(&prompt["input_ids"]);
            let mut cache = model.new_cache();
            let logits: Vec<f32> = model
                .forward(&[input], &mut [&mut cache])
                .unwrap()
                .i(0)
                .unwrap()
                .to_vec1()
                .unwrap();
            let want: Vec<f64> = prompt["next_token_logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert_eq!(logits.len(), want.len(), "{name}");
            let worst = logits
                .iter()
                .zip(&want)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            assert!(
                worst < 1e-4,
                "{name} {}: logits differ by {worst}",
                prompt["name"]
            );
        }
    }
}

#[test]
fn greedy_tokens_match_transformers_alone_and_in_a_batch() {
    for name in CAUSAL {
        let model = decoder(name);
        let prompts = golden(name)["prompts"].as_array().unwrap().clone();
        let want: Vec<Vec<u32>> = prompts
            .iter()
            .map(|p| ids(&p["greedy"]["token_ids"]))
            .collect();
        // Every prompt alone.
        for (prompt, want) in prompts.iter().zip(&want) {
            let mut cache = model.new_cache();
            let mut next = ids(&prompt["input_ids"]);
            let mut got = Vec::new();
            for _ in 0..want.len() {
                let logits: Vec<f32> = model
                    .forward(&[next], &mut [&mut cache])
                    .unwrap()
                    .i(0)
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let token = argmax(&logits);
                got.push(token);
                next = vec![token];
            }
            assert_eq!(&got, want, "{name} {} alone", prompt["name"]);
        }
        // All prompts together: each reads its prompt, then one shared decoding step per token,
        // with caches of different lengths.
        let mut caches: Vec<_> = prompts.iter().map(|_| model.new_cache()).collect();
        let mut next: Vec<u32> = prompts
            .iter()
            .zip(caches.iter_mut())
            .map(|(p, cache)| {
                let logits: Vec<f32> = model
                    .forward(&[ids(&p["input_ids"])], &mut [cache])
                    .unwrap()
                    .i(0)
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                argmax(&logits)
            })
            .collect();
        let mut got: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
        for _ in 1..want[0].len() {
            let rows: Vec<Vec<u32>> = next.iter().map(|&t| vec![t]).collect();
            let mut refs: Vec<_> = caches.iter_mut().collect();
            let logits: Vec<Vec<f32>> = model.forward(&rows, &mut refs).unwrap().to_vec2().unwrap();
            next = logits.iter().map(|row| argmax(row)).collect();
            for (g, &t) in got.iter_mut().zip(&next) {
                g.push(t);
            }
        }
        assert_eq!(got, want, "{name} batched");
    }
}

fn load(name: &str) -> std::sync::Arc<dyn LanguageModel> {
    let dir = ModelDir::open(&fixtures().join("models").join(name)).unwrap();
    match Llm.load(&dir).unwrap() {
        Load::Native { model, .. } => model.language.unwrap(),
        Load::Fallback { reason } => panic!("{name} fell back: {reason}"),
    }
}

/// MLflow's answer text and usage for every successful recorded chat/completion request.
#[tokio::test(flavor = "multi_thread")]
async fn mlflow_answers_match_for_every_recorded_request() {
    for name in CAUSAL {
        let model = load(name);
        for case in golden(name)["invocations"].as_array().unwrap() {
            if case["status"] != 200 {
                continue;
            }
            let request = case["request"].as_object().unwrap();
            let prompt = match request.get("messages") {
                Some(m) => Prompt::Chat(
                    m.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_object().unwrap().clone())
                        .collect(),
                ),
                None => Prompt::Text(request["prompt"].as_str().unwrap().into()),
            };
            let params = SamplingParams {
                max_new_tokens: request
                    .get("max_tokens")
                    .and_then(Value::as_u64)
                    .map(|v| v as usize),
                temperature: request.get("temperature").and_then(Value::as_f64),
                top_p: request.get("top_p").and_then(Value::as_f64),
                keep_stop_text: true,
                ..SamplingParams::default()
            };
            let summary = generate_all(
                model.as_ref(),
                Generation {
                    prompt,
                    params,
                    mlflow_tokenization: true,
                },
            )
            .await
            .unwrap();
            let answer = &case["response"][0];
            let choice = &answer["choices"][0];
            let text = choice
                .get("text")
                .or_else(|| choice["message"].get("content"))
                .unwrap();
            assert_eq!(
                summary.mlflow_text,
                text.as_str().unwrap(),
                "{name} {}",
                case["name"]
            );
            let total = summary.prompt_tokens + summary.completion_tokens;
            assert_eq!(
                answer["usage"]["total_tokens"], total,
                "{name} {}",
                case["name"]
            );
            assert_eq!(
                answer["usage"]["prompt_tokens"], summary.prompt_tokens_plain,
                "{name} {}",
                case["name"]
            );
            assert_eq!(model.source_name(), answer["model"].as_str().unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transformers_embeddings_are_the_first_tokens_last_hidden_state() {
    let model = load("tiny-bert-embeddings");
    let g = golden("tiny-bert-embeddings");
    let sentences = g["sentences"].as_array().unwrap();
    let texts: Vec<String> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_owned())
        .collect();
    let got = model.embed(texts).await.unwrap();
    for (vector, sentence) in got.vectors.iter().zip(sentences) {
        let want = sentence["cls_last_hidden_state"].as_array().unwrap();
        assert_eq!(vector.len(), want.len());
        for (a, b) in vector.iter().zip(want) {
            assert!(
                (f64::from(*a) - b.as_f64().unwrap()).abs() < 1e-4,
                "{}",
                sentence["text"]
            );
        }
    }
    let case = &g["invocations"][0];
    assert_eq!(
        got.vectors.len(),
        sentences.len(),
        "one vector per sentence"
    );
    let texts: Vec<String> = case["request"]["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    let usage = model.embed(texts).await.unwrap().prompt_tokens;
    assert_eq!(case["response"]["usage"]["prompt_tokens"], usage);
}

#[test]
fn rope_theta_comes_from_rope_parameters() {
    let dir = fixtures().join("models/tiny-llama-completions/model");
    let config = DecoderConfig::from_json(&read_config(&dir).unwrap()).unwrap();
    assert_eq!(config.rope_theta, 500000.0);
}

#[test]
fn models_the_runtime_does_not_reproduce_fall_back_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixtures().join("models/tiny-phi3-chat");
    let mlmodel = std::fs::read_to_string(source.join("MLmodel")).unwrap();
    std::fs::write(
        tmp.path().join("MLmodel"),
        mlmodel.replace("Phi3ForCausalLM", "GPT2LMHeadModel"),
    )
    .unwrap();
    let dir = ModelDir::open(tmp.path()).unwrap();
    match Llm.load(&dir).unwrap() {
        Load::Fallback { reason } => assert!(reason.contains("GPT2LMHeadModel"), "{reason}"),
        Load::Native { .. } => panic!("loaded"),
    }
}

fn stats(model: &dyn LanguageModel) -> mlox_runtime::language::GenerationStats {
    model.generation_stats().unwrap()
}

/// A client that goes away mid-generation frees its place at the next step: the engine stops
/// generating for it long before its `max_new_tokens`.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_receiver_cancels_its_generation() {
    let model = load("tiny-phi3-chat");
    let before = stats(model.as_ref()).generated_tokens;
    let mut events = model
        .generate(Generation {
            prompt: Prompt::Text("hello world".into()),
            params: SamplingParams {
                max_new_tokens: Some(200),
                ignore_eos: true,
                ..SamplingParams::default()
            },
            mlflow_tokenization: false,
        })
        .await
        .unwrap();
    events.recv().await.unwrap().unwrap();
    drop(events);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stats(model.as_ref()).running > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the generation kept running"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let generated = stats(model.as_ref()).generated_tokens - before;
    assert!(
        generated < 200,
        "{generated} tokens generated for a client that left"
    );
}

/// Sixteen generations at once give each the tokens it gets alone.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_generations_match_their_solo_runs() {
    let model = load("tiny-qwen2-chat");
    let prompt = |i: usize| Generation {
        prompt: Prompt::Chat(vec![
            serde_json::json!({"role": "user", "content": format!("question number {i}")})
                .as_object()
                .unwrap()
                .clone(),
        ]),
        params: SamplingParams {
            max_new_tokens: Some(12 + i),
            do_sample: Some(false),
            ..SamplingParams::default()
        },
        mlflow_tokenization: false,
    };
    let mut solo = Vec::new();
    for i in 0..16 {
        solo.push(generate_all(model.as_ref(), prompt(i)).await.unwrap().text);
    }
    let together =
        futures::future::join_all((0..16).map(|i| generate_all(model.as_ref(), prompt(i)))).await;
    for (i, (alone, with_others)) in solo.iter().zip(together).enumerate() {
        assert_eq!(alone, &with_others.unwrap().text, "generation {i}");
    }
}

/// `--quantize q8_0` keeps the logits close to transformers' f32 ones.
#[test]
fn q8_0_weights_keep_logits_close() {
    use mlox_runtime_llm::decoder::Quantization;
    for name in CAUSAL {
        let dir = fixtures().join("models").join(name).join("model");
        let config = DecoderConfig::from_json(&read_config(&dir).unwrap()).unwrap();
        let tensors = read_safetensors(&dir, &Device::Cpu).unwrap();
        let model = Decoder::load_quantized(
            config,
            &Weights::new(tensors, DType::F32),
            &Device::Cpu,
            Quantization::Q8_0,
        )
        .unwrap();
        for prompt in golden(name)["prompts"].as_array().unwrap() {
            let mut cache = model.new_cache();
            let logits: Vec<f32> = model
                .forward(&[ids(&prompt["input_ids"])], &mut [&mut cache])
                .unwrap()
                .i(0)
                .unwrap()
                .to_vec1()
                .unwrap();
            let want: Vec<f32> = prompt["next_token_logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            let worst = logits
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 0.05 * scale, "{name}: {worst} of {scale}");
            assert_eq!(argmax(&logits), argmax(&want), "{name} {}", prompt["name"]);
        }
    }
}

/// Without max_tokens, a long prompt gets what is left of the context; with an explicit
/// max_tokens beyond it, the request is refused with the numbers.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_length_stops_at_the_context_and_an_explicit_one_is_checked() {
    let model = load("tiny-llama-completions");
    let codec = mlox_runtime_llm::text::TextCodec::open(
        &fixtures().join("models/tiny-llama-completions/components/tokenizer"),
        None,
    )
    .unwrap();
    // A prompt 245–255 tokens long: the context (256) leaves fewer than the logged 16 new ones.
    let mut long = String::new();
    while codec.encode(&long, true).unwrap().len() < 245 {
        long.push_str("hello ");
    }
    assert!(codec.encode(&long, true).unwrap().len() < 256);
    let generation = |max_new_tokens| Generation {
        prompt: Prompt::Text(long.clone()),
        params: SamplingParams {
            max_new_tokens,
            ignore_eos: true,
            do_sample: Some(false),
            ..SamplingParams::default()
        },
        mlflow_tokenization: false,
    };
    let summary = generate_all(model.as_ref(), generation(None))
        .await
        .unwrap();
    assert_eq!(summary.prompt_tokens + summary.completion_tokens, 256);
    assert!(
        summary.completion_tokens < 16,
        "{}",
        summary.completion_tokens
    );
    let err = generate_all(model.as_ref(), generation(Some(100)))
        .await
        .unwrap_err();
    assert!(
        err.message.contains("maximum context length"),
        "{}",
        err.message
    );
}
