"""Run a grid of cells (method × task × seed, plus per-row options) and keep its CSVs current.

The learning rate is searched on the first seed of each (row, task) on the dev split; the other seeds train
at the chosen rate (recorded as `lr_source`), so every method gets the same number of trials. After each
cell the table's CSVs are rewritten from every cell so far (write, then rename): an interrupted grid loses at
most the cell in progress, and that cell itself resumes from its last checkpoint.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from . import records
from .engine import TrainConfig
from .errors import UserError
from .runinfo import write_results
from .train import run_cell

# One training budget for the cpu profiles of Tables 1, 3 and 4 and the reference, so their rows compare; sized
# for a 2-core CPU (the README gives the measured totals). lr 1e-4 is not searched: at 200 steps on sst2 it was
# the worst trial for both IAPT and LoRA (results/engine_acceptance.csv), and each trial costs a full training.
CPU_LRS = (1e-3, 1e-2)
CPU_TRAIN = dict(steps=60, batch_size=8, eval_every=20, patience=None, max_length=256)
CPU_N = dict(n_dev=100)
# Code versions whose committed cells at these settings the cpu-settings profiles (Tables 1, 3, 4, reference)
# reuse: Table 1's grid ran at c607fb94e7 (IAPT's seed-0 cells on sst2 and rte at 922da5447c). The changes since
# touch no cell's numbers: Table 2's floors take the accepted versions from run_table; grid.py and records.py left
# the code version; a rational's final coefficients added to the result; generators built on the backbone's
# device (a no-op on CPU).
CPU_CELL_VERSIONS = ("922da5447c", "c607fb94e7")


@dataclass
class Row:
    """One row of a table: a method with its options (and training overrides), under a display name."""
    name: str
    method: str
    options: dict = field(default_factory=dict)
    size: int | None = None
    train: dict = field(default_factory=dict)     # TrainConfig fields that differ for this row (e.g. theta)


def cell_compute_s(wall: dict) -> float:
    """A cell's compute time across invocations: `wall["cell"]` counts only the invocation that finished it, so a
    cell resumed with a trial already trained would report less than its trials took; their parts are summed too."""
    return max(wall["cell"], wall["train"] + wall["dev_eval"] + wall["test_eval"])


def cell_row(row: Row, task: str, seed: int, result: dict, lr_source: str, profile: str) -> dict:
    chosen = result["trials"][f"{result['chosen_lr']:g}"]
    return {"row": row.name, "method": row.method, "task": task, "seed": seed, "backbone": result["spec"]["backbone"],
            "profile": profile, "trainable_params": result["trainable_params"],
            "size": f"{result['size_name']}={result['size']}" if result["size_name"] else "",
            "chosen_lr": result["chosen_lr"], "lr_source": lr_source, "dev_metric": result["dev_metric"],
            "test_metric": result["test_metric"], "n_test": result["test"]["n"], "best_step": chosen["best_step"],
            "steps_run": chosen["steps_run"], "train_wall_s": round(result["wall_s"]["train"], 1),
            "cell_wall_s": round(cell_compute_s(result["wall_s"]), 1), "code_version": result["code_version"],
            "device": result["meta"]["device"],   # where the cell was trained (resumed grids can mix machines)
            "test_correct": " ".join(f"{c:g}" for c in result["test_correct"]),
            "theta_drift": " ".join(f"{k}:{v:.4f}" for k, v in chosen.get("theta_drift", {}).items()),
            "cell": result["cell"], "adapter": result["adapter"]}


def curve_rows(row: Row, task: str, seed: int, result: dict) -> list[dict]:
    out = []
    for lr, trial in result["trials"].items():
        out += [{"row": row.name, "task": task, "seed": seed, "lr": float(lr), "kind": "dev_metric", "step": s, "value": v}
                for s, v in zip(trial["dev_step"], trial["dev_metric"])]
        out += [{"row": row.name, "task": task, "seed": seed, "lr": float(lr), "kind": "train_loss", "step": s, "value": v}
                for s, v in zip(trial["step"], trial["train_loss"])]
    return out


def run_grid(rows: list[Row], tasks: list[str], seeds: list[int], *, backbone: str, train_cfg: TrainConfig, lrs,
             profile: str, on_cell=None, budget="iapt", n: dict | None = None, cells_dir: Path | None = None,
             fresh: bool = False, also_test=None, data: str = "embedded",
             reuse_code_versions: tuple[str, ...] = (), record_store: Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every (row, task, seed) cell in order; returns the rows and learning-curve DataFrames. Each finished
    cell's JSON files (result and evaluations) are kept in `record_store` (`iapt.records`), which resumes it.

    `on_cell(rows_df, curves_df, cells_done)` is called after every cell with everything so far.
    `also_test(result)`, when given, scores the cell's tuned model on further tasks: it returns one dict per
    task ({"task", "test_metric", "n_test", "test_correct"}), each added as a row beside the cell's own."""
    rows_so_far, curves = [], []
    # Seed-major: the first seed of every row and task (with its lr search) comes first, so a run cut short
    # still holds a complete one-seed comparison; later seeds reuse the learning rate chosen there.
    plan = [(r, t, s) for s in seeds for r in rows for t in tasks]
    chosen: dict[tuple, float] = {}
    # smoothing=0: the ETA is the mean rate of the cells computed in this run (restored cells left out below)
    bar = tqdm(total=len(plan), desc="cells", unit="cell", smoothing=0)
    for done, (row, task, seed) in enumerate(plan, 1):
        bar.set_postfix_str(f"{row.name} {task} seed {seed}")
        started = time.time()
        key = (row.name, task)
        first = key not in chosen
        cell_lrs = tuple(lrs) if first else (chosen[key],)
        out_dir = cells_dir / re.sub(r"[^\w.-]+", "_", f"{row.name}-{task}-seed{seed}") if cells_dir else None
        result = run_cell(row.method, task, backbone,
                          train_cfg=TrainConfig(**{**train_cfg.to_dict(), **row.train, "seed": seed}),
                          lrs=cell_lrs, budget=budget if row.size is None else None, size=row.size,
                          options=row.options, out_dir=out_dir, fresh=fresh, data=data,
                          reuse_code_versions=reuse_code_versions, record_store=record_store, **(n or {}))
        if first:
            chosen[key] = result["chosen_lr"]
        record = cell_row(row, task, seed, result, "searched" if first else f"seed {seeds[0]}", profile)
        rows_so_far.append(record)
        rows_so_far += [{**record, **extra} for extra in (also_test(result) if also_test else [])]
        records.keep(result["cell"], Path(result["adapter"]).parent, record_store)
        curves += curve_rows(row, task, seed, result)
        bar.update(1)
        if time.time() - started < 0.5 * result["wall_s"]["cell"]:
            # restored from its record in seconds (computing it took minutes): leave it out of the ETA's rate,
            # which tqdm takes as (n - initial) / (now - start_t), or resumed runs promise the rest at that speed
            bar.initial += 1
            bar.start_t += time.time() - started
        if on_cell is not None:
            on_cell(pd.DataFrame(rows_so_far), pd.DataFrame(curves), done)
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
        for method in [m for m in ("zero-shot", "majority-class", "chance") if m in set(floors.method)]:
            f = floors[floors.method == method].set_index("task")["metric"]
            rec = {"row": method, "trainable_params": 0, **{t: f.get(t, float("nan")) for t in tasks}}
            rec["average"] = pd.Series([rec[t] for t in tasks]).mean(skipna=False)
            floor_rows.append(rec)
        out = pd.concat([out, pd.DataFrame(floor_rows)], ignore_index=True)
    return out


