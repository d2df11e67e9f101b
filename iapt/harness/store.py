"""Where finished cells are found and kept.

A cell's folder under $IAPT_CACHE/runs holds checkpoints and adapters (weights: never committed) and a few small
JSON files: result.json and the evaluations made from it. A table run also keeps those JSON files in its record
store (results/cells/ for the cpu profile), so that a later session, another machine or a fresh clone resumes the
table from what is committed instead of retraining finished cells; `--fresh` retrains them all.

Folders are named for people: `<backbone>/<task>/<method>-seed<seed>[-<setting>=<value>…]/<code version>`, the
settings being those that differ from the store's reference settings (the shared cpu settings for the tables).
Committed records are *found* by content: every record carries its settings (its `spec`), whose digest
(`settings_hash`, code version included) is what a lookup matches, so a record folder's name never decides whether
it is found. The local cache, which this code alone writes, is looked up by name.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ..training.cell import CellResult, PreparedCell, RunContext, run_cell, settings_hash
from ..errors import UserError, read_json
from .runinfo import atomic_write_text


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(_value(x) for x in v)
    return str(v).lower() if v is None or isinstance(v, bool) else str(v)


def read_record(path: Path) -> dict:
    """A cell's result.json, or one message naming it when it is damaged (records are committed: git restores them)."""
    remedy = f"restore it with `git checkout -- {path}`, or delete its folder to retrain the cell"
    record = read_json(path, "cell record", remedy)
    if not isinstance(record, dict) or "spec" not in record:
        raise UserError(f"the cell record {path} cannot be read (it has no `spec`): {remedy}")
    return record


UNRECORDED_PRECISION = "unrecorded (bf16 if the processor had avx512_bf16 or amx_bf16)"


def _trained_without_avx512(record: dict) -> bool:
    """The recorded processor lacked AVX512 (torch capability AVX2 or below), and so any bf16 instruction."""
    device = record.get("meta", {}).get("device", "")
    return device.startswith("cpu") and "capability" in device and "AVX512" not in device


def record_key(record: dict) -> dict:
    """A record's settings as today's keys state them: the precision *in effect* (iapt.precision). A record from
    before the precision in effect was recorded names the one asked for (bf16, then the default); on a processor
    without AVX512 bf16 autocast could not run, so that record ran — and is keyed — at fp32. On an AVX512 processor
    it may have run either way: it keeps bf16 and is never taken for an fp32 cell."""
    spec = record["spec"]
    if "precision" not in record and spec["train"].get("precision") == "bf16" and _trained_without_avx512(record):
        return {**spec, "train": {**spec["train"], "precision": "fp32"}}
    return spec


def precision_in_effect(record: dict) -> str:
    """fp32 or bf16 as the record says or its processor implies; UNRECORDED_PRECISION where neither tells."""
    if "precision" in record:
        return record["precision"]["in_effect"]
    asked = record_key(record)["train"].get("precision", "bf16")
    return "fp32" if asked == "fp32" else UNRECORDED_PRECISION


def readable_name(key: dict, reference: dict) -> str:
    """`<backbone>/<task>/<method>-seed<seed>[-k=v…]/<code>`: options, an explicit size, and the training
    settings and learning rates that differ from `reference` ({"train": {...}, "lrs": [...]})."""
    parts = [f"{key['method']}-seed{key['train']['seed']}"]
    parts += [f"{k}={_value(v)}" for k, v in sorted(key["options"].items())]
    if key["size"] is not None:
        parts.append(f"size={key['size']}")
    parts += [f"{k}={_value(v)}" for k, v in key["train"].items()
              if k not in ("seed", "lr") and k in reference.get("train", {}) and v != reference["train"][k]]
    if list(key["lrs"]) != list(reference.get("lrs", key["lrs"])):
        parts.append(f"lrs={_value(key['lrs'])}")
    name = re.sub(r"[^\w.=,+-]+", "_", "-".join(parts))
    return f"{key['backbone']}/{key['task']}/{name}/{key['code']}"


