"""Learned rational activation (Padé activation unit), one coefficient set per layer.

    version "B" (the form the IAPT authors print):  R(x) = P(x) / (1 + |b_1 x + ... + b_n x^n|)
    version "A" ("safe PAU"):                         R(x) = P(x) / (1 + |b_1||x| + ... + |b_n||x|^n)

with P(x) = a_0 + a_1 x + ... + a_m x^m. Both denominators are >= 1, so R has no poles. The initial
coefficients are least-squares fits to standard activations made by `scripts/fit_rational.py`, which
writes `iapt/method/rational_init.json`; nothing here is pasted from elsewhere.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

INIT_FILE = Path(__file__).with_name("rational_init.json")


@lru_cache(maxsize=None)
def _fitted_table() -> dict:
    if not INIT_FILE.exists():
        raise FileNotFoundError(f"{INIT_FILE} is missing; regenerate it with `python -m scripts.fit_rational`")
    return json.loads(INIT_FILE.read_text())


def fitted_coefficients(target: str, version: str, num_degree: int, den_degree: int) -> tuple[list, list]:
    """(numerator a_0..a_m, denominator b_1..b_n) fitted to `target` by scripts/fit_rational.py."""
    key = f"{target}/{version}/{num_degree}/{den_degree}"
    table = _fitted_table()["fits"]
    if key not in table:
        valid = ", ".join(sorted(table))
        raise ValueError(f"no fitted rational init for {key!r}; fitted ones: {valid}. "
                         f"Add it to scripts/fit_rational.py and rerun it.")
    return table[key]["numerator"], table[key]["denominator"]


def rational(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor, version: str) -> torch.Tensor:
    """Evaluate R(x) elementwise by Horner's rule. `numerator` = a_0..a_m, `denominator` = b_1..b_n."""
    p = numerator[-1].expand_as(x)
    for a in numerator.flip(0)[1:]:
        p = p * x + a
    if version == "B":
        q = denominator[-1].expand_as(x)
        for b in denominator.flip(0)[1:]:
            q = q * x + b
        q = (q * x).abs()  # b_1 x + ... + b_n x^n
    elif version == "A":
        ax = x.abs()
        q = torch.zeros_like(x)
        for b in denominator.abs().flip(0):
            q = (q + b) * ax  # sum_i |b_i| |x|^i
    else:
        raise ValueError(f"unknown rational version {version!r}; valid: 'A', 'B'")
    return p / (1.0 + q)


def rational_fp32(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor, version: str) -> torch.Tensor:
    """R(x) computed in fp32 even under autocast (high powers of x overflow or lose all precision in bf16),
    returned in x's dtype. The coefficients broadcast against x (serving passes one set per batch row)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        y = rational(x.float(), numerator.float(), denominator.float(), version)
    return y.to(x.dtype)


class Rational(nn.Module):
    """R(x) with learnable coefficients Θ, evaluated in fp32 (`rational_fp32`)."""

    def __init__(self, num_degree: int = 6, den_degree: int = 5, version: str = "B", init: str = "gelu"):
        super().__init__()
        a, b = fitted_coefficients(init, version, num_degree, den_degree)
        self.version = version
        self.numerator = nn.Parameter(torch.tensor(a, dtype=torch.float32))
        self.denominator = nn.Parameter(torch.tensor(b, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rational_fp32(x, self.numerator, self.denominator, self.version)

    def extra_repr(self) -> str:
        return f"version={self.version}, num_degree={self.numerator.numel() - 1}, den_degree={self.denominator.numel()}"
