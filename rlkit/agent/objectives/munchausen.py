"""Munchausen-DQN: scalar TD with a scaled log-policy bonus and a soft bootstrap.

Vieillard, Pietquin and Geist 2020, "Munchausen Reinforcement Learning", Eq. (2) / the
M-DQN target of its Section 3::

    pi(.|s)  = softmax(q_target(s, .) / tau)                        (target net's policy)
    bonus    = alpha * clip(tau * log pi(a|s), l0, 0)
    soft_v'  = sum_a' pi(a'|s') * (q_target(s', a') - tau * log pi(a'|s'))
    target   = r + bonus + discount * soft_v'

with tau = 0.03, alpha = 0.9, l0 = -1 (the paper's Atari values), ``discount`` = gamma^n
(0 where the episode terminated) and ``r`` the n-step return: the bonus belongs to the
first action of the window, whose log-policy it scores. Loss: Huber (or squared) on
``target - q(s, a)``; PER priority: |TD error| as for scalar TD. There is no argmax in
the target, so ``double_q`` has nothing to select and is ignored. Switched on by
``learner.munchausen: true`` (``munchausen_tau``, ``munchausen_alpha``,
``munchausen_log_floor``) on the scalar head (``network.atoms: 1``): the scalar
objective's ``make`` returns this one; dueling and noisy nets work unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from rlkit.agent.objectives.base import Forwards, ObjectiveOutput, weighted_mean
from rlkit.agent.objectives.scalar import LOSSES
from rlkit.types import Batch

#: the entropy temperature tau, the bonus scale alpha and the log-policy floor l0
TAU, ALPHA, LOG_FLOOR = 0.03, 0.9, -1.0


def munchausen_bonus(
    action_B: torch.Tensor,
    q_target_BA: torch.Tensor,
    tau: float = TAU,
    alpha: float = ALPHA,
    log_floor: float = LOG_FLOOR,
) -> torch.Tensor:
    """``alpha * clip(tau * log pi(a|s), l0, 0)`` [B] with ``pi = softmax(q / tau)``.

    The clip bounds the scaled log-policy ``tau * log pi``, as in the paper's target
    ``alpha * [tau ln pi(a|s)]_{l0}^{0}`` and its reference code: the bonus lies in
    ``[alpha * l0, 0]``. As tau -> 0, ``tau * log pi(a|s)`` -> ``q(s, a) - max_b q(s, b)``, so
    the bonus is an action-gap term of up to ``alpha * |l0|`` per step whatever tau is."""
    tau_log_pi_BA = tau * torch.log_softmax(q_target_BA / tau, dim=1)
    tau_log_pi_a_B = tau_log_pi_BA.gather(1, action_B.unsqueeze(1)).squeeze(1)
    return alpha * tau_log_pi_a_B.clamp(log_floor, 0.0)


def soft_policy(
    q_target_next_BA: torch.Tensor, tau: float = TAU
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pi, tau * log pi)`` [B, A] of ``pi = softmax(q / tau)``: the soft value is
    ``sum_a pi(a) * (q(a) - tau * log pi(a))``."""
    log_pi_BA = torch.log_softmax(q_target_next_BA / tau, dim=1)
    return log_pi_BA.exp(), tau * log_pi_BA


def munchausen_target(
    reward_B: torch.Tensor,
    discount_B: torch.Tensor,
    action_B: torch.Tensor,
    q_target_BA: torch.Tensor,
    q_target_next_BA: torch.Tensor,
    tau: float = TAU,
    alpha: float = ALPHA,
    log_floor: float = LOG_FLOOR,
) -> torch.Tensor:
    """The M-DQN target [B] (see the module docstring)."""
    bonus_B = munchausen_bonus(action_B, q_target_BA, tau, alpha, log_floor)
    pi_BA, tau_log_pi_BA = soft_policy(q_target_next_BA, tau)
    soft_v_B = (pi_BA * (q_target_next_BA - tau_log_pi_BA)).sum(dim=1)
    return reward_B + bonus_B + discount_B * soft_v_B


class Munchausen:
    """The M-DQN loss over a scalar readout.

    Args:
        readout: the network's ``ScalarReadout``.
        loss: ``"huber"`` (delta 1) or ``"mse"`` on the TD error.
        tau, alpha, log_floor: the temperature, bonus scale and log-policy floor.
    """

    def __init__(
        self,
        readout: nn.Module,
        *,
        loss: str = "huber",
        tau: float = TAU,
        alpha: float = ALPHA,
        log_floor: float = LOG_FLOOR,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.readout = readout
        self.td_loss = LOSSES[loss]
        self.tau, self.alpha, self.log_floor = tau, alpha, log_floor

    def q_values(self, raw_BAZ: torch.Tensor) -> torch.Tensor:
        return self.readout(raw_BAZ)

    @torch.no_grad()
    def td_target(self, batch: Batch, forwards: Forwards) -> torch.Tensor:
        q_next_BA = self.readout(forwards.target_next(batch.next_obs))
        q_now_BA = self.readout(forwards.target_at(batch.obs))
        return munchausen_target(
            batch.reward,
            batch.discount,
            batch.action,
            q_now_BA,
            q_next_BA,
            tau=self.tau,
            alpha=self.alpha,
            log_floor=self.log_floor,
        )

    def __call__(self, batch: Batch, forwards: Forwards) -> ObjectiveOutput:
        target_B = self.td_target(batch, forwards)
        q_BA = self.readout(forwards.online(batch.obs))
        q_sa_B = q_BA.gather(1, batch.action.unsqueeze(1)).squeeze(1)
        td_B = target_B - q_sa_B
        td_abs_B = td_B.detach().abs()
        metrics = {"q_mean": q_sa_B.detach().mean(), "td_abs_mean": td_abs_B.mean()}
        return ObjectiveOutput(weighted_mean(batch.weights, self.td_loss(td_B)), td_abs_B, metrics)
