"""Train and evaluate one cell: a method on a task, on a backbone, with a seed.

    iapt-train --method iapt --task sst2 --backbone smollm2-135m --seed 0       # or python -m iapt.cli.train
    accelerate launch --num_processes 2 -m iapt.cli.train --method lora --task rte     # data parallel

Every method gets the same learning-rate search (`--lrs`, chosen on the dev split only); the trial with the best
dev metric is tested once. The cell folder (default $IAPT_CACHE/runs/<backbone>/<task>/<cell name>/) holds
`result.json`, the chosen `adapter/` (reload it with `iapt-predict --adapter …`) and one resumable checkpoint per
trial: rerun the same command after an interruption and it continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import fields
from pathlib import Path

from ..backbones import DEFAULT_BACKBONE, EMBEDDED, TINY, cache_dir
from ..baselines.registry import METHODS, check_method, check_options
from ..data.tasks import DATA_SOURCES, EMBEDDED_TASKS, TASKS, get_task
from ..errors import UserError, cli
from ..harness.store import CellStore, read_record
from ..training.cell import DEFAULT_LRS, CellResult, CellSpec, RunContext, prepare, run_cell
from ..training.config import THETA_MODES, TrainConfig

# Cells this command line trains into the cache are named by the settings that differ from TrainConfig's defaults.
CLI_REFERENCE = {"train": TrainConfig().to_dict(), "lrs": list(DEFAULT_LRS)}


def parse_budget(text: str):
    if text in ("iapt", "none"):
        return None if text == "none" else "iapt"
    try:
        budget = int(float(text))
    except ValueError:
        raise UserError(f"--budget must be an integer, 'iapt' or 'none', not {text!r}") from None
    if budget < 1:
        raise UserError(f"--budget must be a positive number of tunable parameters, not {text!r}")
    return budget


def parse_options(pairs: list[str]) -> dict:
    """KEY=VALUE pairs; values are read as JSON where they parse (numbers, lists, true/false), else strings."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(f"--option takes KEY=VALUE, not {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (argparse then names the flag in its one-line error)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def learning_rates(text: str) -> tuple[float, ...]:
    try:
        lrs = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"--lrs must be comma-separated numbers, not {text!r}") from None
    if not all(lr > 0 for lr in lrs):    # (also refuses nan)
        raise UserError(f"--lrs must be positive learning rates, not {text!r}")
    return lrs


def train_config(kwargs: dict) -> TrainConfig:
    """The TrainConfig of the flags; its checks (positive batch sizes, steps, …) reported with the flag's name."""
    try:
        return TrainConfig(**kwargs)
    except ValueError as e:
        name, _, rest = str(e).partition(" ")
        flag = f"--{name.replace('_', '-')}" if name in kwargs else name
        raise UserError(f"{flag} {rest}") from None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="iapt-train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", required=True, help=f"one of: {', '.join(METHODS)}")
    ap.add_argument("--task", required=True, help=f"one of: {', '.join(TASKS)} (offline: {', '.join(EMBEDDED_TASKS)})")
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE,
                    help=f"embedded ({', '.join(EMBEDDED)}), {TINY} (tests), a local folder or a hub id")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lrs", default=",".join(f"{x:g}" for x in DEFAULT_LRS),
                    help="comma-separated learning-rate trials, chosen on dev (default: %(default)s)")
    ap.add_argument("--budget", default="iapt", help="target tunable parameters: an integer, 'iapt' (IAPT's default "
                    "count on this backbone; the default) or 'none' (each method's default size)")
    ap.add_argument("--size", type=positive_int,
                    help="the method's size knob (rank, prompt length, bottleneck); overrides --budget")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a method option, e.g. pooler=mean for iapt (IAPTConfig fields) or lora_dropout=0.1 (peft)")
    for f in fields(TrainConfig):
        if f.name in ("lr", "seed"):
            continue
        kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" |")[0], str)
        extra = {"choices": THETA_MODES} if f.name == "theta" else {}
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default, help="default: %(default)s", **extra)
    ap.add_argument("--train-examples", type=positive_int, help="use only the first N training examples")
    ap.add_argument("--dev-examples", type=positive_int, help="use only the first N dev examples")
    ap.add_argument("--test-examples", type=positive_int, help="use only the first N test examples")
    ap.add_argument("--data", default="embedded", choices=DATA_SOURCES,
                    help="embedded: the shipped validation sets, re-split (offline); hub: the paper's protocol on the "
                         "hub's GLUE/SuperGLUE/SQuAD (or a local copy under $IAPT_HUB_MIRROR)")
    ap.add_argument("--out-dir", type=Path, help="cell folder (default: under $IAPT_CACHE/runs)")
    ap.add_argument("--fresh", action="store_true", help="recompute the cell even if it finished before")
    return ap


def spec_from_args(args) -> CellSpec:
    check_method(args.method)
    get_task(args.task)
    lrs, options = learning_rates(args.lrs), parse_options(args.option)
    check_options(args.method, options)
    cfg_kwargs = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in ("lr",)}
    cfg_kwargs["patience"] = None if cfg_kwargs["patience"] in (None, 0) else cfg_kwargs["patience"]
    return CellSpec(args.method, args.task, args.backbone, train_config(cfg_kwargs), lrs, parse_budget(args.budget),
                    args.size, options, args.train_examples, args.dev_examples, args.test_examples, args.data)


def train_cell(spec: CellSpec, out_dir: Path | None = None, fresh: bool = False) -> CellResult | None:
    """The cell in `out_dir` (resumed or reused there), or through the cache's store."""
    cell, ctx = prepare(spec), RunContext()
    if out_dir is None:
        return CellStore(cache_dir() / "runs", reference=CLI_REFERENCE).run(cell, ctx, fresh)
    if fresh and out_dir.exists() and ctx.accelerator.is_main_process:
        shutil.rmtree(out_dir)
    ctx.accelerator.wait_for_everyone()
    if (out_dir / "result.json").exists():
        print(f"already done: {out_dir / 'result.json'}")
        return CellResult(read_record(out_dir / "result.json"), out_dir, reused=True)
    return run_cell(cell, out_dir, ctx, str(out_dir))


@cli
def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    result = train_cell(spec_from_args(args), args.out_dir, args.fresh)
    if result:
        print(f"{args.method} on {args.task}: {result['trainable_params']:,d} tunable parameters, lr {result['chosen_lr']:g}, "
              f"dev {result['dev_metric']:.4f}, test {result['test_metric']:.4f}")
        print(f"wrote {result.folder / 'result.json'} and the adapter {result.folder / 'adapter'}")


if __name__ == "__main__":
    sys.exit(main())
