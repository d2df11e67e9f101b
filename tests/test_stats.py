"""The crossed, paired bootstrap and the verdict rule (docs/reproducing.md, "Verdicts") that every table's
verdicts come from."""
import numpy as np
import pandas as pd
import pytest

from iapt.harness.stats import (CONTRADICTED, NOT_DISTINGUISHABLE, ONE_SEED, REPRODUCED, compare_rows,
                                examples_to_decide, half_width_with_seeds, informative_tasks, paired_bootstrap,
                                seeds_for_half_width, seeds_to_decide, verdict)


def scores(rng, p, shape=(3, 200)):
    return (rng.random(shape) < p).astype(float)


def test_point_is_the_mean_difference_over_tasks_of_seed_averaged_scores():
    rng = np.random.default_rng(0)
    a = {"x": scores(rng, 0.8), "y": scores(rng, 0.6, (2, 50))}
    b = {"x": scores(rng, 0.5), "y": scores(rng, 0.6, (2, 50)), "only_b": scores(rng, 0.1)}
    point, lo, hi = paired_bootstrap(a, b)
    expected = np.mean([a[t].mean(0).mean() - b[t].mean(0).mean() for t in ("x", "y")])
    assert point == pytest.approx(expected)
    assert lo <= point <= hi


def test_verdicts_follow_the_interval():
    rng = np.random.default_rng(1)
    strong, weak = {"t": scores(rng, 0.9)}, {"t": scores(rng, 0.3)}
    assert verdict(*paired_bootstrap(strong, weak)[1:]) == REPRODUCED
    assert verdict(*paired_bootstrap(weak, strong)[1:]) == CONTRADICTED
    assert paired_bootstrap(strong, strong) == (0.0, 0.0, 0.0)
    assert verdict(0.0, 0.0) == NOT_DISTINGUISHABLE
    # margin: "a is within `margin` of b" holds when the whole interval is above −margin
    assert verdict(-0.015, 0.01, margin=0.02) == REPRODUCED
    assert verdict(-0.03, -0.021, margin=0.02) == CONTRADICTED
    assert verdict(-0.03, 0.01, margin=0.02) == NOT_DISTINGUISHABLE


def test_paired_resampling_uses_the_same_examples_for_both_methods():
    # b is a with one example flipped: every resample's difference is k/n ≥ 0, so the interval never goes below 0
    rng = np.random.default_rng(2)
    a = scores(rng, 0.5, (1, 100))
    a[0, 0] = 1.0
    b = a.copy()
    b[0, 0] = 0.0
    point, lo, hi = paired_bootstrap({"t": a}, {"t": b})
    assert point == pytest.approx(0.01) and lo == 0.0 and hi > 0


def test_an_interval_ending_at_zero_is_zero_not_rounding_dust():
    # Resampled means are multiples of 1/(seeds·examples); resamples whose gains and losses cancel sum to ±1e-17
    # unless rounded, and such dust would turn "covers 0" into "reproduced" (it did, once, in Table 4)
    rng = np.random.default_rng(0)
    cancelled = 0
    for _ in range(60):
        n = int(rng.integers(5, 30))
        a, b = scores(rng, 0.5, (2, n)), scores(rng, 0.4, (2, n))
        _, lo, hi = paired_bootstrap({"t": a}, {"t": b})
        for bound in (lo, hi):
            assert bound == 0.0 or abs(bound) > 1e-9
        cancelled += lo == 0.0
        if lo == 0.0:
            assert verdict(lo, hi) == NOT_DISTINGUISHABLE
    assert cancelled >= 3   # the draws above do produce such intervals (without the rounding: dust)


def simulated_table(rng, seeds: int, examples: int, delta: float, seed_sd: float):
    """Two methods' (seeds, examples) scores: shared example difficulty, a per-seed effect of each method's own
    (its training run), Bernoulli outcomes; the true difference of expected scores is `delta`."""
    difficulty = rng.uniform(0.2, 0.8, examples)

    def method(shift):
        run = rng.normal(0, seed_sd, (seeds, 1))
        return (rng.random((seeds, examples)) < difficulty + shift + run).astype(float)
    return method(delta / 2), method(-delta / 2)


