"""The one published yardstick: does our ordering of methods match the published one on the commonsense tasks?

    python -m experiments.reference_commonsense --profile quick   # a first look, <= 1 h here
    python -m experiments.reference_commonsense --profile cpu     # what `make reference` runs; hours, resumable

The only published IAPT numbers (MiLoRA's Table 1, LLaMA-2 7B, median of 5 seeds; docs/reference.md) put IAPT next
to P-tuning v2, (IA)³, LoRA and AdaLoRA on ARC-e, ARC-c, BoolQ, OBQA and PIQA, which ship offline. We train
the same five methods on the embedded backbone (same re-split, pinned format, learning-rate search as Table
1) and compare **orderings**, not absolute numbers (135 M vs 7 B): per task and on the average, Kendall's τ and
the share of method pairs in the published order, with 95 % bootstrap intervals over seeds and test examples; and per
published pair, whether our difference holds, flips or is not distinguishable.
Outputs: reference_commonsense.csv (+ _summary, _curves), reference_commonsense_beside.csv (ours next to the
published accuracy and rank), _ordering.csv, _pairs.csv, _informative.csv (per task: the highest floor and how far
each method's mean leaves it) (cpu: results/, quick: results/quick/, smoke: a temporary folder).
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from iapt.errors import cli
from iapt.harness.grid import TableScript, run_table
from iapt.harness.stats import (CONTRADICTED, NOT_DISTINGUISHABLE, ONE_SEED, REPRODUCED, crossed_means,
                                informative_tasks, interval, mixed_precision, per_example, precisions, shared_seeds,
                                verdict)
from experiments.common import CPU_REFERENCE, load_profiles, zeroshot_floors

TASKS = ["arc_easy", "arc_challenge", "boolq", "openbookqa", "piqa"]
# MiLoRA (Zhang et al., 2024), Table 1, LLaMA-2 7B, accuracy % (as quoted in docs/reference.md)
PUBLISHED = pd.DataFrame({
    "prefix_tuning": [63.5, 51.3, 61.2, 76.1, 66.2],
    "iapt": [66.3, 54.7, 67.8, 79.2, 77.3],
    "ia3": [68.1, 54.6, 67.2, 78.1, 75.4],
    "lora": [73.4, 57.2, 68.8, 80.1, 81.4],
    "adalora": [73.8, 57.9, 69.2, 80.4, 82.1],
}, index=TASKS).T / 100
# the verdict rule (docs/reproducing.md), worded for a published pairwise order
PAIR_VERDICTS = {REPRODUCED: "holds", CONTRADICTED: "flips", NOT_DISTINGUISHABLE: "not distinguishable",
                 ONE_SEED: ONE_SEED}
PROFILES = load_profiles(__file__)   # reference_commonsense.yaml beside this file


def bootstrap_scores(df: pd.DataFrame, methods: list[str], tasks: list[str], n_boot: int = 2000, seed: int = 0):
    """(n_boot + 1, methods, tasks) mean test scores; index 0 is the observed one. The crossed bootstrap
    (iapt.harness.stats): per task, the seeds every method has, drawn with replacement (the same for every
    method), and one draw of test examples for every seed and method."""
    per_task = {}
    for task in tasks:
        paired = df[(df.task == task) & df.seed.isin(shared_seeds(df, methods, task))]
        per_task[task] = np.stack([np.asarray(per_example(paired, m)[task], float) for m in methods])
    means = crossed_means(per_task, n_boot=n_boot, seed=seed)
    return np.stack([means[t] for t in tasks], axis=2)


def orderings(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per scope (each task, then the average over tasks): `beside`, our mean accuracy and rank next to the
    published ones per method; `ordering`, Kendall's τ and the share of pairs in the published order; `pairs`,
    each published pairwise order with our difference and its verdict. Intervals: the crossed bootstrap over seeds and test examples."""
    methods = [m for m in PUBLISHED.index if m in set(df.row)]
    tasks = [t for t in TASKS if all(t in per_example(df, m) for m in methods)]
    if len(methods) < 2 or not tasks:
        return {"beside": pd.DataFrame(), "ordering": pd.DataFrame(), "pairs": pd.DataFrame()}
    scores = bootstrap_scores(df, methods, tasks)
    n_seeds = min(len(shared_seeds(df, methods, t)) for t in tasks)
    scopes = {t: (scores[:, :, j], PUBLISHED.loc[methods, t].to_numpy()) for j, t in enumerate(tasks)}
    scopes["average"] = (scores.mean(2), PUBLISHED.loc[methods, tasks].mean(axis=1).to_numpy())
    pairs = list(itertools.combinations(range(len(methods)), 2))
    beside_rows, order_rows, pair_rows = [], [], []
    for scope, (ours, published) in scopes.items():
        our_rank = pd.Series(ours[0]).rank(ascending=False, method="min")      # 1 = best; ties share a rank
        published_rank = pd.Series(published).rank(ascending=False, method="min")
        beside_rows += [{"scope": scope, "method": m, "ours": ours[0][i], "published": published[i],
                         "our_rank": int(our_rank[i]), "published_rank": int(published_rank[i])}
                        for i, m in enumerate(methods)]
        taus = np.array([kendalltau(o, published).statistic for o in ours])
        agree = np.array([np.mean([np.sign(o[a] - o[b]) == np.sign(published[a] - published[b]) for a, b in pairs])
                          for o in ours])
        order_rows.append({"scope": scope, "methods": " ".join(methods), "kendall_tau": taus[0],
                           "tau_ci_low": np.nanpercentile(taus[1:], 2.5), "tau_ci_high": np.nanpercentile(taus[1:], 97.5),
                           "pairs_in_published_order": agree[0], "pairs_ci_low": np.percentile(agree[1:], 2.5),
                           "pairs_ci_high": np.percentile(agree[1:], 97.5)})
        for a, b in pairs:
            hi_m, lo_m = (a, b) if published[a] >= published[b] else (b, a)   # published winner first
            diff = ours[:, hi_m] - ours[:, lo_m]
            lo, hi = interval(diff[1:])
            # (a boolean selection keeps df.attrs, which carry --allow-mixed-precision)
            cells = df[df.row.isin([methods[a], methods[b]]) & df.task.isin(tasks if scope == "average" else [scope])]
            pair_rows.append({"scope": scope, "published_winner": methods[hi_m], "published_loser": methods[lo_m],
                              "published_diff": published[hi_m] - published[lo_m], "our_diff": diff[0],
                              "ci_low": lo, "ci_high": hi, "half_width": (hi - lo) / 2, "n_seeds": n_seeds,
                              "precision": precisions(cells),
                              "verdict": mixed_precision(cells) or PAIR_VERDICTS[verdict(lo, hi, n_seeds=n_seeds)]})
    return {"beside": pd.DataFrame(beside_rows), "ordering": pd.DataFrame(order_rows), "pairs": pd.DataFrame(pair_rows),
            "informative": informative_tasks(df, df.attrs["floors"])}


@cli
def main(argv=None):
    return run_table(TableScript("reference_commonsense", __doc__, "experiments/reference_commonsense.py",
                          extras=orderings, metadata={"published": "MiLoRA Table 1 (docs/method.md)"},
                          floors=zeroshot_floors, reference=CPU_REFERENCE), PROFILES, argv)


if __name__ == "__main__":
    main()
