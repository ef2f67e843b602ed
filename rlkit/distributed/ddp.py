"""Data-parallel learners with ``torch.distributed``: k ranks, one all-reduce per update.

Launched by ``torchrun --nproc_per_node=k -m rlkit train CONFIG`` (or any launcher that
sets ``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, e.g. Ray Train's
``TorchTrainer``). Each rank runs the whole one-machine loop with its own envs (seeded
``trainer.seed + 1000 * rank``), its own replay and its own priorities, samples its
share ``learner.batch_size / k`` of the batch, and averages its gradients with the
other ranks' after the backward pass (``GradAllReduce``, before clipping); the ranks
start from rank 0's weights (``broadcast_module``), so every rank applies the same
averaged gradient and their networks stay equal. One update on k ranks equals the
single-process update on the concatenated batch (the loss is a mean over the batch and
the shares are equal; tested with gloo on CPU, 2 processes). Rank 0 writes the run dir;
rank r > 0 writes ``RUN_DIR/rank<r>``. This is the data parallelism of the project's
origin notes: the all-reduce plays the parameter server's role for the gradients.

Noisy nets draw their noise per rank (as each rank's samples are its own).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["GradAllReduce", "broadcast_module", "init_from_env", "rank", "world_size"]


def world_size() -> int:
    """Ranks in the process group (1 when torch.distributed is not initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when torch.distributed is not initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def init_from_env(device_type: str = "cpu") -> bool:
    """Join the process group a launcher describes (``WORLD_SIZE`` > 1 in the
    environment): nccl for CUDA, gloo otherwise. Returns whether this process is one of
    several ranks."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" and dist.is_nccl_available() else "gloo"
        dist.init_process_group(backend=backend)
        if device_type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return world_size() > 1


@torch.no_grad()
def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Every parameter and buffer of ``module`` set to rank ``src``'s."""
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor, src)


class GradAllReduce:
    """The average of the ranks' gradients, in place: one all-reduce of all of them
    concatenated (a learner's ``grad_sync``)."""

    def __init__(self, group=None) -> None:
        self.group = group

    @torch.no_grad()
    def __call__(self, params: list[torch.Tensor]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM, group=self.group)
        flat /= dist.get_world_size(self.group)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
