"""IAPTModel: a frozen causal LM whose every decoder layer sees k instance-specific soft tokens.

The caller's sequence is widened by k reserved *slot* positions (before the instruction for `prefix`,
between instruction and response for `between`). A forward pre-hook on each decoder layer overwrites the
slots' hidden states with that layer's generated prompt, so the slots' keys and values are the prompt.
The generators read only instruction positions and run only when the full widened sequence passes
(training, evaluation, generation prefill); decoding steps with the KV cache cost what the backbone costs.
When the first generator sits above layer 0 (LPT, or an IAPT restricted to upper layers), the layers below
it do not see the slots at all: their attention mask hides the slot columns, so nothing below changes.
"""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_model, save_model
from torch import nn
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..backbones import check_backbone, position_ids, record_backbone, saved_backbone
from ..errors import UserError
from ..contract import MethodIdentity, ParameterGroups, TunedModel
from ..evaluation.positions import label_positions, loss_at
from ..data.format import instruction_tokens
from .config import IAPTConfig
from .donors import DonorPool
from .generator import build_generators, masked_mean, rationals, theta_ids
from .prefix import Tail, cut, run_prefix, tail_logit_index
from .rational import Rational

CONFIG_NAME, WEIGHTS_NAME = "iapt_config.json", "iapt_model.safetensors"


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder-layer list of a Hugging Face causal LM (LLaMA, Qwen2, Gemma-3, ...)."""
    n = model.config.get_text_config().num_hidden_layers
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n and hasattr(module[0], "input_layernorm"):
            return module
    raise ValueError(f"cannot find {n} decoder layers with an `input_layernorm` in {type(model).__name__}")


@dataclass
class Widened:
    """The caller's batch with k slot positions inserted per row."""
    input_ids: torch.Tensor         # B, T+k (slots hold a placeholder id; their states are overwritten)
    attention_mask: torch.Tensor    # B, T+k (slots attended)
    position_ids: torch.Tensor      # B, T+k (slots take real positions)
    instruction_mask: torch.Tensor  # B, T+k (slots excluded)
    slot_index: torch.Tensor        # B, k
    logit_index: torch.Tensor       # B, T   widened position whose logit the caller's position j receives
    donor: object = None            # the shuffled control's DonorStates (iapt.method.donors), else None

    def for_rows(self, rows: int) -> "Widened":
        """Beam search runs each row `rows / B` times, consecutively (repeat_interleave): follow suit."""
        B = self.input_ids.shape[0]
        if rows == B:
            return self
        if rows % B:
            raise ValueError(f"a batch of {rows} rows cannot come from {B} prompts")
        n = rows // B
        return Widened(*(t.repeat_interleave(n, dim=0) for t in (self.input_ids, self.attention_mask, self.position_ids,
                                                                 self.instruction_mask, self.slot_index, self.logit_index)),
                       donor=self.donor.for_rows(rows) if self.donor is not None else None)


def widen(input_ids, attention_mask, instruction_mask, k: int, placement: str, placeholder_id: int = 0) -> Widened:
    B, T = input_ids.shape
    dev = input_ids.device
    ar = torch.arange(T, device=dev)[None]                            # 1, T
    instr = instruction_mask.bool() & attention_mask.bool()
    fallback = attention_mask.float().argmax(1)                       # rows without instruction: first token
    last = (instr.long() * (ar + 1)).amax(1) - 1                      # index of the last instruction token
    if placement == "prefix":        # slots just before the first instruction token (after any left padding)
        insert = torch.where(instr.any(1), instr.float().argmax(1), fallback)
    elif placement == "between":     # slots just after the last instruction token
        insert = torch.where(instr.any(1), last + 1, fallback)
    else:                            # before_last: slots just before the last instruction token
        insert = torch.where(instr.any(1), last, fallback)
    dest = ar + k * (ar >= insert[:, None]).long()                    # B, T
    ids = torch.full((B, T + k), placeholder_id, dtype=input_ids.dtype, device=dev).scatter(1, dest, input_ids)
    mask = torch.ones((B, T + k), dtype=attention_mask.dtype, device=dev).scatter(1, dest, attention_mask)
    wide_instr = torch.zeros((B, T + k), dtype=torch.bool, device=dev).scatter(1, dest, instr)
    pos = position_ids(mask)
    slot_index = insert[:, None] + torch.arange(k, device=dev)[None]
    # The logit that predicts the token after the last instruction token is the last slot's (between);
    # every other caller position keeps its own widened position.
    shift_from = insert - (1 if placement == "between" else 0)
    logit_index = ar + k * (ar >= shift_from[:, None]).long()
    return Widened(ids, mask, pos, wide_instr, slot_index, logit_index)


