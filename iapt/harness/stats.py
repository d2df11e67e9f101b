"""The crossed, paired bootstrap over seeds and test examples, and the verdict rule (docs/reproducing.md,
"Verdicts").

A row's score on a task is its per-example correctness averaged over seeds and examples. A replicate redraws
both sources of noise at once: |S| seeds with replacement — the same seeds for every row compared (seed s fixes
every method's data order, so seeds pair) and for every task evaluated on the same trained cells (Table 2's ni,
mmlu and bbh) — and one set of test examples per task, applied to every drawn seed and every row (the test split
is shared by all seeds: drawing it per seed would shrink the interval again). Over several tasks a statistic is
the mean of the per-task ones under that joint draw. With one seed nothing estimates seed variance: such a
comparison gets its own label and is never called reproduced or contradicted; with 3 seeds it is estimated
coarsely.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

REPRODUCED, CONTRADICTED, NOT_DISTINGUISHABLE = "reproduced", "contradicted", "not distinguishable at this scale"
ONE_SEED = "one seed: seed variance not included"
MIXED_PRECISION = "refused: its cells mix precisions"
CHUNK = 250   # replicates per matrix product (bounds memory on test splits of 10 k examples)


def _counts(rng, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) how often each of n items is drawn when n are drawn with replacement."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)


def crossed_means(scores: dict[str, np.ndarray], groups: dict[str, object] | None = None, n_boot: int = 2000,
                  seed: int = 0, resample_seeds: bool = True) -> dict[str, np.ndarray]:
    """task -> (n_boot + 1, rows) mean scores, index 0 the observed one. scores[task]: (rows, seeds, examples),
    every row on the same seeds (in the same order) and examples. Tasks with the same `groups` value share their
    seed draw (default: each task its own). `resample_seeds=False` keeps every seed once (example noise alone)."""
    rng = np.random.default_rng(seed)
    groups = groups or {task: task for task in scores}
    seed_draws = {}
    for task in sorted(scores):        # one seed draw per group, in a fixed order
        g = groups[task]
        if g not in seed_draws:
            s = np.shape(scores[task])[1]
            seed_draws[g] = _counts(rng, s, n_boot) if resample_seeds else np.ones((n_boot, s))
    out = {}
    for task in sorted(scores):
        x = np.asarray(scores[task], float)                          # rows, S, N
        rows, s, n = x.shape
        c, w = seed_draws[groups[task]], _counts(rng, n, n_boot)
        if c.shape[1] != s:
            raise ValueError(f"{task}: {s} seeds, but its group's other tasks have {c.shape[1]}")
        means = np.empty((n_boot + 1, rows))
        means[0] = x.mean((1, 2))
        for start in range(0, n_boot, CHUNK):
            wc, cc = w[start:start + CHUNK], c[start:start + CHUNK]
            xw = x @ wc.T                                            # rows, S, chunk: each seed's resampled sum
            means[1 + start:1 + start + len(wc)] = (xw * cc.T[None]).sum(1).T / (s * n)
        out[task] = means
    return out


def paired_bootstrap(a: dict[str, np.ndarray], b: dict[str, np.ndarray], groups: dict | None = None,
                     n_boot: int = 2000, seed: int = 0, resample_seeds: bool = True) -> tuple[float, float, float]:
    """Mean over tasks of (a − b) and its 95 % interval. a[task], b[task]: (seeds, examples) scores on the same
    seeds; `groups` and `resample_seeds` as in `crossed_means`."""
    tasks = sorted(set(a) & set(b))
    if not tasks:
        raise ValueError("no task scored for both methods")
    means = crossed_means({t: np.stack([np.asarray(a[t], float), np.asarray(b[t], float)]) for t in tasks},
                          {t: (groups or {}).get(t, t) for t in tasks}, n_boot, seed, resample_seeds)
    diff = np.mean([m[:, 0] - m[:, 1] for m in means.values()], axis=0)
    return (float(diff[0]), *interval(diff[1:]))


def interval(boots: np.ndarray) -> tuple[float, float]:
    """95 % percentile interval of bootstrap differences. Scores are multiples of 1/(seeds·examples): a resample
    whose gains and losses cancel should give 0, but summing in another order leaves ±1e-17, which would decide
    "reproduced" vs "not distinguishable" — so the bounds are rounded to 12 decimals."""
    lo, hi = np.round(np.percentile(boots, [2.5, 97.5]), 12)
    return float(lo), float(hi)


def verdict(lo: float, hi: float, margin: float = 0.0, n_seeds: int | None = None) -> str:
    """The claim is "a − b > −margin": reproduced when the whole interval is above −margin, contradicted when
    it is below, otherwise not distinguishable (margin 0: "a beats b"; margin > 0: "a is competitive with b").
    With one seed the interval holds example noise only, so it decides nothing."""
    if n_seeds == 1:
        return ONE_SEED
    if lo > -margin:
        return REPRODUCED
    if hi < -margin:
        return CONTRADICTED
    return NOT_DISTINGUISHABLE


def _seed_share(half_width: float, example_half_width: float) -> float:
    """The seeds' share of a half-width's square: what is left of it once the test examples' share (the half-width
    with every seed kept once) is taken out; never negative (the two are separate bootstraps)."""
    return max(half_width ** 2 - example_half_width ** 2, 0.0)


def half_width_with_seeds(half_width: float, example_half_width: float, n_seeds: int, new_seeds: float) -> float:
    """The half-width expected at `new_seeds` seeds from one measured at `n_seeds`: the seeds' share of the
    variance (half_width² − example_half_width²) shrinks as 1/seeds, the test examples' share (the half-width with
    every seed kept once) does not. An estimate: a new seed's noise is assumed like these."""
    return math.sqrt(_seed_share(half_width, example_half_width) * n_seeds / new_seeds + example_half_width ** 2)


