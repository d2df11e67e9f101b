"""Cross-processor drift: the same cell, at fp32, trained on two processor kinds (docs/reproducing.md, "Precision").

    python -m experiments.processor_drift              # what `make drift` runs; about 20 min here, resumable

A resumed grid can take its cells from several machines: fp32 on an AVX2 processor and fp32 on an AVX512 one
round differently, and a 60-step training amplifies rounding into a few flipped test examples. This retrains, on
this machine, committed fp32 cells that another processor kind trained (Table 1's cells listed in CELLS), into
results/drift/cells, and writes results/processor_drift.csv: per cell, both processors, both test metrics,
their difference and how many test examples changed. Every verdict then shows the largest |difference|
measured on its tasks beside it, and says when it is comparable to the effect (iapt.harness.stats).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from iapt.backbones import cache_dir
from iapt.errors import UserError, cli
from iapt.harness.runinfo import RESULTS, device_description, run_metadata, write_results
from iapt.harness.store import CellStore, precision_in_effect, read_record
from iapt.training.cell import CellSpec, RunContext, prepare
from iapt.training.config import TrainConfig
from experiments.common import ACCEPTED_CODE_VERSIONS, ACCEPTED_NOT_FOR, CPU_REFERENCE

# (method, task, seed): Table 1 cells trained at fp32 on AVX2 processors
CELLS = [("lora", "sst2", 0), ("lora", "sst2", 1), ("lora", "sst2", 2), ("prompt_tuning", "sst2", 1)]
OUT = RESULTS / "processor_drift.csv"
FORMER_STEPS = 60   # Table 1's protocol when these cells were trained (experiments/shared.yaml)


def committed(method: str, task: str, seed: int, records: Path) -> dict:
    """The committed record Table 1 uses for this cell."""
    for path in sorted(records.rglob("result.json")):
        record = read_record(path)
        spec = record["spec"]
        if ((spec["method"], spec["task"], spec["train"]["seed"]) == (method, task, seed) and not spec["options"]
                and spec["train"]["steps"] == FORMER_STEPS and spec["size"] is None
                and spec["code"] in ACCEPTED_CODE_VERSIONS and method not in ACCEPTED_NOT_FOR[spec["code"]]):
            return record
    raise UserError(f"no committed Table 1 record for {method} on {task}, seed {seed}, under {records}")


def same_cell(record: dict) -> CellSpec:
    """The record's settings as a spec to train now (its caps are its split sizes; its lrs its own search)."""
    spec = record["spec"]
    train = TrainConfig(**{**spec["train"], "precision": "fp32", "lr": spec["lrs"][0]})
    return CellSpec(spec["method"], spec["task"], spec["backbone"], train, tuple(spec["lrs"]), spec["budget"],
                    spec["size"], dict(spec["options"]), n_train=spec["n"]["train"], n_dev=spec["n"]["dev"],
                    n_test=spec["n"]["test"], data=spec["data"])


def kind(device: str) -> str:
    return device.split("capability ")[-1]


def drift_row(old: dict, new: dict) -> dict:
    a, b = old["test_correct"], new["test_correct"]
    return {"method": old["spec"]["method"], "task": old["spec"]["task"], "seed": old["spec"]["train"]["seed"],
            "precision": f"{precision_in_effect(old)} / {precision_in_effect(new)}",
            "processor_a": old["meta"]["device"], "processor_b": new["meta"]["device"],
            "metric_a": old["test_metric"], "metric_b": new["test_metric"],
            "delta": new["test_metric"] - old["test_metric"], "examples_changed": sum(x != y for x, y in zip(a, b)),
            "n_test": len(a), "code_version_a": old["code_version"], "code_version_b": new["code_version"]}


@cli
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args(argv)
    here = device_description("cpu")
    records, t0 = RESULTS / "cells", time.time()
    store = CellStore(cache_dir() / "runs-drift", RESULTS / "drift" / "cells",
                      reference=CPU_REFERENCE)
    rows = []
    for method, task, seed in CELLS:
        old = committed(method, task, seed, records)
        if precision_in_effect(old) != "fp32" or kind(old["meta"]["device"]) == kind(here):
            print(f"skipped {method} {task} seed {seed}: trained at {precision_in_effect(old)} on {old['meta']['device']}")
            continue
        print(f"{method} {task} seed {seed}: committed from {old['meta']['device']}; training it here ({here})")
        new = store.run(prepare(same_cell(old)), RunContext())
        store.keep(new)
        rows.append(drift_row(old, new.record))
    if not rows:
        raise UserError(f"no listed cell was trained at fp32 on another processor kind than this one ({here})")
    write_results(pd.DataFrame(rows), OUT, run_metadata(device="cpu", precision="fp32", seeds=sorted({r["seed"] for r in rows}),
                                                       script="experiments/processor_drift.py",
                                                       wall_s=round(time.time() - t0, 1)))
    print(pd.DataFrame(rows)[["method", "seed", "metric_a", "metric_b", "delta", "examples_changed"]].to_string(index=False))
    print(f"results: {OUT}")


if __name__ == "__main__":
    main()
