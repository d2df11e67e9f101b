"""Render the documentation's tables from the committed CSVs (so no number in docs/ is typed by hand).

    python -m scripts.render_readme_tables               # rewrites the blocks between <!-- NAME:start/end --> markers
    python -m scripts.render_readme_tables table1_quick  # only the named blocks (e.g. while a grid still runs)
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]   # where the blocks live


def page_text() -> str:
    return "\n".join(p.read_text() for p in PAGES)


def markdown(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + ["| " + " | ".join(map(str, r)) + " |" for r in rows]


def zeroshot_table(df: pd.DataFrame, meta: dict) -> list[str]:
    wide = df.pivot_table(index="task", columns="method", values="metric", aggfunc="first")
    norm = df[df.method == "zero-shot"].set_index("task")["accuracy_len_norm"]
    wide.insert(1, "zero-shot, length-normalised", norm)
    n = df.groupby("task")["n"].first()
    diff = df[df.method == "zero-shot (lm-eval)"].set_index("task")["examples_differing"] if "examples_differing" in df else {}
    order = [c for c in ["zero-shot", "zero-shot, length-normalised", "zero-shot (lm-eval)", "majority-class", "chance"]
             if c in wide.columns]
    rows = []
    for task in df.task.drop_duplicates():
        cells = [f"{wide.loc[task, c]:.3f}" if pd.notna(wide.loc[task, c]) else "–" for c in order]
        d = diff.get(task) if hasattr(diff, "get") else None
        rows.append([task, n[task], *cells, "" if d is None or pd.isna(d) else int(d)])
    records = meta.get("records", {})   # one per task (since 2026-12-02); older files describe one run
    versions = sorted({r["code_version"] for r in records.values()}) or [meta.get("code_version", "?")]
    devices = sorted({r["device"] for r in records.values()}) or [meta["device"]]
    return markdown(["task", "n (test)", *order, "lm-eval differs by"], rows) + [
        "", f"Backbone {meta['backbone']}, profile {meta['profile']}, {meta['precision']}, code version "
            f"{', '.join(versions)}, {'; '.join(devices)}, compute {meta['wall_time_s'] / 60:.0f} min; written at "
            f"commit `{meta['git_commit'][:12]}`{' from per-task records' if records else ''}. "
            "SQuAD's metric is the mean of token F1 and exact match."]


def overhead_table(df: pd.DataFrame, meta: dict) -> list[str]:
    memory = df[df.measure == "peak_memory"] if "measure" in df else df.iloc[:0]
    df = df[df.measure != "peak_memory"]
    rows = []
    for r in df.to_dict("records"):
        params = "" if pd.isna(r["trainable_params"]) else f"{int(r['trainable_params']):,}" + (
            f" (r = {int(r['lora_rank'])})" if not pd.isna(r["lora_rank"]) else "")
        tps = "" if pd.isna(r["tokens_per_s"]) else f"{r['tokens_per_s']:.2f}"
        shape = f"{int(r['batch'])} × {int(r['seq'])}"
        rows.append([r["measure"], r["method"], f"{r.get('data', '')} ({shape})", params, f"{r['median_s']:.2f}",
                     f"{r['min_s']:.2f}–{r['max_s']:.2f}", tps])
    ratios = meta["ratios"]
    said = "; ".join(f"{k.replace('_', ' ')} = **{v:.2f}**" for k, v in ratios.items())
    if len(memory):
        rows_mb = [[r["method"], r["data"], f"{r['rss_loaded_mb']:.0f}", f"{r['rss_peak_mb']:.0f}",
                    f"{r['rss_step_mb']:.0f}"] for r in memory.to_dict("records")]
        said = ("Peak memory of two training steps, each configuration in a fresh process (MB of resident memory):\n\n"
                + "\n".join(markdown(["method", "data", "loaded", "peak", "added by the steps"], rows_mb)) + "\n\n" + said)
    return markdown(["measure", "method", "data (batch × tokens)", "trainable params", "median s", "min–max s",
                     "tokens/s"], rows) + [
        "", f"{said} (targets: {', '.join(f'{k} {t}' for k, t in meta.get('targets', {}).items())}). "
            f"{meta['backbone']}, {meta['precision']}, {meta['device']}, commit `{meta['git_commit'][:12]}`, "
            f"{int(df.repeats.iloc[0])} interleaved repeats after a warm-up."]


def probe_table(df: pd.DataFrame, meta: dict) -> list[str]:
    metric = df["metric"].iloc[0] if "metric" in df else "acc"
    rows = [[r.variant, r.placement, r.read, r.slot_init, r.up_init_std, f"{r.dev_acc_step0:.3f}",
             f"{r.best_dev_acc:.3f} ({r.best_step})", f"{r.first_train_loss:.2f} → {r.last_train_loss:.2f}"]
            for r in df.itertuples()]
    r = df.iloc[0]
    theta = f", Θ {r.theta}" if "theta" in df and isinstance(r.theta, str) else ""
    return markdown(["variant", "placement", "read", "slot", "W_up init std", f"dev {metric}, untrained",
                     f"best dev {metric} (step)", "train loss first → last 10"], rows) + [
        "", f"{r.task} dev split (n = {r.n_dev}), {r.steps} steps, batch {r.batch}, lr {r.lr}, m = {r.bottleneck}{theta}, "
            f"seed {r.seed}, {r.trainable_params:,} trainable parameters, one seed only; commit `{meta['git_commit'][:12]}`."]


def acceptance_table(df: pd.DataFrame, meta: dict) -> list[str]:
    rows = [[r.method, f"{r.trainable_params:,}", r.size, f"{r.chosen_lr:g}", r.dev_by_lr, f"{r.dev_acc:.3f}",
             f"{r.test_acc:.3f}", f"{max(r.zero_shot_acc, r.majority_acc):.3f}", f"{r.lift_over_floor:+.3f}",
             "yes" if r.passes else "**no**"] for r in df.itertuples()]
    t = meta["train"]
    return markdown(["method", "tunable params", "size", "chosen lr", "best dev acc per lr", "dev acc", "test acc",
                     "floor", "lift", "≥ +0.15"], rows) + [
        "", f"sst2, {meta['backbone']}, seed {meta['seeds'][0]}, test n = {df.n_test.iloc[0]}; {t['steps']} steps, batch "
            f"{t['batch_size']}, dev evaluation every {t['eval_every']} steps, patience {t['patience']}, Θ {t['theta']} "
            f"(lr {t['theta_lr']:g}); floor = max(zero-shot, majority class) on the same test split; "
            f"commits {', '.join(f'`{c[:12]}`' for c in df.git_commit.unique())} (code versions "
            f"{', '.join(df.code_version.unique())}); training time "
            f"{', '.join(f'{r.method} {r.train_wall_s / 60:.0f} min' for r in df.itertuples())} (all lr trials)."]


def _read(name: str):
    path = REPO / "results" / name
    return pd.read_csv(path) if path.exists() else None


def grid_summary_table(summary: pd.DataFrame, meta: dict) -> list[str]:
    """Any table's _summary.csv: per task the median over seeds, with max − min and the seed count."""
    tasks = [c for c in summary.columns if f"{c}_spread" in summary.columns]
    rows = []
    for r in summary.to_dict("records"):
        cells = []
        for t in tasks:
            seeds = r.get(f"{t}_seeds")
            if pd.isna(r[t]):
                cells.append("–")
            elif pd.isna(seeds) or not seeds:          # a floor row: one number
                cells.append(f"{r[t]:.3f}")
            else:
                cells.append(f"{r[t]:.3f} ± {r[f'{t}_spread'] / 2:.3f} ({int(seeds)})")
        params = f"{int(r['trainable_params']):,}" if r["trainable_params"] else "–"
        rows.append([r["row"], params, *cells, "–" if pd.isna(r["average"]) else f"{r['average']:.3f}"])
    t = meta["train"]
    done, planned = meta.get("cells_done"), meta.get("cells_planned")
    partial = [f"**Partial run: {done} of {planned} planned cells done** (the run resumes where it stopped).", ""] \
        if done is not None and planned and done < planned else []
    if "stages" in meta:   # run with --stages: say which part of the profile's plan this table is
        run, total = meta["stages"]["run"], meta["stages"]["in_profile"]
        partial += [f"Stage{'s' if len(run) > 1 else ''} {', '.join(map(str, run))} of the profile's {total} "
                    f"(0–{total - 1}); the others were not run.", ""]
    return partial + markdown(["method", "tunable params", *tasks, "average"], rows) + [
        "", f"Median over seeds ± half the range (seeds). {meta['backbone']}, profile {meta['profile']}, {t['steps']} "
            f"steps, batch {t['batch_size']}, lr trials {meta['lrs']}, dev evaluation every {t['eval_every']} steps; "
            f"commit `{meta['git_commit'][:12]}`, code versions {', '.join(meta['code_versions'])}, {trained_on(meta)}"
            + (f", the cells' compute time {meta['cells_wall_s'] / 60:.0f} min (summed over the sessions that ran them)."
               if "cells_wall_s" in meta else
               f", {meta['wall_s_this_invocation'] / 60:.0f} min in the last invocation." if "wall_s_this_invocation" in meta
               else ".")]


