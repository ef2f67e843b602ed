"""The IQN quantile-fraction embedding: features of a state combined with sampled tau.

Dabney, Ostrovski, Silver and Munos 2018b, "Implicit Quantile Networks for
Distributional Reinforcement Learning", Eq. (4): the fraction ``tau`` in [0, 1] enters
through ``n`` cosines,

    phi_j(tau) = ReLU( sum_{i=0}^{n-1} cos(pi i tau) w_ij + b_j ),      j = 1..D

and the head reads ``psi(x) * phi(tau)`` (elementwise, D = the torso's width) for each
fraction, so ``Z_tau(x, a) = f(psi(x) * phi(tau))_a``. The paper's i starts at 0 (a
constant cosine); Dopamine's implementation starts at 1 (the difference is a bias).

A net with this embedding (``QNetwork(..., quantile_embedding=...)``) returns raw outputs
[B, A, N] for fractions [B, N] given to ``raw(obs, taus)``. Without fractions it acts:
K fractions ``beta(tau)`` with the distortion ``beta(tau) = eta * tau`` (CVaR_eta; eta 1 is
risk-neutral, Section 3.1), drawn uniformly in training mode (the paper's acting policy),
and in eval mode the K midpoints ``(2 k + 1) / (2 K)`` mapped the same way, a
deterministic quadrature of the same expectation (so evaluation and exported policies
are deterministic, as noisy layers use their means there).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ImplicitQuantiles(nn.Module):
    """The cosine embedding of fractions and its product with state features.

    Args:
        features: ``D``, the torso's output width (the embedding's output width).
        cosines: ``n``, cosines per fraction (the paper's 64).
        acting_quantiles: ``K``, fractions per acting forward (the paper's 32).
        cvar_eta: the CVaR distortion ``beta(tau) = eta * tau`` of acting fractions, in
            (0, 1]; 1 is risk-neutral.
    """

    def __init__(
        self,
        features: int,
        cosines: int = 64,
        acting_quantiles: int = 32,
        cvar_eta: float = 1.0,
    ) -> None:
        super().__init__()
        if cosines < 1 or acting_quantiles < 1:
            raise ValueError("cosines and acting_quantiles must be >= 1")
        if not 0.0 < cvar_eta <= 1.0:
            raise ValueError(f"cvar_eta must be in (0, 1], got {cvar_eta}")
        self.features, self.cosines = int(features), int(cosines)
        self.acting_quantiles, self.cvar_eta = int(acting_quantiles), float(cvar_eta)
        self.embed = nn.Linear(self.cosines, self.features)
        freqs = math.pi * torch.arange(self.cosines, dtype=torch.float32)
        self.register_buffer("freqs", freqs, persistent=False)
        k = torch.arange(self.acting_quantiles, dtype=torch.float32)
        self.register_buffer(
            "midpoints", (2 * k + 1) / (2 * self.acting_quantiles), persistent=False
        )

    def distort(self, taus: torch.Tensor) -> torch.Tensor:
        """``beta(tau) = eta * tau`` (CVaR_eta; the identity for eta 1)."""
        return taus if self.cvar_eta == 1.0 else taus * self.cvar_eta

    def cosine_features(self, taus_BN: torch.Tensor) -> torch.Tensor:
        """``cos(pi i tau)`` for i = 0..n-1: [B, N] -> [B, N, n]."""
        return torch.cos(taus_BN.unsqueeze(-1) * self.freqs.to(taus_BN.dtype))

    def phi(self, taus_BN: torch.Tensor) -> torch.Tensor:
        """The embedding ``phi(tau)`` [B, N, D] (Eq. 4)."""
        return torch.relu(self.embed(self.cosine_features(taus_BN)))

    def forward(self, features_BD: torch.Tensor, taus_BN: torch.Tensor) -> torch.Tensor:
        """``psi(x) * phi(tau)`` for every fraction, flattened to [B * N, D]."""
        mixed_BND = features_BD.unsqueeze(1) * self.phi(taus_BN)
        return mixed_BND.reshape(-1, self.features)

    def acting_fractions(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        """K acting fractions per row [batch, K] on ``like``'s device: ``beta(U(0, 1))``
        drawn from torch's generator in training mode, ``beta`` of the midpoints in eval
        mode."""
        if self.training:
            taus = torch.rand(batch, self.acting_quantiles, device=like.device)
        else:
            taus = self.midpoints.to(like.device).expand(batch, -1)
        return self.distort(taus)
