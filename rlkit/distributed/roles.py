"""The Ape-X roles as plain classes: an actor, a replay shard, a parameter server and an
evaluator. ``rlkit.distributed.apex`` runs each as a Ray actor (``ray.remote(cls)``);
without Ray they are ordinary objects, which is how the tests drive them one by one.

- ``ActorRole`` steps its own vector envs with its own policy (``rlkit.agent.policy``,
  a ``Collector`` and n-step queues as in the one-machine loops), with Ape-X's epsilon
  for its index (``actor_epsilon``). Per call (``collect``) it takes ``distributed.chunk``
  vector steps, computes the initial priorities of the chunk's transitions with the
  learner's own objective on its copies of the online and target nets (Ape-X: the
  actor's TD error), and sends both to a replay shard (round robin, at most one chunk in
  flight). It pulls new weights from the parameter server every
  ``distributed.pull_every`` env steps.
- ``ReplayShardRole`` holds one replay buffer (``replay.capacity / replay_shards``) and
  answers ``add``, ``sample`` and ``update_priorities``.
- ``ParameterServer`` holds the newest published weights (as a reference into Ray's
  object store) and their version.
- ``EvaluatorRole`` plays evaluation episodes with given weights on its own envs.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import torch

from rlkit.agent.builder import build_network, build_objective, build_policy, build_replay
from rlkit.agent.objectives.base import Forwards, NoiseDraws
from rlkit.agent.replay import NStepAccumulator
from rlkit.config import Config
from rlkit.envs import layout_of, space_info
from rlkit.envs.builder import make_envs
from rlkit.loops.collector import Collector, nstep_transitions
from rlkit.loops.evaluate import EvalResult, evaluate
from rlkit.types import Batch, Transition

#: seed offset between actors (their envs, policies and networks)
ACTOR_SEED_STRIDE = 10_007


def actor_epsilon(base: float, alpha: float, index: int, num_actors: int) -> float:
    """Ape-X's epsilon of actor ``index`` of ``num_actors``: ``base ** (1 + alpha * i /
    (N - 1))`` (Horgan et al. 2018, Section 4.1; ``base`` for a single actor)."""
    if num_actors <= 1:
        return float(base)
    return float(base ** (1.0 + alpha * index / (num_actors - 1)))


def actor_config(config: Config, index: int, restart_seed: int = 0) -> Config:
    """The config actor ``index`` acts with: its own seed, and with plain (not noisy)
    nets a constant Ape-X epsilon in place of the exploration schedule."""
    d = config.distributed
    seed = config.trainer.seed + ACTOR_SEED_STRIDE * (index + 1) + restart_seed
    config = dataclasses.replace(config, trainer=dataclasses.replace(config.trainer, seed=seed))
    if config.network.noisy:
        return config
    eps = actor_epsilon(d.epsilon, d.epsilon_alpha, index, d.actors)
    exploration = dataclasses.replace(
        config.exploration, epsilon_start=eps, epsilon_end=eps, epsilon_steps=0
    )
    return dataclasses.replace(config, exploration=exploration)


def transition_batch(t: Transition, device: torch.device | str = "cpu") -> Batch:
    """Transitions as a ``Batch`` (weights 1, indices 0..K-1) on ``device``."""
    k = len(t.action)
    return Batch(
        obs=torch.as_tensor(t.obs, device=device),
        action=torch.as_tensor(t.action, device=device),
        reward=torch.as_tensor(t.reward, device=device),
        next_obs=torch.as_tensor(t.next_obs, device=device),
        discount=torch.as_tensor(t.discount, device=device),
        weights=torch.ones(k, device=device),
        indices=np.arange(k),
    )


def _no_draw() -> None:
    """Priorities use the nets' noise as loaded (their means: eval mode)."""


def concat(parts: list[Transition]) -> Transition:
    """One ``Transition`` of several, in order."""
    return Transition(*(np.concatenate(field) for field in zip(*parts, strict=True)))


