"""Every tuning method behind one registry: `build_method(name, backbone, budget=…)`.

- peft, configured rather than re-implemented: prompt tuning, P-tuning v2 (peft's prefix tuning), LoRA on
  every linear module of each layer (`lora`) or on q, v only (`lora_qv`), AdaLoRA, (IA)³.
- ours, on IAPT's generator and slot-injection code (`IAPTModel` with other settings):
  IDPG (Wu et al., 2022): one prompt generated from the mean of the instruction's input-layer embeddings,
  inserted at the input layer only, fixed activation; LPT (Liu et al., 2022): one generator at layer ⌊2L/3⌋
  that pools that layer's instruction states and inserts its prompt there; the layers below do not see it.
- IAPT itself.

Each method has one *size* knob (LoRA rank, prompt length, bottleneck). Given a target number of tunable
parameters, `size_for_budget` picks the size whose count is closest, counted on a weightless (meta-device)
copy of the backbone; the actual count is always what gets reported.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .config import IAPTConfig
from .errors import unknown
from .model import IAPTModel

METHOD_FILE = "method.json"


class PeftMethod(nn.Module):
    """A peft model with IAPT's calling convention: logits aligned with the caller's input_ids."""
    reads_instruction = False

    def __init__(self, peft_model):
        super().__init__()
        self.peft_model = peft_model

    takes_logit_positions = True

    @property
    def adds_loss_terms(self) -> bool:
        # AdaLoRA adds its orthogonality penalty to the loss its own forward computes: train it through that loss.
        return self.peft_model.peft_config["default"].peft_type.value == "ADALORA"

    def forward(self, input_ids, attention_mask=None, labels=None, logit_positions=None, **kwargs):
        """Logits aligned with the caller's input_ids; with `logit_positions` (1-D, caller positions) only
        there, (B, len, V), and no loss (see iapt.positions)."""
        if logit_positions is not None:
            config = self.peft_model.peft_config["default"]
            shift = config.num_virtual_tokens if config.peft_type.value == "PROMPT_TUNING" else 0
            out = self.peft_model(input_ids=input_ids, attention_mask=attention_mask,
                                  logits_to_keep=logit_positions + shift, **kwargs)
            out.loss = None
            return out
        out = self.peft_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)
        # prompt tuning returns rows for its virtual tokens first; the caller's positions are the last T
        out.logits = out.logits[:, -input_ids.shape[1]:]
        return out

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, max_new_tokens: int = 20, use_cache: bool = True, **kwargs):
        if not self.peft_model.peft_config["default"].is_prompt_learning:
            return self.peft_model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                            max_new_tokens=max_new_tokens, use_cache=use_cache, **kwargs)
        # peft 0.21's generate for prompt/prefix tuning does not reproduce its own forward pass on
        # transformers 5 (tests/test_methods.py shows it), and its forward ignores position ids, so left-padded
        # rows would shift. We decode greedily ourselves, at the positions training used (virtual tokens first).
        if kwargs.get("num_beams", 1) > 1:
            raise ValueError("beam search is not supported for prompt and prefix tuning here (greedy only)")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if use_cache:
            return self._greedy_cached(input_ids, attention_mask, max_new_tokens)
        return self._greedy_full_forward(input_ids, attention_mask, max_new_tokens, kwargs.get("pad_token_id") or 0)

    def _greedy_cached(self, input_ids, attention_mask, max_new_tokens: int):
        """The virtual tokens (input embeddings or a key/value prefix), then the backbone's own cached decoding."""
        config = self.peft_model.peft_config["default"]
        base = self.peft_model.get_base_model()
        rows, n_virtual, caller_ids = len(input_ids), config.num_virtual_tokens, input_ids
        mask = attention_mask.long()
        if not mask[:, -1].all():      # right padding: move every row's tokens to the end
            order = torch.sort(mask, dim=1, stable=True).indices
            input_ids, mask = input_ids.gather(1, order), mask.gather(1, order)
        mask = torch.cat([torch.ones(rows, n_virtual, dtype=mask.dtype, device=mask.device), mask], 1)
        positions = n_virtual + (mask[:, n_virtual:].cumsum(1) - 1).clamp(min=0)
        if config.peft_type.value == "PREFIX_TUNING":
            out = base(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                       past_key_values=self.peft_model.get_prompt(rows), use_cache=True, logits_to_keep=1)
        else:
            embeds = base.get_input_embeddings()(input_ids)
            prompts = self.peft_model.get_prompt(batch_size=rows).to(embeds.dtype)
            virtual_positions = torch.arange(n_virtual, device=positions.device).expand(rows, -1)
            out = base(inputs_embeds=torch.cat([prompts, embeds], 1), attention_mask=mask,
                       position_ids=torch.cat([virtual_positions, positions], 1), use_cache=True, logits_to_keep=1)
        new, position = [], positions[:, -1:]
        for step in range(max_new_tokens):
            new.append(out.logits[:, -1].argmax(-1, keepdim=True))
            if step == max_new_tokens - 1:
                break
            mask, position = torch.cat([mask, torch.ones_like(new[-1])], 1), position + 1
            out = base(input_ids=new[-1], attention_mask=mask, position_ids=position, past_key_values=out.past_key_values,
                       use_cache=True)
        return torch.cat([caller_ids, *new], 1)

    def _greedy_full_forward(self, input_ids, attention_mask, max_new_tokens: int, pad: int):
        """Reference decoding without a cache: full forward passes over a right-padded buffer (each row's real
        tokens at positions 0..n-1; causal attention never sees the padding after them)."""
        mask = attention_mask.bool()
        lengths = mask.sum(1)
        rows = torch.arange(len(input_ids), device=input_ids.device)
        buf = torch.full((len(input_ids), int(lengths.max()) + max_new_tokens), pad, dtype=input_ids.dtype,
                         device=input_ids.device)
        for i, (ids, m) in enumerate(zip(input_ids, mask)):
            buf[i, :int(lengths[i])] = ids[m]
        positions = torch.arange(buf.shape[1], device=buf.device)
        for _ in range(max_new_tokens):
            width = int(lengths.max())
            logits = self(input_ids=buf[:, :width], attention_mask=(positions[:width] < lengths[:, None]).long()).logits
            buf[rows, lengths] = logits[rows, lengths - 1].argmax(-1)
            lengths = lengths + 1
        new = torch.stack([buf[i, int(n) - max_new_tokens:int(n)] for i, n in enumerate(lengths)])
        return torch.cat([input_ids, new], dim=1)

    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        return self.peft_model.get_nb_trainable_parameters()

    def save_pretrained(self, path) -> None:
        self.peft_model.save_pretrained(str(path))

    def update_and_allocate(self, step: int) -> None:
        """AdaLoRA's rank allocation (a no-op for the other peft methods)."""
        if hasattr(self.peft_model.base_model, "update_and_allocate"):
            self.peft_model.base_model.update_and_allocate(step)


