"""DQNLearner: one gradient step on a Batch, returning loss, priorities and metrics.

The learner owns the online network, the target network and the optimizer. It never
writes into the batch it is given: new priorities travel back in ``LossOutput``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from rlkit import losses
from rlkit.nn.plain_mlp import PlainMLPGrad, plain_mlp_layers
from rlkit.nn.qnet import QNetwork
from rlkit.optim import AdamStep
from rlkit.types import Batch, LossOutput


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


class TargetSync(Protocol):
    """Decides after each update whether and how the target net follows the online net."""

    def after_update(self, updates: int, online: nn.Module, target: nn.Module) -> None: ...


@torch.no_grad()
def hard_update(online: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer of ``online`` into ``target`` (same architecture)."""
    dst = [*target.parameters(), *target.buffers()]
    src = [*online.parameters(), *online.buffers()]
    if len(dst) != len(src):
        raise ValueError("hard_update: online and target networks differ in structure")
    torch._foreach_copy_(dst, src)


@torch.no_grad()
def polyak_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """``theta_target <- tau * theta_online + (1 - tau) * theta_target`` for parameters."""
    online_params = list(online.parameters())
    target_params = list(target.parameters())
    torch._foreach_lerp_(target_params, online_params, tau)


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


class HardSync:
    """Copy the online net into the target net every ``period`` updates."""

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError(f"HardSync period must be >= 1 update, got {period}")
        self.period = period

    def after_update(self, updates: int, online: nn.Module, target: nn.Module) -> None:
        if updates % self.period == 0:
            hard_update(online, target)


class PolyakSync:
    """Move the target net towards the online net by ``tau`` after every update."""

    def __init__(self, tau: float) -> None:
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"PolyakSync tau must be in (0, 1], got {tau}")
        self.tau = tau

    def after_update(self, updates: int, online: nn.Module, target: nn.Module) -> None:
        polyak_update(online, target, self.tau)


LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "huber": losses.huber_loss,
    "mse": losses.mse_loss,
}

# d(per-sample loss)/d(td) of each loss above (Huber with delta 1), as new tensors.
LOSS_GRADS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "huber": lambda td_B: td_B.clamp(-1.0, 1.0),
    "mse": lambda td_B: td_B.clone(),  # a new tensor: callers scale it in place
}


