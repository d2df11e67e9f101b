"""A refactor moves no number: train the same short cells at two commits and compare them bit for bit.

    python -m scripts.refactor_ab train --checkout /tmp/before --runs /tmp/ab/before    # at the old commit
    python -m scripts.refactor_ab train --checkout . --runs /tmp/ab/after                # at the new one
    python -m scripts.refactor_ab train --checkout . --runs /tmp/ab/after --cells iapt:sst2 iapt:squad   # a subset
    python -m scripts.refactor_ab compare /tmp/ab/before /tmp/ab/after --name redesign

`train` runs each cell through the checkout's own training command line (`python -m iapt.train` before the
redesign, `python -m iapt.cli.train` after), on the embedded backbone, with its own folder under --runs
(an explicit cell folder: no cache lookup, no committed record, so every cell really trains), in fp32.
`compare` writes results/<name>_ab.csv (with .meta.json): per cell, whether the per-example test scores and
every tensor of the final adapter are identical, and the largest absolute difference of each.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ["iapt", "lora", "prompt_tuning", "prefix_tuning", "idpg", "lpt", "adalora", "ia3"]
# (method, task): every method on sst2 (scored by ranking label words); two on squad, which is scored by greedy
# generation (IAPT's cached prefill and P-tuning v2's own decoding loop)
CELLS = [(m, "sst2") for m in METHODS] + [("iapt", "squad"), ("prefix_tuning", "squad")]
SETTINGS = ["--seed", "0", "--lrs", "1e-3", "--steps", "6", "--eval-every", "3", "--batch-size", "8",
            "--precision", "fp32", "--max-length", "256", "--train-examples", "64", "--dev-examples", "24",
            "--test-examples", "48"]


def train_module(checkout: Path) -> str:
    return "iapt.train" if (checkout / "iapt" / "train.py").exists() else "iapt.cli.train"


def train(checkout: Path, runs: Path, cells: list[tuple[str, str]] = CELLS) -> None:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    module = train_module(checkout)
    for method, task in cells:
        out = runs / f"{method}-{task}"
        if (out / "result.json").exists():
            print(f"done already: {out}")
            continue
        command = [sys.executable, "-m", module, "--method", method, "--task", task, *SETTINGS, "--out-dir", str(out)]
        print(" ".join(command), flush=True)
        subprocess.run(command, cwd=checkout, env=env, check=True)
    print(f"wrote {runs}")


def adapter_tensors(cell: Path) -> dict:
    from safetensors.torch import load_file
    tensors = {}
    for path in sorted((cell / "adapter").glob("*.safetensors")):
        tensors.update({f"{path.name}:{k}": v for k, v in load_file(str(path)).items()})
    return tensors


def compare_cell(a: Path, b: Path) -> dict:
    ra, rb = (json.loads((c / "result.json").read_text()) for c in (a, b))
    ta, tb = adapter_tensors(a), adapter_tensors(b)
    same_names = sorted(ta) == sorted(tb)
    weight_diff = max((float((ta[k].float() - tb[k].float()).abs().max()) for k in ta
                       if k in tb and ta[k].shape == tb[k].shape and ta[k].numel()), default=0.0)
    scores_a, scores_b = ra["test_correct"], rb["test_correct"]
    score_diff = max(abs(x - y) for x, y in zip(scores_a, scores_b)) if len(scores_a) == len(scores_b) else float("nan")
    return {"method": ra["method"], "task": ra["spec"]["task"], "n_test": len(scores_a),
            "test_metric_a": ra["test_metric"], "test_metric_b": rb["test_metric"],
            "scores_identical": scores_a == scores_b, "max_score_difference": score_diff,
            "adapter_tensors": len(ta), "weights_identical": same_names and all(ta[k].equal(tb[k]) for k in ta),
            "max_weight_difference": weight_diff, "trainable_params": rb["trainable_params"],
            "code_version_a": ra["code_version"], "code_version_b": rb["code_version"],
            "git_commit_a": ra["meta"]["git_commit"], "git_commit_b": rb["meta"]["git_commit"],
            "device_a": ra["meta"]["device"], "device_b": rb["meta"]["device"]}


def compare(a: Path, b: Path, name: str) -> None:
    import pandas as pd

    from iapt.harness.runinfo import run_metadata, write_results
    cells = sorted(p.name for p in a.iterdir() if (p / "result.json").exists() and (b / p.name / "result.json").exists())
    if not cells:
        sys.exit(f"{a} and {b} share no finished cell")
    df = pd.DataFrame([compare_cell(a / c, b / c) for c in cells])
    target = REPO / "results" / f"{name}_ab.csv"
    write_results(df, target, run_metadata(script="scripts/refactor_ab.py", settings=" ".join(SETTINGS),
                                           runs_a=str(a), runs_b=str(b)))
    print(df[["method", "task", "test_metric_a", "test_metric_b", "scores_identical", "weights_identical"]]
          .to_string(index=False))
    print(f"{int(df.scores_identical.sum())} of {len(df)} cells with identical scores, "
          f"{int(df.weights_identical.sum())} with identical weights; wrote {target}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train the A/B cells with a checkout's own code")
    t.add_argument("--checkout", type=Path, required=True, help="the repository checkout whose code trains")
    t.add_argument("--runs", type=Path, required=True, help="where the cell folders go")
    t.add_argument("--cells", nargs="+", metavar="METHOD:TASK", choices=[f"{m}:{k}" for m, k in CELLS],
                   help="only these of the A/B cells (default: all ten)")
    c = sub.add_parser("compare", help="compare two runs' cells and write results/<name>_ab.csv")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--name", required=True, help="the comparison's name, e.g. redesign")
    args = ap.parse_args(argv)
    if args.command == "train":
        cells = [tuple(c.split(":")) for c in args.cells] if args.cells else CELLS
        train(args.checkout.resolve(), args.runs.resolve(), cells)
    else:
        compare(args.a, args.b, args.name)


if __name__ == "__main__":
    main()
