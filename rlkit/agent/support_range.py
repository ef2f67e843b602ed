"""The C51 support ``[v_min, v_max]`` from rewards seen: pure arithmetic, no envs.

``network.v_min: auto`` / ``network.v_max: auto`` end here. Given the per-step rewards of
a short random-policy probe and the discounted returns-to-go of its episodes, the range
is::

    D      = (1 - gamma**T) / (1 - gamma)            discounted horizon (T if gamma == 1)
    r_lo   = min(0, quantile(rewards, q))            robust per-step reward range,
    r_hi   = max(0, quantile(rewards, 1 - q))        0 always inside
    lo     = min(r_lo * D, min(returns_to_go), 0)
    hi     = max(r_hi * D, max(returns_to_go), 0)
    [v_min, v_max] = [lo * (1 + margin), hi * (1 + margin)]

with ``T`` the episode time limit in env steps. A constant reward ``r`` per step for a
whole episode has return ``r * D``, the largest any policy can reach at that reward, so
the range covers it; the returns-to-go cover rare large rewards the quantiles drop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: quantile q of the per-step rewards taken as their low (q) and high (1 - q) ends
REWARD_QUANTILE = 0.001
#: fraction each end of the range is widened by
MARGIN = 0.1
#: the range when every reward seen is 0 (nothing to scale by)
FALLBACK = (-1.0, 1.0)


def discounted_horizon(gamma: float, horizon: int) -> float:
    """``sum_{t<T} gamma**t = (1 - gamma**T) / (1 - gamma)`` (``T`` when gamma is 1):
    the discounted return of an episode of ``horizon`` (T) steps with reward 1 each."""
    if gamma >= 1.0:
        return float(horizon)
    return (1.0 - gamma**horizon) / (1.0 - gamma)


def returns_to_go(rewards_T: Sequence[float], gamma: float) -> np.ndarray:
    """Discounted returns-to-go ``G_t = r_t + gamma G_{t+1}`` (``G_T = 0``) of one
    episode's rewards [T] -> [T]."""
    out_T = np.zeros(len(rewards_T))
    running = 0.0
    for t in range(len(rewards_T) - 1, -1, -1):
        running = float(rewards_T[t]) + gamma * running
        out_T[t] = running
    return out_T


def support_range(
    rewards: Sequence[float],
    returns: Sequence[float],
    gamma: float,
    horizon: int,
    *,
    quantile: float = REWARD_QUANTILE,
    margin: float = MARGIN,
) -> tuple[float, float]:
    """``(v_min, v_max)`` from the probe's per-step ``rewards`` and its discounted
    ``returns`` (returns-to-go), for ``gamma`` and an episode limit of ``horizon`` env
    steps (see the module docstring). Always ``v_min <= 0 <= v_max`` and
    ``v_min < v_max``; ``FALLBACK`` when every reward is 0."""
    r = np.asarray(rewards, dtype=np.float64)
    g = np.asarray(returns, dtype=np.float64)
    if r.size == 0 or not np.any(r):
        return FALLBACK
    scale = discounted_horizon(gamma, horizon)
    r_lo = min(0.0, float(np.quantile(r, quantile)))
    r_hi = max(0.0, float(np.quantile(r, 1.0 - quantile)))
    lo = min(r_lo * scale, float(g.min(initial=0.0)))
    hi = max(r_hi * scale, float(g.max(initial=0.0)))
    if not lo < hi:  # rewards that cancel exactly in every return seen
        return FALLBACK
    return lo * (1.0 + margin), hi * (1.0 + margin)
