"""One training loop for every method (iapt.contract), single process to multi-GPU through 🤗 Accelerate.

AdamW, linear decay after 6 % warm-up, gradient clipping, fp32 (or bf16 autocast where asked for and the device
has it: iapt.precision), dev evaluation every K steps with early stopping, and the best dev state restored at the end.
IAPT's rational coefficients Θ have three modes: `alternate` (the paper's bi-level scheme: after each step of
the generator weights Ω on a training batch, one step of Θ on a batch of Θ's own examples with its own learning
rate), `joint` (Θ trained with Ω on the training loss) and `frozen`. Θ's examples are carved from the training
split (`theta_split`): the dev split only selects (learning rate, checkpoint), for every method alike, and IAPT
sees no more labelled examples than a baseline.

A trial is three named steps — `omega_step`, `theta_step`, `dev_evaluation` — over one `Trial`, checkpointed at
every evaluation (iapt.training.checkpoint), so an interrupted run resumes to the same result.

With several processes each takes its slice of the same global batch; every rank evaluates the whole dev
split (redundantly), so all ranks take the same early-stopping decisions without communicating.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from ..contract import TunedModel
from ..data.format import DEFAULT_MAX_LENGTH, collate, encode, fit_prompt
from ..data.tasks import Example, Task, target
from ..evaluation.evaluator import evaluate
from ..precision import autocast
from .checkpoint import load_trainable_state, restore_checkpoint, save_checkpoint, trainable_state
from .config import TrainConfig
from .sampler import Sampler
from .state import TrainState


def training_features(tokenizer, task: Task, examples: list[Example], max_length: int = DEFAULT_MAX_LENGTH):
    feats = []
    for ex in examples:
        response = " " + target(task, ex)
        prompt, _ = fit_prompt(tokenizer, task, ex, response, max_length)
        feats.append(encode(tokenizer, prompt, response))
    return feats


def rational_coefficients(model: TunedModel) -> dict[str, torch.Tensor]:
    """Θ per layer (numerator and denominator concatenated)."""
    return {layer: torch.cat([r.numerator.detach(), r.denominator.detach()]).clone()
            for layer, r in model.rationals().items()}


def rational_state(model: TunedModel) -> dict[str, dict]:
    """Every layer's rational (form and coefficients), small enough to keep in a cell's record: the learned
    activations can be drawn from a committed record, without the adapter's weights."""
    return {layer: {"version": r.version, "numerator": r.numerator.tolist(), "denominator": r.denominator.tolist()}
            for layer, r in model.rationals().items()}


def theta_drift(initial: dict, final: dict) -> dict[str, float]:
    """Relative change ‖Θ − Θ₀‖ / ‖Θ₀‖ per layer."""
    return {k: float((final[k] - initial[k]).norm() / initial[k].norm().clamp(min=1e-12)) for k in initial}


@dataclass
class Trial:
    """Everything the steps of one trial share."""
    model: TunedModel
    wrapped: torch.nn.Module          # the model as the accelerator prepared it (data parallel: its forward syncs)
    tokenizer: object
    task: Task
    cfg: TrainConfig
    accelerator: object
    feats: list[dict]                 # training features
    theta_feats: list[dict]           # Θ's features (alternating mode; carved from the training split)
    dev_examples: list[Example]       # what the dev evaluation scores
    weights: list                     # Ω
    theta: list                       # Θ
    opt: torch.optim.Optimizer
    sched: object
    theta_opt: torch.optim.Optimizer | None
    train_sampler: Sampler
    theta_sampler: Sampler
    theta_init: dict
    state: TrainState

    @property
    def device(self):
        return self.accelerator.device


THETA_SHARE = 0.1   # of the training split, for Θ's examples when Θ alternates (Ω trains on the rest)


def theta_split(examples: list, theta_batch_size: int) -> tuple[list, list]:
    """(Ω's examples, Θ's examples): Θ takes the last tenth of the training split (at least one Θ batch), Ω the
    rest. The splits are shuffled once when built (iapt.data), so the last tenth is a random tenth, and a cap on
    the training split (`n_train`: its first N) still gives Ω a prefix of the same order."""
    n_theta = max(theta_batch_size, round(THETA_SHARE * len(examples)))
    if n_theta >= len(examples):
        raise ValueError(f"{len(examples)} training examples are too few to carve {n_theta} for Θ and train Ω on "
                         "the rest; use more training examples, or theta='joint' or 'frozen'")
    return examples[:-n_theta], examples[-n_theta:]


