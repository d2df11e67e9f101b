"""The engine's acceptance check: does tuning lift sst2 test accuracy clearly above the floor?

    python -m experiments.engine_acceptance --profile cpu     # -> results/engine_acceptance.csv

Runs `iapt.training.cell`'s cell (learning-rate search on dev, best trial tested once) for IAPT and LoRA at IAPT's
default budget on the embedded SmolLM2, and compares each test accuracy with max(zero-shot, majority class)
from the same test split (results/zeroshot.csv, recomputed here if missing). The bar is +0.15. Each cell is
resumable (rerun the command); finished cells are reused. Profiles: smoke (tiny random model, temporary
folder), cpu (the recorded settings below; ~1 h per method here). Methods already in the CSV are kept
(--fresh recomputes them).
"""
from __future__ import annotations

import time

import pandas as pd

from iapt.backbones import DEFAULT_BACKBONE, TINY
from iapt.training.loop import TrainConfig
from iapt.harness.scriptargs import chosen_profile, profile_parser
from iapt.errors import cli
from iapt.harness.runinfo import RESULTS, read_results, run_metadata, write_results
from iapt.cli.train import train_cell
from iapt.training.cell import DEFAULT_LRS, CellSpec

BAR = 0.15
PROFILES = {
    "smoke": dict(backbone=TINY, methods=["iapt", "lora"], lrs=(1e-2,), n=dict(n_train=16, n_dev=8, n_test=8),
                  train=dict(steps=4, batch_size=4, eval_every=2, patience=None)),
    "cpu": dict(backbone=DEFAULT_BACKBONE, methods=["iapt", "lora"], lrs=DEFAULT_LRS, n={},
                train=dict(steps=200, batch_size=8, eval_every=25, patience=4)),
}


def floor_of(task: str, backbone: str) -> dict:
    zs = read_results(RESULTS / "zeroshot.csv")
    rows = zs[(zs.task == task) & (zs.backbone == backbone) & (zs.split == "test")].set_index("method")["metric"]
    return {"zero_shot": float(rows["zero-shot"]), "majority": float(rows["majority-class"])}


@cli
def main(argv=None):
    ap = profile_parser(__doc__, PROFILES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true", help="recompute methods already in the CSV")
    args = ap.parse_args(argv)
    prof, out_dir = chosen_profile(args, PROFILES)
    smoke = args.profile == "smoke"
    floors = {"zero_shot": float("nan"), "majority": float("nan")} if smoke else floor_of("sst2", prof["backbone"])
    cfg = TrainConfig(seed=args.seed, **prof["train"])
    out = out_dir / "engine_acceptance.csv"
    # rows already in the CSV are kept (their code_version column says which code made them)
    rows = read_results(out).to_dict("records") if out.exists() and not args.fresh else []
    t0 = time.time()
    for method in prof["methods"]:
        if any(r["method"] == method for r in rows):
            print(f"{method}: already in {out}, kept")
            continue
        cells = out_dir / "cells" if smoke else None
        r = train_cell(CellSpec(method, "sst2", prof["backbone"], cfg, tuple(prof["lrs"]), "iapt", **prof["n"]),
                       cells / method if cells else None)
        floor = max(floors.values())
        rows.append({"method": method, "task": "sst2", "backbone": prof["backbone"], "seed": args.seed,
                     "trainable_params": r["trainable_params"], "size": f"{r['size_name']}={r['size']}",
                     "chosen_lr": r["chosen_lr"], "dev_acc": r["dev_metric"], "test_acc": r["test_metric"],
                     "n_test": r["test"]["n"], "zero_shot_acc": floors["zero_shot"], "majority_acc": floors["majority"],
                     "lift_over_floor": r["test_metric"] - floor, "bar": BAR, "passes": r["test_metric"] - floor >= BAR,
                     "best_step": r["trials"][f"{r['chosen_lr']:g}"]["best_step"],
                     "dev_by_lr": " ".join(f"{lr}:{t['best_dev_metric']:.3f}" for lr, t in r["trials"].items()),
                     "train_wall_s": round(r["wall_s"]["train"], 1), "cell_wall_s": round(r["wall_s"]["cell"], 1),
                     "git_commit": r["meta"]["git_commit"], "code_version": r["code_version"], "cell": r["cell"]})
        print(f"{method}: test {r['test_metric']:.3f} (floor {floor:.3f}, lift {r['test_metric'] - floor:+.3f})")
        # rewritten after each method: finished rows are never lost
        write_results(pd.DataFrame(rows), out, run_metadata(profile=args.profile, backbone=prof["backbone"],
                                                            seeds=[args.seed], train=cfg.to_dict(), lrs=list(prof["lrs"]),
                                                            wall_s=round(time.time() - t0, 1),
                                                            script="experiments/engine_acceptance.py"))
    print(pd.DataFrame(rows)[["method", "trainable_params", "chosen_lr", "dev_acc", "test_acc", "lift_over_floor",
                              "passes"]].to_string(index=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
