"""End-to-end runs of the experiment scripts on their smoke profile, into temporary folders only."""
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from scripts import run_notebooks
from experiments import zeroshot

from iapt.errors import UserError
from iapt.harness.grid import Row
from iapt.method.rational import fitted_coefficients


def test_zeroshot_smoke_writes_csv_with_metadata_and_lm_eval_agrees(tmp_path):
    zeroshot.main(["--profile", "smoke", "--out-dir", str(tmp_path)])
    df = pd.read_csv(tmp_path / "zeroshot.csv")
    meta = json.loads((tmp_path / "zeroshot.meta.json").read_text())
    assert {"git_commit", "packages", "device", "wall_time_s", "profile", "backbone"} <= set(meta)
    assert meta["profile"] == "smoke"
    for task in ("sst2", "copa", "arc_easy"):
        rows = df[df.task == task].set_index("method")
        assert {"zero-shot", "zero-shot (lm-eval)", "chance"} <= set(rows.index)
        assert rows.loc["zero-shot (lm-eval)", "examples_differing"] <= 1
        assert 0 <= rows.loc["zero-shot", "metric"] <= 1
    assert df[(df.task == "sst2") & (df.method == "chance")].metric.item() == 0.5
    assert not list(tmp_path.glob(".*")), "no temporary files left behind"


def test_zeroshot_resumes_from_its_task_records(tmp_path, monkeypatch):
    args = ["--profile", "smoke", "--no-lm-eval", "--out-dir", str(tmp_path)]
    zeroshot.main([*args, "--tasks", "sst2"])
    first = pd.read_csv(tmp_path / "zeroshot.csv")
    assert len(list((tmp_path / "cells").rglob("sst2-*.json"))) == 1
    monkeypatch.setattr(zeroshot, "load_backbone", lambda *a: pytest.fail("a recorded task was scored again"))
    zeroshot.main([*args, "--tasks", "sst2"])
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "zeroshot.csv"), first)


def test_tasks_scored_with_and_without_the_cross_check_keep_each_other_in_the_table(tmp_path, monkeypatch):
    smoke = ["--profile", "smoke", "--out-dir", str(tmp_path)]
    zeroshot.main([*smoke, "--tasks", "sst2"])                         # with the lm-eval cross-check
    zeroshot.main([*smoke, "--tasks", "copa", "--no-lm-eval"])
    table = pd.read_csv(tmp_path / "zeroshot.csv")
    assert {"sst2", "copa"} <= set(table.task)
    assert set(table[table.method == "zero-shot (lm-eval)"].task) == {"sst2"}
    monkeypatch.setattr(zeroshot, "load_backbone", lambda *a: pytest.fail("a recorded task was scored again"))
    zeroshot.main([*smoke, "--tasks", "sst2", "--no-lm-eval"])         # the cross-checked record serves it
    zeroshot.main([*smoke, "--tasks", "sst2"])                         # and a cross-checked run keeps copa's row
    assert {"sst2", "copa"} <= set(pd.read_csv(tmp_path / "zeroshot.csv").task)
    with pytest.raises(pytest.fail.Exception, match="scored again"):   # a task without a record is scored
        zeroshot.main([*smoke, "--tasks", "sst2", "arc_easy"])


def test_defaults_probe_smoke_trains_and_writes(tmp_path):
    from experiments import probe_iapt_defaults
    probe_iapt_defaults.main(["--profile", "smoke", "--out-dir", str(tmp_path)])
    df = pd.read_csv(tmp_path / "iapt_defaults_probe.csv")
    assert set(df.variant) == {"ours/between", "paper-literal/prefix"}
    assert df.best_dev_acc.between(0, 1).all() and (df.trainable_params > 0).all()
    # resumable: a second call skips finished variants and keeps the file
    probe_iapt_defaults.main(["--profile", "smoke", "--out-dir", str(tmp_path)])
    assert len(pd.read_csv(tmp_path / "iapt_defaults_probe.csv")) == 2


def test_defaults_probe_on_a_generation_task(tmp_path):
    from experiments import probe_iapt_defaults
    probe_iapt_defaults.main(["--profile", "smoke", "--task", "ni", "--out-dir", str(tmp_path)])
    df = pd.read_csv(tmp_path / "iapt_defaults_probe_ni.csv")
    assert set(df.metric) == {"rouge_l"} and set(df.theta) == {"alternate"} and df.best_dev_acc.between(0, 1).all()


