"""C51: a categorical return distribution over a fixed support per action.

Bellemare et al. 2017. The raw outputs [B, A, Z] are logits; the distribution of each
action is their softmax over the support ``linspace(v_min, v_max, Z)`` and its Q-value
the expectation. Loss: the cross-entropy between the projected target distribution
(Algorithm 1) and the prediction for the taken action. Priority: KL(m || p) (Rainbow,
Hessel et al. 2018) or the cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from rlkit.agent.objectives import math as losses
from rlkit.agent.objectives.base import (
    Forwards,
    ObjectiveOutput,
    target_at_next_action,
    weighted_mean,
)
from rlkit.types import Batch

# Per-sample priority from (projected target m [B, Z], log p of the taken action [B, Z]).
PRIORITIES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "kl": losses.categorical_kl,
    "cross_entropy": losses.categorical_cross_entropy,
}


class CategoricalReadout(nn.Module):
    """Logits [B, A, Z] -> Q [B, A]: the expectation under ``softmax`` over ``support``.

    ``support`` [Z] is a buffer (it follows the net's device) that is not saved in
    state dicts: it is fixed by ``v_min``, ``v_max`` and ``atoms``.
    """

    name = "c51"

    def __init__(self, atoms: int, v_min: float, v_max: float) -> None:
        super().__init__()
        self.register_buffer("support", torch.linspace(v_min, v_max, atoms), persistent=False)

    def log_probs(self, raw_BAZ: torch.Tensor) -> torch.Tensor:
        """Per-action log-probabilities over the support [B, A, Z]."""
        return torch.log_softmax(raw_BAZ, dim=2)

    def q_and_log_probs(self, raw_BAZ: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Q-values [B, A] and log-probabilities [B, A, Z]."""
        return self(raw_BAZ), torch.log_softmax(raw_BAZ, dim=2)

    def forward(self, raw_BAZ: torch.Tensor) -> torch.Tensor:
        # softmax, not log_softmax(...).exp(): exp of the log-probabilities of a peaked
        # distribution (below about -87) has subnormal results, which take a slow path
        # on x86 CPUs (~10x slower for the whole tensor)
        return (torch.softmax(raw_BAZ, dim=2) * self.support).sum(dim=2)


def readout(atoms: int, v_min: float, v_max: float) -> CategoricalReadout:
    """The categorical readout; ValueError unless ``atoms > 1`` and ``v_min < v_max``."""
    if atoms < 2:
        raise ValueError(f"'c51' needs atoms > 1, got {atoms}")
    if not v_min < v_max:
        raise ValueError(f"'c51' needs v_min < v_max, got {v_min} >= {v_max}")
    return CategoricalReadout(atoms, v_min, v_max)


class C51:
    """Categorical distributional loss over ``readout.support``.

    Args:
        readout: the network's ``CategoricalReadout``.
        double_q: the online net selects the next action (its expected Q), the target
            net's distribution for it is projected; False selects with the target net.
        c51_priority: ``"kl"`` (KL(m || p)) or ``"cross_entropy"`` (-sum m log p =
            KL + H(m)). The loss is the cross-entropy either way (the same gradient).
    """

    def __init__(
        self, readout: CategoricalReadout, *, double_q: bool = True, c51_priority: str = "kl"
    ) -> None:
        if c51_priority not in PRIORITIES:
            raise ValueError(
                f"c51_priority must be one of {sorted(PRIORITIES)}, got {c51_priority!r}"
            )
        self.readout = readout
        self.double_q = double_q
        #: per-sample priority from (target m [B, Z], log p of the taken action [B, Z])
        self.priority = PRIORITIES[c51_priority]

    def q_values(self, raw_BAZ: torch.Tensor) -> torch.Tensor:
        return self.readout(raw_BAZ)

    def target_distribution(self, batch: Batch, forwards: Forwards) -> torch.Tensor:
        """Projected target distribution m [B, Z] (Bellemare et al. 2017, Algorithm 1)."""
        return self.target_and_clipped(batch, forwards)[0]

    @torch.no_grad()
    def target_and_clipped(
        self, batch: Batch, forwards: Forwards
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The projected target m [B, Z] and the mean over the batch of the target mass
        that fell outside the support (``support_clip_frac``, a 0-d tensor in [0, 1])."""
        next_raw_BZ = target_at_next_action(self.readout, forwards, batch.next_obs, self.double_q)
        # softmax, not log_softmax(...).exp(): see CategoricalReadout.forward
        next_probs_BZ = torch.softmax(next_raw_BZ, dim=1)
        target_BZ, clipped_B = losses.categorical_projection_clipped(
            self.readout.support, next_probs_BZ, batch.reward, batch.discount
        )
        return target_BZ, clipped_B.mean()

    def __call__(self, batch: Batch, forwards: Forwards) -> ObjectiveOutput:
        target_BZ, clip_frac = self.target_and_clipped(batch, forwards)
        q_BA, log_p_BAZ = self.readout.q_and_log_probs(forwards.online(batch.obs))
        act_B11 = batch.action.view(-1, 1, 1).expand(-1, 1, log_p_BAZ.shape[2])
        log_p_sa_BZ = log_p_BAZ.gather(1, act_B11).squeeze(1)
        per_sample_B = losses.categorical_cross_entropy(target_BZ, log_p_sa_BZ)
        with torch.no_grad():
            # KL >= 0 in exact arithmetic; clamp float rounding below 0.
            priorities_B = self.priority(target_BZ, log_p_sa_BZ.detach()).clamp_min_(0.0)
            q_sa_B = q_BA.gather(1, batch.action.unsqueeze(1)).squeeze(1)
            td_abs_B = ((target_BZ * self.readout.support).sum(dim=1) - q_sa_B).abs()
        metrics = {
            "q_mean": q_sa_B.mean(),
            "td_abs_mean": td_abs_B.mean(),
            "support_clip_frac": clip_frac,
        }
        return ObjectiveOutput(weighted_mean(batch.weights, per_sample_B), priorities_B, metrics)


def make(
    readout: CategoricalReadout, *, double_q: bool = True, c51_priority: str = "kl", **_
) -> C51:
    """``C51`` over ``readout`` (other options are ignored)."""
    return C51(readout, double_q=double_q, c51_priority=c51_priority)
