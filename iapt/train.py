"""Train and evaluate one cell: a method on a task, on a backbone, with a seed.

    python -m iapt.train --method iapt --task sst2 --backbone smollm2-135m --seed 0
    accelerate launch --num_processes 2 -m iapt.train --method lora --task rte     # data parallel

Every method gets the same learning-rate search (`--lrs`, chosen on the dev split only, the paper's 1e-4
included); the trial with the best dev metric is tested once. The cell folder (default
$IAPT_CACHE/runs/<backbone>/<task>/<method>-seed<seed>-<config hash>/) holds `result.json`, the chosen
`adapter/` (reload it with `python -m iapt.predict --adapter …`) and one resumable checkpoint per trial:
rerun the same command after an interruption and it continues where it stopped.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import resource
import shutil
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

from .backbones import DEFAULT_BACKBONE, EMBEDDED, TINY, cache_dir, load_backbone
from .engine import THETA_MODES, TrainConfig, train
from .errors import UserError, cli, unknown
from .evaluation import evaluate
from . import records
from .methods import METHODS, build_method, count_trainable, describe, load_method, save_method
from .runinfo import CODE_AT_START, atomic_write_text, run_metadata
from .tasks import DATA_SOURCES, EMBEDDED_TASKS, TASKS, get_task, load_split

DEFAULT_LRS = (1e-4, 1e-3, 1e-2)


def iapt_budget(backbone) -> int:
    """The default budget: IAPT's tunable-parameter count at its default size on this backbone."""
    return count_trainable("iapt", backbone, None)


def cell_id(spec: dict) -> str:
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return f"{spec['backbone']}/{spec['task']}/{spec['method']}-seed{spec['train']['seed']}-{digest}"


def peak_memory_mb(device) -> float:
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # process peak RSS (Linux: KiB)


def run_cell(method: str, task_name: str, backbone_name: str = DEFAULT_BACKBONE, *, train_cfg: TrainConfig,
             lrs=DEFAULT_LRS, budget: int | str | None = "iapt", size: int | None = None, options: dict | None = None,
             n_train: int | None = None, n_dev: int | None = None, n_test: int | None = None,
             out_dir: Path | None = None, accelerator=None, progress: bool = True, fresh: bool = False,
             data: str = "embedded", reuse_code_versions: tuple[str, ...] = (), record_store: Path | None = None) -> dict:
    """Learning-rate search on dev, then one test evaluation of the best trial; returns the result dict.
    `data`: "embedded" (the shipped validation sets, re-split) or "hub" (the paper's protocol, `iapt.hub_data`).

    The cell folder is keyed by every setting and the package's code version: a finished cell is reused only
    when both match; `fresh` recomputes it. `reuse_code_versions` also accepts a cell finished, with the same
    settings, at one of these older code versions (for changes known not to touch this cell; its result keeps
    the code version it ran at, so the table says it mixes versions). `record_store` (a table's committed records,
    `iapt.records`) is searched for a finished cell the cache lacks, unless `fresh`."""
    if method not in METHODS:
        raise unknown("method", method, METHODS)
    task = get_task(task_name)
    options = dict(options or {})
    if accelerator is None:
        from accelerate import Accelerator
        accelerator = Accelerator(cpu=not torch.cuda.is_available())
    backbone, tokenizer = load_backbone(backbone_name)
    if budget == "iapt":
        budget = iapt_budget(backbone)
    splits = {"train": load_split(task_name, "train", data)[:n_train], "dev": load_split(task_name, "dev", data)[:n_dev],
              "test": load_split(task_name, "test", data)[:n_test]}
    spec = {"method": method, "task": task_name, "data": data, "backbone": backbone_name, "budget": budget, "size": size,
            "options": options, "lrs": list(lrs), "train": {**train_cfg.to_dict(), "lr": None},
            "n": {k: len(v) for k, v in splits.items()}, "code": CODE_AT_START}
    runs, explicit_dir = cache_dir() / "runs", out_dir is not None
    out_dir = Path(out_dir) if out_dir else runs / cell_id(spec)
    result_path = out_dir / "result.json"
    if fresh and accelerator.is_main_process:   # retrained: its earlier result goes, cached and recorded
        for folder in (out_dir, record_store / cell_id(spec) if record_store is not None else None):
            if folder is not None and folder.exists():
                shutil.rmtree(folder)
    # This version's cell first, then the same settings finished at an accepted older version; each from the
    # cache, else from its committed record.
    versions = [spec["code"]] + ([] if fresh or explicit_dir else list(reuse_code_versions))
    for version in versions:
        cell = cell_id({**spec, "code": version})
        folder = out_dir if version == spec["code"] else runs / cell
        if not fresh and accelerator.is_main_process and records.restore(cell, folder, record_store):
            print(f"restored from the committed record {record_store / cell}")
        accelerator.wait_for_everyone()
        if (folder / "result.json").exists():
            if accelerator.is_main_process:
                print(f"already done: {folder / 'result.json'}" if version == spec["code"]
                      else f"reusing the cell finished at code version {version}: {folder}")
            return json.loads((folder / "result.json").read_text())
    t_cell = time.time()
    trials = {}
    for lr in lrs:
        trial_dir = out_dir / "trials" / f"lr={lr:g}"
        if (trial_dir / "trial.json").exists():
            trials[lr] = json.loads((trial_dir / "trial.json").read_text())
            continue
        cfg = TrainConfig(**{**train_cfg.to_dict(), "lr": lr})
        torch.manual_seed(cfg.seed)   # the method's initialisation depends on the seed only
        model = build_method(method, copy.deepcopy(backbone), budget=budget, size=size,
                             total_steps=cfg.steps, **options)
        history = train(model, tokenizer, task, splits["train"], splits["dev"], cfg, accelerator=accelerator,
                        checkpoint=trial_dir / "checkpoint.pt", progress=progress)
        if accelerator.is_main_process:
            save_method(model, trial_dir / "adapter", task=task_name, backbone=backbone_name)
            atomic_write_text(trial_dir / "trial.json", json.dumps({"lr": lr, **history}) + "\n")
        trials[lr] = {"lr": lr, **history}
        accelerator.wait_for_everyone()
        del model
    chosen = max(lrs, key=lambda lr: (trials[lr]["best_dev_metric"], -lrs.index(lr)))  # ties: the first listed
    if not accelerator.is_main_process:
        return {}
    model = load_method(copy.deepcopy(backbone), out_dir / "trials" / f"lr={chosen:g}" / "adapter")
    model.to(accelerator.device)
    t0 = time.time()
    test = evaluate(model, tokenizer, task, splits["test"], batch_size=train_cfg.eval_batch_size,
                    max_length=train_cfg.max_length, precision=train_cfg.precision)
    test_wall = time.time() - t0
    save_method(model, out_dir / "adapter", task=task_name, backbone=backbone_name, lr=chosen)
    result = {
        "cell": cell_id(spec), "spec": spec, "code_version": spec["code"], **describe(model), "chosen_lr": chosen,
        "dev_metric": trials[chosen]["best_dev_metric"],
        "test_metric": test["metric"], "test": {k: v for k, v in test.items() if k not in ("predictions", "correct")},
        "test_correct": test["correct"], "trials": {f"{lr:g}": trials[lr] for lr in lrs},
        "wall_s": {"cell": time.time() - t_cell, "test_eval": test_wall,
                   "train": sum(t["train_wall_s"] for t in trials.values()),
                   "dev_eval": sum(t["eval_wall_s"] for t in trials.values())},
        "peak_memory_mb": peak_memory_mb(accelerator.device), "processes": accelerator.num_processes,
        "adapter": str(out_dir / "adapter"),
        "meta": run_metadata(device=accelerator.device, backbone=backbone_name, seed=train_cfg.seed),
    }
    atomic_write_text(result_path, json.dumps(result, indent=1, default=str) + "\n")
    return result