def test_engine_acceptance_smoke(tmp_path):
    from experiments import engine_acceptance
    engine_acceptance.main(["--profile", "smoke", "--out-dir", str(tmp_path)])
    df = pd.read_csv(tmp_path / "engine_acceptance.csv")
    assert list(df.method) == ["iapt", "lora"] and (df.trainable_params > 0).all()
    assert json.loads((tmp_path / "engine_acceptance.meta.json").read_text())["profile"] == "smoke"


def execute_notebook(filename: str, results_dir: Path, tmp_path: Path) -> None:
    """The same runner as `make figures`, on a smoke run's CSVs, figures into tmp_path/figures."""
    run_notebooks.execute_notebook(filename.removesuffix(".ipynb"), results_dir, tmp_path / "figures", tmp_path)


def test_table1_smoke_and_notebook(tmp_path):
    from experiments import table1_glue
    out = tmp_path / "out"
    table1_glue.main(["--profile", "smoke", "--out-dir", str(out)])
    rows = pd.read_csv(out / "table1.csv")
    assert len(rows) == 3 * 2 * 2 and set(rows.lr_source) == {"searched", "seed 0"}
    summary = pd.read_csv(out / "table1_summary.csv")
    assert list(summary.row) == ["iapt", "lora", "prefix_tuning"] and (summary.sst2_seeds == 2).all()
    verdicts = pd.read_csv(out / "table1_verdicts.csv")
    assert set(verdicts.iapt_vs) == {"prefix_tuning", "lora"} and (verdicts.ci_low <= verdicts.ci_high).all()
    meta = json.loads((out / "table1.meta.json").read_text())
    assert meta["profile"] == "smoke" and meta["cells_done"] == meta["cells_planned"] == 12
    # every cell says which machine trained it, and the table counts them (a resumed grid can mix machines)
    assert set(rows.device) == {meta["device"]} and meta["cell_devices"] == {meta["device"]: 12}
    assert rows.seed.tolist() == sorted(rows.seed)                      # seed-major: seed 0 of everything first
    table1_glue.main(["--profile", "smoke", "--out-dir", str(out)])        # finished cells are reused
    assert pd.read_csv(out / "table1.csv")["test_metric"].tolist() == rows["test_metric"].tolist()
    execute_notebook("table1.ipynb", out, tmp_path)
    assert {"table1_bars.png", "table1_params.png", "table1_curves.png"} <= {p.name for p in (tmp_path / "figures").iterdir()}


