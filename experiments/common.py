"""What the experiment scripts share: the settings in shared.yaml, profile files, and the floor rows."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from iapt.harness.runinfo import RESULTS
from iapt.training.config import TrainConfig

HERE = Path(__file__).resolve().parent
SHARED = yaml.safe_load((HERE / "shared.yaml").read_text())
CPU_LRS = tuple(SHARED["cpu"]["lrs"])
CPU_TRAIN = dict(SHARED["cpu"]["train"])
CPU_N = dict(SHARED["cpu"]["n"])
ACCEPTED_CODE_VERSIONS = tuple(SHARED["accepted_code_versions"])
# Cell folders are named by the settings that differ from these (iapt.harness.store.readable_name).
CPU_REFERENCE = {"train": {**TrainConfig().to_dict(), **CPU_TRAIN}, "lrs": list(CPU_LRS)}


def zeroshot_floors(prof: dict, backbone: str, store=None) -> pd.DataFrame | None:
    """The zero-shot, majority-class and chance rows of results/zeroshot.csv on the test splits (`make zeroshot`)."""
    path = RESULTS / "zeroshot.csv"
    if not path.exists():
        return None
    floors = pd.read_csv(path)
    return floors[(floors.backbone == backbone) & (floors.split == "test")]
