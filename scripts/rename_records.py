"""Give every committed cell record its readable folder name (iapt.harness.store.readable_name).

    python -m scripts.rename_records            # print the renames
    python -m scripts.rename_records --apply    # make them (then commit results/cells/)

Records are found by the settings inside them, not by their folder's name, so a rename never loses one: this
script checks that every record is still found, at the same settings, after the move. Folders from before
readable names end in the settings hash (`<method>-seed<s>-<hash>`); they become
`<backbone>/<task>/<method>-seed<s>[-k=v…]/<code version>`, named against the tables' shared cpu settings.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from experiments.common import CPU_REFERENCE
from iapt.harness.runinfo import RESULTS
from iapt.harness.store import CellStore
from iapt.training.cell import settings_hash


def plan(records) -> list[tuple]:
    """(from, to) for every record whose folder is not at its readable name, in a deterministic order."""
    store = CellStore(records / ".no-cache", records, reference=CPU_REFERENCE)
    moves, taken = [], set()
    for result in sorted(records.rglob("result.json")):
        spec = json.loads(result.read_text())["spec"]
        name = store.name(spec)
        if name in taken:   # two records that would share a name: the second keeps its hash in the name
            name = f"{name}-{settings_hash(spec)}"
        taken.add(name)
        if result.parent != records / name:
            moves.append((result.parent, records / name))
    return moves


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=Path, default=RESULTS / "cells", help="the record store (default: results/cells)")
    ap.add_argument("--apply", action="store_true", help="make the renames (default: only print them)")
    args = ap.parse_args(argv)
    records = args.records
    before = {settings_hash(json.loads(p.read_text())["spec"]): p.read_text() for p in records.rglob("result.json")}
    moves = plan(records)
    for src, dst in moves:
        print(f"{src.relative_to(records)} -> {dst.relative_to(records)}")
        if args.apply:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(src, dst)
    if args.apply:
        for folder in sorted({p.parent for p in records.rglob("*")}, key=lambda p: -len(p.parts)):
            if folder != records and folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        after = {settings_hash(json.loads(p.read_text())["spec"]): p.read_text() for p in records.rglob("result.json")}
        assert after == before, "a record was lost or changed by the renames"
    print(f"{len(moves)} of {len(before)} records {'renamed' if args.apply else 'to rename (--apply to do it)'}; "
          f"every record is found by the settings inside it")


if __name__ == "__main__":
    main()
