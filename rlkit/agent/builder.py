"""Config -> the agent's roles: network, objective, learner, replay, schedules, policies.

The only module of the agent layer that reads the config tree. Each switch (dueling,
noisy, atoms, head, double_q, target network, prioritized replay, epsilon schedule,
noise cadence, the fast CPU paths) is read here and nowhere else.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch

from rlkit.agent import objectives
from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn.plain_mlp import NumpyGreedy
from rlkit.agent.nn.qnet import QNetwork
from rlkit.agent.objectives.base import Objective
from rlkit.agent.policy import EpsilonGreedy
from rlkit.agent.replay import PrioritizedReplayBuffer, ReplayBuffer
from rlkit.agent.replay.frames import frame_pool_size, frame_storage_bytes
from rlkit.agent.schedules import ConstantSchedule, ExponentialSchedule, LinearSchedule, Schedule
from rlkit.config import Config, ConfigError
from rlkit.types import ObsLayout

MEMINFO = Path("/proc/meminfo")
CPUINFO = Path("/proc/cpuinfo")


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


def head_name(config: Config) -> str:
    """The objective ``network.head`` names for ``network.atoms`` (``auto`` resolved);
    ConfigError naming ``network.head`` for an unknown name."""
    n = config.network
    try:
        return objectives.resolve(n.head, n.atoms)
    except ValueError as err:
        raise ConfigError(f"network.head: {err}") from None


def build_network(
    config: Config,
    obs_shape: tuple[int, ...],
    num_actions: int,
    obs_layout: ObsLayout | None = None,
) -> QNetwork:
    """The QNetwork of ``config.network``, with the readout of its ``network.head``
    (and, for packed observations, the input encoders of ``obs_layout``).

    ConfigError naming ``network.head`` when the head is unknown or contradicts the
    other network keys (e.g. ``c51`` with ``network.atoms`` 1).
    """
    n = config.network
    name = head_name(config)
    if "auto" in (n.v_min, n.v_max) and name == "c51":
        raise ConfigError(
            "network.v_min/v_max: auto is resolved by a probe of the env before the net is "
            "built (rlkit.build.build, rlkit.support.resolve); give numbers to build it alone"
        )
    try:
        readout = objectives.make_readout(name, n.atoms, n.v_min, n.v_max)
    except ValueError as err:
        raise ConfigError(
            f"network.head: {err} (network.atoms={n.atoms}, v_min={n.v_min}, v_max={n.v_max})"
        ) from None
    if obs_layout is not None and n.torso not in ("auto", "mlp"):
        raise ConfigError(
            f"network.torso: {n.torso!r} does not read this env's packed observations "
            "(Discrete, MultiDiscrete, Dict, Tuple, ...): use auto or mlp"
        )
    return QNetwork(
        obs_shape,
        num_actions,
        obs_layout=obs_layout,
        hidden_sizes=n.hidden_sizes,
        dueling=n.dueling,
        noisy=n.noisy,
        atoms=n.atoms,
        v_min=n.v_min,
        v_max=n.v_max,
        sigma0=n.sigma0,
        torso=n.torso,
        head_hidden=n.head_hidden,
        readout=readout,
        quantile_embedding=(
            dict(
                cosines=n.iqn_cosines,
                acting_quantiles=n.iqn_acting_quantiles,
                cvar_eta=n.iqn_cvar_eta,
            )
            if name == "iqn"
            else None
        ),
    )


def make_optimizer(params, lr: float, eps: float, device: torch.device) -> torch.optim.Optimizer:
    """Adam; the fused kernel where this torch build has it (same maths, fewer ops)."""
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, eps=eps)


def build_objective(config: Config, net: QNetwork) -> Objective:
    """The objective of ``network.head`` over ``net``'s readout (``auto``: the objective
    the readout belongs to), with the learner's loss settings (``learner.double_q`` only
    with a target network: without one the double-Q target reduces to the max)."""
    lc, n = config.learner, config.network
    name = head_name(config)  # ConfigError for an unknown head
    munchausen = None
    if lc.munchausen:
        if name not in ("scalar", "iqn"):
            raise ConfigError(
                f"learner.munchausen: needs the scalar head (network.atoms 1) or iqn, got {name!r}"
            )
        munchausen = dict(
            tau=lc.munchausen_tau, alpha=lc.munchausen_alpha, log_floor=lc.munchausen_log_floor
        )
    return objectives.make(
        config.network.head,
        net.readout,
        double_q=lc.double_q and lc.target_update_period > 0,
        loss=lc.loss,
        c51_priority=lc.c51_priority,
        munchausen=munchausen,
        iqn=dict(
            target_quantiles=n.iqn_target_quantiles,
            selection_quantiles=n.iqn_acting_quantiles,
            cvar_eta=n.iqn_cvar_eta,
        ),
    )


def build_learner(
    config: Config, net: QNetwork, device: torch.device, grad_sync=None
) -> DQNLearner:
    """The DQNLearner of ``config.learner`` (and ``network.noise_cadence``) for ``net``.

    The hand-written backward passes (``trainer.fast_mlp``) are used where the learner's
    ``ManualMLPUpdater`` (scalar TD, plain MLP) or ``ManualC51Updater`` (C51, MLP torso
    with plain or noisy, dueling or linear head) supports the objective and the net.
    ``grad_sync``: the learner's gradient hook (data-parallel ranks: their all-reduce).
    """
    lc = config.learner
    optimizer = make_optimizer(list(net.parameters()), lc.lr, lc.adam_eps, device)
    return DQNLearner(
        net,
        optimizer,
        use_target_network=lc.target_update_period > 0,
        # the trainer calls learner.sync_target() every target_update_period env steps
        target_tau=lc.target_tau,
        max_grad_norm=lc.max_grad_norm,
        noise_cadence=config.network.noise_cadence,
        manual_gradients=config.trainer.fast_mlp,
        # double_q, loss and c51_priority are read once, by build_objective
        objective=build_objective(config, net),
        compile=compile_options(config, device),
        precision=lc.precision,
        grad_sync=grad_sync,
    )


def compile_options(config: Config, device: torch.device) -> dict | None:
    """``torch.compile`` options of ``learner.compile`` / ``compile_mode`` (None: eager);
    ``auto`` is CUDA graphs (``reduce-overhead``) on a GPU and the default mode on a CPU."""
    lc = config.learner
    if not lc.compile:
        return None
    mode = lc.compile_mode
    if mode == "auto":
        mode = "reduce-overhead" if device.type == "cuda" else "default"
    return {"mode": mode}


def cpu_has_native_bf16(cpuinfo: Path | None = None) -> bool | None:
    """Whether the CPU multiplies bfloat16 matrices in hardware (the ``amx_bf16`` or
    ``avx512_bf16`` flag in ``cpuinfo``, default ``CPUINFO``); None where it cannot tell."""
    try:
        text = (CPUINFO if cpuinfo is None else cpuinfo).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool({"amx_bf16", "avx512_bf16"} & set(line.partition(":")[2].split()))
    return None


def precision_warning(
    config: Config, device: torch.device, cpuinfo: Path | None = None
) -> str | None:
    """A warning for ``learner.precision: bf16`` on a CPU without bfloat16 hardware, where
    the emulated bfloat16 matmuls make an update several times slower than float32
    (docs/benchmarks.md: 5-14x on an AVX2 CPU); None otherwise."""
    if config.learner.precision != "bf16" or device.type != "cpu":
        return None
    if cpu_has_native_bf16(cpuinfo) is not False:
        return None
    return (
        "learner.precision=bf16 on a CPU without AMX or AVX512-BF16: bfloat16 is emulated "
        "here and an update runs several times slower than with learner.precision=fp32"
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
    """Uniform or prioritized replay of ``config.replay`` (after ``check_replay_fits``)."""
    check_replay_fits(config, obs_shape, obs_dtype)
    r = config.replay
    dedup = dedup_frames(config, obs_shape, obs_dtype)
    on_device = frames_on_device(config, obs_shape, obs_dtype, device)
    common = dict(device=device, seed=seed, dedup_frames=dedup, frames_on_device=on_device)
    if r.prioritized:
        return PrioritizedReplayBuffer(
            r.capacity, obs_shape, obs_dtype, alpha=r.alpha, eps=r.eps, **common
        )
    return ReplayBuffer(r.capacity, obs_shape, obs_dtype, **common)


def frames_on_device(
    config: Config, obs_shape: tuple[int, ...], obs_dtype: np.dtype, device: torch.device
) -> bool:
    """``replay.frames_on_device``, checked: it needs frame replay, and on a GPU a pool
    that fits in its free memory (ConfigError naming the keys otherwise)."""
    if not config.replay.frames_on_device:
        return False
    if not dedup_frames(config, obs_shape, obs_dtype):
        raise ConfigError(
            "replay.frames_on_device needs frame replay: uint8 frame-stack observations "
            f"(got {tuple(obs_shape)} {np.dtype(obs_dtype)}) and replay.dedup_frames: true"
        )
    if device.type == "cuda":
        pool = frame_pool_size(config.replay.capacity, obs_shape[0]) * int(np.prod(obs_shape[1:]))
        free, _ = torch.cuda.mem_get_info(device)
        if pool > free:
            raise ConfigError(
                f"replay.frames_on_device: the frame pool needs {pool / 2**30:.1f} GiB on "
                f"{device}, {free / 2**30:.1f} GiB are free; lower replay.capacity or set "
                "replay.frames_on_device=false"
            )
    return True


def build_epsilon(config: Config) -> Schedule:
    """The training epsilon schedule over env steps (``config.exploration``)."""
    e = config.exploration
    if e.epsilon_start == e.epsilon_end:
        return ConstantSchedule(e.epsilon_start)
    if e.schedule == "exponential":
        return ExponentialSchedule.over_steps(e.epsilon_start, e.epsilon_end, e.epsilon_steps)
    return LinearSchedule(e.epsilon_start, e.epsilon_end, e.epsilon_steps)


def build_beta(config: Config) -> Schedule:
    """The PER importance-sampling exponent over env steps (0 for uniform replay)."""
    r = config.replay
    if not r.prioritized:
        return ConstantSchedule(0.0)
    steps = config.trainer.total_steps if r.beta_steps is None else r.beta_steps
    return LinearSchedule(r.beta_start, r.beta_end, steps)


def build_policy(
    config: Config,
    net: QNetwork,
    num_actions: int,
    device: torch.device,
    *,
    evaluation: bool = False,
    rng_seed: int | None = None,
) -> EpsilonGreedy:
    """An epsilon-greedy policy over a copy of ``net`` (``copy.deepcopy``: no RNG drawn).

    Training: rng seeded ``trainer.seed + 1``, the ``exploration`` schedule, NumPy acting
    (``trainer.fast_mlp``) on CPU plain MLPs, fresh noise per acting forward with
    ``network.noise_cadence: paper``. Evaluation: rng seeded ``trainer.seed + 2`` (or
    ``rng_seed``, e.g. ``rlkit eval --seed``), ``eval.epsilon``, noisy layers at their means.
    """
    policy_net = copy.deepcopy(net)
    seed = config.trainer.seed
    if evaluation:
        return EpsilonGreedy(
            policy_net,
            num_actions,
            device,
            np.random.default_rng(seed + 2 if rng_seed is None else rng_seed),
            epsilon=config.eval.epsilon,
            evaluation=True,
        )
    numpy_acting = (
        config.trainer.fast_mlp and device.type == "cpu" and NumpyGreedy.supports(policy_net)
    )
    return EpsilonGreedy(
        policy_net,
        num_actions,
        device,
        np.random.default_rng(seed + 1),
        epsilon=build_epsilon(config),
        greedy_fn=NumpyGreedy(policy_net) if numpy_acting else None,
        resample_noise=config.network.noise_cadence == "paper",
    )
