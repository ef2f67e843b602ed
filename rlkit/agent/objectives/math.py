"""TD targets, the C51 projection and per-sample losses as pure tensor functions.

Nothing here holds state or touches modules: every function maps tensors to tensors.
Shapes: ``B`` batch, ``A`` actions, ``Z`` atoms.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def q_learning_target(
    reward: torch.Tensor, discount: torch.Tensor, q_next_target: torch.Tensor
) -> torch.Tensor:
    """Q-learning target ``y = r + d * max_a Q_target(s', a)`` (Mnih et al. 2015).

    reward, discount: [B]; q_next_target: [B, A] -> [B]. ``discount`` already holds
    ``gamma**k`` (0 on termination), so no separate done flag is needed.
    """
    return reward + discount * q_next_target.max(dim=1).values


def double_q_target(
    reward: torch.Tensor,
    discount: torch.Tensor,
    q_next_online: torch.Tensor,
    q_next_target: torch.Tensor,
) -> torch.Tensor:
    """Double-Q target ``y = r + d * Q_target(s', argmax_a Q_online(s', a))``.

    van Hasselt et al. 2016, Eq. 4: the online net selects, the target net evaluates.
    reward, discount: [B]; q_next_online, q_next_target: [B, A] -> [B].
    """
    a_star_B1 = q_next_online.argmax(dim=1, keepdim=True)
    return reward + discount * q_next_target.gather(1, a_star_B1).squeeze(1)


def categorical_projection(
    support: torch.Tensor,
    next_probs: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
) -> torch.Tensor:
    """``categorical_projection_clipped`` without the clipped mass: [B, Z]."""
    return categorical_projection_clipped(support, next_probs, reward, discount)[0]


def categorical_projection_clipped(
    support: torch.Tensor,
    next_probs: torch.Tensor,
    reward: torch.Tensor,
    discount: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project the distribution of ``r + d * z`` onto the fixed support (C51).

    Bellemare et al. 2017, Algorithm 1 / Eq. 7: each atom ``z_j`` with probability
    ``p_j`` moves to ``Tz_j = clip(r + d z_j, v_min, v_max)`` and its mass is split
    between the two neighbouring atoms in proportion to closeness. When ``Tz_j`` lands
    exactly on an atom the whole mass goes to that atom (mass is conserved).

    support: [Z] evenly spaced; next_probs: [B, Z]; reward, discount: [B] -> (projected
    [B, Z], clipped [B]), in the wider of the dtypes of ``next_probs`` and ``reward``
    (bfloat16 probabilities of an autocast forward are projected in float32). ``clipped``
    is the probability mass whose ``r + d z_j`` fell outside ``[v_min, v_max]`` (and was
    clamped onto an edge): 0 when the support holds every target, 1 when it holds none.
    """
    next_probs = next_probs.to(torch.promote_types(next_probs.dtype, reward.dtype))
    num_atoms = support.shape[0]
    v_min, v_max = support[0], support[-1]
    delta_z = (v_max - v_min) / (num_atoms - 1)
    tz_BZ = torch.addcmul(reward.unsqueeze(1), discount.unsqueeze(1), support.unsqueeze(0))
    outside_BZ = (tz_BZ < v_min).logical_or_(tz_BZ > v_max)
    clipped_B = (next_probs * outside_BZ).sum(dim=1)
    # b: the position of Tz_j on the support in atom units; its mass goes to floor(b) with
    # weight 1 - frac(b) and to floor(b) + 1 with weight frac(b). An exact hit (frac 0)
    # puts all of it on the hit atom, as does b = Z - 1 (the upper neighbour is clamped
    # onto the last atom with weight 0).
    b_BZ = tz_BZ.clamp_(v_min, v_max).sub_(v_min).div_(delta_z).clamp_(0, num_atoms - 1)
    lower_BZ = b_BZ.floor()
    upper_w_BZ = b_BZ.sub_(lower_BZ).to(next_probs.dtype)
    lower_idx_BZ = lower_BZ.long()
    upper_idx_BZ = (lower_idx_BZ + 1).clamp_(max=num_atoms - 1)
    projected = torch.zeros_like(next_probs)
    upper_mass_BZ = next_probs * upper_w_BZ
    projected.scatter_add_(1, lower_idx_BZ, next_probs - upper_mass_BZ)
    projected.scatter_add_(1, upper_idx_BZ, upper_mass_BZ)
    return projected, clipped_B


def huber_loss(td_error: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Per-sample Huber loss: ``0.5 td^2`` for ``|td| <= delta``, else ``delta (|td| - 0.5 delta)``.

    td_error: [B] -> [B].
    """
    return F.huber_loss(td_error, torch.zeros_like(td_error), reduction="none", delta=delta)


def mse_loss(td_error: torch.Tensor) -> torch.Tensor:
    """Per-sample squared loss ``0.5 td^2`` (same scale as Huber near zero). [B] -> [B]."""
    return 0.5 * td_error.pow(2)


def categorical_cross_entropy(target_probs: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy ``-sum_z m_z log p_z`` between the projected target and
    the predicted distribution of the taken action. target_probs, log_probs: [B, Z] -> [B].
    """
    return -(target_probs * log_probs).sum(dim=1)


def categorical_kl(target_probs: torch.Tensor, log_probs: torch.Tensor) -> torch.Tensor:
    """Per-sample ``KL(m || p) = sum_z m_z (log m_z - log p_z)`` between the projected
    target ``m`` and the predicted distribution ``p`` of the taken action.

    Rainbow's priority (Hessel et al. 2018, Sec. 3, "Prioritized replay": "our algorithm
    prioritizes transitions by the KL loss"). It equals the cross-entropy minus the
    target's entropy ``H(m)``, so it has the same gradient in ``p`` and is 0 when
    ``p = m``. Atoms with ``m_z = 0`` contribute 0 (``xlogy``).
    target_probs, log_probs: [B, Z] -> [B].
    """
    return (torch.xlogy(target_probs, target_probs) - target_probs * log_probs).sum(dim=1)
