"""Choose IAPT's defaults by measurement on *dev* splits (never test).

    python -m experiments.probe_iapt_defaults --profile cpu              # sst2 -> results/iapt_defaults_probe.csv
    python -m experiments.probe_iapt_defaults --profile cpu --task ni    # NI -> results/iapt_defaults_probe_ni.csv

Each variant trains IAPT on the sst2 train split of the embedded SmolLM2 with the same steps, batch, learning
rate and seed, and reports the dev accuracy at step 0 (what an untrained IAPT does to the frozen model) and
the best dev accuracy. Variants: the paper's literal reading (raw hidden states in, generator output written
into the slots, small random W_up) vs our choices (layer-norm read, slot = instruction mean + output,
W_up = 0), each with the slots as prefix or between instruction and response; and ours with the slots just
before the instruction's last token (before_last), added after the engine's tests showed that `between`
slots let only the last layer's generator reach a one-token response. Resumable: finished variants
are kept in the CSV and skipped (unless --fresh).

`--task ni` repeats the question for generation (Table 2: Natural Instructions, dev ROUGE-L on 6 training-side
subtasks, Table 2's sequence length, batch and alternating Θ updates): ours/before_last with the slot base
value the instruction mean (the default) against zero (the paper's), after Table 2's quick run found IAPT's
untrained slots wrecking multi-token generation.
"""
from __future__ import annotations

import time

import pandas as pd

from iapt import IAPTConfig, get_iapt_model
from iapt.backbones import DEFAULT_BACKBONE, TINY, load_backbone
from iapt.harness.scriptargs import chosen_profile, profile_parser
from iapt.errors import cli, unknown
from iapt.harness.runinfo import COMMIT_AT_START, RESULTS, read_results, run_metadata, write_results
from iapt.data.tasks import get_task
from iapt.data.splits import load_split
from iapt.training.loop import TrainConfig, train

VARIANTS = {
    "paper-literal/prefix": dict(placement="prefix", read="raw", slot_init="zero", up_init_std=0.02),
    "paper-literal/between": dict(placement="between", read="raw", slot_init="zero", up_init_std=0.02),
    "ours/prefix": dict(placement="prefix", read="norm", slot_init="mean", up_init_std=0.0),
    "ours/between": dict(placement="between", read="norm", slot_init="mean", up_init_std=0.0),
    "ours/before_last": dict(placement="before_last", read="norm", slot_init="mean", up_init_std=0.0),
    "ours/before_last/zero-slot": dict(placement="before_last", read="norm", slot_init="zero", up_init_std=0.0),
}
SMOKE = dict(steps=3, batch=4, train=16, dev=8, eval_every=3, variants=["ours/between", "paper-literal/prefix"])
PROFILES = {   # per task; theta and max_length as the tables that use the task train
    "sst2": {"smoke": {**SMOKE, "theta": "joint"},
             "cpu": dict(steps=200, batch=8, train=None, dev=None, eval_every=50, theta="joint",
                         variants=list(VARIANTS))},
    "ni": {"smoke": {**SMOKE, "theta": "alternate", "max_length": 64},
           "cpu": dict(steps=30, batch=4, train=None, dev=24, eval_every=15, theta="alternate", max_length=192,
                       eval_batch_size=16, variants=["ours/before_last", "ours/before_last/zero-slot"])},
}


@cli
def main(argv=None):
    ap = profile_parser(__doc__, PROFILES["sst2"])
    ap.add_argument("--task", default="sst2", help=f"one of {', '.join(PROFILES)}")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--bottleneck", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true", help="recompute finished variants")
    args = ap.parse_args(argv)
    if args.task not in PROFILES:
        raise unknown("task", args.task, PROFILES)
    prof, out_dir = chosen_profile(args, PROFILES[args.task], {"cpu": RESULTS})
    filename = "iapt_defaults_probe.csv" if args.task == "sst2" else f"iapt_defaults_probe_{args.task}.csv"
    out = out_dir / filename
    done = read_results(out) if out.exists() and not args.fresh else pd.DataFrame()
    task = get_task(args.task)
    train_ex = load_split(args.task, "train")[: prof["train"]]
    dev_ex = load_split(args.task, "dev")[: prof["dev"]]
    lengths = {k: prof[k] for k in ("max_length", "eval_batch_size") if k in prof}
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
                                 eval_every=prof["eval_every"], patience=None, theta=prof["theta"], theta_lr=args.lr,
                                 **lengths))
        rows.append({"variant": name, **VARIANTS[name], "backbone": backbone, "task": args.task, "split": "dev",
                     "n_dev": len(dev_ex), "dev_acc_step0": hist["dev_metric"][0], "best_dev_acc": hist["best_dev_metric"],
                     "metric": task.metric, "theta": prof["theta"],
                     "best_step": hist["best_step"], "dev_curve": " ".join(f"{s}:{m:.3f}" for s, m in zip(hist["dev_step"], hist["dev_metric"])),
                     "first_train_loss": hist["train_loss"][0], "last_train_loss": sum(hist["train_loss"][-10:]) / len(hist["train_loss"][-10:]),
                     "steps": prof["steps"], "batch": prof["batch"], "lr": args.lr, "bottleneck": args.bottleneck,
                     "seed": args.seed, "trainable_params": model.get_nb_trainable_parameters()[0],
                     "wall_s": round(time.time() - t0, 1), "code_version": COMMIT_AT_START})
        write_results(pd.DataFrame(rows), out, run_metadata(profile=args.profile, backbone=backbone, seeds=[args.seed],
                                                            script="experiments/probe_iapt_defaults.py"))
        print(f"{name}: dev {task.metric} {hist['dev_metric'][0]:.3f} -> best {hist['best_dev_metric']:.3f}")
    print(pd.DataFrame(rows)[["variant", "dev_acc_step0", "best_dev_acc", "last_train_loss"]].to_string(index=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
