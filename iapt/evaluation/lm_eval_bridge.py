"""lm-evaluation-harness in the pinned format, fully offline.

The task YAMLs point lm-eval at local JSON lines holding exactly the prompts and candidates our own
evaluator scores (same examples, same truncation), so the two accuracies can be held against each other.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ..data.format import DEFAULT_MAX_LENGTH, fit_prompt
from ..data.tasks import Example, Task, candidates

YAML_TEMPLATE = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{prompt}}}}"
doc_to_choice: choices
doc_to_target: label
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def pinned_record(task: Task, ex: Example, prompt: str) -> dict:
    """One multiple-choice document as every task YAML here reads it: prompt, choices (leading space), label."""
    return {"prompt": prompt, "choices": [" " + c for c in candidates(task, ex)], "label": ex.label}


def write_task(folder: Path, tokenizer, task: Task, examples: list[Example], max_length: int = DEFAULT_MAX_LENGTH) -> str:
    """Write <folder>/<task>.jsonl and its YAML; returns the lm-eval task name."""
    name = f"iapt_{task.name}"
    data = folder / f"{task.name}.jsonl"
    with open(data, "w") as f:
        for ex in examples:
            cands = candidates(task, ex)
            prompt, _ = fit_prompt(tokenizer, task, ex, " " + max(cands, key=len), max_length)
            f.write(json.dumps(pinned_record(task, ex, prompt)) + "\n")
    (folder / f"{task.name}.yaml").write_text(YAML_TEMPLATE.format(task=name, data=data))
    return name


def lm_eval_accuracy(model, tokenizer, tasks: dict[str, tuple[Task, list[Example]]], batch_size: int = 16) -> dict[str, float]:
    """Accuracy of a plain Hugging Face model through lm-eval on our examples, per task name."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory() as tmp:
        names = {key: write_task(Path(tmp), tokenizer, task, exs) for key, (task, exs) in tasks.items()}
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        out = simple_evaluate(model=lm, tasks=list(names.values()), task_manager=TaskManager(include_path=tmp),
                              log_samples=False)
    return {key: out["results"][name]["acc,none"] for key, name in names.items()}
