"""Tiny models built locally from configs (never downloaded), with random non-zero IAPT generators."""
from __future__ import annotations

import pytest
import torch
from iapt.method.generator import theta_ids
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM)

COMMON = dict(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, pad_token_id=0, eos_token_id=1, bos_token_id=2, max_position_embeddings=256)


def tiny_model(arch: str = "llama", seed: int = 0):
    torch.manual_seed(seed)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**COMMON))
    elif arch == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**COMMON))
    elif arch == "gemma3":
        model = Gemma3ForCausalLM(Gemma3TextConfig(**COMMON, head_dim=8, sliding_window=4,
                                                   layer_types=["sliding_attention", "sliding_attention", "full_attention"]))
    else:
        raise ValueError(arch)
    return model.eval()


def randomize(model, seed: int = 1, std: float = 0.3):
    """Random, non-zero generator weights (a zero-initialised W_up would make equivalences pass trivially)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.generators.parameters():
            if id(p) not in theta_ids(model.generators):
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


ARCHS = ["llama", "qwen2", "gemma3"]


@pytest.fixture(params=ARCHS)
def arch(request):
    return request.param
