"""Constructor defaults of the agent layer that mirror a config default stay equal to it.

The agent layer may not import the config (only its builder reads it), so QNetwork and
DQNLearner keep their own defaults for direct use; this test is what keeps them from
drifting. The one deliberate difference is listed: a bare ``QNetwork`` is scalar
(``atoms=1``), while the config's default network is Rainbow's C51 (``atoms=51``).
"""

import dataclasses
import inspect
import typing

import pytest

from rlkit.agent.learner import NOISE_CADENCES, DQNLearner
from rlkit.agent.nn.qnet import TORSOS, QNetwork
from rlkit.config import LearnerConfig, NetworkConfig, TrainerConfig

DELIBERATE = {("QNetwork", "atoms"): (1, 51)}  # (constructor, config) defaults


def defaults(cls) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(cls).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def config_default(section, name: str):
    return {f.name: f.default for f in dataclasses.fields(section)}[name]


# (constructor, its argument, config section, config field)
MIRRORS = [
    *[
        (QNetwork, name, NetworkConfig, name)
        # not v_min/v_max: the config's default is auto (resolved before a net is built)
        for name in ("hidden_sizes", "dueling", "noisy", "atoms", "sigma0")
    ],
    (QNetwork, "torso", NetworkConfig, "torso"),
    (QNetwork, "head_hidden", NetworkConfig, "head_hidden"),
    *[
        (DQNLearner, name, LearnerConfig, name)
        for name in ("double_q", "target_tau", "loss", "max_grad_norm", "c51_priority")
    ],
    (DQNLearner, "noise_cadence", NetworkConfig, "noise_cadence"),
    (DQNLearner, "manual_gradients", TrainerConfig, "fast_mlp"),
]


@pytest.mark.parametrize(
    "cls, arg, section, field", MIRRORS, ids=[f"{c.__name__}.{a}" for c, a, _, _ in MIRRORS]
)
def test_constructor_default_equals_the_config_default(cls, arg, section, field):
    ours, theirs = defaults(cls)[arg], config_default(section, field)
    if (cls.__name__, arg) in DELIBERATE:
        assert (ours, theirs) == DELIBERATE[cls.__name__, arg]
    else:
        assert ours == theirs


def test_use_target_network_default_matches_a_positive_sync_period():
    assert defaults(DQNLearner)["use_target_network"] == (
        config_default(LearnerConfig, "target_update_period") > 0
    )


def test_choice_tuples_of_the_agent_match_the_config_literals():
    hints = typing.get_type_hints(NetworkConfig)
    assert set(typing.get_args(hints["noise_cadence"])) == set(NOISE_CADENCES)
    torso = typing.get_args(hints["torso"])
    # the config's choices are TORSOS (a Literal built from it, or the same names)
    assert set(torso or TORSOS) == set(TORSOS)
