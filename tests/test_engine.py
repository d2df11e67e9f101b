"""The training engine: every method learns, seeds reproduce, resume equals uninterrupted, the Θ step moves
only Θ, and a 2-process data-parallel run agrees with one process (real sst2 data, tiny random backbone)."""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from iapt.backbones import TINY, load_backbone
from iapt.training.loop import Sampler, TrainConfig, rational_coefficients, trainable_state, train
from iapt.baselines.registry import METHODS, build_method
from iapt.data.tasks import get_task

from iapt.data.splits import load_split

REPO = Path(__file__).resolve().parents[1]
TASK = get_task("sst2")
TRAIN, DEV = load_split("sst2", "train")[:16], load_split("sst2", "dev")[:8]


def fresh(method="iapt", steps=12, seed=0, **options):
    backbone, tok = load_backbone(TINY)
    torch.manual_seed(seed)
    return build_method(method, backbone, size=METHODS[method].default_size and 4, total_steps=steps, **options), tok


def run(method="iapt", checkpoint=None, stop_after=None, model_tok=None, **cfg):
    cfg = TrainConfig(**{**dict(steps=12, batch_size=4, lr=1e-2, eval_every=4, patience=None, eval_batch_size=8), **cfg})
    model, tok = model_tok or fresh(method, cfg.steps, cfg.seed)
    history = train(model, tok, TASK, TRAIN, DEV, cfg, checkpoint=checkpoint, stop_after=stop_after, progress=False)
    return model, history


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_learns(method):
    _, history = run(method, steps=30, eval_every=30)
    losses = history["train_loss"]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, losses[::5]


@pytest.mark.parametrize("method", ["iapt", "adalora", "prompt_tuning"])
def test_resume_equals_uninterrupted_and_seeds_reproduce(method, tmp_path):
    full, history = run(method)
    again, history_again = run(method)
    assert history["train_loss"] == history_again["train_loss"] and history["dev_metric"] == history_again["dev_metric"]
    ck = tmp_path / "checkpoint.pt"
    assert run(method, checkpoint=ck, stop_after=6)[1] == {"interrupted_at": 6}   # last checkpoint: step 4
    resumed, history_resumed = run(method, checkpoint=ck)                          # a fresh process would do this
    assert history_resumed["train_loss"] == history["train_loss"]
    assert history_resumed["dev_metric"] == history["dev_metric"]
    for name, value in trainable_state(full).items():
        torch.testing.assert_close(trainable_state(resumed)[name], value, atol=0, rtol=0)


def test_coefficient_step_changes_only_coefficients():
    # W_up = 0 would leave Θ without a gradient; prefix slots let every layer's generator reach the loss
    model, tok = fresh("iapt", up_init_std=0.1, placement="prefix")
    theta = {id(p) for p in model.parameter_groups().theta}
    omega0 = {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad and id(p) not in theta}
    theta0 = rational_coefficients(model)
    _, history = run(model_tok=(model, tok), lr=0.0, theta="alternate", theta_lr=1e-2)
    assert all(torch.equal(v, trainable_state(model)[k]) for k, v in omega0.items()), "Ω moved with lr 0"
    assert all(d > 0 for d in history["theta_drift_last"].values()), history["theta_drift_last"]
    assert set(history["theta_drift_last"]) == set(theta0)
    model, tok = fresh("iapt")
    _, history = run(model_tok=(model, tok), theta="frozen")
    assert all(d == 0 for d in history["theta_drift_last"].values())


