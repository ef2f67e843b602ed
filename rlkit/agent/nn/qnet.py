"""QNetwork: torso + (dueling | linear) head, plain or noisy layers, scalar or C51."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from rlkit.agent.nn.heads import DuelingHead, LinearHead
from rlkit.agent.nn.noisy import NoisyLinear, draw_factorised_noise
from rlkit.agent.nn.torsos import MinAtarTorso, MLPTorso, NatureCNNTorso

TORSOS = ("auto", "mlp", "nature_cnn", "minatar_cnn")


class QNetwork(nn.Module):
    """A Q-network for discrete actions.

    Args:
        obs_shape: observation shape; vectors use the MLP torso, images ([C, H, W]) the
            Nature CNN, or the MinAtar CNN below 36 pixels (``torso="auto"``).
        num_actions: number of discrete actions ``A``.
        hidden_sizes: widths of the MLP torso's hidden layers.
        dueling: dueling head (``Q = V + A - mean A``) instead of a linear one.
        noisy: the head's fully connected layers (its hidden and output layers) are
            ``NoisyLinear``; the torso (MLP layers or convolutions) stays plain, as in
            Rainbow, where the convolutional torso is plain and the fully connected
            streams are noisy.
        atoms: ``Z``; 1 gives scalar Q-values, ``> 1`` a C51 head over
            ``torch.linspace(v_min, v_max, atoms)``.
        sigma0: initial noise scale of noisy layers.
        torso: ``"auto"``, ``"mlp"``, ``"nature_cnn"`` or ``"minatar_cnn"``.
        head_hidden: width of a hidden layer in each head stream (0 = none). Defaults:
            512 for the Nature CNN (the DQN/Rainbow fully connected layer), 128 for the
            MinAtar CNN, 0 for the MLP.

    ``forward(obs)`` returns Q-values [B, A] in every case. Distributional nets also give
    ``log_probs(obs)`` [B, A, Z]. uint8 observations are scaled by 1/255 on the device.
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        num_actions: int,
        *,
        hidden_sizes: Sequence[int] = (128, 128),
        dueling: bool = True,
        noisy: bool = True,
        atoms: int = 1,
        v_min: float = -10.0,
        v_max: float = 10.0,
        sigma0: float = 0.5,
        torso: str = "auto",
        head_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if atoms < 1:
            raise ValueError(f"atoms must be >= 1, got {atoms}")
        if atoms > 1 and not v_min < v_max:
            raise ValueError(f"v_min must be < v_max, got {v_min} >= {v_max}")
        if torso not in TORSOS:
            raise ValueError(f"torso must be one of {TORSOS}, got {torso!r}")
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.num_actions = int(num_actions)
        self.atoms = int(atoms)
        self.dueling, self.noisy = dueling, noisy
        linear = partial(NoisyLinear, sigma0=sigma0) if noisy else nn.Linear
        if torso == "auto":
            if len(self.obs_shape) != 3:
                torso = "mlp"
            else:  # the Nature CNN needs >= 36 px; MinAtar's 10x10 grids get its own net
                torso = "nature_cnn" if min(self.obs_shape[1:]) >= 36 else "minatar_cnn"
        if torso == "nature_cnn":
            self.torso: nn.Module = NatureCNNTorso(self.obs_shape)
            head_hidden = 512 if head_hidden is None else head_hidden
        elif torso == "minatar_cnn":
            self.torso = MinAtarTorso(self.obs_shape)
            head_hidden = 128 if head_hidden is None else head_hidden
        else:
            self.torso = MLPTorso(math.prod(self.obs_shape), hidden_sizes, nn.Linear)
            head_hidden = 0 if head_hidden is None else head_hidden
        if torso != "mlp":
            self.torso.to(memory_format=torch.channels_last)
        head_cls = DuelingHead if dueling else LinearHead
        self.head = head_cls(
            self.torso.out_features, self.num_actions, self.atoms, head_hidden, linear
        )
        self.register_buffer(
            "support", torch.linspace(v_min, v_max, atoms) if atoms > 1 else torch.zeros(1)
        )
        self._noisy_layers = [m for m in self.modules() if isinstance(m, NoisyLinear)]

    @property
    def distributional(self) -> bool:
        return self.atoms > 1

    def _head_out(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw head output [B, A, Z] (logits for C51, Q-values for Z = 1)."""
        if obs.dtype == torch.uint8:
            obs = obs.float().div_(255.0)
        elif obs.dtype != torch.float32:
            obs = obs.float()
        if obs.dim() == 4:  # convolutions run faster on channels-last tensors (CPU and GPU)
            obs = obs.contiguous(memory_format=torch.channels_last)
        return self.head(self.torso(obs))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values [B, A] (the expected value under the distribution for C51)."""
        return self.q_and_log_probs(obs)[0]

    def log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """Per-action log-probabilities over the support [B, A, Z] (C51 nets only)."""
        if not self.distributional:
            raise RuntimeError("log_probs() needs a distributional network (atoms > 1)")
        return torch.log_softmax(self._head_out(obs), dim=2)

    def q_and_log_probs(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Q-values [B, A] and, for C51 nets, log-probabilities [B, A, Z] (else None)."""
        out_BAZ = self._head_out(obs)
        if not self.distributional:
            return out_BAZ.squeeze(2), None
        log_probs_BAZ = torch.log_softmax(out_BAZ, dim=2)
        q_BA = (log_probs_BAZ.exp() * self.support).sum(dim=2)
        return q_BA, log_probs_BAZ

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        """Resample the noise of every noisy layer (no-op for plain networks).

        ``draw_factorised_noise`` over all noisy layers at once: every ``eps_in`` and
        ``eps_out`` entry becomes ``f(x) = sgn(x) sqrt(|x|)`` of an independent standard
        normal ``x``, the distribution of ``NoisyLinear.reset_noise`` on each layer.
        """
        draw_factorised_noise(self._noisy_layers, generator)
