"""DQNLearner: one optimizer step over an ``Objective``, returning loss, priorities, metrics.

The learner owns the online network, the target network (and its sync: ``sync_target``),
the optimizer and the noise cadence of noisy nets. What the loss is belongs to its
objective (``rlkit.agent.objectives``); how the gradient is computed to its updater
(``rlkit.agent.updaters``: autograd, compiled, or the hand-written backward passes of
plain MLPs and C51 MLPs).
It never writes into the batch it is given: new priorities travel back in
``LossOutput``. ``params()`` publishes the online net's parameters to policies.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from rlkit.agent import objectives
from rlkit.agent.nn.qnet import QNetwork
from rlkit.agent.objectives.base import Forwards, NoiseDraws, Objective
from rlkit.agent.objectives.c51 import PRIORITIES as C51_PRIORITIES
from rlkit.agent.objectives.scalar import LOSS_GRADS, LOSSES
from rlkit.agent.optim import AdamStep
from rlkit.agent.updaters import (
    AutogradUpdater,
    CompiledUpdater,
    ManualC51Updater,
    ManualMLPUpdater,
    batch_slice,
    clip_grad_norm,
)
from rlkit.types import Batch, LossOutput

__all__ = [
    "C51_PRIORITIES",
    "LOSSES",
    "LOSS_GRADS",
    "NOISE_CADENCES",
    "PRECISIONS",
    "DQNLearner",
    "batch_slice",
    "clip_grad_norm",
    "hard_update",
    "polyak_update",
]

NOISE_CADENCES = ("paper", "per_update")
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


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


def _no_draw() -> None:
    """Nothing to resample (plain nets, or a cadence that draws at another point)."""


class DQNLearner:
    """One gradient step of (double) DQN over an objective (scalar TD, C51, ...).

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
        loss: ``"huber"`` or ``"mse"`` on TD errors (scalar objective); C51 always uses
            the cross-entropy to the projected target.
        max_grad_norm: clip the global gradient norm to this value (None = no clipping).
        reset_noise: resample the noise of noisy nets in each update (see
            ``noise_cadence``); False keeps whatever noise the nets hold.
        noise_cadence: ``"paper"`` (NoisyNet-DQN, Fortunato et al. 2018, Algorithm 1):
            each update draws independent noise for the target net, for the online
            net's forward on ``next_obs`` that selects the double-Q action, and for the
            online net's forward on ``obs`` in the loss. ``"per_update"``: one online
            draw shared by the selection and the loss, and one target draw.
        c51_priority: per-sample priority of the C51 objective: ``"kl"`` (KL(m || p),
            Rainbow, Hessel et al. 2018) or ``"cross_entropy"`` (-sum m log p = KL + H(m)).
        manual_gradients: compute the gradient with a hand-written backward pass
            instead of autograd where one exists: scalar objectives on plain ReLU MLP nets
            (``ManualMLPUpdater``) and C51 on MLP-torso nets with plain or noisy, dueling
            or linear heads (``ManualC51Updater``); the same maths, two to three times as
            fast on a CPU. Ignored otherwise.
        objective: the loss (``rlkit.agent.objectives.make``); default: the objective
            of the net's readout built from ``double_q``, ``loss`` and ``c51_priority``
            (which are ignored when ``objective`` is given).
        compile: ``torch.compile`` options (``backend``, ``mode``) to compile the
            objective with (``CompiledUpdater``; autograd, so ``manual_gradients`` is then
            ignored); None: eager.
        precision: ``"fp32"``, or ``"bf16"``: the objective under ``torch.autocast`` in
            bfloat16 (weights, gradients and Adam stay float32; autograd, so
            ``manual_gradients`` is then ignored).
        grad_sync: called with the parameters after each backward pass, before clipping:
            data-parallel learners average their gradients there
            (``rlkit.distributed.ddp.GradAllReduce``; autograd, so ``manual_gradients`` is
            then ignored).

    ``update(batch)`` returns a ``LossOutput``: the IS-weighted mean loss, the objective's
    new priorities and the metrics ``loss``, the objective's (``q_mean``,
    ``td_abs_mean``; C51 also ``support_clip_frac``), ``grad_norm``.
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
        objective: Objective | None = None,
        compile: dict | None = None,
        precision: str = "fp32",
        grad_sync: Callable[[list[torch.Tensor]], None] | None = None,
    ) -> None:
        if noise_cadence not in NOISE_CADENCES:
            raise ValueError(
                f"noise_cadence must be one of {sorted(NOISE_CADENCES)}, got {noise_cadence!r}"
            )
        if not 0.0 < target_tau <= 1.0:
            raise ValueError(f"target_tau must be in (0, 1], got {target_tau}")
        if objective is None:
            # Without a target network the double-Q target reduces to the max.
            objective = objectives.make(
                objectives.AUTO,
                online.readout,
                double_q=double_q and use_target_network,
                loss=loss,
                c51_priority=c51_priority,
            )
        self.online, self.optimizer, self.objective = online, optimizer, objective
        self.use_target_network = use_target_network
        self.target: QNetwork = copy.deepcopy(online) if use_target_network else online
        if use_target_network:
            self.target.requires_grad_(False)
        self.target_tau = float(target_tau)
        self._sync = self._hard_sync if target_tau == 1.0 else self._polyak_sync
        self.double_q = bool(getattr(objective, "double_q", double_q))
        self.max_grad_norm = max_grad_norm
        self.reset_noise = reset_noise and online.noisy
        self.noise_cadence = noise_cadence
        self._draws = NoiseDraws(*self._noise_draws(noise_cadence))
        self.updates = 0
        self._synced_at_update = 0  # the target starts as an exact copy
        self._published: dict[str, torch.Tensor] | None = None  # see params()
        self._params = [p for group in optimizer.param_groups for p in group["params"]]
        self._optimizer_step = AdamStep(optimizer)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self._updater = self._make_updater(manual_gradients and grad_sync is None, compile)
        if grad_sync is not None:
            self._updater.grad_sync = grad_sync
        manual = (ManualMLPUpdater, ManualC51Updater)
        self._manual = self._updater if isinstance(self._updater, manual) else None

    def _make_updater(
        self, manual_gradients: bool, compile: dict | None
    ) -> AutogradUpdater | ManualMLPUpdater | ManualC51Updater:
        autocast = PRECISIONS[self.precision]
        args = (self.objective, self._params, self.max_grad_norm, self._optimizer_step, autocast)
        if compile is not None:
            return CompiledUpdater(*args, **compile)
        if autocast is not None:
            return AutogradUpdater(*args)
        if manual_gradients and ManualMLPUpdater.supports(self.objective, self.online):
            return ManualMLPUpdater(
                self.objective, self.online, self.max_grad_norm, self._optimizer_step
            )
        if manual_gradients and ManualC51Updater.supports(self.objective, self.online):
            return ManualC51Updater(
                self.objective, self.online, self.target, self.max_grad_norm, self._optimizer_step
            )
        return AutogradUpdater(
            self.objective, self._params, self.max_grad_norm, self._optimizer_step
        )

    @property
    def manual_gradients(self) -> bool:
        """True when updates use a hand-written backward pass (plain MLP or C51 MLP)."""
        return self._manual is not None

    def params(self) -> dict[str, torch.Tensor]:
        """The online net's ``state_dict()``: live tensors (a consumer copies them, as
        ``EpsilonGreedy.load_params`` does), keys as ``QNetwork.state_dict()``.

        The tensors are gathered once (updates and ``load_state_dict`` change them in
        place), so publishing after every training phase costs next to nothing.
        """
        if self._published is None:
            self._published = self.online.state_dict()
        return dict(self._published)

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

    def _forwards(self, target_raw: torch.Tensor | None) -> Forwards:
        return Forwards(self.online, self.target, self._draws, target_raw)

    # ------------------------------------------------------------------ updates

    @property
    def target_fixed_between_updates(self) -> bool:
        """True when consecutive updates bootstrap from an unchanging target net: a
        separate target net (synced by the caller) with no noise resampling, and no
        fractions sampled per forward (IQN)."""
        return self.use_target_network and not self.reset_noise and self.online.implicit is None

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
        if num_updates == 1 or not self.target_fixed_between_updates:
            return [
                self.update(batch_slice(batch, k * step, (k + 1) * step))
                for k in range(num_updates)
            ]
        with torch.no_grad():
            target_raw = self.target.raw(batch.next_obs)
        outs = self._updater.run(batch, num_updates, self._forwards, target_raw)
        self.updates += num_updates
        return outs

    def update(self, batch: Batch) -> LossOutput:
        """One gradient step on ``batch`` with the IS-weighted mean of per-sample losses,
        resampling noise as ``noise_cadence`` says."""
        out = self._updater.run(batch, 1, self._forwards)[0]
        self.updates += 1
        return out

    # ------------------------------------------------------------------ checkpoints

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
        self._published = None
