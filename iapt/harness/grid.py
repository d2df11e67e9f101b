"""Run a grid of cells (method × task × seed, plus per-row options) and keep its CSVs current.

The learning rate is searched on the first seed of each (row, task) on the dev split; the other seeds train
at the chosen rate (recorded as `lr_source`), so every method gets the same number of trials. After each
cell the table's CSVs are rewritten from every cell so far (write, then rename): an interrupted grid loses at
most the cell in progress, and that cell itself resumes from its last checkpoint.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..errors import UserError
from ..precision import default_device, in_effect
from ..training.cell import CellResult, CellSpec, RunContext, prepare
from ..training.config import TrainConfig
from .runinfo import CODE_AT_START, RESULTS, write_results
from .stats import FLOORS
from .store import CellStore, precision_in_effect


@dataclass
class Row:
    """One row of a table: a method with its options (and training overrides), under a display name."""
    name: str
    method: str
    options: dict = field(default_factory=dict)
    size: int | None = None
    train: dict = field(default_factory=dict)     # TrainConfig fields that differ for this row (e.g. theta)
    lrs: tuple | None = None                      # the learning rates searched for this row (None: the grid's)


def cell_compute_s(wall: dict) -> float:
    """A cell's compute time across invocations: `wall["cell"]` counts only the invocation that finished it, so a
    cell resumed with a trial already trained would report less than its trials took; their parts are summed too."""
    return max(wall["cell"], wall["train"] + wall["dev_eval"] + wall["test_eval"])


def cell_row(row: Row, task: str, seed: int, result: CellResult, lr_source: str, profile: str) -> dict:
    chosen = result["trials"][f"{result['chosen_lr']:g}"]
    return {"row": row.name, "method": row.method, "task": task, "seed": seed, "backbone": result["spec"]["backbone"],
            "profile": profile, "trainable_params": result["trainable_params"],
            "size": f"{result['size_name']}={result['size']}" if result["size_name"] else "",
            "chosen_lr": result["chosen_lr"], "lr_source": lr_source, "dev_metric": result["dev_metric"],
            "test_metric": result["test_metric"], "n_test": result["test"]["n"], "best_step": chosen["best_step"],
            "steps_run": chosen["steps_run"], "train_wall_s": round(result["wall_s"]["train"], 1),
            "cell_wall_s": round(cell_compute_s(result["wall_s"]), 1), "code_version": result["code_version"],
            "device": result["meta"]["device"],   # where the cell was trained (resumed grids can mix machines)
            "precision": precision_in_effect(result.record),   # training and evaluation (iapt.precision)
            "test_correct": " ".join(f"{c:g}" for c in result["test_correct"]),
            "theta_drift": " ".join(f"{k}:{v:.4f}" for k, v in chosen.get("theta_drift", {}).items()),
            "adapter": result["adapter"]}


def curve_rows(row: Row, task: str, seed: int, result: dict) -> list[dict]:
    out = []
    for lr, trial in result["trials"].items():
        out += [{"row": row.name, "task": task, "seed": seed, "lr": float(lr), "kind": "dev_metric", "step": s, "value": v}
                for s, v in zip(trial["dev_step"], trial["dev_metric"])]
        out += [{"row": row.name, "task": task, "seed": seed, "lr": float(lr), "kind": "train_loss", "step": s, "value": v}
                for s, v in zip(trial["step"], trial["train_loss"])]
    return out


@dataclass
class GridRun:
    """What every cell of one table invocation shares: where cells are kept, how they run, the profile's settings."""
    store: CellStore
    ctx: RunContext
    backbone: str
    train: TrainConfig
    lrs: tuple
    profile: str
    n: dict = field(default_factory=dict)    # n_train / n_dev / n_test caps
    data: str = "embedded"
    fresh: bool = False
    budget: int | str | None = "iapt"

    def spec(self, row: Row, task: str, seed: int, lrs: tuple) -> CellSpec:
        return CellSpec(row.method, task, self.backbone, TrainConfig(**{**self.train.to_dict(), **row.train, "seed": seed}),
                        tuple(lrs), self.budget if row.size is None else None, row.size, dict(row.options),
                        data=self.data, **self.n)


