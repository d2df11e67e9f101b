"""One cell: a method on a task, on a backbone, with a seed — its learning-rate search on dev, then one test
evaluation of the best trial (its command line: iapt.cli.train; where finished cells are kept: iapt.harness.store).

- `CellSpec`: everything that can change a cell's numbers except the code (that is the code version).
- `PreparedCell`: the spec with its backbone, tokenizer and data loaded, and its `key` — the spec as the records
  store it (the budget resolved to a count, the data sizes, the code version), which identifies a finished cell.
- `RunContext`: how it runs (the accelerator, progress bars): nothing that changes a number.
- `CellResult`: the finished cell's record (`result.json`) and the folder it lives in.

Every method gets the same learning-rate search (`lrs`, chosen on the dev split only); ties go to the rate listed
first. Each trial writes a resumable checkpoint, so rerunning an interrupted cell continues where it stopped.
"""
from __future__ import annotations

import copy
import hashlib
import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..backbones import DEFAULT_BACKBONE, load_backbone
from ..baselines.registry import build_method, check_method, count_trainable, load_method, save_method
from ..data.splits import load_split
from ..data.tasks import get_task
from ..evaluation.evaluator import evaluate
from ..harness.runinfo import CODE_AT_START, atomic_write_text, run_metadata
from ..precision import default_device, in_effect, precision_record
from .config import TrainConfig
from .loop import train

DEFAULT_LRS = (1e-4, 1e-3, 1e-2)


@dataclass
class CellSpec:
    method: str
    task: str
    backbone: str = DEFAULT_BACKBONE
    train: TrainConfig = field(default_factory=TrainConfig)   # its seed is the cell's; its lr is searched
    lrs: tuple = DEFAULT_LRS
    budget: int | str | None = "iapt"    # tunable parameters to match: a count, "iapt" (IAPT's default count), None
    size: int | None = None              # the method's size knob; overrides the budget
    options: dict = field(default_factory=dict)
    n_train: int | None = None           # use only the first N examples of a split (None: all)
    n_dev: int | None = None
    n_test: int | None = None
    data: str = "embedded"               # "embedded" (shipped validation sets, re-split) or "hub" (iapt.data.hub)


@dataclass
class RunContext:
    accelerator: object = None
    progress: bool = True

    def __post_init__(self):
        if self.accelerator is None:
            from accelerate import Accelerator
            self.accelerator = Accelerator(cpu=not torch.cuda.is_available())


@dataclass
class PreparedCell:
    spec: CellSpec
    backbone: torch.nn.Module
    tokenizer: object
    splits: dict
    key: dict


@dataclass
class CellResult:
    """A finished cell's result.json and its folder; `reused` when it was found finished rather than trained now."""
    record: dict
    folder: Path
    reused: bool = False

    def __getitem__(self, name: str):
        return self.record[name]


def settings_hash(key: dict) -> str:
    """The digest of a cell's key (code version included): what identifies a finished cell in the records."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]


def iapt_budget(backbone) -> int:
    """The default budget: IAPT's tunable-parameter count at its default size on this backbone."""
    return count_trainable("iapt", backbone, None)


def prepare(spec: CellSpec) -> PreparedCell:
    check_method(spec.method)
    get_task(spec.task)
    backbone, tokenizer = load_backbone(spec.backbone)
    budget = iapt_budget(backbone) if spec.budget == "iapt" else spec.budget
    splits = {split: load_split(spec.task, split, spec.data)[:n]
              for split, n in (("train", spec.n_train), ("dev", spec.n_dev), ("test", spec.n_test))}
    key = {"method": spec.method, "task": spec.task, "data": spec.data, "backbone": spec.backbone, "budget": budget,
           "size": spec.size, "options": dict(spec.options), "lrs": list(spec.lrs),
           # the precision in effect, not the one asked for: bf16 asked where it cannot run is fp32, and keyed so
           "train": {**spec.train.to_dict(), "lr": None, "precision": in_effect(default_device(), spec.train.precision)},
           "n": {k: len(v) for k, v in splits.items()},
           "code": CODE_AT_START}
    return PreparedCell(spec, backbone, tokenizer, splits, key)


