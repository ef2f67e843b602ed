"""IQN: the return distribution as quantiles at fractions sampled in every forward pass.

Dabney, Ostrovski, Silver and Munos 2018b, "Implicit Quantile Networks for
Distributional Reinforcement Learning". The network (``QNetwork`` with a
``quantile_embedding``, ``rlkit.agent.nn.implicit``) maps a state and fractions
``tau`` [B, N] to ``Z_tau(x, a)`` [B, A, N] through the cosine embedding of Eq. (4); the
raw outputs are quantile samples and an action's Q-value is their mean (Eq. 1/2's
expectation; with the acting fractions ``beta(tau)`` it is ``Q_beta``, Section 3.1).

Each update draws three sets of fractions from torch's generator, independently:
``tau_i`` (N, the online net's, for the loss), ``tau'_j`` (N', the target net's) and
``tau~_k`` (K, through the distortion ``beta``, to select the next action). Target
(Algorithm 1, Eq. 3)::

    a*      = argmax_a  1/K sum_k Z_{beta(tau~_k)}(x', a)    (the online net: double-Q;
                                                              else the target net)
    T Z_j   = r + discount * Z'_{tau'_j}(x', a*)             (target net)
    delta_ij = T Z_j - Z_{tau_i}(x, a)
    loss    = sum_i 1/N' sum_j rho^kappa_{tau_i}(delta_ij)   (kappa = 1)

with ``rho`` the quantile Huber loss of QR-DQN (``rlkit.agent.objectives.qr``, Dabney et
al. 2018a, Eq. 10) and ``discount`` = gamma^n, 0 where the episode terminated (n-step
returns, like every objective). PER priority: the per-sample loss, as QR-DQN. Dueling
heads combine value and advantage per fraction; noisy layers are the net's and draw as
for every objective (the learner's cadence); the embedding layer itself is plain.

M-IQN (Vieillard et al. 2020, "Munchausen Reinforcement Learning", Section 4 and its
appendix's M-IQN target) with ``learner.munchausen``: ``pi = softmax(q / tau_m)`` of the
target net's Q (the mean of its quantiles: at x' those of the N' target fractions, at x
those of N' fresh ones), and::

    T Z_j = r + alpha * clip(tau_m * log pi(a|x), l0, 0)
              + discount * sum_a' pi(a'|x') * (Z'_{tau'_j}(x', a') - tau_m * log pi(a'|x'))

(no argmax, so ``double_q`` is unused). ``network.head: iqn``; ``network.atoms`` is N,
``network.iqn_target_quantiles`` N', ``network.iqn_acting_quantiles`` K,
``network.iqn_cosines`` n and ``network.iqn_cvar_eta`` the distortion's eta (Dopamine's
IQN: N = N' = 64, K = 32, n = 64, eta = 1).
"""

from __future__ import annotations

import torch
from torch import nn

from rlkit.agent.objectives.base import Forwards, ObjectiveOutput
from rlkit.agent.objectives.munchausen import munchausen_bonus, soft_policy
from rlkit.agent.objectives.qr import quantile_output, taken
from rlkit.types import Batch


class ImplicitReadout(nn.Module):
    """Quantile samples [B, A, N] -> Q [B, A]: their mean. ``samples`` is N, the online
    net's fractions per loss forward."""

    name = "iqn"

    def __init__(self, samples: int) -> None:
        super().__init__()
        self.samples = int(samples)

    def forward(self, raw_BAN: torch.Tensor) -> torch.Tensor:
        return raw_BAN.mean(dim=2)


def readout(atoms: int, v_min: float = 0.0, v_max: float = 0.0) -> ImplicitReadout:
    """The IQN readout with N = ``atoms`` online fractions (v_min/v_max unused)."""
    if atoms < 1:
        raise ValueError(f"'iqn' needs atoms >= 1 (N, the sampled fractions), got {atoms}")
    return ImplicitReadout(atoms)


