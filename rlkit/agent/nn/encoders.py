"""Input encoders for packed observations (``rlkit.types.ObsLayout``).

A packed observation is one flat array per env step, of the smallest lossless dtype
(``rlkit.envs.spaces``); ``LayoutTorso`` reads it part by part on the device:

- ``onehot`` parts: each column an integer in ``[0, classes[i])``, one-hot encoded here
  (replay stores the integers, never the one-hots);
- ``box`` parts: the values as float32, times the part's ``scale``;
- ``image`` parts: reshaped to [C, H, W] (transposed from [H, W, C] when stored so),
  times ``scale``, through a CNN sized for them (the Nature CNN from 36 px, the MinAtar
  CNN below), flattened.

The encodings are concatenated and go through the MLP torso (``hidden_sizes``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rlkit.agent.nn.torsos import MinAtarTorso, MLPTorso, NatureCNNTorso
from rlkit.types import ObsLayout, ObsPart


def image_torso(shape: Sequence[int]) -> nn.Module:
    """The CNN for a [C, H, W] image: Nature CNN from 36 px on its shorter side, else
    the MinAtar CNN (one 3x3 convolution, for grids from 3 px)."""
    return NatureCNNTorso(shape) if min(shape[1:]) >= 36 else MinAtarTorso(shape)


class OneHot(nn.Module):
    """Integer columns [B, K] (column ``i`` in ``[0, classes[i])``) -> concatenated
    one-hots [B, sum(classes)]."""

    def __init__(self, classes: Sequence[int]) -> None:
        super().__init__()
        offsets = torch.cumsum(torch.tensor([0, *classes[:-1]], dtype=torch.int64), 0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.out_features = int(sum(classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = x.long() + self.offsets
        out = torch.zeros(x.shape[0], self.out_features, device=x.device)
        return out.scatter_(1, index, 1.0)


class Scaled(nn.Module):
    """Columns as float32 times ``scale``, optionally reshaped to an image and through a
    CNN (``image``: [C, H, W]; ``channels_last``: the columns hold [H, W, C])."""

    def __init__(self, part: ObsPart) -> None:
        super().__init__()
        self.scale = float(part.scale)
        self.image = part.kind == "image"
        self.channels_last = part.channels_last
        self.shape = tuple(part.shape)
        if self.image:
            self.cnn = image_torso(self.shape)
            self.out_features = int(self.cnn.out_features)
        else:
            self.out_features = part.stop - part.start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if self.scale != 1.0:
            x = x * self.scale
        if not self.image:
            return x
        c, h, w = self.shape
        if self.channels_last:
            x = x.reshape(-1, h, w, c).permute(0, 3, 1, 2)
        else:
            x = x.reshape(-1, c, h, w)
        return self.cnn(x.contiguous())


class LayoutTorso(nn.Module):
    """One encoder per part of ``layout``, concatenated, then ``Linear -> ReLU`` for
    each width in ``hidden_sizes``. Input [B, layout.size] (any dtype); output
    [B, out_features]."""

    def __init__(self, layout: ObsLayout, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        self.layout = layout
        self.slices = [(p.start, p.stop) for p in layout.parts]
        self.encoders = nn.ModuleList(
            OneHot(p.classes) if p.kind == "onehot" else Scaled(p) for p in layout.parts
        )
        width = sum(int(e.out_features) for e in self.encoders)
        self.mlp = MLPTorso(width, hidden_sizes, nn.Linear)
        self.out_features = self.mlp.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        parts = [enc(x[:, a:b]) for enc, (a, b) in zip(self.encoders, self.slices, strict=True)]
        return self.mlp(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
