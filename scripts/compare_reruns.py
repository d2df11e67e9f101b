"""Compare a table's cells with an earlier, independent run of the same cells (another machine, session or code
version): how far do the published numbers move when everything is retrained?

    python -m scripts.compare_reruns table2 --old ee03a55     # results/table2.csv at that commit vs the current one

Writes results/<table>_rerun.csv (with .meta.json): one row per (row, task, seed) present in both runs, with
each run's test metric and chosen learning rate, their difference, how many test examples score differently,
and each run's code version; prints the rows and where it wrote them.
"""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]

KEY = ["row", "task", "seed"]


def committed_csv(rev: str, path: str) -> pd.DataFrame:
    shown = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True, text=True)
    if shown.returncode:
        sys.exit(f"cannot read {path} at {rev}: {shown.stderr.strip()}")
    return pd.read_csv(io.StringIO(shown.stdout))


def differing_examples(a: str, b: str) -> int | None:
    xs, ys = str(a).split(), str(b).split()
    return sum(abs(float(x) - float(y)) > 1e-9 for x, y in zip(xs, ys)) if len(xs) == len(ys) else None


def compare(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    both = old.merge(new, on=KEY, suffixes=("_old", "_new"))
    return pd.DataFrame({
        **{k: both[k] for k in KEY},
        "test_metric_old": both.test_metric_old, "test_metric_new": both.test_metric_new,
        "difference": both.test_metric_new - both.test_metric_old,
        "n_test": both.n_test_new,
        "examples_differing": [differing_examples(a, b) for a, b in zip(both.test_correct_old, both.test_correct_new)],
        "chosen_lr_old": both.chosen_lr_old, "chosen_lr_new": both.chosen_lr_new,
        "code_version_old": both.code_version_old, "code_version_new": both.code_version_new})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", help="the table's CSV name without .csv, e.g. table2")
    ap.add_argument("--old", required=True, help="the git revision that holds the earlier run's results/<table>.csv")
    args = ap.parse_args(argv)
    new_path = REPO / "results" / f"{args.table}.csv"
    if not new_path.exists():
        sys.exit(f"no {new_path}: run the table first")
    out = compare(committed_csv(args.old, f"results/{args.table}.csv"), pd.read_csv(new_path))
    if out.empty:
        sys.exit(f"the two runs of {args.table} share no (row, task, seed) cell")
    from iapt.harness.runinfo import run_metadata, write_results
    target = REPO / "results" / f"{args.table}_rerun.csv"
    write_results(out, target, run_metadata(script="scripts/compare_reruns.py", old_revision=args.old,
                                            new_results=f"results/{args.table}.csv"))
    print(out.drop(columns=["code_version_old", "code_version_new"]).to_string(index=False))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
