"""Table 4: prompt length, pooler, placement, bottleneck, our deviations, and the controls that isolate
"instruction-aware" (the paper's claims 4 and 5: four soft tokens suffice; self-attention pooling wins).

    python -m experiments.table4_length --profile quick    # a first look, <= 1 h here
    python -m experiments.table4_length --profile cpu      # what `make table4` runs; hours, resumable

Rows, each one change from IAPT's defaults (4 soft tokens, attention pooler, before_last slots, m = 16,
layer-norm read, slot = generator output, W_up = 0): soft tokens 1, 2, 8, 16; mean, max and
last-token pooling; prefix and between slots; bottleneck 4, 8, 32, 64; raw read and small random W_up (each
of our deviations undone alone), and slot = instruction mean + output (our former default); and two controls: the generators fed another example's instruction
(the batch rolled by one) or a constant input (a per-layer learned prompt with the same generator). If IAPT
does not beat the controls, reading the instruction is not what helps. Sizes are not re-matched: the token
and bottleneck rows change the parameter count, which the CSV reports. Outputs as for Table 3:
table4.csv, _summary, _curves, _verdicts (claims 4 and 5, the controls and our choices: paired bootstrap).
"""
from __future__ import annotations

import pandas as pd

from iapt.errors import cli
from iapt.harness.grid import TableScript, run_table
from iapt.harness.stats import compare_rows
from experiments.common import CPU_REFERENCE, load_profiles, zeroshot_floors

COMPARISONS = [   # (claim, the row IAPT's defaults are compared with, margin)
    ("4: four soft tokens suffice (8 and 16 add little)", "8 soft tokens", 0.02),
    ("4: four soft tokens suffice (8 and 16 add little)", "16 soft tokens", 0.02),
    # the paper's length curve also rises up to 4: do fewer tokens lose?
    ("4 (the paper's curve): fewer than four lose", "1 soft tokens", 0.0),
    ("4 (the paper's curve): fewer than four lose", "2 soft tokens", 0.0),
    ("5: self-attention pooling beats mean", "pooler mean", 0.0),
    ("5: self-attention pooling beats max", "pooler max", 0.0),
    ("5: self-attention pooling beats last token", "pooler last", 0.0),
    ("control: reading the instruction helps (vs shuffled)", "control: shuffled instruction", 0.0),
    ("control: reading the instruction helps (vs constant)", "control: constant input", 0.0),
    # our choices, each against the alternative it replaced (the paper's where there is one)
    ("ours: before_last slots beat the prefix", "placement prefix", 0.0),
    ("ours: before_last slots beat slots between instruction and response", "placement between", 0.0),
    ("ours: the layer-norm read beats the raw read (paper)", "read raw (paper)", 0.0),
    ("ours: W_up = 0 beats a small random W_up", "W_up random 0.02", 0.0),
    ("ours: the zero slot is as good as the mean slot (margin 0.02)",
     "slot = instruction mean + output (ours, former default)", 0.02),
]
PROFILES = load_profiles(__file__)   # table4_length.yaml beside this file
ROWS = PROFILES["cpu"]["rows"]
DEFAULT = ROWS[0]   # IAPT at its defaults, against which every other row is compared


def verdicts(df: pd.DataFrame) -> pd.DataFrame:
    """Defaults − other > −margin ("4 suffice": a longer prompt is at most `margin` better)."""
    recs = []
    for claim, other, margin in COMPARISONS:
        found = compare_rows(df, DEFAULT.name, other, margin)
        if found:
            recs.append({"claim": claim, "defaults_vs": other, **found})
    return pd.DataFrame(recs)


@cli
def main(argv=None):
    return run_table(TableScript("table4", __doc__, "experiments/table4_length.py", floors=zeroshot_floors, reference=CPU_REFERENCE,
                          extras=lambda df: {"verdicts": verdicts(df)}), PROFILES, argv)


if __name__ == "__main__":
    main()
