"""BIG-bench task files, read offline from the source archive that `make setup` downloads (never installed).

The folders we read are extracted once into $IAPT_CACHE/bigbench: Natural Instructions v1 and the BBH-style
tasks (Table 2, iapt.data.instruct) and the large classification tasks that are candidates for Table 1
(`bigbench:<folder>` sources in iapt.data.tasks). The extraction records which folders it holds, so adding a
folder re-extracts once.
"""
from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path

from ..backbones import cache_dir
from ..errors import UserError
from .tasks import TASKS, Example, Task

ARCHIVE = "bigbench-1.0.0.tar.gz"
PREFIX = "bigbench-1.0.0/bigbench/benchmark_tasks/"
# BIG-bench tasks that BBH was drawn from; multi-size tasks use their three-object version.
BBH_STYLE = {"date_understanding": "date_understanding", "navigate": "navigate",
             "logical_deduction": "logical_deduction/three_objects",
             "tracking_shuffled_objects": "tracking_shuffled_objects/three_objects",
             "sports_understanding": "sports_understanding", "causal_judgment": "causal_judgment",
             "hyperbaton": "hyperbaton", "snarks": "snarks"}


def extracted_folders() -> list[str]:
    """Every folder (relative to benchmark_tasks/) the project reads."""
    table1 = [t.source[len("bigbench:"):] for t in TASKS.values() if t.source.startswith("bigbench:")]
    return sorted({"natural_instructions", *(p.split("/")[0] for p in BBH_STYLE.values()), *table1})


@lru_cache(maxsize=None)
def bigbench_dir() -> Path:
    """The folders we read, extracted from the archive into $IAPT_CACHE/bigbench (again when the list grows)."""
    dest = cache_dir() / "bigbench"
    folders = extracted_folders()
    marker = dest / ".complete"
    if marker.exists() and marker.read_text().split() == folders:
        return dest
    archive = cache_dir() / "downloads" / ARCHIVE
    if not archive.exists():
        raise UserError(f"{archive} is missing; run `make setup` (it runs scripts/fetch_bigbench.py)")
    wanted = tuple(PREFIX + f + "/" for f in folders)
    tmp = Path(tempfile.mkdtemp(dir=cache_dir(), prefix=".bigbench-"))
    print(f"[iapt] extracting {len(folders)} BIG-bench task folders from {archive.name} (once)")
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".json") and member.name.startswith(wanted):
                member.name = member.name[len(PREFIX):]
                tar.extract(member, tmp, filter="data")
    (tmp / ".complete").write_text("\n".join(folders) + "\n")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def read_task(folder: str) -> dict:
    path = bigbench_dir() / folder / "task.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"malformed BIG-bench task file {path}: {e}") from None


def classification_examples(task: Task) -> list[Example]:
    """A `bigbench:<folder>` task's examples in the file's order: the input as the template's `input` field, the
    label the index of the best-scored target among the task's label words."""
    folder = task.source[len("bigbench:"):]
    out = []
    for i, ex in enumerate(read_task(folder)["examples"]):
        scores = ex.get("target_scores") or {}
        if sorted(scores) != sorted(task.label_words):
            raise UserError(f"BIG-bench {folder}, example {i}: targets {sorted(scores)} are not the label words "
                            f"{sorted(task.label_words)}")
        best = max(task.label_words, key=lambda w: scores[w])
        out.append(Example({"input": ex["input"].strip()}, task.label_words.index(best), (), f"{folder}/{i}"))
    return out
