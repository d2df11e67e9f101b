"""The protocol pilot: where does the seed noise of IAPT − LoRA on sst2 come from, and which training protocol
buys the narrowest interval per hour of compute? (docs/table1.md, "Choosing the protocol")

    python -m experiments.pilot_protocol --profile cpu     # what `make pilot` runs; hours, resumable

IAPT and LoRA on sst2, 5 seeds each, under three protocols: the grid's (60 steps, learning rate from
{1e-3, 1e-2} on seed 0), 200 steps at 1e-3, and 400 steps at 1e-3 stopped early on dev. Outputs (cpu: results/):
pilot_protocol.csv (one row per cell), _summary, _curves and pilot_protocol_noise.csv: per protocol, each
method's mean and per-seed standard deviation, the standard deviation of the per-seed difference, IAPT − LoRA
with its crossed-bootstrap 95 % interval (seeds and test examples resampled), the compute spent, the half-width
that one hour of compute on that protocol would give (half-width × √hours: seed noise shrinks as 1/√seeds), and
the seeds that a half-width of 0.02 would need at the measured noise.
"""
from __future__ import annotations

import math

import pandas as pd

from iapt.errors import cli
from iapt.harness.grid import TableScript, run_table
from iapt.harness.stats import compare_rows
from experiments.common import CPU_REFERENCE, load_profiles, zeroshot_floors

PROFILES = load_profiles(__file__)   # pilot_protocol.yaml beside this file
TARGET_HALF_WIDTH = 0.02


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
        hw = found["half_width"]
        recs.append({"protocol": protocol, "n_seeds": len(paired),
                     "iapt_mean": paired[a].mean(), "lora_mean": paired[b].mean(),
                     "iapt_seed_sd": paired[a].std(ddof=1), "lora_seed_sd": paired[b].std(ddof=1),
                     "diff_seed_sd": (paired[a] - paired[b]).std(ddof=1),
                     "diff": found["diff"], "ci_low": found["ci_low"], "ci_high": found["ci_high"], "half_width": hw,
                     "precision": found["precision"], "claim2_verdict": found["verdict"],
                     "compute_h": hours, "half_width_per_compute_hour": hw * math.sqrt(hours),
                     f"seeds_for_half_width_{TARGET_HALF_WIDTH}": math.ceil(len(paired) * (hw / TARGET_HALF_WIDTH) ** 2)})
    return pd.DataFrame(recs)


@cli
def main(argv=None):
    return run_table(TableScript("pilot_protocol", __doc__, "experiments/pilot_protocol.py", floors=zeroshot_floors,
                                 reference=CPU_REFERENCE, extras=lambda df: {"noise": noise(df)}), PROFILES, argv)


if __name__ == "__main__":
    main()