def trained_on(meta: dict) -> str:
    """Where a grid's cells were trained: every machine with its cell count (grids resumed across sessions can mix
    machines, whose numbers differ slightly), or the invocation's device for tables written before cells said so."""
    devices = meta.get("cell_devices")
    if not devices:
        return meta["device"]
    if len(devices) == 1:
        return f"cells trained on {next(iter(devices))}"
    return "cells trained on " + "; ".join(f"{d} ({n} cells)" for d, n in devices.items())


def verdict_lines(name: str, other: str, folder: str = "") -> list[str]:
    """A table's _verdicts.csv as markdown; `other` names its column. A file with an "all" scope (Table 2, older
    Table 1 files) shows that one alone; one with per-task scopes (Table 1) every task's verdict that includes seed
    variance (|S| ≥ 2, where there is one) and the "pooled" one over the informative tasks."""
    verdicts = _read(f"{folder}{name}_verdicts.csv")
    if verdicts is None or not len(verdicts):
        return []
    columns = ["claim", "compared with", r"seeds (\|S\|)", "difference", "95 % interval (± half-width)", "verdict",
               "what would decide it"]
    def cells(r: dict) -> list[str]:
        return [r["claim"], r[other], seed_cell(r), f"{r['diff']:+.3f}", interval_cell(r), r["verdict"], decide_cell(r)]
    if "scope" not in verdicts.columns or (verdicts.scope == "all").any():
        shown = verdicts[verdicts.scope == "all"] if "scope" in verdicts.columns else verdicts
        return ["", *markdown(columns, [cells(r) for r in shown.to_dict("records")])]
    if (verdicts.n_seeds >= 2).any():
        verdicts = verdicts[verdicts.n_seeds >= 2]
    return ["", *markdown(["task", *columns], [[f"pooled: {r['tasks']}" if r["scope"] == "pooled" else r["scope"],
                                                *cells(r)] for r in verdicts.to_dict("records")])]


