"""Collector: steps a vector env with an epsilon-greedy policy over the online net.

It reports, for every vector step, one raw transition per env (with the true last
observation of an episode, not the autoreset one), a mask of which envs produced a real
transition, and the returns/lengths of episodes that just finished.

Episodes and learning terminals. An *episode* is what the env calls one (a whole Atari
game): it ends when the env says ``terminated`` or ``truncated``, and episode returns and
lengths count it whole. A *learning terminal* is where the TD target stops bootstrapping:
``terminated``, or a lost life when the env reports ``info["life_loss"]`` (see
``rlkit.envs``; the game goes on after it, without a reset). ``StepOutput.terminated``
is the learning terminal; ``StepOutput.episode_end`` the episode end.
"""

from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from rlkit.agent.policy import EpsilonGreedy
from rlkit.envs import autoreset_mode, capture_env_state, restore_env_state

__all__ = ["Collector", "EpsilonGreedy", "StepOutput"]


class StepOutput(NamedTuple):
    """One vector step. Arrays have a leading ``num_envs`` dimension."""

    obs: np.ndarray  # [N, *obs_shape] observation the action was taken in
    action: np.ndarray  # [N] int64
    reward: np.ndarray  # [N] float32
    next_obs: np.ndarray  # [N, *obs_shape] true next observation (final obs at episode end)
    terminated: np.ndarray  # [N] bool: learning terminal (env termination or a lost life)
    truncated: np.ndarray  # [N] bool
    valid: np.ndarray  # [N] bool: False for NEXT_STEP reset steps (not transitions)
    episode_end: np.ndarray  # [N] bool: the env's episode (game) ended at this step
    episode_returns: list[float]  # undiscounted returns of episodes that ended this step
    episode_lengths: list[int]  # their lengths in env steps


def life_lost(info: dict, num_envs: int) -> np.ndarray:
    """``info["life_loss"]`` of a vector step as [N] bool (all False when absent)."""
    flags = info.get("life_loss")
    if flags is None:
        return np.zeros(num_envs, dtype=bool)
    mask = info.get("_life_loss")
    flags = np.asarray(flags, dtype=bool)
    return flags & np.asarray(mask, dtype=bool) if mask is not None else flags


class Collector:
    """Steps ``envs`` (SAME_STEP or NEXT_STEP autoreset) with ``policy``."""

    def __init__(self, envs: gym.vector.VectorEnv, policy: EpsilonGreedy) -> None:
        self.envs, self.policy = envs, policy
        self.num_envs = envs.num_envs
        self.same_step = autoreset_mode(envs) == AutoresetMode.SAME_STEP
        self.obs: np.ndarray | None = None
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._resetting = np.zeros(self.num_envs, dtype=bool)  # NEXT_STEP only

    def reset(self, seed: int | None = None) -> None:
        self.obs, _ = self.envs.reset(seed=seed)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self._resetting[:] = False

    def step(self, epsilon: float) -> StepOutput:
        if self.obs is None:
            raise RuntimeError("Collector.reset() must be called before step()")
        obs = self.obs
        action = self.policy.act(obs, epsilon).astype(np.int64, copy=False)
        next_obs, reward, terminated, truncated, info = self.envs.step(action)
        reward = np.asarray(reward, dtype=np.float32)
        done = terminated | truncated  # the env's episode ended (autoreset follows)
        if self.same_step:
            valid = np.ones(self.num_envs, dtype=bool)
            real_next = next_obs
            if done.any():
                real_next = next_obs.copy()
                final_obs, final_mask = info["final_obs"], info["_final_obs"]
                for i in np.flatnonzero(final_mask):
                    real_next[i] = final_obs[i]
        else:
            valid = ~self._resetting
            real_next = next_obs
            self._resetting = done.copy()
        self._returns += np.where(valid, reward, 0.0)
        self._lengths += valid
        ended = np.flatnonzero(done & valid)
        returns = [float(self._returns[i]) for i in ended]
        lengths = [int(self._lengths[i]) for i in ended]
        self._returns[ended] = 0.0
        self._lengths[ended] = 0
        self.obs = next_obs
        learn_terminal = terminated | life_lost(info, self.num_envs)
        return StepOutput(
            obs,
            action,
            reward,
            real_next,
            learn_terminal,
            truncated,
            valid,
            done & valid,
            returns,
            lengths,
        )

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """Current observations, episode accumulators, policy RNG and the env state
        (``rlkit.envs.capture_env_state``), as tensors and plain values."""
        return {
            "obs": None if self.obs is None else torch.from_numpy(np.array(self.obs)),
            "returns": torch.from_numpy(self._returns.copy()),
            "lengths": torch.from_numpy(self._lengths.copy()),
            "resetting": torch.from_numpy(self._resetting.copy()),
            "policy_rng": self.policy.rng.bit_generator.state,
            "envs": capture_env_state(self.envs),
        }

    def load_state_dict(self, state: dict) -> bool:
        """Restore ``state_dict``'s result. Returns False (and restores only the policy
        RNG) when the env state could not be saved: the caller must ``reset`` then."""
        self.policy.rng.bit_generator.state = state["policy_rng"]
        if not state["envs"].get("restorable") or state["obs"] is None:
            return False
        restore_env_state(self.envs, state["envs"])
        self.obs = state["obs"].numpy().copy()
        self._returns[:] = state["returns"].numpy()
        self._lengths[:] = state["lengths"].numpy()
        self._resetting[:] = state["resetting"].numpy()
        return True
