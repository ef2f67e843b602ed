"""Scripted environments registered with Gymnasium, so that the wiring tests can build
whole runs from a config (``rlkit.build.build``) exactly as ``rlkit train`` does."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from tests.fakes import CountingEnv

COUNTING = "RlkitTest/Counting-v0"
LIVES = "RlkitTest/Lives-v0"


class LivesEnv(gym.Env):
    """A game of ``lives`` lives of ``life_length`` steps each; reward 1 per step.

    obs = [t, lives]. Each lost life is reported as ``info["life_loss"] = True`` (the
    contract of rlkit's Atari life-loss signal) while the game goes on; the step that
    loses the last life terminates the game.
    """

    metadata: dict = {"render_modes": []}

    def __init__(self, lives: int = 3, life_length: int = 4) -> None:
        self.start_lives, self.life_length = lives, life_length
        self.observation_space = gym.spaces.Box(-1e6, 1e6, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t, self.lives = 0, lives

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.lives], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.lives = 0, self.start_lives
        return self._obs(), {"life_loss": False}

    def step(self, action):
        self.t += 1
        lost = self.t % self.life_length == 0
        self.lives -= int(lost)
        game_over = self.lives == 0
        return self._obs(), 1.0, game_over, False, {"life_loss": lost and not game_over}


def register() -> None:
    if COUNTING not in gym.registry:
        gym.register(COUNTING, entry_point=CountingEnv)
    if LIVES not in gym.registry:
        gym.register(LIVES, entry_point=LivesEnv)


register()
