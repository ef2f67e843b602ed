"""Wiring tests: every switch, schedule and counter of a run reaches the code it controls.

Each test builds a whole run from a config with ``rlkit.build.build`` (the path ``rlkit
train`` takes) on a scripted env, spies on the seams between components (the values the
trainer hands to the policy, the replay, the learner) and compares them with expectations
worked out by hand in the test. The component tests prove that each part is right alone;
these prove that each part is *used* right.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlkit.build import build
from rlkit.config import ConfigError, from_dict
from tests.integration.envs import COUNTING, LIVES


class ListLogger:
    def __init__(self) -> None:
        self.points: list[tuple[int, dict]] = []

    def log(self, env_steps: int, scalars: dict) -> None:
        self.points.append((env_steps, dict(scalars)))

    def close(self) -> None:
        pass

    def values(self, tag: str) -> list[tuple[int, float]]:
        return [(s, p[tag]) for s, p in self.points if tag in p]


def make_run(overrides: dict | None = None):
    """A tiny run on the counting env (obs [t, 0], reward t + 1, episodes of 5 steps,
    ended by termination): plain DQN net, no learning before step 10."""
    data = {
        "env": {"id": COUNTING, "kwargs": {"length": 5}},
        "network": {"hidden_sizes": [8], "dueling": False, "noisy": False, "atoms": 1},
        "learner": {"batch_size": 4, "target_update_period": 10, "gamma": 0.9},
        "replay": {"capacity": 1000, "prioritized": False, "n_step": 1},
        "trainer": {
            "total_steps": 40,
            "learning_starts": 10,
            "device": "cpu",
            "log_every": 1000,
            "seed": 0,
        },
        "eval": {"every": 0, "episodes": 1},
    }
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    logger = ListLogger()
    components = build(from_dict(data), logger)
    return components, logger


def spy(obj, name: str, record: list, before=None, after=None):
    """Replace ``obj.name`` by a wrapper that appends ``before(*args)`` (or the
    arguments) to ``record`` and calls ``after(result, *args)`` afterwards."""
    real = getattr(obj, name)

    def wrapper(*args, **kwargs):
        record.append(before(*args, **kwargs) if before else (args, kwargs))
        result = real(*args, **kwargs)
        if after is not None:
            after(result, *args, **kwargs)
        return result

    setattr(obj, name, wrapper)


# ---------------------------------------------------------------- cadence counters


@pytest.mark.parametrize("prioritized", [False, True])
def test_learning_starts_train_every_and_updates_per_train_reach_the_trainer(prioritized):
    c, _ = make_run(
        {
            "trainer": {"learning_starts": 10, "train_every": 4, "updates_per_train": 3},
            "replay": {"prioritized": prioritized},
        }
    )
    trainer = c.trainer
    calls: list[tuple[int, int]] = []
    # uniform replay draws a phase at once (update_many), prioritized one batch at a time
    spy(c.learner, "update", calls, before=lambda batch: (trainer.counters.env_steps, 1))
    spy(
        c.learner,
        "update_many",
        calls,
        before=lambda batch, k: (trainer.counters.env_steps, k),
    )
    trainer.run()
    # one env: env steps 1..40. Phases at multiples of train_every = 4 from
    # learning_starts = 10 on: 12, 16, 20, 24, 28, 32, 36, 40 -> 8 phases x 3 updates.
    phases = [12, 16, 20, 24, 28, 32, 36, 40]
    if prioritized:
        assert calls == [(s, 1) for s in phases for _ in range(3)]
    else:
        assert calls == [(s, 3) for s in phases]
    assert trainer.counters.updates == 24 == c.learner.updates


def test_target_syncs_happen_every_period_and_copy_or_lerp(monkeypatch):
    c, _ = make_run({"learner": {"target_update_period": 10, "target_tau": 0.25}})
    learner, trainer = c.learner, c.trainer
    synced_at: list[int] = []

    def flat(net):
        return torch.cat([p.detach().flatten().clone() for p in net.parameters()])

    seen = {}

    def before():
        seen["online"], seen["target"] = flat(learner.online), flat(learner.target)
        return trainer.counters.env_steps

    def after(_result):
        # Polyak with tau 0.25: target <- 0.25 * online + 0.75 * target (towards online)
        expected = 0.25 * seen["online"] + 0.75 * seen["target"]
        torch.testing.assert_close(flat(learner.target), expected)
        seen["after"] = flat(learner.target)

    spy(learner, "sync_target", synced_at, before=before, after=after)
    target_between = []
    spy(
        learner,
        "update",
        [],
        before=lambda batch: target_between.append(
            (trainer.counters.env_steps, flat(learner.target))
        ),
    )
    trainer.run()
    # learning from env step 10 (first update at 10), syncs at multiples of 10 from then
    assert synced_at == [10, 20, 30, 40]
    # between syncs the target stays where the last sync put it, though the online net moves
    assert any(20 < s < 30 for s, _ in target_between)
    for steps, target in target_between:
        if 20 < steps < 30:
            reference = [t for s, t in target_between if s == 21][0]
            torch.testing.assert_close(target, reference)
    assert not torch.equal(flat(learner.online), flat(learner.target))


def test_hard_target_sync_makes_an_exact_copy():
    c, _ = make_run({"learner": {"target_update_period": 10}, "trainer": {"total_steps": 20}})
    c.trainer.run()  # last sync at env step 20 after the update at 20
    for p_online, p_target in zip(c.learner.online.parameters(), c.learner.target.parameters()):
        assert torch.equal(p_online, p_target)
    assert c.trainer.counters.target_syncs == 2


# ---------------------------------------------------------------- schedules


def test_epsilon_schedule_reaches_action_selection():
    c, _ = make_run(
        {
            "exploration": {"epsilon_start": 1.0, "epsilon_end": 0.0, "epsilon_steps": 20},
            "trainer": {"learning_starts": 1000},
        }
    )
    policy = c.trainer.collector.policy
    seen: list[tuple[float, np.ndarray, np.ndarray]] = []
    real_act = policy.act

    def act(obs, env_steps):
        actions = real_act(obs, env_steps)
        seen.append((policy.epsilon_at(env_steps), actions.copy(), policy.greedy(obs)))
        return actions

    policy.act = act
    c.trainer.run()
    # linear from 1.0 at env step 0 to 0.0 at step 20; the action at env step t uses eps(t)
    expected = [max(0.0, 1.0 - t / 20) for t in range(40)]
    np.testing.assert_allclose([e for e, _, _ in seen], expected)
    # from step 20 on epsilon is 0: every action is the greedy one
    assert all(np.array_equal(a, g) for e, a, g in seen[20:])


def test_epsilon_greedy_explores_at_the_rate_asked():
    from rlkit.agent.policy import epsilon_greedy

    rng = np.random.default_rng(0)
    n, actions = 40_000, 4

    def share_not_greedy(eps: float) -> float:
        chosen = epsilon_greedy(lambda: np.zeros(n, dtype=np.int64), n, eps, actions, rng)
        return float((chosen != 0).mean())

    # a random action differs from the greedy one (0) with probability 3/4:
    # P(not greedy) = eps * 3/4 -> 0, 0.375, 0.75 (4-sigma band at n = 40,000: ~0.01)
    assert share_not_greedy(0.0) == 0.0
    assert abs(share_not_greedy(0.5) - 0.375) < 0.01
    assert abs(share_not_greedy(1.0) - 0.75) < 0.01


def test_beta_schedule_reaches_the_sampler_and_the_weights():
    c, _ = make_run(
        {
            "replay": {
                "prioritized": True,
                "alpha": 1.0,
                "beta_start": 0.4,
                "beta_end": 1.0,
                "beta_steps": 40,
            },
            "trainer": {"learning_starts": 10, "total_steps": 30},
        }
    )
    replay, trainer = c.replay, c.trainer
    record: list[tuple[int, float]] = []
    checked = []

    def check_weights(batch, batch_size, beta):
        # independent IS weights: P(i) = p_i / sum p, w_i = (N P(i))^-beta / max_j(...)
        p_all = replay.priorities(np.arange(len(replay)))
        prob = replay.priorities(batch.indices) / p_all.sum()
        w = (len(replay) * prob) ** -beta
        np.testing.assert_allclose(batch.weights.numpy(), w / w.max(), rtol=1e-5)
        checked.append(float(np.ptp(batch.weights.numpy())))

    spy(
        replay,
        "sample",
        record,
        before=lambda batch_size, beta: (trainer.counters.env_steps, beta),
        after=check_weights,
    )
    trainer.run()
    # beta(t) = 0.4 + 0.6 * t / 40 at the env step t of each training phase
    assert [s for s, _ in record] == list(range(10, 31))
    np.testing.assert_allclose([b for _, b in record], [0.4 + 0.6 * t / 40 for t in range(10, 31)])
    assert max(checked) > 0  # the priorities did differ, so beta mattered


@pytest.mark.parametrize(
    "network",
    [
        {"noisy": False, "dueling": False, "atoms": 1},  # plain MLP: hand-written fast path
        {"noisy": True, "dueling": True, "atoms": 11, "v_min": 0.0, "v_max": 20.0},
    ],
)
def test_learning_rate_reaches_the_optimizer_step(network):
    lr = 0.02
    c, _ = make_run(
        {
            "network": network,
            "learner": {"lr": lr, "max_grad_norm": None},
            "trainer": {"learning_starts": 10, "total_steps": 10},
        }
    )
    before = [p.detach().clone() for p in c.learner.online.parameters()]
    c.trainer.run()  # exactly one update, at env step 10
    assert c.learner.updates == 1
    # Adam's first step is lr * g / (|g| + eps) per weight: lr wherever |g| >> eps
    step = torch.cat(
        [(p.detach() - b).abs().flatten() for p, b in zip(c.learner.online.parameters(), before)]
    )
    assert abs(float(step.max()) - lr) < 0.01 * lr


# ---------------------------------------------------------------- transitions


def added_transitions(c) -> list[tuple[float, float, float, float]]:
    """(obs t, reward, next_obs t, discount) of every transition replay receives."""
    rows: list[tuple[float, float, float, float]] = []

    def record(obs, action, reward, next_obs, discount):
        for k in range(len(reward)):
            rows.append(
                (float(obs[k][0]), float(reward[k]), float(next_obs[k][0]), float(discount[k]))
            )
        return None

    spy(c.replay, "add", [], before=record)
    return rows


@pytest.mark.parametrize("truncate", [False, True])
def test_n_step_returns_and_discounts_reach_replay(truncate):
    c, _ = make_run(
        {
            "env": {"kwargs": {"length": 5, "truncate": truncate}},
            "replay": {"n_step": 3},
            "learner": {"gamma": 0.9},
            "trainer": {"total_steps": 5, "learning_starts": 100},
        }
    )
    rows = added_transitions(c)
    c.trainer.run()
    # one episode, rewards r_t = t + 1 for t = 0..4, gamma 0.9, n = 3:
    #   t=0: 1 + .9*2 + .81*3 = 5.23, bootstraps from t=3 with .9^3 = .729
    #   t=1: 2 + .9*3 + .81*4 = 7.94, from t=4 with .729
    #   t=2: 3 + .9*4 + .81*5 = 10.65, from the final obs t=5
    #   t=3: 4 + .9*5 = 8.5 (2 steps); t=4: 5 (1 step), both from t=5
    # Termination zeroes the discount of every window that contains the last step;
    # truncation (a time limit) keeps gamma^k and bootstraps from the true final obs.
    tail = [0.0, 0.0, 0.0] if not truncate else [0.729, 0.81, 0.9]
    expected = [
        (0, 5.23, 3, 0.729),
        (1, 7.94, 4, 0.729),
        (2, 10.65, 5, tail[0]),
        (3, 8.5, 5, tail[1]),
        (4, 5.0, 5, tail[2]),
    ]
    np.testing.assert_allclose(np.array(rows), np.array(expected, dtype=float), rtol=1e-6)


@pytest.mark.parametrize("clip", [False, True])
def test_reward_clipping_reaches_learning_but_not_reported_returns(clip):
    c, logger = make_run(
        {
            "env": {"clip_rewards": clip},
            "trainer": {"total_steps": 10, "learning_starts": 100, "log_every": 10},
        }
    )
    rows = added_transitions(c)
    c.trainer.run()
    # rewards 1..5 per episode; learning sees sign(r) = 1 when clipping
    rewards = [r for _, r, _, _ in rows]
    assert rewards == ([1.0] * 10 if clip else [1.0, 2.0, 3.0, 4.0, 5.0] * 2)
    # the reported return is the game's: 1 + 2 + 3 + 4 + 5 = 15, in both cases
    assert logger.values("train/episode_return") == [(10, 15.0)]
    assert logger.values("train/episode_length") == [(10, 5.0)]


def test_life_loss_is_a_learning_terminal_but_episodes_are_whole_games():
    c, logger = make_run(
        {
            "env": {"id": LIVES, "kwargs": {"lives": 3, "life_length": 4}},
            "trainer": {"total_steps": 24, "learning_starts": 100, "log_every": 24},
        }
    )
    rows = added_transitions(c)
    c.trainer.run()
    # lives lost at t = 4 and 8 (game goes on), game over at t = 12: discount 0 exactly at
    # those steps (obs t = 3, 7, 11 in each 12-step game), gamma = 0.9 elsewhere
    discounts = [d for _, _, _, d in rows]
    zero_at = {3, 7, 11, 15, 19, 23}
    assert discounts == [0.0 if k in zero_at else pytest.approx(0.9) for k in range(24)]
    # no reset at a life loss: the observation after step 4 continues with t = 4
    assert [(o, n) for o, _, n, _ in rows[3:5]] == [(3.0, 4.0), (4.0, 5.0)]
    # two whole games of 12 steps and return 12 each
    assert logger.values("train/episode_length") == [(24, 12.0)]
    assert logger.values("train/episode_return") == [(24, 12.0)]
    assert c.trainer.counters.episodes == 2


# ---------------------------------------------------------------- evaluation


def test_evaluation_uses_the_means_of_noisy_layers_and_the_eval_epsilon(monkeypatch):
    import rlkit.agent.policy

    c, _ = make_run(
        {
            "network": {"noisy": True, "dueling": True, "atoms": 1},
            "eval": {"epsilon": 0.3, "episodes": 2},
            "exploration": {"epsilon_start": 1.0, "epsilon_end": 1.0},
        }
    )
    eps_seen: list[float] = []
    real = rlkit.agent.policy.epsilon_greedy

    def recording(greedy, n, epsilon, num_actions, rng):
        eps_seen.append(epsilon)
        return real(greedy, n, epsilon, num_actions, rng)

    monkeypatch.setattr(rlkit.agent.policy, "epsilon_greedy", recording)
    modes: list[bool] = []
    c.eval_policy.net.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    with torch.no_grad():  # the learner's weights move: evaluation must load the new ones
        for param in c.learner.online.parameters():
            param.add_(0.25)
    result = c.trainer.evaluate_fn(0)
    assert len(result.returns) == 2
    assert eps_seen and set(eps_seen) == {0.3}  # eval.epsilon, not exploration's 1.0
    assert modes and not any(modes)  # every eval forward ran in eval mode (noise off)
    assert c.network.training and c.policy.net.training  # training nets stay in train mode
    # the evaluation policy acted with the learner's weights (loaded right before)
    for name, value in c.learner.params().items():
        assert torch.equal(c.eval_policy.net.state_dict()[name], value), name


# ---------------------------------------------------------------- acting noise


def acting_noise(c) -> list[torch.Tensor]:
    """The first noisy layer's input noise at every acting forward pass (batch of 1) of the
    training policy's own net (not the learner's)."""
    assert c.policy.net is not c.network
    layer = c.policy.net._noisy_layers[0]
    seen: list[torch.Tensor] = []

    def hook(module, args):
        if module.training and args[0].shape[0] == 1:  # acting; updates use batch 4
            seen.append(layer.eps_in.clone())

    c.policy.net.register_forward_pre_hook(hook)
    return seen


def test_paper_noise_cadence_draws_fresh_noise_for_every_acting_step():
    c, _ = make_run(
        {
            "network": {"noisy": True, "noise_cadence": "paper"},
            "trainer": {"total_steps": 20, "learning_starts": 10, "train_every": 2},
        }
    )
    seen = acting_noise(c)
    c.trainer.run()
    assert len(seen) == 20  # epsilon 0: the net picks every action
    distinct = {tuple(x.tolist()) for x in seen}
    assert len(distinct) == 20


def test_per_update_noise_cadence_reuses_the_latest_update_noise():
    c, _ = make_run(
        {
            "network": {"noisy": True, "noise_cadence": "per_update"},
            "trainer": {"total_steps": 20, "learning_starts": 10, "train_every": 2},
        }
    )
    seen = acting_noise(c)
    c.trainer.run()
    # before the first update (env steps 0..9): fresh noise at every step
    assert len({tuple(x.tolist()) for x in seen[:10]}) == 10
    # then updates at env steps 10, 12, ...: the actions at steps 10 and 11 share the
    # noise of the update at 10, those at 12 and 13 that of the update at 12, ...
    for k in range(10, 20, 2):
        assert torch.equal(seen[k], seen[k + 1])
        assert not torch.equal(seen[k], seen[k - 1])


# ---------------------------------------------------------------- every switch matters


def final_weights(overrides: dict) -> torch.Tensor:
    c, _ = make_run(overrides)
    c.trainer.run()
    return torch.cat([p.detach().flatten() for p in c.learner.online.parameters()])


RAINBOW_BASE = {
    "network": {"noisy": True, "dueling": True, "atoms": 11, "v_min": 0.0, "v_max": 20.0},
    "replay": {"prioritized": True, "n_step": 3},
    "learner": {"double_q": True, "target_update_period": 10},
}


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("learner", "double_q", False),
        ("learner", "c51_priority", "cross_entropy"),
        ("learner", "target_tau", 0.5),
        ("learner", "max_grad_norm", 0.01),
        ("network", "noise_cadence", "per_update"),
        ("network", "sigma0", 0.1),
        ("replay", "alpha", 0.0),
        ("replay", "n_step", 1),
        ("trainer", "learning_starts", 20),
    ],
)
def test_every_switch_changes_the_run(section, key, value):
    """A switch that the code silently ignored would leave the run bit-identical to the
    base run (same seed, same env, everything else equal)."""
    base = final_weights(RAINBOW_BASE)
    assert torch.equal(base, final_weights(RAINBOW_BASE))  # the base run is deterministic
    changed = {s: dict(v) for s, v in RAINBOW_BASE.items()}
    changed.setdefault(section, {})[key] = value
    assert not torch.equal(base, final_weights(changed))


def test_td_loss_switch_changes_the_run():
    # plain MLP (the hand-written backward path); Huber and MSE differ once |TD| > 1
    assert not torch.equal(final_weights({}), final_weights({"learner": {"loss": "mse"}}))


# ---------------------------------------------------------------- seams between the layers


def test_the_policy_acts_with_its_own_copy_loaded_after_every_training_phase():
    c, _ = make_run({"trainer": {"total_steps": 20, "learning_starts": 10, "train_every": 4}})
    assert c.policy.net is not c.network and c.eval_policy.net is not c.network
    loads: list[int] = []
    real_load = c.policy.load_params
    c.policy.load_params = lambda state: (loads.append(c.learner.updates), real_load(state))
    before = {k: v.clone() for k, v in c.policy.net.state_dict().items()}
    c.trainer.run()
    # one env: training phases at env steps 12, 16, 20 (multiples of 4 from 10 on), one
    # update each; the policy gets the parameters right after each phase
    assert loads == [1, 2, 3]
    after = c.policy.net.state_dict()
    for name, value in c.learner.params().items():
        assert torch.equal(after[name], value), name
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it did move


def test_the_policy_does_not_see_the_learner_move_until_it_loads():
    c, _ = make_run()
    first = next(iter(c.learner.online.parameters()))
    with torch.no_grad():
        first.add_(1.0)  # the learner's net moves ...
    policy_first = next(iter(c.policy.net.parameters()))
    assert not torch.equal(policy_first, first)  # ... the policy's copy does not
    c.policy.load_params(c.learner.params())
    assert torch.equal(policy_first, first)


@pytest.mark.parametrize(
    "head,atoms,objective", [("auto", 1, "ScalarTD"), ("auto", 11, "C51"), ("c51", 11, "C51")]
)
def test_network_head_picks_the_objective(head, atoms, objective):
    c, _ = make_run({"network": {"head": head, "atoms": atoms, "v_min": 0.0, "v_max": 10.0}})
    assert type(c.learner.objective).__name__ == objective
    assert c.network.readout.name == ("scalar" if objective == "ScalarTD" else "c51")


@pytest.mark.parametrize("head,atoms", [("c51", 1), ("scalar", 11), ("nonesuch", 1)])
def test_network_head_contradicting_atoms_is_a_config_error(head, atoms):
    with pytest.raises(ConfigError, match="network.head"):
        make_run({"network": {"head": head, "atoms": atoms}})


def test_env_backend_reaches_the_env_builder():
    pytest.importorskip("ale_py")
    from rlkit.build import make_envs
    from rlkit.envs.ale_vector import AleVectorEnv
    from rlkit.envs.gymnasium import GymnasiumVecEnv

    data = {"env": {"id": "ALE/Pong-v5", "max_frames_per_episode": 400}}
    for backend, cls in (("gymnasium", GymnasiumVecEnv), ("ale_vector", AleVectorEnv)):
        envs = make_envs(from_dict({"env": {**data["env"], "backend": backend}}), 2)
        try:
            assert type(envs) is cls
            assert envs.obs_shape == (4, 84, 84) and envs.num_envs == 2
        finally:
            envs.close()


def test_every_update_samples_a_replay_holding_every_step_so_far():
    # storing a step's transitions may overlap the next env step, but never a training
    # phase: with one env and 1-step returns replay holds exactly env_steps transitions
    # whenever the learner updates (train_every 3: phases at 12, 15, ..., 39)
    c, _ = make_run({"trainer": {"total_steps": 40, "learning_starts": 10, "train_every": 3}})
    sizes: list[tuple[int, int]] = []
    real = c.learner.update_many

    def update_many(batch, n):
        sizes.append((c.trainer.counters.env_steps, len(c.replay)))
        return real(batch, n)

    c.learner.update_many = update_many
    c.trainer.run()
    assert [s for s, _ in sizes] == list(range(12, 40, 3))
    assert all(size == steps for steps, size in sizes), sizes
