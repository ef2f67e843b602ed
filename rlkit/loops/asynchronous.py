"""The async loop (``trainer.mode: async``): an actor thread acts while the learner trains.

Roles:

- The **actor** (``Actor``, in its own thread) owns the training envs, its policy (its own
  network copy) and the n-step queues. Each vector step it loads the newest published
  parameters (if any), acts, steps the envs and sends an ``ActorStep`` (the finished
  n-step transitions and the episodes that ended) over the link.
- The **learner** (``AsyncTrainer.run``, in the calling thread) takes the actor's steps in
  order and does with each exactly what the sync loop does after acting: add to replay,
  then the training phases, target syncs, logging, evaluation and checkpoints whose
  period the step crossed. It publishes ``learner.params()`` (a snapshot) every
  ``publish_every`` updates, at the end of a training phase.

So the replay ratio (updates per agent step) and every schedule are exactly the sync
loop's: they are counted in the env steps the learner has taken in. What differs is which
parameters the actor acted with: at most ``actor_lag`` env steps ahead of the learner,
it may act with parameters up to that many env steps older than the sync loop would. The
link's throttle enforces the lag. ``actor_lag = 0`` is lockstep: the actor waits for the
learner to finish each step, and a seeded run equals the sync loop's (tested).

Checkpoints are consistent: the actor does not step past a checkpoint point until the
learner has saved it, so a checkpoint holds the actor's envs, policy generator and n-step
queues at exactly the learner's env step. A stop request makes the actor finish its
current step; the learner takes in what was sent, then saves. What a resumed async run
cannot reproduce is the interleaving (which parameters each step was acted with), so it
is not bit-exact with the uninterrupted run unless ``actor_lag = 0``
(``docs/reliability.md``).

``ThreadLink`` is the transport between the two roles inside one process (a queue, a
parameter slot and the throttle); the roles see only its methods, so a loop across
processes or machines swaps the link and keeps the roles.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from rlkit.agent.replay import NStepAccumulator
from rlkit.loops.cadence import crossings
from rlkit.loops.collector import Collector, nstep_transitions
from rlkit.loops.sync import Counters, Trainer
from rlkit.types import Transition


class ActorStep(NamedTuple):
    """What the actor sends for one vector step."""

    transitions: Transition | None  # the n-step transitions this step finished
    episode_returns: list[float]  # episodes that ended at this step
    episode_lengths: list[int]


class _Failure(NamedTuple):
    error: BaseException


class ThreadLink:
    """The actor <-> learner transport within one process.

    Steps go through an unbounded queue (the throttle bounds it); parameters through a
    slot holding the newest snapshot and its version; the throttle lets the actor start
    the vector step from ``env_steps`` only while ``env_steps - taken_in <= lag`` and,
    at a hold point (``holds(env_steps)``: the learner saves there), only once the learner
    has taken in that step entirely.
    """

    def __init__(self, lag: int, holds: Callable[[int], bool]) -> None:
        self.lag = int(lag)
        self.holds = holds
        self._steps: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._taken_in = 0  # env steps the learner has finished with
        self._parked: int | None = None  # env step at which the actor waits
        self._stopping = False
        self._finished = False
        self._params: dict[str, torch.Tensor] | None = None
        self._version = 0

    # ------------------------------------------------------------------ actor side
    def wait_turn(self, env_steps: int) -> bool:
        """Block until the actor may step from ``env_steps``; False: stop instead."""
        with self._cond:
            while not self._stopping and (
                env_steps - self._taken_in > self.lag
                or (self.holds(env_steps) and self._taken_in < env_steps)
            ):
                self._parked = env_steps
                self._cond.notify_all()
                self._cond.wait()
            self._parked = None
            return not self._stopping

    def send(self, step: ActorStep) -> None:
        self._steps.put(step)

    def params(self, seen: int) -> tuple[int, dict[str, torch.Tensor] | None]:
        """The newest parameters and their version, or ``(seen, None)`` if none newer."""
        with self._cond:
            if self._version == seen:
                return seen, None
            return self._version, self._params

    def fail(self, error: BaseException) -> None:
        self._steps.put(_Failure(error))

    def finish(self) -> None:
        """The actor stopped (no more steps will come)."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()
        self._steps.put(None)

    # ------------------------------------------------------------------ learner side
    def start(self, env_steps: int) -> None:
        with self._cond:
            self._taken_in = env_steps

    def receive(self) -> ActorStep | None:
        """The actor's next step (None once it finished); re-raises the actor's error."""
        item = self._steps.get()
        if isinstance(item, _Failure):
            raise item.error
        return item

    def taken_in(self, env_steps: int) -> None:
        """The learner finished with every step up to ``env_steps``."""
        with self._cond:
            self._taken_in = env_steps
            self._cond.notify_all()

    def publish(self, params: dict[str, torch.Tensor]) -> None:
        """Hand the actor a snapshot of ``params`` (copied: the learner goes on updating)."""
        snapshot = {k: v.detach().clone() for k, v in params.items()}
        with self._cond:
            self._params, self._version = snapshot, self._version + 1

    def wait_parked(self, env_steps: int) -> None:
        """Block until the actor waits at ``env_steps`` (or has stopped). RuntimeError if it
        waits anywhere else: it went past a hold point, and a checkpoint would not match."""
        with self._cond:
            while not self._finished and self._parked != env_steps:
                if self._parked is not None and self._parked > env_steps:
                    raise RuntimeError(
                        f"the actor is at env step {self._parked}, past the checkpoint at "
                        f"{env_steps}"
                    )
                self._cond.wait()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()


