"""The Atari protocol shared by every backend: ``AtariOptions``, the life-loss signal, and
the helpers the C++ backends (``ale_vector``, ``envpool``) use to match the Gymnasium path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from rlkit.envs.base import EnvError


@dataclass(frozen=True)
class AtariOptions:
    """Atari preprocessing (Mnih et al. 2015; Machado et al. 2018) and ALE settings."""

    frame_skip: int = 4  # env steps are agent steps: each repeats the action frame_skip times
    frame_stack: int = 4  # observations stack this many 84x84 frames: [stack, 84, 84] uint8
    noop_max: int = 30  # up to this many no-op actions after each reset
    screen_size: int = 84
    sticky_actions: float = 0.25  # per emulator frame: probability of repeating the previous action
    full_action_space: bool = False  # all 18 joystick actions instead of the game's minimal set
    max_frames_per_episode: int | None = 108_000  # emulator frames, then truncation (None: no cap)
    life_loss_signal: bool = False  # report VecStep.life_loss (LifeLossSignal); the game goes on


class LifeLossSignal(gym.Wrapper):
    """Reports a lost life without ending the game: ``info["life_loss"]`` is True on a step
    where the ALE's life counter went down and the game is not over (``terminated`` False),
    False on every other step and after a reset.

    The episode is not ended here: learning code treats ``terminated | life_loss`` as the
    end of a learning episode (the DQN papers' "life loss as terminal"), while the game,
    and the episode statistics, run on to game over.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0

    def _ale_lives(self) -> int:
        return int(self.env.unwrapped.ale.lives())

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.lives = self._ale_lives()
        info["life_loss"] = False
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self._ale_lives()
        info["life_loss"] = bool(lives < self.lives and not terminated)
        self.lives = lives
        return obs, reward, terminated, truncated, info


_ALE_ID = re.compile(r"^ALE/([A-Za-z0-9]+)-v5$")


def ale_game(env_id: str, backend: str) -> str:
    """The game's name in ``ALE/<Game>-v5`` ("ALE/Pong-v5" -> "Pong"); EnvError naming
    ``env.id`` for any other id (the C++ backends run Atari games only)."""
    match = _ALE_ID.match(env_id)
    if match is None:
        raise EnvError(
            f"env.id {env_id!r}: env.backend {backend!r} runs Atari games only (ALE/<Game>-v5)"
        )
    return match.group(1)


def cannot_make(env_id: str, backend: str, exc: BaseException) -> EnvError:
    """The one-line EnvError for a C++ backend that refused to make ``env_id``."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return EnvError(f"env.id {env_id!r}: env.backend {backend!r} cannot make it ({msg})")


def snake_case(game: str) -> str:
    """ALE's ROM name of a CamelCase game name ("MontezumaRevenge" -> "montezuma_revenge")."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", game).lower()


class RepeatPadding:
    """Makes frame stacks of a new episode start like Gymnasium's FrameStackObservation:
    the C++ backends fill the stack's older slots with zero frames, Gymnasium with copies
    of the episode's first frame.

    ``age[i]`` counts the frames env ``i``'s current episode has shown (1 after a reset);
    while ``age < stack`` the ``stack - age`` oldest slots are the padding and get the
    newest slot of the first observation. Arrays are edited in place.
    """

    def __init__(self, num_envs: int, stack: int) -> None:
        self.stack = stack
        self.age = np.zeros(num_envs, dtype=np.int64)
        self.first: np.ndarray | None = None  # [N, H, W] first frame of each episode
        self._active = False  # some episode is younger than the stack

    def reset(self, obs: np.ndarray) -> None:
        """All episodes start with ``obs`` [N, stack, H, W]."""
        self.age[:] = 1
        self.first = obs[:, -1].copy()
        self.pad(obs)
        self._active = self.stack > 1

    def advance(self, obs: np.ndarray, final_obs: np.ndarray, done: np.ndarray) -> None:
        """One step was taken: ``final_obs`` continues the old episodes; where ``done``
        (and only there: ``final_obs is obs`` when no episode ended), ``obs`` starts a new
        one. Costs nothing while no episode is young and none ended."""
        if not self._active and final_obs is obs:
            return
        self.age += 1
        if final_obs is not obs:
            self.pad(final_obs)
            ended = np.flatnonzero(done)
            self.age[ended] = 1
            self.first[ended] = obs[ended, -1]
        self.pad(obs)
        self._active = bool(self.age.min() < self.stack)

    def pad(self, obs: np.ndarray) -> None:
        for i in np.flatnonzero(self.age < self.stack):
            obs[i, : self.stack - self.age[i]] = self.first[i]


class LifeCounter:
    """Life losses from the per-step ``lives`` counters of a C++ backend, with the rule of
    ``LifeLossSignal``: a life was lost where the counter went down and the game is not
    over. All False when not ``enabled`` (evaluation envs, protocols without the signal).
    """

    def __init__(self, num_envs: int, enabled: bool) -> None:
        self.enabled = enabled
        self.lives = np.zeros(num_envs, dtype=np.int32)
        self._none = np.zeros(num_envs, dtype=bool)
        self._none.flags.writeable = False

    def reset(self, lives: np.ndarray) -> None:
        self.lives = lives

    def step(self, lives: np.ndarray, terminated: np.ndarray) -> np.ndarray:
        """[N] bool life losses of this step; ``lives`` are the counters after it (a game
        that was reset this step gives its new game's counter)."""
        lost = (lives < self.lives) & ~terminated if self.enabled else self._none
        self.lives = lives
        return lost
