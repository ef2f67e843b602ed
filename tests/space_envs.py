"""Tiny envs with the observation and action spaces rlkit adapts, registered with
Gymnasium when this module is imported (so ``env.id: "tests.space_envs:RlkitSpaces/..."``
and ``env.imports: [tests.space_envs]`` both find them), plus wrappers for
``env.wrappers`` tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

DICT_ENV = "RlkitSpaces/Dict-v0"
IMAGE_ENV = "RlkitSpaces/ImageHWC-v0"
MULTI_ACTION_ENV = "RlkitSpaces/MultiAction-v0"


class _PickColumn(gym.Env):
    """Reward 1 for the action equal to the marked column ``target`` (of 3), a new
    target every step, episodes of ``length`` steps; subclasses draw ``_obs``."""

    metadata: dict = {"render_modes": []}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.target = 0, int(self.np_random.integers(3))
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.target)
        self.t += 1
        self.target = int(self.np_random.integers(3))
        return self._obs(), reward, False, self.t >= self.length, {}


class DictEnv(_PickColumn):
    """Dict obs {image: (7, 7, 3) uint8 HWC, direction: Discrete(4), flags:
    MultiBinary(2), mission: Text}. The image shows a bright pixel in the column the
    agent must pick; reward 1 for action == that column (mod num actions), else 0; each
    episode is ``length`` steps."""

    metadata: dict = {"render_modes": []}

    def __init__(self, length: int = 5) -> None:
        self.length = length
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (7, 7, 3), np.uint8),
                "direction": spaces.Discrete(4),
                "flags": spaces.MultiBinary(2),
                "mission": spaces.Text(20),
            }
        )
        self.action_space = spaces.Discrete(3)
        self.t, self.target = 0, 0

    def _obs(self) -> dict:
        image = np.zeros((7, 7, 3), np.uint8)
        image[3, self.target, :] = 255
        flags = np.array([self.t % 2, 1], dtype=np.int8)
        return {"image": image, "direction": self.t % 4, "flags": flags, "mission": "pick"}


class ImageEnv(_PickColumn):
    """A (7, 7, 3) uint8 HWC image whose channel 0 marks the rewarded action's column
    (channels 1, 2 are constant 10, 20), 3 actions, episodes of ``length`` steps."""

    metadata: dict = {"render_modes": []}

    def __init__(self, length: int = 5) -> None:
        self.length = length
        self.observation_space = spaces.Box(0, 255, (7, 7, 3), np.uint8)
        self.action_space = spaces.Discrete(3)
        self.t, self.target = 0, 0

    def _obs(self) -> np.ndarray:
        image = np.zeros((7, 7, 3), np.uint8)
        image[:, :, 1], image[:, :, 2] = 10, 20
        image[:, self.target, 0] = 255
        return image


class MultiActionEnv(gym.Env):
    """Actions MultiDiscrete([2, 3]); obs Box(2,) echoes the last action taken; reward 1
    for the action (1, 2), else 0; episodes of 4 steps."""

    metadata: dict = {"render_modes": []}

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 5.0, (2,), np.float32)
        self.action_space = spaces.MultiDiscrete([2, 3])
        self.t = 0
        self.last = np.zeros(2, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.last = 0, np.zeros(2, np.float32)
        return self.last.copy(), {}

    def step(self, action):
        action = np.asarray(action)
        assert action.shape == (2,) and 0 <= action[0] < 2 and 0 <= action[1] < 3
        self.last = action.astype(np.float32)
        self.t += 1
        reward = float(tuple(action) == (1, 2))
        return self.last.copy(), reward, False, self.t >= 4, {}


class AddReward(gym.RewardWrapper):
    """reward + ``amount`` (for env.wrappers order tests)."""

    def __init__(self, env: gym.Env, amount: float = 1.0) -> None:
        super().__init__(env)
        self.amount = amount

    def reward(self, reward):
        return reward + self.amount


class ScaleReward(gym.RewardWrapper):
    """reward * ``factor`` (for env.wrappers order tests)."""

    def __init__(self, env: gym.Env, factor: float = 2.0) -> None:
        super().__init__(env)
        self.factor = factor

    def reward(self, reward):
        return reward * self.factor


def not_a_wrapper(env: gym.Env) -> int:
    """A wrapper target that returns no env (env.wrappers error test)."""
    return 3


for _id, _cls in ((DICT_ENV, DictEnv), (IMAGE_ENV, ImageEnv), (MULTI_ACTION_ENV, MultiActionEnv)):
    if _id not in gym.registry:
        gym.register(_id, entry_point=_cls)
