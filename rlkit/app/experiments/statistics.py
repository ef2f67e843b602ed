"""Aggregate statistics for reports: IQM, probability of improvement, stratified
bootstrap CIs, learning-curve area.

Following Agarwal et al. 2021, "Deep Reinforcement Learning at the Edge of the
Statistical Precipice": the interquartile mean (IQM) of run scores; the probability of
improvement P(X > Y), the chance that a run of X on a task scores higher than a run of Y
on the same task (ties count one half), averaged over tasks; and confidence intervals
from a stratified bootstrap that resamples runs with replacement within each task
(stratum) and recomputes the aggregate on each resample (percentile interval).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def iqm(scores: np.ndarray | Sequence[float]) -> float:
    """Interquartile mean: the mean of the middle 50% of the scores.

    Sorts the flattened scores and drops ``floor(0.25 n)`` from each end (the same cut
    as ``scipy.stats.trim_mean(x, 0.25)``).
    """
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if x.size == 0:
        raise ValueError("iqm of an empty set of scores")
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def mean(scores: np.ndarray | Sequence[float]) -> float:
    """Arithmetic mean of the flattened scores; raises ValueError on an empty set."""
    x = np.asarray(scores, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean of an empty set of scores")
    return float(x.mean())


def stratified_bootstrap_ci(
    scores_by_task: Sequence[np.ndarray | Sequence[float]],
    statistic: Callable[[np.ndarray], float] = iqm,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of ``statistic`` over the pooled scores of all tasks.

    Each bootstrap replicate resamples, for every task independently, as many runs as the
    task has (with replacement), pools them and applies ``statistic``. Returns
    ``(low, high)`` at the given two-sided ``confidence``.
    """
    tasks = [np.asarray(s, dtype=np.float64).ravel() for s in scores_by_task]
    if not tasks or any(t.size == 0 for t in tasks):
        raise ValueError("every task needs at least one run score")

    def replicate(rng: np.random.Generator) -> float:
        return statistic(np.concatenate([_resample(t, rng) for t in tasks]))

    return _percentile_ci(replicate, reps, confidence, seed)


def bootstrap_difference_ci(
    a: np.ndarray | Sequence[float],
    b: np.ndarray | Sequence[float],
    statistic: Callable[[np.ndarray], float] = iqm,
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of ``statistic(a) - statistic(b)`` for two independent sets of runs.

    Each replicate resamples ``a`` and ``b`` separately (with replacement, each to its own
    size). An interval that excludes 0 says the two differ at the given confidence.
    """
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0:
        raise ValueError("both sets need at least one run score")

    def replicate(rng: np.random.Generator) -> float:
        return statistic(_resample(x, rng)) - statistic(_resample(y, rng))

    return _percentile_ci(replicate, reps, confidence, seed)


def _pairs(
    x_by_task: Sequence[np.ndarray | Sequence[float]],
    y_by_task: Sequence[np.ndarray | Sequence[float]],
) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(x_by_task) != len(y_by_task) or not x_by_task:
        raise ValueError("X and Y need the same tasks, at least one")
    pairs = [
        (np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel())
        for x, y in zip(x_by_task, y_by_task)
    ]
    if any(x.size == 0 or y.size == 0 for x, y in pairs):
        raise ValueError("every task needs at least one run score of X and of Y")
    return pairs


def _improvement(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    per_task = []
    for x, y in pairs:
        diff = x[:, None] - y[None, :]  # every run of X against every run of Y
        per_task.append(float(np.mean((diff > 0) + 0.5 * (diff == 0))))
    return float(np.mean(per_task))


def probability_of_improvement(
    x_by_task: Sequence[np.ndarray | Sequence[float]],
    y_by_task: Sequence[np.ndarray | Sequence[float]],
) -> float:
    """P(X > Y): for each task the Mann-Whitney statistic, the fraction of (run of X,
    run of Y) pairs where X scores higher (a tie counts 1/2), then the mean over tasks.
    0.5: neither is better; it compares ranks only, so tasks need no normalisation."""
    return _improvement(_pairs(x_by_task, y_by_task))


def probability_of_improvement_ci(
    x_by_task: Sequence[np.ndarray | Sequence[float]],
    y_by_task: Sequence[np.ndarray | Sequence[float]],
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile CI of ``probability_of_improvement``: each replicate resamples, within
    every task, the runs of X and the runs of Y independently (each to its own count)."""
    pairs = _pairs(x_by_task, y_by_task)

    def replicate(rng: np.random.Generator) -> float:
        return _improvement([(_resample(x, rng), _resample(y, rng)) for x, y in pairs])

    return _percentile_ci(replicate, reps, confidence, seed)


def _resample(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x.size`` draws from ``x`` with replacement."""
    return x[rng.integers(0, x.size, size=x.size)]


def _percentile_ci(
    replicate: Callable[[np.random.Generator], float], reps: int, confidence: float, seed: int
) -> tuple[float, float]:
    """Two-sided percentile interval of ``reps`` bootstrap replicates."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    stats = np.array([replicate(rng) for _ in range(reps)], dtype=np.float64)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(low), float(high)


def curve_auc(steps: Sequence[float], values: Sequence[float]) -> float:
    """Normalised area under a learning curve: trapezoid area / step range.

    The result is in the units of ``values`` (the average value over the steps covered),
    so curves of different lengths are comparable. One point gives its value.
    """
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.size == 0 or x.size != y.size:
        raise ValueError("curve_auc needs equally many (>= 1) steps and values")
    if x.size == 1 or x[-1] == x[0]:
        return float(y.mean())
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
    return area / float(x[-1] - x[0])
