"""One precision per comparison: fp32 by default, the precision in effect recorded and keyed, older records keyed
by what could have run, and a verdict over cells of two precisions refused unless asked for."""
import numpy as np
import pandas as pd
import pytest
import torch

from iapt import precision
from iapt.harness.stats import MIXED_PRECISION, REPRODUCED, compare_rows
from iapt.harness.store import UNRECORDED_PRECISION, precision_in_effect, record_key
from iapt.training.config import TrainConfig


def test_cells_train_and_evaluate_in_fp32_unless_bf16_is_asked_for_and_can_run(monkeypatch):
    assert TrainConfig().precision == "fp32"
    assert precision.in_effect("cpu", "fp32") == "fp32"
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    assert precision.in_effect("cpu", "bf16") == "fp32"          # asked, but this processor cannot
    assert precision.precision_record("cpu", "bf16")["autocast"] is False
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert precision.in_effect("cpu", "bf16") == "bf16"
    with precision.autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu")
    with precision.autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    record = precision.precision_record("cpu", "bf16")
    assert record == {"requested": "bf16", "in_effect": "bf16", "autocast": True, "autocast_dtype": "bfloat16",
                      "cpu_bf16_flags": ["avx512_bf16"]}


def old_record(capability: str) -> dict:
    """A record from before the precision in effect was recorded: it names only the default it asked for."""
    return {"spec": {"method": "lora", "train": {"precision": "bf16", "seed": 0}},
            "meta": {"device": f"cpu: Some Processor, 2 cores, torch capability {capability}"}}


def test_an_older_record_is_keyed_by_the_precision_that_could_have_run():
    avx2, avx512 = old_record("AVX2"), old_record("AVX512")
    assert record_key(avx2)["train"]["precision"] == "fp32" and precision_in_effect(avx2) == "fp32"
    assert record_key(avx512)["train"]["precision"] == "bf16"             # bf16 may have run: never an fp32 cell
    assert precision_in_effect(avx512) == UNRECORDED_PRECISION
    new = {**avx512, "spec": {**avx512["spec"], "train": {"precision": "fp32"}},
           "precision": {"in_effect": "fp32"}}
    assert record_key(new) is new["spec"] and precision_in_effect(new) == "fp32"


def table(precisions: dict) -> pd.DataFrame:
    rows = []
    for row, p in (("iapt", 0.9), ("lora", 0.2)):
        for s in range(3):
            rng = np.random.default_rng(s)
            rows.append({"row": row, "task": "t", "seed": s, "cell": f"{row}-{s}", "precision": precisions[row],
                         "test_correct": " ".join(str(float(x)) for x in (rng.random(60) < p))})
    return pd.DataFrame(rows)


def test_a_verdict_over_cells_of_two_precisions_is_refused_unless_asked_for():
    same = compare_rows(table({"iapt": "fp32", "lora": "fp32"}), "iapt", "lora")
    assert same["verdict"] == REPRODUCED and same["precision"] == "fp32"
    mixed_table = table({"iapt": "fp32", "lora": UNRECORDED_PRECISION})
    mixed = compare_rows(mixed_table, "iapt", "lora")
    assert mixed["verdict"].startswith(MIXED_PRECISION) and mixed["diff"] == same["diff"]
    mixed_table.attrs["allow_mixed_precision"] = True
    assert compare_rows(mixed_table, "iapt", "lora")["verdict"] == REPRODUCED


@pytest.mark.parametrize("asked", ["fp32", "bf16"])
def test_a_cell_records_and_is_keyed_by_the_precision_in_effect(asked, tmp_path, monkeypatch):
    from tests.test_engine import run_in, tiny_spec
    from iapt.harness.store import CellStore
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())      # a processor without bf16 instructions
    spec = tiny_spec()
    spec.train = TrainConfig(**{**spec.train.to_dict(), "precision": asked})
    result = run_in(CellStore(tmp_path), spec)
    assert result["precision"]["requested"] == asked and result["precision"]["in_effect"] == "fp32"
    assert result["spec"]["train"]["precision"] == "fp32"            # bf16 asked here is an fp32 cell
