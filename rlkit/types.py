"""Plain data containers shared by replay, learner and trainer.

Shapes use ``B`` for the batch dimension and ``K`` for a number of transitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import torch


class Transition(NamedTuple):
    """A group of ``K`` (possibly n-step) transitions as numpy arrays.

    ``discount`` is the bootstrap factor of each transition: ``gamma**k`` for a window
    of ``k`` real steps, or 0 when the episode terminated inside the window.
    """

    obs: np.ndarray  # [K, *obs_shape]
    action: np.ndarray  # [K] int64
    reward: np.ndarray  # [K] float32, the discounted n-step return
    next_obs: np.ndarray  # [K, *obs_shape]
    discount: np.ndarray  # [K] float32


@dataclass(frozen=True)
class Batch:
    """A sampled minibatch as torch tensors (on the replay's device).

    ``weights`` are importance-sampling weights (all ones for uniform replay);
    ``indices`` are the storage slots, to hand back to ``update_priorities``.
    """

    obs: torch.Tensor  # [B, *obs_shape]
    action: torch.Tensor  # [B] int64
    reward: torch.Tensor  # [B] float32
    next_obs: torch.Tensor  # [B, *obs_shape]
    discount: torch.Tensor  # [B] float32
    weights: torch.Tensor  # [B] float32
    indices: np.ndarray  # [B] int64

    def __len__(self) -> int:
        return int(self.action.shape[0])


@dataclass(frozen=True)
class LossOutput:
    """The result of one gradient step.

    ``priorities`` are the new per-sample priorities (|TD error|, or for C51 the KL
    divergence or cross-entropy of the projected target, ``c51_priority``) for
    ``replay.update_priorities``; ``metrics`` are plain floats.
    """

    loss: float
    priorities: np.ndarray  # [B] float64, non-negative
    metrics: dict[str, float]


class Logger(Protocol):
    """Where scalars go: TensorBoard, JSON lines, the terminal (``rlkit.app.loggers``)."""

    def log(self, env_steps: int, scalars: dict[str, float]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ObsPart:
    """One part of a packed observation: columns ``[start, stop)`` of the flat vector.

    ``kind``: ``"box"`` (real values, flattened, times ``scale``), ``"onehot"`` (one
    integer per column, column ``i`` with ``classes[i]`` values, one-hot encoded by the
    network) or ``"image"`` (``shape`` channels-first [C, H, W]; stored as [H, W, C] when
    ``channels_last``; times ``scale``, e.g. 1/255 for uint8 pixels).
    """

    name: str
    kind: str
    start: int
    stop: int
    shape: tuple[int, ...] = ()
    classes: tuple[int, ...] = ()
    scale: float = 1.0
    channels_last: bool = False


@dataclass(frozen=True)
class ObsLayout:
    """How a packed observation (one flat array of ``dtype``) splits into parts; the
    network builds one input encoder per part from it (``rlkit.agent.nn.encoders``)."""

    parts: tuple[ObsPart, ...]
    dtype: str

    @property
    def size(self) -> int:
        return self.parts[-1].stop if self.parts else 0
