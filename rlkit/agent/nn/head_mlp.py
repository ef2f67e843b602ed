"""Forward and backward of MLP-torso Q-networks with plain or noisy, dueling or linear
heads, without autograd: the fast CPU path of Rainbow-style updates on vector envs.

A Rainbow update of a small network on a CPU spends most of its time in per-operation
overhead (autograd's graph, module dispatch, the backward engine), not in arithmetic.
``HeadMLPGrad`` writes both directions out for the network ``QNetwork`` builds on an MLP
torso: ``Flatten -> (Linear -> ReLU)*`` and a ``DuelingHead`` or ``LinearHead`` whose
streams are one layer or ``layer -> ReLU -> layer`` of ``nn.Linear`` or ``NoisyLinear``.

- ``forward(obs)`` gives the raw outputs [B, A, Z] with the same operations as the
  modules (a noisy layer's weight is ``mu + sigma * outer(eps_out, eps_in)``; dueling is
  ``V + A - mean_a A``), so the values equal the module forward's bit for bit; with
  ``keep=True`` it keeps the activations and effective weights for ``backward``.
- ``backward(d_raw)`` writes dL/dparam for a loss with dL/d(raw outputs) = ``d_raw``
  into every parameter's ``.grad`` (views of one flat buffer, ``flat_grad``): a noisy
  layer's ``dL/dmu_w = dW``, ``dL/dsigma_w = dW * outer(eps_out, eps_in)``,
  ``dL/dmu_b = db``, ``dL/dsigma_b = db * eps_out``.

``head_mlp_layout(net)`` tells whether a network qualifies. The tests check both
directions against autograd for every head and layer kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rlkit.agent.nn.heads import DuelingHead, LinearHead
from rlkit.agent.nn.noisy import NoisyLinear
from rlkit.agent.nn.plain_mlp import attach_flat_grads
from rlkit.agent.nn.torsos import MLPTorso

_threshold_backward = torch.ops.aten.threshold_backward.default  # grad * (act > 0)


@dataclass(frozen=True)
class HeadMLPLayout:
    """The layers of a qualifying net: the torso's ``nn.Linear`` layers (ReLU after
    each) and the head's streams (ReLU between a stream's layers), with its shape."""

    torso: list[nn.Linear]
    streams: list[list[nn.Module]]  # [value, advantage] (dueling) or [stream]
    dueling: bool
    num_actions: int
    atoms: int


def _stream_layers(stream: nn.Module) -> list[nn.Module] | None:
    layers = [stream] if not isinstance(stream, nn.Sequential) else list(stream)
    if len(layers) == 3 and type(layers[1]) is nn.ReLU:
        layers = [layers[0], layers[2]]
    elif len(layers) != 1:
        return None
    ok = all(
        type(m) is NoisyLinear or (type(m) is nn.Linear and m.bias is not None) for m in layers
    )
    return layers if ok else None


def head_mlp_layout(net: nn.Module) -> HeadMLPLayout | None:
    """The layout of ``net`` when it is an MLP-torso QNetwork with a dueling or linear
    head of plain or noisy layers (float32 parameters) reading the torso directly (not
    IQN), else None."""
    torso, head = getattr(net, "torso", None), getattr(net, "head", None)
    if not isinstance(torso, MLPTorso) or type(head) not in (DuelingHead, LinearHead):
        return None
    if getattr(net, "implicit", None) is not None:  # IQN: the head reads embedded fractions
        return None
    modules = list(torso.net)
    if not modules or type(modules[0]) is not nn.Flatten:
        return None
    linears, relus = modules[1::2], modules[2::2]
    if len(linears) != len(relus) or not all(type(m) is nn.ReLU for m in relus):
        return None
    if not all(type(m) is nn.Linear and m.bias is not None for m in linears):
        return None
    dueling = type(head) is DuelingHead
    streams = [
        _stream_layers(s) for s in ((head.value, head.advantage) if dueling else (head.stream,))
    ]
    if any(s is None for s in streams):
        return None
    if any(p.dtype != torch.float32 for p in net.parameters()):
        return None
    return HeadMLPLayout(linears, streams, dueling, int(head.num_actions), int(head.atoms))


class _Layer:
    """One linear layer: its effective weight and bias for a forward pass, and how the
    gradients of those map to its parameters."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.noisy = type(module) is NoisyLinear
        self.params = (
            [module.weight_mu, module.weight_sigma, module.bias_mu, module.bias_sigma]
            if self.noisy
            else [module.weight, module.bias]
        )
        self.weight: torch.Tensor = self.params[0]  # effective, set by effective()
        self._eps_w: torch.Tensor | None = None

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight [out, in], bias [out]) as the module's forward computes them."""
        m = self.module
        if not self.noisy:
            self.weight = m.weight
            return m.weight, m.bias
        if not m.training:
            self.weight, self._eps_w = m.weight_mu, None
            return m.weight_mu, m.bias_mu
        self._eps_w = eps_w = torch.outer(m.eps_out, m.eps_in)
        self.weight = m.weight_mu + m.weight_sigma * eps_w
        return self.weight, m.bias_mu + m.bias_sigma * m.eps_out

    def write_grads(self, dy_BO: torch.Tensor, x_BI: torch.Tensor) -> None:
        """The parameter gradients of this layer for output gradient ``dy`` at input
        ``x`` (the effective weight's gradient is ``dy^T x``, the bias's ``sum_b dy``)."""
        w_grad, b_grad = self.params[0].grad, self.params[-2 if self.noisy else -1].grad
        torch.mm(dy_BO.t(), x_BI, out=w_grad)
        torch.sum(dy_BO, dim=0, out=b_grad)
        if self.noisy:
            if self._eps_w is None:
                raise RuntimeError("HeadMLPGrad.backward: noisy layers must be in training mode")
            torch.mul(w_grad, self._eps_w, out=self.params[1].grad)
            torch.mul(b_grad, self.module.eps_out, out=self.params[3].grad)


