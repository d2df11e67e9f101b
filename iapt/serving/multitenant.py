"""One frozen backbone serving many tenants in one batch: every request names its tenant's adapter.

- `TenantIAPT`: the tenants' generator weights stacked per layer and gathered per row (no loop over tenants);
  the generators run once, in prefill, then decoding is the backbone's own cached decoding.
- `GatheredLoRA`: unmerged LoRA as one gathered batched matmul per module and step (the pure-PyTorch form of
  Punica's kernel): y = W x + s · B[t] A[t] x for each row's tenant t.
- `PeftMixedLoRA`: the same weights as peft adapters, served with peft's mixed batches (`adapter_names=`).
- `TenantPromptTuning`: per-tenant input soft prompts gathered per row.
- `BareBackbone`: no adapter, the upper bound.

Every server has `generate(input_ids, attention_mask, tenant_ids, new_tokens, clock=None)` returning only the
new tokens (exactly `new_tokens`, end-of-sequence ignored, greedy) for left-padded prompts; a `StepClock`
passed as `clock` records when each token was ready (time to first token and per-token latency from one run).
"""
from __future__ import annotations

import time

import torch
from torch import nn
from transformers import StoppingCriteria, StoppingCriteriaList

from ..method.config import IAPTConfig
from ..method.generator import pool
from ..backbones import position_ids
from ..baselines.registry import LORA_ALL
from ..method.model import IAPTModel
from ..method.rational import Rational, rational_fp32


class StepClock(StoppingCriteria):
    """Never stops generation; stamps the time each new token is ready (generate calls it once per token)."""

    def __init__(self, sync=lambda: None):
        self.sync, self.stamps, self.start = sync, [], None

    def begin(self) -> "StepClock":
        self.sync()
        self.stamps, self.start = [], time.perf_counter()
        return self

    def __call__(self, input_ids, scores, **kwargs):
        self.sync()
        self.stamps.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    @property
    def first_token_s(self) -> float:
        return self.stamps[0] - self.start

    @property
    def total_s(self) -> float:
        return self.stamps[-1] - self.start

    @property
    def decode_s_per_token(self) -> float:
        return (self.stamps[-1] - self.stamps[0]) / max(len(self.stamps) - 1, 1)


def _greedy(model, new_tokens: int, clock: StepClock | None = None, **inputs) -> torch.Tensor:
    criteria = StoppingCriteriaList([clock.begin()]) if clock is not None else None
    return model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                          pad_token_id=0, stopping_criteria=criteria)


class Tenants:
    """The batch's tenant per row, shared by every stacked module of one server."""

    def __init__(self):
        self.ids: torch.Tensor | None = None

    def rows(self, n: int) -> torch.Tensor:
        ids = self.ids
        return ids if ids.shape[0] == n else ids.repeat_interleave(n // ids.shape[0])


class StackedGenerator(nn.Module):
    """One layer's prompt generators of all tenants (attention pooler), gathered per row."""

    def __init__(self, generators: list[nn.Module], config: IAPTConfig, tenants: Tenants):
        super().__init__()
        if config.pooler != "attention":
            raise ValueError("multi-tenant IAPT supports the attention pooler (the paper's)")
        self.tenants, self.version = tenants, config.rational_version
        self.down = nn.Parameter(torch.stack([g.down.weight.T for g in generators]).detach())     # T, d, m
        self.query = nn.Parameter(torch.stack([g.query for g in generators]).detach())            # T, m, k
        self.up = nn.Parameter(torch.stack([g.up.weight.T for g in generators]).detach())         # T, m, d
        act = generators[0].act
        self.rational = isinstance(act, Rational)
        if self.rational:
            self.numerator = nn.Parameter(torch.stack([g.act.numerator for g in generators]).detach())
            self.denominator = nn.Parameter(torch.stack([g.act.denominator for g in generators]).detach())
        else:
            self.act = act

    def forward(self, h: torch.Tensor, instruction_mask: torch.Tensor) -> torch.Tensor:
        t = self.tenants.rows(h.shape[0])
        z = torch.bmm(h, self.down[t])                                   # B, T, m
        p = pool(z, instruction_mask, "attention", self.query[t])       # B, k, m
        if self.rational:
            coeff = lambda c: c[t].T[..., None, None]                   # degree, B, 1, 1: each row its tenant's
            p = rational_fp32(p, coeff(self.numerator), coeff(self.denominator), self.version)
        else:
            p = self.act(p)
        return torch.bmm(p, self.up[t])                                  # B, k, d


class TenantIAPT(nn.Module):
    """`generator_sets`: each tenant's `IAPTModel.generators` (all trained with the same `config`)."""

    def __init__(self, base_model, config: IAPTConfig, generator_sets: list[nn.ModuleDict]):
        super().__init__()
        self.tenants = Tenants()
        self.model = IAPTModel(base_model, config)
        for layer in list(self.model.generators):
            self.model.generators[layer] = StackedGenerator([g[layer] for g in generator_sets], config, self.tenants)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, tenant_ids, new_tokens: int, clock=None) -> torch.Tensor:
        self.tenants.ids = tenant_ids
        out = _greedy(self.model, new_tokens, clock, input_ids=input_ids, attention_mask=attention_mask)
        return out[:, input_ids.shape[1]:]

    def forward(self, input_ids, attention_mask, tenant_ids):
        self.tenants.ids = tenant_ids
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def lora_modules(base_model, targets=tuple(LORA_ALL)) -> dict[str, nn.Linear]:
    return {name: m for name, m in base_model.named_modules()
            if isinstance(m, nn.Linear) and name.split(".")[-1] in targets}


