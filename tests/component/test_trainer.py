"""Trainer cadence on a fake env: update, sync, eval and log counts follow the glossary."""

import copy

import numpy as np
import pytest
import torch

from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import QNetwork
from rlkit.agent.replay import NStepAccumulator, ReplayBuffer
from rlkit.agent.schedules import ConstantSchedule, LinearSchedule
from rlkit.envs import GymnasiumVecEnv
from rlkit.loops.collector import Collector, EpsilonGreedy
from rlkit.loops.evaluate import EvalResult
from rlkit.loops.sync import Cadence, NumericalError, Trainer, crossings
from tests.fakes import CountingEnv


class ListLogger:
    def __init__(self):
        self.points = []

    def log(self, env_steps, scalars):
        self.points.append((env_steps, dict(scalars)))

    def close(self):
        pass


def test_crossings():
    assert crossings(0, 1, 1) == 1
    assert crossings(9, 10, 10) == 1
    assert crossings(10, 19, 10) == 0
    assert crossings(7, 25, 10) == 2
    assert crossings(0, 100, 0) == 0


def make_trainer(num_envs=2, lr=1e-3, **cadence_kwargs):
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode

    torch.manual_seed(0)
    envs = gym.vector.SyncVectorEnv(
        [lambda: CountingEnv(5, truncate=True) for _ in range(num_envs)],
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    net = QNetwork((2,), 2, hidden_sizes=(16,), noisy=False, dueling=False)
    learner = DQNLearner(net, torch.optim.Adam(net.parameters(), lr=lr), double_q=True)
    evals = []

    def run_eval(index):
        evals.append(index)
        return EvalResult([1.0, 3.0], [5, 5])

    logger = ListLogger()
    defaults = dict(
        total_steps=100,
        learning_starts=20,
        train_every=4,
        updates_per_train=3,
        batch_size=8,
        target_update_period=10,
        target_tau=1.0,
        eval_every=50,
        checkpoint_every=0,
        log_every=25,
    )
    defaults.update(cadence_kwargs)
    trainer = Trainer(
        collector=Collector(
            GymnasiumVecEnv(envs),
            EpsilonGreedy(
                copy.deepcopy(net),  # the policy acts with its own copy
                2,
                torch.device("cpu"),
                np.random.default_rng(0),
                epsilon=LinearSchedule(1.0, 0.1, 50),
            ),
        ),
        nstep=NStepAccumulator(2, 0.9, num_envs=num_envs),
        replay=ReplayBuffer(1000, (2,), seed=0),
        learner=learner,
        beta=ConstantSchedule(0.4),
        cadence=Cadence(**defaults),
        logger=logger,
        evaluate=run_eval,
        seed=0,
    )
    return trainer, logger, evals


def test_cadence_counts():
    trainer, logger, evals = make_trainer()
    counters = trainer.run()
    assert counters.env_steps == 100
    # two envs: env steps 2, 4, ..., 100. Training phases at multiples of 4 from 20 on:
    # 20, 24, ..., 100 -> 21 phases x 3 updates
    assert counters.updates == 21 * 3
    # target syncs at multiples of 10 once updates have started: 20, 30, ..., 100
    assert counters.target_syncs == 9
    # evaluation at 50 (not at 100 because training ends there) + the final evaluation
    assert evals == [0, 1]
    eval_points = [s for s, p in logger.points if "eval/return_mean" in p]
    assert eval_points == [50, 100]
    log_points = [s for s, p in logger.points if "perf/sps" in p]
    assert log_points == [26, 50, 76, 100]
    point = dict(logger.points)[50]
    assert point["eval/return_mean"] == 2.0 and point["eval/return_std"] == 1.0
    # 2-step windows from 5-step truncated episodes: every env step yields one transition
    assert len(trainer.replay) == 100
    logged = [p for _, p in logger.points if "train/loss" in p]
    assert logged and all(np.isfinite(p["train/loss"]) for p in logged)
    assert {
        "train/q_mean",
        "train/td_abs_mean",
        "train/grad_norm",
        "explore/epsilon",
        "replay/beta",
    } <= set(logged[-1])
    assert all(
        p["train/episode_return"] == 15.0 for _, p in logger.points if "train/episode_return" in p
    )


def test_nan_loss_stops_with_a_message_naming_the_step():
    trainer, _, _ = make_trainer(lr=1e30)
    with torch.no_grad():
        for p in trainer.learner.online.parameters():
            p.fill_(float("nan"))
    with pytest.raises(NumericalError, match=r"at env step \d+"):
        trainer.run()


def test_nan_parameter_is_named():
    trainer, _, _ = make_trainer()
    name, param = next(iter(trainer.learner.online.named_parameters()))
    with torch.no_grad():
        param.view(-1)[0] = float("inf")
    with pytest.raises(NumericalError, match=rf"parameter {name} holds NaN/Inf at env step 0"):
        trainer._check_parameters()
