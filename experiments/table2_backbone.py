"""Which embedded backbone Table 2 uses, chosen by measurement on Natural Instructions dev data.

    python -m experiments.table2_backbone            # about 15 min here -> results/table2_backbone.csv

For each embedded backbone, the same short LoRA run on NI (the same steps, lr and examples) gives: the dev
ROUGE-L before tuning (step 0: LoRA starts as the identity), the best dev ROUGE-L after, their difference
(the room instruction tuning has on that backbone) and the seconds per training step. A backbone with more
room separates methods better; seconds per step decide what the cpu profile can afford.
"""
from __future__ import annotations

import time

import pandas as pd

from iapt.backbones import EMBEDDED, TINY
from iapt.training.loop import TrainConfig
from iapt.harness.scriptargs import chosen_profile, profile_parser
from iapt.errors import cli
from iapt.harness.runinfo import run_metadata, write_results
from iapt.cli.train import train_cell
from iapt.training.cell import CellSpec
from experiments.table2_instruct import NI_TRAIN_CONFIG

PROFILES = {
    "smoke": dict(backbones=[TINY], n=dict(n_train=16, n_dev=8, n_test=8), train=dict(steps=4, eval_every=2)),
    "cpu": dict(backbones=list(EMBEDDED), n=dict(n_dev=32, n_test=32), train=dict(steps=30, eval_every=15)),
}
LR = 1e-3


@cli
def main(argv=None):
    args = profile_parser(__doc__, PROFILES).parse_args(argv)
    (prof, out), t0 = chosen_profile(args, PROFILES), time.time()
    cfg = TrainConfig(**{**NI_TRAIN_CONFIG, **prof["train"], "patience": None})
    recs = []
    for backbone in prof["backbones"]:
        result = train_cell(CellSpec("lora", "ni", backbone, cfg, (LR,), None, **prof["n"]))
        trial = result["trials"][f"{LR:g}"]
        recs.append({"backbone": backbone, "method": "lora", "steps": trial["steps_run"], "lr": LR,
                     "dev_rouge_l_untuned": trial["dev_metric"][0], "dev_rouge_l_best": trial["best_dev_metric"],
                     "dev_gain": trial["best_dev_metric"] - trial["dev_metric"][0],
                     "test_rouge_l": result["test_metric"], "n_dev": result["spec"]["n"]["dev"],
                     "s_per_step": round(trial["train_wall_s"] / max(trial["steps_run"], 1), 2),
                     "trainable_params": result["trainable_params"], "code_version": result["code_version"]})
        meta = run_metadata(profile=args.profile, script="experiments/table2_backbone.py", train=cfg.to_dict(),
                            data=prof["n"], wall_s=round(time.time() - t0, 1))
        write_results(pd.DataFrame(recs), out / "table2_backbone.csv", meta)
    print(pd.DataFrame(recs).to_string(index=False))
    print(f"wrote {out / 'table2_backbone.csv'}")


if __name__ == "__main__":
    main()