def parse_budget(text: str):
    if text in ("iapt", "none"):
        return None if text == "none" else "iapt"
    try:
        return int(float(text))
    except ValueError:
        raise UserError(f"--budget must be an integer, 'iapt' or 'none', not {text!r}") from None


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


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m iapt.train", description=__doc__,
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
    ap.add_argument("--size", type=int, help="the method's size knob (rank, prompt length, bottleneck); overrides --budget")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a method option, e.g. pooler=mean for iapt (IAPTConfig fields) or lora_dropout=0.1 (peft)")
    for f in fields(TrainConfig):
        if f.name in ("lr", "seed"):
            continue
        kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" |")[0], str)
        extra = {"choices": THETA_MODES} if f.name == "theta" else {}
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default, help="default: %(default)s", **extra)
    ap.add_argument("--train-examples", type=int, help="use only the first N training examples")
    ap.add_argument("--dev-examples", type=int, help="use only the first N dev examples")
    ap.add_argument("--test-examples", type=int, help="use only the first N test examples")
    ap.add_argument("--data", default="embedded", choices=DATA_SOURCES,
                    help="embedded: the shipped validation sets, re-split (offline); hub: the paper's protocol on the "
                         "hub's GLUE/SuperGLUE/SQuAD (or a local copy under $IAPT_HUB_MIRROR)")
    ap.add_argument("--out-dir", type=Path, help="cell folder (default: under $IAPT_CACHE/runs)")
    ap.add_argument("--fresh", action="store_true", help="recompute the cell even if it finished before")
    return ap


@cli
def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.method not in METHODS:
        raise unknown("method", args.method, METHODS)
    get_task(args.task)
    try:
        lrs = tuple(float(x) for x in args.lrs.split(","))
    except ValueError:
        raise UserError(f"--lrs must be comma-separated numbers, not {args.lrs!r}") from None
    cfg_kwargs = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in ("lr",)}
    cfg_kwargs["patience"] = None if cfg_kwargs["patience"] in (None, 0) else cfg_kwargs["patience"]
    result = run_cell(args.method, args.task, args.backbone, train_cfg=TrainConfig(**cfg_kwargs), lrs=lrs,
                      budget=parse_budget(args.budget), size=args.size, options=parse_options(args.option),
                      n_train=args.train_examples, n_dev=args.dev_examples, n_test=args.test_examples,
                      out_dir=args.out_dir, fresh=args.fresh, data=args.data)
    if result:
        out = Path(result["adapter"]).parent
        print(f"{args.method} on {args.task}: {result['trainable_params']:,d} tunable parameters, lr {result['chosen_lr']:g}, "
              f"dev {result['dev_metric']:.4f}, test {result['test_metric']:.4f}")
        print(f"wrote {out / 'result.json'} and the adapter {out / 'adapter'}")


if __name__ == "__main__":
    sys.exit(main())
