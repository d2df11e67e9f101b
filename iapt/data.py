"""Tokenisation in the pinned format and padding into batches.

A (prompt, continuation) pair becomes input_ids, labels (-100 on the prompt) and instruction_mask (True on the
prompt). Continuation tokens are split off the tokenised whole exactly as lm-evaluation-harness does, so both
evaluators score the same tokens. Too-long inputs lose the end of their passage field, never the question or
the response.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .tasks import Example, Task

DEFAULT_MAX_LENGTH = 512


def encode_pair(tokenizer, prompt: str, continuation: str) -> tuple[list[int], list[int]]:
    # The tokenizer's own special tokens: none for SmolLM2, a BOS for Gemma (which it needs), as lm-eval does.
    whole = tokenizer(prompt + continuation).input_ids
    context = tokenizer(prompt).input_ids
    return context, whole[len(context):]


def fit_prompt(tokenizer, task: Task, ex: Example, longest_continuation: str, max_length: int) -> tuple[str, int]:
    """The prompt, with the passage cut so that prompt + continuation fit; returns (prompt, tokens cut)."""
    context, cont = encode_pair(tokenizer, task.prompt(ex), longest_continuation)
    excess = len(context) + len(cont) - max_length
    if excess <= 0 or task.passage_field is None:
        return task.prompt(ex), 0
    passage = tokenizer(ex.fields[task.passage_field], add_special_tokens=False).input_ids
    keep = max(len(passage) - excess - 2, 0)  # 2 spare: re-tokenising the cut text can merge differently
    cut = replace(ex, fields={**ex.fields, task.passage_field: tokenizer.decode(passage[:keep])})
    return task.prompt(cut), len(passage) - keep


def encode(tokenizer, prompt: str, continuation: str) -> dict:
    context, cont = encode_pair(tokenizer, prompt, continuation)
    return {"input_ids": context + cont, "labels": [-100] * len(context) + cont,
            "instruction_mask": [True] * len(context) + [False] * len(cont)}


def collate(features: list[dict], pad_id: int, side: str = "right") -> dict[str, torch.Tensor]:
    """Pad a list of encoded features; labels -100 and instruction_mask False on padding."""
    width = max(len(f["input_ids"]) for f in features)
    pads = {"input_ids": pad_id, "labels": -100, "instruction_mask": False, "attention_mask": 0}
    batch = {k: [] for k in pads}
    for f in features:
        f = {**f, "attention_mask": [1] * len(f["input_ids"])}
        n = width - len(f["input_ids"])
        for k, v in pads.items():
            row = list(f.get(k, [v] * len(f["input_ids"])))
            batch[k].append(row + [v] * n if side == "right" else [v] * n + row)
    out = {k: torch.tensor(v) for k, v in batch.items()}
    out["instruction_mask"] = out["instruction_mask"].bool()
    return out