def run_stages(table: str, stages: list[tuple[list[Row], list[str], list[int]]], *, backbone: str, train_cfg: TrainConfig,
               lrs, n: dict, out_dir: Path, metadata: dict, profile: str, fresh: bool = False, smoke: bool = False,
               extras=None, also_test=None, floors: pd.DataFrame | None = None, data: str = "embedded",
               reuse_code_versions: tuple[str, ...] = (), record_store: Path | None = None) -> pd.DataFrame:
    """Run the stages in order (finished cells recorded in `record_store`, see `run_grid`); after every cell,
    rewrite <table>.csv, _curves.csv, _summary.csv and whatever
    `extras(df)` returns ({suffix: DataFrame}) from every cell so far, each with metadata that says how many of
    the planned cells are done and which code versions they mix (an interrupted run leaves a complete, smaller table).
    `floors` (task, method, metric rows) replaces the zero-shot / majority / chance rows of results/zeroshot.csv."""
    from .runinfo import RESULTS
    if floors is None and (RESULTS / "zeroshot.csv").exists():
        floors = pd.read_csv(RESULTS / "zeroshot.csv")
        floors = floors[(floors.backbone == backbone) & (floors.split == "test")]
    planned = sum(len(rows) * len(tasks) * len(seeds) for rows, tasks, seeds in stages)
    frames, curve_frames, extra_names, t0 = [], [], [], time.time()
    done_before = 0

    def publish(cell_rows: pd.DataFrame, curves: pd.DataFrame, done: int) -> None:
        df = pd.concat(frames + [cell_rows], ignore_index=True)
        cells = df.drop_duplicates("cell")      # also_test adds rows that share their cell
        meta = {**metadata, "code_versions": sorted(set(df["code_version"])),
                "mixed_code_versions": df["code_version"].nunique() > 1, "cells_done": done_before + done,
                "cells_planned": planned, "wall_s_this_invocation": round(time.time() - t0, 1),
                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                # compute time of the table's cells, whichever invocation (or session) ran them
                "cells_wall_s": round(float(cells["cell_wall_s"].sum()), 1),
                # the machines that trained the cells, with how many each: `device` above is only this invocation's
                "cell_devices": cells["device"].value_counts().to_dict()}
        write_results(df, out_dir / f"{table}.csv", meta)
        write_results(pd.concat(curve_frames + [curves], ignore_index=True), out_dir / f"{table}_curves.csv", meta)
        write_results(summarize(df, floors), out_dir / f"{table}_summary.csv", meta)
        for suffix, extra in (extras(df) if extras else {}).items():
            write_results(extra, out_dir / f"{table}_{suffix}.csv", meta)
            if suffix not in extra_names:
                extra_names.append(suffix)

    for i, (rows, tasks, seeds) in enumerate(stages):
        print(f"stage {i}: {len(rows)} rows × {len(tasks)} tasks × {len(seeds)} seeds")
        cell_rows, curves = run_grid(rows, tasks, seeds, backbone=backbone, train_cfg=train_cfg, lrs=lrs, profile=profile,
                                   on_cell=publish, n=n, cells_dir=out_dir / "cells" if smoke else None, fresh=fresh,
                                   also_test=also_test, data=data, reuse_code_versions=reuse_code_versions,
                                   record_store=record_store)
        frames.append(cell_rows)
        curve_frames.append(curves)
        done_before += len(rows) * len(tasks) * len(seeds)
    df = pd.concat(frames, ignore_index=True)
    summary = pd.read_csv(out_dir / f"{table}_summary.csv")
    print(summary[[c for c in summary.columns if not c.endswith(("_spread", "_seeds", "code_versions"))]].to_string(index=False))
    if df["code_version"].nunique() > 1:
        print(f"note: {table} mixes code versions (see code_versions)")
    print(f"wrote {out_dir / (table + '.csv')} and its _summary, _curves" + "".join(f", _{s}" for s in extra_names))
    return df