class CellStore:
    """The one lookup (local cache → committed record → an accepted older code version) and the one save."""

    def __init__(self, cache: Path, records: Path | None = None, accepted_versions: tuple[str, ...] = (),
                 reference: dict | None = None, not_for: dict[str, tuple[str, ...]] | None = None):
        """`not_for`: per accepted version, the methods whose cells it no longer supplies (their arithmetic or data
        changed since: they are retrained)."""
        self.cache, self.records = Path(cache), Path(records) if records is not None else None
        self.accepted, self.reference = tuple(accepted_versions), reference or {}
        self.not_for = dict(not_for or {})
        self._index: dict[str, Path] | None = None
        self._keys: dict[Path, dict] = {}

    def _indexed(self) -> dict[str, Path]:
        """settings_hash → folder of every committed record (read once per store)."""
        if self.records is None:
            return {}
        if self._index is None:   # (no records folder yet: an empty index, which `keep` then fills)
            self._keys = {p.parent: record_key(read_record(p)) for p in self.records.rglob("result.json")}
            self._index = {settings_hash(key): folder for folder, key in self._keys.items()}
        return self._index

    def recorded_keys(self) -> dict[Path, dict]:
        """folder → key of every committed record."""
        self._indexed()
        return dict(self._keys)

    def find_unsized(self, key: dict, caps: dict[str, int | None]) -> CellResult | None:
        """The committed record whose settings equal `key`'s in all but the split sizes `n` (and the budget, where
        `key` has none), with splits no larger than `caps` ({split: cap or None}): how a table is rebuilt from
        its records when a task's data cannot be read (the BIG-bench archive missing), since only the data tells
        its split sizes."""
        accepted = [v for v in self.accepted if key["method"] not in self.not_for.get(v, ())]
        left_out = {"n", "code"} | ({"budget"} if key.get("budget") is None else set())
        settings = {k: v for k, v in key.items() if k not in left_out}
        for version in (key["code"], *accepted):
            for record, held in self.recorded_keys().items():
                within = all(cap is None or held["n"].get(split, 0) <= cap for split, cap in caps.items())
                if held["code"] == version and within and {k: v for k, v in held.items() if k not in left_out} == settings:
                    found = self._restore(record, self.cache / self.name(held))
                    return CellResult(read_record(found / "result.json"), found, reused=True)
        return None

    def name(self, key: dict) -> str:
        """The key's folder, relative to the cache and the records: its readable name, or — when another cell
        already holds that name — the name with the settings hash appended."""
        base, digest = readable_name(key, self.reference), settings_hash(key)
        for root in (self.cache, self.records):
            held = root / base / "result.json" if root is not None else None
            if held is not None and held.exists() and settings_hash(record_key(read_record(held))) != digest:
                return f"{base}-{digest}"
        return base

    def find(self, key: dict) -> CellResult | None:
        """This version's cell, else one finished with the same settings at an accepted older version: from
        the cache, else restored from its committed record (which keeps no weights)."""
        accepted = [v for v in self.accepted if key["method"] not in self.not_for.get(v, ())]
        for version in (key["code"], *accepted):
            versioned = {**key, "code": version}
            folder = self.cache / self.name(versioned)
            found = folder if (folder / "result.json").exists() else None
            if found is None and (record := self._indexed().get(settings_hash(versioned))) is not None:
                found = self._restore(record, folder)
            if found is not None:
                print(f"already done: {found / 'result.json'}" if version == key["code"]
                      else f"reusing the cell finished at code version {version}: {found}")
                return CellResult(read_record(found / "result.json"), found, reused=True)
        return None

    def _restore(self, record: Path, folder: Path) -> Path:
        """Copy a committed record's JSON files into the cache; its `adapter` then names where the adapter
        would be here."""
        print(f"restored from the committed record {record}")
        for path in sorted(record.glob("*.json"), key=lambda p: p.name == "result.json"):   # the result last
            text = path.read_text()
            if path.name == "result.json":
                text = json.dumps({**json.loads(text), "adapter": str(folder / "adapter")}, indent=1) + "\n"
            if not (folder / path.name).exists():
                atomic_write_text(folder / path.name, text)
        return folder

    def forget(self, key: dict) -> None:
        """--fresh: the cell's earlier result goes, cached and recorded."""
        folders = [self.cache / self.name(key), self._indexed().pop(settings_hash(key), None)]
        self._keys.pop(folders[1], None)
        for folder in folders:
            if folder is not None and folder.exists():
                shutil.rmtree(folder)

    def keep(self, result: CellResult) -> str:
        """Copy the cell's JSON files (its result and evaluations, not its weights) into the record store; the
        folder that keeps them, relative to the store (the cache's name when there is no record store)."""
        if self.records is None:
            return result["cell"]
        digest = settings_hash(record_key(result.record))
        target = self._indexed().get(digest) or self.records / self.name(record_key(result.record))   # a record stays put
        for path in result.folder.glob("*.json"):
            if not (target / path.name).exists():
                atomic_write_text(target / path.name, path.read_text())
        self._indexed()[digest] = target
        self._keys[target] = record_key(result.record)
        return target.relative_to(self.records).as_posix()

    def run(self, cell: PreparedCell, ctx: RunContext, fresh: bool = False) -> CellResult | None:
        """The finished cell if there is one (unless `fresh`), else train it into the cache."""
        if fresh and ctx.accelerator.is_main_process:
            self.forget(cell.key)
        found = None if fresh else self.find(cell.key)
        ctx.accelerator.wait_for_everyone()
        if found is not None:
            return found
        name = self.name(cell.key)
        return run_cell(cell, self.cache / name, ctx, name)


def _kept(path: str, cache: Path, store: Path | None) -> Path | None:
    return next((root / path for root in (cache, store) if root is not None and (root / path).exists()), None)


def recorded_json(relative: list[str], cache: Path, store: Path | None = None):
    """The JSON kept under the first of the paths found (in cache, then the store), or None; nothing is computed."""
    found = next((p for path in relative if (p := _kept(path, cache, store)) is not None), None)
    return None if found is None else json.loads(found.read_text())


def cached_json(relative: str | list[str], compute, cache: Path, store: Path | None = None):
    """compute() once: its JSON is kept at cache/relative and in the record store (each written, then renamed);
    a value found in either is returned instead. A list of paths: the first is this version's, the others
    accepted older ones (a value found under one of those is used as it is, not copied)."""
    current, *accepted = [relative] if isinstance(relative, str) else relative
    found = _kept(current, cache, store)
    if found is None and (older := recorded_json(accepted, cache, store)) is not None:
        return older
    value = json.loads(found.read_text()) if found is not None else compute()
    for root in (cache, store):
        if root is not None and not (root / current).exists():
            atomic_write_text(root / current, json.dumps(value) + "\n")
    return value