def examples_only_interval(a, b, n_boot, seed):
    """The former interval: seeds averaged first, then only test examples resampled."""
    diff = a.mean(0) - b.mean(0)
    idx = np.random.default_rng(seed).integers(0, len(diff), size=(n_boot, len(diff)))
    return np.percentile(diff[idx].mean(1), [2.5, 97.5])


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time():
    """With a seed effect as large as the committed sst2 cells show (sd ≈ 0.04 per method), resampling seeds and
    examples together covers the truth near 95 %; resampling examples alone (the former rule) far less."""
    rng, delta, tables = np.random.default_rng(3), 0.03, 200
    crossed = examples_only = 0
    for i in range(tables):
        a, b = simulated_table(rng, seeds=5, examples=300, delta=delta, seed_sd=0.04)
        _, lo, hi = paired_bootstrap({"t": a}, {"t": b}, n_boot=500, seed=i)
        crossed += lo <= delta <= hi
        lo, hi = examples_only_interval(a, b, 500, i)
        examples_only += lo <= delta <= hi
    assert 0.9 <= crossed / tables <= 1.0
    assert examples_only / tables < 0.8


def test_tasks_scored_from_the_same_cells_share_one_seed_draw():
    """Two evaluations of the same three trained cells whose differences are a seed's effect with opposite
    signs: pooled under one seed draw they cancel in every replicate; drawn apart they do not."""
    effect = np.array([0.2, -0.1, 0.05])[:, None] * np.ones((3, 40))
    a = {"x": 0.5 + effect, "y": 0.5 - effect}
    b = {"x": np.full((3, 40), 0.5), "y": np.full((3, 40), 0.5)}
    assert paired_bootstrap(a, b, groups={"x": "cells", "y": "cells"})[1:] == (0.0, 0.0)
    _, lo, hi = paired_bootstrap(a, b)
    assert hi - lo > 0.05


def test_one_seed_is_never_a_verdict_and_every_row_says_how_many_seeds():
    rows = []
    for row, p, seeds in (("iapt", 0.9, [0, 1, 2]), ("lora", 0.2, [0, 1, 2]), ("idpg", 0.2, [0])):
        for s in seeds:
            rng = np.random.default_rng(s)
            rows.append({"row": row, "task": "t", "seed": s, "cell": f"{row}-{s}",
                         "test_correct": " ".join(str(float(x)) for x in (rng.random(60) < p))})
    df = pd.DataFrame(rows)
    three, one = compare_rows(df, "iapt", "lora"), compare_rows(df, "iapt", "idpg")
    assert three["n_seeds"] == 3 and three["verdict"] == REPRODUCED
    assert three["half_width"] == pytest.approx((three["ci_high"] - three["ci_low"]) / 2)
    assert one["n_seeds"] == 1 and one["verdict"] == ONE_SEED and one["ci_low"] > 0   # clear, yet undecided


def test_a_task_is_informative_when_the_best_mean_leaves_its_highest_floor_by_the_margin():
    """Measured against the highest of the three floors (boolq-like: majority class above zero-shot), on each
    row's mean over its seeds."""
    rows = [{"row": row, "task": task, "seed": s, "test_metric": m + d, "n_test": 4}
            for task, base in (("easy", 0.70), ("hard", 0.62)) for s, d in ((0, -0.01), (1, 0.01))
            for row, m in (("iapt", base), ("lora", base - 0.02))]
    floors = {"easy": {"zero-shot": 0.55, "majority-class": 0.60, "chance": 0.5},
              "hard": {"zero-shot": 0.45, "majority-class": 0.60, "chance": 0.5}}
    found = informative_tasks(pd.DataFrame(rows), floors).set_index("task")
    assert found.loc["easy", "floor_kind"] == "majority-class" and found.loc["easy", "n_test"] == 4
    assert found.loc["easy", "best_row"] == "iapt" and found.loc["easy", "informative"]
    assert found.loc["easy", "lora_margin"] == pytest.approx(0.08) and found.loc["easy", "iapt_seeds"] == 2
    assert found.loc["hard", "best_margin"] == pytest.approx(0.02) and not found.loc["hard", "informative"]


