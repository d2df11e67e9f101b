"""Requests that share a long instruction prefix (a task definition, as in Natural Instructions) plus a short
input of their own, served in one mixed-tenant batch.

IAPT's slots come after the instruction prefix (placements before_last and between), so the prefix's keys,
values and hidden states are the bare backbone's, whoever the tenant: the server computes them once, for a batch
of one, and shares them with every row; each row then prefills only its tail — its input, the k slots and (under
before_last) the input's last token — over that cache, the generators reading [shared prefix states; the tail's
states] (iapt.method.prefix.Tail). LoRA changes every position, so in a mixed batch a prefix can be shared only
among the rows of one tenant: once per distinct tenant, gathered to its rows. The bare backbone shares it once,
as IAPT does. Each `generate_shared` returns exactly `new_tokens` greedy tokens per row; a request's tokens equal
those it gets alone through the server's `generate` on prefix + input (tests/test_serving.py).
"""
from __future__ import annotations

import time

import torch
from transformers import StoppingCriteriaList

from ..backbones import position_ids
from ..method.model import widen
from ..method.prefix import Tail
from .multitenant import BareBackbone, GatheredLoRA, StepClock, TenantIAPT


def _prefix_cache(base_model, prefix_ids: torch.Tensor, rows: int, hidden_states: bool = False):
    """The bare backbone over `prefix_ids` (P,) once: its cache repeated for `rows` rows (and each layer's input
    states, expanded to the rows without a copy)."""
    out = base_model(input_ids=prefix_ids[None], use_cache=True, output_hidden_states=hidden_states, logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(rows)
    states = tuple(h.expand(rows, -1, -1) for h in out.hidden_states[:-1]) if hidden_states else None
    return cache, states


def _tail_prefill(base_model, cache, prefix_ids, tail_ids, tail_mask):
    """Each row's tail over the cached prefix; (the whole sequence's ids and mask, the next-token logits)."""
    rows, p = tail_ids.shape[0], len(prefix_ids)
    mask = torch.cat([torch.ones(rows, p, dtype=tail_mask.dtype, device=tail_mask.device), tail_mask], 1)
    out = base_model(input_ids=tail_ids, attention_mask=mask, position_ids=position_ids(mask)[:, p:],
                     past_key_values=cache, use_cache=True, logits_to_keep=1)
    return torch.cat([prefix_ids.expand(rows, -1), tail_ids], 1), mask, out.logits[:, -1]


def _decode(base_model, cache, ids, mask, logits, new_tokens: int, clock: StepClock | None) -> torch.Tensor:
    """Greedy: the first token from the prefill's `logits`, the rest by Hugging Face generate over `cache`."""
    first = logits.argmax(-1, keepdim=True)
    if clock is not None:
        clock.sync()
        clock.stamps.append(time.perf_counter())
    if new_tokens == 1:
        return first
    ids, mask = torch.cat([ids, first], 1), torch.cat([mask, torch.ones_like(first)], 1)
    criteria = StoppingCriteriaList([clock]) if clock is not None else None
    out = base_model.generate(input_ids=ids, attention_mask=mask, past_key_values=cache, max_new_tokens=new_tokens - 1,
                              min_new_tokens=new_tokens - 1, do_sample=False, pad_token_id=0, stopping_criteria=criteria)
    return torch.cat([first, out[:, ids.shape[1]:]], 1)


def _begin(clock: StepClock | None) -> None:
    if clock is not None:
        clock.begin()


@torch.no_grad()
def bare_shared(server: BareBackbone, prefix_ids, input_ids, attention_mask, tenant_ids, new_tokens: int, clock=None):
    """The bare backbone: the prefix once for the batch."""
    _begin(clock)
    base = server.base_model
    cache, _ = _prefix_cache(base, prefix_ids, input_ids.shape[0])
    ids, mask, logits = _tail_prefill(base, cache, prefix_ids, input_ids, attention_mask)
    return _decode(base, cache, ids, mask, logits, new_tokens, clock)


@torch.no_grad()
def iapt_shared(server: TenantIAPT, prefix_ids, input_ids, attention_mask, tenant_ids, new_tokens: int, clock=None):
    """IAPT: the prefix once for the whole mixed-tenant batch (bare states); each row's tail with its tenant's prompts."""
    model, rows, p = server.model, input_ids.shape[0], len(prefix_ids)
    if model.config.placement == "prefix":
        raise ValueError("a shared instruction prefix needs slots after it (placement before_last or between)")
    _begin(clock)
    server.tenants.ids = tenant_ids
    base = model.base_model
    cache, states = _prefix_cache(base, prefix_ids, rows, hidden_states=True)
    w = widen(input_ids, attention_mask, attention_mask.bool(), model.config.num_soft_tokens, model.config.placement,
              model.placeholder_id)
    prefix_instr = torch.ones(rows, p, dtype=torch.bool, device=input_ids.device)
    with model.filling_tail(Tail(states, prefix_instr, w.instruction_mask, w.slot_index)):
        ids, mask, logits = _tail_prefill(base, cache, prefix_ids, w.input_ids, w.attention_mask)
    return _decode(base, cache, ids, mask, logits, new_tokens, clock)


@torch.no_grad()
def lora_shared(server: GatheredLoRA, prefix_ids, input_ids, attention_mask, tenant_ids, new_tokens: int, clock=None):
    """Gathered LoRA: the prefix once per distinct tenant of the batch (one batch of those), gathered to the rows."""
    _begin(clock)
    base = server.base_model
    distinct, row_tenant = torch.unique(tenant_ids, return_inverse=True)
    server.use_tenants(distinct)
    cache = base(input_ids=prefix_ids.expand(len(distinct), -1), use_cache=True, logits_to_keep=1).past_key_values
    cache.reorder_cache(row_tenant)                       # each row gets its tenant's prefix
    server.use_tenants(tenant_ids)
    ids, mask, logits = _tail_prefill(base, cache, prefix_ids, input_ids, attention_mask)
    return _decode(base, cache, ids, mask, logits, new_tokens, clock)
