"""QNetwork: torso + (dueling | linear) head, plain or noisy layers, Z outputs per action.

The network knows nothing of losses: its raw outputs are [B, A, Z], and its ``readout``
(provided by the objective, ``rlkit.agent.objectives``) turns them into Q-values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn

from rlkit.agent import objectives
from rlkit.agent.nn.encoders import LayoutTorso
from rlkit.agent.nn.heads import DuelingHead, LinearHead
from rlkit.agent.nn.implicit import ImplicitQuantiles
from rlkit.agent.nn.noisy import FactorisedNoise, NoisyLinear
from rlkit.agent.nn.torsos import MinAtarTorso, MLPTorso, NatureCNNTorso
from rlkit.types import ObsLayout

#: the torso names (``network.torso``); the config's choices are this tuple.
TORSOS = ("auto", "mlp", "nature_cnn", "minatar_cnn")


def make_torso(
    obs_shape: tuple[int, ...],
    torso: str,
    hidden_sizes: Sequence[int],
    obs_layout: ObsLayout | None = None,
) -> tuple[nn.Module, int]:
    """The torso named ``torso`` (``auto``: the MLP for vectors, the Nature CNN for
    [C, H, W] images from 36 px, the MinAtar CNN from 3 px; a ``LayoutTorso`` for packed
    observations) and the head's default hidden width for it (512, 128, 0)."""
    if obs_layout is not None:
        if torso not in ("auto", "mlp"):
            raise ValueError(
                f"torso {torso!r} does not read packed observations (Discrete, Dict, ...): "
                "use auto or mlp (image parts get their own CNN)"
            )
        return LayoutTorso(obs_layout, hidden_sizes), 0
    if torso == "auto":
        if len(obs_shape) != 3 or min(obs_shape[1:]) < 3:
            torso = "mlp"
        else:  # the Nature CNN needs >= 36 px; MinAtar's 10x10 grids get its own net
            torso = "nature_cnn" if min(obs_shape[1:]) >= 36 else "minatar_cnn"
    if torso == "mlp":
        return MLPTorso(math.prod(obs_shape), hidden_sizes, nn.Linear), 0
    module, width = (
        (NatureCNNTorso(obs_shape), 512)
        if torso == "nature_cnn"
        else (MinAtarTorso(obs_shape), 128)
    )
    return module.to(memory_format=torch.channels_last), width


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
        atoms: ``Z``, outputs per action (1 for scalar Q-values).
        v_min, v_max: the support of the default readout of nets with ``atoms > 1``
            (C51: ``torch.linspace(v_min, v_max, atoms)``).
        sigma0: initial noise scale of noisy layers.
        torso: ``"auto"``, ``"mlp"``, ``"nature_cnn"`` or ``"minatar_cnn"``.
        head_hidden: width of a hidden layer in each head stream (0 = none). Defaults:
            512 for the Nature CNN (the DQN/Rainbow fully connected layer), 128 for the
            MinAtar CNN, 0 for the MLP.
        obs_layout: for packed observations (``rlkit.envs.spaces``: Discrete, Dict, ...),
            their layout; the torso is then a ``LayoutTorso`` (one encoder per part, then
            the MLP of ``hidden_sizes``).
        quantile_embedding: for IQN, the options of ``ImplicitQuantiles`` (``cosines``,
            ``acting_quantiles``, ``cvar_eta``): the head then reads the torso's features
            times the cosine embedding of sampled fractions, one output per action and
            fraction, and ``atoms`` is ignored by the net (N is the caller's).

    ``forward(obs)`` returns Q-values [B, A] (through the readout); ``raw(obs)`` the head's
    outputs [B, A, Z] (IQN: ``raw(obs, taus)`` for fractions [B, N] gives [B, A, N], and
    ``raw(obs)`` uses the embedding's acting fractions). uint8 observations are scaled by
    1/255 on the device.
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
        readout: nn.Module | None = None,
        obs_layout: ObsLayout | None = None,
        quantile_embedding: dict | None = None,
    ) -> None:
        super().__init__()
        if atoms < 1:
            raise ValueError(f"atoms must be >= 1, got {atoms}")
        if torso not in TORSOS:
            raise ValueError(f"torso must be one of {TORSOS}, got {torso!r}")
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.num_actions = int(num_actions)
        self.atoms = int(atoms)
        self.dueling, self.noisy = dueling, noisy
        linear = partial(NoisyLinear, sigma0=sigma0) if noisy else nn.Linear
        self.obs_layout = obs_layout
        self.torso, default_hidden = make_torso(self.obs_shape, torso, hidden_sizes, obs_layout)
        head_hidden = default_hidden if head_hidden is None else head_hidden
        head_cls = DuelingHead if dueling else LinearHead
        #: IQN's fraction embedding (None for other heads)
        self.implicit: ImplicitQuantiles | None = None
        if quantile_embedding is not None:
            self.implicit = ImplicitQuantiles(self.torso.out_features, **quantile_embedding)
        head_atoms = 1 if self.implicit is not None else self.atoms
        self.head = head_cls(
            self.torso.out_features, self.num_actions, head_atoms, head_hidden, linear
        )
        if readout is None:
            readout = objectives.make_readout(objectives.AUTO, self.atoms, v_min, v_max)
        self.readout = readout
        self._noisy_layers = [m for m in self.modules() if isinstance(m, NoisyLinear)]
        self._noise = FactorisedNoise(self._noisy_layers)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The torso's features [B, F] of observations (uint8 scaled by 1/255)."""
        if self.obs_layout is not None:  # packed: each part is decoded (and scaled) apart
            return self.torso(obs)
        if obs.dtype == torch.uint8:
            obs = obs.float().div_(255.0)
        elif obs.dtype != torch.float32:
            obs = obs.float()
        if obs.dim() == 4:  # convolutions run faster on channels-last tensors (CPU and GPU)
            obs = obs.contiguous(memory_format=torch.channels_last)
        return self.torso(obs)

    def raw(self, obs: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        """Raw head outputs [B, A, Z] (what the readout and the objective read). IQN
        nets: the outputs [B, A, N] at fractions ``taus`` [B, N] (None: the acting
        fractions); other nets refuse ``taus``."""
        features_BF = self.features(obs)
        if self.implicit is None:
            if taus is not None:
                raise ValueError("raw(obs, taus): only IQN nets take quantile fractions")
            return self.head(features_BF)
        if taus is None:
            taus = self.implicit.acting_fractions(features_BF.shape[0], features_BF)
        batch, n = taus.shape
        out_MA1 = self.head(self.implicit(features_BF, taus))  # M = B * N
        return out_MA1.view(batch, n, self.num_actions).transpose(1, 2)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values [B, A]: the readout of the raw outputs."""
        return self.readout(self.raw(obs))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # noqa: ANN001
        # State dicts of earlier versions held the C51 support ("support"), which the
        # readout now owns and derives from v_min, v_max and atoms.
        state_dict.pop(prefix + "support", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 - nn.Module's signature
        # .to(), .float(), .cuda() replace the noise buffers: view them in one vector again
        out = super()._apply(fn, recurse)
        if hasattr(self, "_noise"):
            self._noise.bind()
        return out

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        """Resample the noise of every noisy layer (no-op for plain networks).

        One draw for all noisy layers at once (``FactorisedNoise``, the same values as
        ``draw_factorised_noise`` over them): every ``eps_in`` and
        ``eps_out`` entry becomes ``f(x) = sgn(x) sqrt(|x|)`` of an independent standard
        normal ``x``, the distribution of ``NoisyLinear.reset_noise`` on each layer.
        """
        self._noise.draw(generator)
