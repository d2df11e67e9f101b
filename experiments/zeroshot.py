"""The floors every tuned method must beat: zero-shot backbone, majority class and chance, per task.

    python -m experiments.zeroshot --profile cpu      # what `make zeroshot` runs -> results/zeroshot.csv

Zero-shot uses the same evaluator every method uses later, and is cross-checked against
lm-evaluation-harness on the identical prompts and candidates (classification and choice tasks).
Profiles: smoke (tiny random model, a few examples, temporary folder), quick (SmolLM2, 100 test examples
per classification task), cpu (SmolLM2, every embedded task, full test splits). Each task's rows are kept as a
record beside the CSV (cells/<backbone>/zeroshot/): an interrupted run resumes, and a task added later is the
only one scored.
"""
from __future__ import annotations

import collections
import hashlib
import json
import time
from pathlib import Path

import pandas as pd

from iapt.backbones import TINY, DEFAULT_BACKBONE, EMBEDDED, load_backbone
from iapt.baselines.peft_methods import BareBackbone
from iapt.harness.scriptargs import chosen_profile, profile_parser
from iapt.errors import UserError, cli
from iapt.evaluation.evaluator import evaluate
from iapt.harness.runinfo import CODE_AT_START, RESULTS, run_metadata, write_results
from iapt.harness.store import cached_json, recorded_json
from iapt.data.tasks import EMBEDDED_TASKS, candidates, get_task
from iapt.data.splits import load_split
from experiments.common import ACCEPTED_CODE_VERSIONS

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


def task_floors(model, tokenizer, task, limit: int | None, batch_size: int, lm_eval: bool) -> dict:
    """One task's rows (our evaluator, the lm-eval cross-check, majority class, chance) and its run's metadata;
    `model` is the plain Hugging Face model (lm-eval wraps it; our evaluator takes it as BareBackbone)."""
    test = load_split(task.name, "test")[:limit]
    t0 = time.time()
    r = evaluate(BareBackbone(model), tokenizer, task, test, batch_size=batch_size, precision="fp32")
    rows = [{"method": "zero-shot", "metric": r["metric"], "accuracy": r.get("accuracy"),
             "accuracy_len_norm": r.get("accuracy_len_norm"), "f1": r.get("f1"), "exact_match": r.get("exact_match"),
             "truncated": r["truncated"], "wall_s": round(time.time() - t0, 1), "note": "iapt evaluator, fp32"}]
    rows += floors(task, load_split(task.name, "train"), test)
    if lm_eval and task.kind != "extractive":
        acc = lm_eval_accuracies(model, tokenizer, {task.name: (task, test)}, batch_size)[task.name]
        diff = round(abs(acc - r["accuracy"]) * len(test))
        rows.append({"method": "zero-shot (lm-eval)", "metric": acc, "accuracy": acc, "examples_differing": diff,
                     "note": f"lm-evaluation-harness on the same prompts; differs from ours by {diff} example(s)"})
    return {"task": task.name, "n": len(test), "rows": rows,
            "meta": run_metadata(precision="fp32", wall_s=round(time.time() - t0, 1))}


