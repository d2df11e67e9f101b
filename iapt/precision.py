"""Which floating-point precision a run asks for, which one is actually in effect, and the context that applies it.

Two precisions: `fp32` (no autocast: what every processor here has, so the default for training and evaluation
alike) and `bf16` (autocast to bfloat16, on CUDA and on CPUs with bf16 instructions; elsewhere it falls back to
fp32). A cell's records keep the precision *in effect*, not the one asked for: bf16 asked on a processor without
bf16 instructions ran in fp32, and is keyed and reported as fp32.
"""
from __future__ import annotations

from contextlib import nullcontext
from functools import lru_cache

import torch

PRECISIONS = ("fp32", "bf16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=None)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The bf16 instruction flags this processor announces (empty where /proc/cpuinfo cannot be read)."""
    try:
        flags = set(open("/proc/cpuinfo").read().split())
    except OSError:
        return ()
    return tuple(f for f in BF16_CPU_FLAGS if f in flags)


def cpu_has_bf16() -> bool:
    return bool(cpu_bf16_flags())


def in_effect(device: torch.device | str, precision: str) -> str:
    """The precision a run asking for `precision` on `device` actually gets."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if precision == "bf16" and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())):
        return "bf16"
    return "fp32"


def autocast(device: torch.device | str, precision: str = "fp32"):
    """bf16 autocast where `in_effect` says bf16; no autocast (fp32) otherwise."""
    device = torch.device(device)
    if in_effect(device, precision) == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def precision_record(device: torch.device | str, precision: str) -> dict:
    """What a cell's record says about its precision: asked for, in effect, and the processor's bf16 flags."""
    effect = in_effect(device, precision)
    return {"requested": precision, "in_effect": effect, "autocast": effect != "fp32",
            "autocast_dtype": "bfloat16" if effect == "bf16" else None, "cpu_bf16_flags": list(cpu_bf16_flags())}


def default_device() -> torch.device:
    """The device a cell trains on when nothing else is said (what iapt.training.cell's RunContext picks)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
