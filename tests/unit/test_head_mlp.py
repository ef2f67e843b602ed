"""The hand-written forward/backward of MLP-torso nets with noisy and dueling heads
(``HeadMLPGrad``) and the C51 updates built on it (``ManualC51Updater``), checked against
the modules' own forward pass and autograd."""

import copy

import numpy as np
import pytest
import torch

from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import NoisyLinear, QNetwork
from rlkit.agent.nn.head_mlp import HeadMLPGrad, head_mlp_layout
from rlkit.agent.updaters import AutogradUpdater, ManualC51Updater
from rlkit.types import Batch

LAYOUTS = {
    "noisy dueling, 1 torso layer": dict(
        dueling=True, noisy=True, hidden_sizes=(16,), head_hidden=8
    ),
    "noisy linear head": dict(dueling=False, noisy=True, hidden_sizes=(16,), head_hidden=8),
    "plain dueling": dict(dueling=True, noisy=False, hidden_sizes=(16,), head_hidden=8),
    "noisy dueling, no head hidden": dict(
        dueling=True, noisy=True, hidden_sizes=(16,), head_hidden=0
    ),
    "noisy dueling, 2 torso layers": dict(
        dueling=True, noisy=True, hidden_sizes=(16, 12), head_hidden=8
    ),
    "noisy dueling, no torso": dict(dueling=True, noisy=True, hidden_sizes=(), head_hidden=8),
}


def net_of(layout: str, atoms: int = 7, seed: int = 0) -> QNetwork:
    torch.manual_seed(seed)
    return QNetwork((5,), 3, atoms=atoms, v_min=-3.0, v_max=3.0, **LAYOUTS[layout])


@pytest.mark.parametrize(
    "kwargs, ok",
    [
        (dict(obs_shape=(4,)), True),
        (dict(obs_shape=(4,), atoms=1), True),  # scalar heads qualify too (the net only)
        (dict(obs_shape=(4, 10, 10)), False),  # MinAtar CNN torso
        (dict(obs_shape=(4,), torso="mlp", hidden_sizes=()), True),
    ],
)
def test_which_networks_qualify(kwargs, ok):
    net = QNetwork(num_actions=2, **{"atoms": 5, **kwargs})
    assert (head_mlp_layout(net) is not None) == ok
    if not ok:
        with pytest.raises(ValueError, match="MLP-torso"):
            HeadMLPGrad(net)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("training", [True, False])
def test_forward_equals_the_modules_bit_for_bit(layout, training):
    net = net_of(layout)
    net.reset_noise(torch.Generator().manual_seed(3))
    net.train(training)
    obs = torch.randn(6, 5)
    with torch.no_grad():
        expected = net.raw(obs)
    got = HeadMLPGrad(net).forward(obs)
    assert got.shape == (6, 3, 7)
    assert torch.equal(got, expected)  # the same ops in the same order
    if training and net.noisy:  # the noise is used: the means alone give other outputs
        net.eval()
        with torch.no_grad():
            assert not torch.equal(net.raw(obs), expected)


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_backward_equals_autograd(layout):
    net = net_of(layout)
    net.reset_noise(torch.Generator().manual_seed(4))
    obs = torch.randn(6, 5)
    g = torch.Generator().manual_seed(5)
    d_raw = torch.randn(6, 3, 7, generator=g)
    net.zero_grad(set_to_none=True)
    (net.raw(obs) * d_raw).sum().backward()  # dL/draw = d_raw
    expected = {name: p.grad.clone() for name, p in net.named_parameters()}
    engine = HeadMLPGrad(net)
    engine.forward(obs, keep=True)
    engine.backward(d_raw)
    assert engine.grads_attached()
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], rtol=1e-5, atol=1e-6, msg=name)
    # the sigma gradients are the noise-weighted mean gradients, not zero or copies
    if net.noisy:
        layer = next(m for m in net.head.modules() if isinstance(m, NoisyLinear))
        eps_w = torch.outer(layer.eps_out, layer.eps_in)
        torch.testing.assert_close(layer.weight_sigma.grad, layer.weight_mu.grad * eps_w)
        assert not torch.equal(layer.weight_sigma.grad, layer.weight_mu.grad)