class ActorRole:
    """One Ape-X actor (see the module docstring); ``shards`` and ``server`` are Ray
    actor handles (or objects with the same methods returning values, for tests: then
    ``get`` is the identity)."""

    def __init__(
        self, config: Config, index: int, shards: list, server: Any, get=None, restart_seed=0
    ) -> None:
        torch.set_num_threads(1)
        self.index, self.shards, self.server = index, list(shards), server
        self.config = c = actor_config(config, index, restart_seed)
        self.get = get if get is not None else (lambda ref: ref)
        torch.manual_seed(c.trainer.seed)
        self.envs = make_envs(c, c.env.num_envs)
        obs_shape, _, num_actions = space_info(self.envs)
        net = build_network(c, obs_shape, num_actions, layout_of(self.envs))
        self.policy = build_policy(c, net, num_actions, torch.device("cpu"))
        self.online, self.target = copy.deepcopy(net).eval(), copy.deepcopy(net).eval()
        self.objective = build_objective(c, self.online)
        self.nstep = NStepAccumulator(c.replay.n_step, c.learner.gamma, num_envs=self.envs.num_envs)
        self.collector = Collector(self.envs, self.policy)
        self.collector.reset(seed=c.trainer.seed)
        self.learn_reward = np.sign if c.env.clip_rewards else None
        self.env_steps, self.version, self._pulled_at = 0, 0, None
        self._next_shard = index % len(self.shards)
        self._pending = None  # the last chunk sent, not yet acknowledged by its shard

    @property
    def epsilon(self) -> float:
        return self.policy.epsilon_at(self.env_steps)

    def pull(self) -> None:
        """Load the newest weights from the parameter server (if newer than ours)."""
        version, boxed = self.get(self.server.pull.remote(self.version))
        if boxed is not None:
            state = self.get(boxed[0])
            self.policy.load_params(state["online"])
            self.online.load_state_dict(state["online"])
            self.target.load_state_dict(state["target"])
            self.version = version
        self._pulled_at = self.env_steps

    @torch.no_grad()
    def priorities(self, t: Transition) -> np.ndarray:
        """Initial priorities of transitions: the learner's objective on this actor's
        copies of the online and target nets (its own TD errors)."""
        draws = NoiseDraws(_no_draw, _no_draw, _no_draw)
        out = self.objective(transition_batch(t), Forwards(self.online, self.target, draws))
        return out.priorities.detach().cpu().double().numpy()

    def collect(self) -> dict[str, Any]:
        """``distributed.chunk`` vector steps; the chunk goes to a shard. Returns what the
        learner counts: env steps, finished episodes, the shard and transitions sent."""
        d = self.config.distributed
        if self._pulled_at is None or self.env_steps - self._pulled_at >= d.pull_every:
            self.pull()
        parts, returns, lengths, start = [], [], [], self.env_steps
        for _ in range(d.chunk):
            out = self.collector.step(self.env_steps)
            t = nstep_transitions(self.nstep, out, self.learn_reward)
            if t is not None:
                parts.append(t)
            returns += out.episode_returns
            lengths += out.episode_lengths
            self.env_steps += self.envs.num_envs
        shard, sent = self._send(concat(parts)) if parts else (-1, 0)
        return dict(
            actor=self.index,
            env_steps=self.env_steps - start,
            returns=returns,
            lengths=lengths,
            shard=shard,
            transitions=sent,
            version=self.version,
            epsilon=self.epsilon,
        )

    def _send(self, t: Transition) -> tuple[int, int]:
        priorities = self.priorities(t)
        if self._pending is not None:
            try:
                self.get(self._pending)  # back-pressure: one chunk in flight
            except Exception:  # noqa: BLE001 - a lost shard: Ray re-creates it, go on
                pass
        k = self._next_shard
        self._next_shard = (k + 1) % len(self.shards)
        self._pending = self.shards[k].add.remote(t, priorities)
        return k, len(t.action)


class ReplayShardRole:
    """One replay shard: a replay buffer of ``replay.capacity / replay_shards``."""

    def __init__(self, config: Config, obs_shape, obs_dtype, index: int) -> None:
        torch.set_num_threads(1)
        shards = config.distributed.replay_shards
        capacity = max(config.learner.batch_size, config.replay.capacity // shards)
        c = dataclasses.replace(
            config, replay=dataclasses.replace(config.replay, capacity=capacity)
        )
        seed = config.trainer.seed + 7_919 * (index + 1)
        self.buffer = build_replay(c, tuple(obs_shape), obs_dtype, torch.device("cpu"), seed=seed)
        self.index, self.added = index, 0

    def add(self, transitions: Transition, priorities: np.ndarray) -> int:
        self.buffer.add_transition(transitions, priorities)
        self.added += len(transitions.action)
        return len(self.buffer)

    def sample(self, batch_size: int, beta: float) -> Batch:
        return self.buffer.sample(batch_size, beta)

    def update_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        self.buffer.update_priorities(indices, priorities)

    def stats(self) -> dict[str, float]:
        return {"size": float(len(self.buffer)), "added": float(self.added)}


class ParameterServer:
    """The newest published weights: ``[ref]`` (a one-element list, so Ray keeps the
    object reference as it is) and their version."""

    def __init__(self) -> None:
        self.version, self.boxed = 0, None

    def publish(self, version: int, boxed: list) -> None:
        self.version, self.boxed = int(version), boxed

    def pull(self, seen: int) -> tuple[int, list | None]:
        """``(version, [ref])``, or ``(seen, None)`` when nothing newer was published."""
        if self.version == seen:
            return seen, None
        return self.version, self.boxed


class EvaluatorRole:
    """Evaluation episodes on its own envs with given weights (noisy means,
    ``eval.epsilon``), seeded as the one-machine loops seed them."""

    def __init__(self, config: Config) -> None:
        torch.set_num_threads(1)
        self.config = config
        self.envs = make_envs(config, min(config.eval.episodes, 10), evaluation=True)
        obs_shape, _, num_actions = space_info(self.envs)
        net = build_network(config, obs_shape, num_actions, layout_of(self.envs))
        self.policy = build_policy(config, net, num_actions, torch.device("cpu"), evaluation=True)

    def evaluate(self, params: dict[str, torch.Tensor], seed: int) -> EvalResult:
        self.policy.load_params(params)
        c = self.config
        return evaluate(self.policy, self.envs, c.eval.episodes, seed=seed, gamma=c.learner.gamma)
