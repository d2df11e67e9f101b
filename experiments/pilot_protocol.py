"""The protocol pilot: where does the seed noise of IAPT − LoRA on sst2 come from, and which training protocol
buys the narrowest interval per hour of compute? (docs/table1.md, "Choosing the protocol")

    python -m experiments.pilot_protocol --profile cpu     # what `make pilot` runs; hours, resumable

IAPT and LoRA on sst2, 5 seeds each, under three protocols: the grid's (60 steps, learning rate from
{1e-3, 1e-2} on seed 0), 200 steps at 1e-3, and 400 steps at 1e-3 stopped early on dev. Outputs (cpu: results/):
pilot_protocol.csv (one row per cell), _summary, _curves and pilot_protocol_noise.csv: per protocol, each
method's mean and per-seed standard deviation, the standard deviation of the per-seed difference, IAPT − LoRA
with its crossed-bootstrap 95 % interval (seeds and test examples resampled) and the half-width of example noise
alone (seeds held fixed), the seeds that would decide claim 2 at this noise, the compute spent, the half-width
that 10 hours of compute on that protocol would give (the seeds' share of the variance shrinks as 1/seeds, the
test examples' does not: iapt.harness.stats.half_width_with_seeds), and the seeds a half-width of 0.02 would need.
"""
from __future__ import annotations

import pandas as pd

from iapt.errors import cli
from iapt.harness.grid import TableScript, run_table
from iapt.harness.stats import compare_rows, half_width_with_seeds, seeds_for_half_width
from experiments.common import CPU_REFERENCE, load_profiles, zeroshot_floors

PROFILES = load_profiles(__file__)   # pilot_protocol.yaml beside this file
TARGET_HALF_WIDTH = 0.02
BUDGET_H = 10     # the protocols compared at equal compute: the half-width 10 hours of IAPT + LoRA cells would give


def protocols(df: pd.DataFrame) -> list[str]:
    """The protocols with both an IAPT and a LoRA row ("iapt, <protocol>" and "lora, <protocol>")."""
    names = [r.split(", ", 1)[1] for r in dict.fromkeys(df.row) if r.startswith("iapt, ")]
    return [p for p in names if f"lora, {p}" in set(df.row)]


def noise(df: pd.DataFrame) -> pd.DataFrame:
    recs = []
    for protocol in protocols(df):
        a, b = f"iapt, {protocol}", f"lora, {protocol}"
        found = compare_rows(df, a, b, margin=0.02)   # claim 2: IAPT at most 2 points below LoRA
        if found is None:
            continue
        by_seed = df[df.row.isin([a, b])].pivot_table(index="seed", columns="row", values="test_metric")
        paired = by_seed.dropna()
        hours = df[df.row.isin([a, b]) & df.seed.isin(paired.index)]["cell_wall_s"].sum() / 3600
        hw, ex = found["half_width"], found["example_half_width"]
        recs.append({"protocol": protocol, "n_seeds": len(paired),
                     "iapt_mean": paired[a].mean(), "lora_mean": paired[b].mean(),
                     "iapt_seed_sd": paired[a].std(ddof=1), "lora_seed_sd": paired[b].std(ddof=1),
                     "diff_seed_sd": (paired[a] - paired[b]).std(ddof=1),
                     "diff": found["diff"], "ci_low": found["ci_low"], "ci_high": found["ci_high"], "half_width": hw,
                     "example_half_width": ex,
                     "precision": found["precision"], "claim2_verdict": found["verdict"],
                     "claim2_seeds_to_decide": found["seeds_to_decide"],
                     "claim2_examples_to_decide": found["examples_to_decide"],
                     "compute_h": hours, f"half_width_in_{BUDGET_H}_compute_h": half_width_with_seeds(
                         hw, ex, len(paired), len(paired) * BUDGET_H / hours),
                     f"seeds_for_half_width_{TARGET_HALF_WIDTH}": seeds_for_half_width(TARGET_HALF_WIDTH, hw, ex, len(paired))})
    return pd.DataFrame(recs)


@cli
def main(argv=None):
    return run_table(TableScript("pilot_protocol", __doc__, "experiments/pilot_protocol.py", floors=zeroshot_floors,
                                 reference=CPU_REFERENCE, extras=lambda df: {"noise": noise(df)}), PROFILES, argv)


if __name__ == "__main__":
    main()
