"""Logits at the labelled positions only (iapt.evaluation.positions) give the same logits, loss and gradients as the full
sequence, for every method, and for IAPT and a bare backbone on LLaMA, Qwen2 and Gemma-3, on right-padded rows
whose answers sit at different positions."""
import pytest
import torch

import torch.nn.functional as F

from tests.conftest import ARCHS, tiny_model
from iapt.baselines.peft_methods import BareBackbone
from iapt.baselines.registry import METHODS, build_method
from iapt.contract import TunedModel
from iapt.evaluation.positions import label_positions

LENGTHS, ANSWERS = [9, 14, 6, 11], [1, 2, 1, 3]


def batch():
    g = torch.Generator().manual_seed(0)
    width = max(LENGTHS)
    mask = (torch.arange(width)[None] < torch.tensor(LENGTHS)[:, None]).long()
    ids = torch.randint(3, 96, (len(LENGTHS), width), generator=g).masked_fill(mask == 0, 0)
    labels = torch.full_like(ids, -100)
    for r, (n, a) in enumerate(zip(LENGTHS, ANSWERS)):
        labels[r, n - a:n] = ids[r, n - a:n]
    return {"input_ids": ids, "attention_mask": mask, "instruction_mask": (labels == -100) & mask.bool()}, labels


def perturbed(model, seed=1):
    """Random, non-zero tunable weights: zero-initialised ones (LoRA's B, IAPT's W_up) would hide a wrong position."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad and p.is_floating_point():
                p.add_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def full_sequence_loss(logits, labels):
    """The plain next-token cross-entropy over every position, as a Hugging Face model computes it."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=-100)


def assert_same(model, with_loss=True):
    inputs, labels = batch()
    positions = label_positions(labels)
    assert positions.tolist() == sorted({n - a - 1 + j for n, a in zip(LENGTHS, ANSWERS) for j in range(a)})
    full = model(**inputs).logits
    fast = model(**inputs, logit_positions=positions).logits
    assert fast.shape == (len(LENGTHS), len(positions), full.shape[-1])
    torch.testing.assert_close(fast, full[:, positions], atol=1e-5, rtol=1e-5)
    if with_loss:   # the training loss (the head at label positions only) against the plain full-sequence loss
        torch.testing.assert_close(model(**inputs, labels=labels).loss, full_sequence_loss(full, labels),
                                   atol=1e-5, rtol=1e-5)
        if not any(p.requires_grad for p in model.parameters()):
            return                                                        # the bare backbone: nothing to train
        g_ref = grads(model, full_sequence_loss(model(**inputs).logits, labels))
        g_ours = grads(model, model(**inputs, labels=labels).loss)
        assert g_ref and g_ref.keys() == g_ours.keys()
        for n in g_ref:
            torch.testing.assert_close(g_ours[n], g_ref[n], atol=1e-5, rtol=1e-4, msg=n)


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_scores_the_same_at_positions(name):
    model = perturbed(build_method(name, tiny_model(), size=METHODS[name].default_size and 4, total_steps=10))
    assert isinstance(model, TunedModel)
    assert_same(model, with_loss=name != "adalora")   # AdaLoRA trains on its own loss, which adds a penalty


@pytest.mark.parametrize("arch", ARCHS)
def test_iapt_and_bare_backbones_score_the_same_at_positions(arch):
    assert_same(perturbed(build_method("iapt", tiny_model(arch), size=4, total_steps=10)))
    assert_same(BareBackbone(tiny_model(arch)))