class IAPTModel(TunedModel):
    """IAPT (and IDPG, LPT: the same machinery with other defaults) on a frozen causal LM (iapt.contract)."""

    def __init__(self, base_model: nn.Module, config: IAPTConfig, identity: MethodIdentity | None = None):
        super().__init__(identity or MethodIdentity("iapt", "bottleneck_dim", config.bottleneck_dim))
        text_cfg = base_model.config.get_text_config()
        config.base_model_type = config.base_model_type or text_cfg.model_type
        config.base_num_layers = config.base_num_layers or text_cfg.num_hidden_layers
        config.base_hidden_size = config.base_hidden_size or text_cfg.hidden_size
        self.config = config
        self.base_model = base_model
        for p in self.base_model.parameters():
            p.requires_grad_(False)
        self.layers = decoder_layers(base_model)
        # on the backbone's device: from_pretrained(base_on_gpu, ...) must not leave the generators on the CPU
        device = next(base_model.parameters()).device
        self.generators = build_generators(config, len(self.layers), text_cfg.hidden_size).to(device)
        self.placeholder_id = text_cfg.pad_token_id if text_cfg.pad_token_id is not None else 0
        self._widened: Widened | None = None   # the batch being run, set only inside `_injecting`
        self._tail: Tail | None = None         # the tail pass's cached prefix, set only inside `filling_tail`
        self.prefix_passes = 0                 # training steps that ran the instruction prefix without autograd
        self.donors: DonorPool | None = None   # the shuffled control's donor instructions (use_training_data)
        first = min(int(i) for i in self.generators)
        for i, layer in enumerate(self.layers):
            if str(i) in self.generators:
                layer.register_forward_pre_hook(functools.partial(self._inject_slots, i), with_kwargs=True)
            elif i < first:
                layer.register_forward_pre_hook(functools.partial(self._hide_slots, i), with_kwargs=True)
        self.identity.trainable_params, self.identity.total_params = self.get_nb_trainable_parameters()

    # --- injection -------------------------------------------------------------------------------
    def _inject_slots(self, i: int, layer, args, kwargs):
        """Forward pre-hook of a layer with a generator: write its prompt into the slots. Registered as a
        partial of this bound method (not a closure), so that a deep copy of the model hooks the copy."""
        generator = self.generators[str(i)]   # looked up per call: serving swaps in stacked generators
        hidden = args[0] if args else kwargs["hidden_states"]
        if self._tail is not None:
            hidden = self._tail_slots(i, layer, generator, hidden)
            return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})
        w = self._widened
        if w is None:
            return None
        w = w.for_rows(hidden.shape[0])
        extra = hidden.shape[1] - w.input_ids.shape[1]
        if extra < 0:
            return None  # a cached decoding step: the slots' keys and values are in the cache already
        # A pass over the whole prompt (extra > 0: generation without cache re-reads generated tokens,
        # which are never instruction).
        instruction = F.pad(w.instruction_mask, (0, extra), value=False)
        prompt = self._prompt(i, layer, generator, hidden, instruction, w.donor)      # B, k, d
        index = w.slot_index[..., None].expand(-1, -1, hidden.shape[-1])
        hidden = hidden.scatter(1, index, prompt.to(hidden.dtype))
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    def _prompt(self, i: int, layer, generator, hidden, instruction, donor=None) -> torch.Tensor:
        """Layer i's k soft tokens from its input states `hidden` (B, n, d) at the `instruction` positions (the
        shuffled control: from its `donor`'s states instead, iapt.method.donors)."""
        def reading(states):
            return layer.input_layernorm(states) if self.config.read == "norm" else states
        weight = next(generator.parameters())
        source, source_mask = reading(hidden), instruction
        if self.config.generator_input == "shuffled":     # control: another example's instruction
            source, source_mask = reading(donor.states[i].to(hidden.dtype)), donor.mask
        elif self.config.generator_input == "constant":   # control: no instruction at all
            source = torch.ones_like(source)
        prompt = generator(source.to(weight.dtype), source_mask)
        if self.config.slot_init == "mean":
            prompt = prompt + masked_mean(hidden, instruction)[:, None].to(prompt.dtype)
        return prompt

    def _tail_slots(self, i: int, layer, generator, hidden) -> torch.Tensor:
        """Tail pass (iapt.method.prefix): the generator reads the cached prefix states and the tail's (the live
        last instruction token under before_last among them); its prompt fills the slots."""
        t = self._tail
        states, mask = torch.cat([t.states[i], hidden], 1), torch.cat([t.prefix_instr, t.tail_instr], 1)
        prompt = self._prompt(i, layer, generator, states, mask, t.donor)
        index = t.slot_index[..., None].expand(-1, -1, hidden.shape[-1])
        return hidden.scatter(1, index, prompt.to(hidden.dtype))

    def _hide_slots(self, i: int, layer, args, kwargs):
        """Below the first generator the slots hold no prompt yet: mask their columns (each slot still sees itself)."""
        w = self._widened
        if w is None:
            return None
        if "flash" in str(getattr(self.base_model.config, "_attn_implementation", "")):
            raise ValueError("generators above layer 0 need an explicit attention mask; load the backbone with "
                             "attn_implementation='sdpa' or 'eager', not flash attention")
        hidden = args[0] if args else kwargs["hidden_states"]
        w = w.for_rows(hidden.shape[0])
        mask = kwargs.get("attention_mask")
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        q, dev = hidden.shape[1], hidden.device
        total = q + (cache.get_seq_length(i) if cache is not None else 0)   # tokens so far, this step's included
        kv = mask.shape[-1] if mask is not None else total   # a sliding-window layer sees only the last kv
        cols = torch.arange(total - kv, total, device=dev)   # absolute index of each key column
        query_at = torch.arange(total - q, total, device=dev)
        slot_col = (cols[None, :, None] == w.slot_index[:, None, :]).any(-1)             # B, kv
        hide = slot_col[:, None, None, :] & (query_at[None, None, :, None] != cols)     # B, 1, q, kv
        if mask is None:    # sdpa's implicit causal mask
            mask = (cols[None, :] <= query_at[:, None])[None, None] & ~hide
        elif mask.dtype == torch.bool:
            mask = mask & ~hide
        else:
            mask = mask.masked_fill(hide, torch.finfo(mask.dtype).min)
        return args, {**kwargs, "attention_mask": mask}

    @contextmanager
    def filling_tail(self, tail: Tail):
        """The slot hooks fill `tail`'s slots during one backbone call over a cached instruction prefix (training's
        tail pass, iapt.method.prefix; serving's shared prefix, iapt.serving.shared_prefix), and only then."""
        self._tail = tail
        try:
            yield
        finally:
            self._tail = None

    @contextmanager
    def _injecting(self, widened: Widened):
        """The slot hooks see `widened` during one backbone call (forward or generate), and only then."""
        self._widened = widened
        try:
            yield
        finally:
            self._widened = None

    def _widen(self, input_ids, attention_mask, instruction_mask) -> Widened:
        if instruction_mask is None:  # called without a Batch: the rule iapt.data.format applies
            instruction_mask = instruction_tokens(attention_mask)
        w = widen(input_ids, attention_mask, instruction_mask, self.config.num_soft_tokens,
                  self.config.placement, self.placeholder_id)
        if self.config.generator_input == "shuffled":
            if self.donors is None:
                raise UserError("the shuffled-instruction control reads donor instructions from its training data: "
                                "train it with iapt's loop (which calls use_training_data), or load an adapter saved "
                                "with its donors.json")
            w.donor = self.donors.states(self.base_model, input_ids, instruction_mask.bool() & attention_mask.bool())
        return w

    def use_training_data(self, features: list[dict]) -> None:
        """The shuffled control draws its donors from the training instructions."""
        if self.config.generator_input == "shuffled":
            self.donors = DonorPool.from_features(features)

    def _frozen_prefix_configured(self) -> bool:
        """The configuration allows it: slots after the instruction prefix, a generator in every layer."""
        c = self.config
        return c.frozen_prefix and c.placement in ("before_last", "between") and c.layers is None

    def frozen_prefix_applies(self, positions) -> bool:
        """Whether a training loss can run the instruction prefix without autograd (iapt.method.prefix): gradients
        on, trainable generators, slots after the prefix, a generator in every layer, and attention that takes an
        arbitrary padding mask."""
        return (self._frozen_prefix_configured() and positions is not None and torch.is_grad_enabled()
                and any(p.requires_grad for p in self.generators.parameters())
                and "flash" not in str(getattr(self.base_model.config, "_attn_implementation", "")))

    def _tail_logits(self, w: Widened, positions) -> torch.Tensor:
        c = cut(w)
        cache, states = run_prefix(self.base_model, w, c)
        self.prefix_passes += 1
        index, inside = tail_logit_index(w, c, positions)
        keep = index.unique()
        tail = Tail(states, w.instruction_mask[:, :c], w.instruction_mask[:, c:], w.slot_index - c, w.donor)
        with self.filling_tail(tail):
            out = self.base_model(input_ids=w.input_ids[:, c:], attention_mask=w.attention_mask,
                                  position_ids=w.position_ids[:, c:], past_key_values=cache, use_cache=True,
                                  logits_to_keep=keep)
        logits = out.logits.gather(1, torch.searchsorted(keep, index)[..., None].expand(-1, -1, out.logits.shape[-1]))
        return logits.masked_fill(~inside[..., None], 0.0)   # (unlabelled positions inside a row's prefix)

    def training_loss(self, input_ids, attention_mask, instruction_mask, labels,
                      num_items_in_batch=None) -> CausalLMOutputWithPast:
        """The contract's training loss; where `frozen_prefix_applies`, from the tail pass (the logits it returns
        are then 0 at label positions that fall inside a row's instruction prefix: they predict no label)."""
        positions = label_positions(labels)
        w = self._widen(input_ids, attention_mask, instruction_mask)
        if self.frozen_prefix_applies(positions) and cut(w) > 0:   # (cut 0: a row without instruction)
            logits = self._tail_logits(w, positions)
        else:
            logits = self._widened_logits(w, positions)
        return CausalLMOutputWithPast(loss=loss_at(logits, labels, positions, num_items_in_batch), logits=logits)

    def logits(self, input_ids, attention_mask, instruction_mask, positions=None) -> torch.Tensor:
        """Logits at the caller's positions (all, or `positions`: the backbone's head then runs on the union over
        rows of those positions, widened; see iapt.evaluation.positions)."""
        return self._widened_logits(self._widen(input_ids, attention_mask, instruction_mask), positions)

    def _widened_logits(self, w: Widened, positions=None) -> torch.Tensor:
        """One full pass over the widened batch, logits at the caller's positions."""
        index, kwargs = w.logit_index if positions is None else w.logit_index[:, positions], {}
        if positions is not None:
            keep = index.unique()
            kwargs["logits_to_keep"], index = keep, torch.searchsorted(keep, index)
        with self._injecting(w):
            out = self.base_model(input_ids=w.input_ids, attention_mask=w.attention_mask,
                                  position_ids=w.position_ids, use_cache=False, **kwargs)
        return out.logits.gather(1, index[..., None].expand(-1, -1, out.logits.shape[-1]))

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, instruction_mask=None, **generate_kwargs):
        """Hugging Face generate on the widened prompt (left padding); returns caller ids + new tokens."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        w = self._widen(input_ids, attention_mask, instruction_mask)
        with self._injecting(w):
            out = self.base_model.generate(input_ids=w.input_ids, attention_mask=w.attention_mask, **generate_kwargs)
        return torch.cat([input_ids, out[:, w.input_ids.shape[1]:]], dim=1)

    def frozen_backbone(self) -> nn.Module:
        return self.base_model

    def describe(self) -> dict:
        """The records also name the path that trains it: the frozen instruction prefix or one full pass."""
        return {**super().describe(), "training_path": "frozen prefix" if self._frozen_prefix_configured() else "full pass"}

    # --- parameters ------------------------------------------------------------------------------
    def rationals(self) -> dict[str, Rational]:
        return rationals(self.generators)

    def parameter_groups(self) -> ParameterGroups:
        """Ω (generator weights) and Θ (rational coefficients), for bi-level training. Shared tensors once."""
        theta = theta_ids(self.generators)
        weights, rational = [], []
        for p in self.generators.parameters():   # each shared tensor once (parameters() deduplicates)
            (rational if id(p) in theta else weights).append(p)
        return ParameterGroups(weights=weights, theta=rational)

    # --- persistence ------------------------------------------------------------------------------
    def save_pretrained(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config.save(path / CONFIG_NAME)
        save_model(self.generators, str(path / WEIGHTS_NAME))
        if self.donors is not None:
            self.donors.save(path)
        record_backbone(self.base_model, path)

    @classmethod
    def from_pretrained(cls, base_model: nn.Module, path, identity: MethodIdentity | None = None) -> "IAPTModel":
        path = Path(path)
        if not (path / CONFIG_NAME).exists():
            raise FileNotFoundError(f"{path} holds no IAPT adapter ({CONFIG_NAME} missing)")
        try:
            config = IAPTConfig.load(path / CONFIG_NAME)
        except (ValueError, TypeError) as e:   # truncated JSON, or fields this version does not know
            raise UserError(f"{path / CONFIG_NAME} cannot be read ({e}); save the adapter again") from None
        check_backbone(base_model, saved_backbone(path), path)
        text_cfg = base_model.config.get_text_config()
        found = (text_cfg.model_type, text_cfg.num_hidden_layers, text_cfg.hidden_size)
        saved = (config.base_model_type, config.base_num_layers, config.base_hidden_size)
        if found != saved:
            raise ValueError(f"adapter {path} was trained on a backbone with (type, layers, hidden) = {saved}, "
                             f"but this backbone has {found}; load the backbone it was trained on")
        model = cls(base_model, config, identity)
        try:
            load_model(model.generators, str(path / WEIGHTS_NAME))
        except Exception as e:   # safetensors raises its own error for a truncated file, torch for a mismatch
            raise UserError(f"{path / WEIGHTS_NAME} cannot be loaded ({type(e).__name__}: {e}); save the adapter "
                            "again") from None
        model.donors = DonorPool.load(path)
        return model


def get_iapt_model(base_model: nn.Module, config: IAPTConfig | None = None) -> IAPTModel:
    """Freeze `base_model` and attach IAPT prompt generators to every decoder layer."""
    return IAPTModel(base_model, config or IAPTConfig())
