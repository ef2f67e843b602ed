"""Scalar TD: one Q-value per action, a Huber or squared loss on the TD error.

Target: double-Q (van Hasselt et al. 2016, Eq. 4: the online net selects the next
action, the target net evaluates it) or the max over the target net (Mnih et al. 2015).
Priority: |TD error| (Schaul et al. 2016).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from rlkit.agent.objectives import math as losses
from rlkit.agent.objectives.base import Forwards, ObjectiveOutput, weighted_mean
from rlkit.types import Batch

LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "huber": losses.huber_loss,
    "mse": losses.mse_loss,
}

# d(per-sample loss)/d(td) of each loss above (Huber with delta 1), as new tensors.
LOSS_GRADS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "huber": lambda td_B: td_B.clamp(-1.0, 1.0),
    "mse": lambda td_B: td_B.clone(),  # a new tensor: callers scale it in place
}


class ScalarReadout(nn.Module):
    """Raw outputs [B, A, 1] are the Q-values: ``squeeze`` to [B, A]."""

    name = "scalar"

    def forward(self, raw_BAZ: torch.Tensor) -> torch.Tensor:
        return raw_BAZ.squeeze(2)


def readout(atoms: int, v_min: float = 0.0, v_max: float = 0.0) -> ScalarReadout:
    """The scalar readout; ValueError unless ``atoms == 1`` (``v_min``/``v_max`` unused)."""
    if atoms != 1:
        raise ValueError(f"'scalar' needs atoms 1, got {atoms}")
    return ScalarReadout()


class ScalarTD:
    """TD loss on scalar Q-values.

    Args:
        readout: the network's ``ScalarReadout``.
        double_q: double-Q target; False takes the max over the target net (also the
            right choice without a target network, where double-Q reduces to it).
        loss: ``"huber"`` (delta 1) or ``"mse"`` (``0.5 td^2``) on the TD error.

    ``td_loss`` and ``td_loss_grad`` (the loss per sample and its derivative in the TD
    error) and ``td_target`` serve the hand-written MLP backward pass too.
    """

    def __init__(self, readout: nn.Module, *, double_q: bool = True, loss: str = "huber") -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.readout = readout
        self.double_q = double_q
        self.td_loss = LOSSES[loss]
        self.td_loss_grad = LOSS_GRADS[loss]

    def q_values(self, raw_BAZ: torch.Tensor) -> torch.Tensor:
        return self.readout(raw_BAZ)

    @torch.no_grad()
    def td_target(
        self, batch: Batch, q_next_target_BA: torch.Tensor, forwards: Forwards
    ) -> torch.Tensor:
        """TD target [B] from the target net's Q at ``next_obs`` [B, A]."""
        if self.double_q:
            q_next_online_BA = self.readout(forwards.selection_next(batch.next_obs))
            return losses.double_q_target(
                batch.reward, batch.discount, q_next_online_BA, q_next_target_BA
            )
        return losses.q_learning_target(batch.reward, batch.discount, q_next_target_BA)

    def __call__(self, batch: Batch, forwards: Forwards) -> ObjectiveOutput:
        q_next_target_BA = self.readout(forwards.target_next(batch.next_obs))
        target_B = self.td_target(batch, q_next_target_BA, forwards)
        q_BA = self.readout(forwards.online(batch.obs))
        q_sa_B = q_BA.gather(1, batch.action.unsqueeze(1)).squeeze(1)
        td_B = target_B - q_sa_B
        per_sample_B = self.td_loss(td_B)
        td_abs_B = td_B.detach().abs()
        metrics = {"q_mean": q_sa_B.detach().mean(), "td_abs_mean": td_abs_B.mean()}
        return ObjectiveOutput(weighted_mean(batch.weights, per_sample_B), td_abs_B, metrics)


def make(
    readout: nn.Module,
    *,
    double_q: bool = True,
    loss: str = "huber",
    munchausen: dict | None = None,
    **_,
) -> ScalarTD:
    """``ScalarTD`` over ``readout``, or with ``munchausen`` (its ``tau``, ``alpha``,
    ``log_floor``) the Munchausen-DQN objective (``rlkit.agent.objectives.munchausen``);
    other options are ignored."""
    if munchausen is not None:
        from rlkit.agent.objectives.munchausen import Munchausen

        return Munchausen(readout, loss=loss, **munchausen)
    return ScalarTD(readout, double_q=double_q, loss=loss)
