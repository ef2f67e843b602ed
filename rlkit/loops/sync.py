"""The training loop.

Glossary
--------
env step
    One step of one environment. A vector step of ``num_envs`` environments is
    ``num_envs`` env steps. Counter: ``env_steps``. Every step count in the config is
    in env steps unless its name says otherwise.
transition
    ``(obs, action, reward, next_obs, discount)`` stored in replay. With n-step returns,
    ``reward`` is the discounted sum of up to n rewards and ``discount`` is ``gamma**k``
    (0 if the episode terminated inside the window; truncation keeps ``gamma**k``).
update
    One gradient step on one sampled batch. Counter: ``updates``.
training phase
    Every ``train_every`` env steps once ``env_steps >= learning_starts``:
    ``updates_per_train`` updates, each followed by writing the new priorities back to
    replay.
target sync
    Every ``target_update_period`` env steps (from the first update on): the trainer calls
    ``learner.sync_target()``, which moves the target net ``target_tau`` of the way to the
    online net (1 = hard copy). Period 0 means no target network. Counter:
    ``target_syncs``.
evaluation
    Every ``eval_every`` env steps and at the end: ``eval_episodes`` episodes on separate
    environments with the greedy policy (noisy layers use their means).
checkpoint
    Every ``checkpoint_every`` env steps and at the end.

episode
    What the env calls one (a whole Atari game, even when a lost life is a learning
    terminal): ``train/episode_return`` and ``train/episode_length`` count env steps and
    rewards of whole episodes; a NEXT_STEP autoreset step belongs to no episode.
    Counter: ``episodes``.

Roles exchange values, not objects: the policy acts with its own copy of the network,
and after every training phase the loop hands it the learner's ``params()``
(``policy.load_params``); evaluation loads them into the evaluation policy. Exploration
(epsilon schedule, acting noise) lives in the policy (``rlkit.agent.policy``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import numpy as np

from rlkit.agent.learner import DQNLearner
from rlkit.agent.replay import NStepAccumulator, ReplayBuffer
from rlkit.agent.schedules import Schedule
from rlkit.loops.cadence import Cadence, Counters, _Window, crossings
from rlkit.loops.collector import Collector, StepOutput, nstep_transitions
from rlkit.loops.evaluate import EvalResult
from rlkit.types import Logger, LossOutput, Transition


class NumericalError(RuntimeError):
    """NaN or Inf appeared in the loss or the parameters."""


class Trainer:
    """Drives collector -> n-step -> replay -> learner, with evaluation and logging.

    Components are injected ready-made (see ``rlkit.build``); the trainer only decides
    when each one runs.
    """

    def __init__(
        self,
        *,
        collector: Collector,
        nstep: NStepAccumulator,
        replay: ReplayBuffer,
        learner: DQNLearner,
        beta: Schedule,
        cadence: Cadence,
        logger: Logger,
        evaluate: Callable[[int], EvalResult] | None = None,
        checkpoint: Callable[[Trainer], None] | None = None,
        seed: int | None = None,
        sample_phase_together: bool = False,
        progress: Callable[[int], None] | None = None,
        learn_reward: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        """``sample_phase_together`` (uniform replay only) draws a training phase's
        batches at once; ``progress(env_steps)`` is called after every vector step;
        ``learn_reward`` maps the env's rewards [N] to the ones stored for learning (e.g.
        ``np.sign`` for Atari); episode returns are always the env's own."""
        self.collector = collector
        self.nstep = nstep
        self.replay = replay
        self.learner = learner
        self.policy = collector.policy
        self.beta = beta
        self.cadence = cadence
        self.logger = logger
        self.evaluate_fn = evaluate
        self.checkpoint_fn = checkpoint
        self.seed = seed
        self.progress = progress
        self.learn_reward = learn_reward
        self._train_phase = (
            self._train_phase_together if sample_phase_together else self._train_phase_sequential
        )
        self.counters = Counters()
        self.last_eval: EvalResult | None = None
        self._window = _Window()
        self._window_restored = False
        self._started = False
        self._replay_needed = 0  # wait_for_replay: transitions required before training
        self._pending = None  # a vector step's StepOutput whose storing overlaps the next step

    # ------------------------------------------------------------------ pieces

    def _record(self, out: LossOutput) -> None:
        if not math.isfinite(out.loss):
            raise NumericalError(
                f"loss became {out.loss} at env step {self.counters.env_steps} "
                f"(update {self.counters.updates + 1}); likely causes: learning rate too "
                "high, rewards too large for the value range, or exploding gradients "
                "(set learner.max_grad_norm)"
            )
        self.counters.updates += 1
        self._window.add_metrics(out.metrics)

    def _train_phase_sequential(self, beta: float) -> None:
        """Sample, update, write priorities back: one batch at a time (prioritized replay)."""
        c = self.cadence
        for _ in range(c.updates_per_train):
            batch = self.replay.sample(c.batch_size, beta=beta)
            out = self.learner.update(batch)
            self._record(out)
            self.replay.update_priorities(batch.indices, out.priorities)

    def _train_phase_together(self, beta: float) -> None:
        """Uniform replay: all batches of the phase in one draw (i.i.d. either way), and
        the learner may evaluate its fixed target net on all of them at once."""
        c = self.cadence
        batch = self.replay.sample(c.batch_size * c.updates_per_train, beta=beta)
        for out in self.learner.update_many(batch, c.updates_per_train):
            self._record(out)

    def wait_for_replay(self, transitions: int) -> None:
        """Start no training phase until replay holds ``transitions`` transitions (e.g.
        after resuming without the replay contents); then the requirement is dropped."""
        self._replay_needed = int(transitions)

    def _replay_ready(self) -> bool:
        size = len(self.replay)
        if size < self.cadence.batch_size or size < self._replay_needed:
            return False
        self._replay_needed = 0
        return True

    def _sync_target(self) -> None:
        self.learner.sync_target()
        self.counters.target_syncs += 1

    def _log_window(self, env_steps: int) -> None:
        now = time.perf_counter()
        scalars = self._window.scalars(env_steps, self.counters.updates, now)
        scalars["explore/epsilon"] = self.policy.epsilon_at(env_steps)
        scalars["replay/beta"] = self.beta.value(env_steps)
        scalars["replay/size"] = float(len(self.replay))
        self.logger.log(env_steps, scalars)
        self._window = self._new_window(now)

    def _new_window(self, now: float | None = None) -> _Window:
        now = time.perf_counter() if now is None else now
        return _Window.starting(self.counters.env_steps, self.counters.updates, now)

    def run_evaluation(self) -> EvalResult | None:
        if self.evaluate_fn is None:
            return None
        result = self.evaluate_fn(self.counters.evaluations)
        self.counters.evaluations += 1
        self.last_eval = result
        self.logger.log(self.counters.env_steps, result.scalars())
        return result

    def _check_parameters(self) -> None:
        import torch

        for name, param in self.learner.online.named_parameters():
            if not torch.isfinite(param).all():
                raise NumericalError(
                    f"parameter {name} holds NaN/Inf at env step {self.counters.env_steps}; "
                    "likely causes: learning rate too high or exploding gradients"
                )

    # ------------------------------------------------------------------ loop

    def publish_params(self) -> None:
        """Hand the learner's current parameters to the acting policy."""
        self.policy.load_params(self.learner.params())

    def _start(self) -> None:
        """First call: reset the envs. Every call: (re)start the logging window's clock (a
        resumed run continues its window but times its speed from now), and give the
        policy the learner's parameters when updates have already happened (resume)."""
        counters = self.counters
        if not self._started:
            self.collector.reset(seed=self.seed)
            self._started = True
        if not self._window_restored:
            self._window = self._new_window()
        else:
            w = self._window
            w.start_time = time.perf_counter()
            w.timer_steps, w.timer_updates = counters.env_steps, counters.updates
        self._window_restored = False
        if counters.updates:
            self.publish_params()

    def _act(self, before: int, after: int) -> None:
        """One vector step: act and step the envs, and store the transitions (n-step
        windows, replay, episode statistics).

        While the envs step (``Collector.begin`` .. ``finish``) the previous step's
        transitions are stored, when they were held back: that is done only at steps where
        nothing reads the replay, the n-step queues or the logging window before the next
        step (no training phase or target sync, log, evaluation, checkpoint or end), so
        every later decision sees exactly what it would without the overlap.
        """
        self.collector.begin(before)
        self._store_pending()
        out = self.collector.finish()
        if self._reads_transitions(before, after):
            self._store(out)
        else:
            self._pending = out

    def _reads_transitions(self, before: int, after: int) -> bool:
        """Whether anything after the vector step ``(before, after]`` reads what it stored."""
        c = self.cadence
        learning = after >= c.learning_starts and (
            crossings(max(before, c.learning_starts - 1), after, c.train_every)
            or crossings(before, after, c.target_update_period)
        )
        periodic = any(
            crossings(before, after, period)
            for period in (c.log_every, c.eval_every, c.checkpoint_every)
        )
        return bool(learning or periodic or after >= c.total_steps)

    def _store_pending(self) -> None:
        if self._pending is not None:
            out, self._pending = self._pending, None
            self._store(out)

    def _store(self, out: StepOutput) -> None:
        self._keep(
            nstep_transitions(self.nstep, out, self.learn_reward),
            out.episode_returns,
            out.episode_lengths,
        )

    def _keep(self, finished: Transition | None, returns: list, lengths: list) -> None:
        """Add the finished n-step transitions to replay and the episodes that ended to
        the logging window."""
        if finished is not None:
            self.replay.add(*finished)
        if returns:
            self._window.returns += returns
            self._window.lengths += lengths
            self.counters.episodes += len(returns)

    def _learn(self, before: int, after: int) -> None:
        """The training phases due in ``(before, after]``, then the policy's new parameters
        and the target sync when its period was crossed."""
        c = self.cadence
        if after < c.learning_starts or not self._replay_ready():
            return
        phases = crossings(max(before, c.learning_starts - 1), after, c.train_every)
        if phases:
            beta = self.beta.value(after)
            for _ in range(phases):
                self._train_phase(beta)
            self.publish_params()
        if self.counters.updates and crossings(before, after, c.target_update_period):
            self._sync_target()

    def _periodic(self, before: int, after: int) -> None:
        """Logging, evaluation and checkpoints whose period was crossed (evaluation and
        checkpoint at the very end happen once, after the loop)."""
        c = self.cadence
        if crossings(before, after, c.log_every):
            self._log_window(after)
        if crossings(before, after, c.eval_every) and after < c.total_steps:
            self._check_parameters()
            self.run_evaluation()
        if crossings(before, after, c.checkpoint_every) and after < c.total_steps:
            self._save()
        if self.progress is not None:
            self.progress(after)

    def run(self, stop: Callable[[], bool] | None = None) -> Counters:
        """Train until ``total_steps`` env steps (or until ``stop()`` returns True)."""
        counters = self.counters
        self._start()
        num_envs = self.collector.num_envs
        while counters.env_steps < self.cadence.total_steps:
            before = counters.env_steps
            after = before + num_envs
            self._act(before, after)
            counters.env_steps = after
            self._learn(before, after)
            self._periodic(before, after)
            if stop is not None and stop():
                self._store_pending()
                self._save()
                return counters
        self._finish_run()
        return counters

    def _finish_run(self) -> None:
        """After the last step: check the weights, log what is left of the window, the
        final evaluation and the final checkpoint."""
        self._check_parameters()
        if self._window.updates or self._window.returns:
            self._log_window(self.counters.env_steps)
        self.run_evaluation()
        self._save()

    # ------------------------------------------------------------------ checkpointing

    def state_dict(self) -> dict:
        """Counters and the open logging window (everything but its wall-clock start)."""
        w = self._window
        return {
            "counters": dataclasses.asdict(self.counters),
            "started": self._started,
            "replay_needed": self._replay_needed,
            "window": {
                "metrics": dict(w.metrics),
                "updates": w.updates,
                "returns": list(w.returns),
                "lengths": list(w.lengths),
                "start_steps": w.start_steps,
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self.counters = Counters(**state["counters"])
        self._started = bool(state["started"])
        self._replay_needed = int(state.get("replay_needed", 0))
        w = state["window"]
        self._window = _Window(
            metrics=dict(w["metrics"]),
            updates=int(w["updates"]),
            returns=list(w["returns"]),
            lengths=list(w["lengths"]),
            start_steps=int(w["start_steps"]),
        )
        self._window_restored = True

    def _save(self) -> None:
        if self.checkpoint_fn is not None:
            self.checkpoint_fn(self)
