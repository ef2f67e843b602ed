"""The Gymnasium backend: ``SyncVectorEnv`` with same-step autoreset behind the VecEnv
protocol.

``make_sync_vec_env`` builds the Gymnasium vector env itself (``num_envs`` copies in a
``SyncVectorEnv``, SAME_STEP autoreset: a step that ends an episode returns the first
observation of the next one and the real last observation in ``info["final_obs"]``);
ALE ids get Gymnasium's Atari preprocessing (``AtariPreprocessing`` + ``TimeLimit`` +
``FrameStackObservation``, repeat padding) and, when asked for, ``LifeLossSignal``.
``GymnasiumVecEnv`` adapts any Gymnasium vector env to ``VecEnv``; ``make_vec_env`` is
the backend entry point ``rlkit.envs.make("gymnasium", ...)`` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode

from rlkit.envs.atari import AtariOptions, LifeLossSignal
from rlkit.envs.base import EnvError, SteppedInOneCall, VecStep
from rlkit.envs.spaces import adapt_actions, adapt_observations
from rlkit.envs.state import capture_env_state, restore_env_state
from rlkit.envs.suites import check_env_id, import_module, suite_of
from rlkit.types import ObsLayout


class MinAtarObservation(gym.ObservationWrapper):
    """MinAtar's [10, 10, C] bool grid as channels-first float32 [C, 10, 10]."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        h, w, c = env.observation_space.shape
        self.observation_space = gym.spaces.Box(0.0, 1.0, (c, h, w), np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(observation, -1, 0), dtype=np.float32)


def make_env(
    env_id: str,
    max_episode_steps: int | None,
    kwargs: dict[str, Any],
    atari: AtariOptions | None = None,
    wrappers: Sequence[dict] = (),
) -> gym.Env:
    """One Gymnasium env of ``env_id`` with rlkit's wrappers: the Atari preprocessing of
    ``atari`` for ALE ids, channels-first grids for MinAtar; then the user's ``wrappers``
    ({target: "module:Callable", kwargs}) in order, and the adapters of
    ``rlkit.envs.spaces`` (a Discrete action space from 0, a Box observation). EnvError
    for a missing extra, rejected ``kwargs`` or an unsupported space."""
    suite = suite_of(env_id)
    try:
        if suite == "atari":
            env = _make_atari(env_id, max_episode_steps, kwargs, atari or AtariOptions())
        else:
            env = gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
            env = MinAtarObservation(env) if suite == "minatar" else env
    except gym.error.DependencyNotInstalled as exc:
        raise EnvError(f"env.id {env_id!r} needs an extra dependency: {exc}") from exc
    except TypeError as exc:
        raise EnvError(f"env.kwargs for {env_id!r} rejected: {exc}") from exc
    for i, entry in enumerate(wrappers):
        env = apply_wrapper(env, entry, f"env.wrappers[{i}]")
    return adapt_observations(adapt_actions(env, env_id))


def apply_wrapper(env: gym.Env, entry: dict, key: str) -> gym.Env:
    """``target(env, **kwargs)`` for one env.wrappers entry; EnvError naming ``key``."""
    module, _, name = str(entry["target"]).partition(":")
    target = getattr(import_module(module, f"{key}.target"), name, None)
    if not callable(target):
        raise EnvError(f"{key}.target: {module!r} has no callable {name!r}")
    try:
        wrapped = target(env, **dict(entry.get("kwargs") or {}))
    except Exception as exc:  # noqa: BLE001 - a user wrapper may raise anything
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EnvError(f"{key}: {entry['target']} failed: {first}") from exc
    if not isinstance(wrapped, gym.Env):
        raise EnvError(f"{key}: {entry['target']} returned {type(wrapped).__name__}, not an env")
    return wrapped


def _make_atari(
    env_id: str, max_episode_steps: int | None, kwargs: dict[str, Any], options: AtariOptions
) -> gym.Env:
    """One ALE env: emulator settings, AtariPreprocessing, time limit, frame stack, and the
    life-loss signal when asked for. A life loss never ends the episode here."""
    env = gym.make(
        env_id,
        frameskip=1,  # AtariPreprocessing skips (and max-pools the last two frames)
        repeat_action_probability=options.sticky_actions,
        full_action_space=options.full_action_space,
        max_num_frames_per_episode=options.max_frames_per_episode,  # frames, incl. no-ops
        **kwargs,
    )
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=options.noop_max,
        frame_skip=options.frame_skip,
        screen_size=options.screen_size,
        terminal_on_life_loss=False,  # it would end (and reset) the game at every life
        grayscale_obs=True,
        scale_obs=False,
    )
    if max_episode_steps is not None:  # in agent steps, not frames
        env = gym.wrappers.TimeLimit(env, max_episode_steps)
    env = gym.wrappers.FrameStackObservation(env, options.frame_stack)
    return LifeLossSignal(env) if options.life_loss_signal else env