class ImplicitQuantileRegression:
    """The IQN (or M-IQN) loss.

    Args:
        readout: the network's ``ImplicitReadout`` (N fractions for the loss).
        double_q: the online net selects the next action; False: the target net.
        target_quantiles: N', the target net's fractions.
        selection_quantiles: K, fractions to select the next action with.
        cvar_eta: the distortion ``beta(tau) = eta * tau`` of the selection fractions.
        munchausen: ``tau``, ``alpha``, ``log_floor`` of the M-IQN target; None: IQN.
    """

    def __init__(
        self,
        readout: ImplicitReadout,
        *,
        double_q: bool = True,
        target_quantiles: int = 64,
        selection_quantiles: int = 32,
        cvar_eta: float = 1.0,
        munchausen: dict | None = None,
    ) -> None:
        self.readout = readout
        self.double_q = double_q
        self.target_quantiles, self.selection_quantiles = target_quantiles, selection_quantiles
        self.cvar_eta = cvar_eta
        self.munchausen = munchausen

    def q_values(self, raw_BAN: torch.Tensor) -> torch.Tensor:
        return self.readout(raw_BAN)

    @staticmethod
    def fractions(batch: int, n: int, like: torch.Tensor) -> torch.Tensor:
        """``n`` fractions per row [batch, n], uniform in [0, 1) from torch's generator."""
        return torch.rand(batch, n, device=like.device)

    @torch.no_grad()
    def target_quantiles_of(self, batch: Batch, forwards: Forwards) -> torch.Tensor:
        """``T Z_j`` [B, N'] (IQN, or M-IQN with ``munchausen``)."""
        size, r_B1 = len(batch.action), batch.reward.unsqueeze(1)
        t_BAM = forwards.target_next(
            batch.next_obs, self.fractions(size, self.target_quantiles, batch.reward)
        )
        if self.munchausen is not None:
            return self._munchausen_target(batch, forwards, t_BAM)
        select_taus = self.cvar_eta * self.fractions(size, self.selection_quantiles, batch.reward)
        if self.double_q:
            q_select_BA = self.readout(forwards.selection_next(batch.next_obs, select_taus))
        else:
            q_select_BA = self.readout(forwards.target_at(batch.next_obs, select_taus))
        next_BM = taken(t_BAM, q_select_BA.argmax(dim=1))
        return r_B1 + batch.discount.unsqueeze(1) * next_BM

    def _munchausen_target(
        self, batch: Batch, forwards: Forwards, t_BAM: torch.Tensor
    ) -> torch.Tensor:
        m = self.munchausen
        size = len(batch.action)
        now_taus = self.fractions(size, self.target_quantiles, batch.reward)
        q_now_BA = self.readout(forwards.target_at(batch.obs, now_taus))
        bonus_B = munchausen_bonus(batch.action, q_now_BA, m["tau"], m["alpha"], m["log_floor"])
        pi_BA, tau_log_pi_BA = soft_policy(self.readout(t_BAM), m["tau"])
        soft_BM = (pi_BA.unsqueeze(2) * (t_BAM - tau_log_pi_BA.unsqueeze(2))).sum(dim=1)
        return (batch.reward + bonus_B).unsqueeze(1) + batch.discount.unsqueeze(1) * soft_BM

    def __call__(self, batch: Batch, forwards: Forwards) -> ObjectiveOutput:
        target_BM = self.target_quantiles_of(batch, forwards)
        taus_BN = self.fractions(len(batch.action), self.readout.samples, batch.reward)
        pred_BN = taken(forwards.online(batch.obs, taus_BN), batch.action)
        return quantile_output(pred_BN, target_BM, taus_BN, batch.weights)


def make(
    readout: ImplicitReadout,
    *,
    double_q: bool = True,
    iqn: dict | None = None,
    munchausen: dict | None = None,
    **_,
) -> ImplicitQuantileRegression:
    """``ImplicitQuantileRegression`` over ``readout``; ``iqn``: its ``target_quantiles``,
    ``selection_quantiles`` and ``cvar_eta``; ``munchausen``: M-IQN (other options are
    ignored)."""
    return ImplicitQuantileRegression(
        readout, double_q=double_q, munchausen=munchausen, **(iqn or {})
    )
