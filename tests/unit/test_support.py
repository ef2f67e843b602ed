"""The C51 support: ``auto``'s arithmetic (``rlkit.agent.support_range``), the config keys
``network.v_min`` / ``network.v_max``, and the ``support_clip_frac`` metric (the share of
projected target mass clamped at an edge), on numbers worked out by hand."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from rlkit.agent.learner import DQNLearner
from rlkit.agent.nn import QNetwork
from rlkit.agent.objectives import math as losses
from rlkit.agent.support_range import (
    FALLBACK,
    discounted_horizon,
    returns_to_go,
    support_range,
)
from rlkit.agent.updaters import AutogradUpdater, ManualC51Updater
from rlkit.app.loggers import SupportClipWatch
from rlkit.config import ConfigError, load_config
from rlkit.support import DEFAULT_HORIZON, resolve, time_limit, with_support
from rlkit.types import Batch

# ---------------------------------------------------------------- auto's arithmetic


def test_discounted_horizon_by_hand():
    # 0.99**500 = exp(500 ln 0.99) = exp(-5.02517) = 0.0065705; (1 - 0.0065705) / 0.01
    assert discounted_horizon(0.99, 500) == pytest.approx(99.34295, abs=1e-4)
    # 0.99**200 = 0.1339797; (1 - 0.1339797) / 0.01 = 86.60203
    assert discounted_horizon(0.99, 200) == pytest.approx(86.60203, abs=1e-4)
    assert discounted_horizon(1.0, 7) == 7.0  # gamma 1: T steps of reward 1


def test_returns_to_go_by_hand():
    # G_2 = 3; G_1 = 2 + 0.5 * 3 = 3.5; G_0 = 1 + 0.5 * 3.5 = 2.75
    np.testing.assert_allclose(returns_to_go([1.0, 2.0, 3.0], 0.5), [2.75, 3.5, 3.0])
    assert returns_to_go([], 0.5).shape == (0,)


def test_reward_one_per_step_gives_zero_to_the_horizon_plus_margin():
    # CartPole: r = 1 each step, gamma 0.99, T 500 -> D = 99.34295; hi = 1.1 * D = 109.2772
    rewards = np.ones(3000)
    lo, hi = support_range(rewards, returns_to_go(rewards[:40], 0.99), 0.99, 500)
    assert lo == 0.0  # 0 is always inside
    assert hi == pytest.approx(1.1 * 99.34295, abs=1e-3)


def test_reward_minus_one_per_step_gives_a_negative_support():
    # Acrobot / MountainCar: r = -1 each step; MountainCar's T 200: -1.1 * 86.60203
    rewards = -np.ones(3000)
    lo, hi = support_range(rewards, returns_to_go(rewards[:200], 0.99), 0.99, 200)
    assert (lo, hi) == (pytest.approx(-95.26223, abs=1e-3), 0.0)


def test_rare_large_rewards_enter_through_the_returns():
    # 9,999 zero rewards and one 100: the 0.999 quantile is 0, but a return-to-go is 100
    rewards = np.r_[np.zeros(9_999), 100.0]
    lo, hi = support_range(rewards, [0.0, 50.0, 100.0], 0.99, 500)
    assert (lo, hi) == (0.0, pytest.approx(110.0))


def test_no_reward_at_all_gives_the_fallback():
    assert support_range(np.zeros(100), np.zeros(100), 0.99, 500) == FALLBACK


# ---------------------------------------------------------------- config keys


def test_auto_is_the_default_in_the_dataclass_and_the_default_config():
    for config in (load_config(None), load_config("configs/cartpole_rainbow.yaml")):
        assert (config.network.v_min, config.network.v_max) == ("auto", "auto")


def test_auto_and_numbers_from_set_and_yaml(tmp_path):
    config = load_config(None, ["network.v_min=-100", "network.v_max=auto"])
    assert (config.network.v_min, config.network.v_max) == (-100.0, "auto")
    path = tmp_path / "c.yaml"
    path.write_text("network:\n  v_min: auto\n  v_max: 3e2\n")
    config = load_config(path)
    assert (config.network.v_min, config.network.v_max) == ("auto", 300.0)


@pytest.mark.parametrize("value", ["bad", "[1, 2]", "true", ".nan", "Auto"])
def test_bad_values_give_one_line_naming_the_key(value):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"network.v_min={value}"])
    message = str(err.value)
    assert message.startswith("--set network.v_min: expected a number or 'auto', got ")
    assert "\n" not in message


def test_the_pair_is_checked_when_both_are_numbers_and_once_resolved():
    with pytest.raises(ConfigError, match=r"network.v_max: must be > network.v_min, got 5.0$"):
        load_config(None, ["network.v_min=10", "network.v_max=5"])
    half = load_config(None, ["network.v_min=10"])  # v_max auto: checked once resolved
    with pytest.raises(ConfigError, match=r"^network.v_min/v_max: auto resolved .* empty"):
        with_support(half, -109.3, 0.0)
    assert with_support(half, -109.3, 200.0).network.v_max == 200.0
    both = load_config(None)
    assert (with_support(both, -1.5, 0.0).network.v_min, 0.0) == (-1.5, 0.0)


def test_scalar_heads_ignore_auto_without_probing(monkeypatch):
    monkeypatch.setattr("rlkit.support.probe", lambda *a, **k: pytest.fail("probed"))
    config, support = resolve(load_config(None, ["network.atoms=1"]))
    assert support is None and config.network.v_min < config.network.v_max


def test_time_limit_from_the_key_the_spec_or_the_default():
    assert time_limit(load_config(None)) == 500  # CartPole-v1's spec
    assert time_limit(load_config(None, ["env.max_episode_steps=50"])) == 50
    ale = load_config(None, ["env.id=ALE/Pong-v5"])
    assert time_limit(ale) == 108_000 // 4  # frames cap / frame skip
    no_spec = dataclasses.replace(ale.env, id="NoSuchEnv-v0")
    assert time_limit(dataclasses.replace(ale, env=no_spec)) == DEFAULT_HORIZON


def test_cartpole_probe_resolves_to_zero_and_the_horizon():
    config, support = resolve(load_config(None))
    assert (config.network.v_min, config.network.v_max) == (
        0.0,
        pytest.approx(1.1 * 99.34295, abs=1e-3),
    )
    assert support.line().startswith("C51 support: auto -> [0, 109.3] (from ")


# ---------------------------------------------------------------- support_clip_frac


def _clipped(reward: float, probs: list[float], discount: float = 1.0) -> float:
    support = torch.tensor([0.0, 1.0, 2.0])
    _, clipped = losses.categorical_projection_clipped(
        support, torch.tensor([probs]), torch.tensor([reward]), torch.tensor([discount])
    )
    return clipped.item()


def test_clipped_mass_by_hand():
    # support [0, 1, 2]; Tz = r + d z
    assert _clipped(5.0, [0.2, 0.3, 0.5]) == pytest.approx(1.0)  # Tz = [5, 6, 7]: all out
    assert _clipped(1.0, [0.25, 0.25, 0.5]) == pytest.approx(0.5)  # Tz = [1, 2, 3]: z=2 out
    assert _clipped(-1.0, [0.5, 0.25, 0.25]) == pytest.approx(0.5)  # Tz = [-1, 0, 1]: z=0
    assert _clipped(0.0, [0.2, 0.3, 0.5]) == 0.0  # Tz = z: on the edges is not outside
    assert _clipped(3.0, [0.2, 0.3, 0.5], discount=0.0) == pytest.approx(1.0)  # Tz = 3


def test_the_projection_is_unchanged_by_the_clipped_mass():
    support = torch.linspace(-2, 2, 5)
    probs = torch.softmax(torch.randn(4, 5, generator=torch.Generator().manual_seed(0)), 1)
    reward, discount = torch.tensor([3.0, -0.5, 0.0, -9.0]), torch.tensor([0.9, 0.9, 0.0, 1])
    plain = losses.categorical_projection(support, probs, reward, discount)
    both, clipped = losses.categorical_projection_clipped(support, probs, reward, discount)
    assert torch.equal(plain, both) and clipped.shape == (4,)


def _learners() -> tuple[DQNLearner, DQNLearner]:
    torch.manual_seed(0)
    net = QNetwork((3,), 2, atoms=5, v_min=-2.0, v_max=2.0, hidden_sizes=(8,), head_hidden=4)
    pair = []
    for manual in (False, True):
        online = copy.deepcopy(net)
        opt = torch.optim.Adam(online.parameters(), lr=1e-3)
        pair.append(DQNLearner(online, opt, manual_gradients=manual))
    assert isinstance(pair[0]._updater, AutogradUpdater)
    assert isinstance(pair[1]._updater, ManualC51Updater)
    return pair[0], pair[1]


def test_both_update_paths_report_the_clipped_share():
    # discount 0: Tz = r for every atom, so a sample's mass is all in ([-2, 2] holds r)
    # or all out: rewards [100, -100, 0, 1] -> clipped [1, 1, 0, 0] -> mean 0.5
    batch = Batch(
        obs=torch.randn(4, 3),
        action=torch.tensor([0, 1, 0, 1]),
        reward=torch.tensor([100.0, -100.0, 0.0, 1.0]),
        next_obs=torch.randn(4, 3),
        discount=torch.zeros(4),
        weights=torch.ones(4),
        indices=np.arange(4),
    )
    for learner in _learners():
        assert learner.update(batch).metrics["support_clip_frac"] == pytest.approx(0.5)


def test_the_warning_comes_once_when_the_running_mean_stays_high():
    watch = SupportClipWatch(threshold=0.2, points=3)
    tag = SupportClipWatch.TAG
    seen = [watch.observe({tag: v}) for v in (0.9, 0.9)]  # too few points yet
    assert seen == [None, None] and watch.observe({"train/loss": 1.0}) is None
    warning = watch.observe({tag: 0.0})  # mean 0.6 over the last 3
    assert warning is not None and "network.v_min, network.v_max" in warning
    assert watch.observe({tag: 1.0}) is None  # once
    calm = SupportClipWatch(threshold=0.2, points=3)
    assert all(calm.observe({tag: v}) is None for v in (0.5, 0.02, 0.02, 0.1))  # mean 0.18