class HeadMLPGrad:
    """Forward and backward of one qualifying network (``head_mlp_layout``)."""

    def __init__(self, net: nn.Module) -> None:
        layout = head_mlp_layout(net)
        if layout is None:
            raise ValueError(
                "HeadMLPGrad needs an MLP-torso QNetwork with a dueling or linear head"
            )
        self.net, self.layout = net, layout
        self.torso = [_Layer(m) for m in layout.torso]
        self.streams = [[_Layer(m) for m in s] for s in layout.streams]
        self._layers = [*self.torso, *(layer for s in self.streams for layer in s)]
        self._params = [p for layer in self._layers for p in layer.params]
        self._inputs: list[torch.Tensor] = []  # each layer's input, in self._layers order
        self._kept = False
        #: every parameter gradient, concatenated; ``param.grad`` are views into it.
        self.flat_grad: torch.Tensor | None = None

    @torch.no_grad()
    def forward(self, obs: torch.Tensor, keep: bool = False) -> torch.Tensor:
        """Raw outputs [B, A, Z] for ``obs`` [B, *obs_shape] (float, or uint8 scaled by
        1/255); ``keep``: remember what ``backward`` needs."""
        x = obs.reshape(obs.shape[0], -1)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        elif x.dtype != torch.float32:
            x = x.float()
        inputs = []
        h = x
        for layer in self.torso:
            inputs.append(h)
            weight, bias = layer.effective()
            h = torch.addmm(bias, h, weight.t()).relu_()
        outs = []
        for stream in self.streams:
            g = h
            for k, layer in enumerate(stream):
                inputs.append(g)
                weight, bias = layer.effective()
                g = torch.addmm(bias, g, weight.t())
                if k + 1 < len(stream):
                    g = g.relu_()
            outs.append(g)
        self._inputs, self._kept = (inputs, True) if keep else ([], False)
        lay = self.layout
        if not lay.dueling:
            return outs[0].view(-1, lay.num_actions, lay.atoms)
        value_B1Z = outs[0].view(-1, 1, lay.atoms)
        adv_BAZ = outs[1].view(-1, lay.num_actions, lay.atoms)
        return value_B1Z + adv_BAZ - adv_BAZ.mean(dim=1, keepdim=True)

    @torch.no_grad()
    def backward(self, d_raw_BAZ: torch.Tensor) -> None:
        """Gradients of a loss with dL/d(raw outputs) = ``d_raw_BAZ`` [B, A, Z] w.r.t.
        every parameter, written into ``param.grad`` (previous values replaced), for the
        last ``forward(..., keep=True)``."""
        if not self._kept:
            raise RuntimeError("HeadMLPGrad.backward() needs a forward(..., keep=True) first")
        if not self.grads_attached():
            self._attach_grads()
        batch = d_raw_BAZ.shape[0]
        if self.layout.dueling:
            d_value = d_raw_BAZ.sum(dim=1)
            d_adv = d_raw_BAZ - d_raw_BAZ.mean(dim=1, keepdim=True)
            d_outs = [d_value, d_adv.reshape(batch, -1)]
        else:
            d_outs = [d_raw_BAZ.reshape(batch, -1)]
        inputs = iter(reversed(self._inputs))
        d_features = None
        for stream, dy in zip(reversed(self.streams), reversed(d_outs), strict=True):
            for k in range(len(stream) - 1, -1, -1):
                x = next(inputs)
                stream[k].write_grads(dy, x)
                if k > 0:
                    dy = _threshold_backward(torch.mm(dy, stream[k].weight), x, 0.0)
                elif self.torso:  # the torso's layers need dL/d(features)
                    dx = torch.mm(dy, stream[k].weight)
                    d_features = dx if d_features is None else d_features.add_(dx)
        dy = d_features
        for k in range(len(self.torso) - 1, -1, -1):
            # layer k's output after its ReLU is the next layer's input (the last torso
            # layer's is the first stream layer's)
            dy = _threshold_backward(dy, self._inputs[k + 1], 0.0)
            self.torso[k].write_grads(dy, self._inputs[k])
            if k > 0:
                dy = torch.mm(dy, self.torso[k].weight)

    def _attach_grads(self) -> None:
        """Point every ``param.grad`` into one flat buffer (``flat_grad``)."""
        self.flat_grad = attach_flat_grads(self._params)

    def grads_attached(self) -> bool:
        """True while every parameter's ``.grad`` is a view of ``flat_grad``."""
        return self.flat_grad is not None and all(
            p.grad is not None and p.grad._base is self.flat_grad for p in self._params
        )
