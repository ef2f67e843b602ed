"""The overestimation metric on toy environments whose true values are known."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from rlkit.agent.nn import QNetwork
from rlkit.agent.policy import EpsilonGreedy
from rlkit.envs import GymnasiumVecEnv
from rlkit.loops.evaluate import counted_states, discounted_returns_to_go
from rlkit.loops.evaluate import evaluate as evaluate_policy
from tests.fakes import CountingEnv


class ConstantRewardEnv(CountingEnv):
    """Reward 1 every step; terminates (or truncates) after ``length`` steps."""

    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, 1.0, terminated, truncated, info


def constant_q_net(value: float, atoms: int = 1) -> QNetwork:
    net = QNetwork(
        (2,), 2, hidden_sizes=(), dueling=False, noisy=False, atoms=atoms, v_min=-10, v_max=10
    )
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        if atoms == 1:
            net.head.stream.bias.fill_(value)
    return net


def evaluate(net, envs, episodes, *, device, seed, gamma):
    """Greedy evaluation of ``net`` on a Gymnasium vector env (through the VecEnv adapter)."""
    policy = EpsilonGreedy(net, 2, device, np.random.default_rng(0), evaluation=True)
    return evaluate_policy(policy, GymnasiumVecEnv(envs), episodes, seed=seed, gamma=gamma)


def test_returns_to_go_hand_computed():
    np.testing.assert_allclose(
        discounted_returns_to_go(np.array([1.0, 1.0, 1.0]), 0.5), [1.75, 1.5, 1.0]
    )


def test_overestimation_of_a_constant_q_on_a_terminating_episode():
    gamma, length = 0.9, 4
    envs = gym.vector.SyncVectorEnv(
        [lambda: ConstantRewardEnv(length)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    result = evaluate(constant_q_net(5.0), envs, 2, device=torch.device("cpu"), seed=0, gamma=gamma)
    # true values: G_t = (1 - gamma^(L - t)) / (1 - gamma) for t = 0..3
    true = [(1 - gamma ** (length - t)) / (1 - gamma) for t in range(length)]
    assert result.return_discounted == pytest.approx(true * 2)
    assert result.q_pred == pytest.approx([5.0] * 8)
    assert result.overestimation == pytest.approx(5.0 - np.mean(true))
    assert result.scalars()["eval/overestimation"] == pytest.approx(5.0 - np.mean(true))


def test_truncated_episodes_count_only_states_with_a_full_horizon():
    # gamma 0.5, tolerance 0.01: horizon = ceil(log 0.01 / log 0.5) = 7 steps
    assert counted_states(10, truncated=True, gamma=0.5, tail_tolerance=0.01) == 3
    assert counted_states(10, truncated=False, gamma=0.5, tail_tolerance=0.01) == 10
    assert counted_states(5, truncated=True, gamma=0.5, tail_tolerance=0.01) == 0
    envs = gym.vector.SyncVectorEnv(
        [lambda: ConstantRewardEnv(10, truncate=True)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    # A perfect estimate of the infinite-horizon value 1/(1-gamma) = 2 shows (almost) no
    # overestimation, although the truncated realised returns near the end are smaller.
    result = evaluate(constant_q_net(2.0), envs, 1, device=torch.device("cpu"), seed=0, gamma=0.5)
    assert len(result.q_pred) == 3
    assert 0 < result.overestimation < 0.01 * 2


def test_distributional_net_uses_expected_value():
    envs = gym.vector.SyncVectorEnv(
        [lambda: ConstantRewardEnv(3)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    # all-zero logits: uniform over a symmetric support -> expected value 0
    result = evaluate(
        constant_q_net(0.0, atoms=11), envs, 1, device=torch.device("cpu"), seed=0, gamma=0.5
    )
    assert result.q_pred == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert result.overestimation == pytest.approx(-np.mean([1.75, 1.5, 1.0]))
