"""Munchausen-DQN (``learner.munchausen``): its target by hand, its limit as the
temperature goes to 0, the forward passes it runs, and the switch through the builder."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rlkit.agent import objectives
from rlkit.agent.objectives.munchausen import Munchausen, munchausen_target
from rlkit.agent.objectives.scalar import ScalarTD
from rlkit.build import build_learner, build_network
from rlkit.config import ConfigError, load_config
from rlkit.types import Batch

LN3, LN4 = math.log(3.0), math.log(4.0)


def test_target_by_hand():
    # tau 0.5, alpha 0.5, l0 -1; q_target(s) = q_target(s') = [0, ln 3]
    #   q / tau = [0, 2 ln 3] -> pi = [1/10, 9/10] (e^{2 ln 3} = 9)
    # action 0: tau * log pi = 0.5 * ln(1/10) = -1.1513 -> clipped to -1 -> bonus 0.5 * -1
    #   (clipping log pi instead, 0.5 * 0.5 * max(ln 0.1, -1) = -0.25, would be wrong)
    # action 1: tau * log pi = 0.5 * ln(9/10) = -0.05268 -> bonus 0.5 * -0.05268
    # soft_v' = sum pi (q - tau log pi) = tau * log-sum-exp(q / tau) = 0.5 * ln 10
    # target = r + bonus + discount * soft_v' with r = 1, discount = 0.5
    q = torch.tensor([[0.0, LN3], [0.0, LN3]])
    target = munchausen_target(
        torch.tensor([1.0, 1.0]),
        torch.tensor([0.5, 0.5]),
        torch.tensor([0, 1]),
        q,
        q,
        tau=0.5,
        alpha=0.5,
        log_floor=-1.0,
    )
    soft_v = 0.5 * math.log(10.0)
    expected = [1.0 - 0.5 + 0.5 * soft_v, 1.0 + 0.25 * math.log(0.9) + 0.5 * soft_v]
    np.testing.assert_allclose(target.numpy(), expected, rtol=1e-6)
    assert 0.5 * math.log(0.1) < -1.0  # the clip is active for action 0


def test_a_terminal_step_keeps_only_reward_and_bonus():
    # tau 1: tau * log pi(1|s) = ln(3/4); bonus 0.5 * ln(3/4)
    q = torch.tensor([[0.0, LN3]])
    target = munchausen_target(
        torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([1]), q, q, tau=1.0, alpha=0.5
    )
    assert target.item() == pytest.approx(2.0 + 0.5 * math.log(0.75))


def test_small_temperature_gives_the_q_learning_target_for_greedy_actions():
    # tau -> 0: pi is greedy, soft_v' -> max_a' q', the greedy action's bonus -> 0
    q_now, q_next = torch.tensor([[1.0, 3.0]]), torch.tensor([[2.0, 5.0]])
    target = munchausen_target(
        torch.tensor([1.0]), torch.tensor([0.9]), torch.tensor([1]), q_now, q_next, tau=1e-3
    )
    assert target.item() == pytest.approx(1.0 + 0.9 * 5.0, abs=1e-4)
    # the non-greedy action: tau * log pi(0|s) -> q(s, 0) - max q(s) = 1 - 3 = -2, clipped
    # to l0 = -1, so the bonus is alpha * l0 = 0.9 * -1 whatever the (small) tau
    worse = munchausen_target(
        torch.tensor([1.0]), torch.tensor([0.9]), torch.tensor([0]), q_now, q_next, tau=1e-3
    )
    assert worse.item() == pytest.approx(1.0 + 0.9 * 5.0 - 0.9, abs=1e-4)
    # a gap inside the clip: q(s) = [2.5, 3] -> tau * log pi(0|s) -> -0.5, bonus 0.9 * -0.5
    close = munchausen_target(
        torch.tensor([1.0]),
        torch.tensor([0.9]),
        torch.tensor([0]),
        torch.tensor([[2.5, 3.0]]),
        q_next,
        tau=1e-3,
    )
    assert close.item() == pytest.approx(1.0 + 0.9 * 5.0 - 0.45, abs=1e-4)


class _Forwards:
    def __init__(self, target_next, target_now, online):
        self.raws = SimpleNamespace(next=target_next, now=target_now, online=online)
        self.calls = []

    def target_next(self, next_obs):
        self.calls.append("target_next")
        return self.raws.next

    def target_at(self, obs):
        self.calls.append("target_at")
        return self.raws.now

    def online(self, obs):
        self.calls.append("online")
        return self.raws.online


def test_objective_reads_the_target_net_at_both_states_and_weights_the_loss():
    options = dict(tau=0.03, alpha=0.9, log_floor=-1.0)
    objective = objectives.make(
        "scalar", objectives.make_readout("scalar", 1, 0, 0), munchausen=options
    )
    assert isinstance(objective, Munchausen)
    now, nxt = torch.tensor([[[0.0], [LN3]]]), torch.tensor([[[1.0], [0.0]]])
    online = torch.tensor([[[0.25], [0.0]]], requires_grad=True)
    batch = Batch(
        obs=torch.zeros(1, 1),
        action=torch.tensor([0]),
        reward=torch.tensor([1.0]),
        next_obs=torch.ones(1, 1),
        discount=torch.tensor([0.5]),
        weights=torch.tensor([0.5]),
        indices=np.arange(1),
    )
    forwards = _Forwards(nxt, now, online)
    out = objective(batch, forwards)
    assert forwards.calls == ["target_next", "target_at", "online"]
    target = munchausen_target(batch.reward, batch.discount, batch.action, now[..., 0], nxt[..., 0])
    td = target.item() - 0.25
    assert out.priorities.tolist() == pytest.approx([abs(td)])
    huber = 0.5 * td**2 if abs(td) <= 1 else abs(td) - 0.5
    assert out.loss.item() == pytest.approx(0.5 * huber)  # weight 0.5, batch of 1


def _learner(*sets):
    config = load_config(None, ["network.atoms=1", "network.noisy=false", *sets])
    return build_learner(config, build_network(config, (4,), 2), torch.device("cpu"))


def test_the_switch_and_its_three_keys_reach_the_objective():
    assert type(_learner().objective) is ScalarTD  # off by default
    objective = _learner(
        "learner.munchausen=true",
        "learner.munchausen_tau=0.5",
        "learner.munchausen_alpha=0.25",
        "learner.munchausen_log_floor=-2",
    ).objective
    assert type(objective) is Munchausen
    assert (objective.tau, objective.alpha, objective.log_floor) == (0.5, 0.25, -2.0)
    assert not _learner("learner.munchausen=true").manual_gradients  # not the scalar fast path
    assert "munchausen" not in objectives.names()  # a switch, not a head


def test_the_switch_refuses_other_heads_and_bad_values():
    with pytest.raises(ConfigError, match="learner.munchausen: needs the scalar head"):
        config = load_config(
            None, ["learner.munchausen=true", "network.v_min=0", "network.v_max=1"]
        )
        build_learner(config, build_network(config, (4,), 2), torch.device("cpu"))
    with pytest.raises(ConfigError, match="learner.munchausen_log_floor"):
        load_config(None, ["learner.munchausen_log_floor=0.5"])
    with pytest.raises(ConfigError, match="learner.munchausen_tau"):
        load_config(None, ["learner.munchausen_tau=0"])


def test_munchausen_target_gradients_by_gradcheck():
    # float64, with the log-policy clip active for one row (a far-from-greedy action)
    q_now = torch.tensor([[0.0, 0.05], [0.0, 0.01]], dtype=torch.float64, requires_grad=True)
    q_next = torch.tensor([[0.2, 0.1], [0.0, 0.03]], dtype=torch.float64, requires_grad=True)
    reward, discount = torch.tensor([1.0, 0.5], dtype=torch.float64), torch.tensor([0.9, 0.0])
    action = torch.tensor([0, 1])

    def target(a, b):
        return munchausen_target(reward, discount.double(), action, a, b)

    assert torch.autograd.gradcheck(target, (q_now, q_next))
