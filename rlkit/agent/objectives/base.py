"""The ``Objective`` protocol: what a loss is to the learner.

An objective maps a batch and the update's forward passes to a loss, per-sample
priorities and metrics, all as values (``ObjectiveOutput``). It runs the forward passes
itself through ``Forwards`` (so an objective that samples inside the forward, such as
IQN's quantile fractions, fits the same protocol), and it says how the network's raw
outputs [B, A, Z] read as Q-values [B, A] (its ``readout``, which the network holds).

Each objective is one module of ``rlkit.agent.objectives`` with two functions:
``readout(atoms, v_min, v_max) -> Readout`` (ValueError when the network's shape
contradicts the objective) and ``make(readout, **options) -> Objective`` (the options
it does not use are ignored; see ``rlkit.agent.objectives.make``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import torch

from rlkit.types import Batch

if TYPE_CHECKING:  # the network imports the registry for its default readout
    from rlkit.agent.nn.qnet import QNetwork


class Readout(Protocol):
    """Raw head outputs [B, A, Z] -> Q-values [B, A] (an ``nn.Module`` the net holds)."""

    name: str  # the objective module the readout belongs to

    def __call__(self, raw_BAZ: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class ObjectiveOutput:
    """One update's loss terms as values.

    ``loss``: the importance-weighted mean loss (0-d, differentiable);
    ``priorities``: new per-sample priorities [B] (non-negative, no grad);
    ``metrics``: 0-d tensors without grad (e.g. ``q_mean``, ``td_abs_mean``), in the
    order the learner reports them (between ``loss`` and ``grad_norm``).
    """

    loss: torch.Tensor
    priorities: torch.Tensor
    metrics: dict[str, torch.Tensor]


#: observations (and, for IQN, fractions [B, N]) -> raw outputs [B, A, Z]
RawForward = Callable[..., torch.Tensor]


class NoiseDraws(NamedTuple):
    """What the learner resamples before each forward pass of an update (noisy nets);
    each is a no-op when the cadence draws nothing there."""

    target: Callable[[], None]  # before the target forward at next_obs
    selection: Callable[[], None]  # before the online forward at next_obs (double-Q)
    loss: Callable[[], None]  # before the online forward at obs (the loss)


class Forwards:
    """The forward passes an objective may run in one update, with the learner's noise
    draws. Call them in this order (the draws are consumed in it): ``target_next``,
    ``selection_next`` (only when the objective selects with the online net), ``online``.

    ``target_raw``: the target net's raw outputs at this batch's ``next_obs`` when the
    learner computed them already (``update_many`` with a fixed target); then
    ``target_next`` returns them without a forward pass or a draw.
    """

    def __init__(
        self,
        online: QNetwork,
        target: QNetwork,
        draws: NoiseDraws,
        target_raw: torch.Tensor | None = None,
    ) -> None:
        self.online_net, self.target_net = online, target
        self._draws = draws
        self._target_raw = target_raw
        self._target_fn: RawForward = target.raw
        self._selection_fn: RawForward = online.raw
        self._online_fn: RawForward = online.raw

    def computed_by(
        self, target: RawForward, selection: RawForward, online: RawForward
    ) -> Forwards:
        """Compute the three forward passes with these functions instead of the nets'
        ``raw`` (the same values, e.g. hand-written passes); the noise draws stay as they
        are. Returns ``self``."""
        self._target_fn, self._selection_fn, self._online_fn = target, selection, online
        return self

    @staticmethod
    def _run(fn: RawForward, obs: torch.Tensor, taus: torch.Tensor | None) -> torch.Tensor:
        return fn(obs) if taus is None else fn(obs, taus)

    @torch.no_grad()
    def target_next(self, next_obs: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        """Target-net raw outputs [B, A, Z] at ``next_obs`` (no grad); ``taus``: IQN's
        fractions [B, N] (then [B, A, N])."""
        if self._target_raw is not None:
            if taus is not None:
                raise RuntimeError("target_next: precomputed outputs cannot take fractions")
            return self._target_raw
        self._draws.target()
        return self._run(self._target_fn, next_obs, taus)

    @torch.no_grad()
    def target_at(self, obs: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        """Target-net raw outputs [B, A, Z] at ``obs`` (no grad; with the target net's
        noise of this update, drawn by ``target_next``, which comes first), e.g. for a
        log-policy term at the current state (Munchausen)."""
        return self._run(self._target_fn, obs, taus)

    @torch.no_grad()
    def selection_next(
        self, next_obs: torch.Tensor, taus: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Online-net raw outputs [B, A, Z] at ``next_obs`` (no grad), e.g. for the
        double-Q argmax."""
        self._draws.selection()
        return self._run(self._selection_fn, next_obs, taus)

    def online(self, obs: torch.Tensor, taus: torch.Tensor | None = None) -> torch.Tensor:
        """Online-net raw outputs [B, A, Z] at ``obs``, with grad (the loss forward)."""
        self._draws.loss()
        return self._run(self._online_fn, obs, taus)


class Objective(Protocol):
    """A loss behind one interface: the learner calls it and steps on ``loss``."""

    readout: Readout

    def q_values(self, raw_BAZ: torch.Tensor) -> torch.Tensor:
        """Raw outputs [B, A, Z] -> Q-values [B, A] (the readout)."""
        ...

    def __call__(self, batch: Batch, forwards: Forwards) -> ObjectiveOutput: ...


def weighted_mean(weights_B: torch.Tensor, per_sample_B: torch.Tensor) -> torch.Tensor:
    """The importance-weighted mean ``mean_b w_b l_b`` (0-d)."""
    return (weights_B * per_sample_B).mean()


@torch.no_grad()
def target_at_next_action(
    readout: Readout, forwards: Forwards, next_obs: torch.Tensor, double_q: bool
) -> torch.Tensor:
    """The target net's raw outputs [B, Z] at ``next_obs`` for the next action ``a*``:
    the argmax of the online net's Q-values there (double-Q), else of the target
    net's. Runs ``target_next`` (then ``selection_next``)."""
    t_raw_BAZ = forwards.target_next(next_obs)
    if double_q:
        a_star_B = readout(forwards.selection_next(next_obs)).argmax(dim=1)
    else:
        a_star_B = readout(t_raw_BAZ).argmax(dim=1)
    rows_B = torch.arange(len(a_star_B), device=a_star_B.device)
    return t_raw_BAZ[rows_B, a_star_B]
