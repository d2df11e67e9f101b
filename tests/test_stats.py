"""The paired bootstrap and the verdict rule (PAPER.md §3) that every table's verdicts come from."""
import numpy as np
import pytest

from iapt.harness.stats import CONTRADICTED, NOT_DISTINGUISHABLE, REPRODUCED, paired_bootstrap, verdict


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
    # Seed-averaged scores are multiples of 1/3; resamples whose gains and losses cancel sum to ±1e-17 unless
    # rounded, and such dust would turn "covers 0" into "reproduced" (it did, once, in Table 4)
    rng = np.random.default_rng(0)
    cancelled = 0
    for _ in range(60):
        n = int(rng.integers(5, 30))
        a, b = scores(rng, 0.5, (3, n)), scores(rng, 0.4, (3, n))
        _, lo, hi = paired_bootstrap({"t": a}, {"t": b})
        for bound in (lo, hi):
            assert bound == 0.0 or abs(bound) > 1e-9
        cancelled += lo == 0.0
        if lo == 0.0:
            assert verdict(lo, hi) == NOT_DISTINGUISHABLE
    assert cancelled >= 3   # the draws above do produce such intervals (without the rounding: dust)
