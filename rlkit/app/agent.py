"""A trained agent for the Python API: ``Agent.load`` a run dir or checkpoint, ``act``,
``q_values``; ``evaluate`` it on the run's envs, another env id or a Gymnasium env.

Observations are what the env returns ([*obs_shape] for one, [N, *obs_shape] for a
batch; e.g. uint8 frame stacks for Atari): the network's own input preprocessing (uint8
scaled by 1/255) applies. Acting is greedy with the noisy layers at their means, as in
every evaluation.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlkit.agent.nn import QNetwork
from rlkit.agent.policy import EpsilonGreedy, epsilon_greedy
from rlkit.app import checkpoint as ckpt
from rlkit.app.run import load_network_from_checkpoint
from rlkit.app.rundir import RunDirError, load_run_config, require_run_dir
from rlkit.build import build_policy, make_envs, resolve_device
from rlkit.config import Config
from rlkit.envs import EnvError, GymnasiumVecEnv, VecEnv, space_info
from rlkit.envs.builder import observation_adapter
from rlkit.envs.spaces import adapt_actions, adapt_observations
from rlkit.loops.evaluate import EvalResult
from rlkit.loops.evaluate import evaluate as run_episodes

__all__ = ["Agent", "evaluate", "locate_checkpoint"]


def locate_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(run dir, checkpoint file) of a run dir (its newest complete checkpoint) or of a
    checkpoint file inside ``RUN_DIR/checkpoints/``."""
    path = Path(path)
    if path.is_file():
        run_dir = path.parent.parent
        if not (run_dir / "config.yaml").is_file():
            raise RunDirError(f"{path} is not in a run dir's checkpoints/ (no config.yaml)")
        return run_dir, path
    require_run_dir(path)
    found = ckpt.list_checkpoints(path / "checkpoints")
    if not found:
        raise RunDirError(f"{path} has no complete checkpoint in {path / 'checkpoints'}")
    return path, found[-1]


def _device(config: Config, device: str | None, stream: Any) -> torch.device:
    """``device``, or the run's (CPU, with a note, when the run's CUDA is missing here)."""
    if device is None and config.trainer.device == "cuda" and not torch.cuda.is_available():
        stream.write("note: the run trained on cuda, which is not available here: using cpu\n")
        device = "cpu"
    return resolve_device(device or config.trainer.device)


class Agent:
    """A run's trained Q-network, acting greedily (or epsilon-greedily) on observations.

    Attributes: ``config`` (the run's), ``num_actions`` (``A``), ``obs_shape``,
    ``device``, ``network`` (the policy's own copy, eval mode), ``run_dir``,
    ``checkpoint`` (the file loaded), ``env_steps`` (its training env steps).
    """

    def __init__(
        self,
        network: QNetwork,
        config: Config,
        device: torch.device,
        *,
        run_dir: Path | None = None,
        checkpoint: Path | None = None,
        env_steps: int = 0,
        seed: int | None = None,
    ) -> None:
        self.config, self.device = config, device
        self.num_actions, self.obs_shape = network.num_actions, network.obs_shape
        self.run_dir, self.checkpoint, self.env_steps = run_dir, checkpoint, env_steps
        self.rng = np.random.default_rng(seed)  # the draws of act(..., epsilon > 0)
        self.policy: EpsilonGreedy = build_policy(
            config, network, self.num_actions, device, evaluation=True
        )
        self.network = self.policy.net
        #: raw observation -> network input (``prepare``); False until first needed
        self._adapter: Any = False

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | None = "cpu",
        *,
        run_dir: str | Path | None = None,
        seed: int | None = None,
        stream: Any = None,
    ) -> Agent:
        """The agent of a run dir (its newest complete checkpoint) or of a checkpoint file
        in ``RUN_DIR/checkpoints/`` (or anywhere, with ``run_dir`` naming the run whose
        config it has), on ``device`` (None: the run's own device, or the CPU with a note
        on ``stream`` when that is CUDA and there is none). ``seed`` seeds the
        exploration draws of ``act(..., epsilon=...)``."""
        if run_dir is None:
            run_dir, path = locate_checkpoint(path)
        run_dir, path = Path(run_dir), Path(path)
        config = load_run_config(run_dir)
        dev = _device(config, device, stream if stream is not None else sys.stdout)
        net, state = load_network_from_checkpoint(path, config, dev)
        steps = int(state.get("env_steps", 0))
        return cls(net, config, dev, run_dir=run_dir, checkpoint=path, env_steps=steps, seed=seed)

    def eval_policy(self, seed: int) -> EpsilonGreedy:
        """A new evaluation policy on this agent's network (noisy means, the run's
        ``eval.epsilon``, its draws seeded by ``seed``), for ``evaluate`` and videos."""
        return build_policy(
            self.config, self.network, self.num_actions, self.device, evaluation=True, rng_seed=seed
        )

    def prepare(self, obs: Any) -> np.ndarray:
        """One observation as the env's own space gives it (a Dict, a Tuple, a Discrete
        index, an HWC image, ...) -> what the network reads (``rlkit.envs.spaces``: packed
        or channels-first); an observation already in that form comes back as it is."""
        array = np.asarray(obs) if not isinstance(obs, dict | tuple) else None
        if array is not None and array.dtype != object and array.shape == self.obs_shape:
            return array
        if self._adapter is False:
            self._adapter = observation_adapter(self.config)
        if self._adapter is None:
            return np.asarray(obs)
        return self._adapter(obs)

    def _batch(self, obs: Any) -> tuple[np.ndarray, bool]:
        """(observations [N, *obs_shape], whether ``obs`` was a single observation);
        observations of the env's own space are prepared first (``prepare``)."""
        if not isinstance(obs, dict | tuple):
            array = np.asarray(obs)
            if array.dtype != object and array.shape == self.obs_shape:
                return array[None], True
            if array.dtype != object and array.shape[1:] == self.obs_shape:
                return array, False
        try:  # one observation of the env's own space
            one = self.prepare(obs)
            if one.shape == self.obs_shape:
                return one[None], True
        except (TypeError, ValueError, KeyError, IndexError):
            pass
        if not isinstance(obs, dict | tuple) and np.ndim(obs) > 0:  # a batch of them
            try:
                batch = np.stack([self.prepare(o) for o in obs])
            except (TypeError, ValueError, KeyError, IndexError):
                batch = None
            if batch is not None and batch.shape[1:] == self.obs_shape:
                return batch, False
        shape = np.shape(obs) if not isinstance(obs, dict) else "a dict"
        raise ValueError(
            f"observation shape {shape}: expected {self.obs_shape}, [N, "
            f"{', '.join(map(str, self.obs_shape))}] or one of the env's own space"
        )

    def q_values(self, obs: Any) -> np.ndarray:
        """Q(obs, .): [A] for one observation, [N, A] for a batch (float32)."""
        batch, single = self._batch(obs)
        q_NA = self.policy.q_values(batch)
        return q_NA[0] if single else q_NA

    def act(
        self, obs: Any, epsilon: float = 0.0, rng: np.random.Generator | None = None
    ) -> int | np.ndarray:
        """The greedy action (an int) for one observation, or actions [N] int64 for a
        batch; with ``epsilon`` > 0 each is a uniform random action with that
        probability, drawn from ``rng`` (default: the agent's, seeded by ``load``)."""
        batch, single = self._batch(obs)
        action_N = epsilon_greedy(
            lambda: self.policy.greedy(batch),
            len(batch),
            epsilon,
            self.num_actions,
            rng if rng is not None else self.rng,
        )
        return int(action_N[0]) if single else action_N


