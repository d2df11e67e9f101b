"""A small stand-in for the BIG-bench 1.0.0 source archive, for machines where it cannot be fetched.

Same layout and JSON schema as the folders the project reads (iapt.data.bigbench.extracted_folders): 61 Natural
Instructions v1 subtasks, the eight BBH-style tasks, MultiEmo's and FEVER's classification files (enough
examples for their split sizes). Its text is invented: it exercises the reading, splitting and training code,
never the real files' content, which the tests marked `real_bigbench` check when the real archive is there.
"""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from iapt.data.bigbench import ARCHIVE, BBH_STYLE, PREFIX

WORDS = "red green blue small large quick slow bright dark warm cold soft loud calm".split()


def _sentence(i: int, n: int = 6) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)) + f" {i}."


def _ni_task(k: int) -> dict:
    return {"task_prefix": f"Definition: Repeat the first word of the input. Things to Avoid: Task {k}. "
                           f"Emphasis & Caution: none.",
            "examples": [{"input": _sentence(k * 10 + i), "target": _sentence(k * 10 + i).split()[0]}
                         for i in range(6)]}


def _choice_task(options: list[str], n: int, prefix: str = "") -> dict:
    return {"task_prefix": prefix,
            "examples": [{"input": f"Q: {_sentence(i)}\nA:", "target_scores": {o: int(j == i % len(options))
                                                                                for j, o in enumerate(options)}}
                         for i in range(n)]}


def task_files() -> dict[str, dict]:
    """benchmark_tasks-relative path -> task.json content."""
    files = {f"natural_instructions/subtask{k:03d}_synthetic/task.json": _ni_task(k) for k in range(1, 62)}
    for folder in BBH_STYLE.values():
        files[f"{folder}/task.json"] = _choice_task(["Yes", "No"], 12, prefix="Answer the question.")
    files["multiemo/all_sentence_en/task.json"] = _choice_task(["negative", "positive", "neutral", "ambivalent"],
                                                               1300)
    files["fact_checker/fever/task.json"] = _choice_task(["false", "true"], 2300)
    return files


def write_archive(downloads: Path) -> Path:
    """The stand-in as downloads/bigbench-1.0.0.tar.gz (the name and layout the project reads)."""
    downloads.mkdir(parents=True, exist_ok=True)
    path = downloads / ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        for relative, content in task_files().items():
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(PREFIX + relative)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