def decide_cell(r: dict) -> str:
    """For an undecided verdict, what its measured noise says would decide it: more seeds at today's test examples,
    or more test examples at today's seeds (iapt.harness.stats.seeds_to_decide, examples_to_decide); older
    verdict files lack one estimate or both."""
    seeds, examples = r.get("seeds_to_decide", float("nan")), r.get("examples_to_decide", float("nan"))
    if pd.isna(seeds):
        return "–"
    by_seeds = f"≈ {int(seeds)} seeds" if seeds != float("inf") else ""
    if pd.isna(examples):     # an older file: seeds only
        return by_seeds or f"more test examples (example noise alone ± {r['example_half_width']:.3f})"
    by_examples = (f"≈ {int(examples):,} test examples (now {int(r['n_examples']):,}, example noise alone "
                   f"± {r['example_half_width']:.3f})" if examples != float("inf") else "")
    if not by_seeds and not by_examples:
        return "more seeds and more test examples together"
    return " or ".join(x for x in (by_seeds, by_examples) if x)


def seed_cell(r: dict) -> str:
    """The seeds both rows have and their count (older verdict files lack the count)."""
    return f"{r['seeds']} ({int(r['n_seeds'])})" if "n_seeds" in r else str(r.get("seeds", ""))


def interval_cell(r: dict) -> str:
    return f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] (± {(r['ci_high'] - r['ci_low']) / 2:.3f})"


