"""The ``ale_vector`` backend: ALE's own ``AtariVectorEnv`` (C++ threads) as a VecEnv.

``ale_py.vector_env.AtariVectorEnv`` does frame skip, max-pooling of the last two frames,
grayscale, INTER_AREA resize to 84x84, frame stacking, no-ops and sticky actions in C++.
The adapter runs it with the settings of ``AtariOptions`` and everything else off
(``reward_clipping=False``, ``use_fire_reset=False``, ``episodic_life=False``), in its
``SameStep`` autoreset mode, so a step that ends an episode returns the next episode's
first observation and ``info["final_obs"]`` the true last one.

Equivalence with the Gymnasium path (``rlkit.envs.gymnasium``), tested in
``tests/component/test_backends.py``:

- With ``noop_max=0`` and ``sticky_actions=0`` the same actions give identical frames,
  rewards, ``terminated``/``truncated`` and life-loss flags: the emulator, the resize
  (INTER_AREA) and the max-pool are the same.
- Frame stacks of a new episode: AtariVectorEnv pads the older slots with zero frames,
  Gymnasium's FrameStackObservation with copies of the first frame; the adapter repeats
  the first frame (``RepeatPadding``), so stacks are equal.
- No-op starts: AtariVectorEnv draws ``noop_max`` no-ops uniformly from
  ``[0, noop_max - 1]`` emulator frames, Gymnasium from ``[1, noop_max]``; and its random
  streams (no-ops, sticky actions) are its own, so with no-ops or sticky actions on the
  two backends play different (equally distributed but for that range) episodes.
- Life loss (``AtariOptions.life_loss_signal``): ``info["lives"]`` went down while the
  game goes on, as ``LifeLossSignal``; on a step that also ends the episode (game over,
  or a frame-cap truncation that coincides with a lost life) AtariVectorEnv reports the
  next episode's lives, so no life loss is reported there (Gymnasium reports one for the
  truncation case).
- ``max_episode_steps`` (agent steps) cannot be applied: AtariVectorEnv resets all envs
  or none, so a per-env time limit is refused; ``max_frames_per_episode`` (emulator
  frames, incl. no-ops) is AtariVectorEnv's own cap.
- Seeding: ``reset(seed)`` seeds env ``i`` from ``seed`` (reproducible); the emulator
  state cannot be checkpointed (``state_dict`` says so; resuming restarts episodes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlkit.envs.atari import (
    AtariOptions,
    LifeCounter,
    RepeatPadding,
    ale_game,
    cannot_make,
    snake_case,
)
from rlkit.envs.base import EnvError, VecStep


def make_vec_env(
    env_id: str,
    num_envs: int,
    *,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
    atari: AtariOptions | None = None,
) -> AleVectorEnv:
    """``num_envs`` copies of the ALE game of ``env_id`` ("ALE/Pong-v5") in one
    AtariVectorEnv; ``kwargs`` go to AtariVectorEnv (e.g. ``num_threads``)."""
    game = snake_case(ale_game(env_id, "ale_vector"))
    if max_episode_steps is not None:
        raise EnvError(
            "env.max_episode_steps is not supported by env.backend 'ale_vector'; "
            "cap episodes with env.max_frames_per_episode (emulator frames) instead"
        )
    try:
        from ale_py.vector_env import AtariVectorEnv
    except ImportError as exc:
        raise EnvError(f"env.backend 'ale_vector' needs ale-py >= 0.11 ({exc})") from exc
    options = atari or AtariOptions()
    try:
        envs = AtariVectorEnv(game, num_envs, **_settings(options), **dict(kwargs or {}))
    except (TypeError, RuntimeError, ValueError) as exc:
        raise cannot_make(env_id, "ale_vector", exc) from exc
    return AleVectorEnv(envs, options)


def _settings(options: AtariOptions) -> dict[str, Any]:
    """AtariVectorEnv's keyword arguments for the Atari protocol of ``options``."""
    return dict(
        autoreset_mode="SameStep",
        frameskip=options.frame_skip,
        stack_num=options.frame_stack,
        noop_max=options.noop_max,
        repeat_action_probability=options.sticky_actions,
        full_action_space=options.full_action_space,
        max_num_frames_per_episode=options.max_frames_per_episode or 0,  # 0: no cap
        img_height=options.screen_size,
        img_width=options.screen_size,
        grayscale=True,
        maxpool=True,
        reward_clipping=False,
        use_fire_reset=False,
        episodic_life=False,
        life_loss_info=False,
    )


class AleVectorEnv:
    """``AtariVectorEnv`` (SameStep autoreset) behind the VecEnv protocol (see the module
    docstring for how it matches the Gymnasium path). ``envs`` is the AtariVectorEnv."""

    def __init__(self, envs: Any, options: AtariOptions) -> None:
        self.envs = envs
        self.num_envs = int(envs.num_envs)
        space = envs.single_observation_space
        self.obs_shape = tuple(space.shape)
        self.obs_dtype = np.dtype(space.dtype)
        self.num_actions = int(envs.single_action_space.n)
        self.life_loss_signal = options.life_loss_signal
        self._padding = RepeatPadding(self.num_envs, options.frame_stack)
        self._lives = LifeCounter(self.num_envs, options.life_loss_signal)

    def reset(self, seed: int | None = None) -> np.ndarray:
        obs, info = self.envs.reset(seed=seed)
        self._padding.reset(obs)
        self._lives.reset(info["lives"])
        return obs

    def step(self, actions: np.ndarray) -> VecStep:
        self.step_async(actions)
        return self.step_wait()

    def step_async(self, actions: np.ndarray) -> None:
        """Hand ``actions`` to the emulator threads and return while they step."""
        self.envs.send(actions)

    def step_wait(self) -> VecStep:
        obs, reward, terminated, truncated, info = self.envs.recv()
        done = terminated | truncated
        final = obs
        if done.any():
            final = obs.copy()
            ended = np.flatnonzero(done)
            final[ended] = info["final_obs"][ended]
        self._padding.advance(obs, final, done)
        life_loss = self._lives.step(info["lives"], terminated)
        return VecStep(obs, reward.astype(np.float32), terminated, truncated, life_loss, final)

    def state_dict(self) -> dict:
        return {"restorable": False, "reason": "ale_vector: the C++ emulators cannot be saved"}

    def load_state_dict(self, state: dict) -> None:
        raise ValueError("env state was not saved: ale_vector envs cannot be restored")

    def close(self) -> None:
        self.envs.close()
