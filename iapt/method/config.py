"""IAPTConfig: every option of the method, with the paper's choice or ours marked per field."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

ACTIVATIONS = ("rational", "relu", "gelu", "tanh", "silu", "identity")
POOLERS = ("attention", "mean", "max", "last")
PLACEMENTS = ("prefix", "between", "before_last")
READS = ("raw", "norm")
SLOT_INITS = ("zero", "mean")
SHARING = ("none", "down", "all")
GENERATOR_INPUTS = ("instruction", "shuffled", "constant")


@dataclass
class IAPTConfig:
    num_soft_tokens: int = field(default=4, metadata={"help": "soft tokens per layer (paper: 4)"})
    bottleneck_dim: int = field(default=16, metadata={"help": "m, the generator bottleneck (paper, LLaMA-2 7B: 320)"})
    activation: str | list = field(default="rational", metadata={
        "help": f"one of {ACTIVATIONS}, or a list with one name per layer (paper: learned rational)"})
    rational_version: str = field(default="B", metadata={"help": "'B': P/(1+|sum b_i x^i|) (paper); 'A': safe PAU"})
    rational_degrees: tuple = field(default=(6, 5), metadata={"help": "(numerator, denominator) degrees (paper: 6, 5)"})
    rational_init: str = field(default="gelu", metadata={"help": "activation the rational is initialised to"})
    pooler: str = field(default="attention", metadata={"help": f"one of {POOLERS} (paper: self-attention)"})
    placement: str = field(default="before_last", metadata={
        "help": "'prefix': slots before the instruction; 'between': between instruction and response; "
                "'before_last': just before the instruction's last token, which then sees every layer's prompt "
                "[ours, the default by measurement on sst2 dev]"})
    read: str = field(default="norm", metadata={
        "help": "'raw': the generator reads raw hidden states; 'norm': the layer's own input norm of them [ours]"})
    slot_init: str = field(default="zero", metadata={
        "help": "'zero': slot = generator output (paper; the default by measurement on sst2 and NI dev); 'mean': "
                "slot = mean instruction hidden state + output [ours; breaks multi-token generation at init]"})
    up_init_std: float = field(default=0.0, metadata={
        "help": "std of the W_up initialisation; 0 = zeros, so an untrained IAPT leaves slots at their base value [ours]"})
    share: str = field(default="none", metadata={"help": f"cross-layer sharing of projections, one of {SHARING}"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the pooled bottleneck"})
    generator_input: str = field(default="instruction", metadata={
        "help": "controls for instruction-awareness: 'shuffled' feeds each row another training example's "
                "instruction, as the bare backbone reads it (iapt/method/donors.py), 'constant' feeds ones (a "
                "per-layer learned prompt); the slot's base value (slot_init) stays the row's own"})
    frozen_prefix: bool = field(default=True, metadata={
        "help": "train without autograd through the instruction prefix, whose states are the frozen backbone's "
                "(before_last and between placements; iapt/method/prefix.py); False: one full pass [ours]"})
    layers: list | None = field(default=None, metadata={
        "help": "indices of layers that get a generator (default: all). Layers without one keep their slot states"})
    base_model_type: str | None = field(default=None, metadata={"help": "filled in by get_iapt_model"})
    base_num_layers: int | None = field(default=None, metadata={"help": "filled in by get_iapt_model"})
    base_hidden_size: int | None = field(default=None, metadata={"help": "filled in by get_iapt_model"})

    def __post_init__(self):
        self.rational_degrees = tuple(self.rational_degrees)
        for name, value, valid in (("pooler", self.pooler, POOLERS), ("placement", self.placement, PLACEMENTS),
                                   ("read", self.read, READS), ("slot_init", self.slot_init, SLOT_INITS),
                                   ("share", self.share, SHARING),
                                   ("generator_input", self.generator_input, GENERATOR_INPUTS)):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
        for act in ([self.activation] if isinstance(self.activation, str) else self.activation):
            if act not in ACTIVATIONS:
                raise ValueError(f"unknown activation {act!r}; valid: {', '.join(ACTIVATIONS)}")
        if self.rational_version not in ("A", "B"):
            raise ValueError(f"unknown rational_version {self.rational_version!r}; valid: A, B")
        if self.num_soft_tokens < 1 or self.bottleneck_dim < 1:
            raise ValueError("num_soft_tokens and bottleneck_dim must be >= 1")

    def activation_for(self, layer: int) -> str:
        return self.activation if isinstance(self.activation, str) else self.activation[layer]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rational_degrees"] = list(self.rational_degrees)
        return d

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> "IAPTConfig":
        return cls(**json.loads(Path(path).read_text()))
