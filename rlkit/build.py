"""Config -> components. The only place where a config meets constructors.

Each ablation switch (dueling, noisy, atoms, double_q, target network, prioritized,
n_step, epsilon schedule) is read here and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import QNetwork
from rlkit.agent.nn.plain_mlp import NumpyGreedy
from rlkit.agent.policy import EpsilonGreedy
from rlkit.agent.replay import NStepAccumulator, PrioritizedReplayBuffer, ReplayBuffer
from rlkit.agent.replay.frames import frame_storage_bytes
from rlkit.agent.schedules import ConstantSchedule, ExponentialSchedule, LinearSchedule, Schedule
from rlkit.config import Config, ConfigError
from rlkit.envs import AtariOptions, make_vec_env, space_info
from rlkit.loops.collector import Collector
from rlkit.loops.evaluate import EvalResult, evaluate
from rlkit.loops.sync import Cadence, Trainer
from rlkit.types import Logger

EVAL_SEED_OFFSET = 1_000_003


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without one is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.device: 'cuda' requested but no CUDA device is available "
            "(--set trainer.device=cpu runs on the CPU; a resumed run also needs --force)"
        )
    return torch.device(name)


def build_network(config: Config, obs_shape: tuple[int, ...], num_actions: int) -> QNetwork:
    n = config.network
    return QNetwork(
        obs_shape,
        num_actions,
        hidden_sizes=n.hidden_sizes,
        dueling=n.dueling,
        noisy=n.noisy,
        atoms=n.atoms,
        v_min=n.v_min,
        v_max=n.v_max,
        sigma0=n.sigma0,
        torso=n.torso,
        head_hidden=n.head_hidden,
    )


def make_optimizer(params, lr: float, eps: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam; the fused kernel where this torch build has it (same maths, fewer ops)."""
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, eps=eps)


def build_learner(config: Config, net: QNetwork, device: torch.device) -> DQNLearner:
    """The DQNLearner of ``config.learner`` (and ``network.noise_cadence``) for ``net``."""
    lc = config.learner
    optimizer = make_optimizer(list(net.parameters()), lc.lr, lc.adam_eps, device)
    return DQNLearner(
        net,
        optimizer,
        double_q=lc.double_q,
        use_target_network=lc.target_update_period > 0,
        # the trainer calls learner.sync_target() every target_update_period env steps
        target_tau=lc.target_tau,
        loss=lc.loss,
        max_grad_norm=lc.max_grad_norm,
        noise_cadence=config.network.noise_cadence,
        c51_priority=lc.c51_priority,
        manual_gradients=config.trainer.fast_mlp,
    )


def dedup_frames(config: Config, obs_shape: tuple[int, ...], obs_dtype: np.dtype) -> bool:
    """Whether replay stores frames once: uint8 frame stacks and ``replay.dedup_frames``."""
    return config.replay.dedup_frames and len(obs_shape) == 3 and np.dtype(obs_dtype) == np.uint8


def replay_bytes(config: Config, obs_shape: tuple[int, ...], obs_dtype: np.dtype) -> int:
    """Estimated bytes of the replay arrays (obs, next_obs, action, reward, discount, tree)."""
    capacity = config.replay.capacity
    tree = 2 * (1 << max(capacity - 1, 1).bit_length()) * 8 if config.replay.prioritized else 0
    if dedup_frames(config, obs_shape, obs_dtype):
        return frame_storage_bytes(capacity, obs_shape) + tree
    obs_bytes = int(np.prod(obs_shape)) * np.dtype(obs_dtype).itemsize
    per_item = 2 * obs_bytes + 8 + 4 + 4
    return capacity * per_item + tree


MEMINFO = Path("/proc/meminfo")


