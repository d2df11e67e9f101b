"""What the experiment scripts share: the settings in shared.yaml, profile files, and the floor rows."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import yaml

from iapt.baselines.registry import METHODS, method_options
from iapt.data.tasks import TASKS
from iapt.errors import UserError
from iapt.harness.grid import Row
from iapt.harness.runinfo import RESULTS, read_results
from iapt.training.config import TrainConfig

HERE = Path(__file__).resolve().parent
SHARED = yaml.safe_load((HERE / "shared.yaml").read_text())
CPU_LRS = tuple(SHARED["cpu"]["lrs"])
CPU_TRAIN = dict(SHARED["cpu"]["train"])
CPU_N = dict(SHARED["cpu"]["n"])
ACCEPTED_CODE_VERSIONS = tuple(SHARED["accepted_code_versions"])
# per accepted version, the methods whose cells it no longer supplies (shared.yaml says why)
ACCEPTED_NOT_FOR = {v: tuple(entry.get("not_for", ())) for v, entry in SHARED["accepted_code_versions"].items()}
# Cell folders are named by the settings that differ from these (iapt.harness.store.readable_name).
CPU_REFERENCE = {"train": {**TrainConfig().to_dict(), **CPU_TRAIN}, "lrs": list(CPU_LRS)}


def zeroshot_floors(prof: dict, backbone: str, store=None) -> pd.DataFrame | None:
    """The zero-shot, majority-class and chance rows of results/zeroshot.csv on the test splits (`make zeroshot`)."""
    path = RESULTS / "zeroshot.csv"
    if not path.exists():
        return None
    floors = read_results(path)
    return floors[(floors.backbone == backbone) & (floors.split == "test")]


# The keys a grid table's profile may have (each table's YAML file explains them); a script adds its own.
GRID_KEYS = ("backbone", "shared", "stages", "rows", "tasks", "seeds", "lrs", "n", "train", "sizes", "options",
             "data", "reuse_code_versions", "expected")
N_KEYS = ("n_train", "n_dev", "n_test")
TRAIN_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def _check(where: str, what: str, given, valid) -> None:
    wrong = sorted(set(given) - set(valid))
    if wrong:
        raise UserError(f"{where}: unknown {what} {', '.join(map(str, wrong))}; valid: {', '.join(map(str, valid))}")


def named_row(name: str, spec: dict, where: str) -> Row:
    """A row of the file's `rows:` section: {method, options, size, train, lrs}."""
    _check(f"{where}: row {name!r}", "key(s)", spec, ("method", "options", "size", "train", "lrs"))
    method, options, train = spec.get("method"), dict(spec.get("options") or {}), dict(spec.get("train") or {})
    _check(f"{where}: row {name!r}", "method", [method], METHODS)
    _check(f"{where}: row {name!r}", "option(s)", options, method_options(method))
    _check(f"{where}: row {name!r}", "train setting(s)", train, TRAIN_KEYS)
    lrs = tuple(float(lr) for lr in spec["lrs"]) if "lrs" in spec else None
    return Row(name, method, options, spec.get("size"), train, lrs)


def stage(entry: dict, rows: dict, prof: dict, where: str) -> tuple[list[Row], list[str], list[int]]:
    """One stage {rows, tasks, seeds}: a row is a name from `rows:` or a method (with the profile's `sizes` and
    `options` for it)."""
    _check(where, "stage key(s)", entry, ("rows", "tasks", "seeds"))
    _check(where, "row(s)", entry["rows"], [*rows, *METHODS])   # a named row, or a method
    _check(where, "task(s)", entry["tasks"], TASKS)
    sizes, options = prof.get("sizes", {}), prof.get("options", {})
    return ([rows[r] if r in rows else Row(r, r, dict(options.get(r, {})), sizes.get(r)) for r in entry["rows"]],
            list(entry["tasks"]), [int(s) for s in entry["seeds"]])


def grid_profile(raw: dict, rows: dict, keys, where: str) -> dict:
    """One profile, checked; `shared: cpu` starts it from shared.yaml's cpu settings (`n` and `train` merged key
    by key); `stages` is always filled in (a profile with top-level rows/tasks/seeds has one stage)."""
    _check(where, "key(s)", raw, keys)
    prof = dict(raw)
    if prof.pop("shared", None) == "cpu":
        prof = {"lrs": CPU_LRS, **prof, "n": {**CPU_N, **prof.get("n", {})}, "train": {**CPU_TRAIN, **prof.get("train", {})}}
    _check(where, "n key(s)", prof.get("n", {}), N_KEYS)
    _check(where, "train setting(s)", prof.get("train", {}), TRAIN_KEYS)
    _check(where, "sizes method(s)", prof.get("sizes", {}), METHODS)
    _check(where, "options method(s)", prof.get("options", {}), METHODS)
    for method, options in prof.get("options", {}).items():
        _check(f"{where}: options of {method}", "option(s)", options, method_options(method))
    if "rows" in prof:
        single = {k: prof[k] for k in ("rows", "tasks", "seeds")}
        prof["stages"] = [stage(single, rows, prof, where)]
        prof["rows"] = prof["stages"][0][0]
    else:
        prof["stages"] = [stage(entry, rows, prof, f"{where}, stage {i}") for i, entry in enumerate(prof.get("stages", []))]
    if "lrs" in prof:
        prof["lrs"] = tuple(float(lr) for lr in prof["lrs"])
    if prof.get("reuse_code_versions") is True:   # the versions accepted in shared.yaml
        prof["reuse_code_versions"] = ACCEPTED_CODE_VERSIONS
        prof["reuse_not_for"] = ACCEPTED_NOT_FOR
    return prof


def read_profiles(script: str, sections=("profiles", "common")) -> tuple[Path, dict]:
    """The YAML file beside `script` (experiments/<script>.yaml) and its content, with a clear message when it
    is missing or malformed. `common:` holds what YAML anchors share between profiles."""
    path = Path(script).with_suffix(".yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read the profiles {path}: {e}") from None
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise UserError(f"{path}: expected a mapping with a `profiles:` section")
    _check(str(path), "section(s)", data, sections)
    return path, data


def load_profiles(script: str, extra_keys: tuple = ()) -> dict:
    """A grid table's profiles, checked: unknown keys, methods, tasks, training settings and IAPT options are
    refused with a message naming the file and the valid ones; rows become `Row`s, in `stages`."""
    path, data = read_profiles(script, ("rows", "profiles", "common"))
    rows = {name: named_row(name, spec, str(path)) for name, spec in (data.get("rows") or {}).items()}
    return {name: grid_profile(prof, rows, GRID_KEYS + tuple(extra_keys), f"{path}: profile {name}")
            for name, prof in data["profiles"].items()}


def load_settings(script: str, keys: tuple) -> dict:
    """Another script's profiles (benchmarks, floors): each a mapping of the given keys."""
    path, data = read_profiles(script)
    for name, prof in data["profiles"].items():
        _check(f"{path}: profile {name}", "key(s)", prof, keys)
    return data["profiles"]
