"""Paired bootstrap over test examples (and seeds) and the verdict rule (docs/reproducing.md, "Verdicts").

A method's score on a task is its per-example correctness averaged over seeds; the difference between two
methods is resampled by drawing the same test examples for both. Over several tasks the difference is the
mean of the per-task differences, each task resampled on its own.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

REPRODUCED, CONTRADICTED, NOT_DISTINGUISHABLE = "reproduced", "contradicted", "not distinguishable at this scale"


def paired_bootstrap(a: dict[str, np.ndarray], b: dict[str, np.ndarray], n_boot: int = 2000,
                     seed: int = 0) -> tuple[float, float, float]:
    """Mean over tasks of (a − b) and its 95 % interval. a[task], b[task]: (seeds, examples) scores."""
    rng = np.random.default_rng(seed)
    tasks = sorted(set(a) & set(b))
    if not tasks:
        raise ValueError("no task scored for both methods")
    point, boots = 0.0, np.zeros(n_boot)
    for task in tasks:
        diff = np.asarray(a[task], float).mean(0) - np.asarray(b[task], float).mean(0)   # per example
        point += diff.mean()
        idx = rng.integers(0, len(diff), size=(n_boot, len(diff)))
        boots += diff[idx].mean(1)
    point, boots = point / len(tasks), boots / len(tasks)
    return (float(point), *interval(boots))


def interval(boots: np.ndarray) -> tuple[float, float]:
    """95 % percentile interval of bootstrap differences. Scores are multiples of 1/(seeds·examples): a resample
    whose gains and losses cancel should give 0, but summing in another order leaves ±1e-17, which would decide
    "reproduced" vs "not distinguishable" — so the bounds are rounded to 12 decimals."""
    lo, hi = np.round(np.percentile(boots, [2.5, 97.5]), 12)
    return float(lo), float(hi)


def verdict(lo: float, hi: float, margin: float = 0.0) -> str:
    """The claim is "a − b > −margin": reproduced when the whole interval is above −margin, contradicted when
    it is below, otherwise not distinguishable (margin 0: "a beats b"; margin > 0: "a is competitive with b")."""
    if lo > -margin:
        return REPRODUCED
    if hi < -margin:
        return CONTRADICTED
    return NOT_DISTINGUISHABLE


def per_example(df: pd.DataFrame, row: str) -> dict:
    """task -> (seeds, test examples) per-example scores of one row."""
    return {task: [[float(x) for x in v.split()] for v in g.sort_values("seed")["test_correct"]]
            for task, g in df[df.row == row].groupby("task")}


def compare_rows(df: pd.DataFrame, a: str, b: str, margin: float = 0.0, tasks: list[str] | None = None) -> dict | None:
    """Row a − row b over the tasks both have (or `tasks`): paired bootstrap over test examples and the seeds both
    rows have on that task (a three-seed core row against a seed-0-only extended row: seed 0), and its verdict."""
    sa, sb, seeds = {}, {}, set()
    for task in tasks or sorted(set(df[df.row == a].task)):
        on_task = df[df.task == task]
        shared = set(on_task[on_task.row == a].seed) & set(on_task[on_task.row == b].seed)
        if shared:
            paired = on_task[on_task.seed.isin(shared)]
            sa[task], sb[task] = per_example(paired, a)[task], per_example(paired, b)[task]
            seeds |= shared
    if not sa:
        return None
    diff, lo, hi = paired_bootstrap(sa, sb)
    return {"tasks": " ".join(sa), "seeds": " ".join(str(s) for s in sorted(seeds)), "diff": diff, "ci_low": lo,
            "ci_high": hi, "margin": margin, "verdict": verdict(lo, hi, margin)}
