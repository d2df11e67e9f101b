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