def optimisers(model: TunedModel, cfg: TrainConfig):
    """(Ω, Θ, Ω's optimiser with Θ in it when joint, its schedule, Θ's optimiser when alternating)."""
    groups = model.parameter_groups()
    if cfg.theta == "frozen":
        for p in groups.theta:
            p.requires_grad_(False)
    weights = [p for p in groups.weights if p.requires_grad]
    param_groups = [{"params": weights, "lr": cfg.lr}]
    if cfg.theta == "joint" and groups.theta:
        param_groups.append({"params": groups.theta, "lr": cfg.theta_lr})
    opt = torch.optim.AdamW(param_groups, weight_decay=0.0)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * cfg.steps), cfg.steps)
    alternate = cfg.theta == "alternate" and groups.theta
    theta_opt = torch.optim.AdamW(groups.theta, lr=cfg.theta_lr, weight_decay=0.0) if alternate else None
    return weights, groups.theta, opt, sched, theta_opt


def start_trial(model: TunedModel, tokenizer, task: Task, train_examples, dev_examples, cfg: TrainConfig,
                accelerator) -> Trial:
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    model.to(accelerator.device)
    weights, theta, opt, sched, theta_opt = optimisers(model, cfg)
    omega_examples, theta_examples = theta_split(train_examples, cfg.theta_batch_size) if theta_opt else (train_examples, [])
    feats = training_features(tokenizer, task, omega_examples, cfg.max_length)
    theta_feats = training_features(tokenizer, task, theta_examples, cfg.max_length)
    model.use_training_data(feats)
    wrapped = accelerator.prepare_model(model)
    lengths = (lambda fs: [len(f["input_ids"]) for f in fs]) if cfg.group_by_length else (lambda fs: None)
    return Trial(model, wrapped, tokenizer, task, cfg, accelerator, feats, theta_feats, dev_examples, weights, theta,
                 opt, sched, theta_opt, Sampler(len(feats), cfg.seed, lengths(feats), cfg.batch_size),
                 Sampler(len(theta_feats), cfg.seed + 1, lengths(theta_feats), cfg.theta_batch_size),
                 rational_coefficients(model), TrainState())


def batch_loss(trial: Trial, features: list[dict], index: list[int]) -> torch.Tensor:
    batch = collate([features[i] for i in index], trial.tokenizer.pad_token_id)
    labels = batch.labels.to(trial.device)
    with autocast(trial.device, trial.cfg.precision):
        return trial.wrapped(**batch.model_inputs(trial.device), labels=labels).loss


def omega_step(trial: Trial, step: int) -> float | None:
    """One optimiser step of Ω on a training batch; its mean loss, or None when the loss or gradient is not
    finite (the update is then not applied: it would turn every parameter into NaN)."""
    acc, cfg = trial.accelerator, trial.cfg
    trial.model.train()
    index = trial.train_sampler.take(cfg.batch_size)[acc.process_index::acc.num_processes]
    loss = batch_loss(trial, trial.feats, index)
    acc.backward(loss)
    grad_norm = acc.clip_grad_norm_(trial.weights, cfg.clip)
    mean_loss = acc.reduce(loss.detach(), "mean").item()
    if not (math.isfinite(mean_loss) and torch.isfinite(torch.as_tensor(grad_norm)).all()):
        trial.model.zero_grad(set_to_none=True)
        return None
    trial.opt.step()
    trial.sched.step()
    trial.model.after_step(step)          # AdaLoRA: needs this step's gradients, before zero_grad
    trial.model.zero_grad(set_to_none=True)
    return mean_loss


def theta_step(trial: Trial) -> None:
    """One step of Θ on a batch of its own examples (alternating mode; Ω's gradients of this pass are dropped). A non-finite
    Θ gradient is skipped, not applied: applied, it would make Θ (and every later step) NaN."""
    acc = trial.accelerator
    index = trial.theta_sampler.take(trial.cfg.theta_batch_size)
    index = index[acc.process_index::acc.num_processes] if len(index) >= acc.num_processes else index
    acc.backward(batch_loss(trial, trial.theta_feats, index))
    if all(p.grad is None or torch.isfinite(p.grad).all() for p in trial.theta):
        trial.theta_opt.step()
    else:
        trial.state.theta_steps_skipped += 1
    trial.model.zero_grad(set_to_none=True)


def dev_evaluation(trial: Trial, step: int) -> None:
    t0 = time.time()
    trial.model.eval()
    metric = evaluate(trial.model, trial.tokenizer, trial.task, trial.dev_examples, batch_size=trial.cfg.eval_batch_size,
                      max_length=trial.cfg.max_length, precision=trial.cfg.precision)["metric"]
    trial.state.record_evaluation(step, metric, lambda: trainable_state(trial.model))
    trial.state.eval_wall_s += time.time() - t0


