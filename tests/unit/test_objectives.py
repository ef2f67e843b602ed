"""Objectives: the registry by name, the readouts, the forward passes, and a new
objective added as one module file, trained through the builder."""

import dataclasses
import math
import sys
import textwrap

import numpy as np
import pytest
import torch

import rlkit.agent.objectives as objectives
from rlkit.agent.builder import build_learner, build_network
from rlkit.agent.nn import QNetwork
from rlkit.agent.objectives.base import Forwards, NoiseDraws
from rlkit.agent.objectives.c51 import CategoricalReadout
from rlkit.agent.objectives.scalar import ScalarReadout, ScalarTD
from rlkit.config import ConfigError, load_config
from rlkit.types import Batch


def test_names_list_the_objective_modules_and_auto():
    assert objectives.names() == ["auto", "c51", "iqn", "qr", "scalar"]  # not base / math


@pytest.mark.parametrize(
    "head, atoms, name", [("auto", 1, "scalar"), ("auto", 51, "c51"), ("c51", 3, "c51")]
)
def test_auto_is_scalar_for_one_atom_else_c51(head, atoms, name):
    assert objectives.resolve(head, atoms) == name


def test_unknown_objective_names_the_choices():
    with pytest.raises(
        ValueError, match=r"unknown head 'fqf' \(choose from auto, c51, iqn, qr, scalar\)"
    ):
        objectives.resolve("fqf", 1)


def test_readouts_hand_numbers():
    raw_BAZ = torch.tensor([[[2.0], [-1.0]]])  # [1, 2, 1]
    torch.testing.assert_close(ScalarReadout()(raw_BAZ), torch.tensor([[2.0, -1.0]]))
    # support [0, 1, 2]; p(a0) = [0.5, 0.25, 0.25] -> Q = 0.25 + 0.5 = 0.75,
    # p(a1) = [0.25, 0.25, 0.5] -> Q = 0.25 + 1.0 = 1.25
    logits = torch.tensor([[[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]]]).log()
    readout = CategoricalReadout(3, 0.0, 2.0)
    torch.testing.assert_close(readout(logits), torch.tensor([[0.75, 1.25]]))
    assert "support" not in readout.state_dict()  # derived from v_min, v_max, atoms


@pytest.mark.parametrize(
    "head, atoms, v_min, message",
    [("scalar", 3, -1.0, "atoms 1"), ("c51", 1, -1.0, "atoms > 1"), ("c51", 3, 5.0, "v_min")],
)
def test_readouts_refuse_contradicting_shapes(head, atoms, v_min, message):
    with pytest.raises(ValueError, match=message):
        objectives.make_readout(head, atoms, v_min, 1.0)


def test_network_forward_is_the_readout_of_the_raw_outputs():
    torch.manual_seed(0)
    net = QNetwork((4,), 3, atoms=5, v_min=-2.0, v_max=2.0, noisy=False)
    obs = torch.randn(6, 4)
    raw = net.raw(obs)
    assert raw.shape == (6, 3, 5)
    expected = (torch.softmax(raw, dim=2) * torch.linspace(-2.0, 2.0, 5)).sum(2)
    torch.testing.assert_close(net(obs), expected)
    assert "support" not in net.state_dict()


def test_state_dicts_of_earlier_versions_with_a_support_still_load():
    net = QNetwork((4,), 2, atoms=3, noisy=False)
    old = {**net.state_dict(), "support": torch.linspace(-10.0, 10.0, 3)}
    QNetwork((4,), 2, atoms=3, noisy=False).load_state_dict(old)  # strict: no error


def test_forwards_draw_before_each_forward_and_reuse_a_given_target():
    torch.manual_seed(0)
    online, target = QNetwork((2,), 2, noisy=False), QNetwork((2,), 2, noisy=False)
    calls: list[str] = []
    draws = NoiseDraws(*(lambda n=n: calls.append(n) for n in ("target", "selection", "loss")))
    obs = torch.randn(3, 2)
    fw = Forwards(online, target, draws)
    torch.testing.assert_close(fw.target_next(obs), target.raw(obs))
    torch.testing.assert_close(fw.selection_next(obs), online.raw(obs))
    out = fw.online(obs)
    assert out.requires_grad and calls == ["target", "selection", "loss"]
    given = torch.zeros(3, 2, 1)
    assert Forwards(online, target, draws, given).target_next(obs) is given
    assert calls == ["target", "selection", "loss"]  # no draw, no forward


# ---------------------------------------------------------------- a new objective


