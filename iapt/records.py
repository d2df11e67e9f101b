"""Finished cells' records, committed beside the tables they make.

A cell's folder under $IAPT_CACHE/runs holds checkpoints and adapters (weights: never committed) and a few small
JSON files: result.json and the evaluations made from it. A table run also keeps those JSON files in its record
store (results/cells/ for the cpu profile), so that a later session, another machine or a fresh clone resumes the
table from what is committed instead of retraining finished cells; `--fresh` retrains them all.
"""
from __future__ import annotations

import json
from pathlib import Path

from .runinfo import atomic_write_text


def restore(cell: str, cell_dir: Path, store: Path | None) -> bool:
    """Copy the committed record of `cell` into `cell_dir` when that folder has no result; True if one was.
    The result's `adapter` then names where the adapter would be here: a restored cell has no weights."""
    source = store / cell if store is not None else None
    if source is None or not (source / "result.json").exists() or (cell_dir / "result.json").exists():
        return False
    for path in sorted(source.glob("*.json"), key=lambda p: p.name == "result.json"):   # the result last
        text = path.read_text()
        if path.name == "result.json":
            text = json.dumps({**json.loads(text), "adapter": str(cell_dir / "adapter")}, indent=1) + "\n"
        if not (cell_dir / path.name).exists():
            atomic_write_text(cell_dir / path.name, text)
    return True


def keep(cell: str, cell_dir: Path, store: Path | None) -> None:
    """Copy the cell's JSON files (its result and evaluations, not its weights) into the record store."""
    if store is None:
        return
    for path in cell_dir.glob("*.json"):
        target = store / cell / path.name
        if not target.exists():
            atomic_write_text(target, path.read_text())


def cached_json(relative: str | list[str], compute, cache: Path, store: Path | None = None):
    """compute() once: its JSON is kept at cache/relative and in the record store (each written, then renamed);
    a value found in either is returned instead. A list of paths: the first is this version's, the others
    accepted older ones (a value found under one of those is used as it is, not copied)."""
    current, *accepted = [relative] if isinstance(relative, str) else relative

    def find(path: str) -> Path | None:
        return next((root / path for root in (cache, store) if root is not None and (root / path).exists()), None)
    found = find(current)
    if found is None:
        for path in accepted:
            if (older := find(path)) is not None:
                return json.loads(older.read_text())
    value = json.loads(found.read_text()) if found is not None else compute()
    for root in (cache, store):
        if root is not None and not (root / current).exists():
            atomic_write_text(root / current, json.dumps(value) + "\n")
    return value
