"""Table 1: IAPT against the baselines on GLUE / SuperGLUE / SQuAD at comparable tunable-parameter budgets.

    python experiments/table1_glue.py --profile quick     # a first look, <= 1 h here
    python experiments/table1_glue.py --profile cpu       # what `make table1` runs; hours, resumable
    python experiments/table1_glue.py --profile paper --dry-run     # the paper's plan and parameter counts

Outputs (profile cpu: results/; quick: results/quick/; smoke: a temporary folder):
  table1.csv (one row per method × task × seed), table1_summary.csv (median and spread over seeds; floors),
  table1_curves.csv (learning curves), table1_verdicts.csv (claims 1 and 2, paired bootstrap), each with a
  .meta.json. Cells are reused when their settings and the package's code version match (--fresh recomputes);
  rerun the same command after an interruption.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from iapt.backbones import DEFAULT_BACKBONE, TINY  # noqa: E402
from iapt.engine import TrainConfig  # noqa: E402
from iapt.errors import cli, unknown  # noqa: E402
from iapt.grid import Row, run_grid, summarize  # noqa: E402
from iapt.runinfo import RESULTS, run_metadata, write_results  # noqa: E402
from iapt.stats import paired_bootstrap, verdict  # noqa: E402
from iapt.train import DEFAULT_LRS  # noqa: E402

CORE = ["iapt", "lora", "prefix_tuning", "prompt_tuning"]
EXTENDED = ["idpg", "lpt", "adalora", "ia3"]
PROMPT_BASED = ["prompt_tuning", "prefix_tuning", "idpg", "lpt"]
LORA_FAMILY = ["lora", "adalora", "ia3"]
COMPETITIVE_MARGIN = 0.02   # "competitive with LoRA": IAPT at most 2 points below, with 95 % confidence

PROFILES = {
    "smoke": dict(backbone=TINY, stages=[(["iapt", "lora", "prefix_tuning"], ["sst2", "rte"], [0, 1])],
                  lrs=(1e-2,), n=dict(n_train=16, n_dev=8, n_test=8),
                  train=dict(steps=4, batch_size=4, eval_every=2, patience=None)),
    "quick": dict(backbone=DEFAULT_BACKBONE, stages=[(["iapt", "lora", "prefix_tuning"], ["sst2", "rte"], [0])],
                  lrs=(1e-3, 1e-2), n=dict(n_dev=100, n_test=200),
                  train=dict(steps=100, batch_size=8, eval_every=25, patience=None)),
    "cpu": dict(backbone=DEFAULT_BACKBONE,
                stages=[(CORE, ["sst2", "rte", "boolq", "copa"], [0, 1, 2]),               # the core grid
                        (EXTENDED, ["sst2", "rte", "boolq", "copa"], [0, 1, 2]),           # extended methods
                        (CORE + EXTENDED, ["mrpc", "cb", "squad"], [0, 1, 2])],            # extended tasks
                lrs=DEFAULT_LRS, n={}, train=dict(steps=200, batch_size=8, eval_every=25, patience=4)),
    "paper": dict(backbone="meta-llama/Llama-2-7b-hf",
                  stages=[(["iapt", "prompt_tuning", "prefix_tuning", "idpg", "lpt", "lora", "adalora", "ia3"],
                           ["sst2", "rte", "qnli", "boolq", "copa", "record", "squad"], [0, 1, 2, 3, 4])],
                  lrs=(1e-4,), n={}, train=dict(steps=10_000, batch_size=16, eval_every=200, patience=5),
                  sizes={"iapt": 320, "lora": 32, "prefix_tuning": 16}),
}
# LLaMA-2 7B's architecture, for the dry run without hub access (the published config's sizes).
LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32000)


def dry_run(prof: dict) -> None:
    """Print the plan and each method's tunable parameters, counted on a weightless LLaMA-2 7B."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from iapt.methods import count_trainable
    with torch.device("meta"):
        skeleton = LlamaForCausalLM(LlamaConfig(**LLAMA2_7B))
    print(f"backbone {prof['backbone']} (architecture from its published config; weights not loaded)")
    for methods, tasks, seeds in prof["stages"]:
        print(f"{len(methods)} methods × {len(tasks)} tasks ({', '.join(tasks)}) × {len(seeds)} seeds, "
              f"lr {prof['lrs']}, {prof['train']}")
        for m in methods:
            size = prof.get("sizes", {}).get(m)
            print(f"  {m:15s} size {size if size else 'default/budget'}: "
                  f"{count_trainable(m, skeleton, size, total_steps=10):>12,d} tunable parameters")
    print("run it with: accelerate launch experiments/table1_glue.py --profile paper (needs GPUs and hub access)")


