"""Table 2: instruction tuning. Each method is tuned on Natural Instructions v1 (43 training subtasks, the
definition + input -> output), then evaluated on 12 held-out subtasks it never saw (ROUGE-L, our evaluator)
and on MMLU and BBH-style BIG-bench tasks through lm-evaluation-harness (model `iapt`, our task YAMLs).

    python -m experiments.table2_instruct --profile quick     # a first look, <= 30 min here
    python -m experiments.table2_instruct --profile cpu       # what `make table2` runs; hours, resumable
    python -m experiments.table2_instruct --profile paper --dry-run

Early stopping and IAPT's Θ updates use 6 further NI subtasks (the dev split), never the held-out ones.
Rows: every method at IAPT's tunable-parameter budget, plus the untuned backbone ("zero-shot") and chance.
Outputs (cpu: results/; quick: results/quick/; smoke: a temporary folder): table2.csv (one row per method ×
seed × evaluation: ni, mmlu, bbh), table2_summary.csv (median and spread over seeds), table2_curves.csv,
table2_verdicts.csv (claims 1 and 2), table2_crosscheck.csv (lm-eval vs our evaluator on the same BBH
examples), each with a .meta.json. Rerun the same command after an interruption: finished cells are reused.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pandas as pd

from iapt.errors import cli
from iapt.harness.grid import TableScript, run_table
from iapt.harness.stats import compare_rows
from experiments.common import CPU_REFERENCE, load_profiles

PROMPT_BASED = ["prompt_tuning", "prefix_tuning", "idpg", "lpt"]
LORA_FAMILY = ["lora", "adalora", "ia3"]
COMPETITIVE_MARGIN = 0.02
PROFILES = load_profiles(__file__, extra_keys=("eval_n",))   # table2_instruct.yaml beside this file
# The cpu profile's input length and batch sizes (also table2_backbone's)
NI_TRAIN_CONFIG = {k: PROFILES["cpu"]["train"][k] for k in ("max_length", "eval_batch_size", "batch_size")}


def _key(*parts, code_version: str | None = None) -> str:
    """A cache key of `parts` and a code version (default: this run's)."""
    from iapt.harness.runinfo import CODE_AT_START
    return hashlib.sha256(json.dumps([*parts, code_version or CODE_AT_START], sort_keys=True).encode()).hexdigest()[:10]


def own_scores(model, tokenizer, task_name: str, n: int | None, batch_size: int) -> dict:
    """Our own evaluator on the first n test examples of an instruction-tuning task."""
    from iapt.evaluation.evaluator import evaluate
    from iapt.data.tasks import get_task
    from iapt.data.splits import load_split
    res = evaluate(model, tokenizer, get_task(task_name), load_split(task_name, "test")[:n], batch_size=batch_size,
                   max_length=1024 if task_name != "ni" else NI_TRAIN_CONFIG["max_length"])
    return {"acc": res["metric"], "n": res["n"], "correct": res["correct"]}


def disagreements(ev: dict) -> int:
    """BBH examples where our own evaluator and lm-eval disagree (an `evaluations` result with the cross-check)."""
    return sum(a != b for a, b in zip(ev["own_bbh"]["correct"], ev["lm_eval"]["bbh"]["correct"]))


def evaluations(model, tokenizer, eval_n: dict, batch_size: int, crosscheck: bool) -> dict:
    """MMLU and BBH through lm-eval; with `crosscheck`, BBH through our own evaluator too."""
    from iapt.evaluation.lm_eval_model import lm_eval_scores
    t0 = time.time()
    out = {"lm_eval": lm_eval_scores(model, tokenizer, eval_n, batch_size=batch_size)}
    if crosscheck:
        out["own_bbh"] = own_scores(model, tokenizer, "bbh", eval_n["bbh"], batch_size)
    out["wall_s"] = round(time.time() - t0, 1)
    return out


def also_test(prof: dict, backbone: str):
    """For each tuned cell: its MMLU and BBH rows (cached in the cell folder); the first seed of IAPT also
    scores BBH with our own evaluator, for the cross-check."""
    first_seed = prof["stages"][0][2][0]

    def scores(result: dict) -> list[dict]:
        from iapt.backbones import load_backbone
        from iapt.errors import UserError
        from iapt.baselines.registry import load_method
        from iapt.harness.store import cached_json
        spec = result["spec"]
        crosscheck = spec["method"] == "iapt" and spec["train"]["seed"] == first_seed
        cell = Path(result["adapter"]).parent

        def compute():
            if not Path(result["adapter"]).exists():
                raise UserError(f"cell {result['cell']} was restored from its committed record, which keeps no weights, "
                                f"and these evaluations ({prof['eval_n']}) are not in it: rerun with --fresh to retrain it")
            base, tokenizer = load_backbone(backbone)
            return evaluations(load_method(base, result["adapter"]), tokenizer, prof["eval_n"],
                               spec["train"]["eval_batch_size"], crosscheck)
        # Keyed by the code version the cell was trained at: a cell reused from an older version
        # (--reuse-code-version) keeps the evaluations made with it.
        ev = cached_json(f"lm_eval-{_key(prof['eval_n'], crosscheck, code_version=result['code_version'])}.json",
                         compute, cell)
        rows = [{"task": t, "test_metric": s["acc"], "n_test": s["n"], "test_correct": " ".join(f"{c:g}" for c in s["correct"]),
                 "eval_wall_s": ev["wall_s"]} for t, s in ev["lm_eval"].items()]
        if "own_bbh" in ev:
            bbh = next(r for r in rows if r["task"] == "bbh")
            bbh["own_evaluator_metric"] = ev["own_bbh"]["acc"]
            bbh["own_evaluator_disagreements"] = disagreements(ev)
        return rows
    return scores


def floors(prof: dict, backbone: str, store: Path | None, accepted: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict]:
    """The untuned backbone (zero-shot) on all three evaluations and chance on the multiple-choice ones, as
    floor rows; and the backbone's BBH cross-check (lm-eval vs our evaluator). Kept in the record store too;
    computed at this code version unless one of the `accepted` older versions (as for the cells) has them."""
    from iapt.backbones import cache_dir, load_backbone
    from iapt.harness.store import cached_json
    from iapt.data.splits import load_split
    n_test, batch = prof["n"].get("n_test"), prof["train"].get("eval_batch_size", 16)

    def compute():
        from iapt.baselines.peft_methods import BareBackbone
        model, tokenizer = load_backbone(backbone)
        model = BareBackbone(model)
        print(f"table2: scoring the untuned backbone {backbone} (once)")
        ev = evaluations(model, tokenizer, prof["eval_n"], batch, crosscheck=True)
        ev["ni"] = own_scores(model, tokenizer, "ni", n_test, batch)
        return ev
    from iapt.harness.runinfo import CODE_AT_START
    versions = [CODE_AT_START, *accepted]   # this version's floors, else an accepted one's
    ev = cached_json([f"{backbone}/table2-floors/{_key(prof['eval_n'], n_test, code_version=v)}.json" for v in versions],
                     compute, cache_dir() / "runs", store)
    recs = [{"task": "ni", "method": "zero-shot", "metric": ev["ni"]["acc"]}]
    for task, s in ev["lm_eval"].items():
        exs = load_split(task, "test")[:prof["eval_n"][task]]
        recs += [{"task": task, "method": "zero-shot", "metric": s["acc"]},
                 {"task": task, "method": "chance", "metric": sum(1 / len(e.candidates) for e in exs) / len(exs)}]
    check = {"row": "zero-shot", "lm_eval_metric": ev["lm_eval"]["bbh"]["acc"], "own_evaluator_metric": ev["own_bbh"]["acc"],
             "n": ev["own_bbh"]["n"], "disagreements": disagreements(ev)}
    return pd.DataFrame(recs), check


def crosscheck(df: pd.DataFrame, backbone_check: dict | None) -> pd.DataFrame:
    """BBH scored both ways on the same examples: the untuned backbone and the first seed of IAPT."""
    recs = [backbone_check] if backbone_check else []
    if "own_evaluator_metric" in df:
        for _, r in df[df.own_evaluator_metric.notna()].iterrows():
            recs.append({"row": f"{r['row']} seed {r['seed']}", "lm_eval_metric": r["test_metric"],
                         "own_evaluator_metric": r["own_evaluator_metric"], "n": r["n_test"],
                         "disagreements": int(r["own_evaluator_disagreements"])})
    return pd.DataFrame([{"task": "bbh", **r} for r in recs])


def verdicts(df: pd.DataFrame) -> pd.DataFrame:
    recs = []
    for claim, others, margin in (("1: IAPT beats prompt-based methods", PROMPT_BASED, 0.0),
                                  ("2: IAPT competitive with LoRA-family", LORA_FAMILY, COMPETITIVE_MARGIN)):
        for other in others:
            for scope in ["ni", "mmlu", "bbh", "all"]:
                found = compare_rows(df, "iapt", other, margin, None if scope == "all" else [scope])
                if found:
                    recs.append({"claim": claim, "iapt_vs": other, **found, "scope": scope})
    return pd.DataFrame(recs)


def dry_run(prof: dict) -> None:
    """The paper-scale plan with parameter counts on a weightless LLaMA-2 7B, and what differs from the paper."""
    from experiments.table1_glue import dry_run as count_on_llama2
    count_on_llama2(prof)
    print("The paper tunes on Alpaca and evaluates MT-Bench (GPT-4 judge), MMLU and BBH. This profile tunes on\n"
          "Natural Instructions v1 (from the BIG-bench archive `make setup` downloads) and evaluates all held-out NI\n"
          "examples, the full MMLU test split and the BBH-style tasks; MT-Bench needs a GPT-4 judge and is not run\n"
          "(no judge is faked). On a GPU machine: accelerate launch -m experiments.table2_instruct --profile paper")


@cli
def main(argv=None):
    from iapt.data.instruct import ni_split_subtasks
    backbone_check = {}

    def floor_rows(prof, backbone, store):
        rows, backbone_check["bbh"] = floors(prof, backbone, store.records, store.accepted)
        return rows
    return run_table(TableScript(
        "table2", __doc__, "experiments/table2_instruct.py",
        also_test=also_test, floors=floor_rows, dry_run=dry_run,
        extras=lambda df: {"verdicts": verdicts(df), "crosscheck": crosscheck(df, backbone_check.get("bbh"))},
        metadata=lambda prof: {"ni_subtasks": ni_split_subtasks(), "eval_n": prof["eval_n"]}, reference=CPU_REFERENCE),
        PROFILES, argv)


if __name__ == "__main__":
    main()
