"""IAPT's frozen instruction prefix: a training step without autograd through it (docs/method.md).

With the slots after an instruction prefix (placements `before_last` and `between`), every token before the
slots attends only to earlier tokens and keeps its position id, so its hidden states and keys/values at every
layer are exactly the bare backbone's: the same for every tenant and every training step. Only the tail — the k
slots, the last instruction token (`before_last`) and the response — depends on the generators. A training step
therefore runs

1. the prefix once under `torch.no_grad()`, keeping each layer's raw input states (what the generators read;
   the read normalisation, W_down and everything trainable are applied afterwards, with autograd), and its
   keys/values in a fresh cache;
2. the rest with autograd over that cache. Under `before_last` the poolers also read the last instruction
   token, which follows the slots and so depends on the lower layers' prompts: each layer's generator runs
   inside the tail pass, over [cached prefix states; the tail's states].

Rows have prefixes of different lengths (ragged instructions, right-padded batches): the batch is cut before
the first slot of the row whose slots come first, at c, so no token is added or moved — the cache holds every
row's first c widened positions and the tail is the rest of the widened batch, with its own positions, padding
and instruction mask (a sliding-window layer, as in Gemma-3, then counts the real distances). A row's
instruction tokens between c and its slots run in the tail, with the values the prefix pass would give them.
Cost, counting a forward over n tokens as n and its backward as 2n: the full pass 3W, this one 3W − 2c.

The full pass stays (`IAPTConfig.frozen_prefix=False`), and is what `prefix` placement, LPT and IDPG use, as does
any model whose generators skip layers (the slots must then be hidden below the first one).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Tail:
    """What the slot hooks need during the tail pass."""
    states: tuple                 # per layer: the cached prefix's raw input states (B, c, d), no grad
    prefix_instr: torch.Tensor    # B, c       its instruction tokens
    tail_instr: torch.Tensor      # B, W - c   the tail's
    slot_index: torch.Tensor      # B, k       the slots' positions in the tail
    donor: object = None          # the shuffled control's DonorStates (iapt.method.donors)


def cut(w) -> int:
    """Where to cut the widened batch `w` (iapt.method.model.Widened): before the earliest row's first slot."""
    return int(w.slot_index[:, 0].min())


@torch.no_grad()
def run_prefix(base_model, w, c: int):
    """The bare backbone over the first c positions: a fresh cache of their keys/values and each layer's input
    states."""
    out = base_model(input_ids=w.input_ids[:, :c], attention_mask=w.attention_mask[:, :c],
                     position_ids=w.position_ids[:, :c], use_cache=True, output_hidden_states=True, logits_to_keep=1)
    return out.past_key_values, out.hidden_states[:-1]   # hidden_states[i]: layer i's input (the last: final norm)


def tail_logit_index(w, c: int, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, n) tail index of each row's logit at the caller's `positions`, and whether it lies in the tail. A
    position inside the cached prefix predicts one of the row's instruction tokens, which carry no label."""
    index = w.logit_index[:, positions] - c
    return index.clamp(min=0), index >= 0
