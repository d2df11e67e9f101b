"""IAPT under transformers.Trainer: the public collator, loss scaling under gradient accumulation, and adapters
saved in the project's own format (a tiny random backbone with the embedded tokenizer)."""
import copy

import pytest
import torch
from transformers import TrainingArguments

from iapt import IAPTConfig, IAPTModel, get_iapt_model
from iapt.backbones import TINY, load_backbone
from iapt.baselines.registry import load_method
from iapt.data.format import InstructionCollator
from iapt.training.hf import AdapterTrainer
from tests.conftest import randomize

# responses of different lengths: a mean of per-batch means would differ from the mean over all tokens
EXAMPLES = [{"prompt": f"Review: {text}\nSentiment:", "response": response} for text, response in [
    ("a moving, funny film", " positive"), ("dull and far too long", " negative, and long"),
    ("the cast is wonderful", " positive!"), ("I want those two hours back", " negative"),
    ("a warm, generous story", " positive, warmly"), ("flat, lifeless dialogue", " negative"),
    ("sharp and surprising", " positive"), ("a mess from start to end", " negative, a real mess")]]


@pytest.fixture(scope="module")
def backbone():
    return load_backbone(TINY)


def tiny_iapt(backbone):
    model, _ = backbone
    return randomize(get_iapt_model(copy.deepcopy(model), IAPTConfig(num_soft_tokens=2, bottleneck_dim=4)))


def trainer(model, tokenizer, tmp_path, **args):
    settings = dict(per_device_train_batch_size=8, max_steps=1, learning_rate=0.5, optim="sgd", max_grad_norm=0.0,
                    lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, save_strategy="no",
                    logging_steps=1, report_to=[], use_cpu=True, remove_unused_columns=False, seed=0,
                    dataloader_drop_last=False, disable_tqdm=True)
    return AdapterTrainer(model=model, args=TrainingArguments(str(tmp_path), **{**settings, **args}),
                          train_dataset=EXAMPLES, data_collator=InstructionCollator(tokenizer, max_length=64))


def test_the_collator_marks_the_prompt_as_instruction_and_labels_the_response(backbone):
    _, tokenizer = backbone
    batch = InstructionCollator(tokenizer)(EXAMPLES[:2])
    assert set(batch) == {"input_ids", "attention_mask", "instruction_mask", "labels"}
    for row, ex in enumerate(EXAMPLES[:2]):
        labelled = batch["labels"][row] != -100
        assert tokenizer.decode(batch["input_ids"][row][labelled]) == ex["response"]
        assert (batch["instruction_mask"][row] == (batch["attention_mask"][row].bool() & ~labelled)).all()


def test_gradient_accumulation_gives_the_update_of_one_large_batch(backbone, tmp_path):
    """SGD, no clipping: the update is the gradient itself, so a loss scaled wrongly (a mean of micro-batch
    means, or divided twice) shows. The labelled-token counts of the two micro-batches differ."""
    model, tokenizer = backbone
    one, two = tiny_iapt(backbone), tiny_iapt(backbone)
    before = {k: v.clone() for k, v in one.generators.state_dict().items()}
    trainer(one, tokenizer, tmp_path / "one").train()
    trainer(two, tokenizer, tmp_path / "two", per_device_train_batch_size=4, gradient_accumulation_steps=2).train()
    moved = max((one.generators.state_dict()[k] - before[k]).abs().max().item() for k in before)
    assert moved > 1e-3
    for k, v in one.generators.state_dict().items():
        torch.testing.assert_close(two.generators.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_the_loss_falls_and_the_saved_adapter_reloads_with_the_same_logits(backbone, tmp_path):
    model, tokenizer = backbone
    tuned = tiny_iapt(backbone)
    t = trainer(tuned, tokenizer, tmp_path, max_steps=12, optim="adamw_torch", learning_rate=3e-2,
                per_device_train_batch_size=4)
    t.train()
    losses = [log["loss"] for log in t.state.log_history if "loss" in log]
    assert losses[-1] < losses[0]
    t.save_model(str(tmp_path / "adapter"))
    batch = InstructionCollator(tokenizer)(EXAMPLES)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "instruction_mask")}
    with torch.no_grad():
        expected = tuned.eval()(**inputs).logits
        for reloaded in (IAPTModel.from_pretrained(copy.deepcopy(model), tmp_path / "adapter"),
                         load_method(copy.deepcopy(model), tmp_path / "adapter")):
            torch.testing.assert_close(reloaded(**inputs).logits, expected)


def test_the_documented_trainer_example_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path
    page = (Path(__file__).resolve().parents[1] / "docs" / "library.md").read_text()
    block = re.search(r"## Training with `transformers.Trainer`\n\n```python\n(.*?)```", page, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(compile(block, "docs/library.md", "exec"), scope)
    assert (tmp_path / "runs" / "trainer" / "adapter" / "backbone.json").exists()
    assert isinstance(scope["reloaded"], IAPTModel)
