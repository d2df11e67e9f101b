"""Every bad input gets one clear message and a non-zero exit, never a traceback and never a long wrong run;
a kill loses nothing. One test per class of input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from iapt.backbones import TINY
from iapt.baselines.registry import build_method, load_method, save_method
from iapt.cli import lm_eval as lm_eval_cli
from iapt.cli import train as train_cli
from iapt.errors import UserError
from iapt.harness.runinfo import read_results
from iapt.harness.store import read_record
from iapt.training.config import TrainConfig
from tests.conftest import tiny_model

REPO = Path(__file__).resolve().parents[1]
TINY_CELL = ["--backbone", TINY, "--lrs", "1e-2", "--batch-size", "4", "--train-examples", "16",
             "--dev-examples", "8", "--test-examples", "8", "--precision", "fp32"]


def refused(main, argv, capsys) -> str:
    """Run a CLI: it must exit with status 2 and print one `error:` line, no traceback."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err and "error:" in err, err
    return err


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size must be a positive number, not 0"),
    (["--lrs", "-1"], "--lrs must be positive learning rates"),
    (["--lrs", "1e-3,x"], "--lrs must be comma-separated numbers"),
    (["--steps", "-5"], "--steps must be a positive number"),
    (["--eval-every", "0"], "--eval-every must be a positive number"),
    (["--size", "0"], "must be at least 1"),
    (["--budget", "-10"], "--budget must be a positive number"),
])
def test_numeric_arguments_are_checked_before_anything_runs(flags, message, capsys):
    err = refused(train_cli.main, ["--method", "iapt", "--task", "sst2", *TINY_CELL, *flags], capsys)
    assert message in err
    with pytest.raises(ValueError, match="batch_size must be a positive number"):   # the library says so too
        TrainConfig(batch_size=0)


def test_an_unknown_option_lists_the_valid_ones(capsys):
    err = refused(train_cli.main, ["--method", "iapt", "--task", "sst2", *TINY_CELL, "--option", "poolr=mean"], capsys)
    assert "unknown option(s) poolr for iapt; valid:" in err and "pooler" in err
    err = refused(train_cli.main, ["--method", "lora", "--task", "sst2", *TINY_CELL, "--option", "dropout=0.1"], capsys)
    assert "unknown option(s) dropout for lora" in err and "lora_dropout" in err


def saved_adapter(tmp_path, method="iapt") -> Path:
    model = build_method(method, tiny_model("llama"), size=2)
    save_method(model, tmp_path / method)
    return tmp_path / method


@pytest.mark.parametrize("damage, message", [
    (lambda a: (a / "method.json").write_text('{"method": "iapt", "si'), "method.json cannot be read"),
    (lambda a: (a / "iapt_model.safetensors").write_bytes(b"\0" * 20), "cannot be loaded"),
    (lambda a: (a / "backbone.json").write_text("{"), "backbone.json cannot be read"),
])
def test_a_damaged_adapter_names_the_file(tmp_path, damage, message):
    adapter = saved_adapter(tmp_path)
    assert not list(tmp_path.glob(".iapt.*"))     # the save was renamed into place; nothing half-written beside it
    damage(adapter)
    with pytest.raises(UserError, match=message):
        load_method(tiny_model("llama"), adapter)


@pytest.mark.parametrize("method", ["iapt", "lora"])
def test_an_adapter_refuses_another_backbone_of_the_same_shape(tmp_path, method):
    adapter = saved_adapter(tmp_path, method)
    load_method(tiny_model("llama"), adapter)                       # the backbone it was trained on
    with pytest.raises(UserError, match="was trained on .* but this backbone is .*vocabulary_digest differ"):
        load_method(tiny_model("llama", seed=5), adapter)           # same architecture and sizes, other weights


def test_a_damaged_checkpoint_record_or_results_file_names_the_file(tmp_path):
    from iapt.training.checkpoint import restore_checkpoint
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\3\4 truncated")
    with pytest.raises(UserError, match="checkpoint.pt cannot be read.*delete it to restart"):
        restore_checkpoint(None, tmp_path / "checkpoint.pt")
    (tmp_path / "result.json").write_text('{"spec": {"method"')
    with pytest.raises(UserError, match="result.json cannot be read.*git checkout"):
        read_record(tmp_path / "result.json")
    (tmp_path / "table.csv").write_bytes(b'a,b\n1,"2\n')
    with pytest.raises(UserError, match="table.csv cannot be read"):
        read_results(tmp_path / "table.csv")


def test_the_lm_eval_route_reports_errors_like_the_plain_cli(tmp_path, capsys):
    err = refused(lm_eval_cli.main, ["run", "--model", "iapt", "--model_args", f"adapter={tmp_path / 'nothing'}",
                                     "--tasks", "iapt_bbh", "--limit", "1"], capsys)
    assert "is not a saved adapter (method.json missing)" in err


def test_a_kill_mid_trial_loses_nothing(tmp_path):
    """SIGKILL a training process after a checkpoint mid-trial; the same command then resumes and ends with the
    result and the adapter of an uninterrupted run."""
    argv = [sys.executable, "-m", "iapt.cli.train", "--method", "iapt", "--task", "sst2", *TINY_CELL,
            "--steps", "120", "--eval-every", "40", "--seed", "3"]
    env = {**os.environ, "IAPT_CHECKPOINT_EVERY_S": "0", "PYTHONPATH": str(REPO)}   # a checkpoint after every step

    def run(folder, kill=False):
        proc = subprocess.Popen([*argv, "--out-dir", str(folder)], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        checkpoint = folder / "trials" / "lr=0.01" / "checkpoint.pt"
        while kill and proc.poll() is None:
            if checkpoint.exists() and torch.load(checkpoint, weights_only=False)["state"]["step"] >= 13:
                proc.send_signal(signal.SIGKILL)   # between two evaluations
                break
            time.sleep(0.05)
        assert proc.wait(timeout=300) == (-signal.SIGKILL if kill else 0)

    run(tmp_path / "whole")
    run(tmp_path / "killed", kill=True)
    assert not (tmp_path / "killed" / "result.json").exists()
    run(tmp_path / "killed")
    whole, resumed = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("whole", "killed"))
    assert resumed["test_correct"] == whole["test_correct"]
    assert resumed["trials"]["0.01"]["train_loss"] == whole["trials"]["0.01"]["train_loss"]
    from safetensors.torch import load_file
    a, b = (load_file(str(tmp_path / d / "adapter" / "iapt_model.safetensors")) for d in ("whole", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
