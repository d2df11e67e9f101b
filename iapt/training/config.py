"""TrainConfig: one trial's optimisation settings (a cell's learning-rate search runs one trial per rate)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..data.format import DEFAULT_MAX_LENGTH

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
