"""Choose IAPT's defaults by measurement on the sst2 *dev* split (never test).

    python experiments/probe_iapt_defaults.py --profile cpu     # -> results/iapt_defaults_probe.csv

Each variant trains IAPT on the sst2 train split of the embedded SmolLM2 with the same steps, batch, learning
rate and seed, and reports the dev accuracy at step 0 (what an untrained IAPT does to the frozen model) and
the best dev accuracy. Variants: the paper's literal reading (raw hidden states in, generator output written
into the slots, small random W_up) vs our choices (layer-norm read, slot = instruction mean + output,
W_up = 0), each with the slots as prefix or between instruction and response; and ours with the slots just
before the instruction's last token (before_last), added after the engine's tests showed that `between`
slots let only the last layer's generator reach a one-token response. Resumable: finished variants
are kept in the CSV and skipped (unless --fresh).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from iapt import IAPTConfig, get_iapt_model  # noqa: E402
from iapt.backbones import DEFAULT_BACKBONE, TINY, load_backbone  # noqa: E402
from iapt.errors import cli, unknown  # noqa: E402
from iapt.runinfo import COMMIT_AT_START, RESULTS, run_metadata, write_results  # noqa: E402
from iapt.tasks import get_task, load_split  # noqa: E402
from iapt.engine import TrainConfig, train  # noqa: E402

VARIANTS = {
    "paper-literal/prefix": dict(placement="prefix", read="raw", slot_init="zero", up_init_std=0.02),
    "paper-literal/between": dict(placement="between", read="raw", slot_init="zero", up_init_std=0.02),
    "ours/prefix": dict(placement="prefix", read="norm", slot_init="mean", up_init_std=0.0),
    "ours/between": dict(placement="between", read="norm", slot_init="mean", up_init_std=0.0),
    "ours/before_last": dict(placement="before_last", read="norm", slot_init="mean", up_init_std=0.0),
}
PROFILES = {
    "smoke": dict(steps=3, batch=4, train=16, dev=8, eval_every=3, variants=["ours/between", "paper-literal/prefix"]),
    "cpu": dict(steps=200, batch=8, train=None, dev=None, eval_every=50, variants=list(VARIANTS)),
}


@cli
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)}")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--bottleneck", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path)
    ap.add_argument("--fresh", action="store_true", help="recompute finished variants")
    args = ap.parse_args(argv)
    if args.profile not in PROFILES:
        raise unknown("profile", args.profile, PROFILES)
    prof = PROFILES[args.profile]
    out = (args.out_dir or (RESULTS if args.profile == "cpu" else Path(tempfile.mkdtemp(prefix="iapt-smoke-")))) / "iapt_defaults_probe.csv"
    done = pd.read_csv(out) if out.exists() and not args.fresh else pd.DataFrame()
    task = get_task("sst2")
    train_ex = load_split("sst2", "train")[: prof["train"]]
    dev_ex = load_split("sst2", "dev")[: prof["dev"]]
    backbone = TINY if args.profile == "smoke" else DEFAULT_BACKBONE
    rows = done.to_dict("records")
    for name in prof["variants"]:
        if any(r["variant"] == name for r in rows):
            print(f"{name}: already in {out}, skipped")
            continue
        base, tok = load_backbone(backbone)
        cfg = IAPTConfig(bottleneck_dim=args.bottleneck, **VARIANTS[name])
        model = get_iapt_model(base, cfg)
        t0 = time.time()
        hist = train(model, tok, task, train_ex, dev_ex,
                     TrainConfig(steps=prof["steps"], batch_size=prof["batch"], lr=args.lr, seed=args.seed,
                                 eval_every=prof["eval_every"], patience=None, theta="joint", theta_lr=args.lr))
        rows.append({"variant": name, **VARIANTS[name], "backbone": backbone, "task": "sst2", "split": "dev",
                     "n_dev": len(dev_ex), "dev_acc_step0": hist["dev_metric"][0], "best_dev_acc": hist["best_dev_metric"],
                     "best_step": hist["best_step"], "dev_curve": " ".join(f"{s}:{m:.3f}" for s, m in zip(hist["dev_step"], hist["dev_metric"])),
                     "first_train_loss": hist["train_loss"][0], "last_train_loss": sum(hist["train_loss"][-10:]) / len(hist["train_loss"][-10:]),
                     "steps": prof["steps"], "batch": prof["batch"], "lr": args.lr, "bottleneck": args.bottleneck,
                     "seed": args.seed, "trainable_params": model.get_nb_trainable_parameters()[0],
                     "wall_s": round(time.time() - t0, 1), "code_version": COMMIT_AT_START})
        write_results(pd.DataFrame(rows), out, run_metadata(profile=args.profile, backbone=backbone, seeds=[args.seed],
                                                            script="experiments/probe_iapt_defaults.py"))
        print(f"{name}: dev acc {hist['dev_metric'][0]:.3f} -> best {hist['best_dev_metric']:.3f}")
    print(pd.DataFrame(rows)[["variant", "dev_acc_step0", "best_dev_acc", "last_train_loss"]].to_string(index=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
