"""Datasets for the task YAMLs in this folder, built from the local data (no hub access).

Each record is one example in the pinned format: the prompt our own evaluator scores, the candidate
continuations (each with its leading space) and the label. `n` (from the YAML's or lm-eval's --metadata)
keeps the first n examples, a stratified subset (see `iapt.data.instruct`).
"""
from __future__ import annotations


def _dataset(task_name: str, n=None):
    from datasets import Dataset, DatasetDict

    from iapt.evaluation.lm_eval_bridge import pinned_record
    from iapt.data.tasks import get_task
    from iapt.data.splits import load_split
    task = get_task(task_name)
    examples = load_split(task_name, "test")[: int(n) if n else None]
    return DatasetDict({"test": Dataset.from_list([{**pinned_record(task, ex, task.prompt(ex)), "uid": ex.uid}
                                                   for ex in examples])})


def mmlu(n=None, **_metadata):
    return _dataset("mmlu", n)


def bbh(n=None, **_metadata):
    return _dataset("bbh", n)
