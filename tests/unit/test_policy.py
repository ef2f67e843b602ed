"""EpsilonGreedy: its own network copy, load_params, the epsilon schedule, noise rules."""

import copy

import numpy as np
import pytest
import torch

from rlkit.agent.builder import build_policy
from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import NoisyLinear, QNetwork
from rlkit.agent.nn.plain_mlp import NumpyGreedy
from rlkit.agent.policy import EpsilonGreedy
from rlkit.agent.schedules import LinearSchedule
from rlkit.config import load_config

CPU = torch.device("cpu")
OBS = np.zeros((3, 1), dtype=np.float32)


def bias_net(bias: list[float], noisy: bool = False) -> QNetwork:
    """Q(s, .) = ``bias`` for every s (1-d observations, no hidden layers, W = 0)."""
    net = QNetwork((1,), len(bias), hidden_sizes=(), dueling=False, noisy=noisy)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        if noisy:
            net.head.stream.bias_mu.copy_(torch.tensor(bias))
        else:
            net.head.stream.bias.copy_(torch.tensor(bias))
    return net


def policy_of(net: QNetwork, **kwargs) -> EpsilonGreedy:
    return EpsilonGreedy(
        copy.deepcopy(net), net.num_actions, CPU, np.random.default_rng(0), **kwargs
    )


@pytest.mark.parametrize("numpy_greedy", [False, True])
def test_load_params_copies_values_and_the_policy_waits_for_it(numpy_greedy):
    learner_net = bias_net([1.0, 2.0])
    policy = policy_of(learner_net)
    if numpy_greedy:
        policy.greedy_fn = NumpyGreedy(policy.net)
    assert not policy.has_params
    np.testing.assert_array_equal(policy.act(OBS), [1, 1, 1])  # argmax [1, 2]
    with torch.no_grad():  # the learner's net moves (in place, as an optimizer step does)
        learner_net.head.stream.bias.copy_(torch.tensor([3.0, 0.0]))
    np.testing.assert_array_equal(policy.act(OBS), [1, 1, 1])  # still the old values
    np.testing.assert_allclose(policy.q_values(OBS[:1]), [[1.0, 2.0]])
    policy.load_params(learner_net.state_dict())
    assert policy.has_params
    np.testing.assert_array_equal(policy.act(OBS), [0, 0, 0])  # argmax [3, 0]
    np.testing.assert_allclose(policy.q_values(OBS[:1]), [[3.0, 0.0]])
    with torch.no_grad():  # a copy, not a link: later moves are not seen
        learner_net.head.stream.bias.copy_(torch.tensor([0.0, 5.0]))
    np.testing.assert_array_equal(policy.act(OBS), [0, 0, 0])
    assert policy.net.head.stream.bias.data_ptr() != learner_net.head.stream.bias.data_ptr()


def test_load_params_from_a_learner_and_wrong_keys():
    torch.manual_seed(0)
    net = QNetwork((1,), 2, hidden_sizes=(4,), noisy=True)
    learner = DQNLearner(net, torch.optim.Adam(net.parameters()))
    policy = policy_of(net)
    params = learner.params()
    assert params["head.value.bias_mu"].data_ptr() == net.head.value.bias_mu.data_ptr()  # live
    with torch.no_grad():
        net.head.value.eps_out.fill_(0.25)  # noise buffers travel too
        net.head.value.bias_mu.fill_(-1.5)
    policy.load_params(learner.params())
    assert torch.equal(policy.net.head.value.eps_out, torch.full((1,), 0.25))
    assert torch.equal(policy.net.head.value.bias_mu, torch.full((1,), -1.5))
    with pytest.raises(ValueError, match=r"missing keys \['head.value.bias_mu'\]"):
        policy.load_params({k: v for k, v in params.items() if k != "head.value.bias_mu"})


def test_epsilon_at_follows_the_schedule_and_act_uses_it():
    policy = policy_of(bias_net([0.0, 1.0, 0.0]), epsilon=LinearSchedule(1.0, 0.0, 100))
    # 1 + (25 / 100) * (0 - 1) = 0.75; 1 - 0.6 = 0.4; from step 100 on: 0
    assert [policy.epsilon_at(s) for s in (0, 25, 60, 100, 500)] == pytest.approx(
        [1.0, 0.75, 0.4, 0.0, 0.0]
    )
    assert policy_of(bias_net([0.0, 1.0]), epsilon=0.3).epsilon_at(10**6) == 0.3
    # epsilon 1 at step 0: every action is rng.integers(0, 3, 3) after rng.random(3)
    twin = np.random.default_rng(0)
    twin.random(3)
    np.testing.assert_array_equal(policy.act(OBS, env_steps=0), twin.integers(0, 3, size=3))
    # epsilon 0 at step 100: greedy (action 1) and no draw from the rng
    state = copy.deepcopy(policy.rng.bit_generator.state)
    np.testing.assert_array_equal(policy.act(OBS, env_steps=100), [1, 1, 1])
    assert policy.rng.bit_generator.state == state


