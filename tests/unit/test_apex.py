"""Ape-X (``distributed.backend: ray``) without Ray: the roles one call at a time and the
learner's loop over synchronous stand-ins for Ray's calls (``fake_ray``). Expectations
are computed here from the definitions (Ape-X's epsilons, the TD error, the replay
ratio), not read back from the code under test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlkit.agent.builder import build_beta, build_learner, build_network
from rlkit.config import load_config
from rlkit.distributed.apex import ApexTrainer
from rlkit.distributed.launch import Handles
from rlkit.distributed.roles import (
    ActorRole,
    EvaluatorRole,
    ParameterServer,
    ReplayShardRole,
    actor_config,
    actor_epsilon,
)
from rlkit.envs import space_info
from rlkit.envs.builder import make_envs
from tests.unit.fake_ray import FakeRay, Handle

SMALL = [
    "trainer.device=cpu",
    "network.hidden_sizes=[16]",
    "network.noisy=false",
    "network.dueling=false",
    "network.atoms=1",
    "learner.batch_size=8",
    "learner.target_update_period=40",
    "replay.capacity=1000",
    "replay.n_step=1",
    "trainer.learning_starts=50",
    "trainer.total_steps=400",
    "trainer.log_every=100",
    "eval.every=200",
    "eval.episodes=2",
    "distributed.backend=ray",
    "distributed.actors=2",
    "distributed.replay_shards=2",
    "distributed.chunk=10",
    "distributed.pull_every=40",
    "distributed.publish_every=5",
]


def _config(*sets):
    return load_config(None, [*SMALL, *sets])


def test_actor_epsilons_are_ape_x_s():
    # eps_i = 0.4 ** (1 + 7 i / (N - 1)), N = 3: 0.4, 0.4 ** 4.5, 0.4 ** 8
    assert actor_epsilon(0.4, 7.0, 0, 3) == pytest.approx(0.4)
    assert actor_epsilon(0.4, 7.0, 1, 3) == pytest.approx(math.exp(4.5 * math.log(0.4)))
    assert actor_epsilon(0.4, 7.0, 1, 3) == pytest.approx(0.016190, rel=1e-4)
    assert actor_epsilon(0.4, 7.0, 2, 3) == pytest.approx(0.4**8) == pytest.approx(0.00065536)
    assert actor_epsilon(0.4, 7.0, 0, 1) == 0.4  # one actor: the base


def test_plain_actors_get_their_epsilon_and_noisy_ones_keep_the_schedule():
    config = _config("distributed.actors=3", "exploration.epsilon_start=1.0")
    c1 = actor_config(config, 1)
    assert c1.exploration.epsilon_start == c1.exploration.epsilon_end == pytest.approx(0.4**4.5)
    assert c1.trainer.seed != actor_config(config, 2).trainer.seed != config.trainer.seed
    noisy = actor_config(_config("network.noisy=true", "exploration.epsilon_start=1.0"), 1)
    assert noisy.exploration.epsilon_start == 1.0  # the noise explores


def _roles(config):
    envs = make_envs(config, 1)
    shape, dtype, _ = space_info(envs)
    envs.close()
    shards = [Handle(ReplayShardRole(config, shape, dtype, k)) for k in range(2)]
    server = Handle(ParameterServer())
    return shards, server, FakeRay()


def test_actor_sends_chunks_round_robin_with_its_own_td_errors_as_priorities():
    config = _config("replay.prioritized=true", "replay.alpha=1.0")
    shards, server, ray = _roles(config)
    actor = ActorRole(config, 1, shards, server, get=ray.get)
    first = actor.collect()
    assert first["shard"] == 1 and first["env_steps"] == 10  # actor 1 starts at shard 1
    assert actor.collect()["shard"] == 0
    ((name, (t, priorities)),) = [c for c in shards[1].calls if c[0] == "add"]
    # |TD| of double DQN with the actor's nets: r + d * Q_t(s', argmax Q(s', .)) - Q(s, a)
    with torch.no_grad():
        obs, next_obs = torch.as_tensor(t.obs), torch.as_tensor(t.next_obs)
        a_star = actor.online(next_obs).argmax(1)
        q_next = actor.target(next_obs).gather(1, a_star[:, None])[:, 0]
        q_sa = actor.online(obs).gather(1, torch.as_tensor(t.action)[:, None])[:, 0]
        td = torch.as_tensor(t.reward) + torch.as_tensor(t.discount) * q_next - q_sa
    np.testing.assert_allclose(priorities, td.abs().numpy(), rtol=1e-5, atol=1e-6)
    # stored as (|td| + eps) ** alpha with alpha 1, in the slots the chunk went to
    buffer = shards[1].obj.buffer
    np.testing.assert_allclose(
        buffer.priorities(np.arange(10)), td.abs().numpy() + buffer.eps, rtol=1e-5
    )


def test_actor_pulls_published_weights_every_pull_every_env_steps():
    config = _config()
    shards, server, ray = _roles(config)
    actor = ActorRole(config, 0, shards, server, get=ray.get)
    net = build_network(config, (4,), 2)
    state = {"online": net.state_dict(), "target": net.state_dict()}
    server.obj.publish(1, [ray.put(state)])
    actor.collect()  # pulls first
    assert actor.version == 1
    for name, value in net.state_dict().items():
        torch.testing.assert_close(actor.policy.net.state_dict()[name], value)
    server.obj.publish(2, [ray.put(state)])
    for _ in range(3):  # 10, 20, 30 env steps since the pull: < pull_every (40)
        actor.collect()
        assert actor.version == 1
    actor.collect()  # 40 env steps since the pull
    assert actor.version == 2


def _trainer(config, warn=None):
    shards, server, ray = _roles(config)
    actors = [Handle(ActorRole(config, i, shards, server, get=ray.get)) for i in range(2)]
    evaluator = Handle(EvaluatorRole(config))
    net = build_network(config, (4,), 2)
    learner = build_learner(config, net, torch.device("cpu"))
    logged = []

    class Log:
        def log(self, steps, scalars):
            logged.append((steps, scalars))

    trainer = ApexTrainer(
        config,
        learner,
        torch.device("cpu"),
        Log(),
        Handles(ray, actors, shards, server, evaluator),
        build_beta(config),
        warn=warn or (lambda text: None),
    )
    return trainer, logged


def _record_deficits(trainer) -> list[int]:
    """After each chunk: the updates the ratio allows less those done (once it binds)."""
    deficits, on_chunk = [], trainer._on_chunk

    def spy(i, ref):
        on_chunk(i, ref)
        if trainer.counting():
            deficits.append(trainer.allowed_updates() - trainer.counters.updates)

    trainer._on_chunk = spy
    return deficits


@pytest.mark.parametrize("ratio", [(1, 1), (1, 4), (3, 2)])
def test_the_throttle_keeps_the_replay_ratio(ratio):
    updates_per_train, train_every = ratio
    config = _config(
        f"trainer.updates_per_train={updates_per_train}", f"trainer.train_every={train_every}"
    )
    trainer, _ = _trainer(config)
    deficits = _record_deficits(trainer)
    counters = trainer.run()
    # ratio r updates per env step past learning_starts (50): floor(r * (400 - 50)) at the
    # end (350, 87, 525), and never more than one round of chunks (r * 10 steps * 2
    # actors) and the requests in flight behind on the way (slack)
    expected = math.floor(updates_per_train / train_every * (400 - 50))
    assert counters.env_steps == 400 and counters.updates == expected
    assert max(deficits) <= trainer.slack + config.distributed.in_flight
    # target syncs: every max(updates_per_train, 40 * r) updates
    every = max(updates_per_train, round(40 * updates_per_train / train_every))
    assert counters.target_syncs == counters.updates // every


def test_without_the_throttle_free_actors_outrun_a_slow_learner():
    # here the actors always answer first: free, they run ahead of the learner by far
    # more than one round of chunks (the learner catches up only after the last step)
    free, kept = _trainer(_config("distributed.throttle=false"))[0], _trainer(_config())[0]
    free_deficits, kept_deficits = _record_deficits(free), _record_deficits(kept)
    free.run()
    kept.run()
    assert max(kept_deficits) <= kept.slack + 4 < max(free_deficits)


def test_priorities_go_back_to_the_shard_the_batch_came_from():
    config = _config("replay.prioritized=true")
    trainer, _ = _trainer(config)
    sampled = {k: [] for k in range(2)}
    for k, shard in enumerate(trainer.h.shards):  # record the slots each shard handed out
        draw = shard.obj.sample
        shard.obj.sample = lambda *a, k=k, draw=draw: sampled[k].append(draw(*a)) or sampled[k][-1]
    trainer.run()
    for k, shard in enumerate(trainer.h.shards):
        updates = [args for name, args in shard.calls if name == "update_priorities"]
        assert len(sampled[k]) > 5 and len(updates) == len(sampled[k])
        for batch, (indices, _) in zip(sampled[k], updates, strict=True):
            np.testing.assert_array_equal(indices, batch.indices)
    total = sum(len([c for c in s.calls if c[0] == "update_priorities"]) for s in trainer.h.shards)
    assert total == trainer.counters.updates


def test_weights_reach_the_actors_and_evaluations_are_logged():
    trainer, logged = _trainer(_config())
    counters = trainer.run()
    # published at the start and every 5 updates
    assert trainer.h.server.obj.version == 1 + counters.updates // 5
    assert all(info.version > 1 for info in trainer.actor_info)
    epsilons = [
        logged_scalars for _, logged_scalars in logged if "actors/1/epsilon" in logged_scalars
    ]
    assert epsilons[-1]["actors/0/epsilon"] == pytest.approx(0.4)
    assert epsilons[-1]["actors/1/epsilon"] == pytest.approx(0.4**8)
    evals = [steps for steps, s in logged if "eval/return_mean" in s]
    assert evals and evals[-1] == 400 and counters.evaluations == 2  # at 200 and the end


def test_a_dead_actor_and_a_lost_shard_are_reported_and_training_goes_on():
    warnings = []
    trainer, _ = _trainer(_config(), warn=warnings.append)
    trainer.h.actors[0].failing["collect"] = 1
    trainer.h.shards[1].failing["sample"] = 1
    counters = trainer.run()
    assert counters.env_steps == 400
    assert any("actor 0 died" in w for w in warnings)
    assert any("replay shard 1 was lost" in w for w in warnings)


@pytest.mark.parametrize("in_flight", [1, 3])
def test_the_learner_keeps_at_most_in_flight_sample_requests_open(in_flight):
    trainer, _ = _trainer(_config(f"distributed.in_flight={in_flight}"))
    most, request = [0], trainer._request_samples

    def spy():
        request()
        most[0] = max(most[0], len(trainer._pending.samples))

    trainer._request_samples = spy
    trainer.run()
    assert most[0] == in_flight  # reached, never passed
