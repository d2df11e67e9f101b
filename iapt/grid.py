"""Run a grid of cells (method × task × seed, plus per-row options) and keep its CSVs current.

The learning rate is searched on the first seed of each (row, task) on the dev split; the other seeds train
at the chosen rate (recorded as `lr_source`), so every method gets the same number of trials. After each
cell the rows CSV and the learning-curves CSV are rewritten (write, then rename): an interrupted grid loses
at most the cell in progress, and that cell itself resumes from its last checkpoint.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .engine import TrainConfig
from .runinfo import write_results
from .train import run_cell


@dataclass
class Row:
    """One row of a table: a method with its options, under a display name."""
    name: str
    method: str
    options: dict = field(default_factory=dict)
    size: int | None = None


def cell_row(row: Row, task: str, seed: int, result: dict, lr_source: str, profile: str) -> dict:
    chosen = result["trials"][f"{result['chosen_lr']:g}"]
    return {"row": row.name, "method": row.method, "task": task, "seed": seed, "backbone": result["spec"]["backbone"],
            "profile": profile, "trainable_params": result["trainable_params"],
            "size": f"{result['size_name']}={result['size']}" if result["size_name"] else "",
            "chosen_lr": result["chosen_lr"], "lr_source": lr_source, "dev_metric": result["dev_metric"],
            "test_metric": result["test_metric"], "n_test": result["test"]["n"], "best_step": chosen["best_step"],
            "steps_run": chosen["steps_run"], "train_wall_s": round(result["wall_s"]["train"], 1),
            "cell_wall_s": round(result["wall_s"]["cell"], 1), "code_version": result["code_version"],
            "test_correct": " ".join(f"{c:g}" for c in result["test_correct"]),
            "theta_drift": " ".join(f"{k}:{v:.4f}" for k, v in chosen.get("theta_drift", {}).items()),
            "cell": result["cell"]}


def curve_rows(row: Row, task: str, seed: int, result: dict) -> list[dict]:
    out = []
    for lr, trial in result["trials"].items():
        out += [{"row": row.name, "task": task, "seed": seed, "lr": float(lr), "kind": "dev_metric", "step": s, "value": v}
                for s, v in zip(trial["dev_step"], trial["dev_metric"])]
        out += [{"row": row.name, "task": task, "seed": seed, "lr": float(lr), "kind": "train_loss", "step": s, "value": v}
                for s, v in zip(trial["step"], trial["train_loss"])]
    return out


def run_grid(rows: list[Row], tasks: list[str], seeds: list[int], *, backbone: str, train_cfg: TrainConfig, lrs,
             out_csv: Path, curves_csv: Path, metadata: dict, profile: str, budget="iapt", n: dict | None = None,
             cells_dir: Path | None = None, fresh: bool = False) -> pd.DataFrame:
    """Every (row, task, seed) cell in order; returns the rows DataFrame (also written to `out_csv`)."""
    records, curves, t0 = [], [], time.time()
    plan = [(r, t, s) for r in rows for t in tasks for s in seeds]
    chosen: dict[tuple, float] = {}
    bar = tqdm(plan, desc=f"{out_csv.stem} cells", unit="cell")
    for row, task, seed in bar:
        bar.set_postfix_str(f"{row.name} {task} seed {seed}")
        key = (row.name, task)
        first = key not in chosen
        cell_lrs = tuple(lrs) if first else (chosen[key],)
        out_dir = cells_dir / f"{row.name}-{task}-seed{seed}" if cells_dir else None
        result = run_cell(row.method, task, backbone, train_cfg=TrainConfig(**{**train_cfg.to_dict(), "seed": seed}),
                          lrs=cell_lrs, budget=budget if row.size is None else None, size=row.size,
                          options=row.options, out_dir=out_dir, fresh=fresh, **(n or {}))
        if first:
            chosen[key] = result["chosen_lr"]
        records.append(cell_row(row, task, seed, result, "searched" if first else f"seed {seeds[0]}", profile))
        curves += curve_rows(row, task, seed, result)
        meta = {**metadata, "wall_s_this_invocation": round(time.time() - t0, 1), "cells_done": len(records),
                "cells_planned": len(plan)}
        write_results(pd.DataFrame(records), out_csv, meta)
        write_results(pd.DataFrame(curves), curves_csv, meta)
    return pd.DataFrame(records)


def summarize(df: pd.DataFrame, floors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Methods as rows, tasks as columns: the median over seeds, its spread (max − min), the seeds counted,
    an average over tasks and the tunable parameters; floors (zero-shot, majority, chance) appended."""
    grouped = df.groupby(["row", "task"])["test_metric"]
    med, spread, count = grouped.median().unstack(), (grouped.max() - grouped.min()).unstack(), grouped.size().unstack()
    order = list(dict.fromkeys(df["row"]))
    tasks = list(dict.fromkeys(df["task"]))
    out = pd.DataFrame({"row": order})
    out["trainable_params"] = [int(df[df.row == r]["trainable_params"].iloc[0]) for r in order]
    for t in tasks:
        out[t] = [med.loc[r, t] if t in med.columns else float("nan") for r in order]
        out[f"{t}_spread"] = [spread.loc[r, t] if t in spread.columns else float("nan") for r in order]
        out[f"{t}_seeds"] = [int(count.loc[r, t]) if t in count.columns and pd.notna(count.loc[r, t]) else 0 for r in order]
    out["average"] = out[tasks].mean(axis=1, skipna=False)
    out["code_versions"] = [" ".join(sorted(set(df[df.row == r]["code_version"]))) for r in order]
    if floors is not None and len(floors):
        floor_rows = []
        for method in ("zero-shot", "majority-class", "chance"):
            f = floors[floors.method == method].set_index("task")["metric"]
            rec = {"row": method, "trainable_params": 0, **{t: f.get(t, float("nan")) for t in tasks}}
            rec["average"] = pd.Series([rec[t] for t in tasks]).mean(skipna=False)
            floor_rows.append(rec)
        out = pd.concat([out, pd.DataFrame(floor_rows)], ignore_index=True)
    return out