def seeds_for_half_width(target: float, half_width: float, example_half_width: float, n_seeds: int) -> float:
    """The seeds at which `half_width_with_seeds` falls below `target`; inf when example noise alone reaches it
    (then more test examples, not seeds, are needed)."""
    room = target ** 2 - example_half_width ** 2
    if room <= 0:
        return float("inf")
    return float(math.ceil(round(n_seeds * _seed_share(half_width, example_half_width) / room, 9)))


def seeds_to_decide(diff: float, half_width: float, example_half_width: float, margin: float, n_seeds: int) -> float:
    """The seeds that would bring an undecided interval clear of −margin at the measured noise (at least one more
    than today); inf when only more test examples could (`seeds_for_half_width`)."""
    return max(seeds_for_half_width(abs(diff + margin), half_width, example_half_width, n_seeds), n_seeds + 1.0)


def examples_to_decide(diff: float, half_width: float, example_half_width: float, margin: float,
                       n_examples: int) -> float:
    """The test examples (today's `n_examples`, scaled up, at today's seeds) that would bring an undecided interval
    clear of −margin at the measured noise: the test examples' share of the variance shrinks as 1/examples, the
    seeds' share does not (the counterpart of `seeds_to_decide`); inf when the seeds' share alone is wider than
    the distance to the margin (then more seeds are needed too). An estimate: new examples are assumed like these."""
    room = (diff + margin) ** 2 - _seed_share(half_width, example_half_width)
    if room <= 0:
        return float("inf")
    return max(float(math.ceil(round(n_examples * example_half_width ** 2 / room, 9))), n_examples + 1.0)


def mixed_precision(cells: pd.DataFrame) -> str | None:
    """The verdict a comparison gets instead when its `cells` (a table's rows, with their `precision` column) ran at
    more than one precision: a difference between them could be the precision's. None when they share one, or
    when the table was written with --allow-mixed-precision (`df.attrs["allow_mixed_precision"]`)."""
    used = sorted(set(cells["precision"])) if "precision" in cells else []
    if len(used) <= 1 or cells.attrs.get("allow_mixed_precision"):
        return None
    return f"{MIXED_PRECISION} ({' vs '.join(used)}); retrain at one precision or pass --allow-mixed-precision"


def drift_beside(diff: float, tasks: list[str], attrs: dict) -> dict:
    """The largest cross-processor drift measured at fp32 on these tasks (`attrs["processor_drift"]`: task ->
    max |Δ test metric| of one cell trained on two processor kinds, results/processor_drift.csv), and a note when
    it is at least half the difference (and not zero): then which machines trained the cells could matter."""
    measured = [attrs.get("processor_drift", {})[t] for t in tasks if t in attrs.get("processor_drift", {})]
    if not measured:
        return {"processor_drift": float("nan"), "drift_note": ""}
    drift = max(measured)
    note = "processor drift comparable to the difference" if drift > 0 and drift >= abs(diff) / 2 else ""
    return {"processor_drift": drift, "drift_note": note}


def precisions(cells: pd.DataFrame) -> str:
    return " ".join(sorted(set(cells["precision"]))) if "precision" in cells else ""


def per_example(df: pd.DataFrame, row: str) -> dict:
    """task -> (seeds, test examples) per-example scores of one row, by seed."""
    return {task: [[float(x) for x in v.split()] for v in g.sort_values("seed")["test_correct"]]
            for task, g in df[df.row == row].groupby("task")}


