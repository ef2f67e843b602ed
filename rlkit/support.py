"""``network.v_min`` / ``network.v_max`` ``auto``: the C51 support from a probe of the env.

Before a C51 net is built, a config whose support is ``auto`` (on either end) gets numbers:
a seeded random-policy probe of ``PROBE_STEPS`` env steps in its own env instance (made
like the training envs, so ``env.kwargs``, wrappers and ``env.max_episode_steps`` count;
rewards as the learner sees them, i.e. ``sign(r)`` under ``env.clip_rewards``), then
``rlkit.agent.support_range.support_range``. The probe draws from its own generators only,
so a run with ``auto`` is as reproducible as one with numbers.

A run records the resolved pair in its checkpoints (their ``config`` holds the numbers,
while ``RUN_DIR/config.yaml`` keeps ``auto``): resume and evaluation take it from the
checkpoint they load (``recorded``) instead of probing again. Scalar heads read no
support; there ``auto`` becomes the placeholder ``SCALAR_PLACEHOLDER``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlkit.agent import objectives
from rlkit.agent.support_range import discounted_horizon, returns_to_go, support_range
from rlkit.config import Config, ConfigError
from rlkit.envs.builder import make_envs

AUTO = "auto"
#: env steps of the random-policy probe
PROBE_STEPS = 3_000
#: the probe's env and action seed is trainer.seed + this
PROBE_SEED_OFFSET = 2_000_029
#: episode limit T when neither env.max_episode_steps nor the env's spec sets one
DEFAULT_HORIZON = 10_000
#: what ``auto`` becomes for heads that read no support
SCALAR_PLACEHOLDER = (-10.0, 10.0)


@dataclass(frozen=True)
class Support:
    """A resolved C51 support and where it came from (for the train-start line)."""

    v_min: float
    v_max: float
    source: str

    def line(self) -> str:
        return f"C51 support: auto -> [{self.v_min:.4g}, {self.v_max:.4g}] (from {self.source})"


def is_auto(config: Config) -> bool:
    """Whether either end of the support is ``auto``."""
    return AUTO in (config.network.v_min, config.network.v_max)


def reads_support(config: Config) -> bool:
    """Whether the net's head reads v_min/v_max (C51), i.e. whether ``auto`` matters."""
    n = config.network
    try:
        return objectives.resolve(n.head, n.atoms) == "c51"
    except ValueError:
        return False  # an unknown head: build_network names it


def with_support(config: Config, v_min: float, v_max: float) -> Config:
    """``config`` with ``auto`` ends replaced by ``v_min`` / ``v_max`` (numbers stay);
    ConfigError when the pair is then not increasing."""
    n = config.network
    lo = float(v_min) if n.v_min == AUTO else n.v_min
    hi = float(v_max) if n.v_max == AUTO else n.v_max
    if not lo < hi:
        raise ConfigError(
            f"network.v_min/v_max: auto resolved the support to [{lo:.4g}, {hi:.4g}], which is "
            "empty; give both as numbers (or both auto)"
        )
    return dataclasses.replace(config, network=dataclasses.replace(n, v_min=lo, v_max=hi))


def time_limit(config: Config) -> int:
    """Episode limit T in env steps: env.max_episode_steps, else the env's own (the
    Gymnasium spec; Atari: max_frames_per_episode / frame_skip), else DEFAULT_HORIZON."""
    e = config.env
    if e.max_episode_steps is not None:
        return e.max_episode_steps
    if e.id.startswith("ALE/"):
        frames = e.max_frames_per_episode
        return DEFAULT_HORIZON if frames is None else max(1, frames // e.frame_skip)
    try:
        import gymnasium

        limit = gymnasium.spec(e.id.split(":")[-1]).max_episode_steps
    except Exception:  # noqa: BLE001 - no spec (another backend's id): no known limit
        limit = None
    return int(limit) if limit else DEFAULT_HORIZON


def probe(config: Config, steps: int = PROBE_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Per-step rewards [steps] of a uniform random policy in one env of ``config`` and
    the discounted returns-to-go of every step (episodes cut at the probe's end)."""
    seed = config.trainer.seed + PROBE_SEED_OFFSET
    rng = np.random.default_rng(seed)
    envs = make_envs(config, 1)
    gamma = config.learner.gamma
    rewards, returns, episode = [], [], []
    try:
        envs.reset(seed=seed)
        for _ in range(steps):
            out = envs.step(rng.integers(envs.num_actions, size=1))
            r = float(out.reward[0])
            episode.append(np.sign(r) if config.env.clip_rewards else r)
            if out.terminated[0] or out.truncated[0]:
                returns.append(returns_to_go(episode, gamma))
                rewards += episode
                episode = []
    finally:
        envs.close()
    returns.append(returns_to_go(episode, gamma))
    rewards += episode
    return np.asarray(rewards, dtype=np.float64), np.concatenate(returns)


def probe_support(config: Config, steps: int = PROBE_STEPS) -> Support:
    """The support ``auto`` gives ``config`` (see the module docstring)."""
    rewards, returns = probe(config, steps)
    horizon, gamma = time_limit(config), config.learner.gamma
    lo, hi = support_range(rewards, returns, gamma, horizon)
    clip = ", rewards clipped to sign" if config.env.clip_rewards else ""
    source = (
        f"a {steps}-step random-policy probe: rewards in [{rewards.min():.3g}, "
        f"{rewards.max():.3g}]{clip}, discounted horizon {discounted_horizon(gamma, horizon):.4g} "
        f"(gamma {gamma:g}, T {horizon}), returns-to-go in [{returns.min():.4g}, "
        f"{returns.max():.4g}], margin 10%"
    )
    return Support(lo, hi, source)


def recorded(state: dict[str, Any]) -> tuple[float, float] | None:
    """The (v_min, v_max) a checkpoint's run was built with (None when not numbers)."""
    network = state.get("config", {}).get("network", {})
    pair = network.get("v_min"), network.get("v_max")
    return pair if all(isinstance(v, (int, float)) for v in pair) else None


def resolve(config: Config, state: dict[str, Any] | None = None) -> tuple[Config, Support | None]:
    """``config`` with numbers for v_min/v_max, and the Support when a probe or a record
    resolved ``auto``: the pair recorded in checkpoint ``state`` if given, else a probe.
    Configs without ``auto`` come back unchanged; heads that read no support get
    SCALAR_PLACEHOLDER."""
    if not is_auto(config):
        return config, None
    if not reads_support(config):
        n = config.network
        lo, hi = (v if v != AUTO else p for v, p in zip((n.v_min, n.v_max), SCALAR_PLACEHOLDER))
        return dataclasses.replace(config, network=dataclasses.replace(n, v_min=lo, v_max=hi)), None
    pair = recorded(state) if state is not None else None
    if pair is not None:
        support = Support(*pair, "the checkpoint's record")
    else:
        support = probe_support(config)
    return with_support(config, support.v_min, support.v_max), support
