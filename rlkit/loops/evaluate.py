"""Greedy evaluation episodes, with a direct measurement of Q-value overestimation.

Overestimation (van Hasselt et al. 2016, Sec. 3): at every visited state the network's
prediction ``Q(s_t, a_t)`` for the action it took is compared with the discounted return
actually realised from that state, ``G_t = sum_k gamma^k r_{t+k}``, computed once the
episode has ended. For C51 nets Q is the expected value of the distribution.

A time-limit truncation cuts ``G_t`` short; states of a truncated episode count only
while the missing tail weighs at most ``tail_tolerance`` (``gamma^remaining <=
tail_tolerance``), so truncation is not mistaken for overestimation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rlkit.agent.policy import EpsilonGreedy
from rlkit.envs.base import VecEnv


@dataclass(frozen=True)
class EvalResult:
    returns: list[float]  # undiscounted return of each episode
    lengths: list[int]  # length of each episode in env steps
    q_pred: list[float] = field(default_factory=list)  # Q(s_t, a_t) at counted states
    return_discounted: list[float] = field(default_factory=list)  # realised G_t there

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    @property
    def q_pred_mean(self) -> float:
        return float(np.mean(self.q_pred)) if self.q_pred else math.nan

    @property
    def return_discounted_mean(self) -> float:
        return float(np.mean(self.return_discounted)) if self.return_discounted else math.nan

    @property
    def overestimation(self) -> float:
        """Mean of ``Q(s_t, a_t) - G_t`` over counted states (> 0: overestimation)."""
        if not self.q_pred:
            return math.nan
        return float(np.mean(np.asarray(self.q_pred) - np.asarray(self.return_discounted)))

    def scalars(self) -> dict[str, float]:
        return {
            "eval/return_mean": self.mean,
            "eval/return_std": self.std,
            "eval/length_mean": float(np.mean(self.lengths)),
            "eval/q_pred": self.q_pred_mean,
            "eval/return_discounted": self.return_discounted_mean,
            "eval/overestimation": self.overestimation,
        }


def episode_quotas(episodes: int, num_envs: int) -> np.ndarray:
    """Split ``episodes`` over envs as evenly as possible: each env runs exactly its quota.

    Taking the first ``episodes`` finishers instead would favour short episodes.
    """
    return np.array([episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)])


def discounted_returns_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma G_{t+1}`` with ``G_T = 0``; [T] -> [T] (float64)."""
    out = np.empty(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def counted_states(length: int, truncated: bool, gamma: float, tail_tolerance: float) -> int:
    """How many leading states of an episode have a trustworthy realised return."""
    if not truncated:
        return length
    if gamma >= 1.0:
        return 0
    horizon = math.ceil(math.log(tail_tolerance) / math.log(gamma))
    return max(length - horizon, 0)


def evaluate(
    policy: EpsilonGreedy,
    envs: VecEnv,
    episodes: int,
    *,
    seed: int | None = None,
    gamma: float = 0.99,
    tail_tolerance: float = 0.01,
) -> EvalResult:
    """Run ``episodes`` episodes (each env exactly its quota) acting with
    ``policy.act_with_q`` (an evaluation policy: greedy, or epsilon-greedy with its own
    epsilon and generator; noisy layers use their means).

    ``envs`` is any VecEnv (every backend); ``seed`` seeds its reset.
    """
    num_envs = envs.num_envs
    quota = episode_quotas(episodes, num_envs)
    finished = np.zeros(num_envs, dtype=np.int64)
    q_trace: list[list[float]] = [[] for _ in range(num_envs)]
    r_trace: list[list[float]] = [[] for _ in range(num_envs)]
    out = EvalResult([], [], [], [])
    obs = envs.reset(seed=seed)
    while (finished < quota).any():
        action, q_taken = policy.act_with_q(obs)
        step = envs.step(action)
        obs = step.obs
        for i in range(num_envs):
            q_trace[i].append(float(q_taken[i]))
            r_trace[i].append(float(step.reward[i]))
            if not (step.terminated[i] or step.truncated[i]):
                continue
            if finished[i] < quota[i]:
                _record_episode(
                    out, q_trace[i], r_trace[i], bool(step.truncated[i]), gamma, tail_tolerance
                )
            finished[i] += 1
            q_trace[i], r_trace[i] = [], []
    return out


def _record_episode(
    out: EvalResult,
    q_trace: list[float],
    r_trace: list[float],
    truncated: bool,
    gamma: float,
    tail_tolerance: float,
) -> None:
    """Append one finished episode's return, length and counted (Q, G_t) pairs to ``out``."""
    rewards = np.asarray(r_trace)
    out.returns.append(float(rewards.sum()))
    out.lengths.append(len(rewards))
    keep = counted_states(len(rewards), truncated, gamma, tail_tolerance)
    out.q_pred.extend(q_trace[:keep])
    out.return_discounted.extend(discounted_returns_to_go(rewards, gamma)[:keep].tolist())
