"""A trial's checkpoint: everything that decides its result, written (then renamed) at every dev evaluation —
the tunable weights, both optimisers, the scheduler, the RNG states, both data orders, the train state and the
method's extra state (AdaLoRA's allocator) — so an interrupted trial resumes to the same result."""
from __future__ import annotations

import os
import random
from pathlib import Path

import torch

from ..errors import UserError

from .state import TrainState


def trainable_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def load_trainable_state(model, state: dict) -> None:
    with torch.no_grad():
        named = dict(model.named_parameters())
        for k, v in state.items():
            named[k].copy_(v)


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(trial, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save({
        "trainable": trainable_state(trial.model), "opt": trial.opt.state_dict(), "sched": trial.sched.state_dict(),
        "theta_opt": trial.theta_opt.state_dict() if trial.theta_opt is not None else None,
        "train_sampler": trial.train_sampler.state_dict(), "dev_sampler": trial.theta_sampler.state_dict(),
        "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
        "method": trial.model.extra_state(), "theta_init": trial.theta_init, "state": trial.state.state_dict()}, path)


def restore_checkpoint(trial, path: Path) -> None:
    try:
        ck = torch.load(path, weights_only=False)
    except Exception as e:   # pickle and zip raise many kinds for a damaged file (a write is renamed into place, so
        # a kill cannot leave one; a disk error or a hand copy can)
        raise UserError(f"the checkpoint {path} cannot be read ({type(e).__name__}: {e}); delete it to restart "
                        "this trial from its first step") from None
    load_trainable_state(trial.model, ck["trainable"])
    trial.opt.load_state_dict(ck["opt"])
    trial.sched.load_state_dict(ck["sched"])
    if trial.theta_opt is not None:
        trial.theta_opt.load_state_dict(ck["theta_opt"])
    trial.train_sampler.load_state_dict(ck["train_sampler"])
    trial.theta_sampler.load_state_dict(ck["dev_sampler"])
    torch.set_rng_state(ck["torch_rng"])
    random.setstate(ck["python_rng"])
    if ck["method"]:
        trial.model.load_extra_state(ck["method"])
    trial.theta_init, trial.state = ck["theta_init"], TrainState.from_state_dict(ck["state"])