def checkpoint_every_s() -> float:
    """Besides every dev evaluation, a checkpoint at the first step after this many seconds without one, so that
    a kill loses minutes, not the trial ($IAPT_CHECKPOINT_EVERY_S, default 300; reading and writing state
    draws no random number, so it changes no result)."""
    return float(os.environ.get("IAPT_CHECKPOINT_EVERY_S", 300))


def run_steps(trial: Trial, checkpoint: Path | None, stop_after: int | None, progress: bool) -> bool:
    """Steps until the trial ends (True) or `stop_after` steps have run in this call (False)."""
    state, cfg, main = trial.state, trial.cfg, trial.accelerator.is_main_process
    saved_at, every = [time.time()], checkpoint_every_s()

    def save():
        if checkpoint is not None and main:
            save_checkpoint(trial, checkpoint)
            saved_at[0] = time.time()
    bar = tqdm(total=cfg.steps, initial=state.step, desc=f"train {trial.task.name} lr={cfg.lr:g}",
               disable=not (progress and main))
    steps_this_call, t_start = 0, time.time()
    while not (state.finished or state.step >= cfg.steps):
        step = state.step + 1
        mean_loss = omega_step(trial, step)
        if mean_loss is None:
            state.step, state.diverged_at = step, step
            print(f"\nwarning: {trial.task.name} lr={cfg.lr:g}: non-finite loss or gradient at step {step}; "
                  f"the trial stops here and keeps its best dev state (step {state.best_step})")
            save()
            break
        if trial.theta_opt is not None:
            theta_step(trial)
        state.step = step
        state.history["step"].append(step)
        state.history["train_loss"].append(mean_loss)
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.3f}", best_dev=f"{state.best_metric:.3f}")
        steps_this_call += 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            state.train_wall_s += time.time() - t_start
            dev_evaluation(trial, step)
            t_start = time.time()
            state.stopped_early = cfg.patience is not None and state.since_best >= cfg.patience
            save()
        elif time.time() - saved_at[0] >= every:
            state.train_wall_s += time.time() - t_start   # (counted up to here, so a resume does not lose it)
            t_start = time.time()
            save()
        if stop_after is not None and steps_this_call >= stop_after and not (state.finished or step >= cfg.steps):
            bar.close()
            return False
    bar.close()
    return True


def finish(trial: Trial) -> dict:
    """Restore the best dev state; the trial's history and outcome."""
    state = trial.state
    drift_last = theta_drift(trial.theta_init, rational_coefficients(trial.model)) if trial.theta_init else None
    load_trainable_state(trial.model, state.best_state)
    trial.model.eval()
    result = {**state.history, "best_dev_metric": state.best_metric, "best_step": state.best_step,
              "steps_run": state.step, "stopped_early": state.stopped_early, "diverged_at": state.diverged_at,
              "theta_steps_skipped": state.theta_steps_skipped,
              "examples": {"omega": len(trial.feats), "theta": len(trial.theta_feats), "dev": len(trial.dev_examples)},
              "train_wall_s": state.train_wall_s, "eval_wall_s": state.eval_wall_s}
    if trial.theta_init:
        result["theta_drift"] = theta_drift(trial.theta_init, rational_coefficients(trial.model))   # the best state's
        result["theta_drift_last"] = drift_last
        result["rationals"] = rational_state(trial.model)
    return result


def train(model: TunedModel, tokenizer, task: Task, train_examples: list[Example], dev_examples: list[Example],
          cfg: TrainConfig, *, accelerator=None, checkpoint: str | Path | None = None,
          stop_after: int | None = None, progress: bool = True) -> dict:
    """Train `model`'s tunable parameters; returns the history, with the best dev state loaded.

    `checkpoint`: a file to write at every evaluation and to resume from when it exists.
    `stop_after`: end this call after that many steps (simulates an interruption; resume with the same call).
    """
    if accelerator is None:
        from accelerate import Accelerator
        accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if cfg.batch_size % accelerator.num_processes:
        raise ValueError(f"batch size {cfg.batch_size} is not divisible by {accelerator.num_processes} processes")
    trial = start_trial(model, tokenizer, task, train_examples, dev_examples, cfg, accelerator)
    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint and checkpoint.exists():
        restore_checkpoint(trial, checkpoint)
    if trial.state.step == 0 and not trial.state.history["dev_step"]:
        dev_evaluation(trial, 0)
        if checkpoint is not None and accelerator.is_main_process:
            save_checkpoint(trial, checkpoint)
    if not run_steps(trial, checkpoint, stop_after, progress):
        return {"interrupted_at": trial.state.step}
    return finish(trial)
