"""Export a trained agent as a TorchScript greedy policy that loads with plain torch.

``export(run_dir_or_agent, path)`` writes ``torch.jit.save`` of a module whose
``forward(obs)`` takes a batch ``[N, *obs_shape]`` of observations exactly as the env
returns them (uint8, e.g. Atari frame stacks, scaled by 1/255 inside; any float dtype
as float32) and returns the greedy actions ``[N]`` int64. The Q-network is traced in
eval mode: noisy layers use their mean weights (no noise), C51 and quantile nets take the
argmax of the expected values, and IQN nets read their K midpoint fractions, as the
agent does. Load it with ``torch.jit.load(path)``; it runs
on the CPU and needs neither rlkit nor gymnasium.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from rlkit.agent.nn import QNetwork

__all__ = ["GreedyPolicy", "export", "greedy_module"]


class _FloatQ(nn.Module):
    """The Q-values [N, A] of float32 observations (what gets traced)."""

    def __init__(self, net: QNetwork) -> None:
        super().__init__()
        self.net = net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class GreedyPolicy(nn.Module):
    """argmax_a Q(obs, a) for observations [N, *obs_shape] (uint8 or float) -> [N] int64.

    ``scale_uint8``: uint8 input is divided by 255 (pixels). Nets of packed observations
    (``rlkit.envs.spaces``: indices of one-hots next to pixels) scale each part inside
    and take the values as they are."""

    def __init__(self, q_net: nn.Module, scale_uint8: bool = True) -> None:
        super().__init__()
        self.q_net = q_net
        self.scale_uint8 = scale_uint8

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dtype == torch.uint8 and self.scale_uint8:
            x = obs.to(torch.float32) / 255.0
        else:
            x = obs.to(torch.float32)
        return torch.argmax(self.q_net(x), dim=1)


def greedy_module(net: QNetwork) -> torch.jit.ScriptModule:
    """A TorchScript ``GreedyPolicy`` of a copy of ``net`` (on the CPU, eval mode)."""
    net = copy.deepcopy(net).cpu().eval()
    # packed observations hold one-hot indices: trace on integer-valued inputs
    low = 0 if net.obs_layout is None else 1
    example_2 = (
        torch.rand(2, *net.obs_shape) * (1 - low) + torch.randint(2, (2, *net.obs_shape)) * low
    )
    check_5 = (
        torch.rand(5, *net.obs_shape) * (1 - low) + torch.randint(2, (5, *net.obs_shape)) * low
    )
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but only it keeps one file
        # that takes uint8 and float input with any batch size and loads with plain torch
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(_FloatQ(net), example_2, check_inputs=[(check_5,)])
        return torch.jit.script(GreedyPolicy(traced, scale_uint8=net.obs_layout is None))


def export(run_dir_or_agent: str | Path | object, path: str | Path) -> Path:
    """Write the greedy policy of a run dir, checkpoint file or ``rlkit.Agent`` to
    ``path`` (TorchScript, ``torch.jit.load`` to use it); returns ``path``."""
    from rlkit.app.agent import Agent

    agent = (
        run_dir_or_agent
        if isinstance(run_dir_or_agent, Agent)
        else Agent.load(run_dir_or_agent, device="cpu")
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = greedy_module(agent.network)
    module.save(str(path))
    return path
