"""Tokenisation in the pinned format and padding into batches.

A (prompt, continuation) pair becomes input_ids and labels (-100 on the prompt); `collate` pads features into a
`Batch`, which decides once which tokens are instruction: the attended tokens that carry no label (the whole
prompt when nothing is labelled, as in generation). Continuation tokens are split off the tokenised whole exactly as lm-evaluation-harness does, so both
evaluators score the same tokens. Too-long inputs lose the end of their passage field, never the question or
the response.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

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
    return {"input_ids": context + cont, "labels": [-100] * len(context) + cont}


def instruction_tokens(attention_mask: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The one rule for which tokens are instruction: attended, and not a labelled continuation token."""
    instruction = attention_mask.bool()
    return instruction if labels is None else instruction & (labels == -100)


@dataclass
class Batch:
    """A padded batch. Built by `collate`; `instruction_mask` follows `instruction_tokens`."""
    input_ids: torch.Tensor         # B, T
    attention_mask: torch.Tensor    # B, T   1 on real tokens
    instruction_mask: torch.Tensor  # B, T   bool
    labels: torch.Tensor            # B, T   -100 on the prompt and on padding

    def __getitem__(self, name: str) -> torch.Tensor:
        return getattr(self, name)

    def model_inputs(self, device) -> dict:
        """What every tuned model's forward and generate take (iapt.contract)."""
        return {"input_ids": self.input_ids.to(device), "attention_mask": self.attention_mask.to(device),
                "instruction_mask": self.instruction_mask.to(device)}


class InstructionCollator:
    """A data collator for `transformers.Trainer` (or any DataLoader): examples {"prompt": …, "response": …}
    become input_ids, attention_mask, instruction_mask (the prompt's tokens) and labels (the response's tokens;
    -100 elsewhere), right-padded. The strings are joined as given, in the pinned format (the response carries
    its leading space, e.g. " positive"). Too long: the prompt loses its first tokens, the response is kept (cut
    at its end only if it alone exceeds `max_length`)."""

    def __init__(self, tokenizer, max_length: int = DEFAULT_MAX_LENGTH, prompt_key: str = "prompt",
                 response_key: str = "response"):
        self.tokenizer, self.max_length, self.keys = tokenizer, max_length, (prompt_key, response_key)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def encode(self, example: dict) -> dict:
        try:
            prompt, response = (example[k] for k in self.keys)
        except KeyError:
            raise KeyError(f"InstructionCollator expects examples with keys {self.keys}; this one has "
                           f"{sorted(example)}") from None
        context, cont = encode_pair(self.tokenizer, prompt, response)
        cont = cont[:self.max_length - 1]
        context = context[max(len(context) + len(cont) - self.max_length, 0):]
        return {"input_ids": context + cont, "labels": [-100] * len(context) + cont}

    def __call__(self, examples: list[dict]) -> dict:
        batch = collate([self.encode(ex) for ex in examples], self.pad_id)
        return {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask,
                "instruction_mask": batch.instruction_mask, "labels": batch.labels}


def collate(features: list[dict], pad_id: int, side: str = "right") -> Batch:
    """Pad encoded features (input_ids, optional labels) into a Batch; labels -100 on padding."""
    width = max(len(f["input_ids"]) for f in features)
    pads = {"input_ids": pad_id, "labels": -100, "attention_mask": 0}
    rows = {k: [] for k in pads}
    for f in features:
        f = {**f, "attention_mask": [1] * len(f["input_ids"])}
        n = width - len(f["input_ids"])
        for k, v in pads.items():
            row = list(f.get(k, [v] * len(f["input_ids"])))
            rows[k].append(row + [v] * n if side == "right" else [v] * n + row)
    tensors = {k: torch.tensor(v) for k, v in rows.items()}
    labelled = any("labels" in f for f in features)
    mask = instruction_tokens(tensors["attention_mask"], tensors["labels"] if labelled else None)
    return Batch(tensors["input_ids"], tensors["attention_mask"], mask, tensors["labels"])
