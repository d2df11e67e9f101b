"""Training any method here with `transformers.Trainer`.

    from transformers import TrainingArguments
    from iapt import IAPTConfig, get_iapt_model
    from iapt.data.format import InstructionCollator
    from iapt.training.hf import AdapterTrainer

    model = get_iapt_model(backbone, IAPTConfig())
    args = TrainingArguments("out", per_device_train_batch_size=4, gradient_accumulation_steps=2,
                             remove_unused_columns=False)     # the collator reads "prompt" and "response"
    trainer = AdapterTrainer(model=model, args=args, data_collator=InstructionCollator(tokenizer),
                             train_dataset=[{"prompt": "Review: a moving film\nSentiment:", "response": " positive"}, …])
    trainer.train()
    trainer.save_model("out/adapter")                          # the adapter in the project's own format
    IAPTModel.from_pretrained(backbone, "out/adapter")         # or iapt.baselines.registry.load_method

What Trainer needs and gets: the loss is normalised by `num_items_in_batch` (iapt.contract), so gradient
accumulation gives the update of one large batch; `save_model` and every checkpoint write the adapter (with
method.json and the backbone's identity) instead of the whole backbone's state dict, plus the tunable tensors
that `resume_from_checkpoint` and `load_best_model_at_end` read back. IAPT's Θ trains jointly with Ω under
Trainer (one optimiser); the alternating Θ updates on held-out data are the project's own loop (iapt.training.loop).
"""
from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file, save_file
from transformers import Trainer

from ..baselines.registry import write_adapter
from ..errors import UserError
from .checkpoint import load_trainable_state, trainable_state

TRAINABLE_FILE = "trainable.safetensors"   # the tunable tensors by parameter name, for resuming


class AdapterTrainer(Trainer):
    """`transformers.Trainer` for a `TunedModel`: saves and reloads adapters, not the frozen backbone."""

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        if not self.args.should_save:
            return
        folder = Path(output_dir or self.args.output_dir)
        model = self.accelerator.unwrap_model(self.model)
        write_adapter(model, folder)
        save_file({k: v.contiguous() for k, v in trainable_state(model).items()}, str(folder / TRAINABLE_FILE))

    def _load_tunable(self, folder, model=None) -> None:
        path = Path(folder) / TRAINABLE_FILE
        if not path.exists():
            raise UserError(f"{folder} holds no {TRAINABLE_FILE}: it was not written by AdapterTrainer")
        load_trainable_state(self.accelerator.unwrap_model(model or self.model), load_file(str(path)))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        self._load_tunable(resume_from_checkpoint, model)

    def _load_best_model(self) -> None:
        self._load_tunable(self.state.best_model_checkpoint)