def table2_table(summary: pd.DataFrame, meta: dict, folder: str = "") -> list[str]:
    lines = grid_summary_table(summary, meta)
    check = _read(f"{folder}table2_crosscheck.csv")
    if check is not None:
        lines += ["", "lm-eval vs our evaluator on the same BBH examples: " + "; ".join(
            f"{r.row}: {r.lm_eval_metric:.3f} vs {r.own_evaluator_metric:.3f}, {int(r.disagreements)} of {int(r.n)} "
            f"examples differ" for r in check.itertuples()) + "."]
    return lines + verdict_lines("table2", "iapt_vs", folder)


def reference_lines(summary: pd.DataFrame, meta: dict, folder: str = "") -> list[str]:
    lines = grid_summary_table(summary, meta)
    beside = _read(f"{folder}reference_commonsense_beside.csv")
    if beside is not None and len(beside):
        scopes = list(dict.fromkeys(beside.scope))
        cell = {(r.method, r.scope): f"{r.ours:.3f} ({r.our_rank}) / {r.published:.3f} ({r.published_rank})"
                for r in beside.itertuples()}
        lines += ["", "Ours (mean over seeds) next to the published LLaMA-2 7B accuracy, rank among these methods in "
                      "brackets:", "", *markdown(["method", *scopes],
                                                 [[m, *(cell[m, s] for s in scopes)]
                                                  for m in dict.fromkeys(beside.method)])]
    ordering = _read(f"{folder}reference_commonsense_ordering.csv")
    if ordering is not None and len(ordering):
        lines += ["", *markdown(["scope", "Kendall τ", "95 % interval", "pairs in published order", "95 % interval"],
                                [[r.scope, f"{r.kendall_tau:+.2f}", f"[{r.tau_ci_low:+.2f}, {r.tau_ci_high:+.2f}]",
                                  f"{r.pairs_in_published_order:.2f}", f"[{r.pairs_ci_low:.2f}, {r.pairs_ci_high:.2f}]"]
                                 for r in ordering.itertuples()])]
    pairs = _read(f"{folder}reference_commonsense_pairs.csv")
    if pairs is not None and len(pairs):
        p = pairs[pairs.scope == "average"]
        lines += ["", *markdown(["published order (average)", "published difference", "ours",
                                 "95 % interval (± half-width)", r"\|S\|", "verdict"],
                                [[f"{r['published_winner']} > {r['published_loser']}", f"{r['published_diff']:+.3f}",
                                  f"{r['our_diff']:+.3f}", interval_cell(r), str(int(r.get("n_seeds", 0)) or "–"),
                                  r["verdict"]]
                                 for r in p.to_dict("records")])]
    return lines


def table2_backbone_table(df: pd.DataFrame, meta: dict) -> list[str]:
    rows = [[r.backbone, f"{r.trainable_params:,}", f"{r.dev_rouge_l_untuned:.3f}", f"{r.dev_rouge_l_best:.3f}",
             f"{r.dev_gain:+.3f}", f"{r.test_rouge_l:.3f}", f"{r.s_per_step:.1f}"] for r in df.itertuples()]
    t = meta["train"]
    return markdown(["backbone", "LoRA params", "dev ROUGE-L untuned", "best dev ROUGE-L", "gain", "test ROUGE-L",
                     "s / step"], rows) + [
        "", f"LoRA at its default rank, lr {df.lr.iloc[0]:g}, {t['steps']} steps, batch {t['batch_size']}, NI dev "
            f"n = {df.n_dev.iloc[0]}, one seed; commit `{meta['git_commit'][:12]}`, {meta['device']}."]


