"""Preallocated ring storage for transitions, shared by the uniform and prioritized buffers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def write_fields_and_advance(storage, i: int, action, reward, discount) -> int:
    """Write slot ``i``'s action, reward and discount, advance the ring; returns ``i``."""
    storage.action[i] = action
    storage.reward[i] = reward
    storage.discount[i] = discount
    storage.pos = i + 1 if i + 1 < storage.capacity else 0
    if storage.size < storage.capacity:
        storage.size += 1
    return i


class RingStorage:
    """Fixed-size numpy arrays written as a ring: the oldest transition is overwritten first.

    Arrays (C = capacity): ``obs`` and ``next_obs`` [C, *obs_shape] of ``obs_dtype``,
    ``action`` [C] int64, ``reward`` [C] float32 (the possibly n-step discounted return),
    ``discount`` [C] float32 (the bootstrap factor, 0 at termination).
    """

    def __init__(
        self, capacity: int, obs_shape: Sequence[int], obs_dtype: np.dtype | type = np.float32
    ) -> None:
        if int(capacity) < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = c = int(capacity)
        self.obs_shape = tuple(int(d) for d in obs_shape)
        self.obs = np.zeros((c, *self.obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((c, *self.obs_shape), dtype=obs_dtype)
        self.action = np.zeros(c, dtype=np.int64)
        self.reward = np.zeros(c, dtype=np.float32)
        self.discount = np.zeros(c, dtype=np.float32)
        self.pos = 0  # the slot the next transition goes to
        self.size = 0  # number of slots holding a transition
        self.num_dead = 0  # slots evicted early: never here (see FrameStackStorage)

    @property
    def nbytes(self) -> int:
        """Bytes of the five transition arrays."""
        return sum(
            a.nbytes for a in (self.obs, self.next_obs, self.action, self.reward, self.discount)
        )

    def add_one(self, obs, action, reward, next_obs, discount) -> int:
        """Write one transition into the next slot and return that slot."""
        i = self.pos
        self.obs[i] = obs
        self.next_obs[i] = next_obs
        return write_fields_and_advance(self, i, action, reward, discount)

    def add_many(self, obs, action, reward, next_obs, discount) -> np.ndarray:
        """Write ``n`` transitions (leading dimension) in order; returns their [n] slots.

        When ``n`` exceeds the capacity only the last ``capacity`` transitions are kept,
        exactly as ``n`` calls of ``add_one`` would leave them.
        """
        n = len(obs)
        arrays = [np.asarray(a) for a in (obs, action, reward, next_obs, discount)]
        for name, a in zip(("action", "reward", "next_obs", "discount"), arrays[1:], strict=True):
            if a.ndim > 0 and len(a) != n:
                raise ValueError(f"replay add: obs has {n} transitions but {name} has {len(a)}")
        skip = max(0, n - self.capacity)
        if skip:
            arrays = [a[skip:] if a.ndim > 0 else a for a in arrays]
        m = n - skip
        start = (self.pos + skip) % self.capacity
        slots = (start + np.arange(m, dtype=np.int64)) % self.capacity
        first = min(m, self.capacity - start)  # contiguous part before the wrap
        dests = (self.obs, self.action, self.reward, self.next_obs, self.discount)
        for dest, src in zip(dests, arrays, strict=True):
            if src.ndim == 0:  # a scalar (e.g. one discount) broadcast to every row
                dest[slots] = src
                continue
            dest[start : start + first] = src[:first]
            if first < m:
                dest[: m - first] = src[first:]
        self.pos = (start + m) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return slots

    def gather(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """Fresh copies (obs, action, reward, next_obs, discount) of the rows ``indices``."""
        return (
            self.obs.take(indices, axis=0),
            self.action.take(indices),
            self.reward.take(indices),
            self.next_obs.take(indices, axis=0),
            self.discount.take(indices),
        )

    def take_evicted(self) -> list[int]:
        """Slots evicted early since the last call: none for this storage."""
        return []

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The filled slots' arrays, for a checkpoint: views of the live arrays, not
        copies, so that saving a full buffer needs no second buffer's worth of memory
        (save them before the storage changes)."""
        n = self.size
        return {
            name: getattr(self, name)[:n]
            for name in ("obs", "action", "reward", "next_obs", "discount")
        }

    def load_arrays(self, arrays: dict, size: int, pos: int) -> None:
        """Restore what ``state_arrays`` returned (arrays may be tensors)."""
        for name in ("obs", "action", "reward", "next_obs", "discount"):
            getattr(self, name)[:size] = np.asarray(arrays[name])
        self.size, self.pos = int(size), int(pos)
