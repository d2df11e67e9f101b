"""IAPT's frozen instruction prefix: a training step without autograd through it (docs/method.md).

With the slots after an instruction prefix (placements `before_last` and `between`), every token before the
slots attends only to earlier tokens and keeps its position id, so its hidden states and keys/values at every
layer are exactly the bare backbone's: the same for every tenant and every training step. Only the tail — the k
slots, the last instruction token (`before_last`) and the response — depends on the generators. A training step
therefore runs

1. the prefix once under `torch.no_grad()`, keeping each layer's raw input states (what the generators read;
   the read normalisation, W_down and everything trainable are applied afterwards, with autograd), and its
   keys/values in a fresh cache;
2. the tail with autograd over that cache. Under `before_last` the poolers also read the last instruction
   token, which follows the slots and so depends on the lower layers' prompts: each layer's generator runs
   inside the tail pass, over [cached prefix states; the live last token].

Rows have prefixes of different lengths: each row's prefix is left-padded to the longest, so that every row's
tail starts at the same cache index and a tail token's distance to its prefix tokens is the real one (which is
what a sliding-window layer counts); position ids continue from each row's own prefix, and padding is masked.
The full pass stays (`IAPTConfig.frozen_prefix=False`), and is what `prefix` placement, LPT and IDPG use, as
does any model whose generators skip layers (the slots must then be hidden below the first one).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Split:
    """A widened batch cut at the slots: the prefix (left-padded to P) and the tail (right-padded to S)."""
    prefix_ids: torch.Tensor      # B, P
    prefix_mask: torch.Tensor     # B, P
    prefix_pos: torch.Tensor      # B, P
    prefix_instr: torch.Tensor    # B, P   instruction tokens the generators read
    tail_ids: torch.Tensor        # B, S   the slots first
    tail_mask: torch.Tensor       # B, S
    tail_pos: torch.Tensor        # B, S
    tail_instr: torch.Tensor      # B, S
    start: torch.Tensor           # B      widened index where each row's tail (its first slot) starts


@dataclass
class Tail:
    """What the slot hooks need during the tail pass."""
    states: tuple                 # per layer: the prefix's raw input states at that layer (B, P, d), no grad
    prefix_instr: torch.Tensor    # B, P
    live: torch.Tensor | None     # B, 1 bool: whether tail index k is a live instruction token (before_last)
    k: int


def split_at_slots(w, placeholder_id: int) -> Split:
    """Cut the widened batch `w` (iapt.method.model.Widened) before each row's first slot."""
    start = w.slot_index[:, 0]
    B, W = w.input_ids.shape
    dev = w.input_ids.device
    P, S = int(start.max()), W - int(start.min())
    column = torch.arange(P, device=dev)[None] - (P - start)[:, None]        # B, P: source column, < 0 = padding
    in_prefix = column >= 0
    src = column.clamp(min=0)
    tail = start[:, None] + torch.arange(S, device=dev)[None]                 # B, S
    in_tail = tail < W
    tail = tail.clamp(max=W - 1)

    def take(t, index, keep, fill=0):
        return t.gather(1, index).masked_fill(~keep, fill)
    return Split(take(w.input_ids, src, in_prefix, placeholder_id), take(w.attention_mask, src, in_prefix),
                 take(w.position_ids, src, in_prefix), take(w.instruction_mask, src, in_prefix, False),
                 take(w.input_ids, tail, in_tail, placeholder_id), take(w.attention_mask, tail, in_tail),
                 take(w.position_ids, tail, in_tail), take(w.instruction_mask, tail, in_tail, False), start)


@torch.no_grad()
def run_prefix(base_model, split: Split):
    """The bare backbone over the prefixes: a fresh cache of their keys/values and each layer's input states."""
    out = base_model(input_ids=split.prefix_ids, attention_mask=split.prefix_mask, position_ids=split.prefix_pos,
                     use_cache=True, output_hidden_states=True, logits_to_keep=1)
    return out.past_key_values, out.hidden_states[:-1]   # hidden_states[i]: layer i's input (the last: final norm)


def tail_logit_index(w, split: Split, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, n) tail index of each row's logit at the caller's `positions`, and where that lies in the tail.
    A position before a row's tail predicts one of its instruction tokens, which carry no label."""
    index = w.logit_index[:, positions] - split.start[:, None]
    return index.clamp(min=0), index >= 0
