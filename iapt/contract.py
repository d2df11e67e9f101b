"""The contract between a tuned model and the code that trains, scores and serves it.

Every method — IAPT and its relatives (iapt.method), the peft baselines and the bare backbone (iapt.baselines) —
is a `TunedModel`. The training loop (iapt.training), the evaluator (iapt.evaluation) and the servers
(iapt.serving) use only what is written here: no capability flags, no attribute probes, no parameter names.

- `forward(input_ids, attention_mask, instruction_mask, labels=None, logit_positions=None)`: logits aligned with
  the caller's positions (all of them, or only `logit_positions`); with `labels`, also the training loss, the
  next-token cross-entropy over labelled tokens (`training_loss`). `instruction_mask` marks the tokens the
  model may condition on as instruction (iapt.data.format.Batch decides it, once); methods that do not read it
  ignore it.
- `generate(input_ids, attention_mask, instruction_mask, **generate_kwargs)`: the caller's ids + new tokens.
- `parameter_groups()`: the tunable weights Ω and, for learned activations, the architecture parameters Θ.
- `use_training_data(features)`: the training split's features, once before training (the shuffled-instruction
  control draws its donor instructions from them); most methods ignore it.
- `after_step(step)`: called after every optimiser step of Ω, with this step's gradients still in place
  (AdaLoRA's rank allocation lives there).
- `extra_state()` / `load_extra_state(state)`: state beyond the tunable weights that a resumed run needs.
- `describe()`: what the records say about the method: name, size knob, options, parameter counts, and
  `rationals()` (the learned activations) where there are any.
- `frozen_backbone()`: the Hugging Face model underneath (a saved adapter records its identity).
- `save_pretrained(path)` / `from_pretrained(backbone, path)` (see iapt.baselines.registry for the
  method-independent `save_method` / `load_method`).
- Under `transformers.Trainer`, `forward` also takes `num_items_in_batch` (the labelled tokens of the whole
  accumulated batch): the loss is then their sum over that count, so gradient accumulation gives the same update
  as one large batch (`accepts_loss_kwargs` tells Trainer not to divide it again).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from .evaluation.positions import label_positions, loss_at


@dataclass
class MethodIdentity:
    """What a tuned model is, as the records name it."""
    method: str
    size_name: str = ""
    size: int | None = None
    options: dict = field(default_factory=dict)
    trainable_params: int = 0   # counted when the method is built (before any freezing, e.g. a frozen Θ)
    total_params: int = 0


@dataclass
class ParameterGroups:
    """Ω, the weights trained on the training loss, and Θ, the architecture parameters (IAPT's rational
    coefficients) that the loop trains by its `theta` mode: alternating on a held-out batch, jointly, or frozen."""
    weights: list[nn.Parameter]
    theta: list[nn.Parameter] = field(default_factory=list)


class TunedModel(nn.Module):
    """A frozen backbone plus a method's tunable parameters; see the module docstring for the contract."""
    accepts_loss_kwargs = True   # transformers.Trainer: forward normalises by num_items_in_batch itself

    def __init__(self, identity: MethodIdentity):
        super().__init__()
        self.identity = identity

    # --- forward ---------------------------------------------------------------------------------
    def logits(self, input_ids, attention_mask, instruction_mask, positions=None) -> torch.Tensor:
        """(B, T, V), or (B, len(positions), V) at the given caller positions (1-D, ascending)."""
        raise NotImplementedError

    def training_loss(self, input_ids, attention_mask, instruction_mask, labels,
                      num_items_in_batch=None) -> CausalLMOutputWithPast:
        """Next-token cross-entropy over the labelled tokens (their mean, or their sum over `num_items_in_batch`);
        the head runs only where a label is predicted."""
        positions = label_positions(labels)
        logits = self.logits(input_ids, attention_mask, instruction_mask, positions)
        return CausalLMOutputWithPast(loss=loss_at(logits, labels, positions, num_items_in_batch), logits=logits)

    def forward(self, input_ids, attention_mask=None, instruction_mask=None, labels=None, logit_positions=None,
                num_items_in_batch=None):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if labels is not None:
            return self.training_loss(input_ids, attention_mask, instruction_mask, labels, num_items_in_batch)
        return CausalLMOutputWithPast(logits=self.logits(input_ids, attention_mask, instruction_mask, logit_positions))

    def generate(self, input_ids, attention_mask=None, instruction_mask=None, **generate_kwargs) -> torch.Tensor:
        raise NotImplementedError

    def frozen_backbone(self) -> nn.Module:
        raise NotImplementedError

    # --- training --------------------------------------------------------------------------------
    def parameter_groups(self) -> ParameterGroups:
        return ParameterGroups(weights=[p for p in self.parameters() if p.requires_grad])

    def use_training_data(self, features: list[dict]) -> None:
        """The training features (input_ids, labels), once before training; nothing by default."""

    def after_step(self, step: int) -> None:
        """Called after each optimiser step of Ω, before its gradients are cleared."""

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        """Restore what `extra_state` returned."""

    # --- records ---------------------------------------------------------------------------------
    def rationals(self) -> dict[str, nn.Module]:
        """Learned rational activations by layer (IAPT's Θ); none for the other methods."""
        return {}

    def describe(self) -> dict:
        return asdict(self.identity)

    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return trainable, sum(p.numel() for p in self.parameters())

    def print_trainable_parameters(self) -> None:
        t, n = self.get_nb_trainable_parameters()
        print(f"trainable params: {t:,d} || all params: {n:,d} || trainable%: {100 * t / n:.4f}")

    def save_pretrained(self, path) -> None:
        raise NotImplementedError
