"""Table 3: which activation should IAPT's generators use? (the paper's claim 3: learned, layer-specific
rational activations beat one fixed activation everywhere)

    python -m experiments.table3_activation --profile quick    # a first look, <= 1 h here
    python -m experiments.table3_activation --profile cpu      # what `make table3` runs; hours, resumable

Rows: ReLU, GELU, tanh, SiLU in every layer; ReLU in the lower half and GELU in the upper, and the reverse;
the rational initialised to GELU and frozen; learned jointly with the generators on the training loss;
learned by the paper's alternating dev-batch updates. Every row has the same generator size and the same
learning-rate search. Outputs (cpu: results/, quick: results/quick/, smoke: a temporary folder): table3.csv,
table3_summary.csv, table3_curves.csv, table3_verdicts.csv (the learned rational against each fixed
activation and against the frozen one: paired bootstrap) and table3_rationals.csv (every layer's
coefficients after training, their drift from the GELU initialisation, and the largest change of the
curve on [−1, 1], the range the activation receives, and on [−2, 2], the plotted one).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from iapt.backbones import DEFAULT_BACKBONE, TINY
from iapt.errors import UserError, cli
from iapt.harness.grid import Row, TableScript, run_table
from iapt.harness.stats import compare_rows
from experiments.common import ACCEPTED_CODE_VERSIONS, CPU_LRS, CPU_N, CPU_REFERENCE, CPU_TRAIN, zeroshot_floors

ROWS = [Row(f"fixed {a}", "iapt", {"activation": a}) for a in ("relu", "gelu", "tanh", "silu")] + [
    Row("relu below, gelu above", "iapt", {"activation": "relu>gelu"}),
    Row("gelu below, relu above", "iapt", {"activation": "gelu>relu"}),
    Row("rational, frozen at GELU", "iapt", train={"theta": "frozen"}),
    Row("rational, learned jointly", "iapt", train={"theta": "joint"}),
    Row("rational, alternating (paper)", "iapt", train={"theta": "alternate"}),
]
LEARNED = "rational, alternating (paper)"
# Table 1 (cpu, seed 0) separates tuned methods from the floors on sst2 alone (IAPT 0.826, LoRA 0.793 against
# zero-shot 0.544); on rte, boolq and copa every method stays at the majority class, where no ablation could show.
TASKS = ["sst2"]
PROFILES = {
    "smoke": dict(backbone=TINY, rows=[ROWS[0], ROWS[4], ROWS[6], ROWS[8]], tasks=["sst2"], seeds=[0, 1],
                  lrs=(1e-2,), n=dict(n_train=16, n_dev=8, n_test=8),
                  train=dict(steps=4, batch_size=4, eval_every=2, patience=None)),
    # three of the cpu grid's own cells (same settings, seed 0): a later `make table3` continues from them
    "quick": dict(backbone=DEFAULT_BACKBONE, rows=[ROWS[1], ROWS[6], ROWS[8]], tasks=["sst2"], seeds=[0],
                  lrs=CPU_LRS, n=CPU_N, train=CPU_TRAIN,
                  expected="about 25 min here (measured 2026-11-30 from a fresh clone)"),
    "cpu": dict(backbone=DEFAULT_BACKBONE, rows=ROWS, tasks=TASKS, seeds=[0, 1, 2], lrs=CPU_LRS, n=CPU_N,
                train=CPU_TRAIN, reuse_code_versions=ACCEPTED_CODE_VERSIONS,
                expected="about 2 h 15 min of compute here (27 cells, measured 2026-11-30; seconds once its cells are "
                         "committed)"),
}


def rationals(df: pd.DataFrame) -> pd.DataFrame:
    """Every layer's coefficients after training, from each rational row's result (beside its adapter; a cell
    restored from its committed record has the result but no weights)."""
    recs = []
    for r in df[df.row.str.startswith("rational")].itertuples():
        path = Path(r.adapter).parent / "result.json"
        if not path.exists():   # e.g. a cell folder copied by hand from another cache: its result names that one
            raise UserError(f"table3: {r.row} seed {r.seed}: its result names {r.adapter}, but {path} does not "
                            "exist (was its folder copied from another cache?); point `adapter` at its folder or "
                            "retrain it with --fresh")
        result = json.loads(path.read_text())
        chosen = result["trials"][f"{result['chosen_lr']:g}"]
        drift = dict(x.split(":") for x in str(r.theta_drift).split()) if isinstance(r.theta_drift, str) else {}
        for layer, act in sorted(chosen["rationals"].items(), key=lambda item: int(item[0])):
            recs.append({"row": r.row, "task": r.task, "seed": r.seed, "layer": int(layer), "version": act["version"],
                         "numerator": " ".join(f"{v:.6g}" for v in act["numerator"]),
                         "denominator": " ".join(f"{v:.6g}" for v in act["denominator"]),
                         "drift": float(drift.get(layer, "nan")),
                         "max_change_pm1": max_change(act, 1.0), "max_change_pm2": max_change(act, 2.0)})
    return pd.DataFrame(recs)


def max_change(act: dict, lim: float) -> float:
    """max |R(x) − R₀(x)| over x in [−lim, lim]: how far the learned function moved from its GELU
    initialisation. Coefficient drift alone does not say how much the curve changed where it is used: the
    untrained generators feed it values within ±0.85 (results/preactivation_stats.csv), hence ±1; ±2 is the
    notebook's plotting range."""
    import torch

    from iapt.method.rational import fitted_coefficients, rational
    a, b = (torch.tensor(v, dtype=torch.float64) for v in (act["numerator"], act["denominator"]))
    a0, b0 = (torch.tensor(v, dtype=torch.float64)
              for v in fitted_coefficients("gelu", act["version"], len(a) - 1, len(b)))
    x = torch.linspace(-lim, lim, 801, dtype=torch.float64)
    return float((rational(x, a, b, act["version"]) - rational(x, a0, b0, act["version"])).abs().max())


def verdicts(df: pd.DataFrame) -> pd.DataFrame:
    recs = []
    for other in [r.name for r in ROWS if r.name != LEARNED]:
        found = compare_rows(df, LEARNED, other)
        if found:
            recs.append({"claim": "3: learned rational beats fixed activations", "learned_vs": other, **found})
    return pd.DataFrame(recs)


@cli
def main(argv=None):
    run_table(TableScript("table3", __doc__, "experiments/table3_activation.py", floors=zeroshot_floors, reference=CPU_REFERENCE,
                          extras=lambda df: {"verdicts": verdicts(df), "rationals": rationals(df)}), PROFILES, argv)


if __name__ == "__main__":
    main()
