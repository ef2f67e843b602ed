"""Neural network building blocks: NoisyLinear, torsos, heads and QNetwork."""

from rlkit.agent.nn.heads import DuelingHead, LinearHead
from rlkit.agent.nn.noisy import NoisyLinear, draw_factorised_noise
from rlkit.agent.nn.qnet import QNetwork
from rlkit.agent.nn.torsos import MLPTorso, NatureCNNTorso

__all__ = [
    "DuelingHead",
    "LinearHead",
    "MLPTorso",
    "NatureCNNTorso",
    "NoisyLinear",
    "QNetwork",
    "draw_factorised_noise",
]
