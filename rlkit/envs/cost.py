"""``StepCost``: a wrapper that makes every ``step`` cost a fixed amount of CPU time.

For measuring how acting scales with actors on a small machine
(``scripts/bench_distributed.py``): CartPole's own step takes microseconds, so without
it the measurement would time Ray's messages, not acting. The wrapper spins (busy work,
not sleep) for ``seconds`` per step, as an emulator would compute. Use it from a config::

    env:
      wrappers: [{target: "rlkit.envs.cost:StepCost", kwargs: {seconds: 0.002}}]
"""

from __future__ import annotations

import time

import gymnasium as gym


class StepCost(gym.Wrapper):
    """``env`` whose ``step`` first spends ``seconds`` of CPU time (a busy loop)."""

    def __init__(self, env: gym.Env, seconds: float = 0.001) -> None:
        super().__init__(env)
        if seconds < 0:
            raise ValueError(f"StepCost: seconds must be >= 0, got {seconds}")
        self.seconds = float(seconds)

    def step(self, action):
        end = time.thread_time() + self.seconds
        while time.thread_time() < end:
            pass
        return self.env.step(action)
