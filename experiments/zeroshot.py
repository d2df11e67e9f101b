"""The floors every tuned method must beat: zero-shot backbone, majority class and chance, per task.

    python -m experiments.zeroshot --profile cpu      # what `make zeroshot` runs -> results/zeroshot.csv

Zero-shot uses the same evaluator every method uses later, and is cross-checked against
lm-evaluation-harness on the identical prompts and candidates (classification and choice tasks).
Profiles: smoke (tiny random model, a few examples, temporary folder), quick (SmolLM2, 100 test examples
per classification task), cpu (SmolLM2, every embedded task, full test splits).
"""
from __future__ import annotations

import collections
import time
from pathlib import Path

import pandas as pd

from iapt.backbones import TINY, DEFAULT_BACKBONE, EMBEDDED, load_backbone
from iapt.baselines.peft_methods import BareBackbone
from iapt.harness.scriptargs import chosen_profile, profile_parser
from iapt.errors import UserError, cli
from iapt.evaluation.evaluator import evaluate
from iapt.harness.runinfo import RESULTS, run_metadata, write_results
from iapt.data.tasks import EMBEDDED_TASKS, candidates, get_task
from iapt.data.splits import load_split

PROFILES = {
    "smoke": {"tasks": ["sst2", "copa", "arc_easy"], "limit": 12},
    "quick": {"tasks": ["sst2", "rte", "boolq", "copa"], "limit": 100},
    "cpu": {"tasks": EMBEDDED_TASKS, "limit": None},
}


def floors(task, train, test) -> list[dict]:
    """Majority class (the train split's most frequent label) and chance, on the test examples."""
    if task.kind == "extractive":
        return []
    rows = []
    if task.kind == "classification":
        majority = collections.Counter(ex.label for ex in train).most_common(1)[0][0]
        acc = sum(ex.label == majority for ex in test) / len(test)
        rows.append({"method": "majority-class", "metric": acc, "accuracy": acc,
                     "note": f"always '{task.label_words[majority]}' (most frequent in train)"})
    chance = sum(1 / len(candidates(task, ex)) for ex in test) / len(test)
    rows.append({"method": "chance", "metric": chance, "accuracy": chance, "note": "expected accuracy of a uniform guess"})
    return rows


@cli
def main(argv=None):
    ap = profile_parser(__doc__, PROFILES)
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"embedded ({', '.join(EMBEDDED)}), a folder or a hub id")
    ap.add_argument("--tasks", nargs="+", help="override the profile's tasks")
    ap.add_argument("--no-lm-eval", action="store_true", help="skip the lm-evaluation-harness cross-check")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args(argv)
    profile, out_dir = chosen_profile(args, PROFILES)
    tasks = [get_task(t) for t in (args.tasks or profile["tasks"])]
    if args.profile == "smoke" and out_dir.resolve() == RESULTS.resolve():
        raise UserError("smoke results never go into results/; pick another --out-dir")

    start = time.time()
    backbone = TINY if args.profile == "smoke" else args.backbone
    model, tokenizer = load_backbone(backbone)
    bare = BareBackbone(model)   # the untuned backbone under the same contract as every tuned method
    rows, check = [], {}
    for task in tasks:
        test = load_split(task.name, "test")[: profile["limit"]]
        t0 = time.time()
        r = evaluate(bare, tokenizer, task, test, batch_size=args.batch_size, precision="fp32")
        row = {"task": task.name, "method": "zero-shot", "metric": r["metric"], "accuracy": r.get("accuracy"),
               "accuracy_len_norm": r.get("accuracy_len_norm"), "f1": r.get("f1"), "exact_match": r.get("exact_match"),
               "truncated": r["truncated"], "wall_s": round(time.time() - t0, 1), "note": "iapt evaluator, fp32"}
        rows.append(row)
        rows += [{"task": task.name, **f} for f in floors(task, load_split(task.name, "train"), test)]
        if task.kind != "extractive":
            check[task.name] = (task, test)
        print(f"{task.name:14s} zero-shot {task.metric} = {r['metric']:.4f} (n={len(test)}, {row['wall_s']} s)")
    if check and not args.no_lm_eval:
        t0 = time.time()
        accs = lm_eval_accuracies(model, tokenizer, check, args.batch_size)
        for name, acc in accs.items():
            ours = next(r for r in rows if r["task"] == name and r["method"] == "zero-shot")["accuracy"]
            n = len(check[name][1])
            diff = round(abs(acc - ours) * n)
            rows.append({"task": name, "method": "zero-shot (lm-eval)", "metric": acc, "accuracy": acc,
                         "note": f"lm-evaluation-harness on the same prompts; differs from ours by {diff} example(s)",
                         "examples_differing": diff})
            print(f"{name:14s} lm-eval acc = {acc:.4f}; ours {ours:.4f}; differ by {diff} example(s)")
        print(f"lm-eval cross-check took {time.time() - t0:.0f} s")
    df = pd.DataFrame(rows)
    df.insert(1, "n", df["task"].map({t.name: len(load_split(t.name, "test")[: profile["limit"]]) for t in tasks}))
    df.insert(0, "backbone", backbone)
    df["split"] = "test"
    path = Path(out_dir) / "zeroshot.csv"
    write_results(df, path, run_metadata(profile=args.profile, backbone=backbone, seeds=[], precision="fp32",
                                         split_seed=1234, wall_time_s=round(time.time() - start, 1),
                                         tasks=[t.name for t in tasks], test_limit=profile["limit"]))
    print(df[["task", "method", "n", "metric"]].to_string(index=False))
    print(f"wrote {path} and {path.with_suffix('.meta.json')}")
    return df


def lm_eval_accuracies(model, tokenizer, check, batch_size):
    from iapt.evaluation.lm_eval_bridge import lm_eval_accuracy
    return lm_eval_accuracy(model, tokenizer, check, batch_size=batch_size)


if __name__ == "__main__":
    main()