def test_two_processes_agree_with_one(tmp_path):
    worker = REPO / "tests" / "ddp_worker.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    single = subprocess.run([sys.executable, str(worker), str(tmp_path / "single")], env=env, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr[-3000:]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", str(worker), str(tmp_path / "ddp")]
    ddp = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one = torch.load(tmp_path / "single" / "rank0.pt")
    r0, r1 = torch.load(tmp_path / "ddp" / "rank0.pt"), torch.load(tmp_path / "ddp" / "rank1.pt")
    assert r0["world"] == 2 and one["world"] == 1
    for name, value in r0["state"].items():
        assert torch.equal(value, r1["state"][name]), f"ranks disagree on {name}"
        torch.testing.assert_close(value, one["state"][name], atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(torch.tensor(r0["loss"]), torch.tensor(one["loss"]), atol=1e-5, rtol=1e-5)
    assert json.loads(json.dumps(r0["dev_metric"])) == one["dev_metric"]


def test_train_cli_writes_a_complete_result_and_predict_reads_the_adapter(tmp_path, capsys):
    from iapt.cli import predict
    from iapt.cli import train as train_cli
    argv = ["--method", "lora", "--task", "sst2", "--backbone", TINY, "--lrs", "1e-3,1e-2", "--steps", "4",
            "--eval-every", "2", "--batch-size", "4", "--train-examples", "16", "--dev-examples", "8",
            "--test-examples", "8", "--out-dir", str(tmp_path / "cell")]
    train_cli.main(argv)
    result = json.loads((tmp_path / "cell" / "result.json").read_text())
    assert result["chosen_lr"] in (1e-3, 1e-2) and set(result["trials"]) == {"0.001", "0.01"}
    assert result["trainable_params"] > 0 and result["size_name"] == "r"
    assert isinstance(result["spec"]["budget"], int) and 0 <= result["test_metric"] <= 1
    for key in ("train_loss", "dev_metric", "dev_step", "best_step"):
        assert key in result["trials"]["0.01"]
    for key in ("git_commit", "packages", "device"):
        assert key in result["meta"]
    assert result["peak_memory_mb"] > 0 and result["wall_s"]["train"] > 0
    train_cli.main(argv)                                   # a finished cell is reused, not recomputed
    assert "already done" in capsys.readouterr().out
    predict.main(["--adapter", str(tmp_path / "cell" / "adapter"), "a moving, funny film"])
    assert capsys.readouterr().out.split("\t")[0] in ("positive", "negative")


def test_cli_rejects_unknown_names():
    from iapt.cli import train as train_cli
    with pytest.raises(SystemExit) as e:
        train_cli.main(["--method", "lroa", "--task", "sst2"])
    assert e.value.code == 2


def _padded_tokens(sampler, lengths, k, steps=60):
    return sum(k * max(lengths[i] for i in sampler.take(k)) for _ in range(steps))


def test_length_grouped_sampler_keeps_every_pass_and_resumes_but_pads_less():
    rng = random.Random(0)
    n, k = 160, 8
    lengths = [rng.randint(5, 300) for _ in range(n)]
    grouped = Sampler(n, 3, lengths, k)
    passes = [[i for _ in range(n // k) for i in grouped.take(k)] for _ in range(3)]
    assert all(sorted(p) == list(range(n)) for p in passes)     # n divisible by k: each pass is a permutation
    assert passes[0] != passes[1]                                # and the batches change from pass to pass
    odd = Sampler(n - 3, 3, lengths[:n - 3], k)                  # a remainder carries into the next pass
    seen = [i for _ in range(n - 3) for i in odd.take(k)]        # n - 3 batches = k passes exactly
    assert all(seen.count(i) == k for i in range(n - 3))
    again = Sampler(n, 3, lengths, k)
    again.take(k)
    resumed = Sampler(n, 99, lengths, k)
    resumed.load_state_dict(again.state_dict())
    assert [again.take(k) for _ in range(30)] == [resumed.take(k) for _ in range(30)]
    assert _padded_tokens(Sampler(n, 3, lengths, k), lengths, k) < 0.8 * _padded_tokens(Sampler(n, 3), lengths, k)
    small, plain = Sampler(16, 3, lengths[:16], 4), Sampler(16, 3)   # too few batches to group: plain shuffling
    assert [small.take(4) for _ in range(8)] == [plain.take(4) for _ in range(8)]


def test_a_non_finite_loss_ends_the_trial_and_keeps_the_best_dev_state(monkeypatch):
    import iapt.contract
    real, calls = iapt.contract.loss_at, []

    def nan_at_step_6(*args):
        calls.append(1)
        loss = real(*args)
        return loss * float("nan") if len(calls) == 6 else loss
    monkeypatch.setattr(iapt.contract, "loss_at", nan_at_step_6)
    model, history = run("lora", steps=12, eval_every=4)
    assert history["diverged_at"] == 6 and history["steps_run"] == 6 and len(history["train_loss"]) == 5
    assert history["dev_step"] == [0, 4] and history["best_step"] in (0, 4)
    assert all(torch.isfinite(p).all() for p in trainable_state(model).values())   # the update was never applied


def test_a_non_finite_theta_gradient_is_skipped_not_applied(monkeypatch):
    import iapt.method.model
    real, calls = iapt.method.model.loss_at, []

    def nan_on_every_dev_batch(*args):   # with Θ alternating, even calls are the Θ steps' dev batches
        calls.append(1)
        loss = real(*args)
        return loss * float("nan") if len(calls) % 2 == 0 else loss
    monkeypatch.setattr(iapt.method.model, "loss_at", nan_on_every_dev_batch)   # IAPT's (frozen-prefix) loss
    model, history = run("iapt", steps=6, eval_every=3, theta="alternate")
    assert history["theta_steps_skipped"] == 6 and history["diverged_at"] is None and history["steps_run"] == 6
    assert history["theta_drift"] and max(history["theta_drift"].values()) == 0      # Θ never moved
    assert all(torch.isfinite(p).all() for p in trainable_state(model).values())


TINY_TRAIN = TrainConfig(steps=2, batch_size=4, eval_every=2, patience=None, eval_batch_size=8)


def tiny_spec(**overrides):
    from iapt.training.cell import CellSpec
    return CellSpec(**{**dict(method="lora", task="sst2", backbone=TINY, train=TINY_TRAIN, lrs=(1e-2,), n_train=8,
                              n_dev=4, n_test=4), **overrides})


def run_in(store, spec, fresh=False):
    from iapt.training.cell import RunContext, prepare
    return store.run(prepare(spec), RunContext(progress=False), fresh)


def test_cells_of_an_accepted_older_code_version_are_reused(tmp_path, monkeypatch, capsys):
    import iapt.training.cell
    from iapt.harness.store import CellStore
    monkeypatch.setattr(iapt.training.cell, "CODE_AT_START", "old0000000")
    first = run_in(CellStore(tmp_path), tiny_spec())
    monkeypatch.setattr(iapt.training.cell, "CODE_AT_START", "new0000000")
    reused = run_in(CellStore(tmp_path, accepted_versions=("other", "old0000000")), tiny_spec())
    assert "reusing the cell finished at code version old0000000" in capsys.readouterr().out
    assert reused.record == first.record and reused["code_version"] == "old0000000"
    other_settings = run_in(CellStore(tmp_path, accepted_versions=("old0000000",)), tiny_spec(n_test=3))
    assert other_settings["code_version"] == "new0000000"   # only the same settings are reused


def test_an_accepted_version_does_not_supply_the_methods_it_is_not_for(tmp_path, monkeypatch):
    """IAPT's cells at older versions are retrained (its Θ data changed); the other methods' are still reused."""
    import iapt.training.cell
    from iapt.harness.store import CellStore
    monkeypatch.setattr(iapt.training.cell, "CODE_AT_START", "old0000000")
    run_in(CellStore(tmp_path), tiny_spec())
    monkeypatch.setattr(iapt.training.cell, "CODE_AT_START", "new0000000")
    store = CellStore(tmp_path, accepted_versions=("old0000000",), not_for={"old0000000": ("lora",)})
    assert store.find(prepare_key(tiny_spec())) is None
    assert CellStore(tmp_path, accepted_versions=("old0000000",), not_for={"old0000000": ("iapt",)}).find(
        prepare_key(tiny_spec()))["code_version"] == "old0000000"


def prepare_key(spec) -> dict:
    from iapt.training.cell import prepare
    return prepare(spec).key


def test_cells_are_found_by_their_settings_not_by_their_folder_name(tmp_path):
    """Renaming a record's folder (a migration, a new naming rule) must not lose it."""
    from iapt.harness.store import CellStore
    records = tmp_path / "records"
    store = CellStore(tmp_path / "cache", records)
    first = run_in(store, tiny_spec())
    store.keep(first)
    (kept,) = [p.parent for p in records.rglob("result.json")]
    assert kept.relative_to(records).parts[:3] == (TINY, "sst2", "lora-seed0")    # readable: method, task, seed
    kept.rename(kept.parent / "renamed")
    found = CellStore(tmp_path / "elsewhere", records).find(first["spec"])
    assert found is not None and found["test_correct"] == first["test_correct"]


def test_a_grid_resumes_from_its_committed_records_on_a_new_machine(tmp_path, monkeypatch, capsys):
    import iapt.training.cell
    from iapt.harness.grid import GridRun, Row, run_grid
    from iapt.harness.store import CellStore, cached_json
    from iapt.training.cell import RunContext
    records, evaluated = tmp_path / "results" / "cells", []

    def also_test(result):   # an evaluation kept in the cell folder, as Table 2's lm-eval scores are
        ev = cached_json("extra.json", lambda: evaluated.append(1) or {"acc": result["test_metric"] / 2}, result.folder)
        return [{"task": "extra", "test_metric": ev["acc"]}]

    def grid(cache):
        return GridRun(CellStore(cache, records), RunContext(progress=False), TINY, TINY_TRAIN, (1e-2,), "smoke",
                       dict(n_train=8, n_dev=4, n_test=4))
    first, _ = run_grid(grid(tmp_path / "cache"), [Row("lora", "lora")], ["sst2"], [0], also_test=also_test)
    kept = sorted(p.name for p in records.rglob("*") if p.is_file())
    assert kept == ["extra.json", "result.json"]                      # JSON only: no weights are committed
    monkeypatch.setattr(iapt.training.cell, "train", lambda *a, **k: pytest.fail("a recorded cell was retrained"))
    again, _ = run_grid(grid(tmp_path / "new-machine"), [Row("lora", "lora")], ["sst2"], [0], also_test=also_test)
    assert "restored from the committed record" in capsys.readouterr().out
    assert again.drop(columns="adapter").equals(first.drop(columns="adapter")) and evaluated == [1]
    with pytest.raises(pytest.fail.Exception):                        # --fresh retrains even a recorded cell
        run_in(CellStore(tmp_path / "third", records), tiny_spec(), fresh=True)
    assert not list(records.rglob("result.json"))                     # and drops its old record with it


def test_without_the_archive_a_table_is_rebuilt_from_its_records_and_an_unrecorded_cell_is_refused(tmp_path,
                                                                                                     monkeypatch):
    """Without the BIG-bench archive a FEVER cell can neither train nor be keyed (its split sizes come from the
    data), but its committed record still serves the table; a cell no record holds gets one message."""
    import iapt.harness.grid as grid_module
    import iapt.training.cell
    from iapt.errors import UserError
    from iapt.harness.grid import GridRun, Row, run_grid, unrecorded_cells
    from iapt.harness.store import CellStore
    from iapt.training.cell import RunContext
    records, lora = tmp_path / "results" / "cells", Row("lora", "lora")

    def grid(cache, lrs=(1e-2,)):
        return GridRun(CellStore(cache, records), RunContext(progress=False), TINY, TINY_TRAIN, lrs, "smoke",
                       dict(n_train=8, n_dev=4, n_test=4))
    first, _ = run_grid(grid(tmp_path / "cache"), [lora], ["fever"], [0])
    monkeypatch.setattr(grid_module, "bigbench_available", lambda: False)
    monkeypatch.setattr(iapt.training.cell, "load_split", lambda *a: pytest.fail("the task's data was read"))
    again, _ = run_grid(grid(tmp_path / "new-machine"), [lora], ["fever"], [0])
    assert again.drop(columns="adapter").equals(first.drop(columns="adapter"))
    assert unrecorded_cells(CellStore(tmp_path / "c", records), [([lora], ["fever"], [0, 1])]) == [("lora", "fever", 1)]
    with pytest.raises(UserError, match="No committed record holds lora on fever, seed 1"):
        run_grid(grid(tmp_path / "third"), [lora], ["fever"], [0, 1])
    with pytest.raises(UserError, match=r"learning rates \[0.001\]"):    # other settings: not this record
        run_grid(grid(tmp_path / "fourth", lrs=(1e-3,)), [lora], ["fever"], [0])


def test_a_cell_resumed_after_its_trials_still_counts_their_time(tmp_path):
    """Interrupted after its trials, before the test evaluation: the resumed cell's table row reports the compute
    of both invocations, not only the second's few seconds."""
    from iapt.harness.grid import GridRun, Row, run_grid
    from iapt.harness.store import CellStore
    from iapt.training.cell import RunContext
    run = GridRun(CellStore(tmp_path), RunContext(progress=False), TINY,
                  TrainConfig(steps=4, batch_size=4, eval_every=2, patience=None, eval_batch_size=8), (1e-3, 1e-2),
                  "smoke", dict(n_train=8, n_dev=4, n_test=4))
    first, _ = run_grid(run, [Row("lora", "lora")], ["sst2"], [0])
    (tmp_path / first["cell"].iloc[0] / "result.json").unlink()      # the trials stay cached (cell: the folder)
    run.store = CellStore(tmp_path)
    resumed, _ = run_grid(run, [Row("lora", "lora")], ["sst2"], [0])
    assert resumed.test_metric.tolist() == first.test_metric.tolist()
    assert resumed.cell_wall_s.iloc[0] >= resumed.train_wall_s.iloc[0] > 0


def test_a_profile_accepts_older_code_versions_for_cells_and_kept_json(tmp_path):
    """A table's accepted older versions (profile and flag) reach its cells and its cached evaluations; --fresh none."""
    import argparse

    from iapt.harness.grid import accepted_code_versions
    from iapt.harness.store import cached_json
    prof = {"reuse_code_versions": ("old0000000",)}
    assert accepted_code_versions(prof, argparse.Namespace(fresh=False, reuse_code_version=["mid0000000"])) == \
        ("old0000000", "mid0000000")
    assert accepted_code_versions(prof, argparse.Namespace(fresh=True, reuse_code_version=["mid0000000"])) == ()
    cache, store, computed = tmp_path / "cache", tmp_path / "cells", []
    (store / "old.json").parent.mkdir(parents=True)
    (store / "old.json").write_text('{"acc": 0.5}\n')
    assert cached_json(["new.json", "old.json"], lambda: computed.append(1) or {"acc": 0.9}, cache, store) == {"acc": 0.5}
    assert not computed and not (store / "new.json").exists()        # used as it is, not copied under the new name
    assert cached_json(["new.json", "gone.json"], lambda: {"acc": 0.9}, cache, store) == {"acc": 0.9}
    assert json.loads((store / "new.json").read_text()) == json.loads((cache / "new.json").read_text()) == {"acc": 0.9}


def test_run_table_hands_the_same_accepted_versions_to_floors_as_to_cells(tmp_path):
    """A table's floors (Table 2's untuned backbone) are reused from exactly the versions its cells are: the
    profile's, --reuse-code-version's, and none with --fresh."""
    import pandas as pd

    from iapt.harness.grid import Row, TableScript, run_table
    profiles = {"smoke": dict(backbone=TINY, stages=[([Row("lora", "lora")], ["sst2"], [0])], lrs=(1e-2,),
                              n=dict(n_train=8, n_dev=4, n_test=4), reuse_code_versions=("old0000000",),
                              train=dict(steps=2, batch_size=4, eval_every=2, patience=None))}
    seen = []

    def floors(prof, backbone, store):
        seen.append(store.accepted)
        return pd.DataFrame(columns=["task", "method", "metric"])
    for extra in (["--reuse-code-version", "mid0000000"], ["--fresh"]):
        run_table(TableScript("t", "doc", "t.py", floors=floors), profiles,
                  ["--profile", "smoke", "--out-dir", str(tmp_path), *extra])
    assert seen == [("old0000000", "mid0000000"), ()]


def test_theta_learns_on_examples_carved_from_the_training_split_and_dev_only_selects(monkeypatch):
    """Θ's batches come from the last tenth of the training split (at least one Θ batch), Ω's from the rest;
    the dev split is never a Θ batch; a method without alternating Θ trains on the whole training split."""
    from iapt.training import loop
    from iapt.training.loop import theta_split, training_features
    drawn = []
    real = loop.batch_loss
    monkeypatch.setattr(loop, "batch_loss", lambda trial, feats, index: drawn.append(
        [feats[i]["input_ids"] for i in index]) or real(trial, feats, index))
    _, history = run("iapt", theta="alternate", theta_batch_size=4)
    omega, theta = theta_split(TRAIN, 4)
    assert (len(omega), len(theta)) == (12, 4) and omega + theta == TRAIN
    assert history["examples"] == {"omega": 12, "theta": 4, "dev": 8}
    tok = load_backbone(TINY)[1]
    ids = {name: [f["input_ids"] for f in training_features(tok, TASK, examples, 512)]
           for name, examples in (("omega", omega), ("theta", theta), ("dev", DEV))}
    omega_steps, theta_steps = drawn[0::2], drawn[1::2]   # one Ω step, then one Θ step, alternating
    assert all(x in ids["omega"] for batch in omega_steps for x in batch)
    assert all(x in ids["theta"] for batch in theta_steps for x in batch)
    assert not any(x in ids["dev"] for batch in drawn for x in batch)
    assert run("lora")[1]["examples"] == {"omega": 16, "theta": 0, "dev": 8}
    with pytest.raises(ValueError, match="too few"):
        theta_split(TRAIN[:4], 4)