def shared_seeds(df: pd.DataFrame, rows: list[str], task: str) -> list[int]:
    """The seeds every one of `rows` has on `task`: the seeds a paired comparison may draw."""
    on_task = df[df.task == task]
    return sorted(set.intersection(*(set(on_task[on_task.row == r].seed) for r in rows)))


def compare_rows(df: pd.DataFrame, a: str, b: str, margin: float = 0.0, tasks: list[str] | None = None) -> dict | None:
    """Row a − row b over the tasks both have (or `tasks`), each on the seeds both rows have there (a three-seed
    core row against a seed-0-only extended row: seed 0): the crossed bootstrap, |S| (the fewest seeds of any
    task), the interval's half-width, and the verdict; the half-width with the seeds held fixed (example noise
    alone) and, for an undecided verdict, the seeds or the test examples (summed over its tasks) that would decide
    it (`seeds_to_decide`, `examples_to_decide`, each with the other held at today's). Tasks scored from
    the same trained cells (rows that share a `cell`) share their seed draw."""
    sa, sb, seeds, groups, used = {}, {}, set(), {}, []
    for task in tasks or sorted(set(df[df.row == a].task)):
        on_task = df[df.task == task]
        shared = set(shared_seeds(df, [a, b], task))
        if shared:
            paired = on_task[on_task.seed.isin(shared)].sort_values("seed")
            sa[task], sb[task] = per_example(paired, a)[task], per_example(paired, b)[task]
            seeds |= shared
            used.append(paired[paired.row.isin([a, b])])
            groups[task] = tuple(sorted(paired.loc[paired.row.isin([a, b]), "cell"])) if "cell" in paired else task
    if not sa:
        return None
    diff, lo, hi = paired_bootstrap(sa, sb, groups)
    _, ex_lo, ex_hi = paired_bootstrap(sa, sb, groups, resample_seeds=False)
    half_width, example_half_width = (hi - lo) / 2, (ex_hi - ex_lo) / 2
    n_seeds, cells = min(len(v) for v in sa.values()), pd.concat(used)
    cells.attrs = dict(df.attrs)
    found = verdict(lo, hi, margin, n_seeds)
    undecided, n_examples = found == NOT_DISTINGUISHABLE, sum(len(v[0]) for v in sa.values())
    return {"tasks": " ".join(sa), "seeds": " ".join(str(s) for s in sorted(seeds)), "n_seeds": n_seeds,
            "diff": diff, "ci_low": lo, "ci_high": hi, "half_width": half_width, "margin": margin,
            "precision": precisions(cells), "verdict": mixed_precision(cells) or found,
            "example_half_width": example_half_width,
            # only an open verdict has something to decide (one seed is no verdict at all)
            "seeds_to_decide": seeds_to_decide(diff, half_width, example_half_width, margin, n_seeds)
            if undecided else float("nan"),
            "n_examples": n_examples,
            "examples_to_decide": examples_to_decide(diff, half_width, example_half_width, margin, n_examples)
            if undecided else float("nan"),
            **drift_beside(diff, list(sa), df.attrs)}


FLOORS = ("zero-shot", "majority-class", "chance")
INFORMATIVE_MARGIN = 0.05   # a task separates methods only where tuning leaves its best floor by this much


def informative_tasks(df: pd.DataFrame, floors: dict, margin: float = INFORMATIVE_MARGIN) -> pd.DataFrame:
    """Per task: its highest floor (zero-shot, majority class or chance; `floors`: task -> {kind: metric}), each
    row's mean over seeds minus that floor, and whether the best row leaves it by at least `margin`
    (docs/table1.md, "Which tasks are informative")."""
    recs = []
    for task, on_task in df.drop_duplicates(["row", "task", "seed"]).groupby("task", sort=False):
        found = {k: v for k, v in floors.get(task, {}).items() if k in FLOORS}
        by_row = on_task.groupby("row", sort=False)
        means, seeds = by_row["test_metric"].mean(), by_row["seed"].nunique()
        floor_kind = max(found, key=found.get) if found else ""
        floor = found.get(floor_kind, float("nan"))
        rec = {"task": task, "n_test": int(on_task["n_test"].iloc[0]), "floor": floor,
               "floor_kind": floor_kind, "best_row": means.idxmax(), "best_mean": float(means.max()),
               "best_margin": float(means.max()) - floor}
        rec["informative"] = bool(rec["best_margin"] >= margin) if found else None
        rec.update({f"{row}_margin": float(m) - floor for row, m in means.items()})
        rec.update({f"{row}_seeds": int(n) for row, n in seeds.items()})
        recs.append(rec)
    return pd.DataFrame(recs)
