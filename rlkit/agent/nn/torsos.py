"""Feature extractors: an MLP for vector observations, the Nature CNN for images."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

LinearFactory = Callable[[int, int], nn.Module]


class MLPTorso(nn.Module):
    """Flatten, then ``Linear -> ReLU`` for each width in ``hidden_sizes``.

    Input [B, *obs_shape] float; output [B, hidden_sizes[-1]] (or the flattened input
    when ``hidden_sizes`` is empty). ``linear`` builds each layer (plain or noisy).
    """

    def __init__(self, in_features: int, hidden_sizes: Sequence[int], linear: LinearFactory):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden_sizes:
            layers += [linear(width, size), nn.ReLU()]
            width = size
        self.net = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NatureCNNTorso(nn.Module):
    """The DQN convolutional torso (Mnih et al. 2015): 32x8s4, 64x4s2, 64x3s1, ReLU.

    Input [B, C, H, W] (channels first, e.g. 4 stacked 84x84 frames) scaled to [0, 1];
    output the flattened conv features [B, 3136] for 84x84 input. Fully connected layers
    belong to the head (``head_hidden``), so that they can be noisy.
    """

    def __init__(self, obs_shape: Sequence[int]):
        super().__init__()
        channels = obs_shape[0]
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            self.out_features = int(self.net(torch.zeros(1, *obs_shape)).shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MinAtarTorso(nn.Module):
    """The MinAtar paper's network body (Young & Tian 2019): one 16x3x3 convolution
    (stride 1) and ReLU on the [C, 10, 10] grid, flattened ([B, 1024] for 10x10). The
    128-unit fully connected layer belongs to the head (``head_hidden``)."""

    def __init__(self, obs_shape: Sequence[int]):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(obs_shape[0], 16, kernel_size=3, stride=1), nn.ReLU(), nn.Flatten()
        )
        with torch.no_grad():
            self.out_features = int(self.net(torch.zeros(1, *obs_shape)).shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
