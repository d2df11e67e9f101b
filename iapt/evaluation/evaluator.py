"""One evaluator for every method and for the floors.

- classification / choice: rank the candidates by the summed log-likelihood of their tokens given the
  prompt (accuracy); the per-token mean ("length-normalised") accuracy is reported beside it.
- extractive QA: greedy (or beam, `num_beams`) generation until a newline, scored by SQuAD token F1 and
  exact match; the paper's metric is their mean.
- free generation (Natural Instructions): the same decoding, scored by ROUGE-L F-measure (`rouge_score`,
  stemmed) against the best-matching reference, as Natural Instructions reports it.
Every model is a `TunedModel` (iapt.contract; the untuned backbone is `BareBackbone`): it gets the batch's
instruction mask, which the methods that do not read it ignore.
"""
from __future__ import annotations

import collections
import re
import string
from functools import lru_cache

import torch
from tqdm.auto import tqdm

from ..data.format import DEFAULT_MAX_LENGTH, collate, encode, fit_prompt
from ..precision import autocast
from .positions import label_positions
from ..data.tasks import Example, Task, candidates


@torch.no_grad()
def score_features(model, features: list[dict], pad_id: int, batch_size: int, precision: str, desc: str = "score"):
    """Per feature, a list of (summed log-probability, token count, greedy) of its continuation(s); greedy:
    every continuation token is the model's most likely next token (lm-eval's `is_greedy`).

    A feature with `alternatives` (single-token continuations that share its prompt) is scored for every
    alternative from the one logit row that follows the prompt: one forward pass instead of one per label.
    """
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    scores: list[list] = [[] for _ in features]
    device = next(model.parameters()).device
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        idx = order[start:start + batch_size]
        batch = collate([{k: features[i][k] for k in ("input_ids", "labels")} for i in idx], pad_id)
        all_labels = batch.labels.to(device)
        positions = label_positions(all_labels)                  # only continuation tokens need a logit row
        with autocast(device, precision):
            logits = model(**batch.model_inputs(device), logit_positions=positions).logits
        labels = all_labels[:, positions + 1]
        scored = labels != -100
        logp = torch.log_softmax(logits[scored].float(), -1)   # (tokens, V)
        rows = scored.nonzero()[:, 0]
        token_logp = logp.gather(-1, labels[scored][:, None])[:, 0]
        per_row = torch.zeros(len(idx), device=device).index_add_(0, rows, token_logp)
        top = logp.argmax(-1)
        missed = torch.zeros(len(idx), device=device).index_add_(0, rows, (top != labels[scored]).float())
        first = {}  # row -> index into logp of its first continuation token
        for j, r in enumerate(rows.tolist()):
            first.setdefault(r, j)
        for row, i in enumerate(idx):
            alts = features[i].get("alternatives")
            if alts:
                scores[i] = [(logp[first[row], a].item(), 1, a == top[first[row]].item()) for a in alts]
            else:
                scores[i] = [(per_row[row].item(), int(scored[row].sum()), missed[row].item() == 0)]
    return scores


def rank_classify(model, tokenizer, task: Task, examples: list[Example], batch_size: int = 16,
                  max_length: int = DEFAULT_MAX_LENGTH, precision: str = "fp32") -> dict:
    features, owners, truncated = [], [], 0
    for e, ex in enumerate(examples):
        cands = candidates(task, ex)
        prompt, cut = fit_prompt(tokenizer, task, ex, " " + max(cands, key=len), max_length)
        truncated += cut > 0
        encoded = [encode(tokenizer, prompt, " " + c) for c in cands]
        n_prompt = [f["labels"].count(-100) for f in encoded]
        if all(len(f["input_ids"]) - n == 1 for f, n in zip(encoded, n_prompt)) and len(set(n_prompt)) == 1:
            features.append({**encoded[0], "alternatives": [f["input_ids"][-1] for f in encoded]})
            owners.append(e)
        else:
            features += encoded
            owners += [e] * len(encoded)
    scored = score_features(model, features, tokenizer.pad_token_id, batch_size, precision, desc=task.name)
    per_example = collections.defaultdict(list)
    for owner, pairs in zip(owners, scored):
        per_example[owner] += [(s, s / max(n, 1)) for s, n, _ in pairs]
    preds = [max(range(len(v)), key=lambda j: v[j][0]) for _, v in sorted(per_example.items())]
    preds_norm = [max(range(len(v)), key=lambda j: v[j][1]) for _, v in sorted(per_example.items())]
    labels = [ex.label for ex in examples]
    correct = [int(p == y) for p, y in zip(preds, labels)]
    return {"metric": sum(correct) / len(correct), "accuracy": sum(correct) / len(correct),
            "accuracy_len_norm": sum(int(p == y) for p, y in zip(preds_norm, labels)) / len(labels),
            "n": len(examples), "truncated": truncated, "predictions": preds, "correct": correct}


