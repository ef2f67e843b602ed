"""Fast paths for Q-networks that are plain ReLU MLPs (no noise, no dueling, no C51).

Small MLPs on a CPU spend most of an update in per-operation overhead (autograd graph,
module dispatch), not in arithmetic. For the plain network ``Linear -> ReLU -> ... ->
Linear`` both directions are short enough to write out:

- ``PlainMLPGrad``: forward pass into preallocated buffers and the hand-written
  backward pass of a loss given as dL/dQ [B, A], writing ``param.grad``. The same maths
  as autograd (checked against it in the tests), about half the time per update.
- ``NumpyGreedy``: argmax_a Q(obs, a) with NumPy on views of the live CPU parameters
  (optimizer steps and ``load_state_dict`` write into the same memory), for acting one
  observation at a time without torch's per-call overhead.

``plain_mlp_layers(net)`` tells whether a network qualifies.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rlkit.agent.nn.torsos import MLPTorso

# autograd's own ReLU backward kernel: grad * (activation > threshold), one pass.
_threshold_backward = torch.ops.aten.threshold_backward.grad_input


def plain_mlp_layers(net: nn.Module) -> list[nn.Linear] | None:
    """The linear layers of a QNetwork that is exactly ``Linear (-> ReLU -> Linear)*``
    on flattened float input with one output per action, else None."""
    if getattr(net, "noisy", True) or getattr(net, "dueling", True):
        return None
    if getattr(net, "atoms", 0) != 1 or getattr(net, "implicit", None) is not None:
        return None
    torso, head = getattr(net, "torso", None), getattr(net, "head", None)
    if torso is None or head is None or not hasattr(head, "stream"):
        return None
    if type(torso) is not MLPTorso:  # e.g. a LayoutTorso decodes one-hots first
        return None
    modules = [m for m in torso.modules() if not list(m.children())]
    modules += [m for m in head.stream.modules() if not list(m.children())]
    modules = [m for m in modules if not isinstance(m, nn.Flatten)]
    linears = modules[0::2]
    relus = modules[1::2]
    if len(linears) != len(relus) + 1:
        return None
    if not all(type(m) is nn.Linear and m.bias is not None for m in linears):
        return None
    if not all(type(m) is nn.ReLU for m in relus):
        return None
    return linears


def attach_flat_grads(params: list[torch.Tensor]) -> torch.Tensor:
    """A zeroed flat buffer of all of ``params``' elements, with every ``param.grad`` made
    a view into it (so clipping is one norm and one scale); returns the buffer."""
    flat = params[0].new_zeros(sum(p.numel() for p in params))
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat


class PlainMLPGrad:
    """Forward and backward of a plain ReLU MLP Q-network without autograd.

    ``forward(obs_BD)`` returns Q [B, A] and keeps the activations; ``backward(dq_BA)``
    then writes dL/dparam into every parameter's ``.grad`` (replacing it). Buffers are
    reused while the batch size stays the same.
    """

    def __init__(self, net: nn.Module) -> None:
        layers = plain_mlp_layers(net)
        if layers is None:
            raise ValueError("PlainMLPGrad needs a plain ReLU MLP QNetwork (no noisy/dueling/C51)")
        self.net = net
        self.weights = [layer.weight for layer in layers]  # [out, in] each
        self.biases = [layer.bias for layer in layers]
        self._batch = -1
        self._acts: list[torch.Tensor] = []  # hidden activations [B, H_l] after ReLU
        self._grads: list[torch.Tensor] = []  # dL/dh for each hidden layer [B, H_l]
        self._scratch: list[torch.Tensor] = []  # dL/dh before the ReLU mask [B, H_l]
        self._input: torch.Tensor | None = None
        #: every parameter gradient, concatenated; ``param.grad`` are views into it.
        self.flat_grad: torch.Tensor | None = None

    def _allocate(self, batch: int, like: torch.Tensor) -> None:
        self._batch = batch
        self._acts = [like.new_empty(batch, w.shape[0]) for w in self.weights[:-1]]
        self._grads = [like.new_empty(batch, w.shape[0]) for w in self.weights[:-1]]
        self._scratch = [like.new_empty(batch, w.shape[0]) for w in self.weights[:-1]]
        self._q = like.new_empty(batch, self.weights[-1].shape[0])

    def _attach_grads(self) -> None:
        """Point every ``param.grad`` into one flat buffer (``flat_grad``)."""
        self.flat_grad = attach_flat_grads([*self.weights, *self.biases])

    def grads_attached(self) -> bool:
        """True while every parameter's ``.grad`` is a view of ``flat_grad``."""
        return self.flat_grad is not None and all(
            p.grad is not None and p.grad._base is self.flat_grad
            for p in (*self.weights, *self.biases)
        )

    @torch.no_grad()
    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values [B, A] for ``obs`` [B, *obs_shape] (float, or uint8 scaled by 1/255)."""
        x = obs.reshape(obs.shape[0], -1)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        elif x.dtype != torch.float32:
            x = x.float()
        if x.shape[0] != self._batch or (self._acts and self._acts[0].device != x.device):
            self._allocate(x.shape[0], self.weights[0])
        self._input = x
        h = x
        for w, b, out in zip(self.weights[:-1], self.biases[:-1], self._acts):
            h = torch.addmm(b, h, w.t(), out=out).relu_()
        return torch.addmm(self.biases[-1], h, self.weights[-1].t(), out=self._q)

    @torch.no_grad()
    def backward(self, dq_BA: torch.Tensor) -> None:
        """Gradients of a loss with dL/dQ = ``dq_BA`` w.r.t. every weight and bias,
        written into ``param.grad`` (views of ``flat_grad``; previous values replaced)."""
        if self._input is None:
            raise RuntimeError("PlainMLPGrad.backward() needs a forward() first")
        if not self.grads_attached():
            self._attach_grads()  # first call, or someone replaced the grads
        inputs = [self._input, *self._acts]
        grad_out = dq_BA
        for k in range(len(self.weights) - 1, -1, -1):
            w, b = self.weights[k], self.biases[k]
            torch.mm(grad_out.t(), inputs[k], out=w.grad)  # [out, in]
            torch.sum(grad_out, dim=0, out=b.grad)
            if k == 0:
                break
            grad_in, scratch = self._grads[k - 1], self._scratch[k - 1]
            torch.mm(grad_out, w, out=scratch)
            # ReLU': zero where the activation is 0 (the pre-activation was <= 0).
            _threshold_backward(scratch, inputs[k], 0.0, grad_input=grad_in)
            grad_out = grad_in


class NumpyGreedy:
    """argmax_a Q(obs, a) in NumPy, reading the live parameters of a plain MLP on CPU.

    The arrays are views of the torch parameters, so they follow every in-place update
    (optimizer steps, ``load_state_dict``) without copying. ``supports(net)`` says
    whether a network qualifies (plain ReLU MLP, float32 parameters on the CPU).
    """

    def __init__(self, net: nn.Module) -> None:
        layers = plain_mlp_layers(net)
        if layers is None:
            raise ValueError("NumpyGreedy needs a plain ReLU MLP QNetwork (no noisy/dueling/C51)")
        self._layers = layers
        self._weights_t = [layer.weight.detach().numpy().T for layer in layers]  # [in, out]
        self._biases = [layer.bias.detach().numpy() for layer in layers]

    @staticmethod
    def supports(net: nn.Module) -> bool:
        layers = plain_mlp_layers(net)
        return layers is not None and all(
            p.device.type == "cpu" and p.dtype == torch.float32
            for layer in layers
            for p in (layer.weight, layer.bias)
        )

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Greedy actions [N] (int64) for observations [N, *obs_shape]."""
        x = np.asarray(obs)
        x = x.reshape(x.shape[0], -1)
        x = (
            x.astype(np.float32) / 255.0
            if x.dtype == np.uint8
            else x.astype(np.float32, copy=False)
        )
        last = len(self._weights_t) - 1
        for k, (w_t, b) in enumerate(zip(self._weights_t, self._biases)):
            x = x @ w_t
            x += b
            if k < last:
                np.maximum(x, 0.0, out=x)
        return x.argmax(axis=1).astype(np.int64)