def peak_memory_mb(device) -> float:
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # process peak RSS (Linux: KiB)


def run_trial(cell: PreparedCell, lr: float, folder: Path, ctx: RunContext) -> dict:
    """Train at one learning rate (resuming its checkpoint) and save its adapter; the trial's history."""
    trial_dir = folder / "trials" / f"lr={lr:g}"
    if (trial_dir / "trial.json").exists():
        return json.loads((trial_dir / "trial.json").read_text())
    spec, acc = cell.spec, ctx.accelerator
    cfg = TrainConfig(**{**spec.train.to_dict(), "lr": lr})
    torch.manual_seed(cfg.seed)   # the method's initialisation depends on the seed only
    model = build_method(spec.method, copy.deepcopy(cell.backbone), budget=cell.key["budget"], size=spec.size,
                         total_steps=cfg.steps, **spec.options)
    history = train(model, cell.tokenizer, get_task(spec.task), cell.splits["train"], cell.splits["dev"], cfg,
                    accelerator=acc, checkpoint=trial_dir / "checkpoint.pt", progress=ctx.progress)
    if acc.is_main_process:
        save_method(model, trial_dir / "adapter", task=spec.task, backbone=spec.backbone)
        atomic_write_text(trial_dir / "trial.json", json.dumps({"lr": lr, **history}) + "\n")
    acc.wait_for_everyone()
    return {"lr": lr, **history}


def run_cell(cell: PreparedCell, folder: Path, ctx: RunContext, name: str) -> CellResult | None:
    """Every trial of the learning-rate search, then the chosen one on test; the result is written to
    `folder`/result.json (None on the other processes of a multi-process run)."""
    spec, started = cell.spec, time.time()
    lrs = list(spec.lrs)
    trials = {lr: run_trial(cell, lr, folder, ctx) for lr in lrs}
    chosen = max(lrs, key=lambda lr: (trials[lr]["best_dev_metric"], -lrs.index(lr)))  # ties: the first listed
    if not ctx.accelerator.is_main_process:
        return None
    model = load_method(copy.deepcopy(cell.backbone), folder / "trials" / f"lr={chosen:g}" / "adapter")
    model.to(ctx.accelerator.device)
    t0 = time.time()
    test = evaluate(model, cell.tokenizer, get_task(spec.task), cell.splits["test"], batch_size=spec.train.eval_batch_size,
                    max_length=spec.train.max_length, precision=spec.train.precision)
    test_wall = time.time() - t0
    save_method(model, folder / "adapter", task=spec.task, backbone=spec.backbone, lr=chosen)
    record = {
        "cell": name, "settings_hash": settings_hash(cell.key), "spec": cell.key, "code_version": cell.key["code"],
        **model.describe(), "chosen_lr": chosen,
        "dev_metric": trials[chosen]["best_dev_metric"],
        "test_metric": test["metric"], "test": {k: v for k, v in test.items() if k not in ("predictions", "correct")},
        "test_correct": test["correct"], "trials": {f"{lr:g}": trials[lr] for lr in lrs},
        "wall_s": {"cell": time.time() - started, "test_eval": test_wall,
                   "train": sum(t["train_wall_s"] for t in trials.values()),
                   "dev_eval": sum(t["eval_wall_s"] for t in trials.values())},
        "precision": precision_record(ctx.accelerator.device, spec.train.precision),   # training and evaluation
        "peak_memory_mb": peak_memory_mb(ctx.accelerator.device), "processes": ctx.accelerator.num_processes,
        "adapter": str(folder / "adapter"),
        "meta": run_metadata(device=ctx.accelerator.device, backbone=spec.backbone, seed=spec.train.seed),
    }
    atomic_write_text(folder / "result.json", json.dumps(record, indent=1, default=str) + "\n")
    return CellResult(record, folder)