def run_or_restore(run: GridRun, spec: CellSpec) -> CellResult:
    """The cell, trained or found finished; where its task's data cannot be read (the BIG-bench archive missing),
    its committed record, or one message."""
    if bigbench_available() or not reads_bigbench([spec.task]):
        return run.store.run(prepare(spec), run.ctx, run.fresh)
    found = None if run.fresh else run.store.find_unsized(
        unsized_key(spec), {"train": spec.n_train, "dev": spec.n_dev, "test": spec.n_test})
    if found is None:
        refuse_without_bigbench([spec.task], f" No committed record holds {spec.method} on {spec.task}, seed "
                                             f"{spec.train.seed}, learning rates {list(spec.lrs)}.")
    return found


def unrecorded_cells(store: CellStore, plan: list, fresh: bool = False) -> list[tuple[str, str, int]]:
    """(row, task, seed) of the plan's cells that no committed record holds, matched on method, size, options,
    task and seed at this code version or an accepted one (the rest is matched when the cell is reached); with
    `fresh`, every cell."""
    versions = {CODE_AT_START, *store.accepted}
    held = {(k["method"], k["size"], json.dumps(k["options"], sort_keys=True), k["task"], k["train"]["seed"])
            for k in store.recorded_keys().values() if k["code"] in versions}
    return [(row.name, task, seed) for rows, tasks, seeds in plan for row in rows for task in tasks for seed in seeds
            if fresh or (row.method, row.size, json.dumps(row.options, sort_keys=True), task, seed) not in held]


def unsized_key(spec: CellSpec) -> dict:
    """A cell's key as iapt.training.cell.prepare writes it, less what only the data and the backbone's weights
    tell: the split sizes, and the default budget (IAPT's size on this backbone, fixed by backbone and code)."""
    return {"method": spec.method, "task": spec.task, "data": spec.data, "backbone": spec.backbone,
            "budget": None if spec.budget == "iapt" else spec.budget, "size": spec.size,
            "options": dict(spec.options), "lrs": list(spec.lrs),
            "train": {**spec.train.to_dict(), "lr": None, "precision": in_effect(default_device(), spec.train.precision)},
            "code": CODE_AT_START}


