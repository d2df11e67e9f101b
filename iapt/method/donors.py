"""The shuffled-instruction control's donors (`IAPTConfig.generator_input="shuffled"`).

The control asks whether IAPT's prompts use *what the instruction says*: each row's generators read another
example's instruction instead of its own. The donor is drawn from the training data, never from the batch, so
no row can read itself whatever the batch holds (a batch of one, the candidate rows of one example, beam copies):
it is the training example picked by a hash of the row's own instruction tokens, skipping any with the same
tokens. The generators read the donor's hidden states on the bare backbone (no prompts), computed in one
no-grad pass per batch: the simplest honest choice, since the donor's states under the row's own prompts would
mix the two instructions. The slot's base value (`slot_init="mean"`) stays the row's own.

The pool is the training features' instructions (`use_training_data`), saved with the adapter (donors.json), so
a reloaded control reads the same donors.
"""
from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..backbones import position_ids

DONORS_NAME = "donors.json"


@dataclass
class DonorStates:
    """Per batch row: its donor's layer-input states on the bare backbone and the donor's token mask."""
    states: tuple          # per layer (B, n, d)
    mask: torch.Tensor     # B, n

    def for_rows(self, rows: int) -> "DonorStates":
        """Beam search repeats each row consecutively (as iapt.method.model.Widened.for_rows)."""
        n = rows // self.mask.shape[0]
        if n == 1:
            return self
        return DonorStates(tuple(s.repeat_interleave(n, dim=0) for s in self.states), self.mask.repeat_interleave(n, 0))


class DonorPool:
    """The distinct instructions of the training data, in order."""

    def __init__(self, instructions: list[list[int]]):
        self.instructions = list(dict.fromkeys(tuple(int(t) for t in ids) for ids in instructions if len(ids)))
        if len(self.instructions) < 2:
            raise ValueError("the shuffled-instruction control needs at least two distinct training instructions")

    @classmethod
    def from_features(cls, features: list[dict]) -> "DonorPool":
        """Each training feature's instruction: its tokens before the first labelled one."""
        def instruction(f):
            first = next((j for j, label in enumerate(f["labels"]) if label != -100), len(f["labels"]))
            return list(f["input_ids"][:first])
        return cls([instruction(f) for f in features])

    def pick(self, own: list[int]) -> tuple[int, ...]:
        """The donor of a row whose instruction is `own`: fixed by its tokens, never equal to them."""
        own = tuple(int(t) for t in own)
        i = zlib.crc32(json.dumps(own).encode()) % len(self.instructions)
        return self.instructions[i] if self.instructions[i] != own else self.instructions[(i + 1) % len(self.instructions)]

    @torch.no_grad()
    def states(self, backbone, input_ids: torch.Tensor, instruction_mask: torch.Tensor) -> DonorStates:
        """The donors of a batch (its rows' instructions: `input_ids` at `instruction_mask`), on the bare backbone."""
        donors = [self.pick(row[mask].tolist()) for row, mask in zip(input_ids, instruction_mask.bool())]
        n, dev = max(map(len, donors)), input_ids.device
        ids = torch.zeros((len(donors), n), dtype=input_ids.dtype, device=dev)
        mask = torch.zeros((len(donors), n), dtype=torch.long, device=dev)
        for r, d in enumerate(donors):
            ids[r, :len(d)], mask[r, :len(d)] = torch.tensor(d, dtype=input_ids.dtype), 1
        out = backbone(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False,
                       output_hidden_states=True, logits_to_keep=1)
        return DonorStates(out.hidden_states[:-1], mask.bool())   # hidden_states[i]: layer i's input

    def save(self, folder: Path) -> None:
        (Path(folder) / DONORS_NAME).write_text(json.dumps([list(d) for d in self.instructions]) + "\n")

    @classmethod
    def load(cls, folder: Path) -> "DonorPool | None":
        path = Path(folder) / DONORS_NAME
        return cls(json.loads(path.read_text())) if path.exists() else None
