"""The peft baselines (LoRA, AdaLoRA, (IA)³, prompt tuning, P-tuning v2) and the bare backbone, each a
`TunedModel` (iapt.contract)."""
from __future__ import annotations

import torch

from ..backbones import position_ids, record_backbone
from ..contract import MethodIdentity, TunedModel


class PeftMethod(TunedModel):
    """A peft model under the tuned-model contract: logits aligned with the caller's input_ids. The instruction
    mask is accepted and ignored: these methods give every input the same parameters."""

    def __init__(self, peft_model, identity: MethodIdentity):
        super().__init__(identity)
        self.peft_model = peft_model
        self.identity.trainable_params, self.identity.total_params = self.get_nb_trainable_parameters()

    def logits(self, input_ids, attention_mask, instruction_mask, positions=None) -> torch.Tensor:
        if positions is None:
            out = self.peft_model(input_ids=input_ids, attention_mask=attention_mask)
            # prompt tuning returns rows for its virtual tokens first; the caller's positions are the last T
            return out.logits[:, -input_ids.shape[1]:]
        config = self.peft_model.peft_config["default"]
        shift = config.num_virtual_tokens if config.peft_type.value == "PROMPT_TUNING" else 0
        return self.peft_model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=positions + shift).logits

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, instruction_mask=None, max_new_tokens: int = 20,
                 use_cache: bool = True, **kwargs):
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
        positions = position_ids(mask[:, n_virtual:], start=n_virtual)
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
        record_backbone(self.frozen_backbone(), path)

    def frozen_backbone(self) -> torch.nn.Module:
        return self.peft_model.get_base_model()



class AdaLoraMethod(PeftMethod):
    """AdaLoRA: its loss carries an orthogonality penalty, and its ranks are reallocated after every step from
    importance scores that a resumed run must restore."""

    def training_loss(self, input_ids, attention_mask, instruction_mask, labels, num_items_in_batch=None):
        # the penalty is added by peft's own forward: train through that loss
        counted = {} if num_items_in_batch is None else {"num_items_in_batch": num_items_in_batch}
        out = self.peft_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **counted)
        out.logits = out.logits[:, -input_ids.shape[1]:]
        return out

    def after_step(self, step: int) -> None:
        self.peft_model.base_model.update_and_allocate(step)

    def extra_state(self) -> dict:
        allocator = self.peft_model.base_model.rankallocator
        return {"allocator": {k: getattr(allocator, k) for k in ("ipt", "exp_avg_ipt", "exp_avg_unc")},
                "rank_pattern": self.peft_model.peft_config["default"].rank_pattern}

    def load_extra_state(self, state: dict) -> None:
        for k, v in state["allocator"].items():
            setattr(self.peft_model.base_model.rankallocator, k, v)
        self.peft_model.peft_config["default"].rank_pattern = state["rank_pattern"]


class BareBackbone(TunedModel):
    """The untuned backbone (the zero-shot floor) under the same contract."""

    def __init__(self, backbone):
        super().__init__(MethodIdentity("zero-shot"))
        self.backbone = backbone
        for p in backbone.parameters():
            p.requires_grad_(False)
        self.identity.total_params = sum(p.numel() for p in backbone.parameters())

    def frozen_backbone(self) -> torch.nn.Module:
        return self.backbone

    def logits(self, input_ids, attention_mask, instruction_mask, positions=None) -> torch.Tensor:
        if positions is None:
            return self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=positions).logits

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, instruction_mask=None, **generate_kwargs):
        return self.backbone.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)
