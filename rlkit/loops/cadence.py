"""When things happen and what is counted: the cadence, the counters, the logging window.

Shared by the loops (``rlkit.loops.sync``; see its glossary for the terms).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Cadence:
    """When things happen, in env steps (``updates_per_train`` and ``batch_size`` excepted).

    No defaults: the builder fills every field from the config (``rlkit.config`` holds
    the default values, once).
    """

    total_steps: int
    learning_starts: int
    train_every: int
    updates_per_train: int
    batch_size: int
    target_update_period: int
    target_tau: float
    eval_every: int
    checkpoint_every: int
    log_every: int


@dataclass
class Counters:
    env_steps: int = 0
    updates: int = 0
    target_syncs: int = 0
    evaluations: int = 0
    episodes: int = 0


@dataclass
class _Window:
    """Sums over the current logging window."""

    metrics: dict[str, float] = field(default_factory=dict)
    updates: int = 0
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    start_time: float = field(default_factory=time.perf_counter)
    start_steps: int = 0
    # perf/* count from when this process started timing (a resumed window started earlier)
    timer_steps: int = 0
    timer_updates: int = 0

    def add_metrics(self, metrics: dict[str, float]) -> None:
        for key, value in metrics.items():
            self.metrics[key] = self.metrics.get(key, 0.0) + value
        self.updates += 1

    def scalars(self, env_steps: int, updates: int, now: float) -> dict[str, float]:
        """The window's ``train/*`` means (per update and per episode) and its ``perf/*``
        rates up to ``env_steps`` / ``updates`` at time ``now``."""
        out: dict[str, float] = {}
        if self.updates:
            out.update({f"train/{k}": v / self.updates for k, v in self.metrics.items()})
        if self.returns:
            out["train/episode_return"] = float(np.mean(self.returns))
            out["train/episode_length"] = float(np.mean(self.lengths))
        elapsed = now - self.start_time
        if elapsed > 0:
            out["perf/sps"] = (env_steps - self.timer_steps) / elapsed
            out["perf/updates_per_s"] = (updates - self.timer_updates) / elapsed
        return out

    @classmethod
    def starting(cls, env_steps: int, updates: int, now: float) -> _Window:
        """An empty window that starts now at these counters."""
        return cls(
            start_time=now, start_steps=env_steps, timer_steps=env_steps, timer_updates=updates
        )


def crossings(before: int, after: int, period: int) -> int:
    """How many multiples of ``period`` lie in ``(before, after]`` (0 when period is 0)."""
    if period <= 0:
        return 0
    return after // period - before // period