def _table(gaps_by_seed, n=400, p=0.7):
    """Two rows on one task: each example has a difficulty shared by every seed and row; each (row, seed) adds its
    own jitter, and row b's threshold sits lower by that seed's gap."""
    rng, rows = np.random.default_rng(0), []
    difficulty = rng.random(n)
    for s, gap in enumerate(gaps_by_seed):
        for row, threshold in (("a", p), ("b", p - gap)):
            correct = difficulty + 0.15 * rng.standard_normal(n) < threshold
            rows.append({"row": row, "task": "t", "seed": s, "cell": f"{row}{s}",
                         "test_correct": " ".join(f"{float(x)}" for x in correct)})
    return pd.DataFrame(rows)


def test_what_would_decide_it_seeds_when_seeds_disagree_examples_when_they_do_not():
    """Seeds that disagree (gaps −0.02 to +0.12): the interval is mostly seed noise, and a finite number of seeds,
    more than today's, would decide it. Seeds that agree on a gap of 0.005: example noise alone covers zero,
    so no number of seeds decides it (inf: more test examples would)."""
    noisy = compare_rows(_table([-0.02, 0.12, 0.0, 0.08]), "a", "b")
    assert noisy["verdict"] == NOT_DISTINGUISHABLE and noisy["example_half_width"] < noisy["half_width"]
    assert 4 < noisy["seeds_to_decide"] < 200
    steady = compare_rows(_table([0.005] * 4), "a", "b")
    assert steady["verdict"] == NOT_DISTINGUISHABLE and steady["seeds_to_decide"] == float("inf")
    # seeds that agree exactly (no seed noise at all): more test examples would decide it, more seeds would not
    a = [1.0] * 40 + [1.0] * 15 + [0.0] * 10 + [0.0] * 35    # 55 of 100 right, b 50: they disagree on 25
    b = [1.0] * 40 + [0.0] * 15 + [1.0] * 10 + [0.0] * 35
    same = pd.DataFrame([{"row": r, "task": "t", "seed": s, "cell": f"{r}{s}", "test_correct": " ".join(map(str, x))}
                         for s in range(3) for r, x in (("a", a), ("b", b))])
    exact = compare_rows(same, "a", "b")
    assert exact["verdict"] == NOT_DISTINGUISHABLE and exact["seeds_to_decide"] == float("inf")
    assert exact["n_examples"] == 100 and 100 < exact["examples_to_decide"] < 1000
    decided = compare_rows(_table([0.2] * 3), "a", "b")
    assert decided["verdict"] == REPRODUCED and np.isnan(decided["seeds_to_decide"])
    assert np.isnan(decided["examples_to_decide"])


def test_examples_to_decide_scales_the_examples_share_of_the_variance():
    # half-width 0.05 of which 0.03 from examples: seed share 0.0016; distance 0.045 → room 0.002025 - 0.0016
    assert examples_to_decide(0.045, 0.05, 0.03, 0.0, 300) == np.ceil(300 * 0.0009 / 0.000425)
    assert examples_to_decide(-0.035, 0.05, 0.03, 0.02, 300) == float("inf")   # the seeds' share alone is wider
    # the estimate is what the interval would shrink to: at that size the half-width equals the distance
    n = examples_to_decide(0.045, 0.05, 0.03, 0.0, 300)
    assert (0.0016 + 0.0009 * 300 / n) ** 0.5 <= 0.045 < (0.0016 + 0.0009 * 300 / (n - 1)) ** 0.5


def test_seeds_to_decide_scales_the_seed_share_of_the_variance():
    # half-width 0.05 of which 0.03 from examples: seed share 0.0016; distance 0.04 → 0.0016 - 0.0009 = 0.0007
    assert seeds_to_decide(0.04, 0.05, 0.03, 0.0, 3) == np.ceil(3 * 0.0016 / 0.0007)
    assert seeds_to_decide(0.02, 0.05, 0.03, 0.0, 3) == float("inf")


def test_more_seeds_shrink_only_the_seeds_share_of_the_interval():
    # half-width 0.05 at 3 seeds, 0.03 of it example noise: at 12 seeds the seed share (0.04²) is a quarter
    assert half_width_with_seeds(0.05, 0.03, 3, 12) == pytest.approx((0.04 ** 2 / 4 + 0.03 ** 2) ** 0.5)
    assert seeds_for_half_width((0.04 ** 2 / 4 + 0.03 ** 2) ** 0.5, 0.05, 0.03, 3) == 12
    assert seeds_for_half_width(0.03, 0.05, 0.03, 3) == float("inf")