class DQNLearner:
    """One gradient step of (double) DQN, optionally distributional (C51).

    Args:
        online: the online QNetwork (being trained).
        optimizer: optimizer over ``online.parameters()``.
        double_q: online net selects the next action, target net evaluates it
            (van Hasselt et al. 2016); else the max over the target net.
        use_target_network: False bootstraps from the online net itself (no target
            network; "original" Q-learning). ``target_sync`` is then ignored.
        target_sync: ``HardSync(period)`` (every ``period`` updates),
            ``PolyakSync(tau)``, or None: the caller calls ``sync_target()``.
        loss: ``"huber"`` or ``"mse"`` on TD errors (scalar nets); C51 nets always use
            the cross-entropy to the projected target.
        max_grad_norm: clip the global gradient norm to this value (None = no clipping).
        reset_noise: resample the noise of noisy nets before each update (online and
            target get independent noise, as in Rainbow).
        manual_gradients: for plain ReLU MLP nets (no noisy, dueling or C51 parts),
            compute the gradient with a hand-written backward pass
            (``rlkit.nn.plain_mlp.PlainMLPGrad``) instead of autograd: the same maths,
            about twice as fast on a CPU. Ignored for other nets.

    ``update(batch)`` returns a ``LossOutput``: the IS-weighted mean loss, the new
    priorities (|TD| for scalar nets, the per-sample cross-entropy for C51) and the
    metrics ``loss``, ``q_mean``, ``td_abs_mean``, ``grad_norm``.
    """

    def __init__(
        self,
        online: QNetwork,
        optimizer: torch.optim.Optimizer,
        *,
        double_q: bool = True,
        use_target_network: bool = True,
        target_sync: TargetSync | None = None,
        loss: str = "huber",
        max_grad_norm: float | None = 10.0,
        reset_noise: bool = True,
        manual_gradients: bool = True,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {loss!r}")
        self.online = online
        self.optimizer = optimizer
        self.use_target_network = use_target_network
        self.target: QNetwork = copy.deepcopy(online) if use_target_network else online
        if use_target_network:
            self.target.requires_grad_(False)
        self.target_sync = target_sync if use_target_network else None
        self.double_q = double_q
        self._td_loss = LOSSES[loss]
        self.max_grad_norm = max_grad_norm
        self.reset_noise = reset_noise and online.noisy
        self.updates = 0
        self._synced_at_update = 0  # the target starts as an exact copy
        self._params = [p for group in optimizer.param_groups for p in group["params"]]
        self._step = self._c51_loss if online.distributional else self._scalar_loss
        self._manual = (
            PlainMLPGrad(online)
            if manual_gradients and plain_mlp_layers(online) is not None
            else None
        )
        self._loss_grad = LOSS_GRADS[loss]
        self._optimizer_step = AdamStep(optimizer)

    def sync_target(self) -> None:
        """Hard copy of the online net into the target net (no-op without a target net).

        Skipped when no update ran since the last sync: the copy would change nothing
        (the online net changes only through ``update``/``update_many``).
        """
        if self.use_target_network and self.updates != self._synced_at_update:
            hard_update(self.online, self.target)
            self._synced_at_update = self.updates

    def _target_outputs(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Target-net outputs at ``next_obs``: Q [B, A] and, for C51, log-probs [B, A, Z]."""
        with torch.no_grad():
            return self.target.q_and_log_probs(next_obs)

    @torch.no_grad()
    def _scalar_target(self, batch: Batch, q_next_target_BA: torch.Tensor) -> torch.Tensor:
        """TD target [B] of a scalar net: double-Q or max over the target net."""
        if self.double_q and self.use_target_network:
            q_next_online_BA = self.online(batch.next_obs)
            return losses.double_q_target(
                batch.reward, batch.discount, q_next_online_BA, q_next_target_BA
            )
        # Without a target network the double-Q target reduces to the max.
        return losses.q_learning_target(batch.reward, batch.discount, q_next_target_BA)

    def _scalar_loss(
        self, batch: Batch, target_out: tuple[torch.Tensor, torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        target_B = self._scalar_target(batch, target_out[0])
        q_sa_B = self.online(batch.obs).gather(1, batch.action.unsqueeze(1)).squeeze(1)
        td_B = target_B - q_sa_B
        per_sample_B = self._td_loss(td_B)
        td_abs_B = td_B.detach().abs()
        metrics = {"q_mean": q_sa_B.detach().mean(), "td_abs_mean": td_abs_B.mean()}
        return per_sample_B, td_abs_B, metrics

    def _c51_loss(
        self, batch: Batch, target_out: tuple[torch.Tensor, torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        support_Z = self.online.support
        with torch.no_grad():
            q_next_target_BA, log_p_next_BAZ = target_out
            assert log_p_next_BAZ is not None
            if self.double_q and self.use_target_network:
                a_star_B = self.online(batch.next_obs).argmax(dim=1)
            else:
                a_star_B = q_next_target_BA.argmax(dim=1)
            idx_B11 = a_star_B.view(-1, 1, 1).expand(-1, 1, self.online.atoms)
            next_probs_BZ = log_p_next_BAZ.gather(1, idx_B11).squeeze(1).exp()
            target_BZ = losses.categorical_projection(
                support_Z, next_probs_BZ, batch.reward, batch.discount
            )
        q_BA, log_p_BAZ = self.online.q_and_log_probs(batch.obs)
        act_B11 = batch.action.view(-1, 1, 1).expand(-1, 1, self.online.atoms)
        log_p_sa_BZ = log_p_BAZ.gather(1, act_B11).squeeze(1)
        per_sample_B = losses.categorical_cross_entropy(target_BZ, log_p_sa_BZ)
        with torch.no_grad():
            q_sa_B = q_BA.gather(1, batch.action.unsqueeze(1)).squeeze(1)
            td_abs_B = ((target_BZ * support_Z).sum(dim=1) - q_sa_B).abs()
        metrics = {"q_mean": q_sa_B.mean(), "td_abs_mean": td_abs_B.mean()}
        return per_sample_B, per_sample_B.detach(), metrics

    @torch.no_grad()
    def _manual_updates(
        self, batch: Batch, num_updates: int, q_next_target_NA: torch.Tensor
    ) -> list[LossOutput]:
        """``num_updates`` updates on consecutive slices of ``batch`` (plain MLP nets),
        with the hand-written backward pass. The same maths as ``_scalar_loss`` +
        ``loss.backward()``: loss = mean_b w_b l(td_b) with td_b = y_b - Q(s_b, a_b), so
        dL/dQ(s_b, a_b) = -w_b l'(td_b) / B and 0 for the other actions.

        ``q_next_target_NA``: target-net Q at every ``next_obs`` of ``batch`` [N, A].
        Metrics are computed for all updates at once after the last one.
        """
        assert self._manual is not None
        size = len(batch)
        step = size // num_updates
        # Max targets depend on the target net only: all at once. Double-Q targets need
        # the online net as it is before each update.
        per_update_targets = self.double_q and self.use_target_network
        if not per_update_targets:
            target_N = losses.q_learning_target(batch.reward, batch.discount, q_next_target_NA)
        q_sa_N = q_next_target_NA.new_empty(size)
        td_N = q_next_target_NA.new_empty(size)
        grad_norms = []
        for k in range(num_updates):
            lo, hi = k * step, (k + 1) * step
            b = batch_slice(batch, lo, hi)
            if per_update_targets:
                target_B = self._scalar_target(b, q_next_target_NA[lo:hi])
            else:
                target_B = target_N[lo:hi]
            q_BA = self._manual.forward(b.obs)
            action_B1 = b.action.unsqueeze(1)
            torch.gather(q_BA, 1, action_B1, out=q_sa_N[lo:hi].unsqueeze(1))
            td_B = torch.sub(target_B, q_sa_N[lo:hi], out=td_N[lo:hi])
            dq_sa_B = self._loss_grad(td_B).mul_(b.weights).mul_(-1.0 / step)
            dq_BA = torch.zeros_like(q_BA).scatter_(1, action_B1, dq_sa_B.unsqueeze(1))
            self._manual.backward(dq_BA)
            grad_norms.append(self._clip_flat_grad())
            self._optimizer_step()
            self.updates += 1
            if self.target_sync is not None:
                self.target_sync.after_update(self.updates, self.online, self.target)
        td_abs_UB = td_N.abs().view(num_updates, step)
        loss_U = (
            batch.weights.view(num_updates, step) * self._td_loss(td_N).view(num_updates, step)
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

    def _clip_flat_grad(self) -> torch.Tensor:
        """``clip_grad_norm`` on the manual path's single flat gradient buffer."""
        assert self._manual is not None and self._manual.flat_grad is not None
        flat = self._manual.flat_grad
        total = torch.linalg.vector_norm(flat)
        if self.max_grad_norm is not None:
            flat.mul_((self.max_grad_norm / (total + 1e-6)).clamp_(max=1.0))
        return total

    @property
    def target_fixed_between_updates(self) -> bool:
        """True when consecutive updates bootstrap from an unchanging target net: a
        separate target net, synced by the caller, with no noise resampling."""
        return self.use_target_network and self.target_sync is None and not self.reset_noise

    def update_many(self, batch: Batch, num_updates: int) -> list[LossOutput]:
        """``num_updates`` consecutive updates on equal consecutive slices of ``batch``.

        Same result as calling ``update`` on each slice. When the target net cannot change
        between them (``target_fixed_between_updates``), its outputs for all slices are
        computed in one forward pass, which is much faster for small networks.
        """
        size = len(batch)
        if num_updates < 1 or size % num_updates:
            raise ValueError(f"batch of {size} does not split into {num_updates} updates")
        step = size // num_updates
        bounds = [(k * step, (k + 1) * step) for k in range(num_updates)]
        if num_updates == 1 or not self.target_fixed_between_updates:
            return [self.update(batch_slice(batch, lo, hi)) for lo, hi in bounds]
        q_all, log_p_all = self._target_outputs(batch.next_obs)
        if self._manual is not None:
            return self._manual_updates(batch, num_updates, q_all)
        return [
            self._apply(
                batch_slice(batch, lo, hi),
                (q_all[lo:hi], None if log_p_all is None else log_p_all[lo:hi]),
            )
            for lo, hi in bounds
        ]

    def update(self, batch: Batch) -> LossOutput:
        """One gradient step on ``batch`` with the IS-weighted mean of per-sample losses."""
        if self.reset_noise:
            self.online.reset_noise()
            if self.use_target_network:
                self.target.reset_noise()
        return self._apply(batch, self._target_outputs(batch.next_obs))

    def _apply(
        self, batch: Batch, target_out: tuple[torch.Tensor, torch.Tensor | None]
    ) -> LossOutput:
        if self._manual is not None:
            return self._manual_updates(batch, 1, target_out[0])[0]
        per_sample_B, priorities_B, metrics = self._step(batch, target_out)
        loss = (batch.weights * per_sample_B).mean()
        for param in self._params:
            param.grad = None
        loss.backward()
        grad_norm = clip_grad_norm(self._params, self.max_grad_norm)
        self._optimizer_step()
        self.updates += 1
        if self.target_sync is not None:
            self.target_sync.after_update(self.updates, self.online, self.target)
        values = torch.stack([loss.detach(), metrics["q_mean"], metrics["td_abs_mean"], grad_norm])
        loss_v, q_mean, td_abs_mean, grad_norm_v = values.tolist()
        return LossOutput(
            loss=loss_v,
            priorities=priorities_B.double().cpu().numpy(),
            metrics={
                "loss": loss_v,
                "q_mean": q_mean,
                "td_abs_mean": td_abs_mean,
                "grad_norm": grad_norm_v,
            },
        )

    def state_dict(self) -> dict:
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict) -> None:
        self.online.load_state_dict(state["online"])
        if self.use_target_network:
            self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
        self._synced_at_update = -1  # unknown: the next sync copies
