"""QR-DQN (``network.head: qr``): the quantile Huber loss by hand, its minimiser, the
target's double-Q selection, priorities, and a whole run from the config."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rlkit.agent import objectives
from rlkit.agent.objectives.qr import QuantileReadout, quantile_huber
from rlkit.types import Batch


def test_fractions_are_the_slice_midpoints():
    # tau_hat_i = (2 i + 1) / (2 N): N = 4 -> 1/8, 3/8, 5/8, 7/8
    torch.testing.assert_close(QuantileReadout(4).taus, torch.tensor([0.125, 0.375, 0.625, 0.875]))


def test_quantile_huber_by_hand():
    # taus [0.25, 0.75], pred [0, 1], target samples [0.5, 3]
    # u_0j = [0.5, 3]    huber [0.125, 2.5]  weights |0.25 - 0| = [0.25, 0.25]
    #        rho = [0.03125, 0.625]          mean 0.328125
    # u_1j = [-0.5, 2]   huber [0.125, 1.5]  weights [|0.75 - 1|, 0.75] = [0.25, 0.75]
    #        rho = [0.03125, 1.125]          mean 0.578125
    # loss = 0.328125 + 0.578125 = 0.90625
    loss = quantile_huber(
        torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 3.0]]), torch.tensor([0.25, 0.75])
    )
    torch.testing.assert_close(loss, torch.tensor([0.90625]))


def test_minimising_it_finds_the_quantiles_of_the_targets():
    # targets 0, 1, ..., 100 (spread >> kappa = 1): the minimiser of the quantile Huber
    # loss is the tau-quantile up to the Huber zone, i.e. about 100 * tau_hat_i
    taus = QuantileReadout(4).taus
    target = torch.arange(101, dtype=torch.float32).unsqueeze(0)
    theta = torch.zeros(1, 4, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.5)
    for _ in range(1500):
        opt.zero_grad()
        quantile_huber(theta, target, taus).sum().backward()
        opt.step()
    np.testing.assert_allclose(theta.detach()[0].numpy(), (100 * taus).numpy(), atol=1.5)


class _Forwards:
    """Hand-made raw outputs [B, A, N] for the three forward passes."""

    def __init__(self, target, selection, online):
        self.raws = SimpleNamespace(target=target, selection=selection, online=online)
        self.calls = []

    def target_next(self, next_obs):
        self.calls.append("target")
        return self.raws.target

    def selection_next(self, next_obs):
        self.calls.append("selection")
        return self.raws.selection

    def online(self, obs):
        self.calls.append("online")
        return self.raws.online


def _batch(weights=(1.0,)) -> Batch:
    b = len(weights)
    return Batch(
        obs=torch.zeros(b, 1),
        action=torch.zeros(b, dtype=torch.int64),
        reward=torch.full((b,), 1.0),
        next_obs=torch.zeros(b, 1),
        discount=torch.full((b,), 0.5),
        weights=torch.tensor(weights),
        indices=np.arange(b),
    )


# target net: action 0 has quantiles [2, 4] (mean 3), action 1 [10, 20] (mean 15)
TARGET = torch.tensor([[[2.0, 4.0], [10.0, 20.0]]])
# online net at s': action 0 looks better (mean 5 against 0)
SELECTION = torch.tensor([[[5.0, 5.0], [0.0, 0.0]]])
ONLINE = torch.tensor([[[0.0, 1.0], [7.0, 7.0]]])


@pytest.mark.parametrize("double_q, next_quantiles", [(True, [2.0, 4.0]), (False, [10.0, 20.0])])
def test_target_uses_the_selected_action_of_the_target_net(double_q, next_quantiles):
    objective = objectives.make("qr", QuantileReadout(2), double_q=double_q)
    forwards = _Forwards(TARGET, SELECTION, ONLINE.clone().requires_grad_())
    out = objective(_batch(), forwards)
    # T theta_j = r + discount * theta'_j(s', a*) = 1 + 0.5 * next_quantiles
    target = torch.tensor([[1.0 + 0.5 * q for q in next_quantiles]])
    expected = quantile_huber(torch.tensor([[0.0, 1.0]]), target, torch.tensor([0.25, 0.75]))
    torch.testing.assert_close(out.loss.detach(), expected[0])
    torch.testing.assert_close(out.priorities, expected)  # the per-sample loss
    assert forwards.calls == (
        ["target", "selection", "online"] if double_q else ["target", "online"]
    )
    # q_mean: the mean quantile of the taken action (0) = 0.5
    assert out.metrics["q_mean"].item() == pytest.approx(0.5)


def test_importance_weights_scale_the_loss_not_the_priorities():
    objective = objectives.make("qr", QuantileReadout(2))

    def two():
        return _Forwards(TARGET.repeat(2, 1, 1), SELECTION.repeat(2, 1, 1), ONLINE.repeat(2, 1, 1))

    plain = objective(_batch((1.0, 1.0)), two())
    weighted = objective(_batch((0.5, 0.0)), two())
    torch.testing.assert_close(weighted.priorities, plain.priorities)
    # mean_b w_b l_b with equal l: (0.5 + 0) / 2 * l = l / 4
    torch.testing.assert_close(weighted.loss, plain.loss / 4)


def test_readout_is_the_mean_and_few_quantiles_are_refused():
    raw = torch.tensor([[[1.0, 3.0], [0.0, 10.0]]])
    torch.testing.assert_close(QuantileReadout(2)(raw), torch.tensor([[2.0, 5.0]]))
    with pytest.raises(ValueError, match="'qr' needs atoms > 1"):
        objectives.make_readout("qr", 1, 0.0, 0.0)


def test_target_under_n_step_and_termination():
    # discount = gamma^n (0.9^3 = 0.729) for a window that did not terminate, 0 for one
    # that did: T theta_j = r + discount * theta'_j(s', a*), a* = 0 by the online net
    objective = objectives.make("qr", QuantileReadout(2), double_q=True)
    batch = _batch((1.0, 1.0))
    batch.reward.copy_(torch.tensor([2.71, -1.0]))  # n-step returns
    batch.discount.copy_(torch.tensor([0.729, 0.0]))
    forwards = _Forwards(TARGET.repeat(2, 1, 1), SELECTION.repeat(2, 1, 1), ONLINE.repeat(2, 1, 1))
    target = objective.target_quantiles(batch, forwards)
    # row 0: 2.71 + 0.729 * [2, 4] = [4.168, 5.626]; row 1 terminated: [-1, -1]
    torch.testing.assert_close(target, torch.tensor([[4.168, 5.626], [-1.0, -1.0]]))


def test_quantile_huber_gradients_by_gradcheck():
    # float64, including errors on both sides of the kappa = 1 boundary (|u| 0.3 and 2.5)
    pred = torch.tensor([[0.0, 1.0, -0.7]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.3, 2.5, -1.9, 1.2]], dtype=torch.float64, requires_grad=True)
    taus = QuantileReadout(3).taus.double()
    assert torch.autograd.gradcheck(lambda p, t: quantile_huber(p, t, taus), (pred, target))