def run_grid(run: GridRun, rows: list[Row], tasks: list[str], seeds: list[int], on_cell=None,
             also_test=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every (row, task, seed) cell in order; returns the rows and learning-curve DataFrames. Each finished
    cell's JSON files (result and evaluations) are kept in the run's record store, which resumes it.

    `on_cell(rows_df, curves_df)` is called after every cell trained now (not after one found finished) with
    everything so far.
    `also_test(result)`, when given, scores the cell's tuned model on further tasks: it returns one dict per
    task ({"task", "test_metric", "n_test", "test_correct"}), each added as a row beside the cell's own."""
    rows_so_far, curves = [], []
    # Seed-major: the first seed of every row and task (with its lr search) comes first, so a run cut short
    # still holds a complete one-seed comparison; later seeds reuse the learning rate chosen there.
    plan = [(r, t, s) for s in seeds for r in rows for t in tasks]
    chosen: dict[tuple, float] = {}
    # smoothing=0: the ETA is the mean rate of the cells computed in this run (restored cells left out below)
    bar = tqdm(total=len(plan), desc="cells", unit="cell", smoothing=0)
    for row, task, seed in plan:
        bar.set_postfix_str(f"{row.name} {task} seed {seed}")
        started, first = time.time(), (row.name, task) not in chosen
        searched = row.lrs or run.lrs
        result = run_or_restore(run, run.spec(row, task, seed, searched if first else (chosen[row.name, task],)))
        chosen.setdefault((row.name, task), result["chosen_lr"])
        record = cell_row(row, task, seed, result, "searched" if first else f"seed {seeds[0]}", run.profile)
        further = also_test(result) if also_test else []        # (its evaluations are kept with the cell)
        record["cell"] = run.store.keep(result)   # where its record is (the cache's name without a record store)
        rows_so_far += [record] + [{**record, **extra} for extra in further]
        curves += curve_rows(row, task, seed, result)
        bar.update(1)
        if time.time() - started < 0.5 * result["wall_s"]["cell"]:
            # restored from its record in seconds (computing it took minutes): leave it out of the ETA's rate,
            # which tqdm takes as (n - initial) / (now - start_t), or resumed runs promise the rest at that speed
            bar.initial += 1
            bar.start_t += time.time() - started
        if on_cell is not None and not result.reused:
            on_cell(pd.DataFrame(rows_so_far), pd.DataFrame(curves))
    bar.close()
    return pd.DataFrame(rows_so_far), pd.DataFrame(curves)


def summarize(df: pd.DataFrame, floors: pd.DataFrame | None = None) -> pd.DataFrame:
    """Methods as rows, tasks as columns: the median over seeds, its spread (max − min), the seeds counted,
    an average over tasks and the tunable parameters; floors (zero-shot, majority, chance) appended."""
    grouped = df.groupby(["row", "task"])["test_metric"]
    med, spread, count = grouped.median().unstack(), (grouped.max() - grouped.min()).unstack(), grouped.size().unstack()
    order = list(dict.fromkeys(df["row"]))
    tasks = list(dict.fromkeys(df["task"]))
    out = pd.DataFrame({"row": order})
    out["trainable_params"] = [int(df[df.row == r]["trainable_params"].iloc[0]) for r in order]
    for t in tasks:
        out[t] = [med.loc[r, t] if t in med.columns else float("nan") for r in order]
        out[f"{t}_spread"] = [spread.loc[r, t] if t in spread.columns else float("nan") for r in order]
        out[f"{t}_seeds"] = [int(count.loc[r, t]) if t in count.columns and pd.notna(count.loc[r, t]) else 0 for r in order]
    out["average"] = out[tasks].mean(axis=1, skipna=False)
    out["code_versions"] = [" ".join(sorted(set(df[df.row == r]["code_version"]))) for r in order]
    if floors is not None and len(floors):
        floor_rows = []
        for method in [m for m in FLOORS if m in set(floors.method)]:
            f = floors[floors.method == method].set_index("task")["metric"]
            rec = {"row": method, "trainable_params": 0, **{t: f.get(t, float("nan")) for t in tasks}}
            rec["average"] = pd.Series([rec[t] for t in tasks]).mean(skipna=False)
            floor_rows.append(rec)
        out = pd.concat([out, pd.DataFrame(floor_rows)], ignore_index=True)
    return out


def floor_values(floors: pd.DataFrame | None) -> dict:
    """task -> {floor kind: metric}, plain values for a frame's attrs (which pandas compares when it concatenates)."""
    if floors is None:
        return {}
    return {task: dict(zip(g.method, g.metric.astype(float))) for task, g in floors.groupby("task")}


@dataclass
class TableScript:
    """A table script's hooks (its profiles give the plan: `stages`, [(rows, tasks, seeds), ...]). `extras(df)` gives further CSVs ({suffix: DataFrame}); `dry_run(profile)` adds --dry-run;
    `metadata(profile)` adds to the run's metadata; `also_test(profile, backbone)` gives run_grid's `also_test`;
    `floors(profile, backbone, store)` gives the floor rows (task, method, metric) the summary appends;
    `reference` ({"train": …, "lrs": …}) are the settings cell folders are named against (iapt.harness.store)."""
    table: str
    doc: str
    script: str
    extras: object = None
    dry_run: object = None
    metadata: object = None
    also_test: object = None
    floors: object = None
    reference: dict | None = None


def processor_drift(path: Path = RESULTS / "processor_drift.csv") -> dict[str, float]:
    """task -> the largest |Δ test metric| of a cell trained at fp32 on two processor kinds (experiments/processor_drift.py)."""
    if not path.exists():
        return {}
    drift = pd.read_csv(path)
    return {t: float(g["delta"].abs().max()) for t, g in drift.groupby("task")}


def publish(table: str, out_dir: Path, df: pd.DataFrame, curves: pd.DataFrame, meta: dict, floors, extras,
            allow_mixed_precision: bool = False) -> list[str]:
    """Write <table>.csv, _curves.csv, _summary.csv and the extras from every cell so far; the extras' names.
    A verdict whose cells ran at different precisions is refused (iapt.harness.stats.mixed_precision) unless
    `allow_mixed_precision`."""
    cells = df.drop_duplicates("cell")      # also_test adds rows that share their cell
    meta = {**meta, "code_versions": sorted(set(df["code_version"])), "mixed_code_versions": df["code_version"].nunique() > 1,
            # compute time of the table's cells, whichever invocation (or session) ran them
            "cells_wall_s": round(float(cells["cell_wall_s"].sum()), 1),
            # the machines that trained the cells, with how many each: `device` above is only this invocation's
            "cell_devices": cells["device"].value_counts().to_dict(),
            "cell_precisions": cells["precision"].value_counts().to_dict(), "allow_mixed_precision": allow_mixed_precision}
    # the adapter's path is this machine's cache: in memory for the extras, not in the committed table
    write_results(df.drop(columns="adapter"), out_dir / f"{table}.csv", meta)
    write_results(curves, out_dir / f"{table}_curves.csv", meta)
    write_results(summarize(df, floors), out_dir / f"{table}_summary.csv", meta)
    # read by the verdicts (iapt.harness.stats)
    df.attrs.update(allow_mixed_precision=allow_mixed_precision, processor_drift=processor_drift(),
                    floors=floor_values(floors))
    extra = extras(df) if extras else {}
    for suffix, frame in extra.items():
        write_results(frame, out_dir / f"{table}_{suffix}.csv", meta)
    return list(extra)


def run_stages(run: GridRun, script: TableScript, stages: list, out_dir: Path, metadata: dict, floors, also_test,
               allow_mixed_precision: bool = False):
    """Run the stages in order; after every cell trained, rewrite the table's CSVs from every cell so far, each with
    metadata that says how many of the planned cells are done (an interrupted run leaves a complete, smaller table)."""
    # stages may share cells (a later stage adds seeds to an earlier one's): each cell counts, and is a row, once
    planned = len({(r.name, t, s) for rows, tasks, seeds in stages for r in rows for t in tasks for s in seeds})
    frames, curve_frames, t0, written = [], [], time.time(), []

    def write(row_frames: list, curve_parts: list) -> pd.DataFrame:
        rows = pd.concat(row_frames, ignore_index=True).drop_duplicates(["row", "task", "seed"], ignore_index=True)
        curves = pd.concat(curve_parts, ignore_index=True).drop_duplicates(
            ["row", "task", "seed", "lr", "kind", "step"], ignore_index=True)
        meta = {**metadata, "cells_done": rows["cell"].nunique(), "cells_planned": planned,
                "wall_s_this_invocation": round(time.time() - t0, 1),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        written[:] = publish(script.table, out_dir, rows, curves, meta, floors, script.extras, allow_mixed_precision)
        return rows

    def on_cell(cell_rows: pd.DataFrame, curves: pd.DataFrame) -> None:
        write(frames + [cell_rows], curve_frames + [curves])

    numbers = metadata.get("stages", {}).get("run") or range(len(stages))   # the profile's own stage numbers
    for i, (rows, tasks, seeds) in zip(numbers, stages):
        print(f"stage {i}: {len(rows)} rows × {len(tasks)} tasks × {len(seeds)} seeds")
        cell_rows, curves = run_grid(run, rows, tasks, seeds, on_cell=on_cell, also_test=also_test)
        frames.append(cell_rows)
        curve_frames.append(curves)
    df = write(frames, curve_frames)   # when every cell was found finished, the only write (a no-op if unchanged)
    summary = pd.read_csv(out_dir / f"{script.table}_summary.csv")
    print(summary[[c for c in summary.columns if not c.endswith(("_spread", "_seeds", "code_versions"))]].to_string(index=False))
    if df["code_version"].nunique() > 1:
        print(f"note: {script.table} mixes code versions (see code_versions)")
    if df["precision"].nunique() > 1:
        print(f"note: {script.table}'s cells ran at different precisions ({', '.join(sorted(set(df['precision'])))}): "
              + ("verdicts written anyway (--allow-mixed-precision)" if allow_mixed_precision else
                 "a verdict over cells of more than one precision is refused (retrain them at one, or pass "
                 "--allow-mixed-precision)"))
    print(f"results: {out_dir / (script.table + '.csv')} and its _summary, _curves" + "".join(f", _{s}" for s in written)
          + " (files whose content did not change are left as they were)")
    return df


def table_cli(doc: str, profiles: dict, argv=None, dry_run: bool = False):
    """The flags every table script shares; returns (args, profile dict, backbone, output folder)."""
    from .scriptargs import chosen_profile, profile_parser
    ap = profile_parser(doc, profiles)
    ap.add_argument("--fresh", action="store_true", help="retrain finished cells, cached or recorded in git (cells/)")
    ap.add_argument("--reuse-code-version", action="append", default=[], metavar="HASH",
                    help="also reuse cells finished with the same settings at this older code version (repeatable; "
                         "for a change to iapt/ known not to touch them; the table then lists both versions)")
    ap.add_argument("--backbone", help="override the profile's backbone (a local folder or hub id)")
    ap.add_argument("--stages", type=int, nargs="+", metavar="I",
                    help="run only these stages of the profile's plan (0 = the first; e.g. Table 1's core grid: --stages 0)")
    ap.add_argument("--allow-mixed-precision", action="store_true",
                    help="write verdicts even over cells trained at different precisions (by default refused: the "
                         "difference could be the precision's)")
    if dry_run:
        ap.add_argument("--dry-run", action="store_true", help="print the plan and parameter counts, run nothing")
    args = ap.parse_args(argv)
    prof, out_dir = chosen_profile(args, profiles)
    return args, prof, args.backbone or prof["backbone"], out_dir


def accepted_code_versions(prof: dict, args) -> tuple[str, ...]:
    """Older code versions whose finished cells this run reuses: the profile's `reuse_code_versions` (with the
    reason in experiments/shared.yaml) and --reuse-code-version; none with --fresh."""
    return () if args.fresh else tuple(prof.get("reuse_code_versions", ())) + tuple(args.reuse_code_version)


# Sources read from the BIG-bench 1.0.0 archive: Table 1's BIG-bench tasks, Table 2's NI and BBH-style tasks.
BIGBENCH_SOURCES = ("bigbench:", "instruct:ni", "instruct:bbh")


def bigbench_available() -> bool:
    """The archive is downloaded, or the folders read from it are extracted (iapt.data.bigbench.bigbench_dir)."""
    from ..backbones import cache_dir
    from ..data.bigbench import ARCHIVE, extracted_folders
    marker = cache_dir() / "bigbench" / ".complete"
    return (cache_dir() / "downloads" / ARCHIVE).exists() or (marker.exists() and
                                                              marker.read_text().split() == extracted_folders())


def reads_bigbench(task_names) -> list[str]:
    from ..data.tasks import get_task
    return [t for t in task_names if get_task(t).source.startswith(BIGBENCH_SOURCES)]


def refuse_without_bigbench(task_names: list[str], hint: str = "") -> None:
    """One clear message before anything trains, not a failure hours later, when a task of the plan reads the
    BIG-bench archive and it is neither extracted nor downloaded. (PyPI stopped listing bigbench 1.0.0 on
    2026-12-06, so a new machine may have no way to fetch it; docs/data.md says what that leaves runnable.)"""
    from ..backbones import cache_dir
    from ..data.bigbench import ARCHIVE
    needing = reads_bigbench(task_names)
    if needing and not bigbench_available():
        raise UserError(
            f"{', '.join(needing)} read(s) the BIG-bench 1.0.0 source archive, which is not at "
            f"{cache_dir() / 'downloads' / ARCHIVE}: "
            f"`make setup` downloads it from PyPI, which no longer lists it (since 2026-12-06). With a copy of "
            f"{ARCHIVE}, `.venv/bin/python -m scripts.fetch_bigbench --from PATH` checks its sha256 and puts it in "
            f"place. The committed results that used it stay in results/; docs/data.md, 'When the BIG-bench "
            f"archive is missing', says what runs without it." + hint)


def select_stages(plan: list, wanted: list[int] | None, profile: str, meta: dict) -> list:
    if wanted is None:
        return plan
    if not all(0 <= i < len(plan) for i in wanted):
        raise UserError(f"--stages: profile {profile} has stages 0 to {len(plan) - 1}, not {wanted}")
    meta["stages"] = {"run": sorted(set(wanted)), "in_profile": len(plan)}
    return [plan[i] for i in meta["stages"]["run"]]


def run_table(script: TableScript, profiles: dict, argv=None):
    """A table script's whole main: flags, the profile's training settings and metadata, then its stages.
    Only the cpu profile, whose CSVs are the committed results, records its cells in git (cells/ beside them):
    the quick profile is a first look that should really run, and smoke output is temporary."""
    from ..backbones import cache_dir
    from .runinfo import run_metadata
    args, prof, backbone, out_dir = table_cli(script.doc, profiles, argv, dry_run=script.dry_run is not None)
    if script.dry_run is not None and args.dry_run:
        return script.dry_run(prof)
    cfg = TrainConfig(**prof["train"])
    records = out_dir / "cells" if args.profile == "cpu" else None
    cache = out_dir / "cells" if args.profile == "smoke" else cache_dir() / "runs"
    store = CellStore(cache, records, accepted_code_versions(prof, args), script.reference,
                      prof.get("reuse_not_for", {}))
    stages_meta: dict = {}
    plan = select_stages(prof["stages"], args.stages, args.profile, stages_meta)
    if prof.get("data", "embedded") == "embedded" and not bigbench_available():
        # refuse now, not after hours of other tasks' cells: without the archive only committed records serve
        missing = sorted({t for _, t, _ in unrecorded_cells(store, plan, args.fresh) if reads_bigbench([t])})
        without = [i for i, (_, tasks, _) in enumerate(prof["stages"]) if not reads_bigbench(tasks)]
        refuse_without_bigbench(missing, (" Their cells in this plan have no committed record to rebuild the table from."
                                          + (f" Stages that run without it: --stages {' '.join(map(str, without))}."
                                             if without else "")))
    extra = script.metadata(prof) if callable(script.metadata) else (script.metadata or {})
    meta = run_metadata(profile=args.profile, backbone=backbone, train=cfg.to_dict(), lrs=list(prof["lrs"]),
                        precision=in_effect(default_device(), cfg.precision),   # of the cells trained in this invocation
                        data=prof["n"], data_source=prof.get("data", "embedded"), script=script.script, **extra,
                        **stages_meta)
    cells = sum(len(rows) * len(tasks) * len(seeds) for rows, tasks, seeds in plan)
    print(f"{script.table}, profile {args.profile}: {cells} cells on {backbone}, {len(prof['lrs'])} learning-rate "
          f"trial(s) on the first seed of each; {prof.get('expected', 'duration not measured yet')}. Finished cells "
          f"are reused; rerun the same command to resume. Output: {out_dir}")
    run = GridRun(store, RunContext(), backbone, cfg, tuple(prof["lrs"]), args.profile, dict(prof["n"]),
                  prof.get("data", "embedded"), args.fresh)
    floors = script.floors(prof, backbone, store) if script.floors else None
    also_test = script.also_test(prof, backbone) if script.also_test else None
    return run_stages(run, script, plan, out_dir, meta, floors, also_test, args.allow_mixed_precision)