def table_cli(doc: str, profiles: dict, argv=None, dry_run: bool = False):
    """The flags every table script shares; returns (args, profile dict, backbone, output folder)."""
    import argparse
    import tempfile

    from .errors import unknown
    from .runinfo import RESULTS
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help=f"one of {', '.join(profiles)}")
    ap.add_argument("--out-dir", type=Path, help="where the CSVs go (default: results/ for cpu, results/quick/ "
                    "for quick, a temporary folder for smoke)")
    ap.add_argument("--fresh", action="store_true", help="retrain finished cells, cached or recorded in git (cells/)")
    ap.add_argument("--reuse-code-version", action="append", default=[], metavar="HASH",
                    help="also reuse cells finished with the same settings at this older code version (repeatable; "
                         "for a change to iapt/ known not to touch them; the table then lists both versions)")
    ap.add_argument("--backbone", help="override the profile's backbone (a local folder or hub id)")
    ap.add_argument("--stages", type=int, nargs="+", metavar="I",
                    help="run only these stages of the profile's plan (0 = the first; e.g. Table 1's core grid: --stages 0)")
    if dry_run:
        ap.add_argument("--dry-run", action="store_true", help="print the plan and parameter counts, run nothing")
    args = ap.parse_args(argv)
    if args.profile not in profiles:
        raise unknown("profile", args.profile, profiles)
    prof = profiles[args.profile]
    default_out = {"cpu": RESULTS, "quick": RESULTS / "quick"}.get(args.profile)
    out_dir = args.out_dir or default_out or Path(tempfile.mkdtemp(prefix="iapt-smoke-"))
    return args, prof, args.backbone or prof["backbone"], out_dir


def per_example(df: pd.DataFrame, row: str) -> dict:
    """task -> (seeds, test examples) per-example scores of one row."""
    return {task: [[float(x) for x in v.split()] for v in g.sort_values("seed")["test_correct"]]
            for task, g in df[df.row == row].groupby("task")}