def available_memory(meminfo: Path | None = None) -> int | None:
    """Bytes of memory available to a new allocation: ``MemAvailable`` of ``meminfo``
    (default ``MEMINFO``; Linux: free memory plus the page cache and buffers the kernel
    can reclaim), else free memory from ``sysconf`` (which ignores reclaimable cache),
    else None."""
    try:
        for line in (MEMINFO if meminfo is None else meminfo).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                value, unit = line.split()[1:3]
                return int(value) * (1024 if unit.lower() == "kb" else 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_replay_fits(config: Config, obs_shape: tuple[int, ...], obs_dtype: np.dtype) -> int:
    """The replay's estimated bytes (``replay_bytes``); ConfigError, before anything is
    allocated, when they would not fit in the memory available now (90% of it)."""
    need = replay_bytes(config, obs_shape, obs_dtype)
    free = available_memory()
    if free is not None and need > 0.9 * free:
        raise ConfigError(
            f"replay.capacity: {config.replay.capacity} transitions need {_fmt_bytes(need)} "
            f"but only {_fmt_bytes(free)} of memory is available"
        )
    return need


def build_replay(
    config: Config,
    obs_shape: tuple[int, ...],
    obs_dtype: np.dtype,
    device: torch.device,
    seed: int,
) -> ReplayBuffer:
    check_replay_fits(config, obs_shape, obs_dtype)
    r = config.replay
    dedup = dedup_frames(config, obs_shape, obs_dtype)
    if r.prioritized:
        return PrioritizedReplayBuffer(
            r.capacity,
            obs_shape,
            obs_dtype,
            alpha=r.alpha,
            eps=r.eps,
            device=device,
            seed=seed,
            dedup_frames=dedup,
        )
    return ReplayBuffer(
        r.capacity, obs_shape, obs_dtype, device=device, seed=seed, dedup_frames=dedup
    )


def build_epsilon(config: Config) -> Schedule:
    e = config.exploration
    if e.epsilon_start == e.epsilon_end:
        return ConstantSchedule(e.epsilon_start)
    if e.schedule == "exponential":
        return ExponentialSchedule.over_steps(e.epsilon_start, e.epsilon_end, e.epsilon_steps)
    return LinearSchedule(e.epsilon_start, e.epsilon_end, e.epsilon_steps)


def build_beta(config: Config) -> Schedule:
    r = config.replay
    if not r.prioritized:
        return ConstantSchedule(0.0)
    steps = config.trainer.total_steps if r.beta_steps is None else r.beta_steps
    return LinearSchedule(r.beta_start, r.beta_end, steps)


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


def make_envs(config: Config, num_envs: int, *, evaluation: bool = False) -> gym.vector.VectorEnv:
    """``num_envs`` envs of ``config.env`` (SAME_STEP autoreset).

    Training envs (``evaluation`` False) of an Atari config with
    ``env.terminal_on_life_loss`` report ``info["life_loss"]`` ([num_envs] bool) at each
    lost life while the game goes on; evaluation envs never do: they play whole games.
    """
    e = config.env
    atari = AtariOptions(
        frame_skip=e.frame_skip,
        frame_stack=e.frame_stack,
        noop_max=e.noop_max,
        sticky_actions=e.sticky_actions,
        full_action_space=e.full_action_space,
        max_frames_per_episode=e.max_frames_per_episode,
        life_loss_signal=e.terminal_on_life_loss and not evaluation,
    )
    return make_vec_env(
        e.id, num_envs, max_episode_steps=e.max_episode_steps, kwargs=e.kwargs, atari=atari
    )


@dataclass
class Components:
    """Everything a training run is made of, built from one config."""

    config: Config
    device: torch.device
    envs: gym.vector.VectorEnv
    eval_envs: gym.vector.VectorEnv
    network: QNetwork
    learner: DQNLearner
    replay: ReplayBuffer
    nstep: NStepAccumulator
    trainer: Trainer
    eval_rng: np.random.Generator  # epsilon draws of evaluation episodes

    def close(self) -> None:
        self.envs.close()
        self.eval_envs.close()


def build(config: Config, logger: Logger, checkpoint=None, progress=None) -> Components:
    """Build envs, network, learner, replay and trainer from ``config`` (seeded)."""
    t = config.trainer
    device = resolve_device(t.device)
    if t.num_threads > 0:
        torch.set_num_threads(t.num_threads)
    # Adam's second-moment estimates decay into the denormal range on small nets; denormal
    # arithmetic is 10x slower on x86 CPUs. Flushing them to zero changes nothing visible.
    torch.set_flush_denormal(True)
    torch.manual_seed(t.seed)
    envs = make_envs(config, config.env.num_envs)
    eval_envs = make_envs(config, min(config.eval.episodes, 10), evaluation=True)
    envs.action_space.seed(t.seed)
    obs_shape, obs_dtype, num_actions = space_info(envs)
    network = build_network(config, obs_shape, num_actions).to(device)
    learner = build_learner(config, network, device)
    replay = build_replay(config, obs_shape, obs_dtype, device, seed=t.seed)
    nstep = NStepAccumulator(config.replay.n_step, config.learner.gamma, num_envs=envs.num_envs)
    numpy_acting = t.fast_mlp and device.type == "cpu" and NumpyGreedy.supports(network)
    policy = EpsilonGreedy(
        network,
        num_actions,
        device,
        np.random.default_rng(t.seed + 1),
        greedy_fn=NumpyGreedy(network) if numpy_acting else None,
        resample_noise=config.network.noise_cadence == "paper",
    )
    collector = Collector(envs, policy)
    eval_rng = np.random.default_rng(t.seed + 2)

    def run_eval(index: int) -> EvalResult:
        return evaluate(
            network,
            eval_envs,
            config.eval.episodes,
            device=device,
            seed=t.seed + EVAL_SEED_OFFSET + 1000 * index,
            epsilon=config.eval.epsilon,
            rng=eval_rng,
            gamma=config.learner.gamma,
        )

    trainer = Trainer(
        collector=collector,
        nstep=nstep,
        replay=replay,
        learner=learner,
        epsilon=build_epsilon(config),
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
        config, device, envs, eval_envs, network, learner, replay, nstep, trainer, eval_rng
    )