@dataclass
class Method:
    name: str
    description: str
    size_name: str
    default_size: int | None
    max_size: int | None = None          # a cap where the budget-matched size would be impractical
    defaults: dict = field(default_factory=dict)


METHODS = {m.name: m for m in [
    Method("iapt", "IAPT: per-layer instruction-aware soft prompts (this paper)", "bottleneck_dim", 16),
    Method("lora", "LoRA on q, k, v, o, gate, up, down of every layer (peft)", "r", 2),
    Method("lora_qv", "LoRA on q, v of every layer (peft)", "r", 4),
    Method("prompt_tuning", "prompt tuning: soft tokens at the input (peft)", "num_virtual_tokens", 16, max_size=100),
    Method("prefix_tuning", "P-tuning v2: learned keys/values in every layer (peft prefix tuning)",
           "num_virtual_tokens", 16, max_size=100),
    Method("adalora", "AdaLoRA: LoRA with budgeted rank allocation (peft), all linear modules", "init_r", 3),
    Method("ia3", "(IA)³: learned rescaling of k, v and the MLP input (peft); size fixed by the model", "", None),
    # IDPG's and LPT's generators start non-zero, as in their papers: a zero prompt inserted at one layer stays
    # exactly zero through every layer above it (nothing overwrites it there), and on SmolLM2 the backward of
    # that degenerate state is NaN. IAPT is unaffected: every layer overwrites its slots.
    Method("idpg", "IDPG: one input-layer prompt generated from the mean instruction embedding", "bottleneck_dim", 64,
           defaults=dict(layers="input", pooler="mean", read="raw", activation="gelu", placement="prefix",
                         up_init_std=0.02)),
    Method("lpt", "LPT: one prompt generated and inserted at layer floor(2L/3) from that layer's states",
           "bottleneck_dim", 64, defaults=dict(layers="two_thirds", pooler="mean", activation="gelu", placement="prefix",
                                                up_init_std=0.02)),
]}
PEFT_METHODS = ("lora", "lora_qv", "prompt_tuning", "prefix_tuning", "adalora", "ia3")
LORA_ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def check_method(name: str) -> Method:
    if name not in METHODS:
        raise unknown("method", name, list(METHODS))
    return METHODS[name]


def _num_layers(backbone) -> int:
    return backbone.config.get_text_config().num_hidden_layers