def random_lora(base_model, tenants: int, rank: int, targets=tuple(LORA_ALL), seed: int = 0, std: float = 0.02):
    """Per-tenant random, non-zero LoRA weights {module: (A (T, in, r), B (T, r, out))}."""
    g = torch.Generator().manual_seed(seed)
    return {name: (torch.randn(tenants, m.in_features, rank, generator=g) * std,
                   torch.randn(tenants, rank, m.out_features, generator=g) * std)
            for name, m in lora_modules(base_model, targets).items()}


class GatheredLoRA(nn.Module):
    def __init__(self, base_model, weights: dict, scaling: float = 2.0):
        super().__init__()
        self.base_model, self.scaling, self._gathered = base_model, scaling, {}
        modules = dict(base_model.named_modules())
        self.A = nn.ParameterDict({k.replace(".", "/"): nn.Parameter(a) for k, (a, _) in weights.items()})
        self.B = nn.ParameterDict({k.replace(".", "/"): nn.Parameter(b) for k, (_, b) in weights.items()})
        for name in weights:
            modules[name].register_forward_hook(self._hook(name.replace(".", "/")))

    def _hook(self, key: str):
        def hook(module, args, out):
            x = args[0]
            a, b = self._gathered[key]       # gathered once per batch, not once per step
            return out + self.scaling * torch.bmm(torch.bmm(x, a.to(x.dtype)), b.to(x.dtype))
        return hook

    def use_tenants(self, tenant_ids):
        """Gather every module's A and B for these rows' tenants (once per batch, not once per step)."""
        self._gathered = {k: (self.A[k][tenant_ids], self.B[k][tenant_ids]) for k in self.A}

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, tenant_ids, new_tokens: int, clock=None) -> torch.Tensor:
        self.use_tenants(tenant_ids)
        return _greedy(self.base_model, new_tokens, clock, input_ids=input_ids,
                       attention_mask=attention_mask)[:, input_ids.shape[1]:]

    def forward(self, input_ids, attention_mask, tenant_ids):
        self.use_tenants(tenant_ids)
        return self.base_model(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids(attention_mask)).logits


class PeftMixedLoRA(nn.Module):
    """peft LoRA with one named adapter per tenant, served with mixed-adapter batches."""

    def __init__(self, base_model, weights: dict, rank: int, scaling: float = 2.0):
        super().__init__()
        import peft
        targets = sorted({k.split(".")[-1] for k in weights})
        n = next(iter(weights.values()))[0].shape[0]
        config = peft.LoraConfig(r=rank, lora_alpha=scaling * rank, target_modules=targets, lora_dropout=0.0)
        self.peft_model = peft.get_peft_model(base_model, config, adapter_name="t0")
        for t in range(1, n):
            self.peft_model.add_adapter(f"t{t}", config)
        modules = dict(self.peft_model.base_model.model.named_modules())
        with torch.no_grad():
            for name, (a, b) in weights.items():
                layer = modules[name]
                for t in range(n):
                    layer.lora_A[f"t{t}"].weight.copy_(a[t].T)
                    layer.lora_B[f"t{t}"].weight.copy_(b[t].T)
        self.peft_model.eval()

    def _names(self, tenant_ids):
        return [f"t{t}" for t in tenant_ids.tolist()]

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, tenant_ids, new_tokens: int, clock=None) -> torch.Tensor:
        out = _greedy(self.peft_model, new_tokens, clock, input_ids=input_ids, attention_mask=attention_mask,
                      adapter_names=self._names(tenant_ids))
        return out[:, input_ids.shape[1]:]

    def forward(self, input_ids, attention_mask, tenant_ids):
        return self.peft_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                               adapter_names=self._names(tenant_ids)).logits


class TenantPromptTuning(nn.Module):
    """Per-tenant input soft prompts (T, n, d), placed before each row's (left-padded) prompt."""

    def __init__(self, base_model, prompts: torch.Tensor):
        super().__init__()
        self.base_model, self.prompts = base_model, nn.Parameter(prompts)

    def _inputs(self, input_ids, attention_mask, tenant_ids):
        soft = self.prompts[tenant_ids]
        embeds = self.base_model.get_input_embeddings()(input_ids)
        mask = torch.cat([torch.ones(soft.shape[:2], dtype=attention_mask.dtype, device=attention_mask.device),
                          attention_mask], 1)
        return torch.cat([soft.to(embeds.dtype), embeds], 1), mask

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, tenant_ids, new_tokens: int, clock=None) -> torch.Tensor:
        embeds, mask = self._inputs(input_ids, attention_mask, tenant_ids)
        return _greedy(self.base_model, new_tokens, clock, inputs_embeds=embeds, attention_mask=mask)   # new tokens only

    def forward(self, input_ids, attention_mask, tenant_ids):
        embeds, mask = self._inputs(input_ids, attention_mask, tenant_ids)
        logits = self.base_model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids(mask)).logits
        return logits[:, self.prompts.shape[1]:]


class BareBackbone(nn.Module):
    def __init__(self, base_model):
        super().__init__()
        self.base_model = base_model

    @torch.no_grad()
    def generate(self, input_ids, attention_mask, tenant_ids, new_tokens: int, clock=None) -> torch.Tensor:
        return _greedy(self.base_model, new_tokens, clock, input_ids=input_ids,
                       attention_mask=attention_mask)[:, input_ids.shape[1]:]

    def forward(self, input_ids, attention_mask, tenant_ids):
        return self.base_model(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids(attention_mask)).logits

