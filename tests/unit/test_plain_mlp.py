"""Fast paths for plain MLP Q-networks, checked against autograd and torch.optim."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import QNetwork
from rlkit.agent.nn.plain_mlp import NumpyGreedy, PlainMLPGrad, plain_mlp_layers
from rlkit.agent.optim import AdamStep
from rlkit.agent.updaters import ManualC51Updater
from rlkit.types import Batch


def plain_net(head_hidden: int = 0, seed: int = 0, obs_shape=(4,)) -> QNetwork:
    torch.manual_seed(seed)
    return QNetwork(
        obs_shape,
        3,
        hidden_sizes=(16, 8),
        dueling=False,
        noisy=False,
        atoms=1,
        head_hidden=head_hidden,
    )


def make_batch(n: int, seed: int, obs_dim: int = 4) -> Batch:
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(n, obs_dim, generator=g),
        action=torch.randint(0, 3, (n,), generator=g),
        reward=torch.randn(n, generator=g) * 3,  # some |td| > 1: both Huber branches
        next_obs=torch.randn(n, obs_dim, generator=g),
        discount=torch.where(torch.rand(n, generator=g) < 0.2, 0.0, 0.97),
        weights=torch.rand(n, generator=g) + 0.5,
        indices=np.arange(n),
    )


@pytest.mark.parametrize(
    "kwargs, plain",
    [
        ({}, True),
        ({"head_hidden": 8}, True),
        ({"noisy": True}, False),
        ({"dueling": True}, False),
        ({"atoms": 5, "v_min": 0.0, "v_max": 1.0}, False),
    ],
)
def test_which_networks_qualify(kwargs, plain):
    base = {"dueling": False, "noisy": False, "atoms": 1}
    net = QNetwork((4,), 2, hidden_sizes=(8,), **{**base, **kwargs})
    assert (plain_mlp_layers(net) is not None) == plain
    if not plain:
        with pytest.raises(ValueError):
            PlainMLPGrad(net)


@pytest.mark.parametrize("head_hidden", [0, 8])
def test_manual_backward_matches_autograd(head_hidden):
    net = plain_net(head_hidden)
    obs = torch.randn(10, 4)
    dq = torch.randn(10, 3)
    (net(obs) * dq).sum().backward()
    expected = [p.grad.clone() for p in net.parameters()]
    for p in net.parameters():
        p.grad = None
    manual = PlainMLPGrad(net)
    q = manual.forward(obs)
    torch.testing.assert_close(q, net(obs).detach())
    manual.backward(dq)
    for p, g in zip(net.parameters(), expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)
    flat = torch.cat([p.grad.reshape(-1) for p in net.parameters()])
    assert torch.equal(torch.sort(flat).values, torch.sort(manual.flat_grad).values)


def test_manual_backward_reattaches_grads_after_zero_grad():
    net = plain_net()
    manual = PlainMLPGrad(net)
    obs, dq = torch.randn(5, 4), torch.randn(5, 3)
    manual.forward(obs)
    manual.backward(dq)
    first = [p.grad.clone() for p in net.parameters()]
    torch.optim.SGD(net.parameters(), lr=0.1).zero_grad(set_to_none=True)
    assert not manual.grads_attached()
    manual.forward(obs)
    manual.backward(dq)
    assert manual.grads_attached()
    for p, g in zip(net.parameters(), first):
        torch.testing.assert_close(p.grad, g)


def test_manual_forward_scales_uint8_like_the_network():
    net = plain_net(obs_shape=(2, 2))
    obs = torch.randint(0, 256, (6, 2, 2), dtype=torch.uint8)
    torch.testing.assert_close(PlainMLPGrad(net).forward(obs), net(obs).detach())


def test_numpy_greedy_matches_torch_and_follows_updates():
    net = plain_net(head_hidden=8)
    greedy = NumpyGreedy(net)
    assert NumpyGreedy.supports(net)
    obs = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    expected = net(torch.from_numpy(obs)).argmax(1).numpy()
    np.testing.assert_array_equal(greedy(obs), expected)
    # in-place changes (optimizer steps, load_state_dict) are seen without any sync
    other = plain_net(head_hidden=8, seed=1)
    net.load_state_dict(other.state_dict())
    np.testing.assert_array_equal(greedy(obs), other(torch.from_numpy(obs)).argmax(1).numpy())
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    net(torch.from_numpy(obs))[:, 0].sum().backward()
    opt.step()
    np.testing.assert_array_equal(greedy(obs), net(torch.from_numpy(obs)).argmax(1).numpy())
    assert not NumpyGreedy.supports(QNetwork((4,), 2, hidden_sizes=(8,), noisy=True))


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_adam_step_is_bit_identical_to_optimizer_step(device):
    nets = [plain_net().to(device), plain_net().to(device)]
    opts = [torch.optim.Adam(n.parameters(), lr=1e-2, eps=1e-4, fused=True) for n in nets]
    step = AdamStep(opts[1])
    assert step.direct
    for k in range(5):
        obs = torch.randn(8, 4, generator=torch.Generator().manual_seed(k)).to(device)
        for net, opt in zip(nets, opts):
            opt.zero_grad()
            net(obs).pow(2).sum().backward()
        opts[0].step()
        step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)
    sa, sb = opts[0].state_dict()["state"], opts[1].state_dict()["state"]
    for k in sa:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[k][key], sb[k][key])


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda p: torch.optim.Adam(p, lr=1e-2),  # not fused
        lambda p: torch.optim.Adam(p, lr=1e-2, fused=True, amsgrad=True),
        lambda p: torch.optim.SGD(p, lr=1e-2),
    ],
)
def test_adam_step_falls_back_to_optimizer_step(make_opt):
    nets = [plain_net(), plain_net()]
    opts = [make_opt(n.parameters()) for n in nets]
    step = AdamStep(opts[1])
    assert not step.direct
    for net in nets:
        net(torch.ones(2, 4)).sum().backward()
    opts[0].step()
    step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(a, b)


def learner_pair(**kwargs) -> tuple[DQNLearner, DQNLearner]:
    out = []
    for manual in (False, True):
        net = plain_net(head_hidden=8)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, fused=True)
        out.append(DQNLearner(net, opt, manual_gradients=manual, **kwargs))
    assert not out[0].manual_gradients and out[1].manual_gradients
    return out[0], out[1]


def assert_same_outputs(outs_a, outs_b) -> None:
    assert len(outs_a) == len(outs_b)
    for a, b in zip(outs_a, outs_b):
        np.testing.assert_allclose(a.priorities, b.priorities, rtol=1e-4, atol=1e-5)
        for key in ("loss", "q_mean", "td_abs_mean", "grad_norm"):
            assert a.metrics[key] == pytest.approx(b.metrics[key], rel=1e-4, abs=1e-5), key


@pytest.mark.parametrize("double_q", [True, False])
@pytest.mark.parametrize("loss", ["huber", "mse"])
@pytest.mark.parametrize("use_target_network", [True, False])
@pytest.mark.parametrize("target_tau", [1.0, 0.5])
def test_manual_learner_matches_autograd_learner(double_q, loss, use_target_network, target_tau):
    kwargs = dict(
        double_q=double_q,
        loss=loss,
        use_target_network=use_target_network,
        target_tau=target_tau,
        max_grad_norm=1.0,  # clipping active
    )
    ref, fast = learner_pair(**kwargs)
    for k in range(3):
        batch = make_batch(4 * 16, seed=k)
        assert_same_outputs(ref.update_many(batch, 4), fast.update_many(batch, 4))
        assert_same_outputs([ref.update(batch)], [fast.update(batch)])
        ref.sync_target()
        fast.sync_target()
    assert ref.updates == fast.updates == 15
    for a, b in zip(ref.online.parameters(), fast.online.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for a, b in zip(ref.target.parameters(), fast.target.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_sync_target_skips_only_when_nothing_changed():
    _, learner = learner_pair()
    learner.target.load_state_dict(copy.deepcopy(plain_net(head_hidden=8, seed=3).state_dict()))
    learner.sync_target()  # no update since the (implicit) first sync: nothing is copied
    assert not torch.equal(
        learner.target.head.stream[0].weight, learner.online.head.stream[0].weight
    )
    learner.update(make_batch(16, seed=0))
    learner.sync_target()
    for a, b in zip(learner.online.parameters(), learner.target.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("fast", [True, False])
def test_build_uses_the_fast_paths_where_they_apply(fast):
    from rlkit.build import build
    from rlkit.config import load_config

    class NullLogger:
        def log(self, env_steps, scalars):
            pass

        def close(self):
            pass

    threads = torch.get_num_threads()
    try:
        sets = ["trainer.device=cpu", f"trainer.fast_mlp={str(fast).lower()}"]
        configs = Path(__file__).resolve().parents[2] / "configs"
        dqn = build(load_config(configs / "cartpole_dqn.yaml", sets), NullLogger())
        rainbow = build(load_config(configs / "cartpole_rainbow.yaml", sets), NullLogger())
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)
    assert dqn.learner.manual_gradients == fast
    assert isinstance(dqn.trainer.collector.policy.greedy_fn, NumpyGreedy) == fast
    # Rainbow's noisy dueling C51 MLP: the hand-written C51 backward; acting via torch
    assert rainbow.learner.manual_gradients == fast
    assert isinstance(rainbow.learner._updater, ManualC51Updater) == fast
    assert rainbow.trainer.collector.policy.greedy_fn is None
    assert dqn.learner._optimizer_step.direct  # fused Adam on CPU
    dqn.close()
    rainbow.close()
