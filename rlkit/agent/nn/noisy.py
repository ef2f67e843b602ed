"""Noisy linear layer with factorised Gaussian noise (Fortunato et al. 2018, Sec. 3)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def draw_factorised_noise(
    layers: Sequence[NoisyLinear], generator: torch.Generator | None = None
) -> None:
    """Fill ``eps_in`` [in] and ``eps_out`` [out] of every layer with fresh noise.

    Fortunato et al. 2018, Sec. 3 (factorised Gaussian noise): each entry is
    ``f(x) = sgn(x) sqrt(|x|)`` of an independent ``x ~ N(0, 1)``. One standard normal
    vector is drawn for all the layers together and split into their buffers (a few ops
    instead of several per layer); every entry is still independent of every other.
    The only implementation of the noise draw: ``NoisyLinear.reset_noise`` and
    ``QNetwork.reset_noise`` both call it.
    """
    buffers = [b for layer in layers for b in (layer.eps_in, layer.eps_out)]
    if not buffers:
        return
    sizes = [b.numel() for b in buffers]
    x = torch.randn(sum(sizes), device=buffers[0].device, generator=generator)
    noise = x.abs().sqrt_().mul_(x.sign())
    torch._foreach_copy_(buffers, list(noise.split(sizes)))


class FactorisedNoise:
    """``draw_factorised_noise`` over a fixed list of layers, without the copies: the
    layers' ``eps_in``/``eps_out`` buffers are views of one flat vector (``bind``), which
    a draw fills in place (the same values as ``draw_factorised_noise`` from the same
    generator state).

    State dicts are unchanged (the buffers keep their names and shapes, and loading
    copies into them in place); ``copy.deepcopy`` keeps the views. Should something
    replace the buffers (``module.to(...)`` does, and ``QNetwork`` binds again after it),
    a draw notices and falls back to ``draw_factorised_noise``: it never replaces a
    buffer by itself, so references to the buffers (published parameters) stay valid.
    """

    def __init__(self, layers: Sequence[NoisyLinear]) -> None:
        self.layers = list(layers)
        self._flat: torch.Tensor | None = None
        self._offsets: list[int] = []  # each buffer's byte offset into the flat vector
        self.bind()

    def _buffers(self) -> list[torch.Tensor]:
        return [b for layer in self.layers for b in (layer.eps_in, layer.eps_out)]

    def bind(self) -> None:
        """Make every noise buffer a view of one flat vector holding their values."""
        if not self.layers:
            return
        flat = torch.cat([b.reshape(-1) for b in self._buffers()])
        offset = 0
        for layer in self.layers:
            for name in ("eps_in", "eps_out"):
                size = getattr(layer, name).numel()
                setattr(layer, name, flat[offset : offset + size])
                offset += size
        self._flat = flat
        self._offsets = [b.data_ptr() - flat.data_ptr() for b in self._buffers()]

    def _bound(self) -> bool:
        flat = self._flat
        if flat is None:
            return False
        base = flat.data_ptr()
        bufs = self._buffers()
        return all(b.data_ptr() - base == off for b, off in zip(bufs, self._offsets, strict=True))

    @torch.no_grad()
    def draw(self, generator: torch.Generator | None = None) -> None:
        """Fill every layer's noise with fresh ``f(x) = sgn(x) sqrt(|x|)``, x ~ N(0, 1)."""
        if not self._bound():
            draw_factorised_noise(self.layers, generator)
            return
        flat = self._flat
        assert flat is not None
        torch.randn(flat.shape, generator=generator, out=flat)
        sign = flat.sign()
        flat.abs_().sqrt_().mul_(sign)


class NoisyLinear(nn.Module):
    """``y = (mu_w + sigma_w * eps_w) x + mu_b + sigma_b * eps_b``.

    Factorised noise: ``eps_w = f(eps_out) f(eps_in)^T`` (rank one, [out, in]) and
    ``eps_b = f(eps_out)``. Initialisation: ``mu ~ U(-1/sqrt(in), 1/sqrt(in))``,
    ``sigma = sigma0 / sqrt(in)``. The noise is resampled only by ``reset_noise()`` and
    stays fixed between calls; in ``eval()`` mode the layer uses the means only.
    The noise vectors are buffers, so they are part of ``state_dict``.
    """

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.sigma0 = sigma0
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.reset_parameters()
        self.reset_noise()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        nn.init.uniform_(self.weight_mu, -bound, bound)
        nn.init.uniform_(self.bias_mu, -bound, bound)
        nn.init.constant_(self.weight_sigma, self.sigma0 / math.sqrt(self.in_features))
        nn.init.constant_(self.bias_sigma, self.sigma0 / math.sqrt(self.in_features))

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        """Draw new factorised noise vectors ``f(eps_in)`` [in] and ``f(eps_out)`` [out]
        (``draw_factorised_noise`` on this layer alone)."""
        draw_factorised_noise([self], generator)

    @property
    def weight_epsilon(self) -> torch.Tensor:
        """The weight noise matrix ``f(eps_out) f(eps_in)^T``, [out, in] (rank one)."""
        return torch.outer(self.eps_out, self.eps_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return F.linear(x, self.weight_mu, self.bias_mu)
        weight = self.weight_mu + self.weight_sigma * self.weight_epsilon
        bias = self.bias_mu + self.bias_sigma * self.eps_out
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, sigma0={self.sigma0}"