def count_resets(policy: EpsilonGreedy, monkeypatch) -> list[int]:
    calls: list[int] = []
    draw = policy.net.reset_noise
    monkeypatch.setattr(policy.net, "reset_noise", lambda *a, **k: (calls.append(1), draw())[1])
    return calls


def test_warm_up_draws_once_per_act_until_the_first_load(monkeypatch):
    net = bias_net([0.0, 1.0], noisy=True)
    policy = policy_of(net, epsilon=1.0)  # the net never runs: all actions explore
    calls = count_resets(policy, monkeypatch)
    for _ in range(3):
        policy.act(OBS)
    assert len(calls) == 3  # one draw per act call, whether or not the net runs
    policy.load_params(net.state_dict())
    policy.act(OBS)
    policy.epsilon = LinearSchedule(0.0, 0.0, 0)  # now the net runs: still no draw
    policy.act(OBS)
    assert len(calls) == 3


def test_resample_noise_draws_before_every_acting_forward_only(monkeypatch):
    net = bias_net([0.0, 1.0], noisy=True)
    policy = policy_of(net, epsilon=1.0, resample_noise=True)
    calls = count_resets(policy, monkeypatch)
    policy.act(OBS)  # every env explores: no forward, no draw
    assert calls == []
    policy.load_params(net.state_dict())
    policy.epsilon = LinearSchedule(0.0, 0.0, 0)
    policy.act(OBS)
    policy.act_with_q(OBS)
    assert len(calls) == 2  # one per forward


def test_evaluation_mode_acts_with_the_noisy_means(monkeypatch):
    net = bias_net([1.0, -1.0], noisy=True)
    with torch.no_grad():
        layer = net.head.stream
        assert isinstance(layer, NoisyLinear)
        layer.bias_sigma.fill_(10.0)
        layer.eps_out.copy_(torch.tensor([-1.0, 1.0]))  # noisy bias: [1 - 10, -1 + 10]
    train = policy_of(net)
    train.load_params(net.state_dict())
    np.testing.assert_allclose(train.q_values(OBS[:1]), [[-9.0, 9.0]])
    policy = policy_of(net, resample_noise=True, evaluation=True)
    calls = count_resets(policy, monkeypatch)
    assert not policy.net.training and not policy.resample_noise
    action, q = policy.act_with_q(OBS)
    np.testing.assert_array_equal(action, [0, 0, 0])  # means: Q = bias_mu = [1, -1]
    np.testing.assert_allclose(q, [1.0, 1.0, 1.0])
    policy.act(OBS)
    assert calls == []  # no warm-up draws and no resampling in evaluation


def test_build_policy_copies_the_net_and_wires_the_config():
    net = bias_net([0.0, 1.0])
    eps = ["exploration.epsilon_start=0.5", "exploration.epsilon_end=0.1"]
    config = load_config(None, [*eps, "exploration.epsilon_steps=1000"])
    policy = build_policy(config, net, 2, CPU)
    assert policy.net is not net and isinstance(policy.greedy_fn, NumpyGreedy)
    # linear: 0.5 + (500 / 1000) * (0.1 - 0.5) = 0.3
    assert (policy.epsilon_at(0), policy.epsilon_at(500)) == pytest.approx((0.5, 0.3))
    expected = np.random.default_rng(config.trainer.seed + 1).random(2)
    np.testing.assert_array_equal(policy.rng.random(2), expected)
    evaluation = build_policy(config, net, 2, CPU, evaluation=True)
    assert evaluation.net is not net and evaluation.greedy_fn is None
    assert not evaluation.net.training and net.training
    assert evaluation.epsilon_at(0) == config.eval.epsilon
    expected = np.random.default_rng(config.trainer.seed + 2).random(2)
    np.testing.assert_array_equal(evaluation.rng.random(2), expected)
