"""Every tuning method behind one registry: `build_method(name, backbone, budget=…)`.

- peft, configured rather than re-implemented: prompt tuning, P-tuning v2 (peft's prefix tuning), LoRA on
  every linear module of each layer (`lora`) or on q, v only (`lora_qv`), AdaLoRA, (IA)³.
- ours, on IAPT's generator and slot-injection code (`IAPTModel` with other settings):
  IDPG (Wu et al., 2022): one prompt generated from the mean of the instruction's input-layer embeddings,
  inserted at the input layer only, fixed activation; LPT (Liu et al., 2022): one generator at layer ⌊2L/3⌋
  that pools that layer's instruction states and inserts its prompt there; the layers below do not see it.
- IAPT itself.

Each method has one *size* knob (LoRA rank, prompt length, bottleneck). Given a target number of tunable
parameters, `size_for_budget` picks the size whose count is closest, counted on a weightless (meta-device)
copy of the backbone; the actual count is always what gets reported.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from ..backbones import check_backbone, saved_backbone
from ..contract import MethodIdentity, TunedModel
from ..method.config import IAPTConfig
from ..errors import UserError, read_json, unknown
from ..method.model import IAPTModel
from .peft_methods import AdaLoraMethod, PeftMethod

METHOD_FILE = "method.json"


@dataclass
class Method:
    name: str
    description: str
    size_name: str
    default_size: int | None
    max_size: int | None = None          # a cap where the budget-matched size would be impractical
    defaults: dict = field(default_factory=dict)


METHODS = {m.name: m for m in [
    Method("iapt", "IAPT: per-layer instruction-aware soft prompts (this paper)", "bottleneck_dim", 16),
    Method("lora", "LoRA on q, k, v, o, gate, up, down of every layer (peft)", "r", 2),
    Method("lora_qv", "LoRA on q, v of every layer (peft)", "r", 4),
    Method("prompt_tuning", "prompt tuning: soft tokens at the input (peft)", "num_virtual_tokens", 16, max_size=100),
    Method("prefix_tuning", "P-tuning v2: learned keys/values in every layer (peft prefix tuning)",
           "num_virtual_tokens", 16, max_size=100),
    Method("adalora", "AdaLoRA: LoRA with budgeted rank allocation (peft), all linear modules", "init_r", 3),
    Method("ia3", "(IA)³: learned rescaling of k, v and the MLP input (peft); size fixed by the model", "", None),
    # IDPG's and LPT's generators start non-zero, as in their papers: a zero prompt inserted at one layer stays
    # exactly zero through every layer above it (nothing overwrites it there), and on SmolLM2 the backward of
    # that degenerate state is NaN. IAPT is unaffected: every layer overwrites its slots.
    Method("idpg", "IDPG: one input-layer prompt generated from the mean instruction embedding", "bottleneck_dim", 64,
           defaults=dict(layers="input", pooler="mean", read="raw", activation="gelu", placement="prefix",
                         up_init_std=0.02)),
    Method("lpt", "LPT: one prompt generated and inserted at layer floor(2L/3) from that layer's states",
           "bottleneck_dim", 64, defaults=dict(layers="two_thirds", pooler="mean", activation="gelu", placement="prefix",
                                                up_init_std=0.02)),
]}
PEFT_METHODS = ("lora", "lora_qv", "prompt_tuning", "prefix_tuning", "adalora", "ia3")
LORA_ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def check_method(name: str) -> Method:
    if name not in METHODS:
        raise unknown("method", name, list(METHODS))
    return METHODS[name]


PEFT_CONFIGS = {"lora": "LoraConfig", "lora_qv": "LoraConfig", "prompt_tuning": "PromptTuningConfig",
                "prefix_tuning": "PrefixTuningConfig", "adalora": "AdaLoraConfig", "ia3": "IA3Config"}


def method_options(name: str) -> tuple[str, ...]:
    """The options a method takes (not its size knob, which `size` sets): IAPTConfig's fields for the IAPT
    family, its peft config's fields for the others."""
    spec = check_method(name)
    if name in PEFT_METHODS:
        import peft
        names = [f.name for f in fields(getattr(peft, PEFT_CONFIGS[name]))]
    else:
        names = [f.name for f in fields(IAPTConfig) if not f.name.startswith("base_")]
    return tuple(n for n in names if n not in (spec.size_name, "task_type", "peft_type"))


def check_options(name: str, options: dict) -> None:
    valid = method_options(name)
    if wrong := sorted(set(options) - set(valid)):
        raise UserError(f"unknown option(s) {', '.join(wrong)} for {name}; valid: {', '.join(valid)}")


def _num_layers(backbone) -> int:
    return backbone.config.get_text_config().num_hidden_layers


