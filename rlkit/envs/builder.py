"""Envs from a config: ``make_envs`` reads ``config.env`` (backend included)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlkit.envs.atari import AtariOptions
from rlkit.envs.base import VecEnv, make

if TYPE_CHECKING:
    from rlkit.config import Config


def make_envs(config: Config, num_envs: int, *, evaluation: bool = False) -> VecEnv:
    """``num_envs`` envs of ``config.env`` on the backend ``config.env.backend``.

    Training envs (``evaluation`` False) of an Atari config with
    ``env.terminal_on_life_loss`` report ``VecStep.life_loss`` at each lost life while the
    game goes on; evaluation envs never do: they play whole games.
    """
    e = config.env
    atari = AtariOptions(
        frame_skip=e.frame_skip,
        frame_stack=e.frame_stack,
        noop_max=e.noop_max,
        sticky_actions=e.sticky_actions,
        full_action_space=e.full_action_space,
        max_frames_per_episode=e.max_frames_per_episode,
        life_loss_signal=e.terminal_on_life_loss and not evaluation,
    )
    return make(
        e.backend,
        e.id,
        num_envs,
        max_episode_steps=e.max_episode_steps,
        kwargs=e.kwargs,
        atari=atari,
    )
