"""The VecEnv protocol every env backend implements, and backends by name.

Everything above the envs layer (collector, evaluation, loops) sees a ``VecEnv``: a batch
of ``num_envs`` environments whose every ``step`` is a real transition for every env.
Where an episode ends, ``VecStep.final_obs`` holds its true last observation and
``VecStep.obs`` the first observation of the next episode; how a backend autoresets
(same step, next step, ...) stays inside its adapter. The arrays a backend returns belong
to the caller: it never writes into them afterwards (no reused buffers), so the loops keep
them without copying (a backend that reuses buffers copies them in its adapter).

A backend is one module ``rlkit.envs.<name>`` that defines ``make_vec_env(env_id,
num_envs, *, max_episode_steps=None, kwargs=None, atari=None) -> VecEnv``; ``make``
imports it by name, so adding a backend is adding one file.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from rlkit.envs.atari import AtariOptions


class EnvError(ValueError):
    """A user-facing environment problem (unknown id, unsupported spaces, missing extra)."""


class VecStep(NamedTuple):
    """One step of a VecEnv. Arrays have a leading ``num_envs`` dimension ``N``."""

    obs: np.ndarray  # [N, *obs_shape] what to act on next (a new episode's first where one ended)
    reward: np.ndarray  # [N] float32, the env's own reward (never clipped here)
    terminated: np.ndarray  # [N] bool, the episode (game) ended by the MDP
    truncated: np.ndarray  # [N] bool, the episode was cut (time/frame limit)
    life_loss: np.ndarray  # [N] bool, a life lost while the game goes on (only when asked for)
    final_obs: np.ndarray  # [N, *obs_shape] the true observation after this step's action
    # (== obs where no episode ended)


@runtime_checkable
class VecEnv(Protocol):
    """A batch of environments with normalised autoreset (see the module docstring)."""

    num_envs: int
    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype
    num_actions: int

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start every env's episode; returns observations [N, *obs_shape]."""
        ...

    def step(self, actions: np.ndarray) -> VecStep:
        """Act with ``actions`` [N] int64 in every env."""
        ...

    def step_async(self, actions: np.ndarray) -> None:
        """Start ``step(actions)``; a backend whose envs run outside Python (C++ threads,
        subprocesses) returns at once, so the caller can work while they step."""
        ...

    def step_wait(self) -> VecStep:
        """The result of the step ``step_async`` started."""
        ...

    def state_dict(self) -> dict:
        """The envs' state; ``{"restorable": False, "reason": str}`` when it cannot be saved."""
        ...

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict``'s result; ValueError when not restorable or mismatched."""
        ...

    def close(self) -> None: ...


class SteppedInOneCall:
    """``step_async`` / ``step_wait`` for a VecEnv whose ``step`` runs in the calling
    thread: the step happens in ``step_wait``."""

    _next_actions: np.ndarray | None = None

    def step_async(self, actions: np.ndarray) -> None:
        self._next_actions = actions

    def step_wait(self) -> VecStep:
        actions, self._next_actions = self._next_actions, None
        if actions is None:
            raise RuntimeError("step_wait() without step_async()")
        return self.step(actions)  # type: ignore[attr-defined]


_DEFINES_MAKE = re.compile(r"^def make_vec_env\(", re.MULTILINE)


def backend_names() -> list[str]:
    """Names of the env backends: every module of ``rlkit.envs`` (on the package's
    ``__path__``) that defines a top-level ``make_vec_env``, found by reading the files
    without importing them."""
    import rlkit.envs

    names = set()
    for directory in rlkit.envs.__path__:
        for info in pkgutil.iter_modules([directory]):
            if info.ispkg or info.name.startswith("_"):
                continue
            source = (Path(directory) / f"{info.name}.py").read_text(encoding="utf-8")
            if _DEFINES_MAKE.search(source):
                names.add(info.name)
    return sorted(names)


def make(
    backend: str,
    env_id: str,
    num_envs: int,
    *,
    max_episode_steps: int | None = None,
    kwargs: dict[str, Any] | None = None,
    atari: AtariOptions | None = None,
    imports: Sequence[str] = (),
    wrappers: Sequence[dict] = (),
) -> VecEnv:
    """``num_envs`` envs of ``env_id`` from ``rlkit.envs.<backend>.make_vec_env``.

    ``max_episode_steps`` is in agent steps; ``atari`` holds the Atari protocol of ALE ids;
    ``imports`` are imported first (packages that register envs); ``wrappers`` go to
    backends that apply Gymnasium wrappers (EnvError for the others).
    Raises EnvError for an unknown backend (naming the available ones) and whatever the
    backend raises for an env it cannot make or a missing extra.
    """
    names = backend_names()
    if backend not in names:
        raise EnvError(f"env.backend: unknown backend {backend!r} (choose from {', '.join(names)})")
    if num_envs < 1:
        raise EnvError(f"env.num_envs must be >= 1, got {num_envs}")
    from rlkit.envs.suites import import_module

    for i, name in enumerate(imports):
        import_module(name, f"env.imports[{i}]")
    module = importlib.import_module(f"rlkit.envs.{backend}")
    extra = {}
    if wrappers:
        if "wrappers" not in inspect.signature(module.make_vec_env).parameters:
            raise EnvError(
                f"env.wrappers: the {backend} backend does not apply Gymnasium wrappers "
                "(env.backend gymnasium does)"
            )
        extra["wrappers"] = tuple(wrappers)
    return module.make_vec_env(
        env_id, num_envs, max_episode_steps=max_episode_steps, kwargs=kwargs, atari=atari, **extra
    )