def table5_table(df: pd.DataFrame, meta: dict) -> list[str]:
    """The central point (all methods), the ratios the issue sets targets for, and every factor's IAPT/LoRA ratios."""
    def ratio(frame, a, b):
        tps = frame.set_index("method")["tokens_per_s"]
        return tps[a] / tps[b]
    c = df[df.factor == "central"]
    # On CPU the process RSS does not fall when tensors are freed, so its growth during a block says nothing
    # once an earlier, larger configuration has grown it: memory is shown for CUDA runs only.
    memory = not meta["device"].startswith("cpu")
    rows = [[r.method, "–" if pd.isna(r.size) else r.size, f"{r.tunable_params_per_tenant:,}", f"{r.tokens_per_s:.0f}",
             f"{r.tokens_per_s_min:.0f}–{r.tokens_per_s_max:.0f}", f"{ratio(c, r.method, 'bare'):.2f}",
             f"{ratio(c, 'iapt', r.method):.2f}", f"{r.ttft_s:.2f}", f"{r.decode_ms_per_token:.0f}",
             *([f"{r.peak_memory_mb:.0f}"] if memory else [])] for r in c.itertuples()]
    r0 = c.iloc[0]
    targets = [("bare", 0.9, "IAPT ÷ bare backbone"), ("lora_peft", 1.5, "IAPT ÷ peft mixed-batch LoRA"),
               ("lora_gathered", 1.3, "IAPT ÷ gathered all-linear LoRA")]
    met = "; ".join(f"{label} = **{ratio(c, 'iapt', m):.2f}** (target ≥ {t}: {'met' if ratio(c, 'iapt', m) >= t else 'not met'})"
                    for m, t, label in targets)
    factors = []
    for (factor, batch, tenants, prompt, new), g in df.groupby(["factor", "batch", "tenants", "prompt", "new"], sort=False):
        factors.append([factor, batch, tenants, prompt, new, f"{g.set_index('method').tokens_per_s['iapt']:.0f}",
                        *(f"{ratio(g, 'iapt', m):.2f}" for m in ("bare", "lora_gathered", "lora_qv_gathered", "lora_peft",
                                                               "prompt_tuning"))])
    return markdown(["method", "size", "tunable params / tenant", "tokens/s", "min–max", "÷ bare", "IAPT ÷ this",
                     "time to first token (s)", "decode ms / token", *(["peak memory (MB)"] if memory else [])], rows) + [
        "", f"Central point: batch {r0.batch}, {r0.tenants} tenants, {r0.prompt}-token prompts, {r0.new} new tokens. {met}.",
        "", *markdown(["factor", "batch", "tenants", "prompt", "new", "IAPT tokens/s", "IAPT ÷ bare", "÷ LoRA gathered",
                       "÷ LoRA q,v gathered", "÷ LoRA peft", "÷ prompt tuning"], factors),
        "", f"{meta['backbone']}, {meta['precision']}, {meta['device']}, median of {meta['repeats']} interleaved repeats "
            f"after a warm-up; commit `{meta['git_commit'][:12]}`, torch {meta['packages'].get('torch')}, wall time "
            f"{meta['wall_time_s'] / 60:.0f} min."]


def table5_shared_table(df: pd.DataFrame, meta: dict) -> list[str]:
    """The shared-prefix scenario: every way of serving it side by side, and the time-to-first-token ratios."""
    ttft = df.set_index("method").ttft_s
    memory = not meta["device"].startswith("cpu")
    rows = [[r.method, "–" if pd.isna(r.size) else r.size, f"{r.ttft_s:.2f}", f"{r.ttft_s_min:.2f}–{r.ttft_s_max:.2f}",
             f"{ttft['iapt, prefix once'] / r.ttft_s:.2f}", f"{r.tokens_per_s:.0f}",
             f"{r.tokens_per_s_min:.0f}–{r.tokens_per_s_max:.0f}", f"{r.decode_ms_per_token:.0f}",
             *([f"{r.peak_memory_mb:.0f}"] if memory else [])] for r in df.itertuples()]
    ratios, cfg = meta["ratios"], meta["shared_prefix"]
    verdict = "met" if ratios["iapt_ttft_over_best_lora"] <= 0.5 else "not met"
    return markdown(["served as", "size", "time to first token (s)", "min–max", "IAPT's ÷ this", "tokens/s", "min–max",
                     "decode ms / token", *(["peak memory (MB)"] if memory else [])], rows) + [
        "", f"Batch {cfg['batch']}, {cfg['tenants']} tenants, a {cfg['prefix']}-token shared prefix and "
            f"{cfg['input'] // 2}–{cfg['input']} input tokens per request, {cfg['new']} new tokens. IAPT's time to first "
            f"token ÷ LoRA's better way = **{ratios['iapt_ttft_over_best_lora']:.2f}** (target ≤ 0.5: {verdict}); "
            f"÷ the bare backbone's = **{ratios['iapt_ttft_over_bare']:.2f}**; ÷ IAPT prefilling every row in full = "
            f"**{ratios['iapt_ttft_over_iapt_in_full']:.2f}**.",
        "", f"{meta['backbone']}, {meta['precision']}, {meta['device']}, median of {meta['repeats']} interleaved repeats "
            f"after a warm-up; commit `{meta['git_commit'][:12]}`, wall time {meta['wall_time_s'] / 60:.0f} min."]


