"""How one learner update turns an objective's loss into an optimizer step.

``AutogradUpdater`` serves every objective: autograd through the objective's loss.
``ManualMLPUpdater`` is the fast CPU path for scalar TD objectives on plain ReLU MLPs: the
same maths with a hand-written backward pass (``rlkit.agent.nn.plain_mlp.PlainMLPGrad``),
about twice as fast on a CPU. ``ManualC51Updater`` is the same for the C51 objective on
MLP-torso nets with noisy and dueling heads (Rainbow on vector envs;
``rlkit.agent.nn.head_mlp.HeadMLPGrad``). All give ``run(batch, num_updates, forwards_for,
target_raw)``: ``num_updates`` consecutive updates on equal consecutive slices of
``batch``, where ``forwards_for(target_raw_slice)`` makes each update's ``Forwards``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rlkit.agent.nn.head_mlp import HeadMLPGrad, head_mlp_layout
from rlkit.agent.nn.plain_mlp import PlainMLPGrad, plain_mlp_layers
from rlkit.agent.objectives import math as losses
from rlkit.agent.objectives.base import Forwards, Objective, weighted_mean
from rlkit.agent.objectives.c51 import C51
from rlkit.agent.objectives.scalar import ScalarTD
from rlkit.types import Batch, LossOutput

ForwardsFor = Callable[[torch.Tensor | None], Forwards]


def batch_slice(batch: Batch, start: int, stop: int) -> Batch:
    """Rows ``start:stop`` of every field (views, not copies)."""
    return Batch(
        obs=batch.obs[start:stop],
        action=batch.action[start:stop],
        reward=batch.reward[start:stop],
        next_obs=batch.next_obs[start:stop],
        discount=batch.discount[start:stop],
        weights=batch.weights[start:stop],
        indices=batch.indices[start:stop],
    )


def clip_grad_norm(params: list[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Global L2 norm of the gradients (before clipping); scales them to ``max_norm``.

    The same maths as ``torch.nn.utils.clip_grad_norm_`` in fewer operations.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if max_norm is not None:
        torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp_(max=1.0))
    return total


def run_slices(
    one: Callable[[Batch, Forwards], LossOutput],
    batch: Batch,
    num_updates: int,
    forwards_for: ForwardsFor,
    target_raw: torch.Tensor | None,
) -> list[LossOutput]:
    """``one(slice, forwards)`` on ``num_updates`` equal consecutive slices of ``batch``,
    each with its share of ``target_raw`` (None: none precomputed)."""
    step = len(batch) // num_updates
    outs = []
    for k in range(num_updates):
        lo, hi = k * step, (k + 1) * step
        raw = None if target_raw is None else target_raw[lo:hi]
        outs.append(one(batch_slice(batch, lo, hi), forwards_for(raw)))
    return outs


def _clip_flat(flat: torch.Tensor | None, max_norm: float | None) -> torch.Tensor:
    """``clip_grad_norm`` on one flat buffer that every parameter's gradient views."""
    assert flat is not None
    total = torch.linalg.vector_norm(flat)
    if max_norm is not None:
        flat.mul_((max_norm / (total + 1e-6)).clamp_(max=1.0))
    return total


class AutogradUpdater:
    """Updates over any ``Objective``: zero grads, backward, clip, optimizer step."""

    def __init__(
        self,
        objective: Objective,
        params: list[torch.Tensor],
        max_grad_norm: float | None,
        optimizer_step: Callable[[], None],
        autocast: torch.dtype | None = None,
    ) -> None:
        """``autocast``: run the objective under ``torch.autocast`` with this dtype (e.g.
        ``torch.bfloat16``); weights, gradients and the optimizer stay float32."""
        self.objective, self.params = objective, params
        self.max_grad_norm, self.optimizer_step = max_grad_norm, optimizer_step
        self.autocast = autocast
        self._device_type = params[0].device.type if params else "cpu"
        self._loss = objective  # what computes the loss: the objective, or a compiled one
        #: called with the parameters after the backward pass, before clipping (e.g. the
        #: all-reduce of data-parallel learners, ``rlkit.distributed.ddp``)
        self.grad_sync: Callable[[list[torch.Tensor]], None] | None = None

    def run(
        self,
        batch: Batch,
        num_updates: int,
        forwards_for: ForwardsFor,
        target_raw: torch.Tensor | None = None,
    ) -> list[LossOutput]:
        return run_slices(self._one, batch, num_updates, forwards_for, target_raw)

    def _one(self, batch: Batch, forwards: Forwards) -> LossOutput:
        if self.autocast is None:
            out = self._loss(batch, forwards)
        else:
            with torch.autocast(self._device_type, dtype=self.autocast):
                out = self._loss(batch, forwards)
        for param in self.params:
            param.grad = None
        out.loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(self.params)
        grad_norm = clip_grad_norm(self.params, self.max_grad_norm)
        self.optimizer_step()
        scalars = [out.loss.detach(), *out.metrics.values(), grad_norm]
        values = torch.stack([v.float() for v in scalars]).tolist()
        metrics = dict(zip(["loss", *out.metrics, "grad_norm"], values, strict=True))
        return LossOutput(
            loss=values[0], priorities=out.priorities.double().cpu().numpy(), metrics=metrics
        )


