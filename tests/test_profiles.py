"""Every experiment's profiles live in a YAML file beside its script: each file parses, names only real
options, and a wrong one is refused with a message that names the file and the valid choices."""
import importlib
from pathlib import Path

import pytest

from experiments.common import load_profiles
from iapt.errors import UserError
from iapt.training.config import TrainConfig

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
PROFILE_FILES = sorted(p for p in EXPERIMENTS.glob("*.yaml") if p.name != "shared.yaml")


def test_every_script_with_profiles_reads_its_file():
    assert {p.stem for p in PROFILE_FILES} == {"table1_glue", "table2_instruct", "table3_activation", "table4_length",
                                               "reference_commonsense", "table5_multitenant", "pilot_protocol"}
    for path in PROFILE_FILES:
        module = importlib.import_module(f"experiments.{path.stem}")   # loading checks every key
        assert Path(module.__file__).with_suffix(".yaml") == path and {"smoke", "cpu"} <= set(module.PROFILES)


@pytest.mark.parametrize("path", [p for p in PROFILE_FILES if p.stem != "table5_multitenant"], ids=lambda p: p.stem)
def test_grid_profiles_build_their_training_settings(path):
    module = importlib.import_module(f"experiments.{path.stem}")
    for name, prof in module.PROFILES.items():
        TrainConfig(**prof["train"])                                   # a real TrainConfig
        for rows, tasks, seeds in prof["stages"]:
            assert rows and tasks and seeds, (path.name, name)
            for row in rows:
                TrainConfig(**{**prof["train"], **row.train})


GOOD = """
rows:
  fixed relu: {method: iapt, options: {activation: relu}}
profiles:
  smoke:
    backbone: tiny-random-llama
    rows: [fixed relu, lora]
    tasks: [sst2]
    seeds: [0]
    lrs: [0.01]
    train: {steps: 4}
"""


@pytest.mark.parametrize("change, message", [   # message: a regular expression
    (("    lrs: [0.01]", "    lr: [0.01]"), r"table.yaml: profile smoke: unknown key\(s\) lr; valid: backbone"),
    (("train: {steps: 4}", "train: {step: 4}"), r"unknown train setting\(s\) step; valid: .*steps"),
    (("activation: relu", "activaton: relu"), r"row 'fixed relu': unknown option\(s\) activaton; valid: .*activation"),
    (("tasks: [sst2]", "tasks: [sst3]"), r"unknown task\(s\) sst3; valid: .*sst2"),
    (("rows: [fixed relu, lora]", "rows: [fixed relu, lorra]"), r"unknown row\(s\) lorra; valid: fixed relu, .*lora"),
    (("profiles:", "profiles: ["), r"cannot read the profiles .*table.yaml"),
])
def test_a_wrong_profile_file_is_refused_with_the_valid_choices(tmp_path, change, message):
    script = tmp_path / "table.py"
    script.with_suffix(".yaml").write_text(GOOD)
    assert load_profiles(str(script))["smoke"]["rows"][1].method == "lora"
    script.with_suffix(".yaml").write_text(GOOD.replace(*change))
    with pytest.raises(UserError, match=message):
        load_profiles(str(script))
