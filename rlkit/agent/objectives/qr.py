"""QR-DQN: the return distribution as N quantiles at fixed fractions.

Dabney et al. 2018a, "Distributional Reinforcement Learning with Quantile Regression".
The raw outputs [B, A, N] are the quantile values theta_i(s, a) at the fixed fractions
``tau_hat_i = (2 i + 1) / (2 N)``, i = 0..N-1 (the midpoints of N equal slices, Lemma 2);
an action's Q-value is their mean (Eq. 1's expectation under the N Diracs).

Target (Algorithm 1): the next action ``a*`` is the argmax of the mean quantiles at
``s'`` (double-Q: the online net selects, the target net's quantiles are used; without
double-Q the target net selects too), and ``T theta_j = r + discount * theta'_j(s', a*)``
with ``discount`` = gamma^n, 0 where the episode terminated (n-step, like every
objective). Loss (Eq. 9-10, kappa = 1): for the pairwise errors
``u_ij = T theta_j - theta_i(s, a)``::

    rho_i(u) = |tau_hat_i - 1{u < 0}| * L_kappa(u) / kappa      (quantile Huber)
    loss(s, a) = sum_i mean_j rho_i(u_ij)

with ``L_kappa`` the Huber loss of threshold kappa. PER priority: that per-sample loss
(there is no scalar TD error to take; what QR-DQN ports use, e.g. Dopamine). Dueling
heads combine value and advantage per quantile (the network's dueling head works per
output column), noisy layers are the network's, and n-step enters through ``discount``.
``network.head: qr`` with ``network.atoms: N`` (N >= 2; the C51 support is unused).
"""

from __future__ import annotations

import torch
from torch import nn

from rlkit.agent.objectives.base import (
    Forwards,
    ObjectiveOutput,
    target_at_next_action,
    weighted_mean,
)
from rlkit.types import Batch

#: the quantile Huber loss's threshold (the paper's kappa = 1)
KAPPA = 1.0


class QuantileReadout(nn.Module):
    """Quantile values [B, A, N] -> Q [B, A]: their mean. ``taus`` [N] (a buffer, not
    saved) holds the fractions ``tau_hat_i = (2 i + 1) / (2 N)``."""

    name = "qr"

    def __init__(self, atoms: int) -> None:
        super().__init__()
        taus = (2 * torch.arange(atoms, dtype=torch.float32) + 1) / (2 * atoms)
        self.register_buffer("taus", taus, persistent=False)

    def forward(self, raw_BAN: torch.Tensor) -> torch.Tensor:
        return raw_BAN.mean(dim=2)


def readout(atoms: int, v_min: float = 0.0, v_max: float = 0.0) -> QuantileReadout:
    """The quantile readout; ValueError unless ``atoms > 1`` (v_min/v_max unused)."""
    if atoms < 2:
        raise ValueError(f"'qr' needs atoms > 1 (the number of quantiles), got {atoms}")
    return QuantileReadout(atoms)


def quantile_huber(
    pred_BN: torch.Tensor, target_BM: torch.Tensor, taus_N: torch.Tensor, kappa: float = KAPPA
) -> torch.Tensor:
    """Per-sample quantile Huber loss [B]: ``sum_i mean_j rho_i(target_j - pred_i)``
    (Dabney et al. 2018a, Eq. 10) for predictions [B, N] at fractions ``taus_N`` ([N],
    or [B, N] per sample as IQN samples them) and target samples [B, M]."""
    u_BNM = target_BM.unsqueeze(1) - pred_BN.unsqueeze(2)
    abs_u = u_BNM.abs()
    huber_BNM = torch.where(abs_u <= kappa, 0.5 * u_BNM.pow(2), kappa * (abs_u - 0.5 * kappa))
    weight_BNM = (taus_N.unsqueeze(-1) - (u_BNM.detach() < 0).to(u_BNM.dtype)).abs()
    return (weight_BNM * huber_BNM / kappa).mean(dim=2).sum(dim=1)


def taken(raw_BAN: torch.Tensor, action_B: torch.Tensor) -> torch.Tensor:
    """The outputs [B, N] of the taken actions."""
    act_B11 = action_B.view(-1, 1, 1).expand(-1, 1, raw_BAN.shape[2])
    return raw_BAN.gather(1, act_B11).squeeze(1)


def quantile_output(
    pred_BN: torch.Tensor, target_BM: torch.Tensor, taus: torch.Tensor, weights_B: torch.Tensor
) -> ObjectiveOutput:
    """Loss (the weighted mean of ``quantile_huber``), priorities (the per-sample loss)
    and metrics (``q_mean``: the predictions' mean; ``td_abs_mean``: |mean target - mean
    prediction|) of quantile predictions [B, N] at ``taus`` against targets [B, M]."""
    per_sample_B = quantile_huber(pred_BN, target_BM, taus)
    with torch.no_grad():
        q_sa_B = pred_BN.mean(dim=1)
        td_abs_B = (target_BM.mean(dim=1) - q_sa_B).abs()
    metrics = {"q_mean": q_sa_B.mean(), "td_abs_mean": td_abs_B.mean()}
    priorities_B = per_sample_B.detach().clamp_min(0.0)
    return ObjectiveOutput(weighted_mean(weights_B, per_sample_B), priorities_B, metrics)


class QuantileRegression:
    """The QR-DQN loss over ``readout.taus``.

    Args:
        readout: the network's ``QuantileReadout``.
        double_q: the online net selects the next action (its mean quantiles), the
            target net's quantiles for it are the target; False selects with the target.
    """

    def __init__(self, readout: QuantileReadout, *, double_q: bool = True) -> None:
        self.readout = readout
        self.double_q = double_q

    def q_values(self, raw_BAN: torch.Tensor) -> torch.Tensor:
        return self.readout(raw_BAN)

    @torch.no_grad()
    def target_quantiles(self, batch: Batch, forwards: Forwards) -> torch.Tensor:
        """``T theta_j = r + discount * theta'_j(s', a*)`` [B, N]."""
        next_BN = target_at_next_action(self.readout, forwards, batch.next_obs, self.double_q)
        return batch.reward.unsqueeze(1) + batch.discount.unsqueeze(1) * next_BN

    def __call__(self, batch: Batch, forwards: Forwards) -> ObjectiveOutput:
        target_BN = self.target_quantiles(batch, forwards)
        pred_BN = taken(forwards.online(batch.obs), batch.action)
        return quantile_output(pred_BN, target_BN, self.readout.taus, batch.weights)


def make(readout: QuantileReadout, *, double_q: bool = True, **_) -> QuantileRegression:
    """``QuantileRegression`` over ``readout`` (other options are ignored)."""
    return QuantileRegression(readout, double_q=double_q)
