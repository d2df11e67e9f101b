"""Per-layer prompt generator: down-projection -> pooling -> activation -> up-projection (docs/method.md).

Shapes: B batch, T sequence, d hidden, m bottleneck, k = num_soft_tokens.
"""
from __future__ import annotations

import torch
from torch import nn

from .rational import Rational

FIXED_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU, "identity": nn.Identity}


def make_activation(name: str, config) -> nn.Module:
    if name == "rational":
        num, den = config.rational_degrees
        return Rational(num, den, config.rational_version, config.rational_init)
    return FIXED_ACTIVATIONS[name]()


def pool(z: torch.Tensor, mask: torch.Tensor, kind: str, query: torch.Tensor) -> torch.Tensor:
    """Pool z (B, T, m) over the positions where mask (B, T) is True into (B, k, m). `query` is (m, k), or
    (B, m, k) when every row has its own (multi-tenant serving)."""
    neg = torch.finfo(z.dtype).min
    if kind == "attention":
        scores = z @ query.to(z.dtype)                                 # B, T, k
        scores = scores.float().masked_fill(~mask[..., None], float("-inf"))
        attn = scores.softmax(dim=1).nan_to_num(0.0).to(z.dtype)      # rows without instruction pool to 0
        return attn.transpose(1, 2) @ z                               # B, k, m
    if kind == "mean":
        pooled = masked_mean(z, mask)
    elif kind == "max":
        pooled = z.masked_fill(~mask[..., None], neg).amax(1)
        pooled = torch.where(mask.any(1)[:, None], pooled, torch.zeros_like(pooled))
    elif kind == "last":
        idx = (mask.long() * torch.arange(mask.shape[1], device=mask.device)).argmax(1)   # last True
        pooled = z[torch.arange(z.shape[0], device=z.device), idx]
    else:
        raise ValueError(kind)
    # One pooled vector for all k soft tokens; a per-token offset keeps the k slots distinct.
    offset = query.to(z.dtype).transpose(-1, -2)                      # k, m (or B, k, m: one query per row)
    return pooled[:, None, :] + (offset if offset.dim() == 3 else offset[None])


def init_down(down: nn.Linear) -> nn.Linear:
    """W_down ~ N(0, 1/d): the bottleneck starts at the scale of the hidden states it reads."""
    nn.init.normal_(down.weight, std=down.in_features ** -0.5)
    return down


def init_up(up: nn.Linear, std: float) -> nn.Linear:
    """W_up = 0 by default (the soft tokens start at the slot's initial value), else N(0, std²)."""
    if std > 0:
        nn.init.normal_(up.weight, std=std)
    else:
        nn.init.zeros_(up.weight)
    return up


def new_query(m: int, k: int) -> nn.Parameter:
    """The pooler's (m x k) queries, N(0, 1/m)."""
    return nn.Parameter(torch.randn(m, k) * m ** -0.5)


class PromptGenerator(nn.Module):
    """Turns the instruction's hidden states at the input of one layer into that layer's k soft tokens."""

    def __init__(self, hidden_size: int, config, activation: str, down: nn.Linear | None = None,
                 up: nn.Linear | None = None, query: nn.Parameter | None = None):
        super().__init__()
        m, k = config.bottleneck_dim, config.num_soft_tokens
        self.k, self.pooler = k, config.pooler
        # Both layers are built before either is initialised: the order of random draws fixes the numbers.
        self.down = down if down is not None else nn.Linear(hidden_size, m, bias=False)
        self.up = up if up is not None else nn.Linear(m, hidden_size, bias=False)
        if down is None:
            init_down(self.down)
        if up is None:
            init_up(self.up, config.up_init_std)
        # The self-attention pooler's queries (m x k). The other poolers produce one vector; they keep a
        # (m x k) offset so the k soft tokens can differ. Either way this is the paper's m*k term.
        self.query = query if query is not None else new_query(m, k)
        self.act = make_activation(activation, config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, h: torch.Tensor, instruction_mask: torch.Tensor) -> torch.Tensor:
        """h: (B, T, d) what the generator reads; instruction_mask: (B, T) bool -> (B, k, d)."""
        z = self.down(h)                                           # B, T, m
        p = pool(z, instruction_mask, self.pooler, self.query)   # B, k, m
        p = self.dropout(self.act(p))
        return self.up(p)                                          # B, k, d


def build_generators(config, num_layers: int, hidden_size: int) -> nn.ModuleDict:
    """One generator per selected layer; with `share`, projections are one module reused by all."""
    layers = config.layers if config.layers is not None else list(range(num_layers))
    m = config.bottleneck_dim
    shared_down = init_down(nn.Linear(hidden_size, m, bias=False)) if config.share in ("down", "all") else None
    shared_up, shared_query = None, None
    if config.share == "all":
        shared_up = init_up(nn.Linear(m, hidden_size, bias=False), config.up_init_std)
        shared_query = new_query(m, config.num_soft_tokens)
    return nn.ModuleDict({
        str(i): PromptGenerator(hidden_size, config, config.activation_for(i), shared_down, shared_up, shared_query)
        for i in layers
    })


def masked_mean(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of h (B, T, d) over mask (B, T) -> (B, d)."""
    w = mask.to(h.dtype)[..., None]
    return (h * w).sum(1) / w.sum(1).clamp(min=1)


def rationals(generators: nn.ModuleDict) -> dict[str, Rational]:
    """The learned rational activation of each generator that has one (Θ), by layer."""
    return {layer: g.act for layer, g in generators.items() if isinstance(g.act, Rational)}


def theta_ids(generators: nn.ModuleDict) -> set[int]:
    """The ids of Θ's tensors: what to leave alone when perturbing or re-initialising Ω."""
    return {id(p) for r in rationals(generators).values() for p in r.parameters()}