def compare_rows(df: pd.DataFrame, a: str, b: str, margin: float = 0.0, tasks: list[str] | None = None) -> dict | None:
    """Row a − row b over the tasks both have (or `tasks`): paired bootstrap over test examples and the seeds both
    rows have on that task (a three-seed core row against a seed-0-only extended row: seed 0), and its verdict."""
    from .stats import paired_bootstrap, verdict
    sa, sb, seeds = {}, {}, set()
    for task in tasks or sorted(set(df[df.row == a].task)):
        on_task = df[df.task == task]
        shared = set(on_task[on_task.row == a].seed) & set(on_task[on_task.row == b].seed)
        if shared:
            paired = on_task[on_task.seed.isin(shared)]
            sa[task], sb[task] = per_example(paired, a)[task], per_example(paired, b)[task]
            seeds |= shared
    if not sa:
        return None
    diff, lo, hi = paired_bootstrap(sa, sb)
    return {"tasks": " ".join(sa), "seeds": " ".join(str(s) for s in sorted(seeds)), "diff": diff, "ci_low": lo,
            "ci_high": hi, "margin": margin, "verdict": verdict(lo, hi, margin)}


def accepted_code_versions(prof: dict, args) -> tuple[str, ...]:
    """Older code versions whose finished cells this run reuses: the profile's `reuse_code_versions` (set in the
    script, with the reason: later changes known not to touch its cells) and --reuse-code-version; none with --fresh."""
    return () if args.fresh else tuple(prof.get("reuse_code_versions", ())) + tuple(args.reuse_code_version)


def run_table(table: str, doc: str, profiles: dict, argv, *, script: str, stages=None, extras=None, dry_run=None,
              metadata: dict | None = None, also_test=None, floors=None):
    """A table script's whole main: flags, the profile's training settings and metadata, then its stages.

    `stages(profile)` gives [(rows, tasks, seeds), ...] (default: the profile's rows × tasks × seeds);
    `dry_run(profile)`, when given, adds --dry-run; `metadata` (or `metadata(profile)`) is added to the run's metadata;
    `also_test(profile, backbone)` and `floors(profile, backbone, record_store, accepted_code_versions)` give
    run_stages' `also_test` and `floors`."""
    from .runinfo import run_metadata
    args, prof, backbone, out_dir = table_cli(doc, profiles, argv, dry_run=dry_run is not None)
    if dry_run is not None and args.dry_run:
        return dry_run(prof)
    cfg = TrainConfig(**prof["train"])
    data = prof.get("data", "embedded")
    accepted = accepted_code_versions(prof, args)
    # Only the cpu profile, whose CSVs are the committed results, records its cells in git (cells/ beside them):
    # the quick profile is a first look that should really run, and smoke output is temporary.
    store = out_dir / "cells" if args.profile == "cpu" else None
    meta = run_metadata(profile=args.profile, backbone=backbone, train=cfg.to_dict(), lrs=list(prof["lrs"]),
                        data=prof["n"], data_source=data, script=script, **((metadata(prof) if callable(metadata) else metadata) or {}))
    plan = stages(prof) if stages else [(prof["rows"], prof["tasks"], prof["seeds"])]
    if args.stages is not None:
        if not all(0 <= i < len(plan) for i in args.stages):
            raise UserError(f"--stages: profile {args.profile} has stages 0 to {len(plan) - 1}, not {args.stages}")
        meta["stages"] = {"run": sorted(set(args.stages)), "in_profile": len(plan)}
        plan = [plan[i] for i in meta["stages"]["run"]]
    cells = sum(len(rows) * len(tasks) * len(seeds) for rows, tasks, seeds in plan)
    print(f"{table}, profile {args.profile}: {cells} cells on {backbone}, {len(prof['lrs'])} learning-rate trial(s) "
          f"on the first seed of each; {prof.get('expected', 'duration not measured yet')}. Finished cells are "
          f"reused; rerun the same command to resume. Output: {out_dir}")
    return run_stages(table, plan, backbone=backbone, train_cfg=cfg, lrs=prof["lrs"], n=prof["n"], out_dir=out_dir,
                      metadata=meta, profile=args.profile, fresh=args.fresh, smoke=args.profile == "smoke",
                      extras=extras, also_test=also_test(prof, backbone) if also_test else None,
                      floors=floors(prof, backbone, store, accepted) if floors else None, data=data,
                      reuse_code_versions=accepted, record_store=store)
