"""Splits, templates, the pinned format and tokenisation, on the real shipped data and tokenizer."""
import subprocess
import sys

import pytest

from iapt.backbones import load_backbone
from iapt.data.format import collate, encode, fit_prompt
from iapt.errors import UserError
from iapt.data.tasks import EMBEDDED_TASKS, Task, get_task
from iapt.data.bigbench import classification_examples

from iapt.data.embedded import split_sizes

from iapt.data.splits import load_examples, load_split

DOCUMENTED_SIZES = {  # README, "Tasks and splits"
    "sst2": (436, 131, 305), "rte": (138, 42, 97), "mrpc": (204, 61, 143), "cb": (28, 8, 20),
    "boolq": (2570, 200, 500), "copa": (50, 15, 35), "squad": (500, 150, 350), "arc_easy": (284, 86, 200),
    "arc_challenge": (149, 45, 105), "openbookqa": (250, 75, 175), "piqa": (1138, 200, 500),
    "hellaswag": (8842, 200, 1000), "social_i_qa": (754, 200, 1000), "winogrande": (634, 190, 443),
    "sciq": (500, 150, 350), "commonsense_qa": (521, 200, 500), "multiemo": (56266, 200, 1000),
    "fever": (4412, 200, 2000),
}


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone("smollm2-135m")[1]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.real_bigbench)
                                  if get_task(n).source.startswith("bigbench:") else n for n in EMBEDDED_TASKS])
def test_splits_deterministic_disjoint_documented(name):
    splits = {s: load_split(name, s) for s in ("train", "dev", "test")}
    assert tuple(len(splits[s]) for s in ("train", "dev", "test")) == DOCUMENTED_SIZES[name]
    uids = [set(id(e) for e in v) for v in splits.values()]
    assert not (uids[0] & uids[1]) and not (uids[0] & uids[2]) and not (uids[1] & uids[2])
    assert sum(map(len, uids)) == len(load_examples(name))
    load_split.cache_clear()
    again = load_split(name, "test")
    assert [e.uid for e in again] == [e.uid for e in splits["test"]]


def test_split_sizes_rule():
    assert split_sizes(100) == {"train": 50, "dev": 15, "test": 35}
    assert split_sizes(10000) == {"train": 9300, "dev": 200, "test": 500}
    assert split_sizes(10042, (2000, 200)) == {"train": 7842, "dev": 200, "test": 2000}
    with pytest.raises(ValueError, match="cannot hold"):
        split_sizes(100, (80, 20))


def test_templates_render_exactly_as_documented():
    sst2 = get_task("sst2")
    ex = load_split("sst2", "test")[0]
    assert sst2.prompt(ex) == f"{ex.fields['sentence']}\nThe sentiment of the given sentence is:\nAnswer:"
    rte = get_task("rte")
    ex = load_split("rte", "test")[0]
    assert rte.prompt(ex) == (f"sentence 1: {ex.fields['sentence1']}\nsentence 2: {ex.fields['sentence2']}\n"
                              "Are sentence 1 and sentence 2 have entailment relation or not?\nAnswer:")
    copa = get_task("copa")
    ex = load_split("copa", "test")[0]
    f = ex.fields
    assert copa.prompt(ex) == (f"Premise:\n{f['premise']}\nChoice 1: {f['choice1']}\nChoice 2: {f['choice2']}\n"
                               f"Question:\n{f['question']}\nAnswer:")
    assert get_task("boolq").template == "Reference document:\n{passage}\nQuestion:\n{question}"
    assert get_task("squad").template == "Context:\n{context}\nQuestion:\n{question}"


@pytest.mark.real_bigbench
def test_bigbench_tasks_keep_the_files_inputs_and_best_target():
    fever = get_task("fever")
    ex = load_examples("fever")[0]    # the file's first example: a true claim
    assert fever.prompt(ex) == ("On June 2017, the following claim was made: Ukrainian Soviet Socialist Republic was a "
                                "founding participant of the UN.\nQ: Was this claim true or false?\nAnswer:")
    assert fever.label_words[ex.label] == "true"
    emo = get_task("multiemo")
    assert emo.prompt(load_examples("multiemo")[0]).startswith("Opinion:\nThe taxi arrives on time")
    assert emo.label_words[load_examples("multiemo")[0].label] == "neutral"


def test_bigbench_targets_must_be_the_label_words():
    wrong = Task("fever-yes-no", "bigbench:fact_checker/fever", "{input}", "ours", "classification",
                 label_words=("no", "yes"))
    with pytest.raises(UserError, match="are not the label words"):
        classification_examples(wrong)


def test_labels_are_minus_100_and_instruction_true_exactly_on_the_prompt(tokenizer):
    a = encode(tokenizer, "great movie\nThe sentiment of the given sentence is:\nAnswer:", " positive")
    b = encode(tokenizer, "bad\nAnswer:", " not entailment")
    batch = collate([a, b], tokenizer.pad_token_id)
    for row, f in enumerate([a, b]):
        n_ctx = f["labels"].count(-100)
        labels = batch["labels"][row]
        assert (labels[:n_ctx] == -100).all()
        assert (labels[n_ctx:len(f["input_ids"])] != -100).all()
        assert (labels[len(f["input_ids"]):] == -100).all()
        assert batch["instruction_mask"][row, :n_ctx].all() and not batch["instruction_mask"][row, n_ctx:].any()
    assert tokenizer.decode(a["input_ids"][a["labels"].count(-100):]) == " positive"


def test_truncation_cuts_the_passage_never_the_question(tokenizer):
    task = get_task("boolq")
    ex = max(load_split("boolq", "test"), key=lambda e: len(e.fields["passage"]))
    prompt, cut = fit_prompt(tokenizer, task, ex, " yes", max_length=64)
    assert cut > 0
    assert prompt.endswith(f"\nQuestion:\n{ex.fields['question']}\nAnswer:")
    assert len(encode(tokenizer, prompt, " yes")["input_ids"]) <= 64


def test_unknown_and_hub_only_tasks_have_clear_messages():
    with pytest.raises(UserError, match="valid tasks: .*boolq.*sst2"):
        get_task("sst-2")
    with pytest.raises(UserError, match="needs the Hugging Face hub"):
        load_examples("qnli")


def test_cli_unknown_names_exit_with_list_not_traceback():
    for args, expected in ((["--tasks", "nope"], "valid tasks:"), (["--profile", "huge"], "valid profiles:"),
                           (["--profile", "quick", "--backbone", "smollm3"], "embedded backbones: smollm2-135m")):
        r = subprocess.run([sys.executable, "-m", "experiments.zeroshot", *args], capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert expected in r.stderr and "Traceback" not in r.stderr
