"""Run by tests/test_engine.py, once plainly and once under `accelerate launch --num_processes 2 --cpu`:
a few IAPT steps on the tiny backbone with one global batch; each rank saves its weights and losses."""
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

from iapt.backbones import TINY, load_backbone
from iapt.training.loop import TrainConfig, trainable_state, train
from iapt.baselines.registry import build_method
from iapt.data.tasks import get_task

from iapt.data.splits import load_split

out = Path(sys.argv[1])
torch.set_num_threads(1)
accelerator = Accelerator(cpu=True)
backbone, tok = load_backbone(TINY)
torch.manual_seed(0)
model = build_method("iapt", backbone, size=4)
cfg = TrainConfig(steps=6, batch_size=4, lr=1e-2, eval_every=3, patience=None, precision="fp32", theta="alternate",
                  theta_batch_size=4, eval_batch_size=8)
history = train(model, tok, get_task("sst2"), load_split("sst2", "train")[:16], load_split("sst2", "dev")[:8], cfg,
                accelerator=accelerator, progress=False)
out.mkdir(parents=True, exist_ok=True)
torch.save({"world": accelerator.num_processes, "state": trainable_state(model), "loss": history["train_loss"],
            "dev_metric": history["dev_metric"]}, out / f"rank{accelerator.process_index}.pt")
