"""A minimal single-process training loop (AdamW, linear decay after 6 % warm-up, gradient clipping,
dev evaluation every K steps, best dev state restored). It is the building block the full engine
(accelerate, resumption, learning-rate search, baselines) will wrap; see README "Status".
"""
from __future__ import annotations

import random
import time

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .data import DEFAULT_MAX_LENGTH, collate, encode, fit_prompt
from .evaluation import autocast, evaluate, model_inputs
from .tasks import Example, Task, target


def training_features(tokenizer, task: Task, examples: list[Example], max_length: int = DEFAULT_MAX_LENGTH):
    feats = []
    for ex in examples:
        response = " " + target(task, ex)
        prompt, _ = fit_prompt(tokenizer, task, ex, response, max_length)
        feats.append(encode(tokenizer, prompt, response))
    return feats


def trainable_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def train(model, tokenizer, task: Task, train_examples, dev_examples, *, steps: int, batch_size: int, lr: float,
          seed: int = 0, eval_every: int = 50, warmup_ratio: float = 0.06, clip: float = 1.0,
          precision: str = "bf16", eval_batch_size: int = 16) -> dict:
    """Train the model's trainable parameters; returns the history and leaves the best dev state loaded."""
    torch.manual_seed(seed)
    order_rng = random.Random(seed)
    device = next(model.parameters()).device
    feats = training_features(tokenizer, task, train_examples)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = get_linear_schedule_with_warmup(opt, int(warmup_ratio * steps), steps)
    order: list[int] = []
    history = {"step": [], "train_loss": [], "dev_step": [], "dev_metric": []}
    best = (-1.0, None, 0)
    start = time.time()

    def dev_eval(step):
        nonlocal best
        model.eval()
        metric = evaluate(model, tokenizer, task, dev_examples, batch_size=eval_batch_size)["metric"]
        history["dev_step"].append(step)
        history["dev_metric"].append(metric)
        if metric > best[0]:
            best = (metric, trainable_state(model), step)
        return metric

    dev_eval(0)
    bar = tqdm(range(1, steps + 1), desc=f"train {task.name}")
    for step in bar:
        model.train()
        if len(order) < batch_size:
            fresh = list(range(len(feats)))
            order_rng.shuffle(fresh)
            order += fresh
        idx, order = order[:batch_size], order[batch_size:]
        batch = collate([feats[i] for i in idx], tokenizer.pad_token_id)
        with autocast(device, precision):
            loss = model(**model_inputs(model, batch), labels=batch["labels"].to(device)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        history["step"].append(step)
        history["train_loss"].append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", best_dev=f"{best[0]:.3f}")
        if step % eval_every == 0 or step == steps:
            dev_eval(step)
    with torch.no_grad():
        named = dict(model.named_parameters())
        for k, v in best[1].items():
            named[k].copy_(v)
    model.eval()
    history.update(best_dev_metric=best[0], best_step=best[2], train_wall_s=time.time() - start)
    return history
