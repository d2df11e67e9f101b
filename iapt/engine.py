"""One training loop for every method, single process to multi-GPU through 🤗 Accelerate.

AdamW, linear decay after 6 % warm-up, gradient clipping, bf16 autocast where the device has it (fp32
otherwise), dev evaluation every K steps with early stopping, and the best dev state restored at the end.
IAPT's rational coefficients Θ have three modes: `alternate` (the paper's bi-level scheme: after each step of
the generator weights Ω on a training batch, one step of Θ on a dev batch with its own learning rate),
`joint` (Θ trained with Ω on the training loss) and `frozen`.

Everything that decides the result is in the checkpoint written at every evaluation: the tunable weights,
optimisers, scheduler, RNG states, the data orders, early-stopping state, the dev-batch iterator and
AdaLoRA's allocator, so an interrupted run resumes to the same result as an uninterrupted one.

With several processes each takes its slice of the same global batch; every rank evaluates the whole dev
split (redundantly), so all ranks take the same early-stopping decisions without communicating.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from .data import DEFAULT_MAX_LENGTH, collate, encode, fit_prompt
from .evaluation import autocast, evaluate, model_inputs
from .positions import label_positions, logits_at, loss_at
from .tasks import Example, Task, target

THETA_MODES = ("alternate", "joint", "frozen")


@dataclass
class TrainConfig:
    steps: int = 300
    batch_size: int = 8                  # global batch (split across processes)
    lr: float = 1e-3
    seed: int = 0
    eval_every: int = 50
    patience: int | None = 4             # evaluations without a better dev metric before stopping; None: never
    warmup_ratio: float = 0.06
    clip: float = 1.0
    precision: str = "bf16"              # bf16 autocast where supported, else fp32; "fp32" forces fp32
    eval_batch_size: int = 16
    theta: str = "alternate"             # rational coefficients: alternate | joint | frozen
    theta_lr: float = 1e-3               # ours; the paper's 1e-6 barely moves Θ in a few hundred steps
    theta_batch_size: int = 4            # Θ has 12 numbers per layer; a small dev batch suffices and halves the cost
    max_length: int = DEFAULT_MAX_LENGTH
    group_by_length: bool = True         # batches of similar length (see Sampler): less padding, same examples

    def __post_init__(self):
        if self.theta not in THETA_MODES:
            raise ValueError(f"unknown theta mode {self.theta!r}; valid: {', '.join(THETA_MODES)}")

    def to_dict(self) -> dict:
        return asdict(self)


def training_features(tokenizer, task: Task, examples: list[Example], max_length: int = DEFAULT_MAX_LENGTH):
    feats = []
    for ex in examples:
        response = " " + target(task, ex)
        prompt, _ = fit_prompt(tokenizer, task, ex, response, max_length)
        feats.append(encode(tokenizer, prompt, response))
    return feats


def trainable_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def load_trainable_state(model, state: dict) -> None:
    with torch.no_grad():
        named = dict(model.named_parameters())
        for k, v in state.items():
            named[k].copy_(v)


class Sampler:
    """Endless shuffled passes over n items, reproducible from a seed and resumable from its state.

    With `lengths` and `batch_size`, each pass is cut into windows of up to GROUP_BATCHES batches, each window
    sorted by length and its batches put back in random order (Hugging Face's `group_by_length`, with a small window):
    a batch is padded to its longest item, so grouping similar lengths saves padded compute (measured at batch 8:
    a third of the padded tokens on rte, boolq and Natural Instructions, a quarter on sst2), while the small window
    keeps the batches' composition random from pass to pass."""

    GROUP_BATCHES = 8

    def __init__(self, n: int, seed: int, lengths: list[int] | None = None, batch_size: int | None = None):
        self.n, self.rng, self.order = n, random.Random(seed), []
        self.lengths, self.batch_size = lengths, batch_size

    def _grouped(self, items: list[int]) -> list[int]:
        k, out = self.batch_size, []
        # At least 4 windows per pass, or batches would be the same sorted slices every pass; small sets
        # (fewer than 8 batches, e.g. copa's 50 training examples at batch 8) are not grouped at all.
        window = k * min(self.GROUP_BATCHES, self.n // (4 * k))
        if window <= k:
            return items
        for start in range(0, len(items), window):
            part = sorted(items[start:start + window], key=lambda i: -self.lengths[i])
            batches = [part[j:j + k] for j in range(0, len(part), k)]
            rest = batches.pop() if len(batches[-1]) < k else []   # a partial batch stays last, to be completed
            self.rng.shuffle(batches)
            out += [i for b in batches for i in b] + rest
        return out

    def take(self, k: int) -> list[int]:
        while len(self.order) < k:
            fresh = list(range(self.n))
            self.rng.shuffle(fresh)
            if self.lengths is None:
                self.order += fresh
            else:   # the previous pass's remainder (< k items) joins this pass, so batches stay aligned to windows
                self.order = self._grouped(self.order + fresh)
        out, self.order = self.order[:k], self.order[k:]
        return out

    def state_dict(self) -> dict:
        return {"order": list(self.order), "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.order = list(state["order"])
        self.rng.setstate(state["rng"])


def rational_coefficients(model) -> dict[str, torch.Tensor]:
    """Θ per generator layer (numerator and denominator concatenated)."""
    gens = getattr(model, "generators", None)
    if gens is None:
        return {}
    return {layer: torch.cat([g.act.numerator.detach(), g.act.denominator.detach()]).clone()
            for layer, g in gens.items() if hasattr(g.act, "numerator")}


def rational_state(model) -> dict[str, dict]:
    """Every generator layer's rational (form and coefficients), small enough to keep in a cell's record: the
    learned activations can be drawn from a committed record, without the adapter's weights."""
    return {layer: {"version": g.act.version, "numerator": g.act.numerator.tolist(),
                    "denominator": g.act.denominator.tolist()}
            for layer, g in getattr(model, "generators", {}).items() if hasattr(g.act, "numerator")}


def theta_drift(initial: dict, final: dict) -> dict[str, float]:
    """Relative change ‖Θ − Θ₀‖ / ‖Θ₀‖ per layer."""
    return {k: float((final[k] - initial[k]).norm() / initial[k].norm().clamp(min=1e-12)) for k in initial}


def _adalora_allocator(model):
    peft_model = getattr(model, "peft_model", None)
    return getattr(getattr(peft_model, "base_model", None), "rankallocator", None)


def _allocator_state(alloc) -> dict | None:
    if alloc is None:
        return None
    return {k: getattr(alloc, k) for k in ("ipt", "exp_avg_ipt", "exp_avg_unc")}


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(model, tokenizer, task: Task, train_examples: list[Example], dev_examples: list[Example],
          cfg: TrainConfig, *, accelerator=None, checkpoint: str | Path | None = None,
          stop_after: int | None = None, progress: bool = True) -> dict:
    """Train `model`'s tunable parameters; returns the history, with the best dev state loaded.

    `checkpoint`: a file to write at every evaluation and to resume from when it exists.
    `stop_after`: end this call after that many steps (simulates an interruption; resume with the same call).
    """
    if accelerator is None:
        from accelerate import Accelerator
        accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} is not divisible by {world} processes")
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    device = accelerator.device
    model.to(device)
    feats = training_features(tokenizer, task, train_examples, cfg.max_length)
    dev_feats = training_features(tokenizer, task, dev_examples, cfg.max_length)

    groups = model.parameter_groups() if hasattr(model, "parameter_groups") else None
    theta = groups["rational"] if groups else []
    if cfg.theta == "frozen":
        for p in theta:
            p.requires_grad_(False)
    omega = [p for p in model.parameters() if p.requires_grad and all(p is not t for t in theta)]
    param_groups = [{"params": omega, "lr": cfg.lr}]
    if cfg.theta == "joint" and theta:
        param_groups.append({"params": theta, "lr": cfg.theta_lr})
    opt = torch.optim.AdamW(param_groups, weight_decay=0.0)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * cfg.steps), cfg.steps)
    theta_opt = torch.optim.AdamW(theta, lr=cfg.theta_lr, weight_decay=0.0) if cfg.theta == "alternate" and theta else None
    wrapped = accelerator.prepare_model(model)
    grouped = cfg.group_by_length
    train_sampler = Sampler(len(feats), cfg.seed, [len(f["input_ids"]) for f in feats] if grouped else None,
                            cfg.batch_size)
    dev_sampler = Sampler(len(dev_feats), cfg.seed + 1, [len(f["input_ids"]) for f in dev_feats] if grouped else None,
                          cfg.theta_batch_size)
    theta_init = rational_coefficients(model)
    state = {"step": 0, "best_metric": float("-inf"), "best_state": None, "best_step": 0, "since_best": 0,
             "stopped_early": False, "history": {"step": [], "train_loss": [], "dev_step": [], "dev_metric": []},
             "train_wall_s": 0.0, "eval_wall_s": 0.0}

    checkpoint = Path(checkpoint) if checkpoint else None
    if checkpoint and checkpoint.exists():
        ck = torch.load(checkpoint, weights_only=False)
        load_trainable_state(model, ck["trainable"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        if theta_opt is not None:
            theta_opt.load_state_dict(ck["theta_opt"])
        train_sampler.load_state_dict(ck["train_sampler"])
        dev_sampler.load_state_dict(ck["dev_sampler"])
        torch.set_rng_state(ck["torch_rng"])
        random.setstate(ck["python_rng"])
        alloc = _adalora_allocator(model)
        if alloc is not None and ck["adalora"] is not None:
            for k, v in ck["adalora"].items():
                setattr(alloc, k, v)
            model.peft_model.peft_config["default"].rank_pattern = ck["rank_pattern"]
        theta_init, state = ck["theta_init"], ck["state"]

    def save_checkpoint():
        if checkpoint is None or not accelerator.is_main_process:
            return
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        alloc = _adalora_allocator(model)
        _atomic_save({
            "trainable": trainable_state(model), "opt": opt.state_dict(), "sched": sched.state_dict(),
            "theta_opt": theta_opt.state_dict() if theta_opt is not None else None,
            "train_sampler": train_sampler.state_dict(), "dev_sampler": dev_sampler.state_dict(),
            "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
            "adalora": _allocator_state(alloc),
            "rank_pattern": model.peft_model.peft_config["default"].rank_pattern if alloc is not None else None,
            "theta_init": theta_init, "state": state}, checkpoint)

    def dev_eval(step: int) -> None:
        t0 = time.time()
        model.eval()
        metric = evaluate(model, tokenizer, task, dev_examples, batch_size=cfg.eval_batch_size,
                          max_length=cfg.max_length, precision=cfg.precision)["metric"]
        state["history"]["dev_step"].append(step)
        state["history"]["dev_metric"].append(metric)
        if metric > state["best_metric"]:
            state.update(best_metric=metric, best_state=trainable_state(model), best_step=step, since_best=0)
        else:
            state["since_best"] += 1
        state["eval_wall_s"] += time.time() - t0

    def batch_loss(features: list[dict], index: list[int]) -> torch.Tensor:
        batch = collate([features[i] for i in index], tokenizer.pad_token_id)
        labels = batch["labels"].to(device)
        with autocast(device, cfg.precision):
            if getattr(model, "adds_loss_terms", True):   # the model's own loss (AdaLoRA's penalty, any model)
                return wrapped(**model_inputs(model, batch), labels=labels).loss
            positions = label_positions(labels)          # the head only where a label is predicted
            return loss_at(logits_at(wrapped, model_inputs(model, batch), positions), labels, positions)

    if state["step"] == 0 and not state["history"]["dev_step"]:
        dev_eval(0)
        save_checkpoint()
    done = state["stopped_early"] or state["step"] >= cfg.steps or state.get("diverged_at") is not None
    bar = tqdm(total=cfg.steps, initial=state["step"], desc=f"train {task.name} lr={cfg.lr:g}",
               disable=not (progress and accelerator.is_main_process))
    steps_this_call, t_start = 0, time.time()
    while not done:
        step = state["step"] + 1
        model.train()
        index = train_sampler.take(cfg.batch_size)[rank::world]
        loss = batch_loss(feats, index)
        accelerator.backward(loss)
        grad_norm = accelerator.clip_grad_norm_(omega, cfg.clip)
        mean_loss = accelerator.reduce(loss.detach(), "mean").item()
        if not (math.isfinite(mean_loss) and torch.isfinite(torch.as_tensor(grad_norm)).all()):
            # A non-finite loss or gradient would turn every parameter into NaN: end the trial before the
            # update; its best dev state so far is what it reports, and `diverged_at` says so.
            model.zero_grad(set_to_none=True)
            state.update(step=step, diverged_at=step)
            print(f"\nwarning: {task.name} lr={cfg.lr:g}: non-finite loss or gradient at step {step}; "
                  f"the trial stops here and keeps its best dev state (step {state['best_step']})")
            save_checkpoint()
            break
        opt.step()
        sched.step()
        if hasattr(model, "update_and_allocate"):
            model.update_and_allocate(step)   # AdaLoRA: needs this step's gradients, before zero_grad
        model.zero_grad(set_to_none=True)
        if theta_opt is not None:             # Θ step on a dev batch (Ω gradients of this pass are dropped)
            dev_index = dev_sampler.take(cfg.theta_batch_size)
            dev_index = dev_index[rank::world] if len(dev_index) >= world else dev_index
            accelerator.backward(batch_loss(dev_feats, dev_index))
            # A non-finite Θ gradient is skipped, not applied: applied, it would make Θ (and every later step) NaN.
            if all(p.grad is None or torch.isfinite(p.grad).all() for p in theta):
                theta_opt.step()
            else:
                state["theta_steps_skipped"] = state.get("theta_steps_skipped", 0) + 1
            model.zero_grad(set_to_none=True)
        state["step"] = step
        state["history"]["step"].append(step)
        state["history"]["train_loss"].append(mean_loss)
        bar.update(1)
        bar.set_postfix(loss=f"{mean_loss:.3f}", best_dev=f"{state['best_metric']:.3f}")
        steps_this_call += 1
        if step % cfg.eval_every == 0 or step == cfg.steps:
            state["train_wall_s"] += time.time() - t_start
            dev_eval(step)
            t_start = time.time()
            if cfg.patience is not None and state["since_best"] >= cfg.patience:
                state["stopped_early"] = True
            done = state["stopped_early"] or step >= cfg.steps
            save_checkpoint()
        if stop_after is not None and steps_this_call >= stop_after and not done:
            bar.close()
            return {"interrupted_at": step}
    bar.close()
    drift_last = theta_drift(theta_init, rational_coefficients(model)) if theta_init else None
    load_trainable_state(model, state["best_state"])
    model.eval()
    result = {**state["history"], "best_dev_metric": state["best_metric"], "best_step": state["best_step"],
              "steps_run": state["step"], "stopped_early": state["stopped_early"], "diverged_at": state.get("diverged_at"),
              "theta_steps_skipped": state.get("theta_steps_skipped", 0),
              "train_wall_s": state["train_wall_s"], "eval_wall_s": state["eval_wall_s"]}
    if theta_init:
        result["theta_drift"] = theta_drift(theta_init, rational_coefficients(model))   # of the restored best state
        result["theta_drift_last"] = drift_last
        result["rationals"] = rational_state(model)
    return result