# The front page's claims: (claim, [(verdict file, column naming the other row, its value, scope or None)], page).
# Table 1's five-seed methods by their verdict pooled over the informative tasks (each task's on its page), the
# three-seed methods, trained on sst2 alone, by sst2's.
CLAIMS = [
    ("1. IAPT beats the other prompt-based methods",
     [("table1", "iapt_vs", m, "pooled") for m in ("prompt_tuning", "prefix_tuning", "idpg")]
     + [("table1", "iapt_vs", "lpt", "sst2")] + [("table2", "iapt_vs", m, "ni") for m in ("prompt_tuning", "prefix_tuning")],
     "[Table 1](docs/table1.md), [Table 2](docs/table2.md)"),
    ("2. IAPT is competitive with the LoRA family (≤ 2 points below)",
     [("table1", "iapt_vs", "lora", "pooled")] + [("table1", "iapt_vs", m, "sst2") for m in ("adalora", "ia3")]
     + [("table2", "iapt_vs", "lora", "ni")],
     "[Table 1](docs/table1.md), [Table 2](docs/table2.md)"),
    ("3. Learned layer-wise rationals beat a fixed activation",
     [("table3", "learned_vs", m, None) for m in ("fixed gelu", "rational, frozen at GELU", "fixed relu")],
     "[Tables 3–4](docs/tables3-4.md)"),
    ("4. Four soft tokens suffice",
     [("table4", "defaults_vs", m, None) for m in ("8 soft tokens", "16 soft tokens")], "[Tables 3–4](docs/tables3-4.md)"),
    ("5. Self-attention pooling beats mean / max / last",
     [("table4", "defaults_vs", f"pooler {m}", None) for m in ("mean", "max", "last")], "[Tables 3–4](docs/tables3-4.md)"),
]
SHORT = {"reproduced": "reproduced", "contradicted": "contradicted", "not distinguishable at this scale": "not distinguishable"}


def claims_table(_: pd.DataFrame, __: dict) -> list[str]:
    """One line per claim: each comparison's verdict, difference, interval, half-width and |S|, from the
    verdict CSVs (claim 6, serving speed, from table5.csv)."""
    rows = []
    for claim, comparisons, page in CLAIMS:
        parts = []
        for table, column, other, scope in comparisons:
            v = _read(f"{table}_verdicts.csv")
            r = v[(v[column] == other) & ((v.scope == scope) if scope else True)].iloc[0]
            where = (f"pooled over {', '.join(r.tasks.split())}, " if scope == "pooled" else f"{scope}, ") if scope else ""
            decide = decide_cell(r.to_dict())
            parts.append(f"{where}vs {other}: {SHORT.get(r.verdict, r.verdict)} {r['diff']:+.3f} "
                         f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}] (± {r.half_width:.3f}, \\|S\\| = {int(r.n_seeds)}"
                         + ("" if decide == "–" else f"; to decide: {decide}") + ")")
        rows.append([claim, "; ".join(parts), page])
    t5 = _read("table5.csv")
    if t5 is not None:
        tps = t5[t5.factor == "central"].set_index("method").tokens_per_s
        path = REPO / "results" / "table5_shared_prefix.meta.json"
        shared = json.loads(path.read_text()) if path.exists() else None
        ttft = (f"; requests sharing a {shared['shared_prefix']['prefix']}-token prefix: IAPT's time to first token "
                f"{shared['ratios']['iapt_ttft_over_best_lora']:.2f}× gathered LoRA's") if shared else ""
        rows.append(["6. IAPT serves a multi-tenant batch faster than unmerged LoRA",
                     f"{tps['iapt'] / tps['lora_peft']:.2f}× peft's mixed-batch LoRA, {tps['iapt'] / tps['lora_gathered']:.2f}× "
                     "our gathered all-linear LoRA (tokens/s at the central point; a benchmark, not a bootstrap)" + ttft,
                     "[Table 5](docs/table5.md)"])
    return markdown(["claim", "verdicts here (difference, 95 % interval, half-width, seeds)", "page"], rows)


