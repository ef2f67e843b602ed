"""Q-value heads: linear or dueling, over ``atoms`` outputs per action.

Every head maps features [B, F] to per-action outputs [B, A, Z] (Z = atoms; Z = 1 for
scalar Q). The network turns [B, A, Z] into Q-values or a distribution.
"""

from __future__ import annotations

import torch
from torch import nn

from rlkit.agent.nn.torsos import LinearFactory


def _stream(in_features: int, out_features: int, hidden: int, linear: LinearFactory) -> nn.Module:
    if hidden <= 0:
        return linear(in_features, out_features)
    return nn.Sequential(linear(in_features, hidden), nn.ReLU(), linear(hidden, out_features))


class LinearHead(nn.Module):
    """``out = W f + b`` reshaped to [B, A, Z]."""

    def __init__(
        self, in_features: int, num_actions: int, atoms: int, hidden: int, linear: LinearFactory
    ):
        super().__init__()
        self.num_actions, self.atoms = num_actions, atoms
        self.stream = _stream(in_features, num_actions * atoms, hidden, linear)

    def forward(self, features_BF: torch.Tensor) -> torch.Tensor:
        return self.stream(features_BF).view(-1, self.num_actions, self.atoms)


class DuelingHead(nn.Module):
    """Dueling aggregation (Wang et al. 2016, Eq. 9): ``Q = V + A - mean_a A``.

    Applied per atom for distributional nets (as in Rainbow, Hessel et al. 2018, Eq. 5).
    """

    def __init__(
        self, in_features: int, num_actions: int, atoms: int, hidden: int, linear: LinearFactory
    ):
        super().__init__()
        self.num_actions, self.atoms = num_actions, atoms
        self.value = _stream(in_features, atoms, hidden, linear)
        self.advantage = _stream(in_features, num_actions * atoms, hidden, linear)

    def forward(self, features_BF: torch.Tensor) -> torch.Tensor:
        value_B1Z = self.value(features_BF).view(-1, 1, self.atoms)
        adv_BAZ = self.advantage(features_BF).view(-1, self.num_actions, self.atoms)
        return value_B1Z + adv_BAZ - adv_BAZ.mean(dim=1, keepdim=True)
