"""Envs from a config: ``make_envs`` reads ``config.env`` (backend included)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlkit.envs.atari import AtariOptions
from rlkit.envs.base import VecEnv, make
from rlkit.envs.gymnasium import make_env
from rlkit.envs.suites import check_env_id

if TYPE_CHECKING:
    import gymnasium as gym

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
