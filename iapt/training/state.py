"""What a trial has learned so far, beyond its weights and optimisers: steps, history, the best dev state."""
from __future__ import annotations

from dataclasses import dataclass, field, fields


def _history() -> dict:
    return {"step": [], "train_loss": [], "dev_step": [], "dev_metric": []}


@dataclass
class TrainState:
    step: int = 0
    best_metric: float = float("-inf")
    best_state: dict | None = None        # the tunable weights at the best dev evaluation so far
    best_step: int = 0
    since_best: int = 0                   # evaluations since the best one (early stopping)
    stopped_early: bool = False
    diverged_at: int | None = None        # the step whose loss or gradient was not finite: the trial ended there
    theta_steps_skipped: int = 0          # Θ steps not applied because their gradient was not finite
    history: dict = field(default_factory=_history)
    train_wall_s: float = 0.0
    eval_wall_s: float = 0.0

    @property
    def finished(self) -> bool:
        return self.stopped_early or self.diverged_at is not None

    def record_evaluation(self, step: int, metric: float, weights) -> None:
        """Log a dev evaluation; `weights()` is called to keep the state only when it is the best so far."""
        self.history["dev_step"].append(step)
        self.history["dev_metric"].append(metric)
        if metric > self.best_metric:
            self.best_metric, self.best_state, self.best_step, self.since_best = metric, weights(), step, 0
        else:
            self.since_best += 1

    def state_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_state_dict(cls, state: dict) -> "TrainState":
        return cls(**state)
