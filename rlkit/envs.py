"""Environment construction: Gymnasium vector envs with same-step autoreset.

Training and evaluation both use ``gymnasium.vector.SyncVectorEnv`` in SAME_STEP
autoreset mode: a step that ends an episode returns the first observation of the next
episode, and the real last observation is in ``info["final_obs"]``. So every step is a
real transition for every env. The collector also handles NEXT_STEP vector envs.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode


class EnvError(ValueError):
    """A user-facing environment problem (unknown id, unsupported spaces, missing extra)."""


def check_env_id(env_id: str) -> None:
    """Raise EnvError naming close matches when ``env_id`` is not registered."""
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
    raise EnvError(f"env.id: unknown Gymnasium environment {env_id!r}{hint}")


def _make_one(env_id: str, max_episode_steps: int | None, kwargs: dict[str, Any]) -> gym.Env:
    try:
        return gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise EnvError(f"env.id {env_id!r} needs an extra dependency: {exc}") from exc
    except TypeError as exc:
        raise EnvError(f"env.kwargs for {env_id!r} rejected: {exc}") from exc


def make_vec_env(
    env_id: str,
    num_envs: int,
    *,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
) -> gym.vector.VectorEnv:
    """``num_envs`` copies of ``env_id`` in a SyncVectorEnv with SAME_STEP autoreset.

    Raises EnvError for an unknown id or a non-discrete action space (DQN needs one).
    """
    check_env_id(env_id)
    kwargs = dict(kwargs or {})
    probe = _make_one(env_id, max_episode_steps, kwargs)
    check_spaces(env_id, probe.observation_space, probe.action_space)
    fns = [lambda: _make_one(env_id, max_episode_steps, kwargs) for _ in range(num_envs - 1)]
    envs = gym.vector.SyncVectorEnv([lambda: probe, *fns], autoreset_mode=AutoresetMode.SAME_STEP)
    return envs


def check_spaces(env_id: str, obs_space: gym.Space, action_space: gym.Space) -> None:
    if not isinstance(action_space, gym.spaces.Discrete):
        raise EnvError(
            f"env.id {env_id!r} has a {type(action_space).__name__} action space; "
            "DQN needs a discrete action space"
        )
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvError(
            f"env.id {env_id!r} has a {type(obs_space).__name__} observation space; "
            "rlkit supports Box observations"
        )


def autoreset_mode(envs: gym.vector.VectorEnv) -> AutoresetMode:
    """The vector env's autoreset mode (NEXT_STEP when it does not say)."""
    mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    return AutoresetMode(mode) if not isinstance(mode, AutoresetMode) else mode


def space_info(envs: gym.vector.VectorEnv) -> tuple[tuple[int, ...], np.dtype, int]:
    """(single observation shape, observation dtype, number of actions)."""
    obs_space = envs.single_observation_space
    return tuple(obs_space.shape), np.dtype(obs_space.dtype), int(envs.single_action_space.n)
