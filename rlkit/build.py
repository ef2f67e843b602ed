"""The composition root: one config -> envs, agent roles and the loop, ready to run.

The agent's roles come from ``rlkit.agent.builder`` and the envs from
``rlkit.envs.builder``; this module only puts them together and decides the evaluation
seeds. Each switch is read by the builder of its layer and nowhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from rlkit.agent.builder import (
    available_memory,
    build_beta,
    build_epsilon,
    build_learner,
    build_network,
    build_policy,
    build_replay,
    check_replay_fits,
    cpu_has_native_bf16,
    dedup_frames,
    frames_on_device,
    make_optimizer,
    precision_warning,
    replay_bytes,
    resolve_device,
)
from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import QNetwork
from rlkit.agent.policy import EpsilonGreedy
from rlkit.agent.replay import NStepAccumulator, ReplayBuffer
from rlkit.config import Config, ConfigError
from rlkit.distributed import ddp
from rlkit.envs import VecEnv, layout_of, space_info
from rlkit.envs.builder import make_envs
from rlkit.loops.collector import Collector
from rlkit.loops.evaluate import EvalResult, evaluate
from rlkit.loops.sync import Cadence, Trainer
from rlkit.malloc import hold_freed_memory
from rlkit.support import resolve as resolve_support
from rlkit.types import Logger

__all__ = [
    "EVAL_SEED_OFFSET",
    "Components",
    "available_memory",
    "build",
    "build_beta",
    "build_cadence",
    "build_epsilon",
    "build_learner",
    "build_network",
    "build_policy",
    "build_replay",
    "check_replay_fits",
    "cpu_has_native_bf16",
    "dedup_frames",
    "eval_seed",
    "frames_on_device",
    "loop_class",
    "make_envs",
    "make_optimizer",
    "precision_warning",
    "replay_bytes",
    "resolve_device",
]

EVAL_SEED_OFFSET = 1_000_003


def eval_seed(config: Config, index: int) -> int:
    """Env seed of the ``index``-th evaluation (0-based) of a run."""
    return config.trainer.seed + EVAL_SEED_OFFSET + 1000 * index


def rank_config(config: Config) -> Config:
    """``config`` for this data-parallel rank (``rlkit.distributed.ddp``): seed
    ``trainer.seed + 1000 * rank`` and ``learner.batch_size / world_size`` per rank;
    unchanged in a single process. ConfigError when the batch does not split evenly."""
    ranks = ddp.world_size()
    if ranks == 1:
        return config
    batch = config.learner.batch_size
    if batch % ranks:
        raise ConfigError(f"learner.batch_size: {batch} does not split over {ranks} ranks")
    return dataclasses.replace(
        config,
        trainer=dataclasses.replace(config.trainer, seed=config.trainer.seed + 1000 * ddp.rank()),
        learner=dataclasses.replace(config.learner, batch_size=batch // ranks),
    )


def _rank_learner(config: Config, network: QNetwork, device: torch.device) -> DQNLearner:
    """The learner; on data-parallel ranks with the gradient all-reduce, starting from
    rank 0's weights."""
    if ddp.world_size() == 1:
        return build_learner(config, network, device)
    learner = build_learner(config, network, device, grad_sync=ddp.GradAllReduce())
    ddp.broadcast_module(learner.online)
    ddp.broadcast_module(learner.target)
    return learner


def build_cadence(config: Config) -> Cadence:
    t, lc = config.trainer, config.learner
    return Cadence(
        total_steps=t.total_steps,
        learning_starts=t.learning_starts,
        train_every=t.train_every,
        updates_per_train=t.updates_per_train,
        batch_size=lc.batch_size,
        target_update_period=lc.target_update_period,
        target_tau=lc.target_tau,
        eval_every=config.eval.every,
        checkpoint_every=t.checkpoint_every,
        log_every=t.log_every,
    )


def loop_class(config: Config) -> Callable[..., Trainer]:
    """The loop of ``trainer.mode``: the sync ``Trainer``, or the async one with its
    settings bound (same constructor arguments otherwise)."""
    t = config.trainer
    if t.mode == "sync":
        return Trainer
    from rlkit.loops.asynchronous import AsyncTrainer

    return partial(AsyncTrainer, actor_lag=t.actor_lag, publish_every=t.publish_every)


@dataclass
class Components:
    """Everything a training run is made of, built from one config."""

    config: Config
    device: torch.device
    envs: VecEnv
    eval_envs: VecEnv
    network: QNetwork  # the learner's online net
    learner: DQNLearner
    replay: ReplayBuffer
    nstep: NStepAccumulator
    trainer: Trainer
    policy: EpsilonGreedy  # acts in the training envs (its own copy of the net)
    eval_policy: EpsilonGreedy  # plays evaluation episodes (noisy means, eval.epsilon)

    @property
    def eval_rng(self) -> np.random.Generator:
        """The epsilon draws of evaluation episodes."""
        return self.eval_policy.rng

    def close(self) -> None:
        self.envs.close()
        self.eval_envs.close()


def _setup_torch(config: Config) -> torch.device:
    t = config.trainer
    device = resolve_device(t.device)
    if t.num_threads > 0:
        torch.set_num_threads(t.num_threads)
    if t.hold_freed_memory:
        hold_freed_memory()
    # Adam's second-moment estimates decay into the denormal range on small nets; denormal
    # arithmetic is 10x slower on x86 CPUs. Flushing them to zero changes nothing visible.
    torch.set_flush_denormal(True)
    torch.manual_seed(t.seed)
    return device


def build(config: Config, logger: Logger, checkpoint=None, progress=None) -> Components:
    """Build envs, network, learner, replay, policies and the sync loop (seeded).

    A C51 support still ``auto`` is resolved first (``rlkit.support``); the components'
    ``config`` holds the numbers."""
    config, _ = resolve_support(config)
    config = rank_config(config)
    t = config.trainer
    device = _setup_torch(config)
    envs = make_envs(config, config.env.num_envs)
    eval_envs = make_envs(config, min(config.eval.episodes, 10), evaluation=True)
    obs_shape, obs_dtype, num_actions = space_info(envs)
    network = build_network(config, obs_shape, num_actions, layout_of(envs)).to(device)
    learner = _rank_learner(config, network, device)
    replay = build_replay(config, obs_shape, obs_dtype, device, seed=t.seed)
    nstep = NStepAccumulator(config.replay.n_step, config.learner.gamma, num_envs=envs.num_envs)
    policy = build_policy(config, network, num_actions, device)
    eval_policy = build_policy(config, network, num_actions, device, evaluation=True)

    def run_eval(index: int) -> EvalResult:
        eval_policy.load_params(learner.params())
        return evaluate(
            eval_policy,
            eval_envs,
            config.eval.episodes,
            seed=eval_seed(config, index),
            gamma=config.learner.gamma,
        )

    trainer = loop_class(config)(
        collector=Collector(envs, policy),
        nstep=nstep,
        replay=replay,
        learner=learner,
        beta=build_beta(config),
        cadence=build_cadence(config),
        logger=logger,
        evaluate=run_eval,
        checkpoint=checkpoint,
        seed=t.seed,
        sample_phase_together=not config.replay.prioritized,
        progress=progress,
        learn_reward=np.sign if config.env.clip_rewards else None,
    )
    return Components(
        config,
        device,
        envs,
        eval_envs,
        network,
        learner,
        replay,
        nstep,
        trainer,
        policy,
        eval_policy,
    )