def per_example(df: pd.DataFrame, row: str) -> dict[str, np.ndarray]:
    """task -> (seeds, examples) correctness of one row."""
    out = {}
    for task, g in df[df.row == row].groupby("task"):
        out[task] = np.array([[float(x) for x in s.split()] for s in g.sort_values("seed")["test_correct"]])
    return out


def verdicts(df: pd.DataFrame) -> pd.DataFrame:
    recs = []
    for claim, others, margin in (("1: IAPT beats prompt-based methods", PROMPT_BASED, 0.0),
                                  ("2: IAPT competitive with LoRA-family", LORA_FAMILY, COMPETITIVE_MARGIN)):
        for other in others:
            if other not in set(df.row) or "iapt" not in set(df.row):
                continue
            a, b = per_example(df, "iapt"), per_example(df, other)
            common = [t for t in a if t in b and a[t].shape == b[t].shape]
            for scope in common + ["all"]:
                tasks = common if scope == "all" else [scope]
                if not tasks:
                    continue
                diff, lo, hi = paired_bootstrap({t: a[t] for t in tasks}, {t: b[t] for t in tasks})
                recs.append({"claim": claim, "iapt_vs": other, "tasks": scope, "diff": diff, "ci_low": lo,
                             "ci_high": hi, "margin": margin, "verdict": verdict(lo, hi, margin)})
    return pd.DataFrame(recs)


@cli
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)}")
    ap.add_argument("--out-dir", type=Path, help="where the CSVs go (default by profile, see above)")
    ap.add_argument("--fresh", action="store_true", help="recompute finished cells")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and parameter counts, run nothing")
    ap.add_argument("--backbone", help="override the profile's backbone (a local folder or hub id)")
    ap.add_argument("--stages", help="comma-separated stage numbers to run (default: all, in order)")
    args = ap.parse_args(argv)
    if args.profile not in PROFILES:
        raise unknown("profile", args.profile, PROFILES)
    prof = PROFILES[args.profile]
    if args.dry_run:
        return dry_run(prof)
    backbone = args.backbone or prof["backbone"]
    default_out = {"cpu": RESULTS, "quick": RESULTS / "quick"}.get(args.profile)
    out_dir = args.out_dir or default_out or Path(tempfile.mkdtemp(prefix="iapt-smoke-"))
    stages = prof["stages"] if not args.stages else [prof["stages"][int(i)] for i in args.stages.split(",")]
    cfg = TrainConfig(**prof["train"])
    meta = run_metadata(profile=args.profile, backbone=backbone, train=cfg.to_dict(), lrs=list(prof["lrs"]),
                        data=prof["n"], script="experiments/table1_glue.py")
    frames = []
    for i, (methods, tasks, seeds) in enumerate(stages):
        print(f"stage {i}: {len(methods)} methods × {len(tasks)} tasks × {len(seeds)} seeds")
        rows = [Row(m, m, size=prof.get("sizes", {}).get(m)) for m in methods]
        frames.append(run_grid(rows, tasks, seeds, backbone=backbone, train_cfg=cfg, lrs=prof["lrs"],
                               out_csv=out_dir / f".table1_stage{i}.csv", curves_csv=out_dir / f".table1_stage{i}_curves.csv",
                               metadata=meta, profile=args.profile, n=prof["n"],
                               cells_dir=out_dir / "cells" if args.profile == "smoke" else None, fresh=args.fresh))
        df = pd.concat(frames, ignore_index=True)
        curves = pd.concat([pd.read_csv(out_dir / f".table1_stage{j}_curves.csv") for j in range(len(frames))])
        zs = RESULTS / "zeroshot.csv"
        floors = pd.read_csv(zs) if zs.exists() else None
        if floors is not None:
            floors = floors[(floors.backbone == backbone) & (floors.split == "test")]
        mixed = df["code_version"].nunique() > 1
        meta_now = {**meta, "code_versions": sorted(set(df["code_version"])), "mixed_code_versions": mixed}
        write_results(df, out_dir / "table1.csv", meta_now)
        write_results(curves, out_dir / "table1_curves.csv", meta_now)
        write_results(summarize(df, floors), out_dir / "table1_summary.csv", meta_now)
        write_results(verdicts(df), out_dir / "table1_verdicts.csv", meta_now)
    for j in range(len(frames)):   # the per-stage files were only there to survive interruptions
        for suffix in ("", "_curves"):
            for ext in (".csv", ".meta.json"):
                (out_dir / f".table1_stage{j}{suffix}{ext}").unlink(missing_ok=True)
    summary = pd.read_csv(out_dir / "table1_summary.csv")
    print(summary[[c for c in summary.columns if not c.endswith(("_spread", "_seeds", "code_versions"))]].to_string(index=False))
    if mixed:
        print("note: this table mixes code versions (see code_versions)")
    print(f"wrote {out_dir / 'table1.csv'}, table1_summary.csv, table1_curves.csv, table1_verdicts.csv")


if __name__ == "__main__":
    main()