NEW_OBJECTIVE = textwrap.dedent(
    '''
    """Monte-Carlo L1: target = reward only, loss |td|, priority td^2 (a test objective)."""

    import torch
    from torch import nn

    from rlkit.agent.objectives.base import ObjectiveOutput, weighted_mean


    class Readout(nn.Module):
        name = "mc_l1"

        def forward(self, raw_BAZ):
            return raw_BAZ.squeeze(2)


    def readout(atoms, v_min, v_max):
        if atoms != 1:
            raise ValueError("'mc_l1' needs atoms 1")
        return Readout()


    class MonteCarloL1:
        def __init__(self, readout):
            self.readout = readout

        def q_values(self, raw_BAZ):
            return self.readout(raw_BAZ)

        def __call__(self, batch, forwards):
            q_BA = self.readout(forwards.online(batch.obs))
            q_sa_B = q_BA.gather(1, batch.action.unsqueeze(1)).squeeze(1)
            td_B = batch.reward - q_sa_B
            loss = weighted_mean(batch.weights, td_B.abs())
            td_sq_B = td_B.detach().pow(2)
            return ObjectiveOutput(loss, td_sq_B, {"td_sq_mean": td_sq_B.mean()})


    def make(readout, **options):
        return MonteCarloL1(readout)
    '''
)


@pytest.fixture
def new_objective(tmp_path, monkeypatch):
    """``mc_l1.py`` in a directory of its own, on the objectives package's path."""
    (tmp_path / "mc_l1.py").write_text(NEW_OBJECTIVE)
    monkeypatch.setattr(objectives, "__path__", [*objectives.__path__, str(tmp_path)])
    yield "mc_l1"
    sys.modules.pop("rlkit.agent.objectives.mc_l1", None)
    vars(objectives).pop("mc_l1", None)


def test_a_new_objective_is_one_module_and_trains_through_the_builder(new_objective):
    assert objectives.names() == ["auto", "c51", "iqn", "mc_l1", "qr", "scalar"]
    sets = ["network.head=mc_l1", "network.atoms=1", "network.dueling=false"]
    config = load_config(None, [*sets, "network.noisy=false", "learner.max_grad_norm=null"])
    net = build_network(config, (1,), 2)
    learner = build_learner(config, net, torch.device("cpu"))
    assert type(learner.objective).__name__ == "MonteCarloL1"
    assert not learner.manual_gradients  # the scalar-only fast path does not apply
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.head.stream.bias.copy_(torch.tensor([0.5, 3.0]))  # Q(s, .) = [0.5, 3] for all s
    batch = Batch(
        obs=torch.zeros(2, 1),
        action=torch.tensor([0, 1]),
        reward=torch.tensor([2.0, 1.0]),
        next_obs=torch.zeros(2, 1),
        discount=torch.full((2,), 0.9),
        weights=torch.tensor([1.0, 3.0]),
        indices=np.arange(2),
    )
    out = learner.update(batch)
    # td = r - Q(s, a) = [2 - 0.5, 1 - 3] = [1.5, -2]; loss = mean(w |td|) = (1.5 + 6) / 2
    assert out.loss == pytest.approx(3.75)
    np.testing.assert_allclose(out.priorities, [2.25, 4.0])  # td^2
    assert list(out.metrics) == ["loss", "td_sq_mean", "grad_norm"]
    assert out.metrics["td_sq_mean"] == pytest.approx(3.125)
    # dL/db = -mean(w sign(td) e_a) = [-1 * 1 / 2, +3 / 2] = [-0.5, 1.5] (other grads 0)
    torch.testing.assert_close(net.head.stream.bias.grad, torch.tensor([-0.5, 1.5]))
    assert out.metrics["grad_norm"] == pytest.approx(math.sqrt(0.25 + 2.25))
    assert learner.updates == 1


# ---------------------------------------------------------------- the builder's errors


def with_network(**changes):
    config = load_config(None, [])
    return dataclasses.replace(config, network=dataclasses.replace(config.network, **changes))


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"head": "fqf"},
            r"network.head: unknown head 'fqf' \(choose from auto, c51, iqn, qr, scalar\)",
        ),
        (
            {"head": "c51", "atoms": 1, "v_min": -10.0, "v_max": 10.0},
            r"network.head: 'c51' needs atoms > 1",
        ),
        ({"head": "scalar", "atoms": 51}, r"network.head: 'scalar' needs atoms 1"),
    ],
)
def test_builder_names_network_head_for_unknown_or_contradicting_heads(changes, message):
    with pytest.raises(ConfigError, match=message):
        build_network(with_network(**changes), (4,), 2)


@pytest.mark.parametrize("head, atoms, kind", [("auto", 1, ScalarTD), ("scalar", 1, ScalarTD)])
def test_builder_picks_the_objective_of_the_head(head, atoms, kind):
    config = with_network(head=head, atoms=atoms, noisy=False)
    learner = build_learner(config, build_network(config, (4,), 2), torch.device("cpu"))
    assert type(learner.objective) is kind
    c51 = with_network(head="c51", atoms=11, v_min=-10.0, v_max=10.0)
    learner = build_learner(c51, build_network(c51, (4,), 2), torch.device("cpu"))
    assert type(learner.objective).__name__ == "C51"
