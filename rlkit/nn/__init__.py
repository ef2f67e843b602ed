"""Neural network building blocks: NoisyLinear, torsos, heads and QNetwork."""

from rlkit.nn.heads import DuelingHead, LinearHead
from rlkit.nn.noisy import NoisyLinear, draw_factorised_noise
from rlkit.nn.qnet import QNetwork
from rlkit.nn.torsos import MLPTorso, NatureCNNTorso

__all__ = [
    "DuelingHead",
    "LinearHead",
    "MLPTorso",
    "NatureCNNTorso",
    "NoisyLinear",
    "QNetwork",
    "draw_factorised_noise",
]
