"""Tiny deterministic environments for component tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class CountingEnv(gym.Env):
    """obs = [t, tag]; reward = t + 1 at step t; the episode ends after ``length`` steps.

    ``truncate=True`` ends it by truncation (time limit), else by termination.
    """

    metadata: dict = {"render_modes": []}

    def __init__(self, length: int = 3, tag: float = 0.0, truncate: bool = False) -> None:
        self.length, self.tag, self.truncate = length, tag, truncate
        self.observation_space = gym.spaces.Box(-1e6, 1e6, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.tag], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = float(self.t + 1)
        self.t += 1
        end = self.t >= self.length
        return self._obs(), reward, end and not self.truncate, end and self.truncate, {}


class ChainEnv(gym.Env):
    """Walk right along ``n`` states; action 1 moves right, 0 stays. Reward 1 on reaching
    the end, which terminates. Optimal return 1 in ``n - 1`` steps."""

    metadata: dict = {"render_modes": []}

    def __init__(self, n: int = 5, max_steps: int = 20) -> None:
        self.n, self.max_steps = n, max_steps
        self.observation_space = gym.spaces.Box(0, 1, shape=(n,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.pos, self.t = 0, 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.n, dtype=np.float32)
        obs[self.pos] = 1.0
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.t = 0, 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        if action == 1:
            self.pos = min(self.pos + 1, self.n - 1)
        done = self.pos == self.n - 1
        return self._obs(), float(done), done, (not done) and self.t >= self.max_steps, {}