def _as_vec_env(env: Any) -> VecEnv:
    """A user's env as a VecEnv: a VecEnv as it is, a Gymnasium vector env adapted, a
    single Gymnasium env in a one-env SyncVectorEnv (same-step autoreset), its spaces
    adapted as in training (``rlkit.envs.spaces``: Dict/Discrete observations packed, HWC
    images to CHW, small MultiDiscrete actions flattened)."""
    if isinstance(env, gym.vector.VectorEnv):
        return GymnasiumVecEnv(env)
    if isinstance(env, gym.Env):  # adapted as rlkit's own envs are (packed, CHW, flat)
        name = env.spec.id if env.spec is not None else type(env).__name__
        env = adapt_observations(adapt_actions(env, name))
        mode = gym.vector.AutoresetMode.SAME_STEP
        return GymnasiumVecEnv(gym.vector.SyncVectorEnv([lambda: env], autoreset_mode=mode))
    if all(hasattr(env, name) for name in ("reset", "step", "num_envs", "obs_shape")):
        return env
    raise TypeError(f"evaluate: expected an env id, a Gymnasium env or vector env, got {env!r}")


def _eval_envs(agent: Agent, env: Any, episodes: int) -> tuple[VecEnv, bool]:
    """(the envs to evaluate on, whether they were made here and are closed after)."""
    if env is None or isinstance(env, str):
        config = agent.config
        if env is not None and env != config.env.id:
            config = replace(config, env=replace(config.env, id=env))
        return make_envs(config, min(episodes, 10), evaluation=True), True
    return _as_vec_env(env), False


def evaluate(agent: Agent, env: Any = None, episodes: int = 10, seed: int = 0) -> EvalResult:
    """Greedy evaluation of ``agent`` for ``episodes`` episodes (``eval.epsilon`` of the
    run, noisy layers at their means).

    ``env``: None (the run's env), an env id (made with the run's env settings, at most
    10 in parallel) or an env the caller made: a Gymnasium env, a Gymnasium vector env
    or an rlkit VecEnv (left open). ``seed`` seeds the envs' reset and the epsilon draws.
    """
    envs, owned = _eval_envs(agent, env, episodes)
    try:
        obs_shape, _, num_actions = space_info(envs)
        if tuple(obs_shape) != agent.obs_shape or num_actions != agent.num_actions:
            raise EnvError(
                f"evaluate: the env has observations {tuple(obs_shape)} and {num_actions} "
                f"actions; the agent expects {agent.obs_shape} and {agent.num_actions}"
            )
        policy = agent.eval_policy(seed)
        return run_episodes(policy, envs, episodes, seed=seed, gamma=agent.config.learner.gamma)
    finally:
        if owned:
            envs.close()
