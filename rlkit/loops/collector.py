"""Collector: steps a VecEnv with the policy, one raw transition per env and vector step.

It reports, for every vector step, one raw transition per env (with the true last
observation of an episode, ``VecStep.final_obs``, not the next episode's first) and the
returns/lengths of episodes that just finished. Autoreset is the env adapter's business
(``rlkit.envs.base``): every step is a real transition for every env.

Episodes and learning terminals. An *episode* is what the env calls one (a whole Atari
game): it ends when the env says ``terminated`` or ``truncated``, and episode returns and
lengths count it whole. A *learning terminal* is where the TD target stops bootstrapping:
``terminated``, or a lost life when the env reports ``VecStep.life_loss`` (the game goes
on after it, without a reset). ``StepOutput.terminated`` is the learning terminal;
``StepOutput.episode_end`` the episode end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from rlkit.agent.policy import EpsilonGreedy
from rlkit.agent.replay import NStepAccumulator
from rlkit.envs.base import VecEnv
from rlkit.types import Transition

__all__ = ["Collector", "EpsilonGreedy", "StepOutput", "nstep_transitions"]


class StepOutput(NamedTuple):
    """One vector step. Arrays have a leading ``num_envs`` dimension."""

    obs: np.ndarray  # [N, *obs_shape] observation the action was taken in
    action: np.ndarray  # [N] int64
    reward: np.ndarray  # [N] float32
    next_obs: np.ndarray  # [N, *obs_shape] true next observation (final obs at episode end)
    terminated: np.ndarray  # [N] bool: learning terminal (env termination or a lost life)
    truncated: np.ndarray  # [N] bool
    valid: np.ndarray  # [N] bool: always True (every VecEnv step is a transition)
    episode_end: np.ndarray  # [N] bool: the env's episode (game) ended at this step
    episode_returns: list[float]  # undiscounted returns of episodes that ended this step
    episode_lengths: list[int]  # their lengths in env steps


def nstep_transitions(
    nstep: NStepAccumulator,
    out: StepOutput,
    learn_reward: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Transition | None:
    """The n-step transitions that ``out`` finished, with the rewards ``learn_reward`` maps
    the env's to (None: the env's own). Every VecEnv step is a real transition for every
    env (no mask), and VecEnv arrays are the caller's (no copies)."""
    reward = out.reward if learn_reward is None else learn_reward(out.reward)
    return nstep.push(
        out.obs, out.action, reward, out.next_obs, out.terminated, out.truncated, copy=False
    )


class Collector:
    """Steps ``envs`` with ``policy.act(obs, env_steps)``."""

    def __init__(self, envs: VecEnv, policy: EpsilonGreedy) -> None:
        self.envs, self.policy = envs, policy
        self.num_envs = envs.num_envs
        self.obs: np.ndarray | None = None
        self._action: np.ndarray | None = None  # chosen by begin(), reported by finish()
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._valid = np.ones(self.num_envs, dtype=bool)
        self._valid.flags.writeable = False  # shared by every StepOutput

    def reset(self, seed: int | None = None) -> None:
        self.obs = self.envs.reset(seed=seed)
        self._returns[:] = 0.0
        self._lengths[:] = 0

    def step(self, env_steps: int) -> StepOutput:
        """Act in every env once; ``env_steps`` (before this step) sets the exploration."""
        self.begin(env_steps)
        return self.finish()

    def begin(self, env_steps: int) -> None:
        """The first half of ``step``: choose the actions and start the envs on them
        (``VecEnv.step_async``); work done before ``finish`` overlaps the envs' step
        where the backend steps outside Python."""
        if self.obs is None:
            raise RuntimeError("Collector.reset() must be called before step()")
        self._action = self.policy.act(self.obs, env_steps).astype(np.int64, copy=False)
        self.envs.step_async(self._action)

    def finish(self) -> StepOutput:
        """The second half of ``step``: wait for the envs and report the transitions."""
        obs, action = self.obs, self._action
        out = self.envs.step_wait()
        done = out.terminated | out.truncated  # the env's episode ended
        self._returns += out.reward
        self._lengths += 1
        returns: list[float] = []
        lengths: list[int] = []
        if done.any():
            ended = np.flatnonzero(done)
            returns = self._returns[ended].tolist()
            lengths = self._lengths[ended].tolist()
            self._returns[ended] = 0.0
            self._lengths[ended] = 0
        self.obs = out.obs
        learn_terminal = out.terminated | out.life_loss
        return StepOutput(
            obs,
            action,
            out.reward,
            out.final_obs,
            learn_terminal,
            out.truncated,
            self._valid,
            done,
            returns,
            lengths,
        )

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict:
        """Current observations, episode accumulators, policy RNG and the env state
        (``envs.state_dict()``), as tensors and plain values."""
        return {
            "obs": None if self.obs is None else torch.from_numpy(np.array(self.obs)),
            "returns": torch.from_numpy(self._returns.copy()),
            "lengths": torch.from_numpy(self._lengths.copy()),
            "resetting": torch.zeros(self.num_envs, dtype=torch.bool),
            "policy_rng": self.policy.rng.bit_generator.state,
            "envs": self.envs.state_dict(),
        }

    def load_state_dict(self, state: dict) -> bool:
        """Restore ``state_dict``'s result. Returns False (and restores only the policy
        RNG) when the env state could not be saved: the caller must ``reset`` then."""
        self.policy.rng.bit_generator.state = state["policy_rng"]
        if not state["envs"].get("restorable") or state["obs"] is None:
            return False
        self.envs.load_state_dict(state["envs"])
        self.obs = state["obs"].numpy().copy()
        self._returns[:] = state["returns"].numpy()
        self._lengths[:] = state["lengths"].numpy()
        return True