class CompiledUpdater(AutogradUpdater):
    """``AutogradUpdater`` with the objective compiled by ``torch.compile``: its forward
    passes (with the noise draws), the TD target or C51 projection, the loss and the
    priorities run as compiled graphs, and AOTAutograd compiles the matching backward.
    Clipping and the optimizer step (one fused Adam kernel) run as before.

    ``backend``/``mode`` go to ``torch.compile`` (``mode="reduce-overhead"`` captures the
    graphs in CUDA graphs on a GPU). Random draws inside compiled code use the eager
    generator (``torch._inductor.config.fallback_random``), so a compiled update draws
    the same noise as an eager one and their results agree within float tolerance.
    """

    def __init__(self, *args, backend: str = "inductor", mode: str | None = None) -> None:
        """``AutogradUpdater``'s arguments, then ``torch.compile``'s ``backend``/``mode``."""
        super().__init__(*args)
        import torch._inductor.config as inductor_config

        inductor_config.fallback_random = True
        self.backend, self.mode = backend, mode
        self._loss = torch.compile(self.objective, backend=backend, mode=mode, dynamic=False)


class ManualMLPUpdater:
    """Scalar TD updates of a plain ReLU MLP with the hand-written backward pass.

    The same maths as ``ScalarTD`` + ``loss.backward()``: loss = mean_b w_b l(td_b) with
    td_b = y_b - Q(s_b, a_b), so dL/dQ(s_b, a_b) = -w_b l'(td_b) / B and 0 for the other
    actions. Metrics are computed for all updates at once after the last one.
    """

    def __init__(
        self,
        objective: ScalarTD,
        online: torch.nn.Module,
        max_grad_norm: float | None,
        optimizer_step: Callable[[], None],
    ) -> None:
        self.objective = objective
        self.grad = PlainMLPGrad(online)
        self.max_grad_norm, self.optimizer_step = max_grad_norm, optimizer_step

    @staticmethod
    def supports(objective: Objective, online: torch.nn.Module) -> bool:
        """Scalar TD objective (and nothing derived from it) on a plain ReLU MLP."""
        return type(objective) is ScalarTD and plain_mlp_layers(online) is not None

    @torch.no_grad()
    def run(
        self,
        batch: Batch,
        num_updates: int,
        forwards_for: ForwardsFor,
        target_raw: torch.Tensor | None = None,
    ) -> list[LossOutput]:
        obj = self.objective
        if target_raw is None:
            target_raw = forwards_for(None).target_next(batch.next_obs)
        q_next_target_NA = obj.q_values(target_raw)
        size = len(batch)
        step = size // num_updates
        q_sa_N = q_next_target_NA.new_empty(size)
        td_N = q_next_target_NA.new_empty(size)
        grad_norms = []
        for k in range(num_updates):
            lo, hi = k * step, (k + 1) * step
            b = batch_slice(batch, lo, hi)
            target_B = obj.td_target(b, q_next_target_NA[lo:hi], forwards_for(None))
            q_BA = self.grad.forward(b.obs)
            action_B1 = b.action.unsqueeze(1)
            torch.gather(q_BA, 1, action_B1, out=q_sa_N[lo:hi].unsqueeze(1))
            td_B = torch.sub(target_B, q_sa_N[lo:hi], out=td_N[lo:hi])
            dq_sa_B = obj.td_loss_grad(td_B).mul_(b.weights).mul_(-1.0 / step)
            dq_BA = torch.zeros_like(q_BA).scatter_(1, action_B1, dq_sa_B.unsqueeze(1))
            self.grad.backward(dq_BA)
            grad_norms.append(_clip_flat(self.grad.flat_grad, self.max_grad_norm))
            self.optimizer_step()
        return self._outputs(batch, num_updates, q_sa_N, td_N, grad_norms)

    def _outputs(
        self,
        batch: Batch,
        num_updates: int,
        q_sa_N: torch.Tensor,
        td_N: torch.Tensor,
        grad_norms: list[torch.Tensor],
    ) -> list[LossOutput]:
        step = len(batch) // num_updates
        td_abs_UB = td_N.abs().view(num_updates, step)
        loss_U = (
            batch.weights.view(num_updates, step)
            * self.objective.td_loss(td_N).view(num_updates, step)
        ).mean(1)
        table = torch.stack(
            [
                loss_U,
                q_sa_N.view(num_updates, step).mean(1),
                td_abs_UB.mean(1),
                torch.stack(grad_norms),
            ]
        ).tolist()
        priorities = td_abs_UB.double().cpu().numpy()
        return [
            LossOutput(
                loss=loss_v,
                priorities=priorities[k],
                metrics={"loss": loss_v, "q_mean": q_mean, "td_abs_mean": td_abs, "grad_norm": gn},
            )
            for k, (loss_v, q_mean, td_abs, gn) in enumerate(zip(*table))
        ]