# README block -> (results CSV, the make target that writes it, renderer)
BLOCKS = {"claims": ("table1_verdicts.csv", "table1", claims_table),
          "zeroshot": ("zeroshot.csv", "zeroshot", zeroshot_table),
          "overhead": ("overhead.csv", "overhead", overhead_table),
          "probe": ("iapt_defaults_probe.csv", "probe", probe_table),
          "probe_ni": ("iapt_defaults_probe_ni.csv", "probe PROBE_TASK=ni", probe_table),
          "table5": ("table5.csv", "table5", table5_table),
          "table5_shared": ("table5_shared_prefix.csv", "table5", table5_shared_table),
          "acceptance": ("engine_acceptance.csv", "acceptance", acceptance_table),
          "table2": ("table2_summary.csv", "table2", table2_table),
          "table2_quick": ("quick/table2_summary.csv", "table2 PROFILE=quick",
                           lambda df, meta: table2_table(df, meta, "quick/")),
          "table2_backbone": ("table2_backbone.csv", "table2-backbone", table2_backbone_table),
          "table1": ("table1_summary.csv", "table1",
                     lambda df, meta: grid_summary_table(df, meta) + verdict_lines("table1", "iapt_vs")),
          "table1_quick": ("quick/table1_summary.csv", "table1 PROFILE=quick",
                           lambda df, meta: grid_summary_table(df, meta) + verdict_lines("table1", "iapt_vs", "quick/")),
          "table3": ("table3_summary.csv", "table3",
                     lambda df, meta: grid_summary_table(df, meta) + verdict_lines("table3", "learned_vs")),
          "table4": ("table4_summary.csv", "table4",
                     lambda df, meta: grid_summary_table(df, meta) + verdict_lines("table4", "defaults_vs")),
          "reference": ("reference_commonsense_summary.csv", "reference", reference_lines),
          "reference_quick": ("quick/reference_commonsense_summary.csv", "reference PROFILE=quick",
                              lambda df, meta: reference_lines(df, meta, "quick/"))}


def render(csv: str, target: str, table) -> str:
    path = REPO / "results" / csv
    if not path.exists():
        return f"_not run yet: `make {target}`_"
    return "\n".join(table(pd.read_csv(path), json.loads(path.with_suffix(".meta.json").read_text())))


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("blocks", nargs="*", metavar="BLOCK", help=f"blocks to rewrite (default: all): {', '.join(BLOCKS)}")
    names = ap.parse_args(argv).blocks or list(BLOCKS)
    if unknown := [n for n in names if n not in BLOCKS]:
        ap.error(f"unknown block(s) {', '.join(unknown)}; valid: {', '.join(BLOCKS)}")
    for page in PAGES:
        text = original = page.read_text()
        for name, (csv, target, table) in ((n, BLOCKS[n]) for n in names):
            text = re.sub(rf"<!-- {name}:start -->.*?<!-- {name}:end -->",
                          lambda _: f"<!-- {name}:start -->\n{render(csv, target, table)}\n<!-- {name}:end -->", text,
                          flags=re.S)
        if text != original:
            page.write_text(text)
            print(f"rewrote the tables in {page}")


if __name__ == "__main__":
    main()
