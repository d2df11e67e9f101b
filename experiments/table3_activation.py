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

from iapt.errors import UserError, cli
from iapt.harness.grid import TableScript, run_table
from iapt.harness.stats import compare_rows
from experiments.common import CPU_REFERENCE, load_profiles, zeroshot_floors

LEARNED = "rational, alternating (paper)"
PROFILES = load_profiles(__file__)   # table3_activation.yaml beside this file
ROWS = PROFILES["cpu"]["rows"]


def rationals(df: pd.DataFrame) -> pd.DataFrame | None:
    """Every layer's coefficients after training, from each rational row's result (beside its adapter; a cell
    restored from its committed record has the result but no weights). None, with a note, when a cell's result
    predates the coefficients being recorded: table3_rationals.csv is then left as it was."""
    recs, unrecorded = [], []
    for r in df[df.row.str.startswith("rational")].itertuples():
        path = Path(r.adapter).parent / "result.json"
        if not path.exists():   # e.g. a cell folder copied by hand from another cache: its result names that one
            raise UserError(f"table3: {r.row} seed {r.seed}: its result names {r.adapter}, but {path} does not "
                            "exist (was its folder copied from another cache?); point `adapter` at its folder or "
                            "retrain it with --fresh")
        result = json.loads(path.read_text())
        chosen = result["trials"][f"{result['chosen_lr']:g}"]
        if "rationals" not in chosen:
            unrecorded.append(f"{r.row} seed {r.seed} (code version {result['code_version']})")
            continue
        drift = dict(x.split(":") for x in str(r.theta_drift).split()) if isinstance(r.theta_drift, str) else {}
        for layer, act in sorted(chosen["rationals"].items(), key=lambda item: int(item[0])):
            recs.append({"row": r.row, "task": r.task, "seed": r.seed, "layer": int(layer), "version": act["version"],
                         "numerator": " ".join(f"{v:.6g}" for v in act["numerator"]),
                         "denominator": " ".join(f"{v:.6g}" for v in act["denominator"]),
                         "drift": float(drift.get(layer, "nan")),
                         "max_change_pm1": max_change(act, 1.0), "max_change_pm2": max_change(act, 2.0)})
    if unrecorded:
        print(f"table3: {'; '.join(unrecorded)}: its result does not record the final coefficients (trained before "
              "results kept them); table3_rationals.csv is left as it was (--fresh retrains such cells)")
        return None
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


def extras(df: pd.DataFrame) -> dict:
    coefficients = rationals(df)
    return {"verdicts": verdicts(df), **({"rationals": coefficients} if coefficients is not None else {})}


@cli
def main(argv=None):
    return run_table(TableScript("table3", __doc__, "experiments/table3_activation.py", floors=zeroshot_floors, reference=CPU_REFERENCE,
                          extras=extras), PROFILES, argv)


if __name__ == "__main__":
    main()
