"""Ape-X on Ray (Horgan et al. 2018): many actors feed sharded prioritized replay, one
learner samples it, updates and publishes weights.

The roles (``rlkit.distributed.roles``) run as Ray actors; ``ApexTrainer`` is the
learner's loop in the calling process. Per event it does what the one-machine loops do,
counted in the env steps the actors report:

- an actor's chunk came back (its transitions are already in a shard, with the actor's
  own priorities): count its env steps and episodes, send it off again, and run what the
  env steps crossed: logging (``trainer.log_every``), evaluation (``eval.every``, on the
  evaluator, not waited for), checkpoints (``trainer.checkpoint_every``);
- a sample came back: one ``learner.update``, its priorities sent back to the shard it
  came from; a target sync every ``max(updates_per_train, target_update_period *
  ratio)`` updates (the updates the replay ratio puts into that many env steps, and at
  least one training phase, as in the sync loop, whose syncs fall between phases:
  updates run continuously here, not in phases); every ``distributed.publish_every`` updates the weights put into the object
  store and announced to the parameter server (actors pull every
  ``distributed.pull_every`` env steps).

The replay ratio is ``ratio = trainer.updates_per_train / trainer.train_every`` updates
per env step past ``trainer.learning_starts``. The learner keeps
``distributed.in_flight`` sample requests open while the updates stay within it; with
``distributed.throttle`` an actor whose chunk came back waits while the learner is more
than one round of chunks behind it, so acting faster does not change how often each
transition is replayed (without it the actors run free, as in Ape-X, and the ratio falls
when the learner cannot keep up).

Faults: actors and shards are created with unlimited restarts. A call to an actor that
died fails, is reported and is sent again (Ray restarts the actor from its constructor:
new envs, seeded anew); a shard that died comes back empty, with a warning, and the
learner samples it again once it holds a batch.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rlkit.agent.learner import DQNLearner
from rlkit.agent.schedules import Schedule
from rlkit.build import eval_seed
from rlkit.config import Config
from rlkit.distributed.launch import Handles
from rlkit.loops.cadence import Counters, _Window, crossings
from rlkit.loops.evaluate import EvalResult
from rlkit.types import Batch, Logger


@dataclass
class _ActorInfo:
    env_steps: int = 0
    version: int = 0
    epsilon: float = 0.0
    failures: int = 0


def to_device(batch: Batch, device: torch.device) -> Batch:
    """``batch`` with its tensors on ``device`` (non-blocking copies)."""
    moved = {
        f: getattr(batch, f).to(device, non_blocking=True)
        for f in ("obs", "action", "reward", "next_obs", "discount", "weights")
    }
    return dataclasses.replace(batch, **moved)


@dataclass
class _Pending:
    """Open requests: actor chunks, samples, the evaluation."""

    actors: dict = field(default_factory=dict)  # ref -> actor index
    samples: dict = field(default_factory=dict)  # ref -> shard index
    evaluation: Any = None
    eval_steps: int = 0  # env steps of the evaluated weights

    def refs(self) -> list:
        extra = [self.evaluation] if self.evaluation is not None else []
        return [*self.actors, *self.samples, *extra]


class ApexTrainer:
    """The Ape-X learner loop (see the module docstring).

    ``save(trainer)`` writes a checkpoint (``state_dict``); ``warn(text)`` reports a
    fault; ``progress(env_steps)`` follows the env steps.
    """

    def __init__(
        self,
        config: Config,
        learner: DQNLearner,
        device: torch.device,
        logger: Logger,
        handles: Handles,
        beta: Schedule,
        *,
        save: Callable[[ApexTrainer], None] | None = None,
        warn: Callable[[str], None] = print,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.config, self.learner, self.device, self.logger = config, learner, device, logger
        self.h, self.beta, self.save, self.warn, self.progress = handles, beta, save, warn, progress
        self.counters = Counters()
        self.last_eval: EvalResult | None = None
        t = config.trainer
        self.ratio = t.updates_per_train / t.train_every
        self._learn_from, self._updates_base = t.learning_starts, 0
        shard_capacity = max(
            config.learner.batch_size, config.replay.capacity // len(handles.shards)
        )
        self._shard_capacity = shard_capacity
        self.shard_sizes = [0] * len(handles.shards)
        self.actor_info = [_ActorInfo() for _ in handles.actors]
        self._next_shard, self._version, self._published_at = 0, 0, -1
        self._window = _Window()
        self._pending = _Pending()
        period = config.learner.target_update_period
        # as in the sync loop, where a sync falls between training phases: at least one
        # phase of updates, and the updates the ratio puts into the period
        sync = max(t.updates_per_train, round(period * self.ratio))
        self.sync_every = sync if period > 0 else 0
        d = config.distributed
        #: updates the learner may lag behind the ratio (throttle): one round of chunks
        self.slack = self.ratio * d.chunk * config.env.num_envs * d.actors + d.in_flight
        self._idle: list[int] = []  # actors waiting for the learner (throttle)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"counters": dataclasses.asdict(self.counters), "version": self._version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Counters from a checkpoint. The replay shards start empty: learning waits until
        they hold ``min(learning_starts, capacity)`` transitions again."""
        self.counters = Counters(**state["counters"])
        self._version = int(state.get("version", 0))
        refill = min(self.config.trainer.learning_starts, self.config.replay.capacity)
        self._learn_from = self.counters.env_steps + refill
        self._updates_base = self.counters.updates

    # ------------------------------------------------------------------ weights
    def publish(self, wait: bool = False) -> None:
        """Put the online and target weights into the object store and announce them
        (``wait``: until the parameter server has them)."""
        learner = self.learner
        state = {
            name: {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
            for name, net in (("online", learner.online), ("target", learner.target))
        }
        self._version += 1
        ref = self.h.server.publish.remote(self._version, [self.h.ray.put(state)])
        if wait:
            self.h.ray.get(ref)
        self._published_at = self.counters.updates

    # ------------------------------------------------------------------ the loop
    def allowed_updates(self) -> int:
        """Updates the replay ratio allows at the current env step."""
        past = self.counters.env_steps - self._learn_from
        if past < 0:
            return self._updates_base
        return self._updates_base + math.floor(self.ratio * past + 1e-9)

    def _request_samples(self) -> None:
        p, bs = self._pending, self.config.learner.batch_size
        beta = self.beta.value(self.counters.env_steps)
        if self.counters.env_steps < self._learn_from:
            return
        while len(p.samples) < self.config.distributed.in_flight and (
            self.counters.updates + len(p.samples) < self.allowed_updates()
        ):
            ready = [k for k, size in enumerate(self.shard_sizes) if size >= bs]
            if not ready:
                return
            k = min(ready, key=lambda j: (j - self._next_shard) % len(self.shard_sizes))
            self._next_shard = (k + 1) % len(self.shard_sizes)
            p.samples[self.h.shards[k].sample.remote(bs, beta)] = k

    def run(self, stop: Callable[[], bool] | None = None) -> Counters:
        """Train until ``trainer.total_steps`` env steps (or ``stop()``); the final
        evaluation and checkpoint at the end (a checkpoint only, after a stop)."""
        ray, p = self.h.ray, self._pending
        self.publish(wait=True)  # the actors' first pull gets the learner's weights
        for i, actor in enumerate(self.h.actors):
            p.actors[actor.collect.remote()] = i
        now = time.perf_counter()
        self._window = _Window.starting(self.counters.env_steps, self.counters.updates, now)
        stopped = False
        while self.counters.env_steps < self.config.trainer.total_steps:
            self._request_samples()
            self._resume_actors()
            ready, _ = ray.wait(p.refs(), num_returns=1, timeout=5.0)
            for ref in ready:
                self._dispatch(ref)
            if stop is not None and stop():
                stopped = True
                break
        self._drain_evaluation()
        if not stopped:
            self._catch_up()
            self.run_evaluation()
        if self.save is not None:
            self.save(self)
        return self.counters

    def _dispatch(self, ref) -> None:
        p = self._pending
        if ref in p.actors:
            self._on_chunk(p.actors.pop(ref), ref)
        elif ref in p.samples:
            self._on_sample(p.samples.pop(ref), ref)
        elif ref is p.evaluation:
            p.evaluation = None
            self._log_eval(self.h.ray.get(ref))

    # ------------------------------------------------------------------ events
    def _on_chunk(self, i: int, ref) -> None:
        ray, info = self.h.ray, self.actor_info[i]
        try:
            stats = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            info.failures += 1
            self.warn(f"actor {i} died ({type(exc).__name__}); Ray restarts it and it acts again")
            if info.failures > 20:
                raise RuntimeError(f"actor {i} failed {info.failures} times in a row") from exc
            time.sleep(0.2)
            self._pending.actors[self.h.actors[i].collect.remote()] = i
            return
        info.failures = 0
        self._idle.append(i)
        before = self.counters.env_steps
        after = before + int(stats["env_steps"])
        self.counters.env_steps = after
        info.env_steps += int(stats["env_steps"])
        info.version, info.epsilon = int(stats["version"]), float(stats["epsilon"])
        if stats["shard"] >= 0:
            k = stats["shard"]
            self.shard_sizes[k] = min(
                self._shard_capacity, self.shard_sizes[k] + stats["transitions"]
            )
        self.counters.episodes += len(stats["returns"])
        self._window.returns += stats["returns"]
        self._window.lengths += stats["lengths"]
        self._periodic(before, after)
        if self.progress is not None:
            self.progress(after)

    def counting(self) -> bool:
        """Whether the replay ratio binds: learning has started and a shard holds a batch
        (before that the actors run free)."""
        bs = self.config.learner.batch_size
        return self.counters.env_steps >= self._learn_from and max(self.shard_sizes) >= bs

    def _resume_actors(self) -> None:
        """Send idle actors off again. With the throttle, only as many as keep the
        learner's deficit (allowed less done updates) within ``slack`` once every actor in
        flight has come back (each adds ``ratio * chunk * num_envs`` allowed updates)."""
        p = self._pending
        if self.config.distributed.throttle and self._idle and self.counting():
            d = self.config.distributed
            per_chunk = self.ratio * d.chunk * self.config.env.num_envs
            deficit = self.allowed_updates() - self.counters.updates - len(p.samples)
            room = math.floor((self.slack - deficit) / per_chunk + 1e-9) - len(p.actors)
            resume, self._idle = self._idle[: max(0, room)], self._idle[max(0, room) :]
        else:
            resume, self._idle = self._idle, []
        for i in resume:
            p.actors[self.h.actors[i].collect.remote()] = i

    def _catch_up(self) -> None:
        """After the last env step: the updates the replay ratio still allows."""
        p = self._pending
        while True:
            self._request_samples()
            if not p.samples:
                return
            ready, _ = self.h.ray.wait(list(p.samples), num_returns=1, timeout=5.0)
            for ref in ready:
                self._dispatch(ref)

    def _on_sample(self, k: int, ref) -> None:
        ray = self.h.ray
        try:
            batch = ray.get(ref)
        except ray.exceptions.RayError as exc:
            self.warn(f"replay shard {k} was lost ({type(exc).__name__}); Ray re-creates it empty")
            self.shard_sizes[k] = 0
            return
        out = self.learner.update(to_device(batch, self.device))
        self.counters.updates += 1
        self.h.shards[k].update_priorities.remote(batch.indices, out.priorities)
        self._window.add_metrics(out.metrics)
        if self.sync_every and self.counters.updates % self.sync_every == 0:
            self.learner.sync_target()
            self.counters.target_syncs += 1
        if self.counters.updates - self._published_at >= self.config.distributed.publish_every:
            self.publish()

    def _periodic(self, before: int, after: int) -> None:
        c, t = self.config, self.config.trainer
        if crossings(before, after, t.log_every):
            self._log_window(after)
        if after < t.total_steps and crossings(before, after, c.eval.every):
            self._start_evaluation()
        if after < t.total_steps and crossings(before, after, t.checkpoint_every) and self.save:
            self.save(self)

    # ------------------------------------------------------------------ evaluation
    def _eval_params(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.learner.params().items()}

    def _start_evaluation(self) -> None:
        p = self._pending
        if p.evaluation is not None:
            return  # the last one is still running: this point is skipped
        seed = eval_seed(self.config, self.counters.evaluations)
        p.evaluation = self.h.evaluator.evaluate.remote(self._eval_params(), seed)
        p.eval_steps = self.counters.env_steps
        self.counters.evaluations += 1

    def _log_eval(self, result: EvalResult) -> None:
        self.last_eval = result
        scalars = {**result.scalars(), "eval/weights_env_steps": float(self._pending.eval_steps)}
        self.logger.log(self.counters.env_steps, scalars)

    def _drain_evaluation(self) -> None:
        p = self._pending
        if p.evaluation is not None:
            ref, p.evaluation = p.evaluation, None
            self._log_eval(self.h.ray.get(ref))

    def run_evaluation(self) -> EvalResult:
        """An evaluation of the current weights, waited for."""
        self._start_evaluation()
        self._drain_evaluation()
        return self.last_eval

    # ------------------------------------------------------------------ logging
    def _log_window(self, env_steps: int) -> None:
        now = time.perf_counter()
        scalars = self._window.scalars(env_steps, self.counters.updates, now)
        for i, info in enumerate(self.actor_info):
            scalars[f"actors/{i}/env_steps"] = float(info.env_steps)
            scalars[f"actors/{i}/policy_version"] = float(info.version)
            scalars[f"actors/{i}/epsilon"] = info.epsilon
        for k, size in enumerate(self.shard_sizes):
            scalars[f"replay/{k}/size"] = float(size)
        scalars["replay/beta"] = self.beta.value(env_steps)
        scalars["learner/policy_version"] = float(self._version)
        self.logger.log(env_steps, scalars)
        self._window = _Window.starting(env_steps, self.counters.updates, now)
