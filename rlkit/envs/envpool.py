"""The ``envpool`` backend (optional extra: ``pip install 'rlkit[envpool]'``): EnvPool's
C++ Atari envs as a VecEnv.

EnvPool (``envpool.make(task, env_type="gymnasium", ...)``) does frame skip, max-pool,
grayscale, INTER_AREA resize, frame stacking (repeating the first frame, as Gymnasium
does), no-ops and sticky actions in C++ threads. The adapter runs it with the settings of
``AtariOptions`` and ``reward_clip=False``, ``use_fire_reset=False``,
``episodic_life=False``.

Autoreset: EnvPool resets a finished env on its next step (that action is dropped, the
reward is 0). The adapter resets the finished envs right away (``reset(env_ids)``), so
``VecStep.obs`` is the next episode's first observation and ``final_obs`` the true last
one: every step is a real transition.

Equivalence with the Gymnasium path, tested in ``tests/component/test_backends.py``:

- With ``noop_max=1`` (one no-op frame after each reset on both) and
  ``sticky_actions=0`` the same actions give identical frames, rewards,
  ``terminated``/``truncated`` and life-loss flags. EnvPool cannot run ``noop_max=0``
  (EnvError); both draw ``[1, noop_max]`` no-ops, from their own random streams.
- Except the newest frame of ``final_obs`` where an episode ends inside a frame skip (a
  game over, or a frame cap reached mid-skip): Gymnasium's AtariPreprocessing stops
  there and max-pools a stale frame buffer; EnvPool plays the skip to its end. The
  older frames of that stack are equal.
- Episode caps: EnvPool counts agent steps. ``env.max_episode_steps`` is exact;
  ``env.max_frames_per_episode`` becomes ``max_frames_per_episode // frame_skip`` agent
  steps, which does not count the no-op frames: such an episode is cut at most
  ``noop_max`` frames (one or a few agent steps) later than on the Gymnasium path
  (the same step when ``noop_max=1`` and the cap is a multiple of ``frame_skip``).
- Life loss (``AtariOptions.life_loss_signal``): ``info["lives"]`` went down while the
  game goes on, as ``LifeLossSignal``.
- Seeding: ``reset(seed)`` rebuilds the pool with that seed (EnvPool seeds at
  construction), so it is reproducible; the emulator state cannot be checkpointed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlkit.envs.atari import AtariOptions, LifeCounter, ale_game, cannot_make
from rlkit.envs.base import EnvError, SteppedInOneCall, VecStep

INSTALL = "pip install 'rlkit[envpool]'"


def make_vec_env(
    env_id: str,
    num_envs: int,
    *,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
    atari: AtariOptions | None = None,
) -> EnvPoolVecEnv:
    """``num_envs`` EnvPool envs of the ALE game of ``env_id`` ("ALE/Pong-v5");
    ``kwargs`` go to ``envpool.make`` (e.g. ``num_threads``)."""
    task = f"{ale_game(env_id, 'envpool')}-v5"
    try:
        import envpool
    except ImportError as exc:
        raise EnvError(f"env.backend 'envpool' needs the envpool extra: {INSTALL} ({exc})") from exc
    options = atari or AtariOptions()
    if options.noop_max < 1:
        raise EnvError("env.noop_max must be >= 1 with env.backend 'envpool' (got 0)")
    settings = _settings(options, max_episode_steps) | dict(kwargs or {})

    def build(seed: int) -> Any:
        try:
            return envpool.make(
                task, env_type="gymnasium", num_envs=num_envs, seed=seed, **settings
            )
        except (TypeError, RuntimeError, ValueError) as exc:
            raise cannot_make(env_id, "envpool", exc) from exc

    return EnvPoolVecEnv(build, num_envs, options)


def _settings(options: AtariOptions, max_episode_steps: int | None) -> dict[str, Any]:
    """EnvPool's keyword arguments for the Atari protocol of ``options``."""
    limits = [27_000 * 1000]  # EnvPool needs some cap; this one is never reached
    if max_episode_steps is not None:
        limits.append(max_episode_steps)
    if options.max_frames_per_episode is not None:
        limits.append(options.max_frames_per_episode // options.frame_skip)
    return dict(
        max_episode_steps=min(limits),
        frame_skip=options.frame_skip,
        stack_num=options.frame_stack,
        noop_max=options.noop_max,
        repeat_action_probability=options.sticky_actions,
        full_action_space=options.full_action_space,
        img_height=options.screen_size,
        img_width=options.screen_size,
        gray_scale=True,
        use_inter_area_resize=True,
        reward_clip=False,
        use_fire_reset=False,
        episodic_life=False,
    )


class EnvPoolVecEnv(SteppedInOneCall):
    """An EnvPool Atari pool (synchronous: all envs each step) behind the VecEnv protocol
    (see the module docstring). ``envs`` is the pool; ``build(seed)`` makes a new one."""

    def __init__(self, build: Any, num_envs: int, options: AtariOptions) -> None:
        self._build = build
        self.envs = build(0)
        self.num_envs = num_envs
        space = self.envs.single_observation_space
        self.obs_shape = tuple(space.shape)
        self.obs_dtype = np.dtype(space.dtype)
        self.num_actions = int(self.envs.single_action_space.n)
        self.life_loss_signal = options.life_loss_signal
        self._lives = LifeCounter(num_envs, options.life_loss_signal)

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.envs.close()
            self.envs = self._build(seed)
        obs, info = self.envs.reset()
        self._lives.reset(info["lives"])
        return obs

    def step(self, actions: np.ndarray) -> VecStep:
        obs, reward, terminated, truncated, info = self.envs.step(actions)
        life_loss = self._lives.step(info["lives"], terminated)
        done = terminated | truncated
        final = obs
        if done.any():
            ended = np.flatnonzero(done)
            first, reset_info = self.envs.reset(ended.astype(np.int32))
            obs = obs.copy()
            obs[ended] = first
            lives = self._lives.lives.copy()
            lives[ended] = reset_info["lives"]  # the new games' counters
            self._lives.lives = lives
        return VecStep(
            obs, reward.astype(np.float32, copy=False), terminated, truncated, life_loss, final
        )

    def state_dict(self) -> dict:
        return {"restorable": False, "reason": "envpool: the C++ emulators cannot be saved"}

    def load_state_dict(self, state: dict) -> None:
        raise ValueError("env state was not saved: envpool envs cannot be restored")

    def close(self) -> None:
        self.envs.close()
