"""DQNLearner: one gradient step on a Batch, returning loss, priorities and metrics.

The learner owns the online network, the target network (and its sync: ``sync_target``)
and the optimizer. It never writes into the batch it is given: new priorities travel
back in ``LossOutput``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from rlkit.agent.nn.plain_mlp import PlainMLPGrad, plain_mlp_layers
from rlkit.agent.nn.qnet import QNetwork
from rlkit.agent.objectives import math as losses
from rlkit.agent.optim import AdamStep
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


@torch.no_grad()
def hard_update(online: nn.Module, target: nn.Module) -> None:
    """Copy every parameter and buffer of ``online`` into ``target`` (same architecture).

    The primitive behind ``DQNLearner.sync_target`` (``target_tau == 1``).
    """
    dst = [*target.parameters(), *target.buffers()]
    src = [*online.parameters(), *online.buffers()]
    if len(dst) != len(src):
        raise ValueError("hard_update: online and target networks differ in structure")
    torch._foreach_copy_(dst, src)


@torch.no_grad()
def polyak_update(online: nn.Module, target: nn.Module, tau: float) -> None:
    """``theta_target <- tau * theta_online + (1 - tau) * theta_target`` for parameters.

    The primitive behind ``DQNLearner.sync_target`` (``target_tau < 1``); buffers (the
    support, the noise vectors) are left alone.
    """
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


LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "huber": losses.huber_loss,
    "mse": losses.mse_loss,
}

# d(per-sample loss)/d(td) of each loss above (Huber with delta 1), as new tensors.
LOSS_GRADS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "huber": lambda td_B: td_B.clamp(-1.0, 1.0),
    "mse": lambda td_B: td_B.clone(),  # a new tensor: callers scale it in place
}

# Per-sample C51 priority from (projected target m [B, Z], log p of the taken action [B, Z]).
C51_PRIORITIES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "kl": losses.categorical_kl,
    "cross_entropy": losses.categorical_cross_entropy,
}

NOISE_CADENCES = ("paper", "per_update")


def _no_draw() -> None:
    """Nothing to resample (plain nets, or a cadence that draws at another point)."""


class DQNLearner:
    """One gradient step of (double) DQN, optionally distributional (C51).

    Args:
        online: the online QNetwork (being trained).
        optimizer: optimizer over ``online.parameters()``.
        double_q: online net selects the next action, target net evaluates it
            (van Hasselt et al. 2016); else the max over the target net.
        use_target_network: False bootstraps from the online net itself (no target
            network; "original" Q-learning); ``sync_target()`` then does nothing.
        target_tau: what ``sync_target()`` does, in (0, 1]: 1 copies the online net into
            the target net; ``tau < 1`` moves each target parameter ``tau`` of the way
            to the online one (Polyak averaging). The caller decides when to sync.
        loss: ``"huber"`` or ``"mse"`` on TD errors (scalar nets); C51 nets always use
            the cross-entropy to the projected target.
        max_grad_norm: clip the global gradient norm to this value (None = no clipping).
        reset_noise: resample the noise of noisy nets in each update (see
            ``noise_cadence``); False keeps whatever noise the nets hold.
        noise_cadence: ``"paper"`` (NoisyNet-DQN, Fortunato et al. 2018, Algorithm 1):
            each update draws independent noise for the target net, for the online
            net's forward on ``next_obs`` that selects the double-Q action, and for the
            online net's forward on ``obs`` in the loss. ``"per_update"``: one online
            draw shared by the selection and the loss, and one target draw.
        c51_priority: per-sample priority of C51 nets: ``"kl"`` (KL(m || p), Rainbow,
            Hessel et al. 2018) or ``"cross_entropy"`` (-sum m log p = KL + H(m)). The
            loss is the cross-entropy either way (the same gradient).
        manual_gradients: for plain ReLU MLP nets (no noisy, dueling or C51 parts),
            compute the gradient with a hand-written backward pass
            (``rlkit.agent.nn.plain_mlp.PlainMLPGrad``) instead of autograd: the same maths,
            about twice as fast on a CPU. Ignored for other nets.

    ``update(batch)`` returns a ``LossOutput``: the IS-weighted mean loss, the new
    priorities (|TD| for scalar nets, ``c51_priority`` for C51) and the metrics
    ``loss``, ``q_mean``, ``td_abs_mean``, ``grad_norm``.
    """

    def __init__(
        self,
        online: QNetwork,
        optimizer: torch.optim.Optimizer,
        *,
        double_q: bool = True,
        use_target_network: bool = True,
        target_tau: float = 1.0,
        loss: str = "huber",
        max_grad_norm: float | None = 10.0,
        reset_noise: bool = True,
        noise_cadence: str = "paper",
        c51_priority: str = "kl",
        manual_gradients: bool = True,
    ) -> None:
        _check_choice("loss", loss, LOSSES)
        _check_choice("noise_cadence", noise_cadence, NOISE_CADENCES)
        _check_choice("c51_priority", c51_priority, C51_PRIORITIES)
        if not 0.0 < target_tau <= 1.0:
            raise ValueError(f"target_tau must be in (0, 1], got {target_tau}")
        self.online = online
        self.optimizer = optimizer
        self.use_target_network = use_target_network
        self.target: QNetwork = copy.deepcopy(online) if use_target_network else online
        if use_target_network:
            self.target.requires_grad_(False)
        self.target_tau = float(target_tau)
        self._sync = self._hard_sync if target_tau == 1.0 else self._polyak_sync
        self.double_q = double_q
        self._td_loss = LOSSES[loss]
        self._c51_priority = C51_PRIORITIES[c51_priority]
        self.max_grad_norm = max_grad_norm
        self.reset_noise = reset_noise and online.noisy
        self.noise_cadence = noise_cadence
        draws = self._noise_draws(noise_cadence)
        self._draw_for_target, self._draw_for_selection, self._draw_for_loss = draws
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

    # ------------------------------------------------------------------ target sync

    def sync_target(self) -> None:
        """Move the target net to the online net: a hard copy (``target_tau == 1``) or
        one Polyak step ``target <- tau * online + (1 - tau) * target``. No-op without
        a target net.

        A hard copy is skipped when no update ran since the last one: it would change
        nothing (the online net changes only through ``update``/``update_many``).
        """
        if self.use_target_network:
            self._sync()

    def _hard_sync(self) -> None:
        if self.updates != self._synced_at_update:
            hard_update(self.online, self.target)
            self._synced_at_update = self.updates

    def _polyak_sync(self) -> None:
        polyak_update(self.online, self.target, self.target_tau)

    # ------------------------------------------------------------------ noise

    def _noise_draws(
        self, cadence: str
    ) -> tuple[Callable[[], None], Callable[[], None], Callable[[], None]]:
        """What to resample before (the target forward, the online selection forward,
        the online loss forward) of an update, decided once for ``cadence``."""
        if not self.reset_noise:
            return _no_draw, _no_draw, _no_draw
        if cadence == "paper":
            # Without a target net, ``target`` is the online net: the bootstrap forward
            # still gets a draw of its own, independent of the loss forward's.
            return self._draw_target, self._draw_online, self._draw_online
        return self._draw_online_and_target, _no_draw, _no_draw

    def _draw_online(self) -> None:
        self.online.reset_noise()

    def _draw_target(self) -> None:
        self.target.reset_noise()

    def _draw_online_and_target(self) -> None:
        self.online.reset_noise()
        if self.use_target_network:
            self.target.reset_noise()

    # ------------------------------------------------------------------ targets and losses

    def _target_outputs(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Target-net outputs at ``next_obs``: Q [B, A] and, for C51, log-probs [B, A, Z]."""
        with torch.no_grad():
            return self.target.q_and_log_probs(next_obs)

    @torch.no_grad()
    def _selection_q(self, next_obs: torch.Tensor) -> torch.Tensor:
        """Online-net Q [B, A] at ``next_obs`` for the double-Q argmax."""
        self._draw_for_selection()
        return self.online(next_obs)

    @torch.no_grad()
    def _scalar_target(self, batch: Batch, q_next_target_BA: torch.Tensor) -> torch.Tensor:
        """TD target [B] of a scalar net: double-Q or max over the target net."""
        if self.double_q and self.use_target_network:
            return losses.double_q_target(
                batch.reward, batch.discount, self._selection_q(batch.next_obs), q_next_target_BA
            )
        # Without a target network the double-Q target reduces to the max.
        return losses.q_learning_target(batch.reward, batch.discount, q_next_target_BA)

    def _scalar_loss(
        self, batch: Batch, target_out: tuple[torch.Tensor, torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        target_B = self._scalar_target(batch, target_out[0])
        self._draw_for_loss()
        q_sa_B = self.online(batch.obs).gather(1, batch.action.unsqueeze(1)).squeeze(1)
        td_B = target_B - q_sa_B
        per_sample_B = self._td_loss(td_B)
        td_abs_B = td_B.detach().abs()
        metrics = {"q_mean": q_sa_B.detach().mean(), "td_abs_mean": td_abs_B.mean()}
        return per_sample_B, td_abs_B, metrics

    @torch.no_grad()
    def _c51_target(
        self, batch: Batch, target_out: tuple[torch.Tensor, torch.Tensor | None]
    ) -> torch.Tensor:
        """Projected target distribution m [B, Z] (Bellemare et al. 2017, Algorithm 1)."""
        q_next_target_BA, log_p_next_BAZ = target_out
        assert log_p_next_BAZ is not None
        if self.double_q and self.use_target_network:
            a_star_B = self._selection_q(batch.next_obs).argmax(dim=1)
        else:
            a_star_B = q_next_target_BA.argmax(dim=1)
        idx_B11 = a_star_B.view(-1, 1, 1).expand(-1, 1, self.online.atoms)
        next_probs_BZ = log_p_next_BAZ.gather(1, idx_B11).squeeze(1).exp()
        return losses.categorical_projection(
            self.online.support, next_probs_BZ, batch.reward, batch.discount
        )

    def _c51_loss(
        self, batch: Batch, target_out: tuple[torch.Tensor, torch.Tensor | None]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        target_BZ = self._c51_target(batch, target_out)
        self._draw_for_loss()
        q_BA, log_p_BAZ = self.online.q_and_log_probs(batch.obs)
        act_B11 = batch.action.view(-1, 1, 1).expand(-1, 1, self.online.atoms)
        log_p_sa_BZ = log_p_BAZ.gather(1, act_B11).squeeze(1)
        per_sample_B = losses.categorical_cross_entropy(target_BZ, log_p_sa_BZ)
        with torch.no_grad():
            # KL >= 0 in exact arithmetic; clamp float rounding below 0.
            priorities_B = self._c51_priority(target_BZ, log_p_sa_BZ.detach()).clamp_min_(0.0)
            q_sa_B = q_BA.gather(1, batch.action.unsqueeze(1)).squeeze(1)
            td_abs_B = ((target_BZ * self.online.support).sum(dim=1) - q_sa_B).abs()
        metrics = {"q_mean": q_sa_B.mean(), "td_abs_mean": td_abs_B.mean()}
        return per_sample_B, priorities_B, metrics

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
        separate target net (synced by the caller) with no noise resampling."""
        return self.use_target_network and not self.reset_noise

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
        """One gradient step on ``batch`` with the IS-weighted mean of per-sample losses,
        resampling noise as ``noise_cadence`` says."""
        self._draw_for_target()
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


def _check_choice(name: str, value: str, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
