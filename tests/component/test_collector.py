"""Collector and evaluation on fake vector envs behind the VecEnv protocol: final
observations, both Gymnasium autoreset modes (normalised by the adapter), episode stats."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from rlkit.agent.nn import QNetwork
from rlkit.envs import GymnasiumVecEnv
from rlkit.loops.collector import Collector, EpsilonGreedy
from rlkit.loops.evaluate import episode_quotas, evaluate
from tests.fakes import CountingEnv


def make(mode: AutoresetMode, lengths=(3, 2)) -> GymnasiumVecEnv:
    fns = [lambda n=n, i=i: CountingEnv(n, tag=i) for i, n in enumerate(lengths)]
    return GymnasiumVecEnv(gym.vector.SyncVectorEnv(fns, autoreset_mode=mode))


def policy_for(epsilon: float = 1.0, **kwargs) -> EpsilonGreedy:
    net = QNetwork((2,), 2, hidden_sizes=(8,), noisy=False, dueling=False)
    return EpsilonGreedy(
        net, 2, torch.device("cpu"), np.random.default_rng(0), epsilon=epsilon, **kwargs
    )


def collector_for(envs) -> Collector:
    return Collector(envs, policy_for(1.0))


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_both_autoreset_modes_give_true_final_obs_and_episode_stats(mode):
    collector = collector_for(make(mode))
    collector.reset(seed=0)
    steps = [collector.step(0) for _ in range(6)]
    assert all(s.valid.all() for s in steps)  # NEXT_STEP too: the adapter resets at once
    # env 0 (length 3): obs t = 0,1,2 then 0,1,2 ; next_obs t = 1,2,3 (true final obs 3)
    assert [s.obs[0, 0] for s in steps] == [0, 1, 2, 0, 1, 2]
    assert [s.next_obs[0, 0] for s in steps] == [1, 2, 3, 1, 2, 3]
    assert [s.next_obs[1, 0] for s in steps] == [1, 2, 1, 2, 1, 2]
    assert [bool(s.terminated[0]) for s in steps] == [False, False, True, False, False, True]
    # returns: env 0 = 1+2+3 = 6 (len 3), env 1 = 1+2 = 3 (len 2)
    ended = [(r, n) for s in steps for r, n in zip(s.episode_returns, s.episode_lengths)]
    assert sorted(ended) == [(3.0, 2)] * 3 + [(6.0, 3)] * 2


def test_next_step_episode_stats_count_real_steps_only():
    collector = collector_for(make(AutoresetMode.NEXT_STEP, lengths=(3,)))
    collector.reset(seed=0)
    steps = [collector.step(0) for _ in range(8)]
    # steps: 3 real (rewards 1, 2, 3), the next episode's 3, then 2 of a third
    ended = [(r, n) for s in steps for r, n in zip(s.episode_returns, s.episode_lengths)]
    assert ended == [(6.0, 3), (6.0, 3)]  # 1 + 2 + 3 over 3 steps
    assert [bool(s.episode_end[0]) for s in steps] == [False, False, True] * 2 + [False] * 2
    assert [s.obs[0, 0] for s in steps] == [0, 1, 2, 0, 1, 2, 0, 1]


def test_epsilon_one_is_uniform_and_zero_is_greedy():
    greedy_policy, random_policy = policy_for(0.0), policy_for(1.0)
    obs = np.zeros((1000, 2), dtype=np.float32)
    greedy = greedy_policy.net(torch.as_tensor(obs)).argmax(1).numpy()
    assert (greedy_policy.act(obs, 0) == greedy).all()
    frac_ones = random_policy.act(obs, 0).mean()
    assert 0.45 < frac_ones < 0.55


def test_episode_quotas_split_evenly():
    assert episode_quotas(10, 4).tolist() == [3, 3, 2, 2]
    assert episode_quotas(3, 3).tolist() == [1, 1, 1]


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_evaluate_runs_exact_episode_count_with_the_noisy_means(mode):
    envs = make(mode, lengths=(3, 5))
    net = QNetwork((2,), 2, hidden_sizes=(8,), noisy=True)
    net.train()
    modes: list[bool] = []
    net.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    policy = EpsilonGreedy(net, 2, torch.device("cpu"), np.random.default_rng(0), evaluation=True)
    result = evaluate(policy, envs, 5, seed=0)
    assert modes and not any(modes)  # every forward pass used the noisy layers' means
    assert len(result.returns) == 5
    # quotas: env 0 (length 3, return 6) runs 3 episodes, env 1 (length 5, return 15) runs 2
    assert sorted(result.returns) == [6.0, 6.0, 6.0, 15.0, 15.0]
    assert sorted(result.lengths) == [3, 3, 3, 5, 5]


def lives_collector(mode: AutoresetMode) -> Collector:
    from tests.integration.envs import LivesEnv

    envs = gym.vector.SyncVectorEnv([lambda: LivesEnv(lives=2, life_length=3)], autoreset_mode=mode)
    return collector_for(GymnasiumVecEnv(envs))


@pytest.mark.parametrize("mode", [AutoresetMode.SAME_STEP, AutoresetMode.NEXT_STEP])
def test_a_lost_life_is_a_learning_terminal_inside_one_episode(mode):
    collector = lives_collector(mode)
    collector.reset(seed=0)
    steps = [collector.step(0) for _ in range(6)]
    # life lost at t = 3 (game goes on: next obs continues at t = 3), game over at t = 6
    assert [bool(s.terminated[0]) for s in steps] == [False, False, True, False, False, True]
    assert [bool(s.episode_end[0]) for s in steps] == [False] * 5 + [True]
    assert [float(s.next_obs[0, 0]) for s in steps] == [1, 2, 3, 4, 5, 6]
    assert steps[-1].episode_returns == [6.0] and steps[-1].episode_lengths == [6]
