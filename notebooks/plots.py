"""Figure code that more than one table notebook draws (imported from notebooks/: Jupyter's cwd, and on the
kernel's PYTHONPATH when scripts/run_notebooks.py runs them)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def ablation_bars(rows: pd.DataFrame, summary: pd.DataFrame, path: Path) -> None:
    """One horizontal bar per (row, task): the median test metric over seeds, whiskers min–max, in table order.
    The axis starts just below the zero-shot floor (dotted), not at 0, so differences of a few points show."""
    order = list(dict.fromkeys(rows.row))
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) * rows.task.nunique() + 1.2))
    sns.barplot(data=rows, y="row", x="test_metric", hue="task", order=order, estimator=np.median,
                errorbar=lambda v: (v.min(), v.max()), ax=ax)
    by_row = summary.set_index("row")
    floor = by_row.loc["zero-shot", rows.task.unique()] if "zero-shot" in by_row.index else pd.Series(dtype=float)
    for v in floor:
        ax.axvline(v, color="0.2", linestyle=":", linewidth=1.2, zorder=3)
    ax.set_xlim(max(0, min([rows.test_metric.min(), *floor]) - 0.03), min(1, rows.test_metric.max() + 0.02))
    ax.legend(title="task", loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_xlabel("test metric (median over seeds; bars: min–max)")
    ax.set_ylabel("")
    fig.tight_layout()
    fig.savefig(path, dpi=150)


VERDICT_COLOURS = {"reproduced": "tab:green", "contradicted": "tab:red"}   # anything else: grey


def verdict_intervals(verdicts: pd.DataFrame, other: str, path: Path) -> None:
    """One line per verdict row: the difference (IAPT − `other` column's row) with its 95 % interval (seeds and
    test examples resampled), |S| beside it; the claim's threshold −margin dashed, zero dotted; green reproduced,
    red contradicted, grey otherwise (not distinguishable, one seed, refused)."""
    v = verdicts.reset_index(drop=True)
    if not len(v):
        return
    scope = v["scope"] if "scope" in v else v["tasks"]
    labels = [f"{t}: vs {o}" for t, o in zip(scope, v[other])]
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(v) + 1.3))
    y = np.arange(len(v))[::-1]
    for yi, r in zip(y, v.itertuples()):
        colour = VERDICT_COLOURS.get(r.verdict, "0.5")
        ax.plot([r.ci_low, r.ci_high], [yi, yi], color=colour, linewidth=2)
        ax.plot(r.diff, yi, "o", color=colour, markersize=4)
        ax.annotate(f"|S|={r.n_seeds}", (r.ci_high, yi), xytext=(4, -3), textcoords="offset points", fontsize=6)
        if r.margin:
            ax.plot([-r.margin] * 2, [yi - 0.4, yi + 0.4], color="k", linestyle="--", linewidth=1)
    ax.axvline(0, color="0.3", linestyle=":", linewidth=1)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel("IAPT − other (95 % interval; dashed: −margin of a 'competitive' claim)")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