def test_an_interrupted_table_leaves_a_complete_smaller_table(tmp_path, monkeypatch):
    from experiments import table1_glue

    import iapt.harness.store
    real, calls = iapt.harness.store.run_cell, []

    def interrupted_after_three(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(iapt.harness.store, "run_cell", interrupted_after_three)
    with pytest.raises(KeyboardInterrupt):
        table1_glue.main(["--profile", "smoke", "--out-dir", str(tmp_path)])
    rows = pd.read_csv(tmp_path / "table1.csv")
    assert len(rows) == 3 and set(rows.seed) == {0}
    assert json.loads((tmp_path / "table1_summary.meta.json").read_text())["cells_done"] == 3
    assert set(pd.read_csv(tmp_path / "table1_summary.csv").row) >= set(rows.row)


def test_stages_flag_runs_only_the_named_stages_and_says_so(tmp_path, monkeypatch, capsys):
    from experiments import table1_glue
    smoke = table1_glue.PROFILES["smoke"]
    longer = Row("lora, 6 steps", "lora", train=dict(steps=6))
    monkeypatch.setitem(table1_glue.PROFILES, "smoke", {**smoke, "stages": [([Row("iapt", "iapt")], ["sst2"], [0]),
                                                                             ([longer], ["sst2"], [0])]})
    table1_glue.main(["--profile", "smoke", "--out-dir", str(tmp_path), "--stages", "1"])
    rows = pd.read_csv(tmp_path / "table1.csv")
    assert rows.row.tolist() == ["lora, 6 steps"] and rows.steps_run.tolist() == [6]   # smoke trains 4
    meta = json.loads((tmp_path / "table1.meta.json").read_text())
    assert meta["stages"] == {"run": [1], "in_profile": 2} and meta["cells_done"] == meta["cells_planned"] == 1
    assert "stage 1: 1 rows" in capsys.readouterr().out   # the profile's own stage number, not its place in the run
    with pytest.raises(SystemExit):
        table1_glue.main(["--profile", "smoke", "--out-dir", str(tmp_path), "--stages", "2"])
    assert "has stages 0 to 1" in capsys.readouterr().err


def test_stages_that_share_cells_count_and_list_each_cell_once(tmp_path, monkeypatch):
    """A later stage that adds seeds to an earlier one's cells (Table 1's convergence check, then its core grid):
    each shared cell is one row of the table, counted once, and the verdicts pair each seed once."""
    from experiments import table1_glue
    smoke = table1_glue.PROFILES["smoke"]
    rows = [Row("iapt", "iapt"), Row("prefix_tuning", "prefix_tuning")]
    monkeypatch.setitem(table1_glue.PROFILES, "smoke", {**smoke, "stages": [(rows, ["sst2"], [0]),
                                                                             (rows, ["sst2"], [0, 1])]})
    table1_glue.main(["--profile", "smoke", "--out-dir", str(tmp_path)])
    table = pd.read_csv(tmp_path / "table1.csv")
    assert sorted(zip(table.row, table.seed)) == [("iapt", 0), ("iapt", 1), ("prefix_tuning", 0), ("prefix_tuning", 1)]
    meta = json.loads((tmp_path / "table1.meta.json").read_text())
    assert meta["cells_done"] == meta["cells_planned"] == 4
    verdicts = pd.read_csv(tmp_path / "table1_verdicts.csv")
    assert set(verdicts.n_seeds) == {2}
    curves = pd.read_csv(tmp_path / "table1_curves.csv")
    assert not curves.duplicated(["row", "task", "seed", "lr", "kind", "step"]).any()


def test_table1_paper_dry_run_counts_parameters(capsys):
    from experiments import table1_glue
    table1_glue.main(["--profile", "paper", "--dry-run"])
    out = capsys.readouterr().out
    assert "83,927,424" in out       # IAPT at m = 320 on LLaMA-2 7B, as published
    counts = dict(re.findall(r"^  (\w+) .*?([\d,]+) tunable parameters$", out, re.M))
    assert counts["lora"] == "79,953,920"             # r = 32, as the paper states
    assert counts["prefix_tuning"] == "84,459,836"    # 16 reparameterised tokens: the count MiLoRA reports
    assert all(int(c.replace(",", "")) > 30_000_000 for m, c in counts.items() if m not in ("prompt_tuning", "ia3"))


def test_table5_varies_batch_below_the_central_tenant_count():
    from experiments import table5_multitenant
    configs = table5_multitenant.configurations(table5_multitenant.CENTRAL, table5_multitenant.PROFILES["cpu"]["vary"])
    batch = {c["batch"]: c["tenants"] for factor, c in configs if factor == "batch"}
    assert batch == {1: 1, 8: 8}     # the batch sweep is not dropped for having fewer requests than tenants
    assert all(c["tenants"] <= c["batch"] for _, c in configs) and len(configs) == len({str(c) for _, c in configs})


def test_table5_random_weights_build_the_named_architecture_and_the_gpu_profile_names_a_config():
    from experiments import table5_multitenant
    # on the meta device: shapes only, 1.7 B parameters cost nothing here
    model = table5_multitenant.random_backbone(table5_multitenant.PROFILES["gpu"]["backbone"], "meta")
    assert model.config.num_hidden_layers == 24 and model.config.hidden_size == 2048
    assert 1.6e9 < sum(p.numel() for p in model.parameters()) < 1.8e9
    small = table5_multitenant.random_backbone("experiments/backbone_configs/smollm2-135m", "meta")
    assert sum(p.numel() for p in small.parameters()) == 134_515_008   # the embedded SmolLM2-135M's count


def test_cuda_checks_dry_run_passes_on_cpu(tmp_path):
    """scripts/cuda_checks.py is what a lent GPU runs; its checks must hold (and run) on CPU first."""
    from scripts import cuda_checks
    assert cuda_checks.main(["--device", "cpu", "--precisions", "fp32", "--out-dir", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "cuda_checks_dry_run.csv")
    assert len(df) == 28 and df.passed.all()


def test_table5_smoke_and_notebook(tmp_path):
    from experiments import table5_multitenant
    out = tmp_path / "out"
    table5_multitenant.main(["--profile", "smoke", "--out-dir", str(out)])
    df = pd.read_csv(out / "table5.csv")
    assert set(df.method) == set(table5_multitenant.METHODS) and (df.tokens_per_s > 0).all()
    assert set(df.factor) == {"central", "batch", "tenants"}
    shared = pd.read_csv(out / "table5_shared_prefix.csv")
    assert set(shared.method) == set(table5_multitenant.SHARED_METHODS) and (shared.ttft_s > 0).all()
    ratios = json.loads((out / "table5_shared_prefix.meta.json").read_text())["ratios"]
    ttft = shared.set_index("method").ttft_s      # LoRA's better way, shared per tenant or in full
    best_lora = min(ttft["lora_gathered, prefix per tenant"], ttft["lora_gathered, every row in full"])
    assert ratios["iapt_ttft_over_best_lora"] == pytest.approx(ttft["iapt, prefix once"] / best_lora)
    execute_notebook("table5.ipynb", out, tmp_path)
    assert (tmp_path / "figures" / "table5_tenants.png").exists()


@pytest.mark.parametrize("table", ["table3_activation", "table4_length"])
def test_ablation_tables_smoke_and_notebooks(table, tmp_path):
    import importlib
    module = importlib.import_module(f"experiments.{table}")
    name = table.split("_")[0]
    out = tmp_path / "out"
    cells = module.main(["--profile", "smoke", "--out-dir", str(out)])
    rows = pd.read_csv(out / f"{name}.csv")
    assert "adapter" not in rows and len(cells) == len(rows)   # the cache path stays out of the committed table
    prof = module.PROFILES["smoke"]
    assert len(rows) == len(prof["rows"]) * len(prof["seeds"]) and rows.trainable_params.gt(0).all()
    verdicts = pd.read_csv(out / f"{name}_verdicts.csv")
    assert len(verdicts) and (verdicts.ci_low <= verdicts.ci_high).all()
    if name == "table3":
        rationals = pd.read_csv(out / "table3_rationals.csv")
        frozen = rationals[rationals.row == "rational, frozen at GELU"]
        assert len(frozen) and (frozen.drift == 0).all() and (frozen.max_change_pm2 < 1e-4).all()   # float32 storage
        a, b = fitted_coefficients("gelu", "B", 6, 5)   # shifting a_0 by d moves R by d / (1 + |Q(x)|): d at x = 0
        assert module.max_change({"version": "B", "numerator": [a[0] + 0.1] + a[1:], "denominator": b}, 1.0) == \
            pytest.approx(0.1, abs=1e-12)
        for adapter in cells[cells.row.str.startswith("rational")].adapter:   # a restored cell has no weights:
            shutil.rmtree(adapter)                                          # its result.json must suffice
        assert module.rationals(cells)[["row", "layer", "numerator"]].equals(rationals[["row", "layer", "numerator"]])
        moved = cells.assign(adapter=str(tmp_path / "elsewhere" / "adapter"))   # a result copied from another cache
        with pytest.raises(UserError, match="elsewhere.*--fresh"):
            module.rationals(moved)
    execute_notebook(f"{name}.ipynb", out, tmp_path)
    assert any(p.name.startswith(name) for p in (tmp_path / "figures").iterdir())


def test_protocol_pilot_smoke_reports_the_noise_of_each_protocol(tmp_path):
    from experiments import pilot_protocol
    cells = pilot_protocol.main(["--profile", "smoke", "--out-dir", str(tmp_path)])
    noise = pd.read_csv(tmp_path / "pilot_protocol_noise.csv")
    (row,) = noise.itertuples()
    assert row.protocol == "60 steps" and row.n_seeds == 2 and row.ci_low <= row.diff <= row.ci_high
    assert row.compute_h == pytest.approx(cells.cell_wall_s.sum() / 3600)
    # 10 compute hours buy thousands of these seconds-long seeds: the seeds' share of the noise vanishes, the test
    # examples' share stays
    assert row.half_width_in_10_compute_h == pytest.approx(row.example_half_width, rel=0.02, abs=1e-9)
    assert row.example_half_width <= row.half_width
    assert set(cells.precision) == {"fp32"} and row.precision == "fp32"


def test_reference_commonsense_smoke_and_notebook(tmp_path):
    from experiments import reference_commonsense
    out = tmp_path / "out"
    reference_commonsense.main(["--profile", "smoke", "--out-dir", str(out)])
    ordering = pd.read_csv(out / "reference_commonsense_ordering.csv")
    assert list(ordering.scope) == ["arc_easy", "piqa", "average"]
    assert ((ordering.pairs_ci_low <= ordering.pairs_in_published_order + 1e-9)
            & (ordering.pairs_in_published_order <= ordering.pairs_ci_high + 1e-9)).all()
    pairs = pd.read_csv(out / "reference_commonsense_pairs.csv")
    assert len(pairs) == 3 * 3 and set(pairs.verdict) <= {"holds", "flips", "not distinguishable"}
    beside = pd.read_csv(out / "reference_commonsense_beside.csv")
    rows = pd.read_csv(out / "reference_commonsense.csv")
    task = beside[beside.scope == "piqa"].set_index("method")
    # ours = the mean over seeds of each cell's test accuracy (every seed sees the same test examples)
    pd.testing.assert_series_equal(task.ours, rows[rows.task == "piqa"].groupby("row").test_metric.mean()
                                   .reindex(task.index), check_names=False)
    assert (task.published == reference_commonsense.PUBLISHED.loc[task.index, "piqa"]).all()
    assert sorted(task.published_rank) == [1, 2, 3] and task.published_rank["lora"] == 1   # lora > iapt > prefix
    execute_notebook("reference.ipynb", out, tmp_path)
    assert {p.name for p in (tmp_path / "figures").iterdir()} >= {"reference_commonsense.png",
                                                                  "reference_commonsense_pairs.png"}


def test_table2_smoke_and_notebook(tmp_path):
    from experiments import table2_instruct
    out = tmp_path / "out"
    table2_instruct.main(["--profile", "smoke", "--out-dir", str(out)])
    rows = pd.read_csv(out / "table2.csv")
    assert len(rows) == 3 * 2 * 3 and set(rows.task) == {"ni", "mmlu", "bbh"}
    assert rows.test_metric.between(0, 1).all() and (rows[rows.task == "mmlu"].n_test == 8).all()
    summary = pd.read_csv(out / "table2_summary.csv").set_index("row")
    assert {"iapt", "lora", "prefix_tuning", "zero-shot", "chance"} <= set(summary.index)
    assert pd.isna(summary.loc["chance", "ni"]) and 0 < summary.loc["chance", "mmlu"] <= 0.5
    check = pd.read_csv(out / "table2_crosscheck.csv")
    assert list(check.row) == ["zero-shot", "iapt seed 0"] and (check.disagreements <= 1).all()
    assert len(pd.read_csv(out / "table2_verdicts.csv"))
    table2_instruct.main(["--profile", "smoke", "--out-dir", str(out)])        # finished cells are reused
    assert pd.read_csv(out / "table2.csv")["test_metric"].tolist() == rows["test_metric"].tolist()
    execute_notebook("table2.ipynb", out, tmp_path)
    assert {"table2_bars.png", "table2_curves.png"} <= {p.name for p in (tmp_path / "figures").iterdir()}


def test_table2_backbone_probe_smoke(tmp_path):
    from experiments import table2_backbone
    table2_backbone.main(["--profile", "smoke", "--out-dir", str(tmp_path)])
    df = pd.read_csv(tmp_path / "table2_backbone.csv")
    assert len(df) == 1 and df.s_per_step.gt(0).all() and df.dev_rouge_l_untuned.between(0, 1).all()


def test_table2_paper_dry_run(capsys):
    from experiments import table2_instruct
    table2_instruct.main(["--profile", "paper", "--dry-run"])
    out = capsys.readouterr().out
    import re
    counts = dict(re.findall(r"^  (\w+) .*?([\d,]+) tunable parameters$", out, re.M))
    assert set(counts) == {"iapt", "lora", "prefix_tuning", "prompt_tuning", "idpg", "lpt", "adalora", "ia3"}
    assert all(int(c.replace(",", "")) > 0 for c in counts.values())
    assert "MT-Bench" in out and "not run" in out


def test_rows_with_different_seeds_are_compared_on_the_seeds_both_have():
    """A three-seed core row against a seed-0-only extended row pairs seed 0 with seed 0 (and nothing else)."""
    from iapt.harness.stats import compare_rows

    def cell(row, seed, scores):
        return {"row": row, "task": "ni", "seed": seed, "test_correct": " ".join(map(str, scores))}
    df = pd.DataFrame([cell("iapt", 0, [1, 1, 0, 0]), cell("iapt", 1, [0, 0, 0, 0]), cell("iapt", 2, [1, 1, 1, 1]),
                       cell("idpg", 0, [1, 1, 0, 0]), cell("lora", 1, [0, 0, 0, 0]), cell("lora", 2, [0, 0, 0, 0])])
    same = compare_rows(df, "iapt", "idpg")
    assert same["seeds"] == "0" and same["diff"] == same["ci_low"] == same["ci_high"] == 0.0
    lora = compare_rows(df, "iapt", "lora")   # seeds 1 and 2: IAPT's mean there is 0.5, LoRA's 0
    assert lora["seeds"] == "1 2" and lora["diff"] == pytest.approx(0.5)
    assert compare_rows(df, "iapt", "idpg", tasks=["mmlu"]) is None


def test_readme_tables_are_what_the_committed_csvs_render_to():
    """README numbers are never typed by hand: every table block is the render of its CSV (a block whose CSV a
    run here is still rewriting, i.e. differs from git, is left out)."""
    import re
    import subprocess
    from scripts import render_readme_tables as render
    text, checked = render.page_text(), 0
    for name, (csv, target, table) in render.BLOCKS.items():
        paths = [f"results/{csv}", f"results/{csv[:-4]}.meta.json"]
        if subprocess.run(["git", "status", "--porcelain", "--", *paths], capture_output=True, text=True,
                          cwd=render.REPO).stdout.strip():
            continue
        block = re.search(rf"<!-- {name}:start -->\n(.*?)\n<!-- {name}:end -->", text, re.S)
        assert block, f"README lacks the block {name}"
        assert block.group(1) == render.render(csv, target, table), f"README block {name} is not its CSV's render"
        checked += 1
    assert checked >= len(render.BLOCKS) - 2


def test_a_grid_trained_on_several_machines_names_each_with_its_cell_count():
    from scripts.render_readme_tables import trained_on
    mixed = {"device": "cpu: B", "cell_devices": {"cpu: A": 66, "cpu: B": 9}}
    assert trained_on(mixed) == "cells trained on cpu: A (66 cells); cpu: B (9 cells)"
    assert trained_on({"device": "cpu: B", "cell_devices": {"cpu: B": 3}}) == "cells trained on cpu: B"
    assert trained_on({"device": "cpu: B"}) == "cpu: B"      # tables written before cells recorded their machine


def test_what_would_decide_a_verdict_names_seeds_or_test_examples():
    from scripts.render_readme_tables import decide_cell
    nan, inf = float("nan"), float("inf")
    row = {"example_half_width": 0.023, "n_examples": 305}
    assert decide_cell({**row, "seeds_to_decide": nan, "examples_to_decide": nan}) == "–"   # decided
    assert decide_cell({**row, "seeds_to_decide": 9.0, "examples_to_decide": inf}) == "≈ 9 seeds"
    assert decide_cell({**row, "seeds_to_decide": inf, "examples_to_decide": 1200.0}) == \
        "≈ 1,200 test examples (now 305, example noise alone ± 0.023)"
    assert decide_cell({**row, "seeds_to_decide": 9.0, "examples_to_decide": 1200.0}).startswith("≈ 9 seeds or ≈ 1,200")
    assert decide_cell({**row, "seeds_to_decide": inf, "examples_to_decide": inf}) == \
        "more seeds and more test examples together"
    assert decide_cell({"example_half_width": 0.023, "seeds_to_decide": inf}).startswith("more test examples")   # older


def test_table1_pools_its_verdicts_over_the_informative_tasks_with_seed_variance():
    """The pooled verdict averages only the tasks where methods have room to separate (informative) and where the
    pair has at least two seeds: a non-informative task or a one-seed screen task would otherwise enter it, the
    latter bringing the whole pool down to one seed."""
    import numpy as np
    from experiments import table1_glue
    from iapt.harness.stats import informative_tasks
    rng, rows = np.random.default_rng(0), []
    for task, seeds, accuracy in (("wide", 3, 0.9), ("also_wide", 3, 0.8), ("flat", 3, 0.52), ("screen", 1, 0.9)):
        for row in ("iapt", "lora"):
            for seed in range(seeds):
                correct = (rng.random(200) < accuracy).astype(int)
                rows.append({"row": row, "task": task, "seed": seed, "n_test": 200, "precision": "fp32",
                             "test_metric": correct.mean(), "test_correct": " ".join(map(str, correct)),
                             "cell": f"{row}-{task}-{seed}"})
    df = pd.DataFrame(rows)
    floors = {t: {"chance": 0.5} for t in ("wide", "also_wide", "flat", "screen")}
    found = table1_glue.verdicts(df, informative_tasks(df, floors)).set_index("scope")
    assert found.loc["pooled", "tasks"] == "also_wide wide" and found.loc["pooled", "n_seeds"] == 3
    assert found.loc["screen", "n_seeds"] == 1 and set(found.index) == {"wide", "also_wide", "flat", "screen", "pooled"}
