"""Measure what IAPT's activations actually receive, to justify the range the rationals are fitted on.

    python -m scripts.preactivation_stats       # -> results/preactivation_stats.csv

Runs the untrained default IAPT (read="norm", W_down ~ N(0, 1/d)) and, for comparison, the raw-read variant
over sst2 and boolq training prompts on the embedded SmolLM2, and records per layer the quantiles of the
pooled bottleneck values that enter the activation.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from iapt import IAPTConfig, get_iapt_model
from iapt.backbones import DEFAULT_BACKBONE, load_backbone
from iapt.data.format import collate
from iapt.harness.runinfo import RESULTS, run_metadata, write_results
from iapt.data.tasks import get_task
from iapt.data.splits import load_split
from iapt.training.loop import training_features


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=32, help="training prompts per task")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args()
    start = time.time()
    rows = []
    for read in ("norm", "raw"):
        base, tok = load_backbone(DEFAULT_BACKBONE)
        torch.manual_seed(0)
        model = get_iapt_model(base, IAPTConfig(bottleneck_dim=16, read=read, up_init_std=0.02))
        seen: dict[int, list] = {}
        for name, gen in model.generators.items():
            gen.act.register_forward_pre_hook(lambda m, a, layer=int(name): seen.setdefault(layer, []).append(a[0].detach().flatten()))
        for task_name in ("sst2", "boolq"):
            feats = training_features(tok, get_task(task_name), load_split(task_name, "train")[: args.examples], 256)
            for i in range(0, len(feats), 8):
                batch = collate(feats[i:i + 8], tok.pad_token_id)
                with torch.no_grad():
                    model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          instruction_mask=batch["instruction_mask"])
        for layer, chunks in sorted(seen.items()):
            x = torch.cat(chunks).float()
            q = torch.quantile(x, torch.tensor([0.001, 0.01, 0.5, 0.99, 0.999]))
            rows.append({"read": read, "layer": layer, "n_values": x.numel(), "min": x.min().item(),
                         "q0.001": q[0].item(), "q0.01": q[1].item(), "median": q[2].item(), "q0.99": q[3].item(),
                         "q0.999": q[4].item(), "max": x.max().item(), "std": x.std().item()})
    df = pd.DataFrame(rows)
    path = args.out_dir / "preactivation_stats.csv"
    write_results(df, path, run_metadata(backbone=DEFAULT_BACKBONE, profile="cpu", seeds=[0], precision="fp32",
                                         tasks=["sst2", "boolq"], examples_per_task=args.examples,
                                         wall_time_s=round(time.time() - start, 1)))
    print(df.groupby("read")[["min", "q0.001", "q0.999", "max"]].agg(["min", "max"]).to_string())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
