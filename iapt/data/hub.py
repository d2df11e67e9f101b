"""The paper's data protocol on the Hugging Face hub's GLUE / SuperGLUE / SQuAD (the `paper` profiles).

The paper's protocol (docs/data.md): tasks with fewer than 10 k training examples keep their training split and split the original
validation set in half into dev and test; larger ones hold 1 k training examples out as dev and use the
original validation set as test. Both shuffles use `SPLIT_SEED`, never the run seed.

This machine cannot reach the hub. `IAPT_HUB_MIRROR=DIR` reads `DIR/<hub id>/<config>` (a DatasetDict
saved with `save_to_disk`) instead: for machines that fetch once and train offline, and for the tests,
which stand a tiny local mirror in for the hub and run this same code.
"""
from __future__ import annotations

import os
import random
from functools import lru_cache
from pathlib import Path

from ..errors import UserError
from .tasks import SPLIT_SEED, Example, get_task

SMALL_TRAIN = 10_000
LARGE_DEV = 1_000


def _pair(first: str, second: str):
    return lambda r, i: Example({"sentence1": r[first], "sentence2": r[second]}, r["label"], (), str(r.get("idx", i)))


def _qa(context: str, question: str, answers):
    return lambda r, i: Example({"context": r[context], "question": r[question]}, None,
                                tuple(dict.fromkeys(answers(r))), str(r.get("id", r.get("idx", i))))


# task -> (hub id, config, record -> Example); None: the task's own converter reads the hub records as they are
HUB = {
    "sst2": ("nyu-mll/glue", "sst2", None),
    "rte": ("nyu-mll/glue", "rte", None),
    "mrpc": ("nyu-mll/glue", "mrpc", None),
    "qnli": ("nyu-mll/glue", "qnli", _pair("question", "sentence")),
    "boolq": ("google/boolq", None, None),
    "cb": ("aps/super_glue", "cb", None),
    "copa": ("aps/super_glue", "copa", None),
    "record": ("aps/super_glue", "record", _qa("passage", "query", lambda r: r["answers"])),
    "squad": ("rajpurkar/squad", None, _qa("context", "question", lambda r: r["answers"]["text"])),
}


def _load(hub_id: str, config: str | None):
    mirror = os.environ.get("IAPT_HUB_MIRROR")
    if mirror:
        from datasets import load_from_disk
        path = Path(mirror) / hub_id / (config or "default")
        if not path.exists():
            raise UserError(f"IAPT_HUB_MIRROR is set but {path} does not exist (save the hub's DatasetDict there "
                            f"with save_to_disk, or unset IAPT_HUB_MIRROR to use the hub)")
        return load_from_disk(str(path))
    from datasets import load_dataset
    try:
        return load_dataset(hub_id, config)
    except Exception as e:   # offline, gated, renamed: say which data set and how to proceed
        raise UserError(f"could not load {hub_id} ({config}) from the Hugging Face hub: {e}. The `paper` profiles "
                        f"need hub access, or a local copy under IAPT_HUB_MIRROR") from None


def _convert(name: str, records) -> list[Example]:
    convert = HUB[name][2] or get_task(name).convert
    out = []
    for i, record in enumerate(records):
        try:
            out.append(convert(record, i))
        except (KeyError, ValueError, TypeError) as e:
            raise UserError(f"malformed record {i} of {HUB[name][0]} ({HUB[name][1]}) for task {name}: {e!r}") from None
    return out


def hub_split(name: str, split: str) -> list[Example]:
    """train / dev / test of a task under the paper's protocol, from the hub (or IAPT_HUB_MIRROR)."""
    return _hub_parts(name)[split]


@lru_cache(maxsize=None)
def _hub_parts(name: str) -> dict[str, list[Example]]:
    """All three parts of a task at once: the data set is loaded and converted once, not once per split."""
    if name not in HUB:
        raise UserError(f"task {name!r} has no hub source; tasks with one: {', '.join(HUB)}")
    data = _load(*HUB[name][:2])
    train, validation = _convert(name, data["train"]), _convert(name, data["validation"])
    if len(train) < SMALL_TRAIN:
        order = list(range(len(validation)))
        random.Random(SPLIT_SEED).shuffle(order)
        half = len(order) // 2
        parts = {"train": train, "dev": [validation[i] for i in order[:half]],
                 "test": [validation[i] for i in order[half:]]}
    else:
        order = list(range(len(train)))
        random.Random(SPLIT_SEED).shuffle(order)
        parts = {"train": [train[i] for i in order[LARGE_DEV:]], "dev": [train[i] for i in order[:LARGE_DEV]],
                 "test": validation}
    return parts