class Actor:
    """The actor role: steps ``collector`` and turns its steps into n-step transitions,
    loading the newest published parameters into ``collector.policy`` before each step."""

    def __init__(
        self,
        collector: Collector,
        nstep: NStepAccumulator,
        learn_reward: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.collector, self.nstep, self.learn_reward = collector, nstep, learn_reward

    def run(self, link: ThreadLink, env_steps: int, total_steps: int) -> None:
        """Act from ``env_steps`` until ``total_steps`` or until the link says stop."""
        seen, num_envs = 0, self.collector.num_envs
        try:
            while env_steps < total_steps and link.wait_turn(env_steps):
                seen, params = link.params(seen)
                if params is not None:
                    self.collector.policy.load_params(params)
                out = self.collector.step(env_steps)
                link.send(
                    ActorStep(
                        nstep_transitions(self.nstep, out, self.learn_reward),
                        out.episode_returns,
                        out.episode_lengths,
                    )
                )
                env_steps += num_envs
        except BaseException as exc:  # handed to the learner, which raises it
            link.fail(exc)
        finally:
            link.finish()


class AsyncTrainer(Trainer):
    """``Trainer`` with acting in an actor thread (see the module docstring).

    ``actor_lag``: env steps the actor may run ahead of the learner (0 = lockstep);
    ``publish_every``: updates between parameter snapshots for the actor (checked at the
    end of each training phase). Everything else as ``Trainer``.
    """

    def __init__(self, *, actor_lag: int, publish_every: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.actor_lag, self.publish_every = int(actor_lag), int(publish_every)
        self.actor = Actor(self.collector, self.nstep, self.learn_reward)
        self._link: ThreadLink | None = None
        self._published_at = -1  # updates at the last snapshot

    def _holds(self, env_steps: int) -> bool:
        """Whether the learner saves after the vector step ending at ``env_steps``."""
        c, n = self.cadence, self.collector.num_envs
        return (
            0 < env_steps < c.total_steps
            and crossings(env_steps - n, env_steps, c.checkpoint_every) > 0
        )

    def publish_params(self) -> None:
        """A snapshot for the actor, when ``publish_every`` updates passed since the last
        (and always the first time in a run, e.g. after resuming)."""
        updates = self.counters.updates
        if self._link is None:
            return
        if self._published_at < 0 or updates - self._published_at >= self.publish_every:
            self._link.publish(self.learner.params())
            self._published_at = updates

    def _save(self) -> None:
        if self._link is not None:  # the actor waits at exactly this step (a hold point)
            self._link.wait_parked(self.counters.env_steps)
        super()._save()

    def run(self, stop: Callable[[], bool] | None = None) -> Counters:
        """Train until ``total_steps`` env steps (or until ``stop()`` returns True)."""
        counters = self.counters
        link = self._link = ThreadLink(self.actor_lag, self._holds)
        self._published_at = -1
        link.start(counters.env_steps)
        self._start()  # resets the envs the first time; publishes when resuming
        thread = threading.Thread(
            target=self.actor.run,
            args=(link, counters.env_steps, self.cadence.total_steps),
            name="rlkit-actor",
            daemon=True,
        )
        thread.start()
        try:
            stopped = self._take_in(link, stop)
        finally:
            link.stop()
            while thread.is_alive():  # let it deliver a step it began (or fail)
                thread.join(timeout=0.05)
            self._link = None
        if stopped:
            super()._save()
            return counters
        self._finish_run()
        return counters

    def _take_in(self, link: ThreadLink, stop: Callable[[], bool] | None) -> bool:
        """The learner's side until the actor finished; True when ``stop()`` asked to stop
        (every step the actor had sent is taken in first)."""
        counters, num_envs = self.counters, self.collector.num_envs
        stopping = False
        while (step := link.receive()) is not None:
            before = counters.env_steps
            after = before + num_envs
            self._keep(*step)
            counters.env_steps = after
            self._learn(before, after)
            if not stopping:
                self._periodic(before, after)
            link.taken_in(after)
            if not stopping and stop is not None and stop():
                stopping = True
                link.stop()
        return stopping
