"""Logits only where a loss or a score needs them.

A classification answer is one or two tokens of a ~100-token input, yet a causal LM's head (49 k × 576 on
SmolLM2, a fifth of its forward FLOPs; 262 k rows on Gemma-3) and the softmax after it run at every position.
Every tuned model takes the positions (`logit_positions`, iapt.contract) and runs the head on the union of the
positions the batch needs (`logits_to_keep` for the Hugging Face model underneath); the loss and the scores are
the same numbers (tests/test_positions.py).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def label_positions(labels: torch.Tensor) -> torch.Tensor:
    """The positions (1-D, ascending) whose next-token logits predict some row's label (labels[:, p + 1] != -100)."""
    return (labels[:, 1:] != -100).any(0).nonzero()[:, 0]


def loss_at(logits: torch.Tensor, labels: torch.Tensor, positions: torch.Tensor, num_items=None) -> torch.Tensor:
    """Next-token cross-entropy over every labelled token, from logits at `positions`: the mean over the same
    (row, token) pairs as the full-sequence loss, or their sum divided by `num_items` (a count over several
    accumulated batches)."""
    targets = labels[:, positions + 1]
    if num_items is None:
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
    total = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100, reduction="sum")
    return total / torch.as_tensor(num_items, device=total.device, dtype=total.dtype)