@cli
def main(argv=None):
    ap = profile_parser(__doc__, PROFILES)
    ap.add_argument("--backbone", default=DEFAULT_BACKBONE, help=f"embedded ({', '.join(EMBEDDED)}), a folder or a hub id")
    ap.add_argument("--tasks", nargs="+", help="score only these (the table still holds every task with a record)")
    ap.add_argument("--no-lm-eval", action="store_true", help="skip the lm-evaluation-harness cross-check")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args(argv)
    profile, out_dir = chosen_profile(args, PROFILES)
    profile_tasks = [get_task(t) for t in profile["tasks"]]
    tasks = [get_task(t) for t in args.tasks] if args.tasks else profile_tasks
    if args.profile == "smoke" and out_dir.resolve() == RESULTS.resolve():
        raise UserError("smoke results never go into results/; pick another --out-dir")

    backbone = TINY if args.profile == "smoke" else args.backbone
    # One record per task beside the CSV (results/cells/<backbone>/zeroshot/ for the committed one), keyed by the
    # settings and the code version: a run cut short keeps its finished tasks, and a rerun only scores what is
    # missing. A record made at an accepted older code version (experiments/shared.yaml) is used as it is.
    records = Path(out_dir) / "cells" / backbone / "zeroshot"
    loaded = []

    def backbone_once():
        if not loaded:
            loaded.extend(load_backbone(backbone))
        return loaded

    def names(task, checks) -> list[str]:   # this version's record, then the accepted older versions'
        return [f"{task.name}-{record_key(profile['limit'], check, args.batch_size, v)}.json"
                for v in (CODE_AT_START, *ACCEPTED_CODE_VERSIONS) for check in checks]
    # Scoring: a record with the lm-eval cross-check also serves a run without it (its rows are the same plus the
    # check). The table: a task scored either way keeps its row, whichever way this run scores (HellaSwag was
    # scored without the check), so scoring one task never drops another from the table.
    scoring_checks = [False, True] if args.no_lm_eval else [True]
    scored = {}
    for task in tasks:   # in the order asked for
        rec = scored[task.name] = cached_json(names(task, scoring_checks), lambda: task_floors(
            *backbone_once(), task, profile["limit"], args.batch_size, not args.no_lm_eval), records)
        ours = rec["rows"][0]
        check = next((r for r in rec["rows"] if r["method"] == "zero-shot (lm-eval)"), None)
        print(f"{task.name:14s} zero-shot {task.metric} = {ours['metric']:.4f} (n={rec['n']}, {ours['wall_s']} s"
              + (f"; lm-eval differs by {check['examples_differing']} example(s)" if check else "")
              + f"; code {rec['meta']['code_version']})")
    found = []
    for task in dict.fromkeys([*profile_tasks, *tasks]):   # the table: the profile's order, then any others
        rec = scored.get(task.name) or recorded_json(names(task, [True, False]), records)
        if rec is None:
            print(f"{task.name:14s} not scored yet (no record): left out of the table")
        else:
            found.append(rec)
    df = pd.DataFrame([{"backbone": backbone, "task": rec["task"], "n": rec["n"], **row}
                       for rec in found for row in rec["rows"]])
    df["split"] = "test"
    columns = ["backbone", "task", "n", "method", "metric", "accuracy", "accuracy_len_norm", "f1", "exact_match",
               "truncated", "wall_s", "note", "examples_differing", "split"]
    df = df.reindex(columns=columns)
    path = Path(out_dir) / "zeroshot.csv"
    per_task = {rec["task"]: {k: rec["meta"][k] for k in ("git_commit", "code_version", "device", "finished_at", "wall_s")}
                for rec in found}
    write_results(df, path, run_metadata(profile=args.profile, backbone=backbone, seeds=[], precision="fp32",
                                         split_seed=1234, wall_time_s=round(sum(r["wall_s"] for r in per_task.values()), 1),
                                         tasks=[rec["task"] for rec in found], test_limit=profile["limit"],
                                         lm_eval_crosscheck=sorted(set(df.task[df.method == "zero-shot (lm-eval)"])),
                                         records=per_task))
    print(df[["task", "method", "n", "metric"]].to_string(index=False))
    print(f"wrote {path} and {path.with_suffix('.meta.json')} (records: {records})")
    return df


def record_key(limit, lm_eval: bool, batch_size: int, code_version: str) -> str:
    """A task record's key: the settings that change its rows, and the code version that scored it."""
    return hashlib.sha256(json.dumps([limit, lm_eval, batch_size, code_version]).encode()).hexdigest()[:10]


def lm_eval_accuracies(model, tokenizer, check, batch_size):
    from iapt.evaluation.lm_eval_bridge import lm_eval_accuracy
    return lm_eval_accuracy(model, tokenizer, check, batch_size=batch_size)


if __name__ == "__main__":
    main()
