"""Envs from a config: ``make_envs`` reads ``config.env`` (backend included)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from rlkit.envs.atari import AtariOptions
from rlkit.envs.base import VecEnv, make
from rlkit.envs.gymnasium import make_env
from rlkit.envs.spaces import ChannelsFirst, PackedObservation
from rlkit.envs.suites import check_env_id

if TYPE_CHECKING:
    from rlkit.config import Config


def make_envs(config: Config, num_envs: int, *, evaluation: bool = False) -> VecEnv:
    """``num_envs`` envs of ``config.env`` on the backend ``config.env.backend``.

    Training envs (``evaluation`` False) of an Atari config with
    ``env.terminal_on_life_loss`` report ``VecStep.life_loss`` at each lost life while the
    game goes on; evaluation envs never do: they play whole games.
    """
    e = config.env
    atari = atari_options(config, evaluation=evaluation)
    return make(
        e.backend,
        e.id,
        num_envs,
        max_episode_steps=e.max_episode_steps,
        kwargs=e.kwargs,
        atari=atari,
        imports=e.imports,
        wrappers=e.wrappers,
    )


def atari_options(config: Config, *, evaluation: bool = False) -> AtariOptions:
    """The Atari protocol of ``config.env`` (life-loss signal only for training envs)."""
    e = config.env
    return AtariOptions(
        frame_skip=e.frame_skip,
        frame_stack=e.frame_stack,
        noop_max=e.noop_max,
        sticky_actions=e.sticky_actions,
        full_action_space=e.full_action_space,
        max_frames_per_episode=e.max_frames_per_episode,
        life_loss_signal=e.terminal_on_life_loss and not evaluation,
    )


def make_render_env(config: Config, env_id: str | None = None) -> gym.Env:
    """One Gymnasium evaluation env of ``config.env`` (or of ``env_id`` with the same
    settings) with ``render_mode="rgb_array"``, for recording videos: its observations
    are those of the run's envs, whatever ``env.backend``; ``render()`` gives [H, W, 3]
    uint8 frames."""
    e = config.env
    env_id = env_id or e.id
    check_env_id(env_id)  # registers the ids of installed suites
    kwargs = {**e.kwargs, "render_mode": "rgb_array"}
    return make_env(env_id, e.max_episode_steps, kwargs, atari_options(config, evaluation=True))


def observation_adapter(config: Config) -> Callable[[Any], np.ndarray] | None:
    """What turns one observation of ``config.env``'s own space (after the user's
    ``env.wrappers``) into what rlkit's envs give the network: ``PackedObservation``
    (Dict, Tuple, Discrete, ... -> one flat array) or ``ChannelsFirst`` (an HWC image ->
    CHW); None when observations are used as they are (a Box, Atari frame stacks)."""
    e = config.env
    check_env_id(e.id, e.imports)
    env = make_env(
        e.id, e.max_episode_steps, e.kwargs, atari_options(config, evaluation=True), e.wrappers
    )
    try:
        while isinstance(env, gym.Wrapper):
            if isinstance(env, PackedObservation | ChannelsFirst):
                return env.observation
            env = env.env
        return None
    finally:
        env.close()
