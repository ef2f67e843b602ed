"""IQM, probability of improvement, bootstrap CIs and curve area against hand-computed
small cases."""

import numpy as np
import pytest

from rlkit.app.experiments.statistics import (
    bootstrap_difference_ci,
    curve_auc,
    iqm,
    probability_of_improvement,
    probability_of_improvement_ci,
    stratified_bootstrap_ci,
)


def test_iqm_hand_computed():
    # n = 8: drop 2 from each end -> mean(3, 4, 5, 6) = 4.5
    assert iqm([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5
    # n = 5: drop floor(1.25) = 1 each end -> mean(2, 3, 100)
    assert iqm([1, 2, 3, 100, 1000]) == pytest.approx(35.0)
    # n = 3: nothing dropped
    assert iqm([1, 2, 9]) == 4.0
    # outliers do not move it
    assert iqm([0, 10, 10, 10, 10, 10, 10, 1e9]) == 10.0


def test_bootstrap_ci_degenerate_and_single_run():
    low, high = stratified_bootstrap_ci([[5.0, 5.0, 5.0]], reps=200)
    assert (low, high) == (5.0, 5.0)
    # one run per task: every resample is the same pooled set
    low, high = stratified_bootstrap_ci([[1.0], [3.0]], statistic=np.mean, reps=200)
    assert (low, high) == (2.0, 2.0)


def test_bootstrap_ci_two_point_task_matches_binomial_quantiles():
    # Scores {0, 1} resampled 2 at a time: the mean is 0, 0.5, 1 with prob 1/4, 1/2, 1/4.
    # The 2.5% and 97.5% quantiles of that distribution are 0 and 1.
    low, high = stratified_bootstrap_ci([[0.0, 1.0]], statistic=np.mean, reps=4000, seed=1)
    assert (low, high) == (0.0, 1.0)
    # at 40% confidence (30%..70% quantiles) the interval collapses to the middle value
    low, high = stratified_bootstrap_ci(
        [[0.0, 1.0]], statistic=np.mean, reps=4000, confidence=0.4, seed=1
    )
    assert (low, high) == (0.5, 0.5)


def test_bootstrap_ci_is_stratified():
    # Task A always scores 0, task B always 10: a stratified resample always pools one
    # run of each, so the mean is exactly 5 every time. An unstratified one would not be.
    low, high = stratified_bootstrap_ci([[0.0], [10.0]], statistic=np.mean, reps=500)
    assert (low, high) == (5.0, 5.0)
    low, high = stratified_bootstrap_ci([[0.0, 0.0], [10.0, 10.0]], statistic=np.mean, reps=500)
    assert (low, high) == (5.0, 5.0)


def test_bootstrap_ci_covers_the_estimate():
    rng = np.random.default_rng(0)
    scores = rng.normal(100, 10, size=20)
    low, high = stratified_bootstrap_ci([scores], reps=1000)
    assert low < iqm(scores) < high
    assert high - low < 20


def test_bootstrap_difference_ci():
    # constant sets: every replicate gives the same difference
    assert bootstrap_difference_ci([5.0, 5.0], [2.0], statistic=np.mean, reps=100) == (3.0, 3.0)
    # {0, 1} against a constant 0: the mean of a resample of 2 is 0, 0.5 or 1 (1/4, 1/2, 1/4)
    low, high = bootstrap_difference_ci([0.0, 1.0], [0.0, 0.0], statistic=np.mean, reps=4000)
    assert (low, high) == (0.0, 1.0)
    # well separated samples exclude 0; identical distributions include it; sign follows order
    rng = np.random.default_rng(0)
    a, b = rng.normal(100, 5, 30), rng.normal(80, 5, 30)
    low, high = bootstrap_difference_ci(a, b, reps=1000)
    assert 0 < low < iqm(a) - iqm(b) < high
    low, high = bootstrap_difference_ci(b, a, reps=1000)
    assert low < high < 0
    low, high = bootstrap_difference_ci(a, rng.normal(100, 5, 30), reps=1000)
    assert low < 0 < high
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_difference_ci([], [1.0])


def test_curve_auc():
    assert curve_auc([0, 10], [0, 10]) == 5.0
    assert curve_auc([0, 1, 3], [2, 2, 2]) == 2.0
    # trapezoids: [0,2]: (0+4)/2*2 = 4 ; [2,4]: (4+4)/2*2 = 8 ; total 12 / 4 = 3
    assert curve_auc([0, 2, 4], [0, 4, 4]) == 3.0
    assert curve_auc([5], [7]) == 7.0


def test_probability_of_improvement_hand_computed():
    # task 1: X = [3, 5] against Y = [1, 3, 6], all 6 pairs:
    #   3>1: 1, 3=3: 1/2, 3<6: 0, 5>1: 1, 5>3: 1, 5<6: 0  -> 3.5 / 6 = 7/12
    # task 2: X = [10] against Y = [20, 0]: 0 + 1 -> 1/2
    # the mean over the two tasks: (7/12 + 6/12) / 2 = 13/24
    x, y = [[3, 5], [10]], [[1, 3, 6], [20, 0]]
    assert probability_of_improvement(x, y) == pytest.approx(13 / 24)
    assert probability_of_improvement(y, x) == pytest.approx(11 / 24)  # 1 - 13/24
    assert probability_of_improvement([[7, 7]], [[7]]) == 0.5  # ties only
    # ranks only: rescaling one task leaves it unchanged
    assert probability_of_improvement([[300, 500], [10]], y) != probability_of_improvement(x, y)
    assert probability_of_improvement([[30, 50], [10]], [[10, 30, 60], [20, 0]]) == (
        pytest.approx(13 / 24)
    )
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement([[1]], [[1], [2]])
    with pytest.raises(ValueError, match="at least one run"):
        probability_of_improvement([[]], [[1]])


def test_probability_of_improvement_ci_is_stratified():
    # one run each: every replicate is the same
    assert probability_of_improvement_ci([[1.0]], [[0.0]], reps=50) == (1.0, 1.0)
    # task A: X = [1] vs Y = [0] gives 1 in every replicate; task B: X = [0, 2] vs Y = [1]
    # resamples X to {0, 0} (P 0, prob 1/4), {0, 2} (1/2, prob 1/2) or {2, 2} (1, prob 1/4);
    # the mean over tasks is 0.5, 0.75 or 1: with 4000 replicates the 95% interval is
    # (0.5, 1.0). Pooling the tasks' runs would give other values (e.g. 2/3).
    low, high = probability_of_improvement_ci([[1.0], [0.0, 2.0]], [[0.0], [1.0]], reps=4000)
    assert (low, high) == (0.5, 1.0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 20), rng.normal(0, 1, 20)
    low, high = probability_of_improvement_ci([a], [b], reps=1000)
    assert low < probability_of_improvement([a], [b]) < high
