"""One entry point for a task's examples, whichever source holds them: the shipped data (iapt.data.embedded,
iapt.data.bigbench), the instruction-tuning data (iapt.data.instruct) or the hub under the paper's protocol (iapt.data.hub)."""
from __future__ import annotations

from functools import lru_cache

from ..errors import UserError, unknown
from . import bigbench, embedded, hub, instruct
from .tasks import DATA_SOURCES, EMBEDDED_TASKS, Example, get_task

INSTRUCT_SPLITS = {"instruct:ni": instruct.ni_split, "instruct:mmlu": instruct.mmlu_split,
                   "instruct:bbh": instruct.bbh_split}


@lru_cache(maxsize=None)
def load_examples(name: str) -> list[Example]:
    """Every shipped example of a task, in the shipped order."""
    task = get_task(name)
    if task.source.startswith("hub:"):
        raise UserError(f"task {name!r} needs the Hugging Face hub ({task.source[4:]}), which this machine cannot "
                        f"reach; offline tasks: {', '.join(EMBEDDED_TASKS)}")
    if task.source == "olmo-squad":
        return embedded.squad_examples()
    if task.source.startswith("bigbench:"):
        return bigbench.classification_examples(task)
    if task.source in INSTRUCT_SPLITS:
        return [ex for split in task.split_names for ex in INSTRUCT_SPLITS[task.source](split)]
    return embedded.olmo_examples(task)


@lru_cache(maxsize=None)
def load_split(name: str, split: str, source: str = "embedded") -> list[Example]:
    """A task's train, dev or test examples: the shipped validation set re-split (iapt.data.embedded), or with
    `source="hub"` (the paper profiles) the paper's protocol on the hub's splits; tasks that only exist on the
    hub always use it; instruction tasks have their own split rule."""
    if split not in ("train", "dev", "test"):
        raise unknown("split", split, ("train", "dev", "test"))
    if source not in DATA_SOURCES:
        raise unknown("data source", source, DATA_SOURCES)
    task = get_task(name)
    if source == "hub" or task.source.startswith("hub:"):
        return hub.hub_split(name, split)
    if task.source in INSTRUCT_SPLITS:
        return INSTRUCT_SPLITS[task.source](split)
    return embedded.resplit(load_examples(name), split, task.split_sizes)
