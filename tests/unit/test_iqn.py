"""IQN (``network.head: iqn``) and M-IQN: the cosine embedding and the per-fraction loss
by hand, the network's fractions, the target's selection, the three independent
fraction draws of an update, and the switches through the builder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlkit.agent import objectives
from rlkit.agent.nn import QNetwork
from rlkit.agent.nn.implicit import ImplicitQuantiles
from rlkit.agent.objectives.iqn import ImplicitQuantileRegression, ImplicitReadout
from rlkit.agent.objectives.qr import quantile_huber
from rlkit.build import build_learner, build_network, build_policy
from rlkit.config import ConfigError, load_config
from rlkit.types import Batch


def test_cosine_embedding_by_hand():
    emb = ImplicitQuantiles(features=2, cosines=3)
    with torch.no_grad():
        emb.embed.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.0, 4.0, -2.0]]))
        emb.embed.bias.copy_(torch.tensor([1.0, 0.0]))
    taus = torch.tensor([[0.5, 1.0 / 3.0]])
    # cos(pi i tau), i = 0, 1, 2:  tau 1/2 -> [1, 0, -1];  tau 1/3 -> [1, 1/2, -1/2]
    torch.testing.assert_close(
        emb.cosine_features(taus), torch.tensor([[[1.0, 0.0, -1.0], [1.0, 0.5, -0.5]]])
    )
    # phi = relu(W c + b):
    #   tau 1/2: [1 + 0 - 3 + 1, 0 + 0 + 2 + 0] = [-1, 2] -> [0, 2]
    #   tau 1/3: [1 + 1 - 1.5 + 1, 0 + 2 + 1 + 0] = [1.5, 3]
    torch.testing.assert_close(emb.phi(taus), torch.tensor([[[0.0, 2.0], [1.5, 3.0]]]))
    # psi(x) * phi(tau) with psi = [2, -1], one row per fraction
    out = emb(torch.tensor([[2.0, -1.0]]), taus)
    torch.testing.assert_close(out, torch.tensor([[0.0, -2.0], [3.0, -3.0]]))


def test_acting_fractions_are_drawn_in_training_and_midpoints_in_eval():
    emb = ImplicitQuantiles(features=2, cosines=3, acting_quantiles=4, cvar_eta=0.5)
    like = torch.zeros(1)
    a, b = emb.acting_fractions(3, like), emb.acting_fractions(3, like)
    assert a.shape == (3, 4) and not torch.equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) < 0.5  # CVaR_0.5: beta(tau) = tau / 2
    emb.eval()
    # midpoints (2k + 1) / 8 = 1/8, 3/8, 5/8, 7/8, times eta 0.5
    expected = torch.tensor([1.0, 3.0, 5.0, 7.0]) / 16
    torch.testing.assert_close(emb.acting_fractions(2, like), expected.expand(2, 4))
    with pytest.raises(ValueError, match="cvar_eta"):
        ImplicitQuantiles(2, cvar_eta=0.0)


def _net(**keys) -> QNetwork:
    torch.manual_seed(0)
    return QNetwork(
        (3,),
        2,
        hidden_sizes=(8,),
        atoms=5,
        readout=ImplicitReadout(5),
        quantile_embedding=dict(cosines=4, acting_quantiles=3),
        **keys,
    )


@pytest.mark.parametrize("dueling", [True, False])
def test_each_fraction_is_its_own_forward_and_dueling_works_per_fraction(dueling):
    net = _net(dueling=dueling, noisy=False)
    obs, taus = torch.randn(2, 3), torch.rand(2, 5)
    raw = net.raw(obs, taus)
    assert raw.shape == (2, 2, 5)  # [B, A, N]
    for j in range(5):
        torch.testing.assert_close(raw[:, :, j], net.raw(obs, taus[:, j : j + 1])[:, :, 0])
    if dueling:  # Q = V + A - mean A per fraction: the mean over actions is V
        value = net.head.value(net.implicit(net.features(obs), taus)).view(2, 5)
        torch.testing.assert_close(raw.mean(dim=1), value)
    net.eval()  # greedy Q: the mean over the K = 3 midpoints 1/6, 1/2, 5/6
    mid = torch.tensor([1.0, 3.0, 5.0]).div(6).expand(2, 3)
    torch.testing.assert_close(net(obs), net.raw(obs, mid).mean(dim=2))
    with pytest.raises(ValueError, match="only IQN nets"):
        QNetwork((3,), 2, atoms=1).raw(obs, taus)


def test_quantile_huber_with_fractions_per_sample_by_hand():
    # row 0: taus [0.1, 0.9], pred [0, 1], targets [1, 0]   (|u| = 1: the kappa boundary)
    #   u_0j = [1, 0]: huber [0.5, 0], weights |0.1 - 0| = 0.1 -> rho [0.05, 0], mean 0.025
    #   u_1j = [0, -1]: huber [0, 0.5], weights [0.9, |0.9 - 1| = 0.1] -> [0, 0.05], 0.025
    #   loss 0.05
    # row 1: taus [0.25, 0.75], pred [0, 1], targets [0.5, 3] (|u| 3 > kappa: 3 - 0.5 = 2.5)
    #   u_0j = [0.5, 3]: huber [0.125, 2.5], weights 0.25 -> mean (0.03125 + 0.625) / 2
    #   u_1j = [-0.5, 2]: huber [0.125, 1.5], weights [0.25, 0.75] -> (0.03125 + 1.125) / 2
    #   loss 0.328125 + 0.578125 = 0.90625
    loss = quantile_huber(
        torch.tensor([[0.0, 1.0], [0.0, 1.0]]),
        torch.tensor([[1.0, 0.0], [0.5, 3.0]]),
        torch.tensor([[0.1, 0.9], [0.25, 0.75]]),
    )
    torch.testing.assert_close(loss, torch.tensor([0.05, 0.90625]))


class _Forwards:
    """Raw outputs that are functions of the fractions given: ``base[a] + scale * tau``;
    records (pass, fractions) of every call."""

    def __init__(self, target, selection, online, scale=1.0):
        self.bases = dict(target=target, selection=selection, online=online)
        self.scale, self.calls = scale, []

    def _out(self, name, taus):
        self.calls.append((name, taus))
        base_BA = self.bases["target" if name == "target_at" else name]
        return base_BA.unsqueeze(2) + self.scale * taus.unsqueeze(1)

    def target_next(self, next_obs, taus=None):
        return self._out("target", taus)

    def target_at(self, obs, taus=None):
        return self._out("target_at", taus)

    def selection_next(self, next_obs, taus=None):
        return self._out("selection", taus)

    def online(self, obs, taus=None):
        return self._out("online", taus)


def _batch(size=1) -> Batch:
    return Batch(
        obs=torch.zeros(size, 1),
        action=torch.zeros(size, dtype=torch.int64),
        reward=torch.full((size,), 1.0),
        next_obs=torch.zeros(size, 1),
        discount=torch.full((size,), 0.5),
        weights=torch.ones(size),
        indices=np.arange(size),
    )


def _iqn(double_q=True, munchausen=None, **keys) -> ImplicitQuantileRegression:
    keys = dict(target_quantiles=4, selection_quantiles=3, **keys)
    return objectives.make(
        "iqn", ImplicitReadout(2), double_q=double_q, iqn=keys, munchausen=munchausen
    )


# target net at s': action 1 is better (10 + tau' against tau'); online net at s': action 0
TARGET, SELECTION, ONLINE = torch.tensor([[0.0, 10.0]]), torch.tensor([[5.0, 0.0]]), None


@pytest.mark.parametrize("double_q, a_star", [(True, 0), (False, 1)])
def test_target_selects_with_the_online_net_under_double_q(double_q, a_star):
    forwards = _Forwards(TARGET, SELECTION, torch.tensor([[2.0, 3.0]]))
    torch.manual_seed(1)
    target = _iqn(double_q).target_quantiles_of(_batch(), forwards)
    (name, target_taus), (sel_name, sel_taus) = forwards.calls
    assert name == "target" and target_taus.shape == (1, 4)  # N' = 4
    assert sel_name == ("selection" if double_q else "target_at") and sel_taus.shape == (1, 3)
    # T Z_j = r + discount * Z'_{tau'_j}(s', a*) = 1 + 0.5 * (10 a* + tau'_j)
    torch.testing.assert_close(target, 1.0 + 0.5 * (10.0 * a_star + target_taus))


def test_an_update_draws_three_independent_sets_of_fractions():
    objective = _iqn(cvar_eta=0.25)
    forwards = _Forwards(TARGET, SELECTION, torch.tensor([[2.0, 3.0]]).requires_grad_())
    out = objective(_batch(2), forwards)
    calls = dict(forwards.calls)
    assert [n for n, _ in forwards.calls] == ["target", "selection", "online"]
    assert calls["target"].shape == (2, 4) and calls["online"].shape == (2, 2)  # N', N
    assert float(calls["selection"].max()) < 0.25  # CVaR_0.25 selection fractions
    flat = [calls[k][:, :2].flatten() for k in ("target", "selection", "online")]
    assert not any(torch.allclose(flat[i], flat[j]) for i, j in ((0, 1), (0, 2), (1, 2)))
    # the loss at the online fractions: Z_{tau_i}(s, 0) = 2 + tau_i against T Z_j
    target = 1.0 + 0.5 * calls["target"]  # a* = 0 by the online net
    expected = quantile_huber(2.0 + calls["online"], target, calls["online"])
    torch.testing.assert_close(out.priorities, expected.detach())
    torch.testing.assert_close(out.loss.detach(), expected.mean().detach())


def test_terminal_and_n_step_targets():
    batch = _batch(2)
    batch.reward.copy_(torch.tensor([2.71, -1.0]))  # 3-step returns
    batch.discount.copy_(torch.tensor([0.729, 0.0]))  # gamma^3 = 0.9^3; a terminal window
    forwards = _Forwards(TARGET, SELECTION, None, scale=0.0)  # Z' = [0, 10] at every tau
    target = _iqn().target_quantiles_of(batch, forwards)
    # row 0: 2.71 + 0.729 * Z'(s', a* = 0) = 2.71; row 1: -1 whatever Z' is
    torch.testing.assert_close(target, torch.tensor([[2.71] * 4, [-1.0] * 4]))


def test_munchausen_iqn_target_by_hand():
    # tau_m 0.5, alpha 0.9, l0 -1; target net at s: q = [0, 1] -> q / tau_m = [0, 2]
    #   log pi(0|s) = -log(1 + e^2) = -2.1269; tau_m * log pi = -1.0635 -> clipped to -1
    #   -> bonus 0.9 * -1 = -0.9 (clipping log pi instead would give 0.9 * 0.5 * -1 = -0.45)
    # target net at s' (N' = 2): Z'(a=0) = [0, 2], Z'(a=1) = [1, 1]: q' = [1, 1], pi = 1/2
    #   soft_j = sum_a 1/2 (Z'_j(a) - 0.5 ln 1/2) = (Z'_j(0) + Z'_j(1)) / 2 + 0.5 ln 2
    #          = [0.5 + 0.34657, 1.5 + 0.34657]
    # T Z_j = 1 - 0.9 + 0.5 * soft_j = [0.52329, 1.02329]
    m = dict(tau=0.5, alpha=0.9, log_floor=-1.0)
    objective = _iqn(munchausen=m)
    objective.target_quantiles = 2
    z_next = torch.tensor([[[0.0, 2.0], [1.0, 1.0]]])
    q_now = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]])

    class Fwd:
        def target_next(self, next_obs, taus):
            return z_next

        def target_at(self, obs, taus):
            return q_now

    target = objective.target_quantiles_of(_batch(), Fwd())
    soft = torch.tensor([0.5, 1.5]) + 0.5 * math.log(2.0)
    torch.testing.assert_close(target, (0.1 + 0.5 * soft).unsqueeze(0))
    assert -0.5 * math.log(1 + math.e**2) < -1.0  # the clip is active


def test_gradients_by_gradcheck():
    # the per-fraction quantile Huber loss in the predictions and targets, and the
    # embedding in the features and the fractions (float64)
    pred = torch.tensor([[0.1, 1.0, -0.7]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.3, 2.5, -1.9, 1.2]], dtype=torch.float64, requires_grad=True)
    taus = torch.tensor([[0.2, 0.55, 0.9]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p, t: quantile_huber(p, t, taus), (pred, target))
    torch.manual_seed(0)
    emb = ImplicitQuantiles(features=3, cosines=5).double()
    feats = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    fr = torch.tensor([[0.13, 0.71], [0.42, 0.88]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(emb, (feats, fr))


def _config(*sets):
    return load_config(None, ["network.head=iqn", "network.atoms=6", "trainer.device=cpu", *sets])


def test_the_head_and_its_keys_reach_the_net_the_learner_and_the_acting_path():
    config = _config(
        "network.iqn_target_quantiles=7",
        "network.iqn_acting_quantiles=5",
        "network.iqn_cosines=9",
        "network.iqn_cvar_eta=0.5",
        "learner.double_q=false",
    )
    net = build_network(config, (4,), 2)
    assert net.implicit.cosines == 9 and net.implicit.embed.in_features == 9
    learner = build_learner(config, net, torch.device("cpu"))
    obj = learner.objective
    assert type(obj) is ImplicitQuantileRegression and obj.double_q is False
    assert (obj.readout.samples, obj.target_quantiles, obj.selection_quantiles) == (6, 7, 5)
    assert obj.cvar_eta == 0.5 and not learner.manual_gradients
    assert not learner.target_fixed_between_updates  # fractions differ per forward
    policy = build_policy(config, net, 2, torch.device("cpu"))
    seen = []
    original = policy.net.implicit.acting_fractions
    policy.net.implicit.acting_fractions = lambda *a: seen.append(original(*a)) or seen[-1]
    policy.act(np.zeros((3, 4), dtype=np.float32))
    assert policy.greedy_fn is None  # not the NumPy fast path: it has no embedding
    assert seen[0].shape == (3, 5) and float(seen[0].max()) < 0.5  # K = 5, CVaR_0.5
    evaluation = build_policy(config, net, 2, torch.device("cpu"), evaluation=True)
    obs = np.random.default_rng(0).normal(size=(4, 4)).astype(np.float32)
    np.testing.assert_array_equal(evaluation.q_values(obs), evaluation.q_values(obs))


def test_munchausen_iqn_switch_and_contradictions():
    config = _config("learner.munchausen=true", "learner.munchausen_tau=0.1")
    obj = build_learner(config, build_network(config, (4,), 2), torch.device("cpu")).objective
    assert obj.munchausen == dict(tau=0.1, alpha=0.9, log_floor=-1.0)
    with pytest.raises(ConfigError, match="needs the scalar head .* or iqn, got 'qr'"):
        config = _config("network.head=qr", "learner.munchausen=true")
        build_learner(config, build_network(config, (4,), 2), torch.device("cpu"))
    with pytest.raises(ConfigError, match="network.iqn_cvar_eta"):
        _config("network.iqn_cvar_eta=0")
    with pytest.raises(ConfigError, match="network.iqn_target_quantiles"):
        _config("network.iqn_target_quantiles=0")