class ManualC51Updater:
    """C51 updates of an MLP-torso net (plain or noisy, dueling or linear head) with the
    hand-written forward and backward passes of ``HeadMLPGrad``.

    The same maths as ``C51`` + ``loss.backward()``, with the same noise draws in the
    same order (through ``Forwards``). With ``p`` the predicted distribution of the taken
    action (``log_softmax`` of its logits) and ``m`` the projected target, the loss is
    ``mean_b w_b CE_b`` with ``CE_b = -sum_z m_z log p_z``, so the gradient of the taken
    action's logits is ``w_b / B * (p * sum_z m_z - m)`` and 0 for the other actions.
    """

    def __init__(
        self,
        objective: C51,
        online: torch.nn.Module,
        target: torch.nn.Module,
        max_grad_norm: float | None,
        optimizer_step: Callable[[], None],
    ) -> None:
        self.objective = objective
        self.grad = HeadMLPGrad(online)
        self.target = self.grad if target is online else HeadMLPGrad(target)
        self.max_grad_norm, self.optimizer_step = max_grad_norm, optimizer_step

    @staticmethod
    def supports(objective: Objective, online: torch.nn.Module) -> bool:
        """The C51 objective (and nothing derived from it) on a ``head_mlp_layout`` net."""
        return type(objective) is C51 and head_mlp_layout(online) is not None

    @torch.no_grad()
    def run(
        self,
        batch: Batch,
        num_updates: int,
        forwards_for: ForwardsFor,
        target_raw: torch.Tensor | None = None,
    ) -> list[LossOutput]:
        return run_slices(self._one, batch, num_updates, forwards_for, target_raw)

    def _kept_forward(self, obs: torch.Tensor) -> torch.Tensor:
        """The loss forward: keeps what the backward pass needs."""
        return self.grad.forward(obs, keep=True)

    def _one(self, batch: Batch, forwards: Forwards) -> LossOutput:
        obj = self.objective
        support = obj.readout.support
        forwards.computed_by(self.target.forward, self.grad.forward, self._kept_forward)
        target_BZ, clip_frac = obj.target_and_clipped(batch, forwards)
        raw_BAZ = forwards.online(batch.obs)
        rows_B = torch.arange(len(batch.action), device=raw_BAZ.device)
        logits_BZ = raw_BAZ[rows_B, batch.action]
        log_p_BZ = torch.log_softmax(logits_BZ, dim=1)
        p_BZ = torch.softmax(logits_BZ, dim=1)  # not log_p.exp(): see CategoricalReadout
        ce_B = losses.categorical_cross_entropy(target_BZ, log_p_BZ)
        w_B1 = batch.weights.unsqueeze(1)
        d_sa_BZ = (p_BZ * target_BZ.sum(dim=1, keepdim=True)).sub_(target_BZ)
        d_sa_BZ.mul_(w_B1).div_(len(rows_B))
        d_raw_BAZ = torch.zeros_like(raw_BAZ)
        d_raw_BAZ[rows_B, batch.action] = d_sa_BZ
        self.grad.backward(d_raw_BAZ)
        grad_norm = _clip_flat(self.grad.flat_grad, self.max_grad_norm)
        self.optimizer_step()
        priorities_B = obj.priority(target_BZ, log_p_BZ).clamp_min_(0.0)
        q_sa_B = (p_BZ * support).sum(dim=1)
        td_abs_B = ((target_BZ * support).sum(dim=1) - q_sa_B).abs()
        loss = weighted_mean(batch.weights, ce_B)
        values = torch.stack(
            [loss, q_sa_B.mean(), td_abs_B.mean(), clip_frac.to(loss.dtype), grad_norm]
        ).tolist()
        names = ("loss", "q_mean", "td_abs_mean", "support_clip_frac", "grad_norm")
        return LossOutput(
            loss=values[0],
            priorities=priorities_B.double().cpu().numpy(),
            metrics=dict(zip(names, values, strict=True)),
        )
