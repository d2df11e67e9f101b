"""Fit rational-activation coefficients to standard activations; writes iapt/method/rational_init.json.

    python -m scripts.fit_rational            # regenerates the constants the package uses

Least squares on a dense grid over [-RANGE, RANGE] (default 6), plus down-weighted points out to 2x the
range so the fit stays bounded beyond it. The range is checked against what the activations actually
receive: `scripts/preactivation_stats.py` records, per layer, the quantiles of the pooled bottleneck values
of an untrained IAPT on SmolLM2 (results/preactivation_stats.csv; summarised in the README).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.special import erf

TARGETS = {
    "gelu": lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
    "relu": lambda x: np.maximum(x, 0.0),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "tanh": np.tanh,
    "identity": lambda x: x,
}
DEGREES = [(6, 5), (5, 4), (4, 3), (3, 2)]
OUT = Path(__file__).resolve().parents[1] / "iapt" / "method" / "rational_init.json"


def rational_np(x, a, b, version):
    p = np.polyval(a[::-1], x)
    if version == "B":
        q = np.abs(np.polyval(np.concatenate([b[::-1], [0.0]]), x))
    else:
        q = sum(abs(bi) * np.abs(x) ** (i + 1) for i, bi in enumerate(b))
    return p / (1 + q)


def fit(target: str, version: str, m: int, n: int, rng: float, seed: int = 0):
    # Dense points on the range, plus down-weighted points out to 2x the range so that the fit stays
    # tame outside it (a rational fitted only on its range can explode just beyond it).
    inner, outer = np.linspace(-rng, rng, 601), np.concatenate([np.linspace(-2 * rng, -rng, 101), np.linspace(rng, 2 * rng, 101)])
    x = np.concatenate([inner, outer])
    weight = np.concatenate([np.ones_like(inner), np.full_like(outer, 0.1)])
    y = TARGETS[target](x)
    # Start from the linearised problem P(x) - y * sum b_i x^i = y (exact when the sum is >= 0).
    A = np.concatenate([np.stack([x**i for i in range(m + 1)], 1), np.stack([-y * x**i for i in range(1, n + 1)], 1)], 1)
    start = np.linalg.lstsq(A, y, rcond=None)[0]
    best = None
    gen = np.random.default_rng(seed)
    for trial in range(3):
        x0 = start if trial == 0 else start + gen.normal(0, 0.1, start.shape)
        res = least_squares(lambda c: weight * (rational_np(x, c[: m + 1], c[m + 1:], version) - y), x0, method="lm", max_nfev=1500)
        if best is None or res.cost < best.cost:
            best = res
    a, b = best.x[: m + 1], best.x[m + 1:]
    wide = np.linspace(-1.5 * rng, 1.5 * rng, 6001)
    return {
        "numerator": [float(v) for v in a],
        "denominator": [float(v) for v in b],
        "max_abs_err_in_range": float(np.max(np.abs(rational_np(inner, a, b, version) - TARGETS[target](inner)))),
        "max_abs_err_1.5x_range": float(np.max(np.abs(rational_np(wide, a, b, version) - TARGETS[target](wide)))),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--range", type=float, default=6.0, help="fit on [-range, range] (default 6)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    fits = {}
    for target in TARGETS:
        for version in ("B", "A"):
            for m, n in DEGREES:
                r = fit(target, version, m, n, args.range)
                fits[f"{target}/{version}/{m}/{n}"] = r
                print(f"{target:8s} {version} ({m},{n}) max|err| {r['max_abs_err_in_range']:.2e} on range, "
                      f"{r['max_abs_err_1.5x_range']:.2e} on 1.5x range")
    args.out.write_text(json.dumps({"range": [-args.range, args.range], "fits": fits}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
