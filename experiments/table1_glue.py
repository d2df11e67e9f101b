"""Table 1: IAPT against the baselines on GLUE / SuperGLUE / SQuAD at comparable tunable-parameter budgets.

    python -m experiments.table1_glue --profile quick     # a first look, <= 1 h here
    python -m experiments.table1_glue --profile cpu       # what `make table1` runs; hours, resumable
    python -m experiments.table1_glue --profile paper --dry-run     # the paper's plan and parameter counts

Outputs (profile cpu: results/; quick: results/quick/; smoke: a temporary folder):
  table1.csv (one row per method × task × seed), table1_summary.csv (median and spread over seeds; floors),
  table1_curves.csv (learning curves), table1_verdicts.csv (claims 1 and 2 per task and pooled over the informative ones, crossed
  paired bootstrap),
  table1_informative.csv (per task: the highest floor and how far each method's mean leaves it), each with a
  .meta.json. Cells are reused when their settings and the package's code version match (--fresh recomputes);
  rerun the same command after an interruption.
"""
from __future__ import annotations

import pandas as pd

from iapt.errors import cli
from iapt.harness.grid import TableScript, run_table
from iapt.harness.stats import compare_rows, informative_tasks, shared_seeds
from experiments.common import CPU_REFERENCE, load_profiles, zeroshot_floors

PROMPT_BASED = ["prompt_tuning", "prefix_tuning", "idpg", "lpt"]
LORA_FAMILY = ["lora", "adalora", "ia3"]
COMPETITIVE_MARGIN = 0.02   # "competitive with LoRA": IAPT at most 2 points below, with 95 % confidence

PROFILES = load_profiles(__file__)   # table1_glue.yaml beside this file
# LLaMA-2 7B's architecture, for the dry run without hub access (the published config's sizes).
LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32000)


def dry_run(prof: dict) -> None:
    """Print the plan and each method's tunable parameters, counted on a weightless LLaMA-2 7B."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from iapt.baselines.registry import METHODS, count_trainable, size_for_budget
    with torch.device("meta"):
        skeleton = LlamaForCausalLM(LlamaConfig(**LLAMA2_7B))
    budget = count_trainable("iapt", skeleton, None)   # a row without a size is sized to IAPT's default count
    print(f"backbone {prof['backbone']} (architecture from its published config; weights not loaded); data: "
          + ("the hub's GLUE/SuperGLUE/SQuAD under the paper's split protocol (iapt.data.hub)"
             if prof.get("data") == "hub" else "the embedded data"))
    for rows, tasks, seeds in prof["stages"]:
        print(f"{len(rows)} methods × {len(tasks)} tasks ({', '.join(tasks)}) × {len(seeds)} seeds, "
              f"lr {prof['lrs']}, {prof['train']}")
        for r in rows:
            size = r.size if r.size is not None else size_for_budget(r.method, skeleton, budget, **r.options)
            knob = f"{METHODS[r.method].size_name}={size}" if size is not None else "fixed size"
            count = count_trainable(r.method, skeleton, size, total_steps=10, **r.options)
            print(f"  {r.name:15s} {knob:22s}{' ' + str(r.options) if r.options else ''}: {count:>12,d} tunable "
                  f"parameters" + (f" (training {r.train})" if r.train else ""))
    print("run it with: accelerate launch -m experiments.table1_glue --profile paper (needs GPUs and hub access)")


def verdicts(df: pd.DataFrame, informative: pd.DataFrame) -> pd.DataFrame:
    """Claims 1 and 2: IAPT against each method on every task (scope = the task), then pooled (scope "pooled":
    the per-task differences averaged under one joint draw) over the informative tasks (`informative`, from
    `informative_tasks`) on which both rows have at least two seeds, where there are two such tasks or more.
    Non-informative tasks leave the pool because no method has room to separate there, and one-seed tasks (the
    screen's) because they would bring the pool down to one seed, which is no verdict."""
    separating = sorted(informative.task[informative.informative.fillna(False).astype(bool)]) if len(informative) else []
    recs = []
    for claim, others, margin in (("1: IAPT beats prompt-based methods", PROMPT_BASED, 0.0),
                                  ("2: IAPT competitive with LoRA-family", LORA_FAMILY, COMPETITIVE_MARGIN)):
        for other in others:
            scopes = [(t, [t]) for t in sorted(set(df.task))]
            pooled = [t for t in separating if len(shared_seeds(df, ["iapt", other], t)) >= 2]
            if len(pooled) > 1:
                scopes.append(("pooled", pooled))
            for scope, tasks in scopes:
                found = compare_rows(df, "iapt", other, margin, tasks)
                if found:
                    recs.append({"claim": claim, "iapt_vs": other, **found, "scope": scope})
    return pd.DataFrame(recs)


def extras(df: pd.DataFrame) -> dict:
    informative = informative_tasks(df, df.attrs["floors"])
    return {"verdicts": verdicts(df, informative), "informative": informative}


@cli
def main(argv=None):
    return run_table(TableScript("table1", __doc__, "experiments/table1_glue.py", dry_run=dry_run, extras=extras,
                                 floors=zeroshot_floors, reference=CPU_REFERENCE), PROFILES, argv)


if __name__ == "__main__":
    main()
