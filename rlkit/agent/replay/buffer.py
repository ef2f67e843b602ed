"""Uniform and proportional prioritized experience replay over one ring storage.

Prioritized replay follows Schaul et al. 2016 ("Prioritized Experience Replay"),
proportional variant: ``p_i = (|td_i| + eps) ** alpha``, ``P(i) = p_i / sum_k p_k``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from rlkit.agent.replay.device_frames import DeviceFrameStorage
from rlkit.agent.replay.frames import FrameStackStorage
from rlkit.agent.replay.storage import RingStorage
from rlkit.agent.replay.sum_tree import SumTree
from rlkit.types import Batch, Transition


def _tensor_converter(device: torch.device) -> Callable[[np.ndarray], torch.Tensor]:
    """numpy -> torch on ``device``: zero-copy on CPU, pinned + non-blocking copy on CUDA."""
    if device.type == "cpu":
        return torch.from_numpy
    if device.type == "cuda":
        return lambda a: torch.from_numpy(a).pin_memory().to(device, non_blocking=True)
    return lambda a: torch.from_numpy(a).to(device)


class ReplayBuffer:
    """Uniform replay: ``sample`` draws slots uniformly with replacement; weights are 1.

    Sampling rules shared by every buffer (uniform, prioritized, with or without
    ``dedup_frames``): ``batch_size`` < 1 and an empty buffer (nothing stored, or every
    stored transition evicted) raise ValueError; draws are with replacement, so a
    ``batch_size`` larger than ``len(self)`` is allowed and repeats transitions.

    Args:
        capacity: number of transitions kept; the oldest is overwritten first.
        obs_shape: shape of one observation, e.g. ``(4,)`` or ``(4, 84, 84)``.
        obs_dtype: storage dtype of observations (``np.uint8`` for frames).
        device: torch device of the sampled ``Batch`` tensors.
        seed: seed of the numpy Generator used for sampling.
        dedup_frames: store uint8 frame stacks [S, H, W] with each distinct frame once
            (``rlkit.agent.replay.frames.FrameStackStorage``, ~1 frame per transition).
        frames_on_device: with ``dedup_frames``, mirror the frame pool on ``device`` and
            gather the stacks of a batch there
            (``rlkit.agent.replay.device_frames.DeviceFrameStorage``).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        obs_dtype: np.dtype | type = np.float32,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        dedup_frames: bool = False,
        frames_on_device: bool = False,
    ) -> None:
        self.device = torch.device(device)
        if frames_on_device and not dedup_frames:
            raise ValueError("frames_on_device needs dedup_frames (uint8 frame stacks)")
        if frames_on_device:
            self._storage = DeviceFrameStorage(capacity, obs_shape, obs_dtype, device=self.device)
        else:
            storage_cls = FrameStackStorage if dedup_frames else RingStorage
            self._storage = storage_cls(capacity, obs_shape, obs_dtype)
        self._obs_ndim = len(self._storage.obs_shape)
        self._to_tensor = _tensor_converter(self.device)
        self._rng = np.random.default_rng(seed)

    # ------------------------------------------------------------------ size
    def __len__(self) -> int:
        """Number of transitions stored (at most ``capacity``)."""
        return self._storage.size - self._storage.num_dead

    @property
    def capacity(self) -> int:
        return self._storage.capacity

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self._storage.obs_shape

    @property
    def nbytes(self) -> int:
        """Bytes held by the buffer's arrays (transition storage, plus the sum-tree if any)."""
        return self._storage.nbytes

    # ------------------------------------------------------------------ writing
    def add(self, obs, action, reward, next_obs, discount) -> int | np.ndarray:
        """Store one transition, or a batch of them along a leading dimension; returns the
        slot (one) or slots (a batch) they went to.

        One: ``obs``/``next_obs`` of shape ``obs_shape``, scalar ``action``, ``reward``
        (the possibly n-step discounted return) and ``discount`` (bootstrap factor).
        Batch: ``obs``/``next_obs`` [n, *obs_shape] and [n] (or scalar) for the others;
        equivalent to ``n`` single adds in order.
        """
        ndim = obs.ndim if type(obs) is np.ndarray else np.ndim(obs)
        if ndim == self._obs_ndim:
            slot = self._storage.add_one(obs, action, reward, next_obs, discount)
            self._added_one(slot)
            return slot
        elif ndim == self._obs_ndim + 1 and len(obs) == 1:  # a batch of one: the cheap path
            row = [x[0] if np.ndim(x) else x for x in (action, reward, discount)]
            slot = self._storage.add_one(obs[0], row[0], row[1], next_obs[0], row[2])
            self._added_one(slot)
            return np.array([slot], dtype=np.int64)
        elif ndim == self._obs_ndim + 1:
            slots = self._storage.add_many(obs, action, reward, next_obs, discount)
            self._added_many(slots)
            return slots
        else:
            raise ValueError(
                f"replay add: obs has {ndim} dims; expected {self._obs_ndim} (one transition) "
                f"or {self._obs_ndim + 1} (a batch) for obs_shape {self.obs_shape}"
            )

    def add_transition(self, transition: Transition, priorities: np.ndarray | None = None) -> None:
        """Store an ``rlkit.types.Transition`` (K transitions with a leading dimension);
        ``priorities`` [K]: their initial priorities as ``update_priorities`` takes them
        (e.g. an actor's own TD errors, Ape-X) instead of the running maximum."""
        slots = self.add(
            transition.obs,
            transition.action,
            transition.reward,
            transition.next_obs,
            transition.discount,
        )
        if priorities is not None:
            self.update_priorities(np.asarray(slots, dtype=np.int64).reshape(-1), priorities)

    def update_priorities(self, indices: np.ndarray, td_errors) -> None:
        """No-op for uniform replay (the trainer calls it for every kind of buffer)."""

    # ------------------------------------------------------------------ sampling
    def _check_sample(self, batch_size: int) -> None:
        """The sampling rules of the class docstring, the same for every buffer."""
        if batch_size < 1:
            raise ValueError(f"replay sample: batch_size must be >= 1, got {batch_size}")
        if len(self) == 0:
            raise ValueError(
                "cannot sample from an empty replay buffer: add transitions first"
                + (" (every stored transition was evicted)" if self._storage.size else "")
            )

    def sample(self, batch_size: int, beta: float = 0.4) -> Batch:
        """Draw ``batch_size`` >= 1 transitions uniformly with replacement (so more than
        ``len(self)`` is allowed) as a ``Batch`` on ``device``.

        ``beta`` is accepted for interface parity with prioritized replay and ignored;
        the weights are all 1. ValueError for ``batch_size`` < 1 or an empty buffer.
        """
        self._check_sample(batch_size)
        n = self._storage.size
        indices = self._rng.integers(0, n, size=batch_size, dtype=np.int64)
        if self._storage.num_dead:  # frame replay evicted some slots early
            dead = self._storage.dead[indices]
            while dead.any():
                indices[dead] = self._rng.integers(0, n, size=int(dead.sum()), dtype=np.int64)
                dead = self._storage.dead[indices]
        return self._batch(indices, np.ones(batch_size, dtype=np.float32))

    def _batch(self, indices: np.ndarray, weights: np.ndarray) -> Batch:
        """Gather the rows ``indices`` (fresh arrays, so batches never alias) as tensors."""
        obs, action, reward, next_obs, discount = self._storage.gather(indices)
        t = self._to_tensor
        if isinstance(obs, torch.Tensor):  # stacks gathered on the device already
            return Batch(obs, t(action), t(reward), next_obs, t(discount), t(weights), indices)
        return Batch(
            obs=t(obs),
            action=t(action),
            reward=t(reward),
            next_obs=t(next_obs),
            discount=t(discount),
            weights=t(weights),
            indices=indices,
        )

    # ------------------------------------------------------------------ checkpointing
    def meta_state_dict(self) -> dict[str, Any]:
        """The small part of the state that outlives the contents: the sampler's
        generator (and, for prioritized replay, the running max priority). A checkpoint
        saves it even when the contents are left out."""
        return {"rng": self._rng.bit_generator.state}

    def load_meta_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``meta_state_dict`` saved (the contents are left as they are)."""
        self._rng.bit_generator.state = state["rng"]

    def state_dict(self) -> dict[str, Any]:
        """Contents and sampling state as CPU tensors and plain Python values (loadable
        with ``torch.load(weights_only=True)``). The big arrays may share memory with the
        live buffer: save them before adding to it again."""
        st = self._storage
        state: dict[str, Any] = {
            "capacity": st.capacity,
            "obs_shape": list(st.obs_shape),
            "size": st.size,  # slots [0, size) are the filled ones
            "pos": st.pos,
            **self.meta_state_dict(),
        }
        state.update({k: torch.from_numpy(v) for k, v in st.state_arrays().items()})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved into a buffer of the same capacity and shape."""
        st = self._storage
        for key, mine in (("capacity", st.capacity), ("obs_shape", list(st.obs_shape))):
            if list(np.atleast_1d(state[key])) != list(np.atleast_1d(mine)):
                raise ValueError(f"replay state has {key}={state[key]} but this buffer has {mine}")
        st.load_arrays(state, int(state["size"]), int(state["pos"]))
        self.load_meta_state_dict(state)

    # hooks for subclasses, called with the slot(s) just written
    def _added_one(self, slot: int) -> None:
        pass

    def _added_many(self, slots: np.ndarray) -> None:
        pass


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016) over a float64 ``SumTree``.

    Priorities: ``update_priorities`` stores ``p_i = (|td_i| + eps) ** alpha``. A new
    transition gets the largest priority stored so far (starting at 1.0), so it is
    likely to be replayed at least once.

    Sampling is stratified: ``[0, total)`` is split into ``batch_size`` equal segments
    and one point is drawn uniformly in each, then mapped to the slot whose cumulative
    priority interval contains it. Each draw has marginal probability
    ``P(i) = p_i / sum_k p_k``; duplicates are possible (a slot wider than a segment).

    Importance-sampling weights: ``w_i = (N * P(i)) ** -beta / max_j (N * P(j)) ** -beta``
    with N = ``len(self)`` and the max over the sampled batch, i.e. the largest weight in
    each batch is 1 (equivalently ``w_i = (min_j p_j / p_i) ** beta``).

    Args (in addition to ``ReplayBuffer``'s):
        alpha: priority exponent, 0 = uniform.
        eps: added to ``|td|`` so that no transition gets priority zero.
        backend: sum-tree backend, ``"auto"`` (numba if installed), ``"numba"`` or
            ``"numpy"``; results are the same, only speed differs (see ``SumTree``).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        obs_dtype: np.dtype | type = np.float32,
        alpha: float = 0.5,
        eps: float = 1e-6,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        backend: str = "auto",
        dedup_frames: bool = False,
        frames_on_device: bool = False,
    ) -> None:
        super().__init__(
            capacity,
            obs_shape,
            obs_dtype,
            device=device,
            seed=seed,
            dedup_frames=dedup_frames,
            frames_on_device=frames_on_device,
        )
        if alpha < 0:
            raise ValueError(f"PrioritizedReplayBuffer alpha must be >= 0, got {alpha}")
        if eps < 0:
            raise ValueError(f"PrioritizedReplayBuffer eps must be >= 0, got {eps}")
        self.alpha = float(alpha)
        self.eps = float(eps)
        self._tree = SumTree(self._storage.capacity, backend=backend)
        self._max_priority = 1.0

    @property
    def max_priority(self) -> float:
        """The priority given to new transitions: the largest stored so far (>= 1.0)."""
        return self._max_priority

    @property
    def backend(self) -> str:
        """The sum-tree backend in use: ``"numba"`` or ``"numpy"``."""
        return self._tree.backend

    @property
    def nbytes(self) -> int:
        return self._storage.nbytes + self._tree.nbytes

    def priorities(self, indices: np.ndarray) -> np.ndarray:
        """Stored priorities ``p_i`` (after ``alpha``) of slots ``indices``, float64."""
        return self._tree.get(indices)

    def sample(self, batch_size: int, beta: float = 0.4) -> Batch:
        """Stratified proportional sample of ``batch_size`` >= 1 slots with IS weights (see
        class docstring); the sampling rules of ``ReplayBuffer`` (ValueError for
        ``batch_size`` < 1 or an empty buffer; more than ``len(self)`` allowed)."""
        self._check_sample(batch_size)
        indices, p = self._tree.find_stratified(self._rng.random(batch_size))
        weights = np.power(p.min() / p, beta).astype(np.float32)
        return self._batch(indices, weights)

    def update_priorities(self, indices: np.ndarray, td_errors) -> None:
        """Set ``p_i = (|td_i| + eps) ** alpha`` for slots ``indices`` (last write wins).

        ``td_errors``: [B] numpy array or torch tensor (any device), or a sequence.
        """
        if isinstance(td_errors, torch.Tensor):
            td_errors = td_errors.detach().to("cpu", torch.float64).numpy()
        p = np.abs(np.asarray(td_errors, dtype=np.float64))
        p += self.eps
        p **= self.alpha  # numpy's fast path turns alpha = 0.5 into a sqrt
        indices = np.asarray(indices, dtype=np.int64)
        n = self._storage.size
        if n < self._storage.capacity and indices.size and indices.max() >= n:
            raise IndexError(f"update_priorities: slot {indices.max()} is not filled (size {n})")
        if self._storage.num_dead:
            p[self._storage.dead[indices]] = 0.0  # evicted since it was sampled
        self._tree.update(indices, p)
        if p.size:
            top = float(p.max())
            if top > self._max_priority:
                self._max_priority = top

    def meta_state_dict(self) -> dict[str, Any]:
        """The sampler's generator and the running max priority."""
        return {**super().meta_state_dict(), "max_priority": self._max_priority}

    def load_meta_state_dict(self, state: dict[str, Any]) -> None:
        super().load_meta_state_dict(state)
        self._max_priority = float(state["max_priority"])

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["priorities"] = torch.from_numpy(self._tree.get(np.arange(state["size"])))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        n = int(state["size"])
        self._tree = SumTree(self._storage.capacity, backend=self._tree.backend)
        self._tree.update(np.arange(n), np.asarray(state["priorities"], dtype=np.float64))

    def _added_one(self, slot: int) -> None:
        self._tree.update_one(slot, self._max_priority)
        self._zero_evicted()

    def _added_many(self, slots: np.ndarray) -> None:
        self._tree.update(slots, self._max_priority)
        self._zero_evicted()

    def _zero_evicted(self) -> None:
        """Frame replay may evict old slots early: they must never be sampled."""
        evicted = self._storage.take_evicted()
        if evicted:
            self._tree.update(np.asarray(evicted, dtype=np.int64), 0.0)
