"""Render README tables from the committed CSVs (so README numbers are never typed by hand).

    python scripts/render_readme_tables.py      # rewrites the blocks between <!-- NAME:start/end --> markers
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def zeroshot_table() -> str:
    path = REPO / "results" / "zeroshot.csv"
    if not path.exists():
        return "_not run yet: `make zeroshot`_"
    df = pd.read_csv(path)
    meta = json.loads(path.with_suffix(".meta.json").read_text())
    wide = df.pivot_table(index="task", columns="method", values="metric", aggfunc="first")
    n = df.groupby("task")["n"].first()
    diff = df[df.method == "zero-shot (lm-eval)"].set_index("task")["examples_differing"] if "examples_differing" in df else {}
    order = [c for c in ["zero-shot", "zero-shot (lm-eval)", "majority-class", "chance"] if c in wide.columns]
    lines = ["| task | n (test) | " + " | ".join(order) + " | lm-eval differs by |", "|---" * (len(order) + 3) + "|"]
    for task in df.task.drop_duplicates():
        cells = [f"{wide.loc[task, c]:.3f}" if pd.notna(wide.loc[task, c]) else "–" for c in order]
        d = diff.get(task) if hasattr(diff, "get") else None
        lines.append(f"| {task} | {n[task]} | " + " | ".join(cells) + f" | {'' if d is None or pd.isna(d) else int(d)} |")
    lines.append("")
    lines.append(f"Backbone {meta['backbone']}, profile {meta['profile']}, {meta['precision']}, commit "
                 f"`{meta['git_commit'][:12]}`, {meta['device']}, wall time {meta['wall_time_s'] / 60:.0f} min. "
                 "SQuAD's metric is the mean of token F1 and exact match.")
    return "\n".join(lines)


def main():
    text = README.read_text()
    for name, render in {"zeroshot": zeroshot_table}.items():
        text = re.sub(rf"<!-- {name}:start -->.*?<!-- {name}:end -->",
                      lambda _: f"<!-- {name}:start -->\n{render()}\n<!-- {name}:end -->", text, flags=re.S)
    README.write_text(text)
    print(f"rewrote the tables in {README}")


if __name__ == "__main__":
    main()
