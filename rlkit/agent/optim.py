"""Optimizer steps with less per-call overhead for small networks.

``torch.optim.Optimizer.step`` wraps the kernel in hooks, profiler records and state
bookkeeping that cost more than the arithmetic of a 256-256 MLP on a CPU. ``AdamStep``
calls the fused Adam kernel directly on the optimizer's own state (so ``state_dict``,
``load_state_dict`` and checkpoints are unchanged) and falls back to
``optimizer.step()`` whenever the optimizer is not a plain fused Adam.
"""

from __future__ import annotations

import torch

_fused_adam = getattr(torch, "_fused_adam_", None)


def _direct_ok(optimizer: torch.optim.Optimizer) -> bool:
    if type(optimizer) is not torch.optim.Adam or _fused_adam is None:
        return False
    if len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    return (
        bool(group.get("fused"))
        and not group.get("amsgrad", False)
        and not group.get("maximize", False)
        and not group.get("differentiable", False)
        and not group.get("capturable", False)
        and not group.get("decoupled_weight_decay", False)
        and not isinstance(group["lr"], torch.Tensor)
    )


class AdamStep:
    """Callable doing ``optimizer.step()``; the same update, bit for bit.

    The direct path is taken when ``optimizer`` is a ``torch.optim.Adam(fused=True)``
    with one parameter group whose state exists (after its first regular step) and every
    parameter has a gradient; otherwise this calls ``optimizer.step()``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.direct = _direct_ok(optimizer)

    def __call__(self) -> None:
        if not self.direct:
            self.optimizer.step()
            return
        group = self.optimizer.param_groups[0]
        params = group["params"]
        state = self.optimizer.state
        grads, exp_avgs, exp_avg_sqs, steps = [], [], [], []
        for p in params:
            s = state.get(p)
            if p.grad is None or not s:
                self.optimizer.step()  # first step (creates the state) or a frozen param
                return
            grads.append(p.grad)
            exp_avgs.append(s["exp_avg"])
            exp_avg_sqs.append(s["exp_avg_sq"])
            steps.append(s["step"])
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        _fused_adam(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )
