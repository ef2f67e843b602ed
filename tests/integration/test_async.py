"""The async loop (``trainer.mode: async``) built from a config, on the scripted counting
env: the same schedules as the sync loop counted in the env steps the learner took in, the
actor held within ``actor_lag``, parameters published every ``publish_every`` updates,
checkpoints at exactly the learner's step, errors and stops handed across the threads,
and lockstep (``actor_lag: 0``) equal to the sync loop."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from rlkit.loops.asynchronous import AsyncTrainer, ThreadLink
from tests.integration.test_wiring import make_run, spy

ASYNC = {"mode": "async", "actor_lag": 8}


def run_async(overrides: dict | None = None):
    overrides = dict(overrides or {})
    overrides["trainer"] = {**ASYNC, **overrides.get("trainer", {})}
    return make_run(overrides)


def test_async_mode_builds_the_async_loop():
    c, _ = run_async()
    assert isinstance(c.trainer, AsyncTrainer)
    assert (c.trainer.actor_lag, c.trainer.publish_every) == (8, 1)
    sync, _ = make_run()
    assert not isinstance(sync.trainer, AsyncTrainer)


def test_training_phases_and_target_syncs_fall_on_the_sync_loops_env_steps():
    c, _ = run_async(
        {
            "trainer": {"learning_starts": 10, "train_every": 4, "updates_per_train": 3},
            "replay": {"prioritized": True},
        }
    )
    trainer, calls, syncs = c.trainer, [], []
    spy(c.learner, "update", calls, before=lambda batch: trainer.counters.env_steps)
    spy(c.learner, "sync_target", syncs, before=lambda: trainer.counters.env_steps)
    trainer.run()
    # as in the sync loop (test_wiring): phases at multiples of 4 from step 10, 3 updates
    # each, whatever the actor did meanwhile; target syncs every 10 steps from the first
    # update on (learner.target_update_period = 10)
    assert calls == [s for s in (12, 16, 20, 24, 28, 32, 36, 40) for _ in range(3)]
    assert syncs == [20, 30, 40]
    assert trainer.counters.updates == 24 and trainer.counters.env_steps == 40


def test_the_actor_stays_within_actor_lag_of_the_learner():
    c, _ = run_async({"env": {"num_envs": 2}, "trainer": {"total_steps": 80}})
    trainer, ahead = c.trainer, []
    links: list[ThreadLink] = []
    real_run = trainer.actor.run

    def actor_run(link, env_steps, total):
        links.append(link)
        real_run(link, env_steps, total)

    trainer.actor.run = actor_run
    spy(
        trainer.collector,
        "step",
        [],
        before=lambda env_steps: ahead.append(env_steps - links[0]._taken_in),
    )
    # a slow learner: the actor runs ahead as far as it may
    spy(c.learner, "update_many", [], before=lambda *a: time.sleep(0.002))
    trainer.run()
    # 2 envs, actor_lag 8: the actor starts a vector step at most 8 env steps past what
    # the learner took in, and with a slow learner it gets there
    assert len(ahead) == 40
    assert max(ahead) == 8 and min(ahead) >= 0


def test_parameters_reach_the_actor_every_publish_every_updates(monkeypatch):
    c, _ = run_async({"trainer": {"publish_every": 3}})
    published, loaded = [], []
    real_publish = ThreadLink.publish

    def publish(link, params):
        published.append((c.trainer.counters.updates, params["torso.net.1.weight"].clone()))
        real_publish(link, params)

    monkeypatch.setattr(ThreadLink, "publish", publish)
    policy = c.trainer.collector.policy
    spy(policy, "load_params", loaded, before=lambda state: state["torso.net.1.weight"])
    c.trainer.run()
    # one update per env step from step 10 to 40: updates 1..31; a snapshot at the first
    # phase, then whenever 3 more updates passed: 1, 4, 7, ..., 31
    assert [u for u, _ in published] == list(range(1, 32, 3))
    # the actor acts only with published snapshots, newest last, never a live tensor
    assert loaded, "the actor never loaded parameters"
    live = c.learner.online.state_dict()["torso.net.1.weight"]
    values = [w for _, w in published]
    for w in loaded:
        assert w.data_ptr() != live.data_ptr()
        assert any(torch.equal(w, p) for p in values)


def test_lockstep_equals_the_sync_loop():
    setup = {
        "env": {"num_envs": 2},
        "network": {"noisy": True, "dueling": True, "atoms": 5},
        "replay": {"prioritized": True, "n_step": 3},
        "trainer": {"total_steps": 60, "log_every": 10},
    }
    sync, sync_log = make_run(setup)
    sync.trainer.run()
    lockstep, lock_log = run_async({**setup, "trainer": {**setup["trainer"], "actor_lag": 0}})
    lockstep.trainer.run()

    def metrics(log):  # perf/* are timings
        return [
            (s, {k: v for k, v in p.items() if not k.startswith("perf/")}) for s, p in log.points
        ]

    assert len(sync_log.points) == 7  # logs at 10, 20, ..., 60 and the final evaluation
    assert metrics(lock_log) == metrics(sync_log)  # every logged metric, bit for bit
    for a, b in zip(
        sync.learner.online.state_dict().values(),
        lockstep.learner.online.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_checkpoints_see_the_actor_at_the_learners_step():
    c, _ = run_async({"env": {"num_envs": 2}, "trainer": {"total_steps": 60}})
    trainer = c.trainer
    trainer.cadence = type(trainer.cadence)(**{**trainer.cadence.__dict__, "checkpoint_every": 14})
    events: list[tuple[str, int]] = []
    spy(trainer.collector, "step", [], before=lambda env_steps: events.append(("act", env_steps)))
    saved_obs = []

    def checkpoint(t):
        events.append(("save", t.counters.env_steps))
        saved_obs.append(t.collector.state_dict()["returns"].clone())

    trainer.checkpoint_fn = checkpoint
    trainer.run()
    saves = [s for kind, s in events if kind == "save"]
    # checkpoint_every 14 with 2 envs: crossings at steps 14, 28, 42, 56, plus the end (60)
    assert saves == [14, 28, 42, 56, 60]
    for k, (kind, s) in enumerate(events):
        if kind == "save":
            acted = [e for what, e in events[:k] if what == "act"]
            assert max(acted) == s - 2  # the actor stepped exactly up to the saved step
    # the collector state saved at a checkpoint is that of the saved step: counting env
    # episodes of 5 steps return 1 + 2 + ... ; at step 14 (7 vector steps) each env is 2
    # steps into its second episode: reward 1 + 2 = 3 so far
    np.testing.assert_array_equal(saved_obs[0].numpy(), [3.0, 3.0])


def test_an_error_in_the_actor_is_raised_by_the_learner():
    c, _ = run_async()
    envs, calls = c.trainer.collector.envs, []
    real = envs.step_wait

    def failing():
        calls.append(1)
        if len(calls) == 15:
            raise RuntimeError("env broke at step 15")
        return real()

    envs.step_wait = failing
    with pytest.raises(RuntimeError, match="env broke at step 15"):
        c.trainer.run()
    assert not [t for t in threading.enumerate() if t.name == "rlkit-actor"]


def test_a_stop_takes_in_every_step_the_actor_sent_then_saves():
    c, _ = run_async({"env": {"num_envs": 2}, "trainer": {"total_steps": 400}})
    trainer, acted, saves = c.trainer, [], []
    spy(trainer.collector, "step", acted, before=lambda env_steps: env_steps)
    trainer.checkpoint_fn = lambda t: saves.append(t.counters.env_steps)
    counters = trainer.run(stop=lambda: trainer.counters.env_steps >= 20)
    # the actor may have run ahead (up to 8 env steps); the learner took all of it in
    assert 20 <= counters.env_steps <= 28
    assert counters.env_steps == max(acted) + 2 == 2 * len(acted)
    assert saves == [counters.env_steps]
    assert len(c.replay) == counters.env_steps