def test_backward_needs_a_kept_forward():
    engine = HeadMLPGrad(net_of("noisy dueling, 1 torso layer"))
    with pytest.raises(RuntimeError, match="keep=True"):
        engine.backward(torch.zeros(2, 3, 7))
    engine.forward(torch.zeros(2, 5), keep=True)
    engine.forward(torch.zeros(2, 5))  # a forward without keep forgets the kept one
    with pytest.raises(RuntimeError, match="keep=True"):
        engine.backward(torch.zeros(2, 3, 7))


def c51_batch(n: int, seed: int) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(n, 5, generator=g),
        action=torch.randint(0, 3, (n,), generator=g),
        # rewards past both edges of the support [-3, 3]: clipped projections
        reward=torch.randn(n, generator=g) * 3,
        next_obs=torch.randn(n, 5, generator=g),
        discount=torch.where(torch.rand(n, generator=g) < 0.2, 0.0, 0.9),
        weights=torch.rand(n, generator=g) + 0.5,
        indices=np.arange(n),
    )


def c51_pair(layout: str, **kwargs) -> tuple[DQNLearner, DQNLearner]:
    """An autograd learner and a hand-written one on identical copies of one net."""
    net = net_of(layout)
    out = []
    for manual in (False, True):
        online = copy.deepcopy(net)
        opt = torch.optim.Adam(online.parameters(), lr=1e-2, fused=True)
        out.append(DQNLearner(online, opt, manual_gradients=manual, **kwargs))
    assert isinstance(out[0]._updater, AutogradUpdater)
    assert isinstance(out[1]._updater, ManualC51Updater) and out[1].manual_gradients
    return out[0], out[1]


def assert_same(outs_a, outs_b) -> None:
    assert len(outs_a) == len(outs_b)
    for a, b in zip(outs_a, outs_b, strict=True):
        np.testing.assert_allclose(a.priorities, b.priorities, rtol=1e-4, atol=1e-5)
        assert a.metrics.keys() == b.metrics.keys()
        for key in a.metrics:
            assert a.metrics[key] == pytest.approx(b.metrics[key], rel=1e-4, abs=1e-5), key


def run_both(ref: DQNLearner, fast: DQNLearner, rounds: int = 3) -> list:
    """Updates of both learners on the same batches with the same noise draws."""
    outs = []
    for k in range(rounds):
        batch = c51_batch(2 * 16, seed=k)
        for learner_outs in (ref, fast):
            torch.manual_seed(100 + k)  # the same noise draws in both
            learner_outs._last = [*learner_outs.update_many(batch, 2), learner_outs.update(batch)]
        assert_same(ref._last, fast._last)
        outs += ref._last
        ref.sync_target()
        fast.sync_target()
    for a, b in zip(ref.online.parameters(), fast.online.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(ref.target.state_dict().values(), fast.target.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    return outs


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_c51_updates_match_autograd_for_every_layout(layout):
    ref, fast = c51_pair(layout, max_grad_norm=0.05)  # clipping active
    outs = run_both(ref, fast)
    assert any(o.metrics["grad_norm"] > 0.05 for o in outs)
    assert ref.updates == fast.updates == 9


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(double_q=False),
        dict(c51_priority="cross_entropy"),
        dict(noise_cadence="per_update"),
        dict(reset_noise=False),  # a fixed target: update_many's one target forward
        dict(use_target_network=False),
        dict(target_tau=0.5),
        dict(max_grad_norm=None),
    ],
    ids=str,
)
def test_c51_updates_match_autograd_for_every_switch(kwargs):
    ref, fast = c51_pair("noisy dueling, 1 torso layer", **kwargs)
    run_both(ref, fast)


def test_c51_priorities_follow_the_priority_switch():
    # KL(m || p) = CE(m, p) - H(m): the two switches differ by the target's entropy
    _, kl = c51_pair("noisy dueling, 1 torso layer", reset_noise=False)
    _, ce = c51_pair(
        "noisy dueling, 1 torso layer", reset_noise=False, c51_priority="cross_entropy"
    )
    batch = c51_batch(16, seed=0)
    a, b = kl.update(batch), ce.update(batch)
    assert np.all(b.priorities >= a.priorities - 1e-6)
    assert np.any(b.priorities > a.priorities + 1e-3)
    # the loss is the cross-entropy either way; its weighted mean is the reported loss
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-6)
