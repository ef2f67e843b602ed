"""Frame replay whose frame pool is mirrored on a torch device (``replay.frames_on_device``).

``DeviceFrameStorage`` is a ``FrameStackStorage`` (each distinct frame once, matched by
content on the host) that also keeps the pool as a uint8 tensor on ``device``: every add
copies the frames it stored there in one transfer, and ``gather`` rebuilds the stacks of a
batch by indexing that tensor on the device, so a sampled batch moves only its frame ids
(2 x S int32 per transition) to the device instead of its stacks. Sampled stacks are the
same values as the host pool's (tested); the host pool stays, for the byte checks of
deduplication and for checkpoints. On a GPU, 1M transitions take ~7.3 GB there as well.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rlkit.agent.replay.frames import FrameStackStorage


class DeviceFrameStorage(FrameStackStorage):
    """``FrameStackStorage`` with the frame pool mirrored on ``device``; ``gather`` returns
    the stacks as uint8 tensors there (the other fields as NumPy arrays)."""

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        obs_dtype=np.uint8,
        pool_frames: int | None = None,
        *,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(capacity, obs_shape, obs_dtype, pool_frames)
        self.device = torch.device(device)
        self.device_frames = torch.zeros(self.frames.shape, dtype=torch.uint8, device=self.device)

    @property
    def device_nbytes(self) -> int:
        """Bytes of the device copy of the pool."""
        return self.device_frames.numel()

    def _stored(self, ids: set[int]) -> None:
        if not ids:
            return
        idx = np.fromiter(ids, dtype=np.int64, count=len(ids))
        frames = torch.from_numpy(self.frames[idx]).to(self.device)
        self.device_frames[torch.from_numpy(idx).to(self.device)] = frames

    def gather(self, indices: np.ndarray) -> tuple:
        """(obs, action, reward, next_obs, discount) of ``indices``: obs and next_obs as
        uint8 tensors [B, S, H, W] on ``device``, gathered there; the rest NumPy."""
        ids = np.stack((self.obs_ids[indices], self.next_ids[indices]))  # [2, B, S]
        ids_t = torch.from_numpy(ids).to(self.device, non_blocking=True).long()
        stacks = self.device_frames[ids_t]  # [2, B, S, H, W]
        return (
            stacks[0],
            self.action.take(indices),
            self.reward.take(indices),
            stacks[1],
            self.discount.take(indices),
        )

    def load_arrays(self, arrays: dict, size: int, pos: int) -> None:
        super().load_arrays(arrays, size, pos)
        self.device_frames.copy_(torch.from_numpy(self.frames))