def iapt_family_config(name: str, backbone, size: int, options: dict) -> IAPTConfig:
    """The IAPTConfig of iapt / idpg / lpt at bottleneck `size`; `options` override the method's defaults."""
    opts = {**METHODS[name].defaults, **options}
    L = _num_layers(backbone)
    layers = opts.pop("layers", None)
    if layers == "input":
        layers = [0]
    elif layers == "two_thirds":
        layers = [2 * L // 3]
    elif layers == "all_shared":   # IDPG's option: every layer, one shared generator
        layers, opts["share"] = None, "all"
    act = opts.get("activation")
    if isinstance(act, str) and ">" in act:   # "relu>gelu": the lower half of the layers relu, the upper gelu
        lower, upper = act.split(">")
        opts["activation"] = [lower if i < L // 2 else upper for i in range(L)]
    return IAPTConfig(bottleneck_dim=size, layers=layers, **opts)


def peft_config(name: str, backbone, size: int, total_steps: int | None, options: dict):
    import peft
    task = peft.TaskType.CAUSAL_LM
    if name in ("lora", "lora_qv"):
        targets = LORA_ALL if name == "lora" else ["q_proj", "v_proj"]
        return peft.LoraConfig(r=size, lora_alpha=2 * size, target_modules=targets, lora_dropout=0.0, task_type=task,
                               **options)
    if name == "prompt_tuning":
        return peft.PromptTuningConfig(num_virtual_tokens=size, task_type=task, **options)
    if name == "prefix_tuning":
        return peft.PrefixTuningConfig(num_virtual_tokens=size, task_type=task, **options)
    if name == "ia3":
        return peft.IA3Config(task_type=task, **options)
    if name == "adalora":
        # AdaLoRA prunes from init_r towards target_r between tinit and total - tfinal, every deltaT steps.
        total = total_steps or 1000
        return peft.AdaLoraConfig(init_r=size, target_r=max(1, round(2 * size / 3)), target_modules=LORA_ALL,
                                  total_step=total, tinit=max(1, total // 10), tfinal=max(1, total // 5),
                                  deltaT=max(1, total // 50), lora_alpha=2 * size, task_type=task, **options)
    raise unknown("peft method", name, list(PEFT_METHODS))


def build_sized(name: str, backbone, size: int | None, total_steps: int | None = None, **options) -> nn.Module:
    """Attach method `name` at an explicit size to `backbone` (frozen; peft methods modify it in place)."""
    spec = check_method(name)
    size = spec.default_size if size is None else size
    if name in PEFT_METHODS:
        import peft
        model = PeftMethod(peft.get_peft_model(backbone, peft_config(name, backbone, size, total_steps, options)))
    else:
        model = IAPTModel(backbone, iapt_family_config(name, backbone, size, options))
    model.method_name, model.method_size, model.method_options = name, size, dict(options)
    model.counted_parameters = model.get_nb_trainable_parameters()   # before any freezing (e.g. Θ frozen)
    return model


def count_trainable(name: str, backbone, size: int | None, **options) -> int:
    """Tunable parameters of `name` at `size`, counted on a weightless copy of the backbone."""
    with torch.device("meta"):
        skeleton = type(backbone)(copy.deepcopy(backbone.config))
    return build_sized(name, skeleton, size, **options).get_nb_trainable_parameters()[0]


def size_for_budget(name: str, backbone, budget: int, **options) -> int:
    """The size whose tunable-parameter count is closest to `budget` (counts are affine in the size)."""
    spec = check_method(name)
    if spec.default_size is None:
        return None
    c1, c2 = (count_trainable(name, backbone, s, **options) for s in (1, 2))
    guess = max(1, round((budget - c1) / (c2 - c1)) + 1)
    if spec.max_size:
        guess = min(guess, spec.max_size)
    return guess


def build_method(name: str, backbone, budget: int | None = None, size: int | None = None,
                 total_steps: int | None = None, **options) -> nn.Module:
    """Attach `name` to `backbone`, sized to `budget` tunable parameters (or at `size`, or its default)."""
    check_method(name)
    if budget is not None and size is None:
        size = size_for_budget(name, backbone, budget, **options)
    return build_sized(name, backbone, size, total_steps, **options)


def describe(model) -> dict:
    trainable, total = getattr(model, "counted_parameters", None) or model.get_nb_trainable_parameters()
    return {"method": model.method_name, "size_name": METHODS[model.method_name].size_name,
            "size": model.method_size, "options": model.method_options, "trainable_params": trainable,
            "total_params": total}


# --- persistence: the method's own format plus method.json --------------------------------------
def save_method(model, path, **extra) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    (path / METHOD_FILE).write_text(json.dumps({**describe(model), **extra}, indent=1) + "\n")


def load_method(backbone, path) -> nn.Module:
    """Rebuild a saved adapter of any method on `backbone` (the one it was trained on)."""
    path = Path(path)
    if not (path / METHOD_FILE).exists():
        raise FileNotFoundError(f"{path} is not a saved adapter ({METHOD_FILE} missing)")
    info = json.loads((path / METHOD_FILE).read_text())
    name = info["method"]
    if name in PEFT_METHODS:
        import peft
        model = PeftMethod(peft.PeftModel.from_pretrained(backbone, str(path)))
    else:
        model = IAPTModel.from_pretrained(backbone, path)
    model.method_name, model.method_size, model.method_options = name, info["size"], info["options"]
    model.counted_parameters = (info["trainable_params"], info["total_params"])   # as trained
    for p in model.parameters():   # loaded for use, not for further training
        p.requires_grad_(False)
    model.eval()
    return model
