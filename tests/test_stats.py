"""Bootstrap intervals and paired tests: known answers on hand-made cases."""

import math

import numpy as np
import pytest

from recsys.stats import against_best, bootstrap_ci, holm, paired_test


def test_a_constant_metric_has_a_zero_width_interval():
    low, high = bootstrap_ci(np.full(500, 0.25), n_resamples=1000, seed=3)
    assert low == high == pytest.approx(0.25)


def test_a_seeded_bootstrap_gives_fixed_bounds():
    values = np.sqrt(np.arange(1, 21, dtype=float))  # mean 3.0799
    first = bootstrap_ci(values, n_resamples=2000, seed=7)
    again = bootstrap_ci(values, n_resamples=2000, seed=7)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, [2.64194865, 3.49079281], rtol=1e-8)
    other = bootstrap_ci(values, n_resamples=2000, seed=8)
    assert not np.array_equal(first, other)


def test_the_interval_of_a_mean_matches_its_standard_error():
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 2.0, size=4000)
    low, high = bootstrap_ci(values, n_resamples=2000, seed=0)
    se = values.std() / math.sqrt(len(values))
    assert low < values.mean() < high
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_several_metrics_share_the_resamples():
    rng = np.random.default_rng(1)
    x = rng.random(300)
    bounds = bootstrap_ci(np.stack([x, 2 * x], axis=1), n_resamples=500, seed=2)
    assert bounds.shape == (2, 2)
    np.testing.assert_allclose(bounds[1], 2 * bounds[0])
    np.testing.assert_allclose(bounds[0], bootstrap_ci(x, n_resamples=500, seed=2))


def test_paired_tests_on_a_hand_made_case():
    best = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    model = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    result = paired_test(model, best)
    # Wilcoxon, exact: all six ranks positive is 1 of 2^6 sign patterns, two-sided.
    assert result.wilcoxon_p == pytest.approx(2 / 2**6)
    # t = mean / (sd / sqrt(n)) = 3.5 / (1.8708 / sqrt(6)) = 4.5826, 5 degrees of freedom.
    assert result.ttest_p == pytest.approx(0.005934, abs=1e-6)
    assert result.mean_difference == pytest.approx(3.5)


def test_identical_models_are_tied_with_p_one():
    x = np.array([0.1, 0.5, 0.0, 1.0])
    result = paired_test(x, x.copy())
    assert (result.wilcoxon_p, result.ttest_p, result.mean_difference) == (1.0, 1.0, 0.0)


def test_holm_steps_down_and_stays_monotone():
    np.testing.assert_allclose(holm(np.array([0.01, 0.04, 0.03])), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(holm(np.array([0.5, 0.6])), [1.0, 1.0])
    assert holm(np.array([])).shape == (0,)


def test_against_best_corrects_across_models_and_marks_ties():
    rng = np.random.default_rng(0)
    best = rng.random(400)
    per_user = {
        "best": best,
        "much_worse": best - 0.2,
        "same": best.copy(),
        "noisy_equal": best + rng.normal(0, 0.05, size=400) - 0.0005,
    }
    tests = against_best(per_user, "best")
    assert set(tests) == {"much_worse", "same", "noisy_equal"}
    assert not tests["much_worse"].tied and tests["much_worse"].mean_difference == pytest.approx(
        -0.2
    )
    assert tests["same"].tied
    assert tests["noisy_equal"].tied
    raw = [tests[m].ttest_p for m in ("much_worse", "same", "noisy_equal")]
    corrected = [tests[m].ttest_p_holm for m in ("much_worse", "same", "noisy_equal")]
    np.testing.assert_allclose(corrected, holm(np.array(raw)))
    assert all(c >= r for c, r in zip(corrected, raw, strict=True))
