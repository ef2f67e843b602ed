"""Named Atari protocols (env.protocol): the values each preset resolves to, contradicting
keys as one-line errors, and the resolved values recorded in a run's config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlkit.config import ConfigError, dump_config, from_dict, load_config, read_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RAINBOW = CONFIGS / "atari" / "rainbow.yaml"
KEYS = (
    "sticky_actions",
    "noop_max",
    "full_action_space",
    "max_frames_per_episode",
    "terminal_on_life_loss",
)

# Written out from the papers, not read from rlkit's table:
# 30 minutes of play at 60 frames/s = 108,000 frames = 27,000 agent steps of 4 frames.
CAP = 30 * 60 * 60
PAPERS = {
    # Machado et al. 2018: sticky actions 0.25, no no-op starts, 18 actions, no life-loss signal
    "machado2018": (0.25, 0, True, CAP, False),
    # Hessel et al. 2018 / Mnih et al. 2015: <= 30 no-ops, no sticky actions, minimal set,
    # a lost life terminal for learning
    "rainbow2018": (0.0, 30, False, CAP, True),
    # Atari 100k (Kaiser et al. 2020; van Hasselt et al. 2019): no sticky actions, life loss
    "atari100k": (0.0, 30, False, CAP, True),
}


def env_keys(config) -> tuple:
    return tuple(getattr(config.env, key) for key in KEYS)


def test_cap_is_27000_agent_steps():
    assert CAP == 108_000 == 27_000 * 4


@pytest.mark.parametrize("protocol", sorted(PAPERS))
def test_each_preset_resolves_to_the_papers_values(protocol):
    config = load_config(RAINBOW, [f"env.protocol={protocol}"])
    assert env_keys(config) == PAPERS[protocol]


def test_each_shipped_atari_config_names_its_protocol_in_the_file():
    expected = {
        "rainbow.yaml": "rainbow2018",
        "pong_rainbow.yaml": "rainbow2018",
        "der_100k.yaml": "atari100k",
        "iqn.yaml": "rainbow2018",
        "rainbow_iqn.yaml": "rainbow2018",
    }
    assert sorted(p.name for p in (CONFIGS / "atari").glob("*.yaml")) == sorted(expected)
    for name, protocol in expected.items():
        raw = read_yaml(CONFIGS / "atari" / name)  # the file itself, not its extends: chain
        assert raw["env"]["protocol"] == protocol, name
        assert not set(KEYS) & set(raw["env"]), f"{name} sets a key its protocol owns"
        assert env_keys(load_config(CONFIGS / "atari" / name)) == PAPERS[protocol]


@pytest.mark.parametrize(
    "key, value",
    [
        ("sticky_actions", 0.25),
        ("noop_max", 0),
        ("full_action_space", True),
        ("max_frames_per_episode", 18_000),
        ("terminal_on_life_loss", False),
    ],
)
def test_a_key_contradicting_the_preset_is_a_one_line_error_naming_it(key, value):
    with pytest.raises(ConfigError) as info:
        load_config(RAINBOW, [f"env.{key}={value}"])  # rainbow.yaml: protocol rainbow2018
    message = str(info.value)
    assert f"env.{key}" in message and "rainbow2018" in message and "\n" not in message


def test_a_key_equal_to_the_preset_is_accepted():
    config = load_config(RAINBOW, ["env.sticky_actions=0.0", "env.noop_max=30"])
    assert env_keys(config) == PAPERS["rainbow2018"]


def test_custom_takes_each_key_as_given():
    items = [
        "env.protocol=custom",
        "env.sticky_actions=0.1",
        "env.noop_max=7",
        "env.full_action_space=true",
        "env.max_frames_per_episode=400",
        "env.terminal_on_life_loss=true",
    ]
    assert env_keys(load_config(RAINBOW, items)) == (0.1, 7, True, 400, True)


@pytest.mark.parametrize("protocol", sorted(PAPERS))
def test_the_resolved_config_records_the_preset_values_and_loads_again(protocol):
    config = load_config(RAINBOW, [f"env.protocol={protocol}"])
    dumped = yaml.safe_load(dump_config(config))  # what a run dir's config.yaml holds
    assert dumped["env"]["protocol"] == protocol
    assert tuple(dumped["env"][key] for key in KEYS) == PAPERS[protocol]
    assert from_dict(dumped) == config


def test_a_protocol_on_a_non_atari_env_is_an_error():
    with pytest.raises(ConfigError, match=r"env\.protocol 'machado2018'.*CartPole-v1"):
        load_config(None, ["env.protocol=machado2018"])


@pytest.mark.parametrize(
    "kwarg, key",
    [
        ("repeat_action_probability", "env.sticky_actions"),
        ("full_action_space", "env.full_action_space"),
        ("max_num_frames_per_episode", "env.max_frames_per_episode"),
    ],
)
def test_ale_kwargs_that_rlkit_sets_are_refused_naming_the_key(kwarg, key):
    with pytest.raises(ConfigError, match=rf"env\.kwargs\.{kwarg}.*{key}"):
        load_config(RAINBOW, [f"env.kwargs={{{kwarg}: 1}}"])


def test_frame_cap_must_be_positive():
    with pytest.raises(ConfigError, match="env.max_frames_per_episode"):
        load_config(RAINBOW, ["env.protocol=custom", "env.max_frames_per_episode=0"])
    assert load_config(RAINBOW, ["env.protocol=custom", "env.max_frames_per_episode=null"])