def make_sync_vec_env(
    env_id: str,
    num_envs: int,
    *,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
    atari: AtariOptions | None = None,
    wrappers: Sequence[dict] = (),
) -> gym.vector.SyncVectorEnv:
    """``num_envs`` copies of ``env_id`` in a SyncVectorEnv with SAME_STEP autoreset.

    ALE ids ("ALE/Pong-v5") get the Atari preprocessing of ``atari`` (uint8 frame stacks
    [stack, 84, 84]); with ``atari.life_loss_signal`` each step's info also holds
    ``info["life_loss"]``, [num_envs] bool (see LifeLossSignal). MinAtar ids
    ("MinAtar/Breakout-v1") give channels-first float grids.
    Raises EnvError for an unknown id, a missing extra or a non-discrete action space.
    """
    check_env_id(env_id)
    kwargs = dict(kwargs or {})
    probe = make_env(env_id, max_episode_steps, kwargs, atari, wrappers)
    check_spaces(env_id, probe.observation_space, probe.action_space)
    fns = [
        lambda: make_env(env_id, max_episode_steps, kwargs, atari, wrappers)
        for _ in range(num_envs - 1)
    ]
    envs = gym.vector.SyncVectorEnv([lambda: probe, *fns], autoreset_mode=AutoresetMode.SAME_STEP)
    return envs


def make_vec_env(
    env_id: str,
    num_envs: int,
    *,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
    atari: AtariOptions | None = None,
    wrappers: Sequence[dict] = (),
) -> GymnasiumVecEnv:
    """The Gymnasium backend: ``make_sync_vec_env(...)`` behind the VecEnv protocol."""
    envs = make_sync_vec_env(
        env_id,
        num_envs,
        max_episode_steps=max_episode_steps,
        kwargs=kwargs,
        atari=atari,
        wrappers=wrappers,
    )
    return GymnasiumVecEnv(envs)


def check_spaces(env_id: str, obs_space: gym.Space, action_space: gym.Space) -> None:
    if not isinstance(action_space, gym.spaces.Discrete):
        raise EnvError(
            f"env.id {env_id!r} has a {type(action_space).__name__} action space; "
            "DQN needs a discrete action space"
        )
    if not isinstance(obs_space, gym.spaces.Box):
        raise EnvError(
            f"env.id {env_id!r} has a {type(obs_space).__name__} observation space; "
            "rlkit reads Box observations (rlkit.envs.spaces adapts the others)"
        )


def autoreset_mode(envs: gym.vector.VectorEnv) -> AutoresetMode:
    """The vector env's autoreset mode (NEXT_STEP when it does not say)."""
    mode = envs.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
    return AutoresetMode(mode) if not isinstance(mode, AutoresetMode) else mode


def space_info(envs: Any) -> tuple[tuple[int, ...], np.dtype, int]:
    """(single observation shape, observation dtype, number of actions) of a VecEnv or a
    Gymnasium vector env."""
    if hasattr(envs, "obs_shape"):
        return tuple(envs.obs_shape), np.dtype(envs.obs_dtype), int(envs.num_actions)
    obs_space = envs.single_observation_space
    return tuple(obs_space.shape), np.dtype(obs_space.dtype), int(envs.single_action_space.n)


def layout_of(envs: Any) -> ObsLayout | None:
    """The ``ObsLayout`` of a VecEnv's or Gymnasium vector env's packed observations
    (``rlkit.envs.spaces.PackedObservation``), or None for plain Box observations."""
    if hasattr(envs, "obs_layout"):
        return envs.obs_layout
    subs = getattr(envs, "envs", None)
    if subs:
        return getattr(subs[0], "obs_layout", None)
    return None


def life_lost(info: dict, num_envs: int) -> np.ndarray:
    """``info["life_loss"]`` of a vector step as [N] bool (all False when absent)."""
    flags = info.get("life_loss")
    if flags is None:
        return np.zeros(num_envs, dtype=bool)
    mask = info.get("_life_loss")
    flags = np.asarray(flags, dtype=bool)
    return flags & np.asarray(mask, dtype=bool) if mask is not None else flags


class GymnasiumVecEnv(SteppedInOneCall):
    """A Gymnasium vector env (SAME_STEP or NEXT_STEP autoreset) as a ``VecEnv``.

    SAME_STEP: ``final_obs`` comes from ``info["final_obs"]``. NEXT_STEP: the finished
    envs are reset right away (``reset(options={"reset_mask": done})``), so no step is
    ever a reset step. ``life_loss`` is ``info["life_loss"]`` of ``LifeLossSignal``
    (False when absent). ``envs`` is the wrapped Gymnasium vector env.
    """

    def __init__(self, envs: gym.vector.VectorEnv) -> None:
        self.envs = envs
        self.num_envs = envs.num_envs
        self.obs_shape, self.obs_dtype, self.num_actions = space_info(envs)
        self.obs_layout = layout_of(envs)
        self.same_step = autoreset_mode(envs) == AutoresetMode.SAME_STEP

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, _ = self.envs.reset(seed=seed)
        return obs

    def step(self, actions: np.ndarray) -> VecStep:
        obs, reward, terminated, truncated, info = self.envs.step(actions)
        reward = np.asarray(reward, dtype=np.float32)
        done = terminated | truncated
        final = obs
        if done.any():
            if self.same_step:
                final = obs.copy()
                final_obs, final_mask = info["final_obs"], info["_final_obs"]
                for i in np.flatnonzero(final_mask):
                    final[i] = final_obs[i]
            else:
                obs, _ = self.envs.reset(options={"reset_mask": np.asarray(done, dtype=bool)})
        life_loss = life_lost(info, self.num_envs)
        return VecStep(obs, reward, terminated, truncated, life_loss, final)

    def state_dict(self) -> dict:
        """Every sub-env's state (``rlkit.envs.state.capture_env_state``)."""
        return capture_env_state(self.envs)

    def load_state_dict(self, state: dict) -> None:
        restore_env_state(self.envs, state)

    def close(self) -> None:
        self.envs.close()