# --- extractive QA (SQuAD's official normalisation) ------------------------------------------------
def normalize_answer(s: str) -> str:
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return float(pred == ref)
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


@torch.no_grad()
def generate_texts(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int = 8,
                   precision: str = "fp32", num_beams: int = 1, desc: str = "generate") -> list[str]:
    """The decoded continuation of each prompt (greedy, or beam search), batched longest first, left-padded."""
    device = next(model.parameters()).device
    texts = [""] * len(prompts)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        idx = order[start:start + batch_size]
        # nothing is labelled: the whole prompt is the instruction (Batch's rule), as in training
        batch = collate([{"input_ids": tokenizer(prompts[i]).input_ids} for i in idx], tokenizer.pad_token_id, side="left")
        with autocast(device, precision):
            out = model.generate(**batch.model_inputs(device), max_new_tokens=max_new_tokens, do_sample=False,
                                 num_beams=num_beams, pad_token_id=tokenizer.pad_token_id)
        for row, i in enumerate(idx):
            texts[i] = tokenizer.decode(out[row, batch.input_ids.shape[1]:], skip_special_tokens=True)
    return texts


@torch.no_grad()
def generate_answers(model, tokenizer, task: Task, examples: list[Example], batch_size: int = 8,
                     max_length: int = DEFAULT_MAX_LENGTH, max_new_tokens: int | None = None, precision: str = "fp32",
                     num_beams: int = 1) -> dict:
    max_new_tokens = max_new_tokens or task.max_new_tokens
    prompts, truncated = [], 0
    for ex in examples:
        prompt, cut = fit_prompt(tokenizer, task, ex, " " + "x " * max_new_tokens, max_length)
        prompts.append(prompt)
        truncated += cut > 0
    answers = [text.strip().split("\n")[0].strip()
               for text in generate_texts(model, tokenizer, prompts, max_new_tokens, batch_size=batch_size,
                                          precision=precision, num_beams=num_beams, desc=task.name)]
    if task.metric == "rouge_l":
        scores = [rouge_l(a, ex.candidates) for a, ex in zip(answers, examples)]
        return {"metric": sum(scores) / len(scores), "rouge_l": sum(scores) / len(scores), "n": len(examples),
                "truncated": truncated, "predictions": answers, "correct": scores}
    f1 = [max(token_f1(a, r) for r in ex.candidates) for a, ex in zip(answers, examples)]
    em = [max(float(normalize_answer(a) == normalize_answer(r)) for r in ex.candidates) for a, ex in zip(answers, examples)]
    mean_f1, mean_em = sum(f1) / len(f1), sum(em) / len(em)
    return {"metric": (mean_f1 + mean_em) / 2, "f1": mean_f1, "exact_match": mean_em, "n": len(examples),
            "truncated": truncated, "predictions": answers, "correct": [(a + b) / 2 for a, b in zip(f1, em)]}


@lru_cache(maxsize=None)
def _rouge_scorer():
    from rouge_score import rouge_scorer
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(prediction: str, references) -> float:
    """ROUGE-L F-measure against the best-matching reference."""
    return max(_rouge_scorer().score(r, prediction)["rougeL"].fmeasure for r in references)


def evaluate(model, tokenizer, task: Task, examples: list[Example], **kwargs) -> dict:
    """The task's metric on `examples` ("metric" is the headline number; per-example scores in "correct")."""
    if task.kind in ("extractive", "generation"):
        return generate_answers(model, tokenizer, task, examples, **kwargs)
    return rank_classify(model, tokenizer, task, examples, **kwargs)
