"""Any supported Gymnasium space as what a DQN agent needs: a Box observation and a
Discrete action.

Observations (``adapt_observations``):

- a Box stays as it is; a 3-D Box laid out height-width-channel (its last dimension
  strictly the smallest, e.g. MiniGrid's (7, 7, 3)) is transposed to channels-first, so
  the network's image torso reads it the right way round (``is_channels_last``);
- Discrete, MultiDiscrete, MultiBinary, Dict and Tuple observations are packed into one
  flat array of the smallest dtype that holds every part losslessly (``PackedObservation``),
  described by an ``ObsLayout``: Discrete and MultiDiscrete parts keep their integer
  values (one column per value; the network one-hot encodes them, so replay stores
  integers, not one-hots), MultiBinary and Box parts their values (flattened), image
  parts their pixels. Dict keys are taken in the space's (sorted) order.
- a Text part (MiniGrid's ``mission``) is dropped with a warning: DQN's encoders take
  numbers; any other space is refused with an EnvError saying which part.

Actions (``adapt_actions``): Discrete (any ``start``); a MultiDiscrete or MultiBinary of
at most ``MAX_JOINT_ACTIONS`` joint actions is flattened to one Discrete (row-major, the
last component varying fastest: ``np.unravel_index``); anything else is refused.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rlkit.envs.base import EnvError
from rlkit.types import ObsLayout, ObsPart

#: the largest MultiDiscrete/MultiBinary action space flattened to one Discrete.
MAX_JOINT_ACTIONS = 256

Packer = Callable[[Any], np.ndarray]


def is_channels_last(shape: tuple[int, ...]) -> bool:
    """A 3-D shape laid out [H, W, C]: its last dimension strictly the smallest."""
    return len(shape) == 3 and shape[2] < min(shape[0], shape[1])


def _is_image(space: spaces.Box) -> bool:
    """A 3-D Box with both spatial sides >= 3 (in either layout) reads as an image."""
    shape = space.shape
    if len(shape) != 3:
        return False
    h, w = (shape[0], shape[1]) if is_channels_last(shape) else (shape[1], shape[2])
    return min(h, w) >= 3


def _pixel_scale(space: spaces.Box) -> float:
    return 1.0 / 255.0 if space.dtype == np.uint8 else 1.0


def _box_part(name: str, space: spaces.Box, start: int) -> tuple[ObsPart, Packer]:
    size = math.prod(space.shape)
    if _is_image(space):
        last = is_channels_last(space.shape)
        h, w, c = space.shape if last else (space.shape[1], space.shape[2], space.shape[0])
        part = ObsPart(name, "image", start, start + size, (c, h, w), (), _pixel_scale(space), last)
    else:
        part = ObsPart(
            name, "box", start, start + size, tuple(space.shape), (), _pixel_scale(space)
        )
    return part, lambda x: np.asarray(x).reshape(-1)


def _integer_part(name: str, nvec: np.ndarray, low: np.ndarray, start: int):
    nvec, low = np.asarray(nvec).reshape(-1), np.asarray(low).reshape(-1)
    part = ObsPart(
        name, "onehot", start, start + nvec.size, (int(nvec.size),), tuple(int(n) for n in nvec)
    )
    return part, lambda x: np.asarray(x).reshape(-1) - low


def _plan(space: spaces.Space, name: str, start: int) -> list[tuple[ObsPart, Packer]]:
    """The parts of ``space`` (recursively for Dict and Tuple) from column ``start``."""
    if isinstance(space, spaces.Box):
        return [_box_part(name, space, start)]
    if isinstance(space, spaces.Discrete):
        return [_integer_part(name, np.array([space.n]), np.array([space.start]), start)]
    if isinstance(space, spaces.MultiDiscrete):
        return [_integer_part(name, space.nvec, space.start, start)]
    if isinstance(space, spaces.MultiBinary):
        size = math.prod(np.atleast_1d(space.n))
        part = ObsPart(name, "box", start, start + size, (size,))
        return [(part, lambda x: np.asarray(x).reshape(-1))]
    if _is_text(space):
        warnings.warn(
            f"observation part {name!r} is a Text space: rlkit drops it (DQN encoders take "
            "numbers; turn it into numbers with an env.wrappers entry to use it)",
            stacklevel=2,
        )
        return []
    if isinstance(space, spaces.Dict | spaces.Tuple):
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        plans: list[tuple[ObsPart, Packer]] = []
        for key, sub in items:
            label = f"{name}.{key}" if isinstance(space, spaces.Dict) else f"{name}[{key}]"
            sub_plans = _plan(sub, label, start + sum(p.stop - p.start for p, _ in plans))
            plans += [(p, _nested(key, f)) for p, f in sub_plans]
        return plans
    raise EnvError(
        f"observation part {name!r} is a {type(space).__name__} space, which rlkit does not "
        "support (Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple; Text is dropped)"
    )


def _is_text(space: spaces.Space) -> bool:
    """A Text space, or a space of strings (MiniGrid's MissionSpace)."""
    if isinstance(space, spaces.Text):
        return True
    if isinstance(space, spaces.Box | spaces.Discrete | spaces.MultiDiscrete | spaces.MultiBinary):
        return False
    if isinstance(space, spaces.Dict | spaces.Tuple):
        return False
    try:
        return isinstance(space.sample(), str)
    except Exception:  # noqa: BLE001 - a custom space whose sampling fails is not text
        return False


def _nested(key: Any, packer: Packer) -> Packer:
    return lambda obs: packer(obs[key])


def _packed_dtype(space: spaces.Space, parts: list[ObsPart]) -> np.dtype:
    """The smallest dtype holding every part's values losslessly."""
    dtypes = []
    for sub in _leaves(space):
        if isinstance(sub, spaces.Discrete | spaces.MultiDiscrete):
            top = int(np.max(np.asarray(sub.n if isinstance(sub, spaces.Discrete) else sub.nvec)))
            dtypes.append(np.min_scalar_type(max(top - 1, 0)))
        elif isinstance(sub, spaces.MultiBinary):
            dtypes.append(np.dtype(np.uint8))
        elif isinstance(sub, spaces.Box):
            dtypes.append(np.dtype(sub.dtype))
    dtype = np.result_type(*dtypes) if dtypes else np.dtype(np.float32)
    if dtype.kind == "b":
        return np.dtype(np.uint8)
    if dtype.kind == "f" or (dtype.kind in "iu" and dtype.itemsize > 4):
        return np.dtype(np.float32)
    return dtype


def _leaves(space: spaces.Space) -> list[spaces.Space]:
    if isinstance(space, spaces.Dict):
        return [leaf for sub in space.spaces.values() for leaf in _leaves(sub)]
    if isinstance(space, spaces.Tuple):
        return [leaf for sub in space.spaces for leaf in _leaves(sub)]
    return [space]


def plan_layout(space: spaces.Space) -> tuple[ObsLayout, list[Packer]]:
    """The layout of ``space`` packed flat, and one packer per part (EnvError when a part
    is unsupported or nothing is left)."""
    plans = _plan(space, "obs", 0)
    if not plans:
        raise EnvError("the observation space has no part rlkit can use (only Text)")
    parts = [p for p, _ in plans]
    dtype = _packed_dtype(space, parts)
    return ObsLayout(tuple(parts), dtype.name), [f for _, f in plans]


class PackedObservation(gym.ObservationWrapper):
    """Any supported observation as one flat array (``obs_layout`` says how to read it)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.obs_layout, self._packers = plan_layout(env.observation_space)
        dtype = np.dtype(self.obs_layout.dtype)
        if dtype.kind == "f":
            low, high = -np.inf, np.inf
        else:
            low, high = np.iinfo(dtype).min, np.iinfo(dtype).max
        self.observation_space = spaces.Box(low, high, (self.obs_layout.size,), dtype)
        self._dtype = dtype

    def observation(self, observation: Any) -> np.ndarray:
        out = np.empty(self.obs_layout.size, dtype=self._dtype)
        for part, pack in zip(self.obs_layout.parts, self._packers, strict=True):
            out[part.start : part.stop] = pack(observation)
        return out


class ChannelsFirst(gym.ObservationWrapper):
    """An [H, W, C] image Box as [C, H, W] (same dtype, same values)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        box = env.observation_space
        self.observation_space = spaces.Box(
            np.moveaxis(box.low, -1, 0), np.moveaxis(box.high, -1, 0), dtype=box.dtype
        )

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(observation, -1, 0))


