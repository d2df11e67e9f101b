"""The paper profiles' data path (the hub's GLUE / SuperGLUE / SQuAD under the paper's split protocol),
run offline against a tiny local mirror standing in for the hub ids."""
import pytest
from datasets import Dataset, DatasetDict

from iapt.data import hub as hub_data
from iapt.errors import UserError
from iapt.data.tasks import get_task

from iapt.data.splits import load_split


def _save(root, hub_id, config, train, validation):
    DatasetDict({"train": Dataset.from_list(train), "validation": Dataset.from_list(validation)}).save_to_disk(
        str(root / hub_id / (config or "default")))


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    sst2 = lambda n, off: [{"sentence": f"movie {off + i} ", "label": i % 2, "idx": off + i} for i in range(n)]  # noqa: E731
    _save(tmp_path, "nyu-mll/glue", "sst2", sst2(30, 0), sst2(8, 100))
    _save(tmp_path, "nyu-mll/glue", "rte", [{"sentence1": f"a{i}", "sentence2": f"b{i}", "label": i % 2, "idx": i}
                                            for i in range(12)],
          [{"sentence1": f"c{i}", "sentence2": f"d{i}", "label": 1, "idx": i} for i in range(10)])
    _save(tmp_path, "nyu-mll/glue", "qnli", [{"question": "q?", "sentence": "s.", "label": 1, "idx": 0}],
          [{"question": "why?", "sentence": "because.", "label": 0, "idx": 7}])
    answers = {"text": ["Paris", "Paris", "paris"], "answer_start": [0, 0, 0]}
    _save(tmp_path, "rajpurkar/squad", None, [{"id": "s1", "title": "t", "context": "Paris is big.", "question": "Where?",
                                               "answers": answers}], [])
    monkeypatch.setenv("IAPT_HUB_MIRROR", str(tmp_path))
    monkeypatch.setattr(hub_data, "SMALL_TRAIN", 20)   # sst2's 30 training examples count as "large"
    monkeypatch.setattr(hub_data, "LARGE_DEV", 5)
    hub_data._hub_parts.cache_clear()
    load_split.cache_clear()
    yield tmp_path
    hub_data._hub_parts.cache_clear()
    load_split.cache_clear()


def test_small_tasks_split_validation_in_half_and_keep_train(mirror):
    parts = {s: load_split("rte", s, "hub") for s in ("train", "dev", "test")}
    assert len(parts["train"]) == 12 and len(parts["dev"]) == 5 and len(parts["test"]) == 5
    dev, test = ({e.fields["sentence1"] for e in parts[s]} for s in ("dev", "test"))
    assert not dev & test and dev | test == {f"c{i}" for i in range(10)}


def test_large_tasks_hold_out_training_examples_as_dev_and_test_on_validation(mirror):
    parts = {s: load_split("sst2", s, "hub") for s in ("train", "dev", "test")}
    assert len(parts["dev"]) == 5 and len(parts["train"]) == 25
    assert not {e.uid for e in parts["dev"]} & {e.uid for e in parts["train"]}
    assert [e.fields["sentence"] for e in parts["test"]] == [f"movie {100 + i}" for i in range(8)]   # stripped, in order
    assert load_split("sst2", "dev", "hub") == parts["dev"]     # the split never depends on the run


def test_hub_records_convert_to_the_pinned_fields(mirror):
    qnli = load_split("qnli", "train")     # a hub-only task uses the hub without being asked
    assert qnli[0].fields == {"sentence1": "q?", "sentence2": "s."} and qnli[0].label == 1
    assert get_task("qnli").prompt(qnli[0]).startswith("sentence 1: q?\nsentence 2: s.")
    squad = hub_data._convert("squad", [{"id": "x", "context": "c", "question": "q", "answers": {"text": ["a", "a", "b"]}}])
    assert squad[0].candidates == ("a", "b") and squad[0].uid == "x"


def test_missing_mirror_folder_and_unknown_source_are_clear(mirror):
    with pytest.raises(UserError, match="IAPT_HUB_MIRROR is set but .*super_glue/copa"):
        load_split("copa", "train", "hub")
    with pytest.raises(UserError, match="valid data sources: embedded, hub"):
        load_split("sst2", "train", "web")


def test_a_cell_trains_on_hub_data_through_the_same_path(mirror, tmp_path):
    from iapt.backbones import TINY
    from iapt.cli.train import train_cell
    from iapt.training.cell import CellSpec
    from iapt.training.config import TrainConfig
    result = train_cell(CellSpec("lora", "sst2", TINY, TrainConfig(steps=2, batch_size=4, eval_every=2, patience=None),
                                 (1e-2,), data="hub"), tmp_path / "cell")
    assert result["spec"]["data"] == "hub" and result["spec"]["n"] == {"train": 25, "dev": 5, "test": 8}
    assert result["test"]["n"] == 8
