"""TrainConfig: one trial's optimisation settings (a cell's learning-rate search runs one trial per rate)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..data.format import DEFAULT_MAX_LENGTH
from ..precision import PRECISIONS

THETA_MODES = ("alternate", "joint", "frozen")
POSITIVE = ("steps", "batch_size", "eval_every", "clip", "eval_batch_size", "theta_batch_size",
            "max_length")   # clip: the gradient-norm bound (float("inf") for none)
NON_NEGATIVE = ("lr", "theta_lr")   # 0 holds a parameter group still


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
    precision: str = "fp32"              # training and evaluation; "bf16": autocast where the device has it (iapt.precision)
    eval_batch_size: int = 16
    theta: str = "alternate"             # rational coefficients: alternate | joint | frozen
    theta_lr: float = 1e-3               # ours; the paper's 1e-6 barely moves Θ in a few hundred steps
    theta_batch_size: int = 4            # Θ has 12 numbers per layer; a small dev batch suffices and halves the cost
    max_length: int = DEFAULT_MAX_LENGTH
    group_by_length: bool = True         # batches of similar length (see Sampler): less padding, same examples

    def __post_init__(self):
        """Refuse settings that would start a long wrong run (a zero batch, a negative learning rate, …)."""
        if self.theta not in THETA_MODES:
            raise ValueError(f"unknown theta mode {self.theta!r}; valid: {', '.join(THETA_MODES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        for name in POSITIVE:
            if not self._number(getattr(self, name)) or getattr(self, name) <= 0:
                raise ValueError(f"{name} must be a positive number, not {getattr(self, name)!r}")
        for name in NON_NEGATIVE:
            if not self._number(getattr(self, name)) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a number >= 0, not {getattr(self, name)!r}")
        if self.patience is not None and (not self._number(self.patience) or self.patience < 1):
            raise ValueError(f"patience must be a positive number of evaluations or None, not {self.patience!r}")
        if not (self._number(self.warmup_ratio) and 0 <= self.warmup_ratio < 1):
            raise ValueError(f"warmup_ratio must be in [0, 1), not {self.warmup_ratio!r}")

    @staticmethod
    def _number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value   # not NaN

    def to_dict(self) -> dict:
        return asdict(self)