def adapt_observations(env: gym.Env) -> gym.Env:
    """``env`` with observations a DQN network can read (see the module docstring)."""
    space = env.observation_space
    if isinstance(space, spaces.Box):
        if _is_image(space) and is_channels_last(space.shape):
            return ChannelsFirst(env)
        return env
    return PackedObservation(env)


class FlatActions(gym.ActionWrapper):
    """A small MultiDiscrete/MultiBinary action space (or a Discrete with ``start`` != 0)
    as ``Discrete(n)`` from 0: action ``a`` is ``np.unravel_index(a, nvec) + start``."""

    def __init__(self, env: gym.Env, nvec: np.ndarray, start: np.ndarray, scalar: bool) -> None:
        super().__init__(env)
        self.nvec, self.start, self.scalar = nvec, start, scalar
        self.action_space = spaces.Discrete(int(np.prod(nvec)))

    def action(self, action: Any) -> Any:
        parts = np.array(np.unravel_index(int(action), self.nvec)) + self.start
        if self.scalar:
            return int(parts[0])
        return parts.astype(self.env.action_space.dtype).reshape(self.env.action_space.shape)


def adapt_actions(env: gym.Env, env_id: str) -> gym.Env:
    """``env`` with a ``Discrete(n)`` action space from 0, or EnvError saying why not."""
    space = env.action_space
    if isinstance(space, spaces.Discrete):
        if space.start == 0:
            return env
        return FlatActions(env, np.array([space.n]), np.array([space.start]), scalar=True)
    if isinstance(space, spaces.MultiDiscrete | spaces.MultiBinary):
        if isinstance(space, spaces.MultiBinary):
            nvec, start = np.full(space.shape, 2).reshape(-1), np.zeros(math.prod(space.shape))
        else:
            nvec, start = space.nvec.reshape(-1), np.asarray(space.start).reshape(-1)
        joint = int(np.prod(nvec))
        if joint > MAX_JOINT_ACTIONS:
            raise EnvError(
                f"env.id {env_id!r}: its {type(space).__name__} action space has {joint} "
                f"joint actions; rlkit flattens at most {MAX_JOINT_ACTIONS} into one Discrete"
            )
        return FlatActions(env, nvec, start.astype(np.int64), scalar=False)
    raise EnvError(
        f"env.id {env_id!r} has a {type(space).__name__} action space; DQN needs discrete "
        "actions (Discrete, or a small MultiDiscrete/MultiBinary); discretise it with an "
        "env.wrappers entry"
    )