def iapt_family_config(name: str, backbone, size: int, options: dict) -> IAPTConfig:
    """The IAPTConfig of iapt / idpg / lpt at bottleneck `size`; `options` override the method's defaults."""
    opts = {**METHODS[name].defaults, **options}
    L = _num_layers(backbone)
    layers = opts.pop("layers", None)
    if layers == "input":
        layers = [0]
    elif layers == "two_thirds":
        layers = [2 * L // 3]
    elif layers == "all_shared":   # IDPG's option: every layer, one shared generator
        layers, opts["share"] = None, "all"
    act = opts.get("activation")
    if isinstance(act, str) and ">" in act:   # "relu>gelu": the lower half of the layers relu, the upper gelu
        lower, upper = act.split(">")
        opts["activation"] = [lower if i < L // 2 else upper for i in range(L)]
    return IAPTConfig(bottleneck_dim=size, layers=layers, **opts)


def peft_config(name: str, backbone, size: int, total_steps: int | None, options: dict):
    """The peft config of a baseline at `size`; `options` override any of our settings (e.g. lora_alpha)."""
    import peft
    task = peft.TaskType.CAUSAL_LM
    if name in ("lora", "lora_qv"):
        targets = LORA_ALL if name == "lora" else ["q_proj", "v_proj"]
        ours, cls = dict(r=size, lora_alpha=2 * size, target_modules=targets, lora_dropout=0.0), peft.LoraConfig
    elif name == "prompt_tuning":
        ours, cls = dict(num_virtual_tokens=size), peft.PromptTuningConfig
    elif name == "prefix_tuning":
        ours, cls = dict(num_virtual_tokens=size), peft.PrefixTuningConfig
    elif name == "ia3":
        ours, cls = {}, peft.IA3Config
    elif name == "adalora":
        # AdaLoRA prunes from init_r towards target_r between tinit and total - tfinal, every deltaT steps.
        total = total_steps or 1000
        ours = dict(init_r=size, target_r=max(1, round(2 * size / 3)), target_modules=LORA_ALL, total_step=total,
                    tinit=max(1, total // 10), tfinal=max(1, total // 5), deltaT=max(1, total // 50),
                    lora_alpha=2 * size)
        cls = peft.AdaLoraConfig
    else:
        raise unknown("peft method", name, list(PEFT_METHODS))
    return cls(task_type=task, **{**ours, **options})


def build_sized(name: str, backbone, size: int | None, total_steps: int | None = None, **options) -> TunedModel:
    """Attach method `name` at an explicit size to `backbone` (frozen; peft methods modify it in place)."""
    spec = check_method(name)
    check_options(name, options)
    size = spec.default_size if size is None else size
    identity = MethodIdentity(name, spec.size_name, size, dict(options))
    if name in PEFT_METHODS:
        import peft
        wrapper = AdaLoraMethod if name == "adalora" else PeftMethod
        return wrapper(peft.get_peft_model(backbone, peft_config(name, backbone, size, total_steps, options)), identity)
    return IAPTModel(backbone, iapt_family_config(name, backbone, size, options), identity)


def count_trainable(name: str, backbone, size: int | None, **options) -> int:
    """Tunable parameters of `name` at `size`, counted on a weightless copy of the backbone."""
    with torch.device("meta"):
        skeleton = type(backbone)(copy.deepcopy(backbone.config))
    return build_sized(name, skeleton, size, **options).get_nb_trainable_parameters()[0]


def size_for_budget(name: str, backbone, budget: int, **options) -> int:
    """The size whose tunable-parameter count is closest to `budget` (counts are affine in the size)."""
    spec = check_method(name)
    if spec.default_size is None:
        return None
    c1, c2 = (count_trainable(name, backbone, s, **options) for s in (1, 2))
    guess = max(1, round((budget - c1) / (c2 - c1)) + 1)
    if spec.max_size:
        guess = min(guess, spec.max_size)
    return guess


def build_method(name: str, backbone, budget: int | None = None, size: int | None = None,
                 total_steps: int | None = None, **options) -> TunedModel:
    """Attach `name` to `backbone`, sized to `budget` tunable parameters (or at `size`, or its default)."""
    check_method(name)
    if budget is not None and size is None:
        size = size_for_budget(name, backbone, budget, **options)
    return build_sized(name, backbone, size, total_steps, **options)


# --- persistence: the method's own format plus method.json and backbone.json ------------------------
def write_adapter(model, folder, **extra) -> None:
    """The adapter in the method's own format (with the backbone's identity) and its method.json, in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    (folder / METHOD_FILE).write_text(json.dumps({**model.describe(), **extra}, indent=1) + "\n")


def save_method(model, path, **extra) -> None:
    """`write_adapter` into `path`, atomically: into a new folder beside it, then renamed, so that a kill leaves
    the old adapter or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_adapter(model, tmp, **extra)
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def adapter_info(path) -> dict:
    """A saved adapter's method.json (method, size, options, task, backbone, …), with one clear message when
    the folder is not an adapter or the file is damaged."""
    path = Path(path)
    if not (path / METHOD_FILE).exists():
        raise UserError(f"{path} is not a saved adapter ({METHOD_FILE} missing); adapters are written by "
                        "`iapt-train` into <cell folder>/adapter")
    return read_json(path / METHOD_FILE, "adapter description", "save the adapter again (retrain the cell with --fresh)")


def load_method(backbone, path) -> TunedModel:
    """Rebuild a saved adapter of any method on `backbone` (the one it was trained on, which is checked), for
    use, not training."""
    path = Path(path)
    info = adapter_info(path)
    check_backbone(backbone, saved_backbone(path), path)   # (adapters saved before identities were recorded: none)
    try:
        name = info["method"]
        identity = MethodIdentity(name, check_method(name).size_name, info["size"], info["options"])
    except (KeyError, TypeError) as e:
        raise UserError(f"{path / METHOD_FILE} lacks {e}: it was not written by save_method") from None
    try:
        if name in PEFT_METHODS:
            import peft
            wrapper = AdaLoraMethod if name == "adalora" else PeftMethod
            model = wrapper(peft.PeftModel.from_pretrained(backbone, str(path)), identity)
        else:
            model = IAPTModel.from_pretrained(backbone, path, identity)
    except UserError:
        raise
    except Exception as e:   # safetensors, peft and torch raise many kinds for a truncated weights file
        raise UserError(f"the adapter weights in {path} cannot be loaded ({type(e).__name__}: {e}); the files are "
                        "truncated or do not match their config: save the adapter again") from None
    identity.trainable_params, identity.total_params = info["trainable_params"], info["total_params"]   # as trained
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    return model
